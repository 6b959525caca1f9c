import { eachBackend, poisoned } from '../helpers/backends.js';
import { maxScaledError, numel, randn } from '../helpers/reference.js';

eachBackend('spade_modulate: x * (1 + gamma) + beta, batch 2 with odd sizes', async (t, backend) => {
  const shape = [2, 5, 3, 7, 5];
  const n = numel(shape);
  const x = randn(n, 1), g = randn(n, 2, 0, 0.5), b = randn(n, 3);
  const out = poisoned(backend, shape);
  await backend.runOp('spade_modulate', [backend.tensor(shape, x), backend.tensor(shape, g), backend.tensor(shape, b)], {}, [out]);
  const got = out.read() as Float32Array;
  const ref = Array.from(x, (v, i) => v * (1 + g[i]) + b[i]);
  // PyTorch rounds after each of the three operations; FMA ISAs may fuse two: allow a few ulps.
  t.true(maxScaledError(got, ref, 1e-6, 1e-6) <= 1, `max scaled error ${maxScaledError(got, ref, 1e-6, 1e-6)}`);
});

eachBackend('spade_modulate rejects gamma/beta of another shape by name', async (t, backend) => {
  const x = backend.tensor([1, 2, 3]);
  await t.throwsAsync(backend.runOp('spade_modulate', [x, backend.tensor([1, 2, 4]), backend.tensor([1, 2, 3])], {}, [backend.tensor([1, 2, 3])]),
    { instanceOf: RangeError, message: /argument 'gamma' has shape \[1, 2, 4\], expected \[1, 2, 3\]/ });
  await t.throwsAsync(backend.runOp('spade_modulate', [x, backend.tensor([1, 2, 3]), backend.tensor([2, 3])], {}, [backend.tensor([1, 2, 3])]),
    { instanceOf: RangeError, message: /argument 'beta' has shape \[2, 3\], expected \[1, 2, 3\]/ });
  await t.throwsAsync(backend.runOp('spade_modulate', [x, x], {}, [backend.tensor([1, 2, 3])]),
    { instanceOf: RangeError, message: /takes 3 inputs, got 2/ });
});
