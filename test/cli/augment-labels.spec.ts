/**
 * brain-ldm augment-labels: files and manifest lines as train/ expects them, copy k depending only on (seed, basename,
 * k) (reruns, partial reruns and other input lists give the same bytes), the identity when everything is off, the
 * flip alone equal to flipLeftRight, usage errors exit 2, non-SynthSeg input exits 1 naming the file.
 */
import test from 'ava';
import { createHash } from 'node:crypto';
import { existsSync, mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { flipLeftRight } from '../../ts/augment/spatial-augmentation.js';
import { readLabelVolume, ventricleVolumeMl, writeVolume, intracranialVolumeMl } from '../../ts/labels/label-volume.js';
import { niftiInfo, pythonGate } from '../augment/label-reference.js';
import { captureCli } from '../helpers/capture-cli.js';
import { IPL_3, IPL_SHAPE, RAS_2P5, RAS_SHAPE, syntheticBrain } from '../augment/synthetic-brain.js';

const dir = mkdtempSync(join(tmpdir(), 'brain-ldm-augment-cli-'));
const { havePython } = pythonGate('augment-labels.spec');

const run = captureCli;

const mapA = join(dir, 'map-a.nii.gz');
const mapB = join(dir, 'map-b.nii.gz');
const ready = Promise.all([
  writeVolume(mapA, syntheticBrain(IPL_SHAPE, IPL_3)),
  writeVolume(mapB, syntheticBrain(RAS_SHAPE, RAS_2P5)),
]);
const sha = (path: string) => createHash('sha256').update(readFileSync(path)).digest('hex');
const manifest = (out: string) => readFileSync(join(out, 'augment-manifest.jsonl'), 'utf8').trim().split('\n').map((l) => JSON.parse(l));

const KEYS = ['input', 'output', 'seed', 'index', 'ventricleFactorRequested', 'ventricleMlBefore', 'ventricleMlAfter', 'icvMlBefore', 'icvMlAfter', 'flipped'];

test.serial('files and manifest lines; factors drawn in the range; volumes as measured on the files; reruns give the same bytes', async (t) => {
  await ready;
  const out = join(dir, 'set');
  const args = ['augment-labels', mapA, mapB, '--out', out, '--count', '3', '--seed', '5', '--ventricle-factor', '1:3'];
  const r = await run(args);
  t.is(r.code, 0, r.err);
  const lines = manifest(out);
  t.deepEqual(lines.map((l) => l.output), ['map-a', 'map-b'].flatMap((m) => [0, 1, 2].map((k) => join(out, `${m}_aug00${k}.nii.gz`))));
  const before = await readLabelVolume(mapA);
  for (const l of lines) {
    t.deepEqual(Object.keys(l).slice(0, KEYS.length), KEYS);
    t.is(l.seed, 5);
    t.true(l.ventricleFactorRequested >= 1 && l.ventricleFactorRequested < 3);
    t.true(Math.abs(l.ventricleFactorAchieved / l.ventricleFactorRequested - 1) <= 0.02);
    const v = await readLabelVolume(l.output);
    t.true(v.data instanceof Uint8Array);
    t.true(Math.abs(ventricleVolumeMl(v) - l.ventricleMlAfter) < 1e-9);
    t.true(Math.abs(intracranialVolumeMl(v) - l.icvMlAfter) < 1e-9);
    if (l.input === mapA) {
      t.deepEqual(v.affine, before.affine);
      t.true(Math.abs(ventricleVolumeMl(before) - l.ventricleMlBefore) < 1e-9);
    }
  }
  t.true(new Set(lines.map((l) => l.ventricleFactorRequested)).size === 6, 'each copy draws its own factor');
  if (havePython) t.is((await niftiInfo(lines[0].output)).dtype, 'uint8');
  const hashes = lines.map((l) => sha(l.output));
  // Rerun in another folder, inputs in the other order, and copy 1 alone: same bytes.
  const again = join(dir, 'again');
  t.is((await run(['augment-labels', mapB, mapA, '--out', again, '--count', '3', '--seed', '5', '--ventricle-factor', '1:3'])).code, 0);
  t.deepEqual(['map-a', 'map-b'].flatMap((m) => [0, 1, 2].map((k) => sha(join(again, `${m}_aug00${k}.nii.gz`)))), hashes);
  const part = join(dir, 'part');
  t.is((await run(['augment-labels', mapB, '--out', part, '--start', '1', '--count', '1', '--seed', '5', '--ventricle-factor', '1:3', '--json'])).code, 0);
  t.false(existsSync(join(part, 'map-b_aug000.nii.gz')));
  t.is(sha(join(part, 'map-b_aug001.nii.gz')), hashes[4]);
  // Another seed, other bytes; a rerun into the same folder keeps one line per output.
  t.is((await run([...args.slice(0, -4), '--count', '1', '--seed', '6'])).code, 0);
  t.not(sha(join(out, 'map-a_aug000.nii.gz')), hashes[0]);
  t.is(manifest(out).length, 6);
});

test.serial('everything off is the identity; the flip alone equals flipLeftRight', async (t) => {
  await ready;
  const off = join(dir, 'off');
  t.is((await run(['augment-labels', mapA, '--out', off, '--count', '2', '--seed', '1', '--no-affine', '--no-elastic', '--flip-prob', '0'])).code, 0);
  const input = await readLabelVolume(mapA);
  for (const l of manifest(off)) {
    t.deepEqual((await readLabelVolume(l.output)).data, input.data);
    t.is(l.ventricleFactorRequested, 1);
    t.false(l.flipped);
  }
  const flip = join(dir, 'flip');
  t.is((await run(['augment-labels', mapA, '--out', flip, '--count', '1', '--seed', '1', '--no-affine', '--no-elastic', '--flip-prob', '1'])).code, 0);
  t.true(manifest(flip)[0].flipped);
  t.deepEqual((await readLabelVolume(join(flip, 'map-a_aug000.nii.gz'))).data, flipLeftRight({ ...input, data: input.data as Uint8Array }).data);
});

test.serial('--scaling / --rotation: out-of-range values exit 2 naming the option; 0 and 0 with the other parts off return the input', async (t) => {
  await ready;
  const out = join(dir, 'affine-options');
  const base = ['augment-labels', mapA, '--out', out, '--count', '1', '--seed', '3'];
  const cases: Array<[string[], RegExp]> = [
    [['--scaling', '1'], /--scaling must be a number in \[0, 1\), got '1'/],
    [['--scaling=-0.1'], /--scaling must be a number in \[0, 1\), got '-0\.1'/],
    [['--scaling', 'wide'], /--scaling must be a number in \[0, 1\), got 'wide'/],
    [['--rotation', '180'], /--rotation must be a number in \[0, 180\), got '180'/],
    [['--rotation=-5'], /--rotation must be a number in \[0, 180\), got '-5'/],
    [['--rotation', '0x10'], /--rotation must be a number in \[0, 180\), got '0x10'/],
  ];
  for (const [extra, message] of cases) {
    const r = await run([...base, ...extra]);
    t.is(r.code, 2, extra.join(' '));
    t.regex(r.err, /^brain-ldm augment-labels: /);
    t.regex(r.err, message);
  }
  t.false(existsSync(join(out, 'map-a_aug000.nii.gz')), 'a usage error writes nothing');
  const r = await run([...base, '--scaling', '0', '--rotation', '0', '--no-elastic', '--flip-prob', '0', '--ventricle-factor', '1']);
  t.is(r.code, 0, r.err);
  const [l] = manifest(out);
  t.deepEqual(l.affine.scaling, [1, 1, 1]);
  t.deepEqual(l.affine.rotationDeg, [0, 0, 0]);
  t.deepEqual((await readLabelVolume(l.output)).data, (await readLabelVolume(mapA)).data);
});

test.serial('ventricle factor 2 with the spatial parts off: ventricles doubled within 2%, ICV within 0.5%', async (t) => {
  await ready;
  const out = join(dir, 'ventricles');
  t.is((await run(['augment-labels', mapB, '--out', out, '--count', '1', '--seed', '2', '--ventricle-factor', '2', '--no-affine', '--no-elastic', '--flip-prob', '0'])).code, 0);
  const [l] = manifest(out);
  t.is(l.ventricleFactorRequested, 2);
  t.true(Math.abs(l.ventricleMlAfter / l.ventricleMlBefore / 2 - 1) <= 0.02, `${l.ventricleMlBefore} -> ${l.ventricleMlAfter}`);
  t.true(Math.abs(l.icvMlAfter / l.icvMlBefore - 1) < 0.005);
});

test.serial('usage errors exit 2 naming the option; --help; a map with non-SynthSeg values exits 1 naming the file', async (t) => {
  await ready;
  const out = join(dir, 'errors');
  const base = [mapA, '--out', out, '--count', '1', '--seed', '1'];
  const cases: Array<[string[], RegExp]> = [
    [[...base, '--nope'], /Unknown option '--nope'/],
    [[mapA, '--out', out, '--seed', '1'], /missing --count <n>/],
    [[mapA, '--out', out, '--count', '1'], /missing --seed <int>/],
    [[...base.slice(0, 4), '0', '--seed', '1'], /--count must be an integer >= 1, got '0'/],
    [[...base, '--ventricle-factor', '0.5'], /--ventricle-factor must be a factor in 1\.\.3 .*got '0\.5'/],
    [[...base, '--ventricle-factor', '3:1'], /--ventricle-factor must be a factor in 1\.\.3 or a range lo:hi .*got '3:1'/],
    [[...base, '--ventricle-factor', 'big'], /--ventricle-factor must be a number such as 2 or a range lo:hi such as 1:3, got 'big'/],
    [[...base, '--flip-prob', '1.5'], /--flip-prob must be a probability in \[0, 1\], got '1\.5'/],
    [[...base, '--seed', '1.5'], /--seed must be an integer, got '1\.5'/],
  ];
  for (const [args, message] of cases) {
    const r = await run(['augment-labels', ...args]);
    t.is(r.code, 2, args.join(' '));
    t.regex(r.err, /^brain-ldm augment-labels: /);
    t.regex(r.err, message);
  }
  const help = await run(['augment-labels', '--help']);
  t.is(help.code, 0);
  t.regex(help.out, /--ventricle-factor <f> +ventricle volume factor in 1\.\.3, or lo:hi/);
  const aseg = join(dir, 'aseg.nii.gz');
  const v = syntheticBrain(IPL_SHAPE, IPL_3);
  await writeVolume(aseg, { ...v, data: v.data.map((l) => (l === 24 ? 77 : l)) });
  const bad = await run(['augment-labels', aseg, '--out', out, '--count', '1', '--seed', '1']);
  t.is(bad.code, 1);
  t.regex(bad.err, /aseg\.nii\.gz: values 77 are not SynthSeg labels .*brain-ldm prepare-labels/);
});
