import test from 'ava';
import { mkdtemp, readdir, readFile, rm, copyFile, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  checkNnunetCaseId, NnunetDatasetWriter, nnunetLabels, parseNnunetDatasetName, toNnunetLabelMap,
} from '../../ts/export/nnunet-dataset.js';
import type { Volume } from '../../ts/labels/label-volume.js';
import { SYNTHSEG_LABEL_NAMES, SYNTHSEG_LABELS, VENTRICLE_LABELS } from '../../ts/labels/synthseg-labels.js';
import { seededRandom } from '../../ts/random/seeded-random.js';
import { pythonReference, runPython } from '../helpers/python-reference.js';

const { pythonTest } = pythonReference('nnunet-dataset.spec', ['numpy', 'nibabel']);

/** IPL grid at the thesis spacing (1.667 x 1.75 x 1.667 mm), as the generator's outputs are laid out. */
const IPL_AFFINE = [[0, 0, -1.667, 80.5], [0, -1.75, 0, 101.25], [-1.667, 0, 0, 60], [0, 0, 0, 1]];
const SHAPE: [number, number, number] = [12, 10, 8];

function makeCase(index: number): { image: Volume<Float32Array>; labels: Volume<Uint8Array> } {
  const r = seededRandom(3, 'nnunet-spec', index);
  const n = SHAPE[0] * SHAPE[1] * SHAPE[2];
  const image = new Float32Array(n).map(() => r.next());
  const labels = new Uint8Array(n).map(() => SYNTHSEG_LABELS[r.int(SYNTHSEG_LABELS.length)]);
  return { image: { data: image, shape: [...SHAPE], affine: IPL_AFFINE.map((row) => row.slice()) }, labels: { data: labels, shape: [...SHAPE], affine: IPL_AFFINE.map((row) => row.slice()) } };
}

async function tempRoot(t: { teardown: (f: () => Promise<void>) => void }): Promise<string> {
  const root = await mkdtemp(join(tmpdir(), 'brain-ldm-nnunet-'));
  t.teardown(() => rm(root, { recursive: true, force: true }));
  return root;
}

const quiet = { onWarning: () => undefined };

test('dataset names follow nnU-Net v2: DatasetXXX_Name, three-digit id, safe name; Decathlon ids warn', (t) => {
  t.deepEqual(parseNnunetDatasetName('Dataset801_SynthVentricles'), { id: 801, name: 'SynthVentricles', folder: 'Dataset801_SynthVentricles' });
  t.is(parseNnunetDatasetName('Dataset042_brain-ldm_v2').name, 'brain-ldm_v2');
  const msd = parseNnunetDatasetName('Dataset005_Prostate');
  t.is(msd.id, 5);
  t.regex(msd.warning ?? '', /ids 001-010 are the Medical Segmentation Decathlon's/);
  t.is(parseNnunetDatasetName('Dataset011_X').warning, undefined);
  const bad: Array<[string, RegExp]> = [
    ['Task801_Synth', /expected 'DatasetXXX_Name' with XXX a three-digit id/],
    ['Dataset81_Synth', /"Dataset81_Synth": expected 'DatasetXXX_Name'/],
    ['Dataset8011_Synth', /expected 'DatasetXXX_Name'/],
    ['Dataset801Synth', /expected 'DatasetXXX_Name'/],
    ['Dataset801_', /the name after 'Dataset801_' is empty/],
    ['Dataset000_Synth', /id 000 is not a dataset id/],
    ['Dataset801_a/b', /the name "a\/b" has characters that are unsafe/],
    ['Dataset801_a b', /unsafe in a folder name/],
    ['Dataset801_..', /unsafe in a folder name/],
  ];
  for (const [name, message] of bad) t.throws(() => parseNnunetDatasetName(name), { message }, name);
});

test('labels: 33 SynthSeg classes as 0..32 in channel order, or binary ventricles; background 0, consecutive', (t) => {
  const s = nnunetLabels('synthseg');
  t.deepEqual(Object.values(s), Array.from({ length: 33 }, (_, i) => i));
  t.is(s.background, 0);
  t.deepEqual(Object.keys(s), SYNTHSEG_LABELS.map((l) => SYNTHSEG_LABEL_NAMES[l]));
  t.is(s['left lateral ventricle'], SYNTHSEG_LABELS.indexOf(4));
  t.is(s['right ventral DC'], 32);
  t.deepEqual(nnunetLabels('ventricles'), { background: 0, ventricles: 1 });
  t.throws(() => nnunetLabels('aseg' as never), { message: /argument 'task' must be one of 'synthseg', 'ventricles', got "aseg"/ });
});

test('toNnunetLabelMap maps SynthSeg values per task and names an unknown value', (t) => {
  const all = Uint8Array.from(SYNTHSEG_LABELS);
  t.deepEqual([...toNnunetLabelMap(all, 'synthseg')], SYNTHSEG_LABELS.map((_, i) => i));
  t.deepEqual([...toNnunetLabelMap(all, 'ventricles')], SYNTHSEG_LABELS.map((l) => (VENTRICLE_LABELS.includes(l) ? 1 : 0)));
  t.deepEqual([...toNnunetLabelMap(Uint8Array.of(0, 4, 5, 43, 44, 14, 15, 24), 'ventricles')], [0, 1, 1, 1, 1, 1, 1, 0]);
  t.throws(() => toNnunetLabelMap(Uint8Array.of(0, 4, 31), 'ventricles'), { message: /voxel 2 has value 31, which is not one of the 33 SynthSeg labels/ });
  t.throws(() => toNnunetLabelMap(Uint8Array.of(0, 77), 'synthseg'), { message: /voxel 1 has value 77/ });
  t.throws(() => toNnunetLabelMap(Int32Array.of(0) as never, 'synthseg'), { message: /must be a Uint8Array/ });
});

test('case ids: safe characters, no channel-like _NNNN suffix', (t) => {
  t.notThrows(() => checkNnunetCaseId('synth_000042'));
  t.notThrows(() => checkNnunetCaseId('a-0001'));
  t.throws(() => checkNnunetCaseId('synth_0042'), { message: /ends in '_' and four digits, which reads as nnU-Net's channel suffix .* "synth-0042"/ });
  for (const id of ['', 'a/b', 'a.b', '_x', 'a b', 'x'.repeat(201)]) t.throws(() => checkNnunetCaseId(id), { message: /expected 1-200 letters, digits/ }, id);
});

pythonTest('a written dataset obeys the nnU-Net v2 rules and reads back in nibabel with the image geometry and values', async (t) => {
  const root = await tempRoot(t);
  const writer = await NnunetDatasetWriter.open(root, 'Dataset801_SynthTest', 'synthseg', { license: 'CC-BY-4.0 (test)', reference: 'Ruschke et al. 2024', ...quiet });
  const cases = [0, 1].map(makeCase);
  for (const [i, c] of cases.entries()) await writer.writeCase(`synth_${String(i).padStart(6, '0')}`, c.image, c.labels);
  const result = await writer.finalize();
  t.is(result.numTraining, 2);
  t.deepEqual(result.cases, ['synth_000000', 'synth_000001']);
  t.deepEqual(result.incomplete, []);

  const folder = join(root, 'Dataset801_SynthTest');
  t.deepEqual((await readdir(folder)).sort(), ['dataset.json', 'imagesTr', 'labelsTr']);
  t.deepEqual((await readdir(join(folder, 'imagesTr'))).sort(), ['synth_000000_0000.nii.gz', 'synth_000001_0000.nii.gz']);
  t.deepEqual((await readdir(join(folder, 'labelsTr'))).sort(), ['synth_000000.nii.gz', 'synth_000001.nii.gz']);
  const json = JSON.parse(await readFile(join(folder, 'dataset.json'), 'utf8'));
  t.deepEqual(Object.keys(json).slice(0, 4), ['channel_names', 'labels', 'numTraining', 'file_ending']);
  t.deepEqual(json.channel_names, { 0: 'T1' });
  t.is(json.file_ending, '.nii.gz');
  t.is(json.licence, 'CC-BY-4.0 (test)');
  t.is(json.reference, 'Ruschke et al. 2024');
  t.is(json.name, 'SynthTest');
  t.is(json.brain_ldm.task, 'synthseg');
  t.deepEqual(json.brain_ldm.synthseg_labels['3'], [4]);

  // nnU-Net's checks (verify_dataset_integrity, EVALUATION.md 1.2-1.4) redone with nibabel: cases found from
  // imagesTr, a label per case, numTraining, labels consecutive from background 0 and only those in the files,
  // image and label of a case with the same shape, spacing and affine; plus our own values and geometry.
  const report = await runPython<{
    identifiers: string[]; numTraining: number; consecutive: boolean; background: number;
    cases: Record<string, { imageDtype: string; labelDtype: string; shape: number[]; labelShape: number[]; zooms: number[]; labelZooms: number[];
      imageAffine: number[][]; labelAffine: number[][]; labelQform: number[][]; imageValues: number[]; labelValues: number[]; unexpected: number[] }>;
  }>(`
import json, os, sys
import nibabel as nib, numpy as np
folder = sys.argv[1]
ds = json.load(open(os.path.join(folder, 'dataset.json')))
ending = ds['file_ending']
imgs = sorted(f for f in os.listdir(os.path.join(folder, 'imagesTr')) if f.endswith(ending))
ids = sorted(set(f[:-(len(ending) + 5)] for f in imgs))
values = sorted(ds['labels'].values())
out = {'identifiers': ids, 'numTraining': ds['numTraining'], 'background': ds['labels']['background'],
       'consecutive': bool(np.all(np.diff(values) == 1)) and values[0] == 0, 'cases': {}}
for c in ids:
    im = nib.load(os.path.join(folder, 'imagesTr', c + '_0000' + ending))
    lb = nib.load(os.path.join(folder, 'labelsTr', c + ending))
    lv = np.asarray(lb.dataobj)
    out['cases'][c] = {
        'imageDtype': str(im.get_data_dtype()), 'labelDtype': str(lb.get_data_dtype()),
        'shape': list(im.shape), 'labelShape': list(lb.shape),
        'zooms': [float(z) for z in im.header.get_zooms()], 'labelZooms': [float(z) for z in lb.header.get_zooms()],
        'imageAffine': im.affine.tolist(), 'labelAffine': lb.affine.tolist(), 'labelQform': lb.get_qform().tolist(),
        'imageValues': np.asarray(im.dataobj).ravel(order='F').astype(float).tolist(),
        'labelValues': lv.ravel(order='F').astype(int).tolist(),
        'unexpected': sorted(set(np.unique(lv).tolist()) - set(values)),
    }
print(json.dumps(out))
`, [folder]);
  t.deepEqual(report.identifiers, ['synth_000000', 'synth_000001']);
  t.is(report.numTraining, report.identifiers.length);
  t.true(report.consecutive);
  t.is(report.background, 0);
  for (const [i, c] of cases.entries()) {
    const r = report.cases[`synth_${String(i).padStart(6, '0')}`];
    t.is(r.imageDtype, 'float32');
    t.is(r.labelDtype, 'uint8');
    t.deepEqual(r.shape, SHAPE);
    t.deepEqual(r.labelShape, SHAPE);
    for (const z of [...r.zooms, ...r.labelZooms]) t.true([1.667, 1.75].some((s) => Math.abs(z - s) < 1e-5), `zoom ${z}`);
    t.deepEqual(r.labelZooms, r.zooms);
    t.deepEqual(r.labelAffine, r.imageAffine, 'the label file carries the image affine');
    for (let a = 0; a < 4; a++) for (let b = 0; b < 4; b++) {
      t.true(Math.abs(r.imageAffine[a][b] - IPL_AFFINE[a][b]) < 1e-4, `affine[${a}][${b}]`);
      t.true(Math.abs(r.labelQform[a][b] - IPL_AFFINE[a][b]) < 1e-4, `qform[${a}][${b}]`);
    }
    t.deepEqual(r.unexpected, []);
    t.deepEqual(r.imageValues, Array.from(c.image.data), 'image values are the float32 input exactly');
    t.deepEqual(r.labelValues, Array.from(c.labels.data, (l) => SYNTHSEG_LABELS.indexOf(l)), 'labels are the consecutive indices');
  }
});

pythonTest('ventricles task writes a binary mask', async (t) => {
  const root = await tempRoot(t);
  const writer = await NnunetDatasetWriter.open(root, 'Dataset802_Vent', 'ventricles', quiet);
  const c = makeCase(5);
  await writer.writeCase('v1', c.image, c.labels);
  await writer.finalize();
  const folder = join(root, 'Dataset802_Vent');
  const json = JSON.parse(await readFile(join(folder, 'dataset.json'), 'utf8'));
  t.deepEqual(json.labels, { background: 0, ventricles: 1 });
  t.deepEqual(json.brain_ldm.synthseg_labels['1'], [4, 5, 43, 44, 14, 15]);
  const values = await runPython<number[]>(`
import sys, json, nibabel as nib, numpy as np
print(json.dumps(np.asarray(nib.load(sys.argv[1]).dataobj).ravel(order='F').astype(int).tolist()))
`, [join(folder, 'labelsTr', 'v1.nii.gz')]);
  t.deepEqual(values, Array.from(c.labels.data, (l) => (VENTRICLE_LABELS.includes(l) ? 1 : 0)));
  t.true(values.includes(1) && values.includes(0));
});

test('resume and shards: finalize counts complete cases on disk; half-written cases are reported, not counted', async (t) => {
  const root = await tempRoot(t);
  const first = await NnunetDatasetWriter.open(root, 'Dataset803_Resume', 'synthseg', quiet);
  await first.writeCase('a', makeCase(0).image, makeCase(0).labels);
  await first.writeCase('b', makeCase(1).image, makeCase(1).labels);
  t.is((await first.finalize()).numTraining, 2);

  // A second run (or shard) reopens the folder, adds a case and finalizes again.
  const second = await NnunetDatasetWriter.open(root, 'Dataset803_Resume', 'synthseg', quiet);
  await second.writeCase('c', makeCase(2).image, makeCase(2).labels);
  // An interrupted case: label written, image not yet (the write order); and a stray image without label.
  const folder = join(root, 'Dataset803_Resume');
  await copyFile(join(folder, 'labelsTr', 'a.nii.gz'), join(folder, 'labelsTr', 'd.nii.gz'));
  await copyFile(join(folder, 'imagesTr', 'a_0000.nii.gz'), join(folder, 'imagesTr', 'e_0000.nii.gz'));
  // A temporary file left by a crash is no case.
  await writeFile(join(folder, 'imagesTr', 'f_0000.nii.gz.tmp-1-0'), 'partial');
  const warnings: string[] = [];
  const again = await NnunetDatasetWriter.open(root, 'Dataset803_Resume', 'synthseg', { onWarning: (m) => warnings.push(m) });
  const result = await again.finalize();
  t.deepEqual(result.cases, ['a', 'b', 'c']);
  t.is(result.numTraining, 3);
  t.deepEqual(result.incomplete, ['d', 'e']);
  t.regex(warnings.join('\n'), /2 case\(s\) have only one of image\/label and are not counted: d, e/);
  t.is(JSON.parse(await readFile(join(folder, 'dataset.json'), 'utf8')).numTraining, 3);
});

test('reopening a dataset written for another task, or beside another dataset with the same id, is an error naming both', async (t) => {
  const root = await tempRoot(t);
  const w = await NnunetDatasetWriter.open(root, 'Dataset804_Both', 'ventricles', quiet);
  await w.finalize();
  await t.throwsAsync(NnunetDatasetWriter.open(root, 'Dataset804_Both', 'synthseg', quiet), {
    message: /Dataset804_Both\/dataset\.json has labels \{"background":0,"ventricles":1\} \(task "ventricles"\), but this export \(task 'synthseg'\) writes labels \{"background":0,"left cerebral white matter":1,/,
  });
  await t.throwsAsync(NnunetDatasetWriter.open(root, 'Dataset804_Both', 'ventricles', { channelName: 'FLAIR', ...quiet }), {
    message: /has channel_names \{"0":"T1"\}.* writes channel_names \{"0":"FLAIR"\}/,
  });
  await t.notThrowsAsync(NnunetDatasetWriter.open(root, 'Dataset804_Both', 'ventricles', quiet));
  await t.throwsAsync(NnunetDatasetWriter.open(root, 'Dataset804_Other', 'ventricles', quiet), {
    message: /Dataset804_Both already has id 804; nnU-Net needs one name per id, so Dataset804_Other cannot go beside it/,
  });
  await writeFile(join(root, 'Dataset804_Both', 'dataset.json'), '{ not json');
  await t.throwsAsync(NnunetDatasetWriter.open(root, 'Dataset804_Both', 'ventricles', quiet), { message: /dataset\.json is not valid JSON/ });
  const warnings: string[] = [];
  await NnunetDatasetWriter.open(root, 'Dataset007_Msd', 'ventricles', { onWarning: (m) => warnings.push(m) });
  t.regex(warnings[0], /Dataset007_Msd: ids 001-010 are the Medical Segmentation Decathlon's/);
});

test('bad cases are refused before anything is written', async (t) => {
  const root = await tempRoot(t);
  const w = await NnunetDatasetWriter.open(root, 'Dataset805_Bad', 'synthseg', quiet);
  const good = makeCase(0);
  const withLabel = (v: number) => { const d = good.labels.data.slice(); d[17] = v; return { ...good.labels, data: d }; };
  const cases: Array<[string, Volume<Float32Array>, Volume<Uint8Array>, RegExp]> = [
    ['x', good.image, withLabel(99), /writeCase\("x"\): toNnunetLabelMap: voxel 17 has value 99/],
    ['x', good.image, { ...good.labels, shape: [12, 8, 10], }, /labels shape \[12, 8, 10\] differs from image shape \[12, 10, 8\]/],
    ['x', good.image, { ...good.labels, affine: [[1, 0, 0, 0], [0, 1, 0, 0], [0, 0, 1, 0], [0, 0, 0, 1]] }, /labels affine differs from the image affine/],
    ['x', { ...good.image, data: Float32Array.from(good.image.data, (v, i) => (i === 5 ? NaN : v)) }, good.labels, /image voxel 5 is NaN/],
    ['x', { ...good.image, data: new Float64Array(good.image.data) as never }, good.labels, /'image.data' must be a Float32Array, got Float64Array/],
    ['x_0001', good.image, good.labels, /channel suffix/],
    ['../x', good.image, good.labels, /expected 1-200 letters/],
  ];
  for (const [id, image, labels, message] of cases) await t.throwsAsync(w.writeCase(id, image, labels), { message }, String(message));
  t.deepEqual(await readdir(join(root, 'Dataset805_Bad', 'imagesTr')), []);
  t.deepEqual(await readdir(join(root, 'Dataset805_Bad', 'labelsTr')), []);
});

test('the same case gives identical bytes', async (t) => {
  const root = await tempRoot(t);
  const a = await NnunetDatasetWriter.open(root, 'Dataset806_A', 'synthseg', quiet);
  const b = await NnunetDatasetWriter.open(root, 'Dataset807_B', 'synthseg', quiet);
  const c = makeCase(9);
  await a.writeCase('s', c.image, c.labels);
  await b.writeCase('s', c.image, c.labels);
  for (const f of ['imagesTr/s_0000.nii.gz', 'labelsTr/s.nii.gz'])
    t.true((await readFile(join(root, 'Dataset806_A', f))).equals(await readFile(join(root, 'Dataset807_B', f))), f);
});
