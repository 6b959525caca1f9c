/**
 * Ventricle enlargement: the requested volume factor is reached within the tolerance, the sampling map has a positive
 * Jacobian determinant everywhere (checked against numpy), labels and their connectivity survive, the intracranial
 * volume stays, factor 1 is the identity and the result is deterministic. A synthetic map always runs; two SynthSeg
 * training maps (prepared on the thesis grid) run when ../shared/data is there.
 */
import test from 'ava';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createVentricleEnlarger, enlargeVentricles } from '../../ts/augment/ventricle-enlargement.js';
import { countLabels, labelCounts, writeVolume, type Volume } from '../../ts/labels/label-volume.js';
import { prepareLabelMap, THESIS_GRID } from '../../ts/labels/prepare-label-maps.js';
import { VENTRICLE_LABELS } from '../../ts/labels/synthseg-labels.js';
import { sharedData } from '../helpers/shared-data.js';
import { bigComponents, labelStats, pythonGate, referenceJacobian, type LabelStats } from './label-reference.js';
import { RAS_2P5, RAS_SHAPE, syntheticBrain } from './synthetic-brain.js';

const { dataTest, dataPath } = sharedData('ventricle-enlargement.spec');
const { pythonTest: pyTest, havePython } = pythonGate('ventricle-enlargement.spec');
const dir = mkdtempSync(join(tmpdir(), 'brain-ldm-ventricles-'));
const synthetic = syntheticBrain(RAS_SHAPE, RAS_2P5);

/**
 * Connectivity after the warp, against the map before: no label lost; a label that was one piece keeps at least
 * `keep` of its voxels in its largest piece; pieces of at least 10% of a label (and 20 voxels) do not multiply. (Pieces of a few voxels
 * come and go with any resampling of thin structures, even a rigid half-voxel shift, so they are not counted.)
 */
function checkConnectivity(t: import('ava').ExecutionContext, before: LabelStats, after: LabelStats, what: string, keep: number): number {
  let worst = 1;
  for (const [label, sizes] of Object.entries(before.components)) {
    const now = after.components[label];
    t.truthy(now, `${what}: label ${label} is gone`);
    if (!now) continue;
    const total = now.reduce((a, b) => a + b, 0);
    if (sizes.length === 1) {
      worst = Math.min(worst, now[0] / total);
      t.true(now[0] / total >= keep, `${what}: label ${label} was one piece; now its largest piece holds ${(now[0] / total).toFixed(3)} (sizes ${now.slice(0, 5).join(', ')})`);
    }
    const floor = Math.max(20, 0.1 * sizes.reduce((a, b) => a + b, 0));
    t.true(bigComponents(now, floor) <= bigComponents(sizes, floor), `${what}: label ${label} pieces >= ${floor.toFixed(0)} voxels: ${bigComponents(sizes, floor)} -> ${bigComponents(now, floor)} (${now.slice(0, 5).join(', ')})`);
  }
  return worst;
}

test('factor 1 returns the input bytes unchanged and a zero field', (t) => {
  const r = enlargeVentricles(synthetic, 1);
  t.deepEqual(r.volume.data, synthetic.data);
  t.not(r.volume.data, synthetic.data, 'a copy, not the input array');
  t.is(r.factorAchieved, 1);
  t.true(r.field.x.every((v) => v === 0) && r.field.y.every((v) => v === 0) && r.field.z.every((v) => v === 0));
});

test('synthetic map: 1.5x, 2x, 3x reached within 2%, outer boundary and every label kept, same bytes on a rerun', (t) => {
  const enlarger = createVentricleEnlarger(synthetic);
  const before = countLabels(synthetic, VENTRICLE_LABELS);
  const nonZero = (v: Volume) => v.data.reduce((s: number, l) => s + (l !== 0 ? 1 : 0), 0);
  for (const factor of [1.5, 2, 3]) {
    const r = enlarger.enlarge(factor);
    const after = countLabels(r.volume, VENTRICLE_LABELS);
    t.true(Math.abs(after / before / factor - 1) <= 0.02, `x${factor}: ${before} -> ${after} ventricle voxels`);
    t.is(r.factorAchieved, after / before);
    t.true(Math.abs(nonZero(r.volume) / nonZero(synthetic) - 1) < 0.002, `x${factor}: brain voxels ${nonZero(synthetic)} -> ${nonZero(r.volume)}`);
    t.deepEqual([...labelCounts(r.volume).keys()], [...labelCounts(synthetic).keys()]);
    t.true(r.minJacobian > 0);
    // The parenchyma is compressed to make room: its labelled volume shrinks by about the ventricles' growth.
    const tissue = (v: Volume) => nonZero(v) - countLabels(v, [...VENTRICLE_LABELS, 24]);
    t.true(tissue(r.volume) < tissue(synthetic), `x${factor}: tissue voxels ${tissue(synthetic)} -> ${tissue(r.volume)}`);
  }
  t.deepEqual(enlargeVentricles(synthetic, 2.5).volume.data, createVentricleEnlarger(synthetic).enlarge(2.5).volume.data);
});

pyTest('synthetic map: the sampling map has a positive Jacobian determinant everywhere (numpy reference), connectivity kept', async (t) => {
  const r = enlargeVentricles(synthetic, 3);
  const ref = await referenceJacobian(r.field, join(dir, 'field.f32'));
  t.is(ref.nonPositive, 0);
  t.true(ref.min > 0.02, `min det ${ref.min}`);
  t.true(Math.abs(ref.min - r.minJacobian) < 1e-4, `ours ${r.minJacobian} vs numpy ${ref.min}`);
  await writeVolume(join(dir, 'syn.nii.gz'), synthetic);
  await writeVolume(join(dir, 'syn-x3.nii.gz'), r.volume);
  const [a, b] = await labelStats(join(dir, 'syn.nii.gz'), join(dir, 'syn-x3.nii.gz'));
  checkConnectivity(t, a, b, 'synthetic x3', 0.99);
});

test('bad arguments name the argument and the range', (t) => {
  t.throws(() => enlargeVentricles(synthetic, 0.5), { message: /enlargeVentricles: argument 'factor' must be a number in 1\.\.3 .*got 0\.5/ });
  t.throws(() => enlargeVentricles(synthetic, 3.5), { message: /argument 'factor' must be a number in 1\.\.3/ });
  t.throws(() => enlargeVentricles(synthetic, 2, { tolerance: 0 }), { message: /option 'tolerance' must be in \(0, 0\.5\), got 0/ });
  const noVentricles = { ...synthetic, data: synthetic.data.map((l) => (VENTRICLE_LABELS.includes(l) ? 2 : l)) };
  t.throws(() => enlargeVentricles(noVentricles, 2), { message: /has no ventricle voxel \(labels 4, 5, 43, 44, 14, 15\)/ });
  t.throws(() => enlargeVentricles({ ...synthetic, data: Int32Array.from(synthetic.data) } as never, 2), { message: /must be a Uint8Array of SynthSeg labels, got Int32Array/ });
});

for (const name of ['training_seg_01', 'training_seg_05']) {
  (havePython ? dataTest : pyTest)(`${name} on the thesis grid: 1.5x, 2x, 3x within 2%, Jacobian > 0, ICV within 0.2%, labels and connectivity kept`, async (t) => {
    const { volume } = await prepareLabelMap(dataPath(`synthseg-label-maps/${name}.nii.gz`), THESIS_GRID);
    const enlarger = createVentricleEnlarger(volume);
    const paths = [join(dir, `${name}.nii.gz`)];
    await writeVolume(paths[0], volume);
    for (const factor of [1.5, 2, 3]) {
      const t0 = performance.now();
      const r = enlarger.enlarge(factor);
      t.log(`x${factor}: ${r.ventricleMlBefore.toFixed(1)} -> ${r.ventricleMlAfter.toFixed(1)} mL (x${r.factorAchieved.toFixed(3)}), ICV ${r.icvMlBefore.toFixed(1)} -> ${r.icvMlAfter.toFixed(1)} mL, max displacement ${r.maxDisplacementMm.toFixed(1)} mm, min det ${r.minJacobian.toFixed(3)}, ${r.evaluations} tries, ${(performance.now() - t0).toFixed(0)} ms`);
      t.true(Math.abs(r.factorAchieved / factor - 1) <= 0.02, `x${factor}: achieved ${r.factorAchieved}`);
      t.true(Math.abs(r.icvMlAfter / r.icvMlBefore - 1) < 0.002, `x${factor}: ICV ${r.icvMlBefore} -> ${r.icvMlAfter}`);
      t.true(r.minJacobian > 0, `x${factor}: min det ${r.minJacobian}`);
      paths.push(join(dir, `${name}-x${factor}.nii.gz`));
      await writeVolume(paths[paths.length - 1], r.volume);
      if (factor === 3) {
        const ref = await referenceJacobian(r.field, join(dir, `${name}.f32`));
        t.is(ref.nonPositive, 0, `x3: numpy finds ${ref.nonPositive} voxels with det <= 0 (min ${ref.min})`);
      }
    }
    const [before, ...after] = await labelStats(...paths);
    const worst = after.map((a, i) => checkConnectivity(t, before, a, `${name} x${[1.5, 2, 3][i]}`, 0.9));
    t.log(`largest piece of labels that were one piece, worst share: ${worst.map((w) => w.toFixed(3)).join(', ')}`);
  });
}
