import { eachBackend, poisoned } from '../helpers/backends.js';
import { maxScaledError, randn } from '../helpers/reference.js';

eachBackend('exp_scaled: sigma = exp(logvar / 2) over [-30, 20] and random data', async (t, backend) => {
  const n = 4099;
  const x = randn(n, 31, -5, 12);
  for (let i = 0; i < 101; i++) x[i] = -30 + i * 0.5;
  const out = poisoned(backend, [n]);
  await backend.runOp('exp_scaled', [backend.tensor([n], x)], { factor: 0.5 }, [out]);
  const got = out.read() as Float32Array;
  const ref = Array.from(x, (v) => Math.exp(Math.fround(v * 0.5)));
  t.true(maxScaledError(got, ref, 0, 3e-7) <= 1, `max scaled error ${maxScaledError(got, ref, 0, 3e-7)}`);
});

eachBackend('exp_scaled covers the whole float range: overflow, gradual underflow, NaN', async (t, backend) => {
  const x = Float32Array.from([88.5, 88.7, 88.73, 89, 1000, Infinity, -87.5, -90, -100, -103.5, -104, -110, -Infinity, NaN, 0, -0]);
  const out = poisoned(backend, [x.length]);
  await backend.runOp('exp_scaled', [backend.tensor([x.length], x)], { factor: 1 }, [out]);
  const got = out.read() as Float32Array;
  const ref = Array.from(x, (v) => Math.fround(Math.exp(v)));
  got.forEach((g, i) => {
    const r = ref[i];
    if (Number.isNaN(r)) t.true(Number.isNaN(g), `exp(${x[i]})`);
    else if (!Number.isFinite(r) || r === 0) t.is(g, r, `exp(${x[i]})`);
    else t.true(Math.abs(g - r) <= 3e-7 * r + 2 ** -149, `exp(${x[i]}) = ${g}, expected ${r}`);
  });
});
