/**
 * Blur and SynthSeg's sigma rule: the kernel window rule, blurring_sigma_for_downsampling's cases, the 3D blur of an
 * impulse against MONAI's sampled Gaussian + separable_filtering (zero padding), a step edge against the closed form,
 * and the impulse response's spread equal to the sigma the rule gives for a simulated slice thickness and spacing.
 */
import test from 'ava';
import type { Triple } from '../../ts/labels/label-volume.js';
import { gaussianBlur, gaussianKernel1d, synthSegKernelRadius } from '../../ts/synth/gaussian-blur.js';
import { blurringSigma } from '../../ts/synth/resolution-blur.js';
import { decodeF32, encodeF32, pythonReference, runReference } from '../helpers/python-reference.js';

const { pythonTest } = pythonReference('gaussian-blur.spec', ['numpy', 'torch', 'monai']);

function impulse(shape: Triple, at: Triple): Float32Array {
  const v = new Float32Array(shape[0] * shape[1] * shape[2]);
  v[at[0] + shape[0] * (at[1] + shape[1] * at[2])] = 1;
  return v;
}

test('window half-width is SynthSeg\'s int(ceil(2.5 max_sigma) / 2)', (t) => {
  // 1 mm maps, 8 mm largest resolution: max_sigma 6 -> window 15. Thesis spacing 1.667 mm: 3.6 -> 9.
  t.is(synthSegKernelRadius(6), 7);
  t.is(synthSegKernelRadius(0.75 * 8 / 1.667), 4);
  t.is(synthSegKernelRadius(0.5), 1);
  t.is(synthSegKernelRadius(0.4), 0);
  t.is(synthSegKernelRadius(0), 0);
  t.throws(() => synthSegKernelRadius(-1), { message: /maxSigma must be a finite number >= 0, got -1/ });
});

test('blurring sigma: 0.75 x min(resolution, thickness) / native, 0.5 at native resolution, 0 at 0', (t) => {
  t.deepEqual(blurringSigma([1, 1, 1], [1, 1, 1], [1, 1, 1]), [0.5, 0.5, 0.5]);
  t.deepEqual(blurringSigma([1, 1, 1], [1, 1, 5], [1, 1, 3]), [0.5, 0.5, 0.75 * 3]);
  t.deepEqual(blurringSigma([1, 1, 1], [1, 1, 5], [1, 1, 6]), [0.5, 0.5, 0.75 * 5]);
  t.deepEqual(blurringSigma([1.667, 1.75, 1.667], [4, 1.75, 2], [3, 1.75, 2]), [0.75 * 3 / 1.667, 0.5, 0.75 * 2 / 1.667]);
  t.deepEqual(blurringSigma([1, 1, 1], [3, 2, 1]), [2.25, 1.5, 0.5]);
  t.deepEqual(blurringSigma([1, 1, 1], [0, 2, 1]), [0, 1.5, 0.5]);
});

test('kernel: sampled Gaussian normalised to 1, symmetric; sigma 0 or radius 0 is the identity', (t) => {
  const k = gaussianKernel1d(1.3, 4);
  t.is(k.length, 9);
  t.true(Math.abs(k.reduce((a, b) => a + b, 0) - 1) < 1e-15);
  for (let x = -4; x <= 4; x++) {
    t.is(k[x + 4], k[4 - x]);
    t.true(Math.abs(k[x + 4] / k[4] - Math.exp(-(x * x) / (2 * 1.3 * 1.3))) < 1e-15);
  }
  t.deepEqual([...gaussianKernel1d(0, 5)], [1]);
  t.deepEqual([...gaussianKernel1d(2, 0)], [1]);
  t.throws(() => gaussianKernel1d(Number.NaN, 1), { message: /sigma must be a finite number >= 0/ });
});

pythonTest('3D blur of an impulse next to a border equals MONAI gaussian_1d (sampled) + separable_filtering (zeros)', async (t) => {
  const shape: Triple = [21, 17, 13];
  const sigma: Triple = [1.9, 0.7, 2.6];
  const radius: Triple = [7, 3, 4];
  const src = impulse(shape, [3, 8, 10]); // near the x = 0 and z = 12 faces: zero padding shows
  const ours = gaussianBlur(src, shape, sigma, radius);
  const ref = decodeF32(await runReference<string>(`
import torch
from monai.networks.layers.convutils import gaussian_1d
from monai.networks.layers.simplelayers import separable_filtering
shape, sigma, radius = inp['shape'], inp['sigma'], inp['radius']
x = torch.from_numpy(f32('x').reshape(shape, order='F').astype(np.float64))[None, None]
kernels = [gaussian_1d(torch.tensor(s, dtype=torch.float64), truncated=r / s, approx='sampled', normalize=True) for s, r in zip(sigma, radius)]
assert [len(k) for k in kernels] == [2 * r + 1 for r in radius]
y = separable_filtering(x, kernels, mode='zeros')[0, 0].numpy()
out = b64(y.reshape(-1, order='F'))
`, { x: encodeF32(src), shape, sigma, radius }));
  t.is(ref.length, ours.length);
  let maxErr = 0;
  let sum = 0;
  for (let i = 0; i < ours.length; i++) { maxErr = Math.max(maxErr, Math.abs(ours[i] - ref[i])); sum += ours[i]; }
  t.true(maxErr < 1e-7, `max |ours - MONAI| = ${maxErr}`);
  // Zero padding: the mass falling past the faces is lost, not renormalised.
  const inside = (s: number, r: number, at: number, n: number) => {
    let m = 0;
    for (let d = -r; d <= r; d++) if (at + d >= 0 && at + d < n) m += Math.exp(-(d * d) / (2 * s * s));
    let all = 0;
    for (let d = -r; d <= r; d++) all += Math.exp(-(d * d) / (2 * s * s));
    return m / all;
  };
  const expectedMass = inside(1.9, 7, 3, 21) * inside(0.7, 3, 8, 17) * inside(2.6, 4, 10, 13);
  t.true(expectedMass < 0.9);
  t.true(Math.abs(sum - expectedMass) < 1e-6, `impulse mass after blur ${sum} vs ${expectedMass}`);
});

test('a step edge blurs to the cumulative kernel (closed form), flat far from the edge', (t) => {
  const shape: Triple = [40, 3, 2];
  const src = new Float32Array(240);
  for (let n = 0; n < 240; n++) if (n % 40 >= 20) src[n] = 1;
  const sigma = 2.2;
  const r = 6;
  const out = gaussianBlur(src, shape, [sigma, 0, 0], [r, 0, 0]);
  const k = gaussianKernel1d(sigma, r);
  for (let i = 8; i < 32; i++) {
    // out[i] = sum of k[t + r] over t with i + t >= 20 (inside the step) and i + t < 40 (inside the volume).
    let expected = 0;
    for (let d = -r; d <= r; d++) if (i + d >= 20 && i + d < 40) expected += k[d + r];
    for (let row = 0; row < 6; row++) t.true(Math.abs(out[row * 40 + i] - expected) < 1e-6, `x ${i}: ${out[row * 40 + i]} vs ${expected}`);
  }
  t.true(Math.abs(out[10]) < 1e-7);
  t.true(Math.abs(out[27] - 1) < 1e-6);
});

test('impulse response spread equals the sigma rule for a 5 mm x 3 mm-thick acquisition on 1 mm and 1.667 mm grids', (t) => {
  for (const native of [1, 1.667]) {
    const nativeMm: Triple = [native, native, native];
    const sigma = blurringSigma(nativeMm, [native, 5, native], [native, 3, native]);
    t.deepEqual(sigma, [0.5, 0.75 * 3 / native, 0.5]);
    // A window wide enough (radius 5 sigma) that truncation does not bias the second moment.
    const radius = sigma.map((s) => Math.ceil(5 * s)) as Triple;
    const shape: Triple = [25, 41, 25];
    const out = gaussianBlur(impulse(shape, [12, 20, 12]), shape, sigma, radius);
    for (let a = 0; a < 3; a++) {
      let m2 = 0;
      let mass = 0;
      for (let n = 0; n < out.length; n++) {
        const idx = [n % 25, Math.floor(n / 25) % 41, Math.floor(n / (25 * 41))][a];
        const d = idx - [12, 20, 12][a];
        m2 += out[n] * d * d;
        mass += out[n];
      }
      const spread = Math.sqrt(m2 / mass);
      if (a === 1) {
        // A sampled Gaussian's variance is sigma^2 up to ~exp(-2 pi^2 sigma^2) (Poisson summation): < 1e-8 here.
        t.true(Math.abs(spread - sigma[a]) < 1e-6, `thick axis: spread ${spread} vs sigma ${sigma[a]}`);
      } else {
        // sigma 0.5 is too narrow for that: its variance is sum x^2 g(x) / sum g(x) over the taps x = -3..3 (0.4615^2).
        const e = (x: number) => Math.exp(-(x * x) / (2 * 0.25));
        const v = (2 * e(1) + 8 * e(2) + 18 * e(3)) / (1 + 2 * e(1) + 2 * e(2) + 2 * e(3));
        t.true(Math.abs(spread - Math.sqrt(v)) < 1e-6, `axis ${a}: spread ${spread} vs ${Math.sqrt(v)}`);
      }
    }
  }
});
