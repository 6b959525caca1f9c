/**
 * Resolution randomisation: the resolution / thickness draws (branch frequencies and ranges of SynthSeg's
 * SampleResolution), the acquisition grid, and MimicAcquisition (nearest down, linear up) against numpy.
 */
import test from 'ava';
import type { Triple } from '../../ts/labels/label-volume.js';
import { seededRandom } from '../../ts/random/seeded-random.js';
import {
  acquisitionShape, blurringSigma, drawResolution, mimicAcquisition, simulateResolution,
} from '../../ts/synth/resolution-blur.js';
import { decodeF32, encodeF32, pythonReference, runReference } from '../helpers/python-reference.js';

const { pythonTest } = pythonReference('resolution-blur.spec', ['numpy']);

test('resolution draws: native 5 %, isotropic branch 9.5 %, one axis 85.5 %; values and thickness in range', (t) => {
  const native: Triple = [1.667, 1.75, 1.667];
  const rng = seededRandom(21, 'res-spec');
  const n = 4000;
  const seen = { native: 0, isotropic: 0, 'one-axis': 0 };
  const axes = [0, 0, 0];
  for (let i = 0; i < n; i++) {
    const d = drawResolution(native, rng);
    seen[d.mode]++;
    for (let a = 0; a < 3; a++) {
      t.true(d.thicknessMm[a] >= native[a] && d.thicknessMm[a] <= d.resolutionMm[a]);
      if (d.mode === 'isotropic') t.true(d.resolutionMm[a] >= native[a] && d.resolutionMm[a] < 4);
      else if (d.mode === 'native' || a !== d.axis) t.is(d.resolutionMm[a], native[a]);
      else t.true(d.resolutionMm[a] >= native[a] && d.resolutionMm[a] < 8);
      // Untouched axes get thickness = native exactly, hence SynthSeg's sigma 0.5 there.
      if (d.resolutionMm[a] === native[a]) t.is(blurringSigma(native, d.resolutionMm, d.thicknessMm)[a], 0.5);
    }
    if (d.axis !== null) axes[d.axis]++;
  }
  const near = (count: number, p: number) => Math.abs(count / n - p) < 4 * Math.sqrt(p * (1 - p) / n);
  t.true(near(seen.native, 0.05) && near(seen.isotropic, 0.095) && near(seen['one-axis'], 0.855), JSON.stringify(seen));
  for (const c of axes) t.true(near(c, 0.855 / 3), `one-axis choices per axis ${axes}`);
});

test('acquisition grid: int(n x native / resolution), unchanged at native resolution', (t) => {
  t.deepEqual(acquisitionShape([96, 128, 96], [1.667, 1.75, 1.667], [1.667, 1.75, 1.667]), [96, 128, 96]);
  t.deepEqual(acquisitionShape([96, 128, 96], [1.667, 1.75, 1.667], [1.667, 7, 3.5]), [96, 32, 45]);
  t.deepEqual(acquisitionShape([256, 256, 256], [1, 1, 1], [1, 1, 8]), [256, 256, 32]);
  t.deepEqual(acquisitionShape([5, 5, 5], [1, 1, 1], [1, 1, 80]), [5, 5, 1]);
});

pythonTest('MimicAcquisition equals numpy: nearest at j x n / m (half to even), then linear at j x m / n (clamped)', async (t) => {
  const shape: Triple = [23, 19, 30];
  const low: Triple = [23, 7, 11];
  const src = new Float32Array(23 * 19 * 30).map((_, n) => Math.sin(n * 0.37) + (n % 7) * 0.1);
  const ours = mimicAcquisition(src, shape, low);
  const ref = decodeF32(await runReference<string>(`
v = f32('x').reshape(inp['shape'], order='F').astype(np.float64)
for a, (n, m) in enumerate(zip(inp['shape'], inp['low'])):
    if n == m: continue
    idx = np.clip(np.round(np.arange(m) * n / m), 0, n - 1).astype(int)   # np.round: half to even
    v = np.take(v, idx, axis=a)
    p = np.clip(np.arange(n) * m / n, 0, m - 1)
    i0 = np.floor(p).astype(int); i1 = np.minimum(i0 + 1, m - 1)
    w = (p - i0).reshape([-1 if b == a else 1 for b in range(3)])
    v = (1 - w) * np.take(v, i0, axis=a) + w * np.take(v, i1, axis=a)
out = b64(v.reshape(-1, order='F'))
`, { x: encodeF32(src), shape, low }));
  let maxErr = 0;
  for (let i = 0; i < ours.length; i++) maxErr = Math.max(maxErr, Math.abs(ours[i] - ref[i]));
  t.true(maxErr < 1e-6, `max |ours - numpy| = ${maxErr}`);
  // The untouched axis 0 is copied as is.
  t.deepEqual([...mimicAcquisition(src, shape, shape)], [...src]);
});

test('simulateResolution keeps shape and value range, and reports what it drew', (t) => {
  const shape: Triple = [24, 28, 20];
  const src = new Float32Array(24 * 28 * 20).map((_, n) => ((n * 2654435761) % 1000) / 1000);
  for (let s = 0; s < 12; s++) {
    const { data, resolution } = simulateResolution(src, shape, [1.5, 1.5, 2], seededRandom(s, 'sim'));
    t.is(data.length, src.length);
    let lo = Infinity;
    let hi = -Infinity;
    for (const v of data) { lo = Math.min(lo, v); hi = Math.max(hi, v); }
    t.true(lo >= 0 && hi <= 1, `[${lo}, ${hi}]`);
    t.deepEqual(resolution.acquisitionShape, acquisitionShape(shape, [1.5, 1.5, 2], resolution.resolutionMm));
    // Window from the largest sigma 0.75 x 8 mm / native: 4 -> int(ceil(10) / 2) = 5 at 1.5 mm, 3 -> 4 at 2 mm.
    t.deepEqual(resolution.kernelRadius, [5, 5, 4]);
    for (let a = 0; a < 3; a++) {
      const ratio = resolution.sigma[a] / resolution.sigmaRule[a];
      t.true(ratio >= 1 / 1.03 && ratio <= 1.03, `blur jitter ${ratio}`);
    }
  }
});
