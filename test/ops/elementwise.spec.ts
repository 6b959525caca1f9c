import { eachBackend, poisoned } from '../helpers/backends.js';
import { maxScaledError, numel, randn, siluRef } from '../helpers/reference.js';

// Lengths that leave tails after every vector width (1, 4, 8, 16 lanes) and span several work chunks.
const lengths = [1, 7, 61, 1000, 70001];

for (const n of lengths) {
  eachBackend(`silu on ${n} elements`, async (t, backend) => {
    const x = randn(n, n, 0, 6);
    if (n > 10) { x[0] = -100; x[1] = 100; x[2] = -87.5; x[3] = 88.5; x[4] = 0; }
    const out = poisoned(backend, [n]);
    await backend.silu(backend.tensor([n], x), { out });
    const got = out.read() as Float32Array;
    const ref = Array.from(x, siluRef);
    t.true(maxScaledError(got, ref, 1e-6, 1e-5) <= 1, `silu max scaled error ${maxScaledError(got, ref, 1e-6, 1e-5)}`);
  });
}

eachBackend('add, same shape', async (t, backend) => {
  const shape = [2, 3, 5, 7, 11];
  const a = randn(numel(shape), 1);
  const b = randn(numel(shape), 2);
  const out = poisoned(backend, shape);
  await backend.add(backend.tensor(shape, a), backend.tensor(shape, b), { out });
  const got = out.read() as Float32Array;
  t.true(got.every((v, i) => v === Math.fround(a[i] + b[i])));
});

for (const bshape of [[2, 3], [2, 3, 1, 1, 1]]) {
  eachBackend(`add, per-channel broadcast b [${bshape.join(', ')}]`, async (t, backend) => {
    const shape = [2, 3, 4, 5, 3];
    const spatial = 60;
    const a = randn(numel(shape), 3);
    const b = randn(6, 4);
    const out = poisoned(backend, shape);
    await backend.add(backend.tensor(shape, a), backend.tensor(bshape, b), { out });
    const got = out.read() as Float32Array;
    t.true(got.every((v, i) => v === Math.fround(a[i] + b[Math.floor(i / spatial)])));
  });
}

eachBackend('concat along channels keeps order and batch layout', async (t, backend) => {
  const shapes = [[2, 3, 4, 2, 3], [2, 1, 4, 2, 3], [2, 5, 4, 2, 3]];
  const inner = 24;
  const data = shapes.map((s, i) => randn(numel(s), 10 + i));
  const out = poisoned(backend, [2, 9, 4, 2, 3]);
  await backend.concat(shapes.map((s, i) => backend.tensor(s, data[i])), { out });
  const got = out.read() as Float32Array;
  const expected: number[] = [];
  for (let n = 0; n < 2; n++)
    shapes.forEach((s, i) => {
      const block = s[1] * inner;
      expected.push(...data[i].subarray(n * block, (n + 1) * block));
    });
  t.deepEqual(Array.from(got), expected);
});
