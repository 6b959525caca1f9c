/**
 * Bad input to every exported op throws a TypeError/RangeError that names the
 * argument, on every backend, and the process survives to run the next check.
 */
import { eachBackend } from './helpers/backends.js';
import type { Backend } from '../ts/backend/types.js';

function detachedFloat32(n: number): Float32Array {
  const a = new Float32Array(n);
  structuredClone(a.buffer, { transfer: [a.buffer] });
  return a;
}

eachBackend('tensor() rejects bad shapes, dtypes and data', async (t, b) => {
  t.throws(() => b.tensor([2, 0, 3]), { instanceOf: RangeError, message: /argument 'shape'.*>= 1/ });
  t.throws(() => b.tensor([]), { instanceOf: RangeError, message: /argument 'shape'/ });
  t.throws(() => b.tensor([2, 1.5]), { instanceOf: TypeError, message: /argument 'shape'/ });
  t.throws(() => b.tensor('2x2' as unknown as number[]), { instanceOf: TypeError, message: /argument 'shape'/ });
  t.throws(() => b.tensor([4], new Float32Array(3)), { instanceOf: RangeError, message: /argument 'data' has 3 elements, expected 4/ });
  t.throws(() => b.tensor([4], new Float64Array(4) as unknown as Float32Array), { instanceOf: TypeError, message: /argument 'data' must be a Float32Array/ });
  t.throws(() => b.tensor([4], detachedFloat32(4)), { instanceOf: TypeError, message: /argument 'data'.*detached/ });
  t.throws(() => b.tensor([4], undefined, 'int8' as never), { instanceOf: TypeError, message: /argument 'dtype'/ });
  const x = b.tensor([4]);
  t.throws(() => x.write(detachedFloat32(4)), { instanceOf: TypeError, message: /argument 'data'.*detached/ });
});

async function convArgs(b: Backend) {
  return {
    x: b.tensor([1, 2, 4, 4, 4], new Float32Array(128).fill(1)),
    w: b.tensor([3, 2, 3, 3, 3], new Float32Array(162).fill(0.5)),
    bias: b.tensor([3], new Float32Array(3)),
  };
}

eachBackend('conv3d rejects wrong shapes, dtypes, foreign and disposed tensors', async (t, b) => {
  const { x, w, bias } = await convArgs(b);
  await t.throwsAsync(b.conv3d(b.tensor([2, 4, 4, 4]), w, bias), { instanceOf: RangeError, message: /argument 'input'.*5 dims/ });
  await t.throwsAsync(b.conv3d(x, b.tensor([3, 5, 3, 3, 3]), bias), { instanceOf: RangeError, message: /argument 'weight'.*2 channels/ });
  await t.throwsAsync(b.conv3d(x, w, b.tensor([4])), { instanceOf: RangeError, message: /argument 'bias'.*expected \[3\]/ });
  await t.throwsAsync(b.conv3d(x, w, bias, { out: b.tensor([1, 3, 4, 4, 3]), padding: 1 }), { instanceOf: RangeError, message: /argument 'out'.*expected \[1, 3, 4, 4, 4\]/ });
  await t.throwsAsync(b.conv3d(x, w, bias, { stride: 0 }), { instanceOf: RangeError, message: /argument 'stride'/ });
  await t.throwsAsync(b.conv3d(x, w, bias, { padding: [1, -1, 1] }), { instanceOf: RangeError, message: /argument 'padding'/ });
  await t.throwsAsync(b.conv3d(x, w, bias, { padding: 'same' as never }), { instanceOf: TypeError, message: /argument 'padding'/ });
  await t.throwsAsync(b.conv3d(b.tensor([1, 2, 2, 2, 2]), w, bias), { instanceOf: RangeError, message: /smaller than the kernel/ });
  await t.throwsAsync(b.conv3d(b.tensor([1, 2, 4, 4, 4], undefined, 'bfloat16'), w, bias), { instanceOf: TypeError, message: /argument 'input' has dtype bfloat16, expected float32/ });
  await t.throwsAsync(b.conv3d(new Float32Array(128) as never, w, bias), { instanceOf: TypeError, message: /argument 'input' must be a tensor created by this backend/ });
  const gone = b.tensor([3, 2, 3, 3, 3]);
  gone.dispose();
  await t.throwsAsync(b.conv3d(x, gone, bias), { instanceOf: TypeError, message: /argument 'weight' has been disposed/ });
  // Still usable afterwards: nothing above corrupted the backend.
  const y = await b.conv3d(x, w, bias, { padding: 1 });
  t.is((y.read() as Float32Array)[0], 0.5 * 2 * 8);
});

eachBackend('groupNorm, silu, add and concat reject bad arguments by name', async (t, b) => {
  const x = b.tensor([1, 4, 2, 2, 2]);
  await t.throwsAsync(b.groupNorm(x, { groups: 3 }), { instanceOf: RangeError, message: /argument 'groups' is 3/ });
  await t.throwsAsync(b.groupNorm(x, { groups: 2.5 }), { instanceOf: TypeError, message: /argument 'groups'/ });
  await t.throwsAsync(b.groupNorm(x, { groups: 2, eps: -1 }), { instanceOf: RangeError, message: /argument 'eps'/ });
  await t.throwsAsync(b.groupNorm(x, { groups: 2, weight: b.tensor([4]) }), { instanceOf: TypeError, message: /'weight' and 'bias'/ });
  await t.throwsAsync(b.groupNorm(x, { groups: 2, weight: b.tensor([3]), bias: b.tensor([3]) }), { instanceOf: RangeError, message: /argument 'weight'.*expected \[4\]/ });
  await t.throwsAsync(b.groupNorm(b.tensor([4]), { groups: 1 }), { instanceOf: RangeError, message: /argument 'input'/ });
  await t.throwsAsync(b.silu(x, { out: b.tensor([1, 4, 2, 2]) }), { instanceOf: RangeError, message: /argument 'out'/ });
  await t.throwsAsync(b.silu(null as never), { instanceOf: TypeError, message: /argument 'input'/ });
  await t.throwsAsync(b.add(x, b.tensor([1, 4, 2, 2, 3])), { instanceOf: RangeError, message: /argument 'b'/ });
  await t.throwsAsync(b.add(x, b.tensor([1, 4], undefined, 'float16')), { instanceOf: TypeError, message: /argument 'b' has dtype float16/ });
  await t.throwsAsync(b.concat([]), { instanceOf: RangeError, message: /argument 'inputs'/ });
  await t.throwsAsync(b.concat([x, b.tensor([1, 4, 2, 2, 3])]), { instanceOf: RangeError, message: /argument 'inputs\[1\]'/ });
  await t.throwsAsync(b.probePeakGflops(-1), { instanceOf: RangeError, message: /secondsPerRepeat/ });
});

eachBackend('a disposed backend refuses further work', async (t, b) => {
  const x = b.tensor([1, 2]);
  await b.dispose();
  t.throws(() => b.tensor([2]), { instanceOf: TypeError, message: /disposed/ });
  await t.throwsAsync(b.silu(x), { instanceOf: TypeError, message: /disposed/ });
});
