import { eachBackend, poisoned } from '../helpers/backends.js';
import { geluRef, maxScaledError, randn } from '../helpers/reference.js';

// Exact-erf GELU against a float64 erfc reference to 2e-6 relative on every element (absolute
// 1e-36 only where the true value is below the float range, |x| > 13.2).
function sweep(): Float32Array {
  const grid = Array.from({ length: 26001 }, (_, i) => -13 + i * 0.001);  // both tails and the branch switch at |x| = 1
  const special = [0, -0, 1, -1, Math.SQRT2, -Math.SQRT2, 0.9999999, -1.0000001, 5.5, -5.5, 8, -8, 13.1, -13.1, 13.5, -13.5, 20, -20, 1e-30, -1e-30, 3.4e38, -3.4e38];
  return Float32Array.from([...grid, ...special, ...randn(4099, 77, 0, 3)]);
}

eachBackend('gelu matches the float64 erf reference to 2e-6 relative', async (t, backend) => {
  const x = sweep();
  const out = poisoned(backend, [x.length]);
  await backend.runOp('gelu', [backend.tensor([x.length], x)], {}, [out]);
  const got = out.read() as Float32Array;
  const ref = Array.from(x, geluRef);
  const worst = maxScaledError(got, ref, 1e-36, 2e-6);
  t.true(worst <= 1, `max scaled error ${worst}`);
});

eachBackend('gelu of odd lengths (vector tails) equals its vector body bit for bit', async (t, backend) => {
  for (const n of [1, 3, 7, 13, 61]) {
    const x = randn(n, n, 0, 2);
    const out = poisoned(backend, [n]);
    await backend.runOp('gelu', [backend.tensor([n], x)], {}, [out]);
    const long = new Float32Array(64 * n);
    for (let k = 0; k < 64; k++) long.set(x, k * n);
    const outLong = poisoned(backend, [long.length]);
    await backend.runOp('gelu', [backend.tensor([long.length], long)], {}, [outLong]);
    const a = out.read() as Float32Array;
    const b = (outLong.read() as Float32Array).subarray(0, n);
    t.deepEqual(Array.from(a), Array.from(b), `n = ${n}`);
  }
});

eachBackend('gelu of infinities and NaN follows x * Phi(x)', async (t, backend) => {
  const x = Float32Array.from([Infinity, -Infinity, NaN]);
  const out = poisoned(backend, [3]);
  await backend.runOp('gelu', [backend.tensor([3], x)], {}, [out]);
  const [pinf, ninf, nan] = out.read() as Float32Array;
  t.is(pinf, Infinity);
  t.true(Number.isNaN(ninf));  // -inf * 0, as torch
  t.true(Number.isNaN(nan));
});
