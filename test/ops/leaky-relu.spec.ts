import { eachBackend, poisoned } from '../helpers/backends.js';
import { leakyReluRef, randn } from '../helpers/reference.js';

for (const [n, slope] of [[1, 0.01], [61, 0.01], [70001, 0.2]] as const) {
  eachBackend(`leaky_relu on ${n} elements, slope ${slope}`, async (t, backend) => {
    const x = randn(n, n, 0, 3);
    if (n > 10) { x[0] = 0; x[1] = -0; x[2] = -1e-30; }
    const out = poisoned(backend, [n]);
    await backend.runOp('leaky_relu', [backend.tensor([n], x)], { negative_slope: slope }, [out]);
    const got = out.read() as Float32Array;
    const s = Math.fround(slope);
    t.deepEqual(Array.from(got), Array.from(x, (v) => Math.fround(leakyReluRef(v, s))));
  });
}

eachBackend('leaky_relu defaults to slope 0.01 (SPADE mlp_shared) and keeps shape [N, C, D, H, W]', async (t, backend) => {
  const shape = [2, 3, 3, 2, 5];
  const x = randn(180, 9, 0, 1);
  const out = poisoned(backend, shape);
  await backend.runOp('leaky_relu', [backend.tensor(shape, x)], {}, [out]);
  t.deepEqual(Array.from(out.read()), Array.from(x, (v) => Math.fround(leakyReluRef(v, Math.fround(0.01)))));
  await t.throwsAsync(backend.runOp('leaky_relu', [backend.tensor(shape, x)], { negative_slope: Infinity }, [out]),
    { instanceOf: RangeError, message: /argument 'negative_slope'/ });
});
