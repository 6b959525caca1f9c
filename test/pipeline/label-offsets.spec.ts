/**
 * Label offsets (pipeline/label-offsets.ts): the fit's pruned candidates must decide every voxel exactly as the
 * generator's argmax does with the same offsets, the fit must bring an under-called label to its target while the
 * fixed channels stay at 0, and `brain-ldm calibrate --label-reference` must store offsets that `generate` applies.
 */
import test from 'ava';
import { mkdirSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { generatorGridAffine, readGenerator, readGeneratorConfig, validateGeneratorConfig } from '../../ts/bundle/generator-bundle.js';
import { writeVolume } from '../../ts/labels/label-volume.js';
import { VENTRICLE_LABELS } from '../../ts/labels/synthseg-labels.js';
import { meanLabelVoxels } from '../../ts/pipeline/calibrate-labels.js';
import { LabelCandidates, OFFSET_BOUND, fitLabelOffsets } from '../../ts/pipeline/label-offsets.js';
import { LabeledPairGenerator, argmaxLabels } from '../../ts/pipeline/labeled-pair-generator.js';
import { seededRandom } from '../../ts/random/seeded-random.js';
import { captureCli as cli } from '../helpers/capture-cli.js';
import { configFingerprint, tinyGeneratorConfig, tinyGeneratorWithReference } from '../helpers/tiny-generator.js';

const work = mkdtempSync(join(tmpdir(), 'brain-ldm-label-offsets-'));
test.after.always(() => rmSync(work, { recursive: true, force: true }));

function randomLogits(L: number, voxels: number, seed: number, spread: number): Float32Array {
  const r = seededRandom(seed, 'logits', 0);
  return Float32Array.from({ length: L * voxels }, () => Math.fround((r.next() - 0.5) * spread));
}

function bruteCounts(logits: Float32Array, L: number, voxels: number, offsets: number[]): number[] {
  const labels = Array.from({ length: L }, (_, c) => c);
  const values = argmaxLabels(logits, labels, voxels, offsets);
  const counts = new Array<number>(L).fill(0);
  for (const v of values) counts[v]++;
  return counts;
}

test('candidate pruning decides every voxel as the generator argmax does, for any offsets within the bound', (t) => {
  const L = 7, voxels = 4000;
  // A spread of 6 * OFFSET_BOUND leaves many labels outside the candidate window of each voxel.
  const masks = [randomLogits(L, voxels, 1, 6 * OFFSET_BOUND), randomLogits(L, voxels, 2, 6 * OFFSET_BOUND)];
  const cand = new LabelCandidates(L, voxels);
  for (const m of masks) cand.add(m);
  const r = seededRandom(3, 'offsets', 0);
  for (let trial = 0; trial < 20; trial++) {
    const offsets = Array.from({ length: L }, () => Math.fround((2 * r.next() - 1) * OFFSET_BOUND));
    if (trial === 0) offsets.fill(OFFSET_BOUND).splice(0, 1, -OFFSET_BOUND);  // the bound itself
    const expected = masks.map((m) => bruteCounts(m, L, voxels, offsets)).reduce((a, b) => a.map((x, i) => x + b[i])).map((x) => x / masks.length);
    t.deepEqual(Array.from(cand.meanCounts(offsets)), expected, `trial ${trial}`);
  }
  // Without offsets, the offset path and the plain argmax agree (ties: first channel, as torch.argmax).
  const tied = new Float32Array(L * 10).fill(1);
  t.deepEqual(argmaxLabels(tied, [0, 1, 2, 3, 4, 5, 6], 10, new Array(L).fill(0)), argmaxLabels(tied, [0, 1, 2, 3, 4, 5, 6], 10));
  t.throws(() => argmaxLabels(tied, [0, 1, 2, 3, 4, 5, 6], 10, [0, 1]), { message: /expected 7 offsets/ });
});

test('the fit brings an under-called label to its target and leaves the fixed channels at 0', (t) => {
  const L = 4, voxels = 3000;
  // Channel 3 is a small structure whose logit sits 1-3 below channel 2 over 600 voxels: plain argmax gives it none.
  const logits = new Float32Array(L * voxels);
  const r = seededRandom(5, 'fit', 0);
  for (let v = 0; v < voxels; v++) {
    const region = v < 1500 ? 0 : v < 2400 ? 1 : 2;
    for (let c = 0; c < L; c++) logits[c * voxels + v] = c === region ? 5 : -5;
    if (v >= 2400) logits[3 * voxels + v] = 5 - 1 - 2 * r.next();
  }
  const cand = new LabelCandidates(L, voxels);
  cand.add(logits);
  const target = [1500, 900, 400, 200];
  const fit = fitLabelOffsets(cand, target, new Set([0, 1]));
  t.deepEqual(fit.meanVoxelsBefore, [1500, 900, 600, 0]);
  t.is(fit.offsets[0], 0);
  t.is(fit.offsets[1], 0);
  t.true(fit.offsets[3] > fit.offsets[2]);
  t.true(Math.abs(fit.meanVoxelsAfter[3] - 200) <= 20, `label 3: ${fit.meanVoxelsAfter[3]} voxels, target 200`);
  t.deepEqual(fit.meanVoxelsAfter, bruteCounts(logits, L, voxels, fit.offsets), 'the reported counts are the argmax of the stored offsets');
  t.deepEqual(fitLabelOffsets(cand, target, new Set([0, 1])), fit, 'deterministic');
  t.throws(() => fitLabelOffsets(cand, [1, 2], new Set()), { message: /expected 4 target counts/ });
});

test('meanLabelVoxels counts per generator channel and names the map holding a foreign label', (t) => {
  t.deepEqual(meanLabelVoxels([Uint8Array.of(0, 0, 2, 4), Uint8Array.of(0, 2, 2, 2)], [0, 2, 4], ['a', 'b']), [1.5, 2, 0.5]);
  t.throws(() => meanLabelVoxels([Uint8Array.of(0, 9)], [0, 2, 4], ['maps/x.nii.gz']), { message: /maps\/x\.nii\.gz: voxel 1 holds label 9, which is not one of the generator's labels/ });
});

test('generator.json validates labelOffsets and the fingerprint follows the offsets only', (t) => {
  const base = tinyGeneratorConfig();
  const n = base.labels.length;
  const offsets = {
    offsets: Array.from({ length: n }, (_, i) => (i % 3) * 0.5), referenceMaps: 4, targetVoxels: new Array(n).fill(10), fittedMasks: 3,
    guidanceScale: 3, solver: 'dpm-solver++', steps: 4, seed: 0, date: '2026-12-03T00:00:00.000Z',
    meanVoxelsBefore: new Array(n).fill(9), meanVoxelsAfter: new Array(n).fill(10),
  };
  t.deepEqual(validateGeneratorConfig({ ...base, labelOffsets: offsets }).labelOffsets, offsets);
  const { labelOffsets: _absent, ...withoutField } = base;
  t.is(validateGeneratorConfig(withoutField).labelOffsets, null, 'generators written before label offsets stay valid');
  t.throws(() => validateGeneratorConfig({ ...base, labelOffsets: { ...offsets, offsets: [1, 2] } }, 'g.json'),
    { message: `g.json: field 'labelOffsets.offsets' must be an array of ${n} numbers (one per entry of labels), got [1,2]` });
  t.throws(() => validateGeneratorConfig({ ...base, labelOffsets: { ...offsets, offsets: offsets.offsets.map((o, i) => (i === 5 ? 40 : o)) } }, 'g.json'),
    { message: /field 'labelOffsets\.offsets\[5\]' must be an offset within \[-16, 16\] logits, got 40/ });
  t.throws(() => validateGeneratorConfig({ ...base, labelOffsets: { ...offsets, extra: 1 } }, 'g.json'), { message: /unknown field 'labelOffsets\.extra'/ });

  const fp = configFingerprint;
  t.is(fp(base), fp({ ...base, labelOffsets: null }));
  t.not(fp(base), fp({ ...base, labelOffsets: offsets }));
  t.is(fp({ ...base, labelOffsets: offsets }), fp({ ...base, labelOffsets: { ...offsets, date: '2027-01-01T00:00:00.000Z', meanVoxelsAfter: new Array(n).fill(11) } }),
    'only the offsets themselves change what is generated');
});

test.serial('calibrate --label-reference stores offsets that generate applies', async (t) => {
  // Reference maps: the random model's own masks from other seeds (the volume sweep after the fit needs its ventricles).
  const { gen, backend, config, refDir } = await tinyGeneratorWithReference(work, ['--count', '4', '--volume-dist', 'uniform:20:120', '--seed', '7']);
  const [d, h, w] = config.grid.shape;
  const args = ['calibrate', gen, '--label-reference', refDir, '--label-masks', '3', '--requests', '6', '--samples', '2', '--no-verify', '--quiet', '--backend', 'native'];
  const r = await cli(args);
  t.is(r.code, 0, r.err);
  t.regex(r.out, /label offsets \(3 masks;/);
  const stored = (await readGeneratorConfig(gen)).labelOffsets!;
  t.truthy(stored);
  t.is(stored.offsets.length, config.labels.length);
  t.is(stored.fittedMasks, 3);
  t.is(stored.referenceMaps, 4);
  for (const l of [0, ...VENTRICLE_LABELS]) t.is(stored.offsets[config.labels.indexOf(l)], 0, `label ${l} is fixed`);
  t.true(stored.offsets.some((o) => o !== 0));
  const error = (counts: number[]) => counts.reduce((acc, c, i) => acc + Math.abs(Math.log((stored.targetVoxels[i] + 1) / (c + 1))), 0);
  t.true(error(stored.meanVoxelsAfter) < error(stored.meanVoxelsBefore), 'the fit moves the label volumes toward the reference');

  // generate applies them: its label map is the offset argmax of the same sample's logits.
  const out = join(work, 'out');
  const g = await cli(['generate', gen, '--out', out, '--condition', '0.5', '--quiet', '--backend', 'native']);
  t.is(g.code, 0, g.err);
  const generator = await readGenerator(gen);
  const pairs = await LabeledPairGenerator.create(backend, generator);
  try {
    const req = { seed: 0, sampleIndex: 0, condition: 0.5, guidanceScale: 3, solver: 'dpm-solver++' as const, steps: 4 };
    const logits = await pairs.generateMaskLogits(req);
    const mask = await pairs.generateMask(req);
    t.deepEqual(mask, argmaxLabels(logits, config.labels, d * h * w, stored.offsets));
  } finally {
    await pairs.dispose();
    await backend.dispose();
  }
  t.true(readFileSync(join(out, 'manifest.jsonl'), 'utf8').length > 0);
});

test.serial('calibrate --label-reference names a bad reference map', async (t) => {
  const gen = join(work, 'generator');
  const bad = join(work, 'bad-reference');
  mkdirSync(bad);
  await writeVolume(join(bad, 'small.nii.gz'), { data: new Uint8Array(8 * 8 * 8), shape: [8, 8, 8], affine: generatorGridAffine(tinyGeneratorConfig().grid) });
  const r = await cli(['calibrate', gen, '--label-reference', bad, '--quiet', '--backend', 'native']);
  t.not(r.code, 0);
  t.regex(r.err, /small\.nii\.gz: shape \[8, 8, 8\] is not the generator's grid \[16, 16, 16\]/);
  const missing = await cli(['calibrate', gen, '--label-reference', join(work, 'nowhere'), '--quiet']);
  t.regex(missing.err, /--label-reference .*nowhere: not a directory/);
  const usage = await cli(['calibrate', gen, '--label-masks', '3']);
  t.is(usage.code, 2);
  t.regex(usage.err, /--label-masks needs --label-reference/);
});
