/**
 * Key schemes: MONAI core (monai 1.6.1) checkpoints rewritten into canonical monai-generative 0.2.3 names must give
 * exactly the generative state_dict of the same network, tensor for tensor. The pairs were made by
 * train/make_pth_test_files.py: the monai-core files by MONAI's own load_old_state_dict where the class has one,
 * and the include_fc=False / use_combined_linear=True files checked there to give generative's forward.
 * When the parity fixtures (train/make_parity_fixtures.py) are present, their key lists are checked too.
 */
import test from 'ava';
import { existsSync, readFileSync, readdirSync } from 'node:fs';
import { MONAI_CORE_RULES, convertKeys, detectKeyScheme, type ConvertedWeights } from '../../ts/bundle/key-schemes.js';
import type { DType, HostTensor } from '../../ts/io/safetensors.js';
import { extractStateDict, readTorchCheckpoint, type TorchTensor } from '../../ts/io/torch-checkpoint.js';

const DIR = new URL('../fixtures/pth/', import.meta.url).pathname;
const ARCHS = JSON.parse(readFileSync(`${DIR}key-schemes.json`, 'utf8')) as Record<string, { class: string }>;

async function load(name: string): Promise<Map<string, TorchTensor>> {
  return extractStateDict(await readTorchCheckpoint(`${DIR}${name}.pth`)).stateDict;
}

function sameValues(a: HostTensor, b: HostTensor): boolean {
  return a.dtype === b.dtype && a.shape.join() === b.shape.join() && a.data.length === b.data.length && a.data.every((v, i) => v === b.data[i]);
}

function isIdentity(t: HostTensor): boolean {
  const [r, c] = t.shape;
  return t.shape.length === 2 && r === c && Array.from(t.data as Float32Array).every((v, i) => v === (i % (c + 1) === 0 ? 1 : 0));
}

const isZero = (t: HostTensor) => Array.from(t.data as Float32Array).every((v) => v === 0);
const hasSpatialAttention = (keys: Iterable<string>) => [...keys].some((k) => k.endsWith('.proj_attn.weight'));

test('generative checkpoints pass through unchanged', async (t) => {
  for (const arch of Object.keys(ARCHS)) {
    const g = await load(`${arch}-generative`);
    const c = convertKeys(g);
    t.is(c.scheme, 'generative', arch);
    t.false(c.attentionOutputProjection, arch);
    t.deepEqual(c.renamed, [], arch);
    t.deepEqual(c.synthesized, [], arch);
    t.deepEqual([...c.weights.keys()], [...g.keys()], arch);
    for (const [k, v] of g) t.is(c.weights.get(k), v, `${arch} ${k}`);
  }
});

test('monai-core (include_fc=True, separate q/k/v) converts to the generative state_dict exactly', async (t) => {
  for (const arch of Object.keys(ARCHS)) {
    const g = await load(`${arch}-generative`);
    const m = await load(`${arch}-monai-core`);
    const c = convertKeys(m);
    t.is(c.scheme, 'monai-core', arch);
    t.deepEqual([...c.weights.keys()].sort(), [...g.keys()].sort(), arch);
    for (const [k, v] of g) t.true(sameValues(c.weights.get(k)!, v), `${arch} ${k}`);
    t.deepEqual(c.synthesized, [], arch);
    // MONAI core applies out_proj in every SpatialAttentionBlock; only the spatial-attention nets have one.
    t.is(c.attentionOutputProjection, hasSpatialAttention(g.keys()), arch);
    t.true(c.renamed.length > 0, arch);
  }
});

test('monai-core with include_fc=False and fused qkv: split q/k/v, identity projections where MONAI has none', async (t) => {
  for (const arch of Object.keys(ARCHS)) {
    const g = await load(`${arch}-generative`);
    const m = await load(`${arch}-monai-core-nofc-fused`);
    const c = convertKeys(m);
    t.is(c.scheme, 'monai-core', arch);
    t.deepEqual([...c.weights.keys()].sort(), [...g.keys()].sort(), arch);
    for (const [k, v] of g) {
      const got = c.weights.get(k)!;
      t.deepEqual(got.shape, v.shape, `${arch} ${k}`);
      // Identities: the synthesised projections, and attn1.to_out.0, which the file made equal to an identity so
      // that its forward matches generative's (see train/make_pth_test_files.py).
      if (c.synthesized.includes(k) || /\.attn1\.to_out\.0\./.test(k)) t.true(k.endsWith('.weight') ? isIdentity(got) : isZero(got), `${arch} ${k}`);
      else t.true(sameValues(got, v), `${arch} ${k}`);
    }
    t.false(c.attentionOutputProjection, arch);
    if (hasSpatialAttention(g.keys())) t.true(c.synthesized.some((k) => k.endsWith('.proj_attn.weight')), arch);
    t.true(c.renamed.some((r) => /\.qkv\.weight$/.test(r.from)), `${arch}: a fused qkv was split`);
  }
});

test('split q/k/v parts are views of the fused tensor in [q; k; v] row order', async (t) => {
  const m = await load('unet-monai-core-nofc-fused');
  const c = convertKeys(m);
  const fused = m.get('middle_block.attention.attn.qkv.weight')!;
  const [rows, cols] = fused.shape;
  const parts = ['to_q', 'to_k', 'to_v'].map((p) => c.weights.get(`middle_block.attention.${p}.weight`)!);
  parts.forEach((p, i) => {
    t.deepEqual(p.shape, [rows / 3, cols]);
    t.is(p.data.buffer, fused.data.buffer);
    t.is(p.data[0], fused.data[(i * rows / 3) * cols]);
  });
});

test('the renamed pairs follow the table, and no foreign pattern matches a canonical key', async (t) => {
  const c = convertKeys(await load('spade-unet-monai-core'));
  const pairs = new Map(c.renamed.map((r) => [r.from, r.to]));
  t.is(pairs.get('up_blocks.0.upsampler.postconv.conv.weight'), 'up_blocks.0.upsampler.conv.conv.weight');
  t.is(pairs.get('up_blocks.0.resnets.0.norm1.param_free_norm.weight'), 'up_blocks.0.resnets.0.norm1.param_free_norm.N.weight');
  t.is(pairs.get('middle_block.attention.transformer_blocks.0.attn2.out_proj.bias'), 'middle_block.attention.transformer_blocks.0.attn2.to_out.0.bias');
  const ae = convertKeys(await load('ae-monai-core'));
  const aePairs = new Map(ae.renamed.map((r) => [r.from, r.to]));
  const attnKey = [...aePairs.keys()].find((k) => k.endsWith('.attn.to_q.weight'))!;
  t.is(aePairs.get(attnKey), attnKey.replace('.attn.to_q.', '.to_q.'));
  t.is(aePairs.get(attnKey.replace('to_q', 'out_proj')), attnKey.replace('.attn.to_q.', '.proj_attn.'));
  for (const arch of Object.keys(ARCHS)) {
    const g = await load(`${arch}-generative`);
    const again = convertKeys(g, { scheme: 'monai-core' });
    t.deepEqual(again.renamed, [], `${arch}: a canonical key matched a monai-core pattern`);
  }
  t.true(MONAI_CORE_RULES.length >= 7);
});

function fake(shape: number[], dtype: DType = 'F32'): HostTensor {
  const n = shape.reduce((a, b) => a * b, 1);
  return { dtype, shape, data: dtype === 'I64' ? new BigInt64Array(n) : dtype === 'F16' ? new Uint16Array(n) : new Float32Array(n) };
}

test('detection, prefixes, dropped buffers, the EmbeddingWrapper and errors', async (t) => {
  t.is(detectKeyScheme(['a.conv.weight']).scheme, 'generative');
  t.regex(detectKeyScheme(['a.conv.weight']).evidence, /no key differs/);
  t.is(detectKeyScheme(['x.attn.to_q.weight']).scheme, 'monai-core');
  t.throws(() => detectKeyScheme(['x.proj_attn.weight', 'y.attn.out_proj.weight']), { instanceOf: RangeError, message: /mixed key schemes: 'x\.proj_attn\.weight'.*'y\.attn\.out_proj\.weight'/ });

  const sd = new Map<string, HostTensor>([
    ['module.bn.num_batches_tracked', fake([], 'I64')],
    ['module.b.attn.to_q.weight', fake([4, 4], 'F16')],
    ['module.b.attn.to_k.weight', fake([4, 4], 'F16')],
    ['module.b.attn.to_v.weight', fake([4, 4], 'F16')],
    ['module.b.attn.to_q.bias', fake([4], 'F16')],
  ]);
  const c: ConvertedWeights = convertKeys(sd);
  t.is(c.strippedPrefix, 'module.');
  t.deepEqual(c.dropped, ['bn.num_batches_tracked']);
  t.deepEqual(c.synthesized, ['b.proj_attn.weight', 'b.proj_attn.bias']);
  t.deepEqual(Array.from(c.weights.get('b.proj_attn.weight')!.data as Uint16Array).filter((v) => v !== 0), [0x3c00, 0x3c00, 0x3c00, 0x3c00]);
  t.is(c.weights.get('b.proj_attn.weight')!.dtype, 'F16');

  const thesis = convertKeys(extractStateDict(await readTorchCheckpoint(`${DIR}thesis-container.pth`)).stateDict);
  t.deepEqual(thesis.wrapper, { type: 'EmbeddingWrapper', num_embeddings: 5, embedding_dim: 3 });
  t.true(thesis.weights.has('autoencoder.encoder.blocks.0.conv.weight'));

  t.throws(() => convertKeys(new Map([['x.attn.qkv.weight', fake([4, 2])]])), { instanceOf: RangeError, message: /'x\.attn\.qkv\.weight' has shape \[4, 2\]: a fused q\/k\/v tensor needs a first dimension divisible by 3/ });
  t.throws(() => convertKeys(new Map([['x.attn.to_q.weight', fake([2, 2])], ['x.to_q.weight', fake([2, 2])]]), { scheme: 'monai-core' }), { instanceOf: RangeError, message: /'x\.to_q\.weight' and 'x\.attn\.to_q\.weight' both map to 'x\.to_q\.weight'/ });
  t.throws(() => convertKeys(new Map([['x.attn.to_q.weight', fake([4, 2])]])), { instanceOf: RangeError, message: /cannot synthesise an identity 'x\.proj_attn\.weight': to_q has shape \[4, 2\]/ });
  t.throws(() => convertKeys({} as never), { instanceOf: TypeError, message: /argument 'stateDict'/ });
  t.throws(() => convertKeys(new Map(), { scheme: 'diffusers' as never }), { instanceOf: TypeError, message: /argument 'options\.scheme'/ });
});

// ---------------------------------------------------------------------------------------------------------------
// Parity fixtures (train/make_parity_fixtures.py): real-size key lists of both packages for the same architectures.

const PARITY = process.env.BRAIN_LDM_PARITY_DIR ? `${process.env.BRAIN_LDM_PARITY_DIR.replace(/\/$/, '')}/` : new URL('../fixtures/parity/', import.meta.url).pathname;
const hasParity = existsSync(`${PARITY}keys`);
const parityTest = hasParity ? test : test.skip;

interface ParityCase { name: string; network: string; args: Record<string, unknown>; key_scheme: string; wrapper: unknown }

const TORCH_DTYPES: Record<string, DType> = { float32: 'F32', float16: 'F16', bfloat16: 'BF16', int64: 'I64' };

/** keys/<case>.txt: one `key<TAB>dtype<TAB>[shape]` line per stored tensor. */
function readKeyList(name: string): Array<{ key: string; dtype: DType; shape: number[] }> {
  return readFileSync(`${PARITY}keys/${name}.txt`, 'utf8').split('\n').filter((l) => l.trim()).map((line) => {
    const [key, dtype, shape] = line.split('\t');
    return { key, dtype: TORCH_DTYPES[dtype], shape: JSON.parse(shape) as number[] };
  });
}

function readKeys(name: string): Map<string, HostTensor> {
  return new Map(readKeyList(name).map(({ key, dtype, shape }) => [key, fake(shape, dtype === 'I64' ? 'I64' : dtype === 'F32' ? 'F32' : 'F16')]));
}

function baseArgs(args: Record<string, unknown>): string {
  const a: Record<string, unknown> = { ...args };
  if ('channels' in a) { a.num_channels = a.channels; delete a.channels; }
  for (const k of ['include_fc', 'use_combined_linear', 'use_flash_attention']) delete a[k];
  return JSON.stringify(Object.keys(a).sort().map((k) => [k, a[k]]));
}

parityTest('parity key lists: every monai-core case converts to its generative twin\'s keys and shapes', (t) => {
  const cases = readdirSync(PARITY).filter((d) => existsSync(`${PARITY}${d}/case.json`))
    .map((d) => JSON.parse(readFileSync(`${PARITY}${d}/case.json`, 'utf8')) as ParityCase)
    .filter((c) => existsSync(`${PARITY}keys/${c.name}.txt`));
  let pairs = 0;
  for (const c of cases) {
    const keys = readKeys(c.name);
    const conv = convertKeys(keys);
    t.is(conv.scheme, c.key_scheme === 'monai-core' ? 'monai-core' : 'generative', c.name);
    if (c.key_scheme !== 'monai-core') {
      t.deepEqual([...conv.weights.keys()], [...keys.keys()], c.name);
      if (c.wrapper) t.deepEqual(conv.wrapper, c.wrapper, c.name);
      continue;
    }
    const twin = cases.find((g) => g.key_scheme !== 'monai-core' && g.network === c.network && !g.wrapper && baseArgs(g.args) === baseArgs(c.args));
    if (!twin) continue;
    pairs++;
    const want = readKeys(twin.name);
    t.deepEqual([...conv.weights.keys()].sort(), [...want.keys()].sort(), `${c.name} -> ${twin.name}`);
    for (const [k, v] of want) t.deepEqual(conv.weights.get(k)?.shape, v.shape, `${c.name} ${k}`);
  }
  t.log(`${cases.length} parity key lists, ${pairs} monai-core/generative pairs`);
});

parityTest('parity model.pth files read back with exactly the listed keys, dtypes and shapes', async (t) => {
  const names = readdirSync(`${PARITY}keys`).filter((f) => f.endsWith('.txt')).map((f) => f.slice(0, -4)).filter((n) => existsSync(`${PARITY}${n}/model.pth`));
  for (const name of names) {
    const found = extractStateDict(await readTorchCheckpoint(`${PARITY}${name}/model.pth`));
    const want = readKeyList(name);
    t.deepEqual([...found.stateDict.keys()], want.map((w) => w.key), name);
    for (const w of want) {
      const got = found.stateDict.get(w.key)!;
      t.is(got.dtype, w.dtype, `${name} ${w.key}`);
      t.deepEqual(got.shape, w.shape, `${name} ${w.key}`);
    }
  }
  t.log(`${names.length} parity checkpoints read`);
});
