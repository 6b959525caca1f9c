/**
 * SynthSeg-style spatial augmentation: the flip swaps left/right labels and mirrors the left-right voxel axis exactly
 * (twice is the identity), zero strength is the identity, the same stream gives the same bytes, drawn parameters stay
 * in SynthSeg's ranges, and label volumes change as the parameters say (1 / det T for the affine part, within the
 * Jacobian range for the elastic part, checked against numpy).
 */
import test from 'ava';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { applySpatialAugmentation, drawSpatialAugmentation, flipLeftRight, leftRightAxis, spatialDeformationField } from '../../ts/augment/spatial-augmentation.js';
import { applyAffine, det3, invert3 } from '../../ts/io/nifti.js';
import { countLabels, labelCounts, type Volume } from '../../ts/labels/label-volume.js';
import { LEFT_RIGHT_PAIRS } from '../../ts/labels/synthseg-labels.js';
import { seededRandom } from '../../ts/random/seeded-random.js';
import { pythonGate, referenceJacobian } from './label-reference.js';
import { IPL_3, IPL_SHAPE, RAS_2P5, RAS_SHAPE, syntheticBrain } from './synthetic-brain.js';

const { pythonTest: pyTest } = pythonGate('spatial-augmentation.spec');
const dir = mkdtempSync(join(tmpdir(), 'brain-ldm-spatial-'));
const ras = syntheticBrain(RAS_SHAPE, RAS_2P5);
const ipl = syntheticBrain(IPL_SHAPE, IPL_3);
const PARTNER = new Map<number, number>(LEFT_RIGHT_PAIRS.flatMap(([l, r]) => [[l, r], [r, l]] as Array<[number, number]>));

test('flip: the left-right voxel axis is found from the affine (RAS: 0, IPL: 2)', (t) => {
  t.is(leftRightAxis(ras), 0);
  t.is(leftRightAxis(ipl), 2);
});

for (const [name, v] of [['RAS', ras], ['IPL', ipl]] as const) {
  test(`flip (${name}): voxel (i, j, k) takes the partner label of its mirror voxel; flipping twice gives the input back`, (t) => {
    const f = flipLeftRight(v);
    const axis = leftRightAxis(v);
    const [nx, ny, nz] = v.shape;
    let mismatches = 0;
    for (let k = 0; k < nz; k++) for (let j = 0; j < ny; j++) for (let i = 0; i < nx; i++) {
      const m = [i, j, k];
      m[axis] = v.shape[axis] - 1 - m[axis];
      const src = v.data[m[0] + nx * (m[1] + ny * m[2])];
      if (f.data[i + nx * (j + ny * k)] !== (PARTNER.get(src) ?? src)) mismatches++;
    }
    t.is(mismatches, 0);
    t.deepEqual(f.affine, v.affine);
    for (const [l, r] of LEFT_RIGHT_PAIRS) t.is(countLabels(f, [l]), countLabels(v, [r]), `label ${l} takes the volume of ${r}`);
    t.deepEqual(flipLeftRight(f).data, v.data);
  });
}

test('zero strength is the identity; so is switching affine and elastic off', (t) => {
  const zero = { scalingBounds: 0, rotationBoundsDeg: 0, shearingBounds: 0, nonlinStdMm: 0, flipProbability: 0 };
  const p = drawSpatialAugmentation(seededRandom(3, 'zero'), ras, zero);
  t.is(spatialDeformationField(ras, p), null);
  t.deepEqual(applySpatialAugmentation(ras, p).volume.data, ras.data);
  const off = drawSpatialAugmentation(seededRandom(3, 'off'), ras, { affine: false, elastic: false, flipProbability: 0 });
  t.deepEqual(applySpatialAugmentation(ras, off).volume.data, ras.data);
});

test('the same stream gives the same bytes, another stream other bytes; switching a part off keeps the other draws', (t) => {
  const a = applySpatialAugmentation(ras, drawSpatialAugmentation(seededRandom(11, 'map', 0), ras));
  const b = applySpatialAugmentation(ras, drawSpatialAugmentation(seededRandom(11, 'map', 0), ras));
  const c = applySpatialAugmentation(ras, drawSpatialAugmentation(seededRandom(11, 'map', 1), ras));
  t.deepEqual(a.volume.data, b.volume.data);
  t.notDeepEqual(a.volume.data, c.volume.data);
  const on = drawSpatialAugmentation(seededRandom(5, 's'), ras);
  const noAffine = drawSpatialAugmentation(seededRandom(5, 's'), ras, { affine: false });
  t.deepEqual(noAffine.svfMm, on.svfMm);
  t.is(noAffine.flip, on.flip);
  t.false(noAffine.affine);
});

test('drawn parameters stay in SynthSeg ranges; the flip comes up about half the time', (t) => {
  let flips = 0;
  const n = 200;
  for (let s = 0; s < n; s++) {
    const p = drawSpatialAugmentation(seededRandom(s, 'ranges'), ipl);
    t.true(p.scaling.every((v) => v >= 0.8 && v < 1.2));
    t.true(p.rotationDeg.every((v) => v >= -15 && v < 15));
    t.true(p.shearing.length === 6 && p.shearing.every((v) => v >= -0.012 && v < 0.012));
    t.deepEqual(p.translationMm, [0, 0, 0]);
    t.true(p.nonlinStdMm >= 0 && p.nonlinStdMm < 4);
    // 0.04 control points per mm over the grid's extent (43 x 55 x 45 voxels of 3 mm).
    t.deepEqual(p.svfShape, [6, 7, 6]);
    if (p.flip) flips++;
  }
  t.true(flips > 0.35 * n && flips < 0.65 * n, `${flips} flips in ${n}`);
});

/** Labels with at least `min` voxels: volumes of small ones are dominated by the boundary resampling. */
function bigLabels(v: Volume, min: number): number[] {
  return [...labelCounts(v)].filter(([l, c]) => l !== 0 && c >= min).map(([l]) => l);
}

test('affine only: each large label changes volume by 1 / det T (within 3%), det T within the scaling bounds', (t) => {
  // A grid with room around the head, so the grown anatomy stays inside.
  const roomy = syntheticBrain([73, 85, 71], [[2.5, 0, 0, -90], [0, 2.5, 0, -105], [0, 0, 2.5, -87.5], [0, 0, 0, 1]]);
  for (let s = 0; s < 4; s++) {
    const p = drawSpatialAugmentation(seededRandom(s, 'affine-volume'), roomy, { elastic: false, flipProbability: 0 });
    const r = applySpatialAugmentation(roomy, p);
    const det = det3(p.matrix);
    t.is(r.affineDeterminant, det);
    t.true(det > 0.8 ** 3 * 0.99 && det < 1.2 ** 3 * 1.01, `det ${det}`);
    for (const l of bigLabels(roomy, 5000)) {
      const ratio = countLabels(r.volume, [l]) / countLabels(roomy, [l]);
      t.true(Math.abs(ratio * det - 1) < 0.03, `stream ${s}, label ${l}: volume x${ratio.toFixed(4)}, 1 / det T = ${(1 / det).toFixed(4)}`);
    }
  }
});

pyTest('elastic only: positive Jacobian everywhere (numpy agrees); large labels change volume within the Jacobian range', async (t) => {
  for (let s = 0; s < 3; s++) {
    // The largest elastic strength SynthSeg draws (sigma = 4 mm) is the hardest case.
    const p = drawSpatialAugmentation(seededRandom(s, 'elastic'), ras, { affine: false, flipProbability: 0, nonlinStdMm: 4 });
    const field = spatialDeformationField(ras, p)!;
    const ref = await referenceJacobian(field, join(dir, `elastic${s}.f32`));
    t.is(ref.nonPositive, 0, `stream ${s}: min det ${ref.min}`);
    const r = applySpatialAugmentation(ras, p);
    t.true(Math.abs(r.minJacobian - ref.min) < 1e-4 && Math.abs(r.maxJacobian - ref.max) < 1e-4, `ours [${r.minJacobian}, ${r.maxJacobian}] numpy [${ref.min}, ${ref.max}]`);
    for (const l of bigLabels(ras, 5000)) {
      const ratio = countLabels(r.volume, [l]) / countLabels(ras, [l]);
      t.true(ratio >= 0.97 / ref.max && ratio <= 1.03 / ref.min, `stream ${s}, label ${l}: x${ratio.toFixed(3)} outside [1/${ref.max.toFixed(3)}, 1/${ref.min.toFixed(3)}]`);
    }
  }
});

test('bad options name the option and the range', (t) => {
  t.throws(() => drawSpatialAugmentation(seededRandom(1), ras, { scalingBounds: 1.5 }), { message: /option 'scalingBounds' must be in \[0, 1\), got 1\.5/ });
  t.throws(() => drawSpatialAugmentation(seededRandom(1), ras, { flipProbability: 2 }), { message: /option 'flipProbability' must be a probability in \[0, 1\], got 2/ });
  t.throws(() => flipLeftRight({ ...ras, data: ras.data.map((v) => (v === 2 ? 99 : v)) }), { message: /flipLeftRight: voxel \d+ has value 99, which is not one of the 33 SynthSeg labels/ });
});

/** World (mm) centroid of a label. */
function centroid(v: Volume, label: number): number[] {
  const s = [0, 0, 0];
  let c = 0;
  const [nx, ny, nz] = v.shape;
  let n = 0;
  for (let k = 0; k < nz; k++) for (let j = 0; j < ny; j++) for (let i = 0; i < nx; i++, n++) {
    if (v.data[n] !== label) continue;
    const w = applyAffine(v.affine, [i, j, k]);
    for (let a = 0; a < 3; a++) s[a] += w[a];
    c++;
  }
  return s.map((x) => x / c);
}

test('affine only, on the IPL grid: label centroids move to c + T^-1 (x - c) in world mm (output p reads input c + T (p - c))', (t) => {
  const p = drawSpatialAugmentation(seededRandom(21, 'centroids'), ipl, { elastic: false, flipProbability: 0, scalingBounds: 0.1 });
  const r = applySpatialAugmentation(ipl, p);
  const c = applyAffine(ipl.affine, ipl.shape.map((n) => (n - 1) / 2));
  const inv = invert3(p.matrix);
  for (const l of [4, 43, 10, 49, 8, 47]) {
    const before = centroid(ipl, l).map((x, a) => x - c[a]);
    const expected = [0, 1, 2].map((a) => c[a] + inv[a][0] * before[0] + inv[a][1] * before[1] + inv[a][2] * before[2]);
    const got = centroid(r.volume, l);
    const err = Math.hypot(...got.map((g, a) => g - expected[a]));
    t.true(err < 1, `label ${l}: centroid ${got.map((g) => g.toFixed(1))} vs expected ${expected.map((g) => g.toFixed(1))} (${err.toFixed(2)} mm)`);
  }
});
