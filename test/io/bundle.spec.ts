/**
 * Model bundles: import a .pth into a bundle and read it back, model.json validation naming file, field and
 * expected value, atomic writes, the injected weight validator, and the `brain-ldm import` command.
 */
import test from 'ava';
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { importCheckpoint, brainLdmVersion, type ValidateWeights } from '../../ts/bundle/import-checkpoint.js';
import { readBundle, writeBundle, validateBundleConfig, type BundleConfig } from '../../ts/bundle/model-bundle.js';
import { importCommand } from '../../ts/cli/import-command.js';
import { extractStateDict, readTorchCheckpoint } from '../../ts/io/torch-checkpoint.js';
import type { HostTensor } from '../../ts/io/safetensors.js';

const PTH = new URL('../fixtures/pth/', import.meta.url).pathname;
const DATE = new Date('2025-02-03T04:05:06.000Z');
const UNET_ARGS = JSON.parse(readFileSync(`${PTH}key-schemes.json`, 'utf8')).unet.args as Record<string, unknown>;

function tmp(): string {
  return mkdtempSync(join(tmpdir(), 'brain-ldm-bundle-'));
}

function sameValues(a: HostTensor, b: HostTensor): boolean {
  return a.dtype === b.dtype && a.shape.join() === b.shape.join() && a.data.every((v, i) => v === b.data[i]);
}

test('import the thesis {"model": ...} EmbeddingWrapper file and read the bundle back', async (t) => {
  const dir = tmp();
  const out = join(dir, 'mask-ae');
  const report = await importCheckpoint({
    file: `${PTH}thesis-container.pth`, network: 'AutoencoderKL', out, date: DATE,
    args: { spatial_dims: 3, in_channels: 3, out_channels: 2, channels: [2], latent_channels: 2 },
    scaleFactor: 0.5, grid: { shape: [96, 128, 96], spacingMm: [1.667, 1.75, 1.667] }, labels: [0, { value: 4, name: 'Left-Lateral-Ventricle' }],
  });
  t.is(report.container, 'model');
  t.true(report.wrapperDetected);
  t.deepEqual(report.wrapper, { type: 'EmbeddingWrapper', num_embeddings: 5, embedding_dim: 3 });
  const { config, weights } = await readBundle(out);
  t.deepEqual(config.network, {
    class: 'AutoencoderKL',
    args: { spatial_dims: 3, in_channels: 3, out_channels: 2, num_channels: [2], latent_channels: 2 },
    wrapper: { type: 'EmbeddingWrapper', num_embeddings: 5, embedding_dim: 3 },
    attentionOutputProjection: false,
  });
  t.is(config.keyScheme, 'generative');
  t.is(config.scaleFactor, 0.5);
  t.deepEqual(config.grid, { shape: [96, 128, 96], spacingMm: [1.667, 1.75, 1.667] });
  t.deepEqual(config.provenance, {
    source: 'thesis-container.pth',
    sha256: createHash('sha256').update(readFileSync(`${PTH}thesis-container.pth`)).digest('hex'),
    importedWith: `brain-ldm ${brainLdmVersion()}`,
    date: '2025-02-03T04:05:06.000Z',
  });
  const source = extractStateDict(await readTorchCheckpoint(`${PTH}thesis-container.pth`)).stateDict;
  t.deepEqual([...weights.keys()].sort(), [...source.keys()].sort());
  for (const [k, v] of source) t.true(sameValues(weights.get(k)!, v), k);
  t.deepEqual(readdirSync(dir), ['mask-ae']);
  t.deepEqual(readdirSync(out).sort(), ['model.json', 'weights.safetensors']);
});

test('a monai-core checkpoint is stored under canonical names; the validator sees spec and weights', async (t) => {
  const out = join(tmp(), 'unet');
  const seen: Array<{ spec: unknown; keys: string[] }> = [];
  const validate: ValidateWeights = (spec, weights) => { seen.push({ spec, keys: [...weights.keys()] }); };
  const report = await importCheckpoint({ file: `${PTH}unet-monai-core.pth`, network: 'DiffusionModelUNet', args: UNET_ARGS, out, validate });
  t.is(report.scheme, 'monai-core');
  t.true(report.attentionOutputProjection);
  t.is(seen.length, 1);
  t.like(seen[0].spec as object, { class: 'DiffusionModelUNet', attentionOutputProjection: true, wrapper: null });
  const { config, weights } = await readBundle(out);
  t.true(config.network.attentionOutputProjection);
  const g = extractStateDict(await readTorchCheckpoint(`${PTH}unet-generative.pth`)).stateDict;
  t.deepEqual([...weights.keys()].sort(), [...g.keys()].sort());
  t.deepEqual(seen[0].keys.sort(), [...g.keys()].sort());
  for (const [k, v] of g) t.true(sameValues(weights.get(k)!, v), k);
});

test('the validator\'s error propagates unchanged and nothing is written', async (t) => {
  const dir = tmp();
  const out = join(dir, 'never');
  const failure = new Error("missing key 'out.2.conv.weight': expected [1, 2, 3, 3], checkpoint has none");
  const err = await t.throwsAsync(importCheckpoint({
    file: `${PTH}unet-generative.pth`, network: 'DiffusionModelUNet', args: UNET_ARGS, out,
    validate: async () => { throw failure; },
  }));
  t.is(err, failure);
  t.deepEqual(readdirSync(dir), []);
});

test('float64 becomes float32, float16 stays, num_batches_tracked is dropped', async (t) => {
  const dir = tmp();
  const r64 = await importCheckpoint({ file: `${PTH}float64.pth`, network: 'DiffusionModelUNet', args: {}, out: join(dir, 'a') });
  const a = await readBundle(join(dir, 'a'));
  t.is(a.weights.get('w')!.dtype, 'F32');
  t.is((a.weights.get('w')!.data as Float32Array)[0], Math.fround(1 / 3));
  t.deepEqual(r64.dtypes, { F32: 1 });
  await importCheckpoint({ file: `${PTH}fp16.pth`, network: 'DiffusionModelUNet', args: {}, out: join(dir, 'b') });
  const b = await readBundle(join(dir, 'b'));
  t.is(b.weights.get('w')!.dtype, 'F16');
  t.is((b.weights.get('w')!.data as Uint16Array)[0], 0x3c00);
  const rb = await importCheckpoint({ file: `${PTH}bare.pth`, network: 'DiffusionModelUNet', args: {}, out: join(dir, 'c') });
  t.deepEqual(rb.dropped, ['bn.num_batches_tracked']);
  t.false((await readBundle(join(dir, 'c'))).weights.has('bn.num_batches_tracked'));
});

test('import argument errors name the argument; wrapper shapes are checked against the file', async (t) => {
  const out = join(tmp(), 'x');
  const base = { file: `${PTH}thesis-container.pth`, network: 'AutoencoderKL', args: { in_channels: 3 }, out };
  await t.throwsAsync(importCheckpoint({ ...base, network: 'UNet' }), { instanceOf: RangeError, message: /argument 'network' must be one of AutoencoderKL/ });
  await t.throwsAsync(importCheckpoint({ ...base, args: [] as never }), { instanceOf: TypeError, message: /argument 'args'/ });
  await t.throwsAsync(importCheckpoint({ ...base, wrapper: { num_embeddings: 61, embedding_dim: 64 } }),
    { instanceOf: RangeError, message: /'embedding\.weight' has shape \[5, 3\] but the EmbeddingWrapper given is 61x64/ });
  await t.throwsAsync(importCheckpoint({ ...base, file: `${PTH}bare.pth`, wrapper: { num_embeddings: 5, embedding_dim: 3 } }),
    { instanceOf: RangeError, message: /bare\.pth: an EmbeddingWrapper 5x3 was given but the checkpoint has no 'embedding\.weight'/ });
  await t.throwsAsync(importCheckpoint({ ...base, args: { in_channels: 4 } }),
    { instanceOf: RangeError, message: /field 'network\.args\.in_channels' must be the wrapper's embedding_dim 3/ });
  await t.throwsAsync(importCheckpoint({ ...base, args: { channels: [2], num_channels: [4] } }), { instanceOf: RangeError, message: /'channels' \[2\] and 'num_channels' \[4\] disagree/ });
  await t.throwsAsync(importCheckpoint({ ...base, file: `${PTH}forbidden-os-system.pth` }), { message: /refuses the global 'posix\.system'/ });
  t.false(existsSync(out));
});

async function validBundleDir(): Promise<{ dir: string; json: BundleConfig }> {
  const dir = join(tmp(), 'b');
  await importCheckpoint({ file: `${PTH}fp16.pth`, network: 'DiffusionModelUNet', args: { spatial_dims: 3 }, out: dir, date: DATE });
  return { dir, json: JSON.parse(readFileSync(join(dir, 'model.json'), 'utf8')) as BundleConfig };
}

test('readBundle validates model.json field by field, naming file, field and expected value', async (t) => {
  const { dir, json } = await validBundleDir();
  const file = join(dir, 'model.json');
  const cases: Array<[(j: any) => void, RegExp]> = [
    [(j) => { j.format = 'other'; }, /field 'format' must be "brain-ldm-bundle", got "other"/],
    [(j) => { j.version = 2; }, /field 'version' must be 1 \(this brain-ldm reads version 1 bundles\), got 2/],
    [(j) => { j.network.class = 'VQVAE'; }, /field 'network\.class' must be one of AutoencoderKL, DiffusionModelUNet, SPADEAutoencoderKL, SPADEDiffusionModelUNet, got "VQVAE"/],
    [(j) => { j.network.args = [1]; }, /field 'network\.args' must be an object, got \[1\]/],
    [(j) => { j.network.wrapper = { type: 'EmbeddingWrapper', num_embeddings: 0, embedding_dim: 4 }; }, /field 'network\.wrapper\.num_embeddings' must be a positive integer, got 0/],
    [(j) => { j.network.wrapper = { type: 'EmbeddingWrapper', num_embeddings: 61, embedding_dim: 64 }; }, /field 'network\.wrapper' must be null for DiffusionModelUNet/],
    [(j) => { j.network.attentionOutputProjection = 'yes'; }, /field 'network\.attentionOutputProjection' must be true or false, got "yes"/],
    [(j) => { delete j.network.attentionOutputProjection; }, /field 'network\.attentionOutputProjection' is missing/],
    [(j) => { j.keyScheme = 'monai-core'; }, /field 'keyScheme' must be "generative"/],
    [(j) => { j.scaleFactor = -1; }, /field 'scaleFactor' must be a positive finite number or null, got -1/],
    [(j) => { j.labels = [0, 'x']; }, /field 'labels\[1\]' must be an object, got "x"/],
    [(j) => { j.grid = { shape: [2, 2, 2], spacingMm: [1, 1] }; }, /field 'grid\.spacingMm' must be an array of 3 positive numbers/],
    [(j) => { j.grid = { shape: [0], spacingMm: [1] }; }, /field 'grid\.shape' must be a non-empty array of positive integers, got \[0\]/],
    [(j) => { j.scheduler = 'ddpm'; }, /field 'scheduler' must be an object, got "ddpm"/],
    [(j) => { j.provenance.sha256 = 'abc'; }, /field 'provenance\.sha256' must be 64 lower-case hex digits, got "abc"/],
    [(j) => { j.provenance.date = 'yesterday'; }, /field 'provenance\.date' must be an ISO 8601 date-time/],
    [(j) => { j.provenance.importedWith = 'torch'; }, /field 'provenance\.importedWith' must be "brain-ldm <version>"/],
    [(j) => { j.extra = 1; }, /unknown field 'extra' \(expected only format, version/],
    [(j) => { delete j.grid; }, /field 'grid' is missing/],
  ];
  for (const [mutate, re] of cases) {
    const j = structuredClone(json);
    mutate(j);
    writeFileSync(file, JSON.stringify(j));
    const err = await t.throwsAsync(readBundle(dir));
    t.true(err!.message.startsWith(`${file}: `), err!.message);
    t.regex(err!.message, re);
  }
  writeFileSync(file, '{"format": ');
  await t.throwsAsync(readBundle(dir), { instanceOf: TypeError, message: /model\.json: not valid JSON/ });
  // MONAI core's `channels` is accepted and renamed.
  const j = structuredClone(json) as any;
  j.network.args = { channels: [8, 16] };
  writeFileSync(file, JSON.stringify(j));
  t.deepEqual((await readBundle(dir)).config.network.args, { num_channels: [8, 16] });
});

test('missing files and non-directories are clear errors', async (t) => {
  const { dir } = await validBundleDir();
  rmSync(join(dir, 'weights.safetensors'));
  await t.throwsAsync(readBundle(dir), { instanceOf: RangeError, message: /bundle .*: weights file weights\.safetensors is missing \(model\.json is there\)/ });
  rmSync(join(dir, 'model.json'));
  await t.throwsAsync(readBundle(dir), { instanceOf: RangeError, message: /bundle .*: model\.json is missing/ });
  await t.throwsAsync(readBundle(join(dir, 'nope')), { instanceOf: RangeError, message: /no such directory/ });
  writeFileSync(join(dir, 'file'), 'x');
  await t.throwsAsync(readBundle(join(dir, 'file')), { instanceOf: TypeError, message: /not a directory/ });
});

test('writeBundle is atomic: no half-written bundle, no temp left, overwrite only of a bundle', async (t) => {
  const { dir, json } = await validBundleDir();
  const parent = join(dir, '..');
  const config = validateBundleConfig(json);
  const w = new Map<string, HostTensor>([['w', { dtype: 'F32', shape: [2], data: new Float32Array([1, 2]) }]]);
  await t.throwsAsync(writeBundle(dir, { config, weights: w }), { instanceOf: RangeError, message: /already exists \(pass overwrite to replace it\)/ });
  await writeBundle(dir, { config, weights: w }, { overwrite: true });
  t.deepEqual(Array.from((await readBundle(dir)).weights.get('w')!.data as Float32Array), [1, 2]);
  // A failure while writing (bad tensor) leaves the old bundle in place and no temp directory.
  const bad = new Map<string, HostTensor>([['w', { dtype: 'F32', shape: [3], data: new Float32Array(2) }]]);
  await t.throwsAsync(writeBundle(dir, { config, weights: bad }, { overwrite: true }), { instanceOf: RangeError, message: /'w' has shape \[3\]/ });
  t.deepEqual(Array.from((await readBundle(dir)).weights.get('w')!.data as Float32Array), [1, 2]);
  await t.throwsAsync(writeBundle(join(parent, 'fresh'), { config: { ...config, version: 3 } as never, weights: w }), { message: /field 'version' must be 1/ });
  t.deepEqual(readdirSync(parent), ['b']);
  // Never replaces a directory that is not a bundle.
  const other = join(parent, 'photos');
  mkdirSync(other);
  writeFileSync(join(other, 'cat.png'), 'x');
  await t.throwsAsync(writeBundle(other, { config, weights: w }, { overwrite: true }), { message: /is not a bundle \(no model\.json\); refusing to replace it/ });
  t.true(existsSync(join(other, 'cat.png')));
});

test('brain-ldm import: prints a report, @file args, --json, and usage errors exit 2', async (t) => {
  const dir = tmp();
  const argsFile = join(dir, 'args.json');
  writeFileSync(argsFile, JSON.stringify(UNET_ARGS));
  const lines: string[] = [];
  const errors: string[] = [];
  const run = (argv: string[]) => importCommand(argv, (l) => lines.push(l), { printError: (l) => errors.push(l) });
  t.is(await run([`${PTH}unet-monai-core-nofc-fused.pth`, '--network', 'DiffusionModelUNet', '--args', `@${argsFile}`, '--out', join(dir, 'u')]), 0);
  const text = lines.join('\n');
  t.regex(text, /^read .*unet-monai-core-nofc-fused\.pth: a bare state_dict, sha256 [0-9a-f]{64}$/m);
  t.regex(text, /^key scheme: monai-core \(.*\); \d+ renamed, \d+ synthesised, 0 dropped$/m);
  t.regex(text, /^attention output projection: not applied/m);
  t.regex(text, /^wrote .*u: \d+ tensors \(\d+ F32\), \d+ values$/m);
  lines.length = 0;
  t.is(await run([`${PTH}thesis-container.pth`, '--network', 'AutoencoderKL', '--args', '{"in_channels": 3}', '--out', join(dir, 'm'), '--wrapper-embedding', '5x3', '--scale-factor', '0.25', '--json']), 0);
  const report = JSON.parse(lines.join('\n'));
  t.deepEqual(report.wrapper, { type: 'EmbeddingWrapper', num_embeddings: 5, embedding_dim: 3 });
  t.is((await readBundle(join(dir, 'm'))).config.scaleFactor, 0.25);
  const usage = async (argv: string[], re: RegExp) => {
    errors.length = 0;
    t.is(await run(argv), 2, argv.join(' '));
    t.regex(errors.join('\n'), re);
    t.regex(errors.join('\n'), /usage: brain-ldm import/);
  };
  await usage([`${PTH}bare.pth`, '--network', 'DiffusionModelUNet', '--args', '{}'], /missing --out/);
  await usage(['--network', 'DiffusionModelUNet'], /missing the checkpoint file/);
  await usage([`${PTH}bare.pth`, '--network', 'Nope', '--args', '{}', '--out', join(dir, 'n')], /--network must be one of/);
  await usage([`${PTH}bare.pth`, '--network', 'AutoencoderKL', '--args', '{"a":', '--out', join(dir, 'n')], /--args: not valid JSON/);
  await usage([`${PTH}bare.pth`, '--network', 'AutoencoderKL', '--args', '{}', '--out', join(dir, 'n'), '--wrapper-embedding', '61by64'], /--wrapper-embedding must be <num_embeddings>x<embedding_dim>/);
  await usage([`${PTH}bare.pth`, '--bogus'], /Unknown option '--bogus'/);
  // Failures of the import itself throw (the CLI prints them and exits 1).
  await t.throwsAsync(run([`${PTH}truncated.pth`, '--network', 'AutoencoderKL', '--args', '{}', '--out', join(dir, 't')]), { message: /truncated\.pth: truncated/ });
  t.false(existsSync(join(dir, 'n')));
});
