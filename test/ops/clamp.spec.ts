import { eachBackend, poisoned } from '../helpers/backends.js';
import { randn } from '../helpers/reference.js';

for (const n of [5, 70001]) {
  eachBackend(`clamp to [-30, 20] (MONAI log-variance) on ${n} elements`, async (t, backend) => {
    const x = randn(n, 90 + n, 0, 25);
    x[0] = NaN; x[1] = Infinity; x[2] = -Infinity; x[3] = -30; x[4] = 20;
    const out = poisoned(backend, [n]);
    await backend.runOp('clamp', [backend.tensor([n], x)], { min: -30, max: 20 }, [out]);
    const got = out.read() as Float32Array;
    t.true(Number.isNaN(got[0]), 'NaN stays NaN, as torch.clamp');
    const expected = Array.from(x, (v) => Math.min(Math.max(v, -30), 20));
    t.deepEqual(Array.from(got.subarray(1)), expected.slice(1));
  });
}

eachBackend('clamp rejects min > max and missing bounds', async (t, backend) => {
  const x = backend.tensor([3]);
  const y = backend.tensor([3]);
  await t.throwsAsync(backend.runOp('clamp', [x], { min: 2, max: 1 }, [y]), { instanceOf: RangeError, message: /min <= max/ });
  await t.throwsAsync(backend.runOp('clamp', [x], { min: 2 }, [y]), { instanceOf: RangeError, message: /missing attribute 'max'/ });
});
