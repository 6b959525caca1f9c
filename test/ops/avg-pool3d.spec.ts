import { eachBackend, poisoned } from '../helpers/backends.js';
import { avgPool3d2xRef, numel, randn } from '../helpers/reference.js';

// Odd sizes floor (PyTorch's default ceil_mode=False) and batch/channels > 1; the reference sums
// in PyTorch's (kd, kh, kw) order in float32, so the result is expected bit for bit.
const shapes = [[2, 3, 7, 6, 5], [1, 4, 2, 2, 2], [1, 2, 9, 3, 35]];

shapes.forEach((shape, i) => {
  eachBackend(`avg_pool3d_2x [${shape.join(', ')}]`, async (t, backend) => {
    const x = randn(numel(shape), 500 + i, 0.5, 2);
    const ref = avgPool3d2xRef(x, shape);
    const out = poisoned(backend, ref.shape);
    await backend.runOp('avg_pool3d_2x', [backend.tensor(shape, x)], {}, [out]);
    t.deepEqual(Array.from(out.read()), Array.from(ref.data));
  });
});

eachBackend('avg_pool3d_2x rejects spatial dims below 2 and a wrong output shape', async (t, backend) => {
  await t.throwsAsync(backend.runOp('avg_pool3d_2x', [backend.tensor([1, 1, 4, 1, 4])], {}, [backend.tensor([1, 1, 2, 1, 2])]),
    { instanceOf: RangeError, message: /argument 'input'.*spatial dim >= 2/ });
  await t.throwsAsync(backend.runOp('avg_pool3d_2x', [backend.tensor([1, 1, 5, 5, 5])], {}, [backend.tensor([1, 1, 3, 2, 2])]),
    { instanceOf: RangeError, message: /argument 'out' has shape \[1, 1, 3, 2, 2\], expected \[1, 1, 2, 2, 2\]/ });
  await t.throwsAsync(backend.runOp('avg_pool3d_2x', [backend.tensor([1, 1, 4, 4])], {}, [backend.tensor([1, 1, 2, 2])]),
    { instanceOf: RangeError, message: /argument 'input'.*5 dims/ });
});
