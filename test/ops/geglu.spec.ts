import { eachBackend, poisoned } from '../helpers/backends.js';
import { gegluChannelsRef, maxScaledError, numel, randn, relL2 } from '../helpers/reference.js';

// MONAI's GEGLU: x, gate = x.chunk(2) along channels; x * gelu(gate). Here channels-first, so the
// first C channels are the value and the last C the gate.
const shapes = [[2, 10, 3, 7, 1], [1, 64, 299], [3, 2, 5]];

shapes.forEach((shape, i) => {
  eachBackend(`geglu_channels [${shape.join(', ')}]`, async (t, backend) => {
    const x = randn(numel(shape), 800 + i, 0, 2);
    const ref = gegluChannelsRef(x, shape);
    const outShape = shape.slice();
    outShape[1] /= 2;
    const out = poisoned(backend, outShape);
    await backend.runOp('geglu_channels', [backend.tensor(shape, x)], {}, [out]);
    const got = out.read() as Float32Array;
    t.true(relL2(got, ref) <= 1e-6, `relative L2 ${relL2(got, ref)}`);
    t.true(maxScaledError(got, ref, 1e-30, 2e-6) <= 1);
  });
});

eachBackend('geglu_channels splits value first, gate second', async (t, backend) => {
  // value half all 1, gate half 10: gelu(10) = 10, so the output is 10 (reversed it would be gelu(1) * 10).
  const x = Float32Array.from([1, 1, 10, 10]);
  const out = poisoned(backend, [1, 1, 2]);
  await backend.runOp('geglu_channels', [backend.tensor([1, 2, 2], x)], {}, [out]);
  t.deepEqual(Array.from(out.read()), [10, 10]);
});

eachBackend('geglu_channels rejects an odd channel count and a wrong output', async (t, backend) => {
  await t.throwsAsync(backend.runOp('geglu_channels', [backend.tensor([1, 3, 4])], {}, [backend.tensor([1, 1, 4])]),
    { instanceOf: RangeError, message: /argument 'input'.*even number of channels/ });
  await t.throwsAsync(backend.runOp('geglu_channels', [backend.tensor([1, 4, 4])], {}, [backend.tensor([1, 4, 4])]),
    { instanceOf: RangeError, message: /argument 'out' has shape \[1, 4, 4\], expected \[1, 2, 4\]/ });
});
