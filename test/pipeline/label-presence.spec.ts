/**
 * Label presence (pipeline/label-presence.ts): the statistics of reference maps, the repair's placement (inside the
 * label's region, where its margin is best, connected, never emptying another label), and the chain through
 * `brain-ldm label-presence`, `generate` (manifest, --no-label-repair) and `evaluate`.
 */
import test from 'ava';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { readGenerator, readGeneratorConfig, validateGeneratorConfig } from '../../ts/bundle/generator-bundle.js';
import { ensureLabelPresence, measureLabelPresence, type LabelPresenceStats } from '../../ts/pipeline/label-presence.js';
import { LabeledPairGenerator, argmaxChannels, argmaxLabels } from '../../ts/pipeline/labeled-pair-generator.js';
import { captureCli as cli } from '../helpers/capture-cli.js';
import { configFingerprint, tinyGeneratorConfig, tinyGeneratorWithReference } from '../helpers/tiny-generator.js';

const work = mkdtempSync(join(tmpdir(), 'brain-ldm-label-presence-'));
test.after.always(() => rmSync(work, { recursive: true, force: true }));

const S = 6;
const at = (a: number, b: number, d: number) => (a * S + b) * S + d;

test('measureLabelPresence: mean centroid offset from the brain, largest deviation + one voxel per axis, minimum from the mean count', (t) => {
  // Two 4^3 brains of label 2 with label 1 in opposite corners: offsets -+(1.5, 1.5, 1.5) voxels, mean 0.
  const map = (corner: number) => {
    const m = new Uint8Array(S * S * S);
    for (let a = 0; a < 4; a++) for (let b = 0; b < 4; b++) for (let d = 0; d < 4; d++) m[at(a, b, d)] = 2;
    m[at(corner, corner, corner)] = 1;
    return m;
  };
  const spacing = [1, 2, 1];
  const s = measureLabelPresence([map(0), map(3)], [S, S, S], spacing, 4);
  t.deepEqual(s.offsetMm[0], null);
  t.deepEqual(s.offsetMm[3], null, 'a label no map has');
  t.deepEqual(s.minVoxels, [0, 1, 6, 0], 'max(1, round(0.1 x mean count)): 1 voxel -> 1, 63 -> 6');
  t.deepEqual(s.offsetMm[1]!.map((x) => Math.abs(x) < 1e-12 ? 0 : x), [0, 0, 0]);
  t.deepEqual(s.radiusMm[1], [1.5 + 1, 3 + 2, 1.5 + 1]);
  t.deepEqual(s.radiusMm[3], [0, 0, 0]);
  // Label 2's centroid sits 1/63 voxel off the brain's, toward the corner label 1 does not take.
  t.true(Math.hypot(...s.offsetMm[2]!) < 0.1);
  t.throws(() => measureLabelPresence([], [S, S, S], spacing, 4), { message: /no reference maps/ });
  t.throws(() => measureLabelPresence([new Uint8Array(5)], [S, S, S], spacing, 4), { message: /map 0 has 5 voxels, expected 216/ });
  t.throws(() => measureLabelPresence([map(0)], [S, S, S], spacing, 2), { message: /holds channel 2, expected < 2/ });
  t.throws(() => measureLabelPresence([map(0)], [S, S, S], spacing, 4, 0), { message: /'minFraction' must be in \(0, 1\]/ });
});

// Three channels on a 6^3 grid, all voxels label 2 (the brain fills the grid, centroid (2.5, 2.5, 2.5)); label 1
// is missing. Its logits: best overall at the far corner (5, 5, 5), outside its region; inside the region around
// (0, 0, 0) best at (0, 0, 1), then (0, 1, 1), (1, 1, 1), (0, 0, 0).
function scene(): { logits: Float32Array; index: Uint8Array; stats: LabelPresenceStats } {
  const N = S * S * S;
  const logits = new Float32Array(3 * N);
  logits.fill(-100, 0, N);  // background never wins
  logits.fill(-5, N, 2 * N);
  for (const [v, x] of [[at(5, 5, 5), -0.5], [at(0, 0, 1), -1], [at(0, 1, 1), -2], [at(1, 1, 1), -3], [at(0, 0, 0), -4]] as const) logits[N + v] = x;
  const index = argmaxChannels(logits, 3, N);
  const stats: LabelPresenceStats = { minVoxels: [0, 3, 1], offsetMm: [null, [-2.5, -2.5, -2.5], [0, 0, 0]], radiusMm: [[0, 0, 0], [2, 2, 2], [100, 100, 100]] };
  return { logits, index, stats };
}

test('ensureLabelPresence grows a missing label inside its region, best margin first, connected', (t) => {
  const { logits, index, stats } = scene();
  t.false(index.includes(1));
  const r = ensureLabelPresence(logits, index, [S, S, S], [1, 1, 1], stats);
  t.deepEqual(r, { labels: [{ channel: 1, before: 0, after: 3 }], voxels: 3 });
  const grown = [...index.keys()].filter((v) => index[v] === 1);
  t.deepEqual(grown, [at(0, 0, 1), at(0, 1, 1), at(1, 1, 1)].sort((a, b) => a - b));
  t.is(index[at(5, 5, 5)], 2, 'the best voxel outside the region is not taken');

  // Without a region (radius spanning the grid) the repair would start at the far corner: the region is what places it.
  const wide = scene();
  ensureLabelPresence(wide.logits, wide.index, [S, S, S], [1, 1, 1], { ...wide.stats, radiusMm: [[0, 0, 0], [100, 100, 100], [100, 100, 100]] });
  t.is(wide.index[at(5, 5, 5)], 1);
  // The region is an ellipsoid: narrow along the last axis, it keeps the label in the first plane there.
  const flat = scene();
  ensureLabelPresence(flat.logits, flat.index, [S, S, S], [1, 1, 1], { ...flat.stats, radiusMm: [[0, 0, 0], [3, 3, 0.5], [100, 100, 100]] });
  t.deepEqual([...flat.index.keys()].filter((v) => flat.index[v] === 1).map((v) => v % S), [0, 0, 0]);
});

test('ensureLabelPresence leaves labels at their minimum, and never empties a donor below its own', (t) => {
  const { logits, index, stats } = scene();
  const before = index.slice();
  // Label 2 may not give up a voxel: label 1 cannot grow, and says so.
  const r = ensureLabelPresence(logits, index, [S, S, S], [1, 1, 1], { ...stats, minVoxels: [0, 3, S * S * S] });
  t.deepEqual(r, { labels: [{ channel: 1, before: 0, after: 0 }], voxels: 0 });
  t.deepEqual(index, before);
  // A label already holding its minimum is not touched.
  const ok = scene();
  const none = ensureLabelPresence(ok.logits, ok.index, [S, S, S], [1, 1, 1], { ...ok.stats, minVoxels: [0, 0, 1] });
  t.deepEqual(none, { labels: [], voxels: 0 });
  t.throws(() => ensureLabelPresence(new Float32Array(5), index, [S, S, S], [1, 1, 1], stats), { message: /logits have 5 elements, expected 3 x 216/ });
  t.throws(() => ensureLabelPresence(logits, index, [S, S, 5], [1, 1, 1], stats), { message: /'shape' \[6, 6, 5\] does not hold 216 voxels/ });
});

test('generator.json labelPresence is validated by field, and counts in the fingerprint only when present', (t) => {
  const base = tinyGeneratorConfig();
  const n = base.labels.length;
  const presence = { minVoxels: new Array(n).fill(1), offsetMm: new Array(n).fill([0, 0, 0]), radiusMm: new Array(n).fill([5, 6, 5]), minFraction: 0.1, referenceMaps: 4, date: '2026-12-04T00:00:00.000Z' };
  t.deepEqual(validateGeneratorConfig({ ...base, labelPresence: presence }, 'g.json').labelPresence, presence);
  t.throws(() => validateGeneratorConfig({ ...base, labelPresence: { ...presence, minVoxels: [1] } }, 'g.json'), { message: new RegExp(`g\\.json: field 'labelPresence\\.minVoxels' must be an array of ${n} entries`) });
  t.throws(() => validateGeneratorConfig({ ...base, labelPresence: { ...presence, radiusMm: new Array(n).fill([5, 0, 5]) } }, 'g.json'), { message: /field 'labelPresence\.radiusMm\[0\]\[1\]' must be a radius > 0 \(mm\), got 0/ });
  t.throws(() => validateGeneratorConfig({ ...base, labelPresence: { ...presence, radiusMm: new Array(n).fill(5) } }, 'g.json'), { message: /field 'labelPresence\.radiusMm\[0\]' must be \[3 radii\]/ });
  t.throws(() => validateGeneratorConfig({ ...base, labelPresence: { ...presence, offsetMm: new Array(n).fill([0, 0]) } }, 'g.json'), { message: /field 'labelPresence\.offsetMm\[0\]' must be null or \[3 numbers\]/ });
  t.throws(() => validateGeneratorConfig({ ...base, labelPresence: { ...presence, minFraction: 2 } }, 'g.json'), { message: /field 'labelPresence\.minFraction' must be a fraction in \(0, 1\]/ });
  const fp = configFingerprint;
  t.is(fp(base), fp({ ...base, labelPresence: null }), 'a generator without it hashes as before');
  t.not(fp(base), fp({ ...base, labelPresence: presence }));
  t.is(fp({ ...base, labelPresence: presence }), fp({ ...base, labelPresence: { ...presence, date: '2027-01-01T00:00:00.000Z' } }));
});

test.serial('label-presence stores statistics that generate applies, names in the manifest, and --no-label-repair turns off', async (t) => {
  // Reference maps: the random model's own masks from another seed.
  const { gen, backend, config, refDir } = await tinyGeneratorWithReference(work, ['--count', '3', '--condition', '0.5', '--seed', '7']);
  const [d, h, w] = config.grid.shape;
  // A high minimum (the maps' full mean) makes the random model's masks fall short, so the repair runs.
  const r = await cli(['label-presence', gen, '--reference', refDir, '--min-fraction', '1']);
  t.is(r.code, 0, r.err);
  t.regex(r.out, /label presence from 3 maps/);
  const presence = (await readGeneratorConfig(gen)).labelPresence!;
  t.is(presence.referenceMaps, 3);
  t.is(presence.minFraction, 1);

  const out = join(work, 'out');
  const g = await cli(['generate', gen, '--out', out, '--count', '3', '--condition', '0.3', '--quiet', '--backend', 'native']);
  t.is(g.code, 0, g.err);
  const records = readFileSync(join(out, 'manifest.jsonl'), 'utf8').trim().split('\n').map((l) => JSON.parse(l));
  const generator = await readGenerator(gen);
  const pairs = await LabeledPairGenerator.create(backend, generator);
  let repairedSamples = 0;
  try {
    for (const rec of records) {
      const req = { seed: 0, sampleIndex: rec.index, condition: 0.3, guidanceScale: 3, solver: 'dpm-solver++' as const, steps: 4 };
      const plain = argmaxLabels(await pairs.generateMaskLogits(req), config.labels, d * h * w, generator.config.labelOffsets?.offsets);
      const { labels, repair } = await pairs.generateMaskWithRepair(req);
      t.deepEqual(rec.labelRepair, repair, 'the manifest records the repair');
      const changed = labels.reduce((n, l, v) => n + (l !== plain[v] ? 1 : 0), 0);
      t.is(changed, repair!.voxels, 'the repair changes exactly the voxels it reports');
      for (const l of repair!.labels) t.true(config.labels.includes(l));
      for (const l of repair!.missing) t.true(repair!.labels.includes(l) && !plain.includes(l), 'missing: grown labels the plain argmax has none of');
      if (repair!.labels.length) repairedSamples++;
      t.deepEqual((await pairs.generateMaskWithRepair({ ...req, repairLabels: false })).labels, plain, 'repairLabels false: the plain argmax');
    }
  } finally {
    await pairs.dispose();
    await backend.dispose();
  }
  t.true(repairedSamples > 0, 'the high minimum made the repair run');

  const e = await cli(['evaluate', out]);
  t.is(e.code, 0, e.err);
  t.regex(e.out, new RegExp(`label presence repair grew labels in ${repairedSamples} of 3 masks; all three counting the labels the decoder left out \\d+\\.\\d%`));

  // A folder made with the repair does not resume without it.
  const off = await cli(['generate', gen, '--out', out, '--count', '3', '--condition', '0.3', '--quiet', '--backend', 'native', '--no-label-repair']);
  t.not(off.code, 0);
  t.regex(off.err, /labelRepair/);
  const plainOut = join(work, 'out-plain');
  const p = await cli(['generate', gen, '--out', plainOut, '--count', '1', '--condition', '0.3', '--quiet', '--backend', 'native', '--no-label-repair']);
  t.is(p.code, 0, p.err);
  t.is(JSON.parse(readFileSync(join(plainOut, 'manifest.jsonl'), 'utf8')).labelRepair, null);

  const removed = await cli(['label-presence', gen, '--remove']);
  t.is(removed.code, 0, removed.err);
  t.is((await readGeneratorConfig(gen)).labelPresence, null);
  const usage = await cli(['label-presence', gen]);
  t.is(usage.code, 2);
  t.regex(usage.err, /--reference <dir> is required/);
});
