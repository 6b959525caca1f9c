/**
 * Bias field: grid shape ceil(shape x 0.025), std ~ U(0, maxStd), applied with probability 0.95; the field is
 * positive, bounded by exp(min grid) and exp(max grid), equals exp(grid value) on the grid nodes, is linear between
 * them (trilinear against numpy's own interpolation of the grid) and changes slowly from voxel to voxel.
 */
import test from 'ava';
import type { Triple } from '../../ts/labels/label-volume.js';
import { seededRandom } from '../../ts/random/seeded-random.js';
import { biasGridShape, drawBiasField, BIAS_FIELD_DEFAULTS } from '../../ts/synth/bias-field.js';
import { decodeF32, encodeF32, pythonReference, runReference } from '../helpers/python-reference.js';

const { pythonTest } = pythonReference('bias-field.spec', ['numpy']);

test('grid shape is ceil(shape x 0.025): 96x128x96 -> 3x4x3, 256^3 -> 7^3, 160^3 -> 4^3', (t) => {
  t.deepEqual(biasGridShape([96, 128, 96], 0.025), [3, 4, 3]);
  t.deepEqual(biasGridShape([256, 256, 256], 0.025), [7, 7, 7]);
  t.deepEqual(biasGridShape([160, 160, 160], 0.025), [4, 4, 4]);
  t.deepEqual(biasGridShape([10, 1, 30], 0.025), [1, 1, 1]);
  t.deepEqual(BIAS_FIELD_DEFAULTS, { maxStd: 0.7, shapeFactor: 0.025, probability: 0.95 });
});

test('field is positive, within [exp(min grid), exp(max grid)], exp(grid) on the nodes, and smooth', (t) => {
  const shape: Triple = [96, 128, 96];
  const b = drawBiasField(shape, seededRandom(11, 'bias-spec'), { probability: 1 });
  t.true(b.applied);
  const f = b.field!;
  t.is(f.length, 96 * 128 * 96);
  const lo = Math.min(...b.grid);
  const hi = Math.max(...b.grid);
  t.true(hi - lo > 0.05, 'a non-trivial draw');
  let fmin = Infinity;
  let fmax = -Infinity;
  for (const v of f) { fmin = Math.min(fmin, v); fmax = Math.max(fmax, v); }
  t.true(fmin > 0);
  t.true(fmin >= Math.exp(lo) * (1 - 1e-6) && fmax <= Math.exp(hi) * (1 + 1e-6), `field [${fmin}, ${fmax}] vs [${Math.exp(lo)}, ${Math.exp(hi)}]`);
  // Node (gi, gj, gk) sits at voxel g x n / gridN when that is a whole number (neuron Resize: position j x gridN / n).
  const [gx, gy, gz] = b.gridShape;
  for (const [i, gi] of [[0, 0], [32, 1], [64, 2]]) for (const [j, gj] of [[0, 0], [32, 1], [64, 2], [96, 3]]) for (const [k, gk] of [[0, 0], [64, 2]]) {
    const node = b.grid[gi + gx * (gj + gy * gk)];
    t.true(Math.abs(Math.log(f[i + 96 * (j + 128 * k)]) - node) < 1e-5, `node ${gi},${gj},${gk}`);
  }
  // Log field steps between neighbours are bounded by the largest grid step times gridN / n on that axis.
  let maxGridStep = 0;
  for (let k = 0; k < gz; k++) for (let j = 0; j < gy; j++) for (let i = 0; i < gx; i++) {
    const v = b.grid[i + gx * (j + gy * k)];
    if (i + 1 < gx) maxGridStep = Math.max(maxGridStep, Math.abs(b.grid[i + 1 + gx * (j + gy * k)] - v));
    if (j + 1 < gy) maxGridStep = Math.max(maxGridStep, Math.abs(b.grid[i + gx * (j + 1 + gy * k)] - v));
    if (k + 1 < gz) maxGridStep = Math.max(maxGridStep, Math.abs(b.grid[i + gx * (j + gy * (k + 1))] - v));
  }
  let maxStep = 0;
  for (let k = 0; k < 96; k++) for (let j = 0; j < 128; j++) for (let i = 0; i + 1 < 96; i++) {
    const n = i + 96 * (j + 128 * k);
    maxStep = Math.max(maxStep, Math.abs(Math.log(f[n + 1]) - Math.log(f[n])));
  }
  t.true(maxStep <= maxGridStep * (3 / 96) + 1e-5, `largest voxel step ${maxStep} vs grid bound ${maxGridStep * 3 / 96}`);
});

pythonTest('upsampled log field equals numpy trilinear interpolation at positions j x gridN / n (clamped)', async (t) => {
  const shape: Triple = [20, 24, 28];
  const b = drawBiasField(shape, seededRandom(12, 'bias-spec'), { probability: 1, shapeFactor: 0.15 });
  t.deepEqual(b.gridShape, [3, 4, 5]);
  const ref = decodeF32(await runReference<string>(`
g = f32('grid').reshape(inp['grid_shape'], order='F').astype(np.float64)
def axis_weights(n_out, n_in):
    p = np.clip(np.arange(n_out) * n_in / n_out, 0, n_in - 1)
    i0 = np.floor(p).astype(int); i1 = np.minimum(i0 + 1, n_in - 1); w = p - i0
    m = np.zeros((n_out, n_in)); m[np.arange(n_out), i0] += 1 - w; m[np.arange(n_out), i1] += w
    return m
mx, my, mz = (axis_weights(o, i) for o, i in zip(inp['shape'], inp['grid_shape']))
field = np.exp(np.einsum('ai,bj,ck,ijk->abc', mx, my, mz, g))
out = b64(field.reshape(-1, order='F'))
`, { grid: encodeF32(b.grid), grid_shape: b.gridShape, shape }));
  let maxRel = 0;
  for (let i = 0; i < ref.length; i++) maxRel = Math.max(maxRel, Math.abs(b.field![i] / ref[i] - 1));
  t.true(maxRel < 1e-6, `max relative difference ${maxRel}`);
});

test('std ~ U(0, maxStd) and the field is applied in 95 % of draws; same stream, same field', (t) => {
  const rng = seededRandom(13, 'bias-spec', 'many');
  const n = 3000;
  let applied = 0;
  let stdSum = 0;
  for (let i = 0; i < n; i++) {
    const b = drawBiasField([8, 8, 8], rng, { maxStd: 0.7, shapeFactor: 0.5 });
    t.true(b.std >= 0 && b.std < 0.7);
    stdSum += b.std;
    if (b.applied) applied++;
    t.is(b.field === null, !b.applied);
  }
  t.true(Math.abs(stdSum / n - 0.35) < 4 * 0.7 / Math.sqrt(12 * n), `mean std ${stdSum / n}`);
  t.true(Math.abs(applied / n - 0.95) < 4 * Math.sqrt(0.95 * 0.05 / n), `applied ${applied} of ${n}`);
  const a = drawBiasField([30, 20, 10], seededRandom(5, 'same'), { probability: 1 });
  const b = drawBiasField([30, 20, 10], seededRandom(5, 'same'), { probability: 1 });
  t.deepEqual(Buffer.from(a.field!.buffer), Buffer.from(b.field!.buffer));
  t.throws(() => drawBiasField([4, 4, 4], rng, { maxStd: -1 }), { message: /option 'maxStd' must be a number in \[0, 10\], got -1/ });
});
