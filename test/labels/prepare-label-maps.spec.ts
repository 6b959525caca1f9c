/**
 * prepareLabelMap: aseg-style map -> SynthSeg 33 labels on the thesis grid, with a report of merges, drops and
 * volumes per step. A small synthetic map always runs; the real SynthSeg training maps run when ../shared/data is
 * there (compared with MONAI Orientation + Spacing numbers in reference.json).
 */
import test from 'ava';
import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { writeNifti, type Affine } from '../../ts/io/nifti.js';
import { countLabels, labelCounts, volumeAxcodes, voxelVolumeMm3 } from '../../ts/labels/label-volume.js';
import { formatPrepareReport, prepareLabelMap, THESIS_GRID } from '../../ts/labels/prepare-label-maps.js';
import { SYNTHSEG_LABELS, VENTRICLE_LABELS } from '../../ts/labels/synthseg-labels.js';
import { sharedData } from '../helpers/shared-data.js';

const { dataTest, dataPath } = sharedData('prepare-label-maps.spec');

const ref = JSON.parse(readFileSync(new URL('../fixtures/nifti/reference.json', import.meta.url), 'utf8')) as {
  files: Array<{ path: string; ventricle_voxels_raw?: number; ventricle_voxels_mapped?: number; monai_thesis?: { ventricle_voxels: number; voxel_mm3: number } }>;
};

const LIA: Affine = [[-1, 0, 0, 40], [0, 0, 1, -40], [0, -1, 0, 40], [0, 0, 0, 1]];

/** A 64^3 1 mm LIA aseg-style map: a head of extra-cerebral tissue around a brain with ventricles and choroid plexus. */
async function syntheticAseg(path: string): Promise<void> {
  const n = 64;
  const data = new Int32Array(n * n * n);
  for (let k = 0; k < n; k++) for (let j = 0; j < n; j++) for (let i = 0; i < n; i++) {
    const x = i - 31.5, y = j - 31.5, z = k - 31.5;
    const r = Math.hypot(x, y * 1.2, z);
    let v = 0;
    if (r < 30) v = 507; // soft tissue -> background
    if (r < 26) v = x > 0 ? 3 : 42; // cortex (LIA: +i is left)
    if (r < 22) v = x > 0 ? 2 : 41;
    if (Math.hypot(x - 6, y, z) < 5) v = 4;
    if (Math.hypot(x + 6, y, z) < 5) v = 43;
    if (Math.hypot(x - 6, y, z - 5) < 1.5) v = 136; // choroid plexus next to 4 -> 4
    if (Math.abs(x) < 1 && Math.abs(y) < 6 && Math.abs(z) < 3) v = 14;
    if (Math.hypot(x, y - 15, z) < 2) v = 77; // WM hypointensity: no rule in the design docs -> background
    data[i + n * (j + n * k)] = v;
  }
  await writeNifti(path, { data, shape: [n, n, n], affine: LIA, header: { qformCode: 1, sformCode: 1 } });
}

test('synthetic aseg map: mapped, reoriented, resampled and cropped, with a report of what changed', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'brain-ldm-prep-'));
  const path = join(dir, 'aseg.nii.gz');
  await syntheticAseg(path);
  const { volume, report } = await prepareLabelMap(path, { orientation: 'RAS', shape: [30, 36, 30], spacingMm: [2, 2, 2] });
  t.true(volume.data instanceof Uint8Array);
  t.deepEqual(volume.shape, [30, 36, 30]);
  t.is(volumeAxcodes(volume), 'RAS');
  t.true(Math.abs(voxelVolumeMm3(volume.affine) - 8) < 1e-12);
  t.deepEqual(report.input.orientation, 'LIA');
  t.deepEqual(report.input.shape, [64, 64, 64]);
  t.deepEqual(report.mapping.merged.map((m) => [m.from, m.to]), [[136, 4]]);
  t.deepEqual(report.mapping.dropped.map((d) => d.label), [507]);
  t.deepEqual(report.mapping.unknown.map((u) => u.label), [77]);
  t.regex(report.warnings.join('\n'), /label 77 \(\d+ voxels, [\d.]+ mL\) is not a SynthSeg generation label; set to background/);
  t.true(report.ventricleMl.mapped > report.ventricleMl.input, 'choroid plexus adds to the ventricles');
  t.is(report.crop.lostVoxels, 0);
  t.deepEqual(report.output.shape, [30, 36, 30]);
  for (const l of [...labelCounts(volume).keys()]) t.true(SYNTHSEG_LABELS.includes(l));
  t.true(Math.abs(report.ventricleChange.output) < 0.1);
  // Left stays left: in RAS the left lateral ventricle (4) lies at lower i than the right one (43).
  const lv = [...volume.data.keys()].filter((n) => volume.data[n] === 4).map((n) => n % 30);
  const rv = [...volume.data.keys()].filter((n) => volume.data[n] === 43).map((n) => n % 30);
  t.true(Math.max(...lv) < Math.min(...rv), 'RAS: left ventricle at lower i than the right one');
  t.regex(formatPrepareReport(report), /merged: {2}136->4 [\d.]+ mL/);
  t.regex(formatPrepareReport(report), /ventricles \(4,5,43,44,14,15\): input [\d.]+ mL, mapped [\d.]+ mL, resampled/);
});

test('argument errors name the option', async (t) => {
  await t.throwsAsync(prepareLabelMap('x.nii', { ...THESIS_GRID, orientation: 'XYZ' }), { message: /prepareLabelMap: argument 'orientation' "XYZ" must name each of the pairs/ });
  await t.throwsAsync(prepareLabelMap('x.nii', { ...THESIS_GRID, shape: [96, 128] }), { message: /prepareLabelMap: option 'shape' must be 3 integers >= 1, got \[96,128\]/ });
  await t.throwsAsync(prepareLabelMap('x.nii', { ...THESIS_GRID, spacingMm: [1, 0, 1] }), { message: /option 'spacingMm' must be 3 positive numbers/ });
  await t.throwsAsync(prepareLabelMap('/nonexistent/x.nii', THESIS_GRID), { message: /\/nonexistent\/x\.nii: no such file/ });
});

for (const f of ref.files.filter((x) => x.monai_thesis)) {
  dataTest(`${f.path} on the thesis grid: 96x128x96 IPL, only the 33 labels, all present; ventricles as MONAI resamples them`, async (t) => {
    const { volume, report } = await prepareLabelMap(dataPath(f.path), THESIS_GRID);
    t.log(formatPrepareReport(report));
    t.deepEqual(volume.shape, [96, 128, 96]);
    t.is(volumeAxcodes(volume), 'IPL');
    t.deepEqual(report.output.spacingMm, [1.667, 1.75, 1.667]);
    t.deepEqual([...labelCounts(volume).keys()], [...SYNTHSEG_LABELS]);
    t.deepEqual(report.missingLabels, []);
    t.is(report.ventricleMl.input, f.ventricle_voxels_raw! / 1000);
    t.is(report.ventricleMl.mapped, f.ventricle_voxels_mapped! / 1000);
    const monaiMl = (f.monai_thesis!.ventricle_voxels * f.monai_thesis!.voxel_mm3) / 1000;
    t.true(Math.abs(report.ventricleMl.resampled - monaiMl) < 1e-3);
    t.true(Math.abs(report.ventricleMl.output - monaiMl) < 1e-3, 'the crop keeps every ventricle voxel');
    t.is(report.crop.lostVentricleVoxels, 0);
    t.true(report.crop.lostByLabel.every((l) => l.label === 24), `only spinal CSF is cut off: ${JSON.stringify(report.crop.lostByLabel)}`);
    t.true(Math.abs(countLabels(volume, VENTRICLE_LABELS) * voxelVolumeMm3(volume.affine) / 1000 - report.ventricleMl.output) < 1e-3);
    if (!f.path.endsWith('training_seg_13.nii.gz')) {
      t.true(Math.abs(report.ventricleChange.output) < 0.02);
      t.deepEqual(report.warnings, []);
    } else {
      t.regex(report.warnings.join('\n'), /ventricle volume changed by 3\.4\d%/);
    }
  });
}

dataTest('centring on every non-zero label (cropCenterExclude []) cuts off cortex: SynthSeg maps label CSF down the spinal canal', async (t) => {
  const path = dataPath('synthseg-label-maps/training_seg_01.nii.gz');
  const { report } = await prepareLabelMap(path, { ...THESIS_GRID, cropCenterExclude: [] });
  const lost = Object.fromEntries(report.crop.lostByLabel.map((l) => [l.label, l.voxels]));
  t.true((lost[3] ?? 0) > 1000 && (lost[42] ?? 0) > 1000, JSON.stringify(lost));
  t.regex(report.warnings.join('\n'), /crop cuts off \d+ labelled voxels/);
  // The box it centred on spans > 200 mm inferior-superior (axis 0 of IPL).
  t.true((report.crop.brainBoxMax[0] - report.crop.brainBoxMin[0] + 1) * 1.667 > 200);
});
