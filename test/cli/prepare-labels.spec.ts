/**
 * brain-ldm prepare-labels: one uint8 SynthSeg map per input on the requested grid (affine, sform and qform as nibabel
 * reads them), one report line per input in prepare-report.jsonl, reruns replace their lines, usage errors exit 2.
 */
import test from 'ava';
import { createHash } from 'node:crypto';
import { existsSync, mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { writeNifti, type Affine } from '../../ts/io/nifti.js';
import { prepareLabelMap, REDUCED_GRID } from '../../ts/labels/prepare-label-maps.js';
import { niftiInfo, pythonGate } from '../augment/label-reference.js';
import { captureCli } from '../helpers/capture-cli.js';
import { sharedData } from '../helpers/shared-data.js';

const { dataTest, dataPath } = sharedData('prepare-labels.spec');
const { havePython } = pythonGate('prepare-labels.spec');
const dir = mkdtempSync(join(tmpdir(), 'brain-ldm-prepare-cli-'));

const run = captureCli;

const LIA: Affine = [[-1, 0, 0, 32], [0, 0, 1, -32], [0, -1, 0, 32], [0, 0, 0, 1]];

/** A 64^3 1 mm LIA aseg-style map (extra-cerebral 507, choroid plexus 136 -> 4), shifted by `shift` voxels. */
async function asegMap(path: string, shift: number): Promise<void> {
  const n = 64;
  const data = new Int32Array(n * n * n);
  for (let k = 0; k < n; k++) for (let j = 0; j < n; j++) for (let i = 0; i < n; i++) {
    const x = i - 31.5 - shift, y = j - 31.5, z = k - 31.5;
    const r = Math.hypot(x, y * 1.2, z);
    let v = 0;
    if (r < 30) v = 507;
    if (r < 26) v = x > 0 ? 3 : 42;
    if (r < 22) v = x > 0 ? 2 : 41;
    if (Math.hypot(x - 6, y, z) < 5) v = 4;
    if (Math.hypot(x + 6, y, z) < 5) v = 43;
    if (Math.hypot(x - 6, y, z - 5) < 1.5) v = 136;
    data[i + n * (j + n * k)] = v;
  }
  await writeNifti(path, { data, shape: [n, n, n], affine: LIA, header: { qformCode: 1, sformCode: 1 } });
}

const inputs = [join(dir, 'subject-a.nii.gz'), join(dir, 'subject-b.nii')];
const ready = Promise.all([asegMap(inputs[0], 0), asegMap(inputs[1], 3)]);

test.serial('two maps on a custom RAS grid: files, report lines, the same bytes as prepareLabelMap; a rerun replaces its lines', async (t) => {
  await ready;
  const out = join(dir, 'custom');
  const args = ['prepare-labels', ...inputs, '--out', out, '--grid', '30x36x30@2,2,2', '--orientation', 'ras'];
  const r = await run(args);
  t.is(r.code, 0, r.err);
  t.regex(r.out, /merged: {2}136->4/);
  t.regex(r.out, new RegExp(`wrote ${join(out, 'subject-a.nii.gz').replace(/[.*+?^${}()|[\]\\/]/g, '\\$&')}`));
  const lines = readFileSync(join(out, 'prepare-report.jsonl'), 'utf8').trim().split('\n').map((l) => JSON.parse(l));
  t.deepEqual(lines.map((l) => l.outputPath), [join(out, 'subject-a.nii.gz'), join(out, 'subject-b.nii.gz')]);
  for (const [i, input] of inputs.entries()) {
    const expected = await prepareLabelMap(input, { orientation: 'RAS', shape: [30, 36, 30], spacingMm: [2, 2, 2] });
    t.is(lines[i].input.path, input);
    t.deepEqual(lines[i].output, JSON.parse(JSON.stringify(expected.report.output)));
    t.deepEqual(lines[i].ventricleMl, expected.report.ventricleMl);
    if (havePython) {
      const info = await niftiInfo(lines[i].outputPath);
      t.is(info.dtype, 'uint8');
      t.deepEqual(info.shape, [30, 36, 30]);
      for (const m of [info.sform, info.qform]) for (let a = 0; a < 4; a++) for (let b = 0; b < 4; b++) t.true(Math.abs(m[a][b] - expected.report.output.affine[a][b]) < 1e-5);
      t.true(info.sformCode > 0 && info.qformCode > 0);
      t.is(info.sha, createHash('sha256').update(expected.volume.data).digest('hex'));
    }
  }
  t.is((await run([...args, '--json'])).code, 0);
  t.is(readFileSync(join(out, 'prepare-report.jsonl'), 'utf8').trim().split('\n').length, 2, 'a rerun replaces its lines');
});

test.serial('usage errors exit 2 naming the option; --help prints the usage; a missing file exits 1 naming it', async (t) => {
  await ready;
  const out = join(dir, 'errors');
  const cases: Array<[string[], RegExp]> = [
    [[inputs[0], '--out', out, '--nope'], /Unknown option '--nope'/],
    [['--out', out], /missing the label maps/],
    [[inputs[0]], /missing --out <dir>/],
    [[inputs[0], '--out', out, '--grid', 'huge'], /--grid must be thesis, reduced or <W>x<H>x<D>@<sx>,<sy>,<sz>.*got 'huge'/],
    [[inputs[0], '--out', out, '--grid', '96x128x96@1,0,1'], /--grid must be .*got '96x128x96@1,0,1'/],
    [[inputs[0], '--out', out, '--orientation', 'XYZ'], /--orientation must be 3 axis codes .*got 'XYZ'/],
    [[inputs[0], join(dir, 'other', 'subject-a.nii.gz'), '--out', out], /have the same basename 'subject-a'/],
    [[join(dir, 'notes.txt'), '--out', out], /notes\.txt: expected a NIfTI label map/],
  ];
  for (const [args, message] of cases) {
    const r = await run(['prepare-labels', ...args]);
    t.is(r.code, 2, args.join(' '));
    t.regex(r.err, /^brain-ldm prepare-labels: /);
    t.regex(r.err, message);
    t.regex(r.err, /usage: brain-ldm prepare-labels/);
  }
  t.false(existsSync(out), 'nothing written on a usage error');
  const help = await run(['prepare-labels', '--help']);
  t.is(help.code, 0);
  t.regex(help.out, /--grid <grid> +thesis \(default/);
  const missing = await run(['prepare-labels', join(dir, 'absent.nii.gz'), '--out', out]);
  t.is(missing.code, 1);
  t.regex(missing.err, /brain-ldm prepare-labels: .*absent\.nii\.gz/);
});

dataTest.serial('training_seg_02 on the reduced grid: 48x64x48 IPL at 3.334x3.5x3.334 mm, report line with the volumes', async (t) => {
  const out = join(dir, 'reduced');
  const r = await run(['prepare-labels', dataPath('synthseg-label-maps/training_seg_02.nii.gz'), '--out', out, '--grid', 'reduced', '--json']);
  t.is(r.code, 0, r.err);
  const line = JSON.parse(r.out);
  t.deepEqual(line.output.shape, REDUCED_GRID.shape);
  t.is(line.output.orientation, 'IPL');
  t.deepEqual(line.output.spacingMm, REDUCED_GRID.spacingMm);
  t.true(line.ventricleMl.output > 10 && Math.abs(line.ventricleChange.output) < 0.1, JSON.stringify(line.ventricleMl));
  t.deepEqual(JSON.parse(readFileSync(join(out, 'prepare-report.jsonl'), 'utf8')), line);
});
