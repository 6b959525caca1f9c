/**
 * `brain-ldm synthseg-images`: files and manifest as specified, float32 on the label map's exact geometry (read back
 * by our reader and by nibabel), output k of a map independent of the other maps and of earlier runs (same bytes),
 * usage errors with exit code 2, failures with exit code 1 and a message naming the file. Serial: captureCli swaps
 * console.error to capture it.
 */
import test from 'ava';
import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { readNifti, writeNifti, type Affine } from '../../ts/io/nifti.js';
import { captureCli as cli } from '../helpers/capture-cli.js';
import { pythonReference, runReference } from '../helpers/python-reference.js';

const { pythonTest } = pythonReference('synthseg-images.spec', ['numpy', 'nibabel']);

const IPL: Affine = [[0, 0, -1.667, 70], [0, -1.75, 0, 60], [-1.667, 0, 0, 50], [0, 0, 0, 1]];

/** A 28x32x24 uint8 map of SynthSeg labels (an ellipsoid brain with ventricles) with an IPL thesis-like affine. */
async function writeLabelMap(path: string, shift = 0): Promise<void> {
  const shape = [28, 32, 24];
  const data = new Uint8Array(28 * 32 * 24);
  for (let k = 0; k < 24; k++) for (let j = 0; j < 32; j++) for (let i = 0; i < 28; i++) {
    const r = Math.hypot((i - 13.5) / 12, (j - 15.5 - shift) / 14, (k - 11.5) / 10);
    let v = r < 1 ? 3 : 0;
    if (r < 0.8) v = k < 12 ? 2 : 41;
    if (r < 0.3) v = k < 12 ? 4 : 43;
    data[i + 28 * (j + 32 * k)] = v;
  }
  await writeNifti(path, { data, shape, affine: IPL, header: { qformCode: 1, sformCode: 1 } });
}

function workDir(t: { teardown: (f: () => void) => void }): string {
  const dir = mkdtempSync(join(tmpdir(), 'brain-ldm-synth-cli-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  return dir;
}

test.serial('writes <basename>_img<NNN>.nii.gz per map and image, float32 on the map\'s geometry, and a manifest line each', async (t) => {
  const dir = workDir(t);
  const a = join(dir, 'subject_a.nii.gz');
  const b = join(dir, 'subject_b.nii');
  await writeLabelMap(a);
  await writeLabelMap(b, 2);
  const out = join(dir, 'out');
  const r = await cli(['synthseg-images', a, b, '--out', out, '--seed', '7', '--count', '2']);
  t.is(r.code, 0, r.err);
  t.deepEqual(readdirSync(out).sort(), ['subject_a_img000.nii.gz', 'subject_a_img001.nii.gz', 'subject_b_img000.nii.gz', 'subject_b_img001.nii.gz', 'synth-manifest.jsonl']);
  t.regex(r.out, /^wrote .*subject_a_img000\.nii\.gz \(t1, (bias std \d\.\d\d|bias drawn, not applied), gamma \d+\.\d\d, (isotropic|one-axis|native) resolution [\d.x]+ mm\) in \d+ ms$/m);
  const labels = await readNifti(a);
  for (const name of ['subject_a_img000.nii.gz', 'subject_b_img001.nii.gz']) {
    const img = await readNifti(join(out, name));
    t.is(img.datatypeName, 'float32');
    t.deepEqual(img.shape, labels.shape);
    t.deepEqual(img.affine, labels.affine);
    t.is(img.header.qformCode, 1);
    t.is(img.header.sformCode, 1);
    let lo = Infinity;
    let hi = -Infinity;
    for (const v of img.data as Float32Array) { lo = Math.min(lo, v); hi = Math.max(hi, v); }
    t.is(lo, 0);
    t.is(hi, 1);
  }
  const lines = readFileSync(join(out, 'synth-manifest.jsonl'), 'utf8').trim().split('\n').map((l) => JSON.parse(l));
  t.is(lines.length, 4);
  t.deepEqual(lines.map((l) => [l.labels, l.output, l.seed, l.index, l.contrast]), [
    [a, join(out, 'subject_a_img000.nii.gz'), 7, 0, 't1'], [a, join(out, 'subject_a_img001.nii.gz'), 7, 1, 't1'],
    [b, join(out, 'subject_b_img000.nii.gz'), 7, 0, 't1'], [b, join(out, 'subject_b_img001.nii.gz'), 7, 1, 't1'],
  ]);
  for (const l of lines) {
    t.deepEqual(Object.keys(l), ['labels', 'output', 'seed', 'index', 'contrast', 'parameters']);
    t.deepEqual(l.parameters.gmm.classes.flatMap((c: { labels: number[] }) => c.labels).sort((x: number, y: number) => x - y), [0, 2, 3, 4, 41, 43]);
  }
});

test.serial('image k of a map depends only on (seed, basename, k): a rerun on one map, from another folder, gives the same bytes', async (t) => {
  const dir = workDir(t);
  const a = join(dir, 'm1.nii.gz');
  const b = join(dir, 'm2.nii.gz');
  await writeLabelMap(a);
  await writeLabelMap(b, 3);
  t.is((await cli(['synthseg-images', a, b, '--out', join(dir, 'all'), '--seed', '3', '--count', '3', '--contrast', 'random'])).code, 0);
  t.is((await cli(['synthseg-images', b, '--out', join(dir, 'one'), '--seed', '3', '--count', '2', '--contrast', 'random', '--json'])).code, 0);
  for (const k of ['000', '001']) {
    t.deepEqual(readFileSync(join(dir, 'one', `m2_img${k}.nii.gz`)), readFileSync(join(dir, 'all', `m2_img${k}.nii.gz`)));
  }
  t.notDeepEqual(readFileSync(join(dir, 'all', 'm2_img000.nii.gz')), readFileSync(join(dir, 'all', 'm2_img001.nii.gz')));
  t.is((await cli(['synthseg-images', b, '--out', join(dir, 'other-seed'), '--seed', '4', '--contrast', 'random'])).code, 0);
  t.notDeepEqual(readFileSync(join(dir, 'other-seed', 'm2_img000.nii.gz')), readFileSync(join(dir, 'all', 'm2_img000.nii.gz')));
});

test.serial('--json prints the manifest lines; a rerun replaces its own lines and keeps the others', async (t) => {
  const dir = workDir(t);
  const a = join(dir, 'x.nii.gz');
  await writeLabelMap(a);
  const out = join(dir, 'out');
  const first = await cli(['synthseg-images', a, '--out', out, '--seed', '1', '--count', '2', '--json', '--no-bias', '--no-blur']);
  t.is(first.code, 0, first.err);
  const printed = first.out.split('\n');
  t.deepEqual(printed, readFileSync(join(out, 'synth-manifest.jsonl'), 'utf8').trim().split('\n'));
  const rec = JSON.parse(printed[1]);
  t.is(rec.parameters.bias, null);
  t.is(rec.parameters.resolution, null);
  t.not(rec.parameters.intensity.gamma, null);
  const again = await cli(['synthseg-images', a, '--out', out, '--seed', '1', '--count', '3', '--json', '--no-bias', '--no-blur']);
  t.is(again.code, 0, again.err);
  const lines = readFileSync(join(out, 'synth-manifest.jsonl'), 'utf8').trim().split('\n');
  t.is(lines.length, 3);
  t.deepEqual(lines.slice(0, 2), printed);
  t.false(readdirSync(out).some((f) => f.includes('.tmp-')), 'no temporary files left');
});

pythonTest('nibabel reads an output as float32 with the label map\'s affine and shape', async (t) => {
  const dir = workDir(t);
  const a = join(dir, 'nb.nii.gz');
  await writeLabelMap(a);
  t.is((await cli(['synthseg-images', a, '--out', dir, '--seed', '9'])).code, 0);
  const r = await runReference<{ dtype: string; shape: number[]; same_affine: boolean; min: number; max: number }>(`
import nibabel as nib
lab = nib.load(inp['labels']); img = nib.load(inp['image'])
data = np.asanyarray(img.dataobj)
out = {'dtype': str(data.dtype), 'shape': list(data.shape), 'same_affine': bool(np.allclose(img.affine, lab.affine, atol=1e-6)),
       'min': float(data.min()), 'max': float(data.max())}
`, { labels: a, image: join(dir, 'nb_img000.nii.gz') });
  t.deepEqual(r, { dtype: 'float32', shape: [28, 32, 24], same_affine: true, min: 0, max: 1 });
});

test.serial('usage errors exit 2 with the usage; --help prints it; failures exit 1 naming the file', async (t) => {
  const dir = workDir(t);
  const a = join(dir, 'ok.nii.gz');
  await writeLabelMap(a);
  const help = await cli(['synthseg-images', '--help']);
  t.is(help.code, 0);
  t.regex(help.out, /^usage: brain-ldm synthseg-images <labels\.nii\.gz \.\.\.> --out <dir> --seed <int>/);
  const cases: Array<[string[], RegExp]> = [
    [[a, '--seed', '1'], /missing --out <dir>/],
    [[a, '--out', dir], /missing --seed <int>/],
    [['--out', dir, '--seed', '1'], /missing the label maps/],
    [[a, '--out', dir, '--seed', '1.5'], /--seed must be an integer, got '1\.5'/],
    [[a, '--out', dir, '--seed', '1', '--count', '0'], /--count must be an integer >= 1, got '0'/],
    [[a, '--out', dir, '--seed', '1', '--contrast', 'flair'], /--contrast must be one of t1, random, got 'flair'/],
    [[a, '--out', dir, '--seed', '1', '--bogus'], /Unknown option '--bogus'/],
    [[a, join(dir, 'sub', 'ok.nii'), '--out', dir, '--seed', '1'], /have the same basename 'ok'/],
    [[join(dir, 'labels.mgz'), '--out', dir, '--seed', '1'], /labels\.mgz: expected a NIfTI label map/],
  ];
  for (const [args, message] of cases) {
    const r = await cli(['synthseg-images', ...args]);
    t.is(r.code, 2, args.join(' '));
    t.regex(r.err, new RegExp(`^brain-ldm synthseg-images: .*${message.source}`), args.join(' '));
    t.regex(r.err, /usage: brain-ldm synthseg-images/);
  }
  const missing = await cli(['synthseg-images', join(dir, 'nope.nii.gz'), '--out', dir, '--seed', '1']);
  t.is(missing.code, 1);
  t.regex(missing.err, /^brain-ldm synthseg-images: .*nope\.nii\.gz: no such file/);
  const odd = join(dir, 'odd.nii.gz');
  await writeNifti(odd, { data: Uint8Array.from({ length: 64 }, (_, i) => (i === 5 ? 99 : 2)), shape: [4, 4, 4], affine: IPL });
  const bad = await cli(['synthseg-images', odd, '--out', dir, '--seed', '1']);
  t.is(bad.code, 1);
  t.regex(bad.err, /odd\.nii\.gz: label values 99 \(1 voxels\) are not SynthSeg generation labels/);
  t.false(readdirSync(dir).some((f) => f.startsWith('odd_img')), 'nothing written for a failed map');
});
