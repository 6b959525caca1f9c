/**
 * runOp: every op behind one name-based entry point. The ops that also have dedicated methods
 * (conv3d, group_norm, silu, add, concat) must give the same results through it, and bad names,
 * attributes and tensor counts must throw a TypeError/RangeError naming them.
 */
import { eachBackend, poisoned } from '../helpers/backends.js';
import { conv3dRef, groupNormRef, maxScaledError, numel, randn, relL2, siluRef } from '../helpers/reference.js';

eachBackend('runOp conv3d with stride, asymmetric padding and bias', async (t, backend) => {
  const xs = [2, 3, 6, 5, 7], ws = [5, 3, 3, 3, 3];
  const x = randn(numel(xs), 1), w = randn(numel(ws), 2, 0, 0.2), b = randn(5, 3);
  const ref = conv3dRef(x, xs, w, ws, b, [2, 2, 2], [0, 0, 0], [1, 1, 1]);
  const out = poisoned(backend, ref.shape);
  await backend.runOp('conv3d', [backend.tensor(xs, x), backend.tensor(ws, w), backend.tensor([5], b)],
    { stride: 2, padding_before: 0, padding_after: [1, 1, 1] }, [out]);
  t.true(relL2(out.read() as Float32Array, ref.data) <= 1e-5);
  const ref2 = conv3dRef(x, xs, w, ws, null, [1, 1, 1], [1, 1, 1], [1, 1, 1]);
  const out2 = poisoned(backend, ref2.shape);
  await backend.runOp('conv3d', [backend.tensor(xs, x), backend.tensor(ws, w)], { padding: 1 }, [out2]);
  t.true(relL2(out2.read() as Float32Array, ref2.data) <= 1e-5);
});

eachBackend('runOp group_norm, silu, add and concat match their references', async (t, backend) => {
  const shape = [2, 6, 3, 4, 5];
  const x = randn(numel(shape), 4, 1, 2), g = randn(6, 5, 1, 0.3), b = randn(6, 6);
  const gn = poisoned(backend, shape);
  await backend.runOp('group_norm', [backend.tensor(shape, x), backend.tensor([6], g), backend.tensor([6], b)], { groups: 3, eps: 1e-6, silu: 1 }, [gn]);
  t.true(relL2(gn.read() as Float32Array, groupNormRef(x, shape, 3, 1e-6, g, b, true)) <= 1e-5);
  const s = poisoned(backend, shape);
  await backend.runOp('silu', [backend.tensor(shape, x)], {}, [s]);
  t.true(maxScaledError(s.read() as Float32Array, Array.from(x, siluRef), 1e-6, 1e-5) <= 1);
  const sum = poisoned(backend, shape);
  const per = randn(12, 7);
  await backend.runOp('add', [backend.tensor(shape, x), backend.tensor([2, 6], per)], {}, [sum]);
  t.true((sum.read() as Float32Array).every((v, i) => v === Math.fround(x[i] + per[Math.floor(i / 60)])));
  const cat = poisoned(backend, [2, 9, 3, 4, 5]);
  const other = randn(2 * 3 * 60, 8);
  await backend.runOp('concat', [backend.tensor(shape, x), backend.tensor([2, 3, 3, 4, 5], other)], {}, [cat]);
  const got = cat.read() as Float32Array;
  t.deepEqual(Array.from(got.subarray(0, 360)), Array.from(x.subarray(0, 360)));
  t.deepEqual(Array.from(got.subarray(360, 540)), Array.from(other.subarray(0, 180)));
});

eachBackend('runOp rejects unknown ops, bad attributes and tensor counts by name', async (t, backend) => {
  const x = backend.tensor([1, 4, 2, 2, 2]);
  const y = backend.tensor([1, 4, 2, 2, 2]);
  await t.throwsAsync(backend.runOp('softmaxx', [x], {}, [y]), { instanceOf: RangeError, message: /unknown op 'softmaxx'/ });
  await t.throwsAsync(backend.runOp('group_norm', [x], {}, [y]), { instanceOf: RangeError, message: /group_norm: missing attribute 'groups'/ });
  await t.throwsAsync(backend.runOp('group_norm', [x], { groups: 2, epsilon: 1e-6 }, [y]), { instanceOf: RangeError, message: /unknown attribute 'epsilon' \(accepted: groups, eps, silu\)/ });
  await t.throwsAsync(backend.runOp('gelu', [x], { approximate: 1 }, [y]), { instanceOf: RangeError, message: /unknown attribute 'approximate' \(it takes none\)/ });
  await t.throwsAsync(backend.runOp('group_norm', [x], { groups: 3 }, [y]), { instanceOf: RangeError, message: /argument 'groups' is 3/ });
  await t.throwsAsync(backend.runOp('conv3d', [x], {}, [y]), { instanceOf: RangeError, message: /conv3d: takes 2 to 3 inputs, got 1/ });
  await t.throwsAsync(backend.runOp('conv3d', [x, backend.tensor([4, 4, 1, 1, 1])], { stride: [1, 2] }, [y]), { instanceOf: RangeError, message: /attribute 'stride' must hold 1 or 3 values/ });
  await t.throwsAsync(backend.runOp('silu', [x], {}, []), { instanceOf: RangeError, message: /takes 1 output, got 0/ });
  await t.throwsAsync(backend.runOp('silu', [x], { a: 'b' as never }, [y]), { instanceOf: TypeError, message: /attribute 'a' must be a number/ });
  await t.throwsAsync(backend.runOp('silu', [x], { 'a=b': 1 }, [y]), { instanceOf: RangeError, message: /attribute name 'a=b'/ });
  await t.throwsAsync(backend.runOp('silu', [x], {}, [backend.tensor([4])]), { instanceOf: RangeError, message: /silu: argument 'out'/ });
  await t.throwsAsync(backend.runOp('silu', x as never, {}, [y]), { instanceOf: TypeError, message: /argument 'inputs' must be an array/ });
  await t.throwsAsync(backend.runOp('silu', [new Float32Array(8) as never], {}, [y]), { instanceOf: TypeError, message: /argument 'inputs\[0\]' must be a tensor created by this backend/ });
  await t.throwsAsync(backend.runOp('' as never, [x], {}, [y]), { instanceOf: TypeError, message: /argument 'name'/ });
  // Still usable afterwards.
  await backend.runOp('silu', [x], {}, [y]);
  t.true((y.read() as Float32Array).every((v) => v === 0));
});
