/**
 * The shipped default generator (models/default): what the README's main command runs. It must read as a valid
 * generator, fit the size budget, carry its model card and the training data's licence, and generate pairs
 * that behave like brains: more ventricle asked for gives more ventricle, only SynthSeg labels, a T1 image in
 * [0, 1] with white matter brighter than the ventricles. The full quality numbers (Dice, Spearman over a sweep,
 * anatomy rates) are measured by train/evaluate_generator.sh and written in MODEL_CARD.md; this spec guards the
 * properties a broken export, a wrong scale factor or a swapped condition would break.
 */
import test from 'ava';
import { mkdtempSync, readFileSync, readdirSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { captureCli } from '../helpers/capture-cli.js';
import { loadBackend } from '../../ts/backend/select.js';
import { readGenerator } from '../../ts/bundle/generator-bundle.js';
import { SYNTHSEG_LABELS } from '../../ts/labels/synthseg-labels.js';
import { checkAnatomy, checkContrast } from '../../ts/metrics/anatomy-checks.js';
import { parseVolumeDistribution } from '../../ts/export/volume-distribution.js';
import { LabeledPairGenerator } from '../../ts/pipeline/labeled-pair-generator.js';
import { conditionForVolumeMl } from '../../ts/pipeline/volume-condition.js';
import { tensorToVolumeOrder } from '../../ts/labels/voxel-order.js';
import { generatorGridAffine } from '../../ts/bundle/generator-bundle.js';
import { generateDataset, type GeneratedSample } from '../../ts/pipeline/generate-dataset.js';
import { DEFAULT_GENERATOR } from '../../ts/cli/generate-command.js';
import { loadNativeAddon } from '../../ts/backend/native-binding.js';
import { relL2 } from '../helpers/reference.js';

const dir = DEFAULT_GENERATOR;
const MAX_BUNDLE_BYTES = 20e6;

function folderBytes(d: string): number {
  return readdirSync(d).reduce((sum, f) => {
    const p = join(d, f);
    const s = statSync(p);
    return sum + (s.isDirectory() ? folderBytes(p) : s.size);
  }, 0);
}

test('models/default is a complete generator within 20 MB, with its model card and the training data licence', async (t) => {
  const g = await readGenerator(dir);
  t.deepEqual([...g.config.labels], [...SYNTHSEG_LABELS]);
  const bytes = folderBytes(dir);
  t.true(bytes <= MAX_BUNDLE_BYTES, `models/default holds ${bytes} bytes, more than ${MAX_BUNDLE_BYTES}`);
  const card = readFileSync(join(dir, 'MODEL_CARD.md'), 'utf8');
  for (const heading of ['Held out', '## Quality', '## Data and licence', '## Reproduce'])
    t.regex(card, new RegExp(heading, 'i'), `MODEL_CARD.md names its ${heading}`);
  const files = readdirSync(dir);
  t.true(files.some((f) => /licen[cs]e/i.test(f)), `a training-data licence file among ${files.join(', ')}`);
  t.true(files.some((f) => /source/i.test(f)), `a training-data source file among ${files.join(', ')}`);
});

test('models/default carries label offsets fitted to the training maps: small structures up, background and ventricles at 0', async (t) => {
  const { config } = await readGenerator(dir);
  const lo = config.labelOffsets;
  t.truthy(lo, 'generator.json has labelOffsets (brain-ldm calibrate --label-reference)');
  const offset = (label: number) => lo!.offsets[config.labels.indexOf(label)];
  for (const l of [0, ...config.conditioning.ventricleLabels]) t.is(offset(l), 0, `label ${l} keeps offset 0`);
  // The accumbens areas (26, 58) were the labels the networks lost most (17% of their training volume without offsets).
  for (const l of [26, 58]) {
    t.true(offset(l) > 1, `label ${l}: offset ${offset(l)}`);
    const c = config.labels.indexOf(l);
    t.true(lo!.meanVoxelsAfter[c] > 2 * lo!.meanVoxelsBefore[c], `label ${l}: ${lo!.meanVoxelsBefore[c]} -> ${lo!.meanVoxelsAfter[c]} voxels per mask`);
  }
});

// Samples of MODEL_CARD.md's anatomy run (generate --volume-dist uniform:14.1:285.3 --seed 1) whose decoded masks lack
// a label: 12 and 37 the right accumbens (58), 44 the right inferior lateral ventricle (44), 47 both.
test('models/default carries label presence: masks the decoder leaves a label out of get it back, on its side', async (t) => {
  const g = await readGenerator(dir);
  const presence = g.config.labelPresence;
  t.truthy(presence, 'generator.json has labelPresence (brain-ldm label-presence)');
  t.is(presence!.referenceMaps, 16);
  const { labels, grid } = g.config;
  const affine = generatorGridAffine(grid);
  const dist = parseVolumeDistribution('uniform:14.1:285.3');
  const backend = await loadBackend({});
  const pairs = await LabeledPairGenerator.create(backend, g);
  let missing = 0;
  try {
    for (const index of [12, 37, 44, 47]) {
      const { condition } = conditionForVolumeMl(dist.draw(index, 1), g.config.conditioning, g.config.calibration);
      const req = { seed: 1, sampleIndex: index, condition, guidanceScale: 3, solver: 'dpm-solver++' as const, steps: 20 };
      const { labels: mask, repair } = await pairs.generateMaskWithRepair(req);
      const plain = (await pairs.generateMaskWithRepair({ ...req, repairLabels: false })).labels;
      t.truthy(repair);
      missing += repair!.missing.length;
      for (const l of repair!.missing) t.false(plain.includes(l), `sample ${index}: label ${l} is missing before the repair`);
      const counts = new Map<number, number>();
      for (const v of mask) counts.set(v, (counts.get(v) ?? 0) + 1);
      labels.forEach((l, c) => {
        if (presence!.offsetMm[c]) t.true((counts.get(l) ?? 0) >= presence!.minVoxels[c], `sample ${index}: label ${l} holds ${counts.get(l) ?? 0} voxels, minimum ${presence!.minVoxels[c]}`);
      });
      const report = checkAnatomy({ data: tensorToVolumeOrder(mask, grid.shape), shape: [...grid.shape], affine });
      t.true(report.allLabelsPresent, `sample ${index}: missing ${report.missingLabels}`);
      t.true(report.leftOfRight, `sample ${index}: ${JSON.stringify(report.leftRightViolations)}`);
    }
  } finally {
    await pairs.dispose();
    await backend.dispose();
  }
  t.true(missing > 0, 'the decoder left labels out of these samples, as in the anatomy run');
});

test('models/default: a larger ventricle request gives larger ventricles, SynthSeg labels and a T1 image', async (t) => {
  const g = await readGenerator(dir);
  const [lo, hi] = g.config.conditioning.trainingVentricleMl;
  const backend = await loadBackend({});
  try {
    const run = async (ml: number): Promise<GeneratedSample[]> => {
      const out: GeneratedSample[] = [];
      for await (const s of generateDataset({ generator: g, count: 2, seed: 7, volume: { kind: 'ml', ml }, backend })) out.push(s);
      return out;
    };
    const small = await run(lo + 0.1 * (hi - lo));
    const large = await run(lo + 0.9 * (hi - lo));
    const allowed = new Set(SYNTHSEG_LABELS);
    for (const s of [...small, ...large]) {
      const present = new Set(s.labels.data);
      t.true([...present].every((l) => allowed.has(l)), `labels ${[...present].sort((a, b) => a - b).join(',')}`);
      t.true(present.size >= 20, `sample ${s.index}: only ${present.size} labels`);
      let min = Infinity, max = -Infinity;
      for (const v of s.image.data) { if (v < min) min = v; if (v > max) max = v; }
      t.true(min >= 0 && max <= 1 && max > min, `image range [${min}, ${max}]`);
      const c = checkContrast(s.image, s.labels);
      t.true(c.meanWhiteMatter > c.meanVentricles, `white matter ${c.meanWhiteMatter} > ventricles ${c.meanVentricles}`);
    }
    const ml = (xs: GeneratedSample[]) => xs.map((s) => s.record.achieved.ventricleMl);
    t.true(Math.max(...ml(small)) < Math.min(...ml(large)),
      `ventricles asked ${(lo + 0.1 * (hi - lo)).toFixed(1)} mL gave ${ml(small).map((v) => v.toFixed(1))}, ` +
      `asked ${(lo + 0.9 * (hi - lo)).toFixed(1)} mL gave ${ml(large).map((v) => v.toFixed(1))}`);
  } finally {
    await backend.dispose();
  }
});

test('the README main command (no generator argument) writes one labeled pair from models/default', async (t) => {
  const out = join(mkdtempSync(join(tmpdir(), 'brain-ldm-default-')), 'pairs');
  try {
    const r = await captureCli(['generate', '--out', out, '--ventricle-volume', '80', '--png', '--quiet']);
    t.is(r.code, 0, r.err);
    const files = readdirSync(out).sort();
    for (const f of ['sample_000000_image.nii.gz', 'sample_000000_labels.nii.gz', 'manifest.jsonl'])
      t.true(files.includes(f), `${f} among ${files.join(', ')}`);
    const record = JSON.parse(readFileSync(join(out, 'manifest.jsonl'), 'utf8').trim().split('\n')[0]) as { achieved: { ventricleMl: number } };
    t.true(record.achieved.ventricleMl > 0, `achieved ventricle volume ${record.achieved.ventricleMl} mL`);
  } finally {
    rmSync(join(out, '..'), { recursive: true, force: true });
  }
});

const bf16Kernels = (() => {
  try {
    return loadNativeAddon().addon.bf16Kernels;
  } catch {
    return '';
  }
})();

(bf16Kernels ? test : test.skip)(`models/default at precision bf16 (${bf16Kernels || 'no bf16 kernels here'}) gives the fp32 pair: labels on >= 99% of voxels, images to 5e-2`, async (t) => {
  const g = await readGenerator(dir);
  const pair = async (precision: 'fp32' | 'bf16'): Promise<GeneratedSample> => {
    const backend = await loadBackend({ backend: 'native', precision });
    try {
      for await (const s of generateDataset({ generator: g, count: 1, seed: 3, volume: { kind: 'ml', ml: 80 }, backend })) return s;
      throw new Error('no sample');
    } finally {
      await backend.dispose();
    }
  };
  const a = await pair('fp32');
  const b = await pair('bf16');
  let same = 0;
  for (let i = 0; i < a.labels.data.length; i++) if (a.labels.data[i] === b.labels.data[i]) same++;
  const agreement = same / a.labels.data.length;
  t.true(agreement >= 0.99, `labels agree on ${(100 * agreement).toFixed(2)}% of voxels`);
  const err = relL2(b.image.data, a.image.data);
  t.true(err <= 5e-2, `image relative L2 ${err}`);
  t.true(err > 1e-4, `image relative L2 ${err}: too close to fp32 for bf16 products (did it run fp32?)`);
  t.true(Math.abs(a.record.achieved.ventricleMl - b.record.achieved.ventricleMl) <= 0.05 * a.record.achieved.ventricleMl,
    `ventricles ${a.record.achieved.ventricleMl} mL (fp32) vs ${b.record.achieved.ventricleMl} mL (bf16)`);
});
