import { eachBackend, poisoned } from '../helpers/backends.js';
import { groupNormRef, maxScaledError, numel, randn, relL2 } from '../helpers/reference.js';

const cases = [
  { title: 'affine, eps 1e-6 (MONAI autoencoder)', shape: [2, 8, 5, 6, 7], groups: 4, eps: 1e-6, affine: true, silu: false },
  { title: 'non-affine, eps 1e-5 (SPADE param-free norm)', shape: [1, 12, 4, 5, 3], groups: 3, eps: 1e-5, affine: false, silu: false },
  { title: 'affine + fused SiLU', shape: [1, 64, 6, 6, 6], groups: 32, eps: 1e-6, affine: true, silu: true },
  { title: 'one group per channel, 2-d input [N, C]', shape: [3, 5], groups: 5, eps: 1e-5, affine: true, silu: false },
];

cases.forEach((c, i) => {
  eachBackend(`groupNorm ${c.title}`, async (t, backend) => {
    // A large common offset checks the variance is computed stably.
    const x = randn(numel(c.shape), 40 + i, 3, 2);
    const gamma = c.affine ? randn(c.shape[1], 50 + i, 1, 0.5) : null;
    const beta = c.affine ? randn(c.shape[1], 60 + i) : null;
    const ref = groupNormRef(x, c.shape, c.groups, c.eps, gamma, beta, c.silu);
    const out = poisoned(backend, c.shape);
    await backend.groupNorm(backend.tensor(c.shape, x), {
      groups: c.groups, eps: c.eps, silu: c.silu, out,
      weight: gamma ? backend.tensor([c.shape[1]], gamma) : null,
      bias: beta ? backend.tensor([c.shape[1]], beta) : null,
    });
    const got = out.read() as Float32Array;
    const err = relL2(got, ref);
    t.true(err <= 1e-5, `relative L2 error ${err}`);
    t.true(maxScaledError(got, ref, 1e-5, 1e-4) <= 1);
  });
});

eachBackend('groupNorm of a constant group is finite (variance 0 + eps)', async (t, backend) => {
  const shape = [1, 4, 3, 3, 3];
  const x = new Float32Array(numel(shape)).fill(2.5);
  const y = await backend.groupNorm(backend.tensor(shape, x), { groups: 2 });
  t.true((y.read() as Float32Array).every((v) => v === 0));
});
