/**
 * The whole synthesizer: seeded determinism (same seed same bytes), output float32 in [0, 1] on the label map's
 * geometry, per-label mean and std equal to the drawn GMM once the normalisation is undone (bias, gamma and blur off),
 * step independence of the random streams, and T1 contrast (WM > GM > ventricles) on real SynthSeg maps.
 */
import test from 'ava';
import { prepareLabelMap, THESIS_GRID } from '../../ts/labels/prepare-label-maps.js';
import type { LabelVolume } from '../../ts/labels/label-volume.js';
import { synthesizeImage } from '../../ts/synth/synthesize-image.js';
import { KERAS_EPSILON } from '../../ts/synth/intensity-augmentation.js';
import { sharedData } from '../helpers/shared-data.js';

const { dataTest, dataPath } = sharedData('synthesize-image.spec');

const AFFINE = [[-1.667, 0, 0, 80], [0, 0, 1.75, -110], [0, -1.667, 0, 90], [0, 0, 0, 1]];

/** A small brain-like map: WM core, cortex shell, ventricles, CSF and background; 33-label values. */
function phantom(): LabelVolume {
  const shape: [number, number, number] = [40, 48, 36];
  const data = new Uint8Array(40 * 48 * 36);
  for (let k = 0; k < 36; k++) for (let j = 0; j < 48; j++) for (let i = 0; i < 40; i++) {
    const x = (i - 19.5) / 17, y = (j - 23.5) / 21, z = (k - 17.5) / 15;
    const r = Math.hypot(x, y, z);
    let v = 0;
    if (r < 1) v = 24;
    if (r < 0.9) v = x > 0 ? 3 : 42;
    if (r < 0.75) v = x > 0 ? 2 : 41;
    if (Math.hypot(x - 0.2, y, z) < 0.25) v = 4;
    if (Math.hypot(x + 0.2, y, z) < 0.25) v = 43;
    if (Math.abs(x) < 0.05 && Math.abs(y) < 0.3 && Math.abs(z) < 0.2) v = 14;
    data[i + 40 * (j + 48 * k)] = v;
  }
  return { data, shape, affine: AFFINE };
}

function groupMean(labels: LabelVolume, image: Float32Array, group: readonly number[]): number {
  let s = 0;
  let c = 0;
  for (let i = 0; i < image.length; i++) if (group.includes(labels.data[i])) { s += image[i]; c++; }
  return s / c;
}

test('same seed and key give identical bytes; another seed, key or contrast gives another image', (t) => {
  const map = phantom();
  const a = synthesizeImage(map, 42, ['phantom', 0]);
  const b = synthesizeImage(map, 42, ['phantom', 0]);
  t.deepEqual(Buffer.from(a.image.data.buffer), Buffer.from(b.image.data.buffer));
  t.deepEqual(a.parameters, b.parameters);
  for (const [seed, key, contrast] of [[43, 0, 't1'], [42, 1, 't1'], [42, 0, 'random']] as const) {
    const c = synthesizeImage(map, seed, ['phantom', key], { contrast });
    t.notDeepEqual(Buffer.from(c.image.data.buffer), Buffer.from(a.image.data.buffer), `${seed} ${key} ${contrast}`);
  }
});

test('output: float32 in [0, 1] reaching 0 and 1, the label map\'s shape and affine (a copy)', (t) => {
  const map = phantom();
  for (const contrast of ['t1', 'random'] as const) for (let s = 0; s < 6; s++) {
    const { image, parameters } = synthesizeImage(map, s, ['phantom', s], { contrast });
    t.true(image.data instanceof Float32Array);
    t.deepEqual(image.shape, map.shape);
    t.deepEqual(image.affine, map.affine);
    t.not(image.affine, map.affine);
    let lo = Infinity;
    let hi = -Infinity;
    for (const v of image.data) { lo = Math.min(lo, v); hi = Math.max(hi, v); }
    t.is(lo, 0);
    t.is(hi, 1);
    t.is(parameters.gmm.contrast, contrast);
    t.truthy(parameters.resolution);
    t.deepEqual(parameters.resolution!.nativeMm, [1.667, 1.667, 1.75]); // voxel axes: the affine's column norms
    t.deepEqual(JSON.parse(JSON.stringify(parameters)), parameters, 'parameters are JSON-ready');
  }
});

test('with bias, gamma and blur off, each label\'s voxels have the drawn mean and std after the normalisations', (t) => {
  const map = phantom();
  let checked = 0;
  for (let s = 0; s < 8; s++) {
    const { image, parameters } = synthesizeImage(map, s, ['phantom', 'plain'], { bias: false, gamma: false, blur: false });
    t.is(parameters.bias, null);
    t.is(parameters.intensity.gamma, null);
    t.is(parameters.resolution, null);
    // x -> clip(x, 0, 300) -> (x - m) / (M - m + eps) -> (y - m2) / (M2 - m2).
    const { min: m, max: M } = parameters.intensity;
    const { min: m2, max: M2 } = parameters.output;
    const scale = 1 / ((M - m + KERAS_EPSILON) * (M2 - m2));
    for (const c of parameters.gmm.classes) {
      // Only classes whose Gaussian stays clear of the clip bounds 0 and 300 keep their moments.
      if (c.std === 0 || c.mean - 5 * c.std < 0 || c.mean + 5 * c.std > 300) continue;
      const values: number[] = [];
      for (let i = 0; i < image.data.length; i++) if (c.labels.includes(map.data[i])) values.push(image.data[i]);
      const n = values.length;
      const mean = values.reduce((a, b) => a + b, 0) / n;
      const std = Math.sqrt(values.reduce((a, b) => a + (b - mean) ** 2, 0) / n);
      const expMean = ((c.mean - m) / (M - m + KERAS_EPSILON) - m2) / (M2 - m2);
      const expStd = c.std * scale;
      t.true(Math.abs(mean - expMean) < 5 * expStd / Math.sqrt(n) + 1e-5, `seed ${s} class ${c.class}: mean ${mean} vs ${expMean} (n ${n})`);
      t.true(Math.abs(std - expStd) < 5 * expStd / Math.sqrt(2 * n) + 1e-5, `seed ${s} class ${c.class}: std ${std} vs ${expStd}`);
      checked++;
    }
  }
  t.true(checked >= 12, `${checked} classes checked`);
});

test('switching a step off leaves the other steps\' draws unchanged', (t) => {
  const map = phantom();
  const all = synthesizeImage(map, 5, ['phantom', 3]).parameters;
  const noBias = synthesizeImage(map, 5, ['phantom', 3], { bias: false }).parameters;
  const noBlur = synthesizeImage(map, 5, ['phantom', 3], { blur: false }).parameters;
  t.deepEqual(noBias.gmm, all.gmm);
  t.is(noBias.intensity.gamma, all.intensity.gamma);
  t.deepEqual(noBias.resolution, all.resolution);
  t.deepEqual(noBlur.bias, all.bias);
  t.deepEqual(noBlur.gmm, all.gmm);
});

test('bad input: unknown labels name the map; bad options name the option', (t) => {
  const map = phantom();
  map.data[5] = 99;
  t.throws(() => synthesizeImage(map, 1, ['x'], { source: 'odd.nii.gz' }), { message: /^odd\.nii\.gz: label values 99 \(1 voxels\) are not SynthSeg generation labels/ });
  const ok = phantom();
  t.throws(() => synthesizeImage(ok, 1, ['x'], { contrast: 'flair' as 't1' }), { message: /option 'contrast' must be one of t1, random, got "flair"/ });
  t.throws(() => synthesizeImage(ok, 1, ['x'], { bias: 'no' as unknown as boolean }), { message: /option 'bias' must be a boolean/ });
  t.throws(() => synthesizeImage(ok, 1.5, ['x']), { message: /seed must be a safe integer, got 1.5/ });
});

dataTest('T1 priors on real maps (thesis grid): mean intensity WM > GM > ventricles in every image', async (t) => {
  for (const file of ['training_seg_01', 'training_seg_18']) {
    const { volume } = await prepareLabelMap(dataPath(`synthseg-label-maps/${file}.nii.gz`), { ...THESIS_GRID });
    for (let s = 0; s < 4; s++) {
      const { image } = synthesizeImage(volume, s, [file, s]);
      const wm = groupMean(volume, image.data, [2, 41]);
      const gm = groupMean(volume, image.data, [3, 42]);
      const vent = groupMean(volume, image.data, [4, 43, 5, 44, 14, 15]);
      t.true(wm > gm && gm > vent, `${file} seed ${s}: WM ${wm}, GM ${gm}, ventricles ${vent}`);
    }
  }
});

dataTest('a 96x128x96 map renders in well under a few seconds', async (t) => {
  const { volume } = await prepareLabelMap(dataPath('synthseg-label-maps/training_seg_05.nii.gz'), { ...THESIS_GRID });
  t.deepEqual(volume.shape, [96, 128, 96]);
  synthesizeImage(volume, 0, ['warm-up', 0]);
  const t0 = performance.now();
  for (let k = 0; k < 3; k++) synthesizeImage(volume, 1, ['timing', k]);
  const ms = (performance.now() - t0) / 3;
  t.log(`96x128x96: ${ms.toFixed(0)} ms per image`);
  t.true(ms < 3000, `${ms} ms per image`);
});
