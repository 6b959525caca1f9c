/**
 * torch.save readers: exact values of the files train/make_pth_test_files.py wrote with torch 2.13 (fp32, fp16,
 * bf16, fp64, int64, non-contiguous views, shared storages, Parameters, pickle protocols 2/4/5, the thesis and
 * bundle containers), and refusals: forbidden globals, unknown opcodes, truncated, re-compressed and legacy files.
 */
import test from 'ava';
import { readFileSync } from 'node:fs';
import {
  ALLOWED_GLOBALS, OPCODES, TorchTensor, UnsafePickleError, dictAttributes, extractStateDict, isStateDict,
  parseTorchCheckpoint, readTorchCheckpoint, type PickleValue,
} from '../../ts/io/torch-checkpoint.js';
import type { DType } from '../../ts/io/safetensors.js';

const DIR = new URL('../fixtures/pth/', import.meta.url).pathname;
const path = (name: string) => `${DIR}${name}.pth`;
/** Values as JSON numbers, or "Infinity"/"-Infinity"/"NaN" strings (JSON has none). */
type Want = { dtype: string; shape: number[]; stride: number[]; storage_offset: number; values: Array<number | string>; bits?: number[]; values_f32?: Array<number | string> };
const expected = JSON.parse(readFileSync(`${DIR}expected.json`, 'utf8')) as Record<string, Record<string, Want>> & {
  forbidden: Record<string, { global: string; offset: number }>;
  truncated: { size: number; full: number };
  'bad-opcode': { opcode: string; name: string; offset: number };
};
const DTYPE: Record<string, DType> = { float32: 'F32', float16: 'F16', bfloat16: 'BF16', float64: 'F64', int64: 'I64' };

function values(t: TorchTensor): number[] {
  return t.dtype === 'I64' ? Array.from(t.data as BigInt64Array, Number) : Array.from(t.data as Float32Array);
}

function checkAgainst(t: import('ava').ExecutionContext, sd: Map<string, TorchTensor>, want: Record<string, Want>): void {
  t.deepEqual([...sd.keys()], Object.keys(want));
  for (const [name, w] of Object.entries(want)) {
    const got = sd.get(name)!;
    t.true(got instanceof TorchTensor, name);
    t.deepEqual(got.shape, w.shape, name);
    t.deepEqual(got.strides, w.stride, name);
    t.is(got.storageOffset, w.storage_offset, name);
    t.is(got.storageDType, DTYPE[w.dtype], name);
    if (w.bits) t.deepEqual(Array.from(got.data as Uint16Array), w.bits, name);
    else t.deepEqual(values(got), (w.values_f32 ?? w.values).map(Number), name);
  }
}

async function stateDict(name: string) {
  const found = extractStateDict(await readTorchCheckpoint(path(name)));
  return found;
}

test('bare state_dict: fp32 values, int64 num_batches_tracked, module _metadata kept aside', async (t) => {
  const root = await readTorchCheckpoint(path('bare'));
  const found = extractStateDict(root);
  t.is(found.container, 'bare');
  checkAgainst(t, found.stateDict, expected.bare);
  const counter = found.stateDict.get('bn.num_batches_tracked')!;
  t.is(counter.dtype, 'I64');
  t.deepEqual(counter.shape, []);
  t.is((counter.data as BigInt64Array)[0], 7n);
  const attrs = dictAttributes.get(found.stateDict)!;
  t.true(attrs.get('_metadata') instanceof Map);
});

test('containers: the thesis {"model": sd} and a MONAI bundle {"state_dict": sd, optimizer, epoch}', async (t) => {
  const thesis = await stateDict('thesis-container');
  t.is(thesis.container, 'model');
  t.regex(thesis.description, /thesis/);
  checkAgainst(t, thesis.stateDict, expected['thesis-container']);

  const root = await readTorchCheckpoint(path('bundle-container'));
  const bundle = extractStateDict(root);
  t.is(bundle.container, 'state_dict');
  checkAgainst(t, bundle.stateDict, expected.bare);
  const top = root as Map<PickleValue, PickleValue>;
  t.is(top.get('epoch'), 3);
  t.is(top.get('best_metric'), 0.125);
  const groups = (top.get('optimizer') as Map<PickleValue, PickleValue>).get('param_groups') as Map<PickleValue, PickleValue>[];
  t.deepEqual(groups[0].get('betas'), [0.9, 0.999]);
  t.true(Object.isFrozen(groups[0].get('betas')), 'tuples come back frozen');
  t.is(extractStateDict(root, { key: 'state_dict' }).container, 'state_dict');
  t.throws(() => extractStateDict(root, { key: 'optimizer', source: 'x.pth' }), { instanceOf: TypeError, message: /x\.pth: 'optimizer' is not a state_dict/ });
  t.throws(() => extractStateDict(root, { key: 'nope' }), { instanceOf: RangeError, message: /no top-level key 'nope'.*'state_dict' \(dict\)/ });
  t.throws(() => extractStateDict(new Map<PickleValue, PickleValue>([['epoch', 1]])), { instanceOf: TypeError, message: /no state_dict found.*'epoch' \(number\)/ });
  t.false(isStateDict(new Map()));
});

test('fp16 and bf16 come back as stored raw bits; fp64 becomes fp32 unless kept', async (t) => {
  const half = await stateDict('fp16');
  checkAgainst(t, half.stateDict, expected.fp16);
  t.is(half.stateDict.get('w')!.dtype, 'F16');
  const bf = await stateDict('bf16');
  checkAgainst(t, bf.stateDict, expected.bf16);
  t.is(bf.stateDict.get('w')!.dtype, 'BF16');

  const f64 = await stateDict('float64');
  const w = f64.stateDict.get('w')!;
  t.is(w.dtype, 'F32');
  t.is(w.storageDType, 'F64');
  t.true(w.copied);
  t.deepEqual(values(w), expected.float64.w.values_f32!.map(Number));
  const kept = extractStateDict(parseTorchCheckpoint(readFileSync(path('float64')), 'float64.pth', { float64: 'keep' }));
  t.is(kept.stateDict.get('w')!.dtype, 'F64');
  t.deepEqual(Array.from(kept.stateDict.get('w')!.data as Float64Array), expected.float64.w.values.map(Number));
});

test('non-contiguous views (transposed, strided, permuted, offset, expanded) are materialised contiguous', async (t) => {
  const nc = await stateDict('noncontiguous');
  checkAgainst(t, nc.stateDict, expected.noncontiguous);
  for (const [name, tensor] of nc.stateDict) t.true(tensor.copied, `${name} is not contiguous in its storage, so it is a copy`);
});

test('tensors sharing one storage are views of the same file bytes', async (t) => {
  const sd = (await stateDict('shared-storage')).stateDict;
  checkAgainst(t, sd, expected['shared-storage']);
  const whole = sd.get('whole')!;
  const mid = sd.get('mid')!;
  const grid = sd.get('grid')!;
  t.is(whole.storageKey, mid.storageKey);
  t.is(whole.storageKey, grid.storageKey);
  t.false(whole.copied);
  t.false(mid.copied);
  t.is(mid.data.buffer, whole.data.buffer);
  t.is(mid.data.byteOffset, whole.data.byteOffset + 2 * 4);
});

test('Parameters (torch._utils._rebuild_parameter) and pickle protocols 4 and 5 read the same', async (t) => {
  const sd = (await stateDict('parameter')).stateDict;
  checkAgainst(t, sd, expected.parameter);
  t.true(sd.get('p')!.isParameter);
  t.true(sd.get('p')!.requiresGrad);
  t.false(sd.get('plain')!.isParameter);
  for (const name of ['protocol4', 'protocol5']) checkAgainst(t, (await stateDict(name)).stateDict, expected.bare);
});

test('forbidden globals are refused by name, and nothing runs', async (t) => {
  for (const [name, want] of Object.entries(expected.forbidden)) {
    const err = await t.throwsAsync(readTorchCheckpoint(path(name)), { instanceOf: UnsafePickleError });
    t.true(err!.message.startsWith(path(name)), name);
    t.true(err!.message.includes(`refuses the global '${want.global}' (GLOBAL at byte offset ${want.offset})`), err!.message);
    t.regex(err!.message, /Nothing from the file was executed/);
  }
  t.true(ALLOWED_GLOBALS.includes('torch._utils._rebuild_tensor_v2'));
  t.false(ALLOWED_GLOBALS.some((g) => g.startsWith('builtins') || g.startsWith('os') || g.startsWith('numpy')));
});

test('an opcode outside the allowed set fails naming the opcode and its byte offset', async (t) => {
  const want = expected['bad-opcode'];
  await t.throwsAsync(readTorchCheckpoint(path('bad-opcode')), {
    instanceOf: UnsafePickleError,
    message: new RegExp(`bad-opcode\\.pth: archive/data\\.pkl: unsupported pickle opcode ${want.opcode} \\(${want.name}\\) at byte offset ${want.offset}`),
  });
  t.false(Object.values(OPCODES).includes('NEWOBJ'));
  t.false(Object.values(OPCODES).includes('INST'));
});

test('a truncated file says so and names the file', async (t) => {
  await t.throwsAsync(readTorchCheckpoint(path('truncated')), {
    instanceOf: RangeError,
    message: new RegExp(`truncated\\.pth: truncated: the zip end-of-central-directory record is missing \\(the file is ${expected.truncated.size} bytes`),
  });
});

test('every prefix of a checkpoint fails cleanly, with the file name (no raw DataView errors)', (t) => {
  const full = readFileSync(path('bare'));
  for (let n = 0; n < full.length; n += 7) {
    const err = t.throws(() => parseTorchCheckpoint(full.subarray(0, n), 'cut.pth'));
    t.true(err!.message.startsWith('cut.pth: '), `${n}: ${err!.message}`);
  }
});

test('corrupted bytes are caught by the CRC, or by the unpickler when CRC checks are off', (t) => {
  const full = readFileSync(path('bare'));
  const start = full.indexOf(Buffer.from([0x80, 0x02]), 30);
  const corrupt = Buffer.from(full);
  corrupt[start + 40] ^= 0xff;
  t.throws(() => parseTorchCheckpoint(corrupt, 'flip.pth'), { instanceOf: RangeError, message: /flip\.pth: corrupt: entry 'bare\/data\.pkl' has CRC-32 0x[0-9a-f]{8} but the zip directory records 0x[0-9a-f]{8}/ });
  // Without the CRC every single-byte change in data.pkl either still parses or fails with a clean, named error.
  for (let i = start; i < start + 600; i++) {
    for (const v of [0x00, 0x58, 0xff]) {
      const c = Buffer.from(full);
      c[i] = v;
      try {
        parseTorchCheckpoint(c, 'fuzz.pth', { verifyCrc: false });
      } catch (e) {
        if (!(e as Error).message.startsWith('fuzz.pth: ')) t.fail(`byte ${i} = ${v}: ${(e as Error).message}`);
      }
    }
  }
  t.pass();
});

test('a re-compressed zip is refused naming the entry; a legacy file asks to re-save', async (t) => {
  await t.throwsAsync(readTorchCheckpoint(path('compressed')), {
    instanceOf: TypeError,
    message: /compressed\.pth: zip entry 'bare\/[^']+' is compressed \(method 8, deflate\).*re-save it with torch\.save/,
  });
  await t.throwsAsync(readTorchCheckpoint(path('legacy')), {
    instanceOf: TypeError,
    message: /legacy\.pth: legacy torch\.save format.*Re-save it with a current torch/,
  });
  t.throws(() => parseTorchCheckpoint(Buffer.from('hello world'), 'text.pth'), { instanceOf: TypeError, message: /text\.pth: not a torch\.save checkpoint/ });
  t.throws(() => parseTorchCheckpoint(Buffer.alloc(0), 'empty.pth'), { instanceOf: RangeError, message: /empty\.pth: the file is empty/ });
  await t.throwsAsync(readTorchCheckpoint(''), { instanceOf: TypeError, message: /argument 'path'/ });
});
