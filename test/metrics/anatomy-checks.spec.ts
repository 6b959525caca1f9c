import test from 'ava';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { loadBackend } from '../../ts/backend/select.js';
import { prepareLabelMap, REDUCED_GRID } from '../../ts/labels/prepare-label-maps.js';
import { mirrorLabels, VENTRICLE_LABELS } from '../../ts/labels/synthseg-labels.js';
import type { Volume } from '../../ts/labels/label-volume.js';
import { checkAnatomy, checkContrast, CORTEX_LABELS, WHITE_MATTER_LABELS } from '../../ts/metrics/anatomy-checks.js';
import { reportGeneratedFolder } from '../../ts/metrics/dataset-report.js';
import { generateDataset } from '../../ts/pipeline/generate-dataset.js';
import { captureCli } from '../helpers/capture-cli.js';
import { sharedData } from '../helpers/shared-data.js';
import { writeTinyGenerator } from '../helpers/tiny-generator.js';

const { dataTest, dataPath } = sharedData('anatomy-checks.spec');

async function realMap(n: string): Promise<Volume<Uint8Array>> {
  return (await prepareLabelMap(dataPath(`synthseg-label-maps/training_seg_${n}.nii.gz`), { ...REDUCED_GRID })).volume;
}

/** Mirror the voxel grid along the axis that maps to world x, keeping the label values: left anatomy ends up right. */
function mirrorGeometry(v: Volume<Uint8Array>): Volume<Uint8Array> {
  const [X, Y, Z] = v.shape;
  const axis = [0, 1, 2].find((a) => Math.abs(v.affine[0][a]) > 0)!;
  const out = new Uint8Array(v.data.length);
  for (let k = 0; k < Z; k++) for (let j = 0; j < Y; j++) for (let i = 0; i < X; i++) {
    const [a, b, c] = [i, j, k].map((x, d) => (d === axis ? [X, Y, Z][d] - 1 - x : x));
    out[i + X * (j + Y * k)] = v.data[a + X * (b + Y * c)];
  }
  return { ...v, data: out };
}

dataTest('real label maps pass every anatomy check; mirrored ones fail left-of-right', async (t) => {
  for (const n of ['01', '07', '14', '20']) {
    const v = await realMap(n);
    const r = checkAnatomy(v);
    t.true(r.allLabelsPresent, `${n}: missing ${r.missingLabels}`);
    t.true(r.ventriclesInsideBrain, `${n}: ${r.ventricleVoxelsTouchingOutside} ventricle voxels outside`);
    t.true(r.leftOfRight, `${n}: ${JSON.stringify(r.leftRightViolations)}`);
    t.is(checkAnatomy({ ...v, data: mirrorLabels(v.data) }).leftRightViolations.length, 14, 'labels swapped in place');
    t.is(checkAnatomy(mirrorGeometry(v)).leftRightViolations.length, 14, 'geometry mirrored, labels kept');
    t.true(checkAnatomy(mirrorGeometry({ ...v, data: mirrorLabels(v.data) })).leftOfRight, 'both: a valid brain again');
  }
});

dataTest('ventricles drawn outside the brain and missing labels are caught', async (t) => {
  const v = await realMap('03');
  const moved = new Uint8Array(v.data);
  // A 4x4x4 block of lateral ventricle in the background corner.
  const [X, Y] = v.shape;
  for (let k = 0; k < 4; k++) for (let j = 0; j < 4; j++) for (let i = 0; i < 4; i++) moved[i + X * (j + Y * k)] = 4;
  const r = checkAnatomy({ ...v, data: moved });
  t.false(r.ventriclesInsideBrain);
  t.is(r.ventricleVoxelsTouchingOutside, 56, 'the block minus its 2x2x2 core');
  const noHippocampus = new Uint8Array(v.data).map((l) => (l === 17 ? 2 : l));
  t.deepEqual(checkAnatomy({ ...v, data: noHippocampus }).missingLabels, [17]);
});

test('contrast: white matter > cortex > ventricles in a T1-like image, not in an inverted one', (t) => {
  const labels = Uint8Array.from([2, 41, 3, 42, 4, 43, 14, 0]);
  const shape: [number, number, number] = [8, 1, 1];
  const affine = [[1, 0, 0, 0], [0, 1, 0, 0], [0, 0, 1, 0], [0, 0, 0, 1]];
  const value = (l: number) => (WHITE_MATTER_LABELS.includes(l) ? 0.8 : CORTEX_LABELS.includes(l) ? 0.5 : VENTRICLE_LABELS.includes(l) ? 0.1 : 0);
  const t1 = Float32Array.from(labels, value);
  const r = checkContrast({ data: t1, shape, affine }, { data: labels, shape, affine });
  t.true(r.t1Order);
  t.true(Math.abs(r.meanWhiteMatter - 0.8) < 1e-6 && Math.abs(r.meanCortex - 0.5) < 1e-6 && Math.abs(r.meanVentricles - 0.1) < 1e-6);
  t.false(checkContrast({ data: Float32Array.from(t1, (x) => 1 - x), shape, affine }, { data: labels, shape, affine }).t1Order);
});

test.serial('evaluate reports a generated folder; its numbers match the per-sample checks', async (t) => {
  const work = mkdtempSync(join(tmpdir(), 'brain-ldm-evaluate-'));
  try {
    const backend = await loadBackend({});
    await writeTinyGenerator(backend, join(work, 'gen'));
    const out = join(work, 'out');
    for await (const _ of generateDataset({ generator: join(work, 'gen'), out, count: 3, seed: 2, volume: { kind: 'ml', ml: 40 }, backend })) { /* written */ }
    await backend.dispose();
    const report = await reportGeneratedFolder(out);
    t.is(report.samples, 3);
    t.is(report.volume!.requests, 3);
    t.is(report.pass.leftOfRight, report.perSample.filter((s) => s.anatomy.leftOfRight).length / 3);
    const r = await captureCli(['evaluate', out]);
    t.is(r.code, 0, r.err);
    t.regex(r.out, /^3 samples in /m);
    t.regex(r.out, /volume over 3 requests: Spearman/);
    t.is((await captureCli(['evaluate'])).code, 2);
  } finally {
    rmSync(work, { recursive: true, force: true });
  }
});
