/**
 * End to end: `brain-ldm generate` with a tiny random generator on native and wasm. Files must read back in an
 * independent NIfTI reader (nibabel) with the generator's geometry, the manifest's achieved volumes must equal the
 * label counts, reruns must give identical bytes, a killed run must resume to exactly `count` samples, shards must
 * fill one folder, and bad input must fail cleanly without leaving files.
 */
import test from 'ava';
import { spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync, appendFileSync, unlinkSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { loadBackend } from '../../ts/backend/select.js';
import { generatorGridAffine, readGenerator, writeGeneratorConfig } from '../../ts/bundle/generator-bundle.js';
import { generateDataset, type ManifestRecord } from '../../ts/pipeline/generate-dataset.js';
import { VENTRICLE_LABELS } from '../../ts/labels/synthseg-labels.js';
import { readLabelVolume } from '../../ts/labels/label-volume.js';
import { pythonReference, runPython } from '../helpers/python-reference.js';
import { testBackends } from '../helpers/backends.js';
import { captureCli as cli } from '../helpers/capture-cli.js';
import { tinyGeneratorConfig, writeTinyGenerator } from '../helpers/tiny-generator.js';

const { pythonTest, havePython } = pythonReference('generate-dataset.spec', ['numpy', 'nibabel']);
// CLI specs swap console.error while they run (captureCli), so they run one at a time.
const serialPythonTest = havePython ? test.serial : pythonTest;
const work = mkdtempSync(join(tmpdir(), 'brain-ldm-generate-'));
test.after.always(() => rmSync(work, { recursive: true, force: true }));

let generatorDir: Promise<string> | null = null;
function tinyGenerator(): Promise<string> {
  generatorDir ??= (async () => {
    const dir = join(work, 'generator');
    const backend = await loadBackend({});
    try {
      await writeTinyGenerator(backend, dir);
    } finally {
      await backend.dispose();
    }
    return dir;
  })();
  return generatorDir;
}


function manifest(dir: string): ManifestRecord[] {
  return readdirSync(dir).filter((f) => f.startsWith('manifest')).flatMap((f) =>
    readFileSync(join(dir, f), 'utf8').split('\n').filter((l) => l.trim()).map((l) => JSON.parse(l) as ManifestRecord));
}

function sha(path: string): string {
  return createHash('sha256').update(readFileSync(path)).digest('hex');
}

function niftiHashes(dir: string): Record<string, string> {
  const out: Record<string, string> = {};
  for (const f of readdirSync(dir).filter((f) => f.endsWith('.nii.gz')).sort()) out[f] = sha(join(dir, f));
  return out;
}

const family = (n: string) => (n.startsWith('wasm') ? 'wasm' : 'native');
const backends = testBackends().filter((x, i, all) => all.findIndex((y) => family(y.name) === family(x.name)) === i);

const BASE = ['--count', '3', '--volume-dist', 'uniform:20:120', '--seed', '7', '--quiet', '--threads', '2'];

for (const b of backends) {
  const name = b.name === 'native' ? 'native' : b.name;
  serialPythonTest(`generate writes pairs that nibabel reads with the grid's geometry; manifest volumes equal label counts [${b.label}]`, async (t) => {
    const gen = await tinyGenerator();
    const out = join(work, `e2e-${name}`);
    const r = await cli(['generate', gen, '--out', out, ...BASE, '--backend', name, '--png', '--nnunet', 'Dataset501_Tiny']);
    t.is(r.code, 0, r.err);
    const records = manifest(out);
    t.deepEqual(records.map((x) => x.index), [0, 1, 2]);
    const config = tinyGeneratorConfig();
    const affine = generatorGridAffine(config.grid);
    const read = await runPython<Array<Record<string, unknown>>>(`
import json, sys, numpy as np, nibabel as nib
out = []
for stem in sys.argv[2:]:
    img = nib.load(f"{sys.argv[1]}/{stem}_image.nii.gz"); lab = nib.load(f"{sys.argv[1]}/{stem}_labels.nii.gz")
    li = np.asarray(lab.dataobj); ii = np.asarray(img.dataobj)
    h = lab.header
    out.append({"shape": list(lab.shape), "imgShape": list(img.shape), "labDtype": str(li.dtype), "imgDtype": str(ii.dtype),
      "affine": lab.affine.tolist(), "imgAffine": img.affine.tolist(), "sformCode": int(h["sform_code"]), "qformCode": int(h["qform_code"]),
      "qform": lab.get_qform().tolist(), "zooms": [float(z) for z in lab.header.get_zooms()], "units": list(h.get_xyzt_units()),
      "counts": {str(int(v)): int((li == v).sum()) for v in np.unique(li)}, "imgMin": float(ii.min()), "imgMax": float(ii.max())})
print(json.dumps(out))`, [out, ...records.map((x) => x.files!.labels.replace(/_labels\.nii\.gz$/, ''))]);
    const voxelMl = config.grid.spacingMm.reduce((a, c) => a * c, 1) / 1000;
    const close = (a: number[][], e: number[][]) => a.every((row, i) => row.every((v, j) => Math.abs(v - e[i][j]) < 1e-4));
    read.forEach((f, i) => {
      const rec = records[i];
      t.deepEqual(f.shape, config.grid.shape);
      t.deepEqual(f.imgShape, config.grid.shape);
      t.is(f.labDtype, 'uint8');
      t.is(f.imgDtype, 'float32');
      t.true(close(f.affine as number[][], affine), `labels affine ${JSON.stringify(f.affine)}`);
      t.true(close(f.imgAffine as number[][], affine), 'image affine');
      t.true(close(f.qform as number[][], affine), 'qform agrees with sform');
      t.true((f.sformCode as number) > 0 && (f.qformCode as number) > 0);
      t.deepEqual((f.zooms as number[]).map((z) => Math.round(z * 1000) / 1000), config.grid.spacingMm);
      t.is((f.units as string[])[0], 'mm');
      t.true((f.imgMin as number) >= 0 && (f.imgMax as number) <= 1);
      const counts = f.counts as Record<string, number>;
      let total = 0;
      for (const l of VENTRICLE_LABELS) {
        const ml = (counts[String(l)] ?? 0) * voxelMl;
        total += ml;
        t.true(Math.abs(rec.achieved.ventricleMlByLabel[String(l)] - ml) < 1e-3, `label ${l}: manifest ${rec.achieved.ventricleMlByLabel[String(l)]} vs ${ml}`);
      }
      t.true(Math.abs(rec.achieved.ventricleMl - total) < 1e-3);
      const icv = Object.entries(counts).filter(([k]) => k !== '0').reduce((a, [, n]) => a + n, 0) * voxelMl;
      t.true(Math.abs(rec.achieved.icvMl - icv) < 1e-3);
      t.true(existsSync(join(out, rec.files!.png!)));
      t.true(existsSync(join(out, rec.files!.nnunetImage!)) && existsSync(join(out, rec.files!.nnunetLabels!)));
    });
    const dataset = JSON.parse(readFileSync(join(out, 'Dataset501_Tiny', 'dataset.json'), 'utf8'));
    t.is(dataset.numTraining, 3);

    // Same seed, same backend: identical bytes in a fresh folder.
    const again = join(work, `e2e-${name}-again`);
    t.is((await cli(['generate', gen, '--out', again, ...BASE, '--backend', name])).code, 0);
    t.deepEqual(niftiHashes(again), niftiHashes(out));

    // Any sample regenerates alone: shard 2/3 of the same run makes sample 2 with the same bytes.
    const alone = join(work, `e2e-${name}-alone`);
    t.is((await cli(['generate', gen, '--out', alone, ...BASE, '--backend', name, '--shard', '2/3'])).code, 0);
    t.deepEqual(manifest(alone).map((x) => x.index), [2]);
    t.is(sha(join(alone, 'sample_000002_labels.nii.gz')), sha(join(out, 'sample_000002_labels.nii.gz')));
    t.is(sha(join(alone, 'sample_000002_image.nii.gz')), sha(join(out, 'sample_000002_image.nii.gz')));
  });
}

test.serial('native and wasm agree: label maps on >= 99% of voxels, images to 2e-3', async (t) => {
  if (backends.length < 2) { t.log('only one backend family loads here'); t.pass(); return; }
  const gen = await tinyGenerator();
  const results = [];
  for (const b of backends) {
    const backend = await b.create();
    const samples = [];
    for await (const s of generateDataset({ generator: gen, count: 2, seed: 3, volume: { kind: 'ml', ml: 50 }, backend })) samples.push(s);
    await backend.dispose();
    results.push(samples);
  }
  for (let i = 0; i < 2; i++) {
    const [a, b] = [results[0][i], results[1][i]];
    let same = 0;
    for (let v = 0; v < a.labels.data.length; v++) if (a.labels.data[v] === b.labels.data[v]) same++;
    const agree = same / a.labels.data.length;
    t.true(agree >= 0.99, `sample ${i}: labels agree on ${(agree * 100).toFixed(2)}%`);
    if (agree === 1) {
      let maxDiff = 0;
      for (let v = 0; v < a.image.data.length; v++) maxDiff = Math.max(maxDiff, Math.abs(a.image.data[v] - b.image.data[v]));
      t.true(maxDiff <= 2e-3, `sample ${i}: images differ by up to ${maxDiff}`);
    }
  }
});

test.serial('the Node API yields the same samples the CLI writes, as an async iterator', async (t) => {
  const gen = await tinyGenerator();
  const out = join(work, 'api-vs-cli');
  t.is((await cli(['generate', gen, '--out', out, '--count', '2', '--ventricle-volume', '45', '--seed', '11', '--quiet', '--backend', 'native'])).code, 0);
  const backend = await loadBackend({ backend: 'native' });
  const seen: number[] = [];
  for await (const s of generateDataset({ generator: gen, count: 2, seed: 11, volume: { kind: 'ml', ml: 45 }, backend })) {
    seen.push(s.index);
    const file = await readLabelVolume(join(out, `sample_00000${s.index}_labels.nii.gz`));
    t.deepEqual(Array.from(file.data), Array.from(s.labels.data));
    t.is(s.record.requested.ventricleMl, 45);
    t.is(s.record.files, null);
  }
  await backend.dispose();
  t.deepEqual(seen, [0, 1]);
});

test.serial('a run killed midway resumes to exactly count samples, identical to an uninterrupted run', async (t) => {
  const gen = await tinyGenerator();
  const args = (out: string) => ['generate', gen, '--out', out, '--count', '12', '--ventricle-volume', '60', '--seed', '5', '--steps', '12', '--quiet', '--backend', 'native', '--threads', '1'];
  const whole = join(work, 'kill-whole');
  t.is((await cli(args(whole))).code, 0);

  const killed = join(work, 'kill-resume');
  const child = spawn(process.execPath, ['--import=tsx', fileURLToPath(new URL('../helpers/run-cli.ts', import.meta.url)), ...args(killed)], { stdio: 'ignore' });
  // Kill as soon as some, but not all, samples are finished.
  await new Promise<void>((resolve, reject) => {
    const timer = setInterval(() => {
      const n = existsSync(killed) ? manifest(killed).length : 0;
      if (n >= 2) { clearInterval(timer); child.kill('SIGKILL'); }
    }, 5);
    child.on('exit', () => { clearInterval(timer); resolve(); });
    child.on('error', reject);
  });
  const before = manifest(killed).length;
  t.true(before >= 2 && before < 12, `killed after ${before} samples`);
  // A torn manifest line, as a kill during the append leaves, is dropped on resume.
  const own = join(killed, 'manifest.jsonl');
  appendFileSync(own, '{"index": 11, "seed"');
  const r = await cli(args(killed));
  t.is(r.code, 0, r.err);
  const records = manifest(killed);
  t.deepEqual(records.map((x) => x.index).sort((a, b) => a - b), [...Array(12).keys()]);
  t.deepEqual(niftiHashes(killed), niftiHashes(whole));
  t.deepEqual(readdirSync(killed).filter((f) => f.includes('.tmp-')), [], 'no temporary files left');
});

test.serial('shards fill one folder: every index exactly once, same bytes as one machine', async (t) => {
  const gen = await tinyGenerator();
  const one = join(work, 'shard-one');
  const many = join(work, 'shard-many');
  const args = ['--count', '5', '--condition', '0.4', '--seed', '9', '--quiet', '--backend', 'native'];
  t.is((await cli(['generate', gen, '--out', one, ...args])).code, 0);
  t.is((await cli(['generate', gen, '--out', many, ...args, '--shard', '1/2'])).code, 0);
  t.is((await cli(['generate', gen, '--out', many, ...args, '--shard', '0/2'])).code, 0);
  t.deepEqual(readdirSync(many).filter((f) => f.startsWith('manifest')).sort(), ['manifest.shard-0-of-2.jsonl', 'manifest.shard-1-of-2.jsonl']);
  t.deepEqual(manifest(many).map((x) => x.index).sort(), [0, 1, 2, 3, 4]);
  t.deepEqual(niftiHashes(many), niftiHashes(one));
});

test.serial('bad input: one clear message, non-zero exit, nothing written', async (t) => {
  const gen = await tinyGenerator();
  const fresh = () => join(work, `bad-${Math.random().toString(36).slice(2)}`);
  const cases: Array<{ args: (out: string) => string[]; code: number; message: RegExp }> = [
    { args: (o) => ['generate', gen, '--out', o, '--ventricle-volume', '40', '--frobnicate'], code: 2, message: /Unknown option '--frobnicate'/ },
    { args: (o) => ['generate', gen, '--out', o, '--ventricle-volume=-5'], code: 2, message: /--ventricle-volume must be a positive volume in mL, got '-5'/ },
    { args: (o) => ['generate', gen, '--out', o, '--ventricle-volume', 'lots'], code: 2, message: /--ventricle-volume must be a positive volume in mL, got 'lots'/ },
    { args: (o) => ['generate', gen, '--out', o, '--volume-dist', 'uniform:80:20'], code: 2, message: /--volume-dist "uniform:80:20"/ },
    { args: (o) => ['generate', gen, '--out', o], code: 2, message: /missing the volume/ },
    { args: (o) => ['generate', gen, '--out', o, '--ventricle-volume', '40', '--guidance=-1'], code: 2, message: /--guidance must be a number >= 0/ },
    { args: (o) => ['generate', gen, '--out', o, '--ventricle-volume', '40', '--shard', '3/2'], code: 2, message: /--shard 3\/2/ },
    { args: (o) => ['generate', join(work, 'no-such-generator'), '--out', o, '--ventricle-volume', '40'], code: 1, message: /no-such-generator: no such directory/ },
  ];
  for (const c of cases) {
    const out = fresh();
    const r = await cli(c.args(out));
    t.is(r.code, c.code, `${c.args(out).slice(3).join(' ')}: ${r.err}`);
    t.is(r.err.match(/^brain-ldm /gm)?.length, 1, 'one message');
    t.regex(r.err, c.message);
    t.false(existsSync(out), 'no output folder');
  }

  // Unwritable output folder: a path below a regular file (root ignores permission bits, so chmod cannot test this).
  const file = join(work, 'a-file');
  writeFileSync(file, 'x');
  const r = await cli(['generate', gen, '--out', join(file, 'out'), '--ventricle-volume', '40', '--quiet']);
  t.is(r.code, 1);
  t.regex(r.err, /cannot create the output folder .*a-file\/out/);

  // A generator missing a file fails while loading, before anything is written.
  const broken = join(work, 'broken-generator');
  const backend = await loadBackend({});
  await writeTinyGenerator(backend, broken);
  await backend.dispose();
  unlinkSync(join(broken, 'mask-unet', 'weights.safetensors'));
  const out1 = fresh();
  const r1 = await cli(['generate', broken, '--out', out1, '--ventricle-volume', '40', '--quiet']);
  t.is(r1.code, 1);
  t.regex(r1.err, /mask\.unet 'mask-unet'.*weights file weights\.safetensors is missing/);
  t.false(existsSync(out1));

  // Guidance needs an unconditional path; a generator without one takes guidance 1 only.
  const noNull = join(work, 'no-null-generator');
  const b2 = await loadBackend({});
  await writeTinyGenerator(b2, noNull);
  await b2.dispose();
  const config = (await readGenerator(noNull)).config;
  await writeGeneratorConfig(noNull, { ...config, conditioning: { ...config.conditioning, nullContext: null }, defaults: { ...config.defaults, guidanceScale: 1 } });
  const out2 = fresh();
  const r2 = await cli(['generate', noNull, '--out', out2, '--ventricle-volume', '40', '--guidance', '3', '--quiet']);
  t.is(r2.code, 1);
  t.regex(r2.err, /guidance.*no unconditional path/);
  t.false(existsSync(out2));
  t.is((await cli(['generate', noNull, '--out', out2, '--ventricle-volume', '40', '--quiet'])).code, 0, 'guidance 1 runs');
});
