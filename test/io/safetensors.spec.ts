/**
 * safetensors: values of a file written by the Python package, byte-exact round trips, zero-copy views, and
 * validation errors that name the file and the tensor.
 */
import test from 'ava';
import { mkdtempSync, readFileSync, readdirSync, mkdirSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  parseSafetensors, readSafetensors, serializeSafetensors, writeSafetensors, type DType, type HostTensor,
} from '../../ts/io/safetensors.js';

const FIXTURES = new URL('../fixtures/pth/', import.meta.url);
const REFERENCE = new URL('reference.safetensors', FIXTURES).pathname;
const ref = JSON.parse(readFileSync(new URL('reference.json', FIXTURES), 'utf8')) as {
  metadata: Record<string, string>;
  tensors: Record<string, { dtype: string; shape: number[]; values: number[]; bits?: number[] }>;
};
const TORCH_TO_ST: Record<string, DType> = { float32: 'F32', float16: 'F16', bfloat16: 'BF16', int64: 'I64', bool: 'BOOL', float64: 'F64' };

function tmp(): string {
  return mkdtempSync(join(tmpdir(), 'brain-ldm-st-'));
}

/** A safetensors image from a header object and raw data, for malformed-file tests. */
function craft(header: unknown, data: Uint8Array, pad = true): Buffer {
  let json = Buffer.from(JSON.stringify(header));
  if (pad && json.length % 8) json = Buffer.concat([json, Buffer.alloc(8 - (json.length % 8), 0x20)]);
  const len = Buffer.alloc(8);
  len.writeBigUInt64LE(BigInt(json.length));
  return Buffer.concat([len, json, Buffer.from(data)]);
}

test('reads every tensor of a file written by the Python safetensors package, exactly', async (t) => {
  const { metadata, tensors } = await readSafetensors(REFERENCE);
  t.deepEqual(metadata, ref.metadata);
  t.deepEqual([...tensors.keys()].sort(), Object.keys(ref.tensors).sort());
  for (const [name, want] of Object.entries(ref.tensors)) {
    const got = tensors.get(name)!;
    t.is(got.dtype, TORCH_TO_ST[want.dtype], name);
    t.deepEqual(got.shape, want.shape, name);
    if (want.bits) t.deepEqual(Array.from(got.data as Uint16Array), want.bits, name);
    else if (got.dtype === 'I64') t.deepEqual(Array.from(got.data as BigInt64Array, Number), want.values, name);
    else t.deepEqual(Array.from(got.data as Float32Array, Number), want.values, name);
  }
  t.deepEqual(Array.from(tensors.get('steps')!.data as BigInt64Array), [7n, -1n]);
  t.deepEqual(Array.from(tensors.get('mask')!.data as Uint8Array), [1, 0, 1]);
  t.deepEqual(tensors.get('scalar')!.shape, []);
  t.is(tensors.get('empty')!.data.length, 0);
});

test('write -> read -> write reproduces the Python package\'s file byte for byte', async (t) => {
  const original = readFileSync(REFERENCE);
  const first = await readSafetensors(REFERENCE);
  t.true(serializeSafetensors(first.tensors, first.metadata).equals(original));
  const dir = tmp();
  const path = join(dir, 'copy.safetensors');
  await writeSafetensors(path, first.tensors, first.metadata);
  t.true(readFileSync(path).equals(original));
  const second = await readSafetensors(path);
  const again = join(dir, 'again.safetensors');
  await writeSafetensors(again, second.tensors, second.metadata);
  t.true(readFileSync(again).equals(original));
  t.deepEqual(readdirSync(dir).sort(), ['again.safetensors', 'copy.safetensors'], 'no temp file left behind');
});

test('layout: widest dtype first then by name, header padded with spaces, every tensor aligned', (t) => {
  const tensors = new Map<string, HostTensor>([
    ['b', { dtype: 'F32', shape: [3], data: new Float32Array([1, 2, 3]) }],
    ['a', { dtype: 'F16', shape: [1], data: new Uint16Array([0x3c00]) }],
    ['c', { dtype: 'U8', shape: [3], data: new Uint8Array([1, 2, 3]) }],
    ['d', { dtype: 'I64', shape: [1], data: new BigInt64Array([5n]) }],
    ['a2', { dtype: 'F32', shape: [2], data: new Float32Array([4, 5]) }],
  ]);
  const bytes = serializeSafetensors(tensors, { z: '1', a: '2' });
  const n = Number(bytes.readBigUInt64LE(0));
  t.is(n % 8, 0);
  const text = bytes.subarray(8, 8 + n).toString('utf8');
  t.regex(text, / *$/);
  const header = JSON.parse(text) as Record<string, { data_offsets: [number, number]; dtype: string }>;
  t.deepEqual(Object.keys(header), ['__metadata__', 'd', 'a2', 'b', 'a', 'c']);
  t.deepEqual(Object.keys(header.__metadata__), ['a', 'z']);
  const size: Record<string, number> = { I64: 8, F32: 4, F16: 2, U8: 1 };
  for (const [name, e] of Object.entries(header)) if (name !== '__metadata__') t.is(e.data_offsets[0] % size[e.dtype], 0, name);
  const back = parseSafetensors(bytes);
  t.deepEqual(Array.from(back.tensors.get('a2')!.data as Float32Array), [4, 5]);
});

test('tensors are zero-copy views of the file where aligned, copies otherwise', (t) => {
  const bytes = readFileSync(REFERENCE);
  const aligned = new Uint8Array(new ArrayBuffer(bytes.length));
  aligned.set(bytes);
  const view = parseSafetensors(aligned, 'aligned');
  t.is(view.tensors.get('conv.weight')!.data.buffer, aligned.buffer);
  t.is(view.tensors.get('steps')!.data.buffer, aligned.buffer);
  // The same bytes one byte into a buffer: 4- and 8-byte types cannot be viewed there and are copied.
  const shifted = new Uint8Array(new ArrayBuffer(bytes.length + 1), 1);
  shifted.set(bytes);
  const copy = parseSafetensors(shifted, 'shifted');
  t.not(copy.tensors.get('conv.weight')!.data.buffer, shifted.buffer);
  t.is(copy.tensors.get('mask')!.data.buffer, shifted.buffer);
  t.deepEqual(Array.from(copy.tensors.get('conv.weight')!.data as Float32Array), ref.tensors['conv.weight'].values);
});

test('malformed files fail with errors naming the file and the tensor', (t) => {
  const f32 = (n: number) => new Uint8Array(new Float32Array(n).buffer);
  const e = (bytes: Uint8Array, re: RegExp, Err: typeof Error = RangeError) =>
    t.throws(() => parseSafetensors(bytes, 'bad.safetensors'), { instanceOf: Err, message: re });
  e(new Uint8Array(5), /bad\.safetensors: truncated safetensors file: 5 bytes/);
  const huge = Buffer.alloc(16);
  huge.writeBigUInt64LE(1n << 40n);
  e(huge, /bad\.safetensors: header length 1099511627776 exceeds/);
  e(craft({ w: { dtype: 'F32', shape: [2], data_offsets: [0, 8] } }, f32(2)).subarray(0, 20), /bad\.safetensors: truncated safetensors file: header says \d+ bytes/);
  const notJson = Buffer.concat([Buffer.from([8, 0, 0, 0, 0, 0, 0, 0]), Buffer.from('{"a":1,  ')]);
  e(notJson.subarray(0, 16), /bad\.safetensors: header is not valid UTF-8 JSON/);
  e(craft({ w: { dtype: 'F31', shape: [2], data_offsets: [0, 8] } }, f32(2)), /tensor 'w': unsupported dtype "F31"/, TypeError);
  e(craft({ w: { dtype: 'F32', shape: [2, -1], data_offsets: [0, 8] } }, f32(2)), /tensor 'w': shape must be/, TypeError);
  e(craft({ w: { dtype: 'F32', shape: [3], data_offsets: [0, 8] } }, f32(2)), /tensor 'w': F32 \[3\] needs 12 bytes but data_offsets \[0, 8\] hold 8/);
  e(craft({ w: { dtype: 'F32', shape: [4], data_offsets: [0, 16] } }, f32(2)), /tensor 'w': data_offsets \[0, 16\] run past the end of the data \(8 bytes\)/);
  e(craft({ w: { dtype: 'F32', shape: [2], data_offsets: [0, 8] }, v: { dtype: 'F32', shape: [2], data_offsets: [4, 12] } }, f32(3)), /tensor '(v|w)' \(bytes 4-12\) overlaps tensor 'w'/);
  e(craft({ w: { dtype: 'F32', shape: [1], data_offsets: [4, 8] } }, f32(2)), /bytes 0-4 of the data before tensor 'w' belong to no tensor/);
  e(craft({ w: { dtype: 'F32', shape: [1], data_offsets: [0, 4] } }, f32(2)), /4 bytes after the last tensor \('w'\) belong to no tensor/);
  e(craft({ __metadata__: { a: 1 }, w: { dtype: 'F32', shape: [1], data_offsets: [0, 4] } }, f32(1)), /__metadata__\.a must be a string/, TypeError);
  e(craft({ w: { dtype: 'F32', shape: [1], data_offsets: [4, 0] } }, f32(1)), /tensor 'w': data_offsets \[4, 0\] end before they begin/);
  e(craft([1, 2], new Uint8Array(0)), /header must be a JSON object/, TypeError);
});

test('readSafetensors names the path in its errors', async (t) => {
  const dir = tmp();
  const path = join(dir, 'cut.safetensors');
  writeFileSync(path, readFileSync(REFERENCE).subarray(0, 300));
  await t.throwsAsync(readSafetensors(path), { instanceOf: RangeError, message: new RegExp(`^${path.replace(/[.*+?^${}()|[\]\\/]/g, '\\$&')}: truncated`) });
});

test('writeSafetensors rejects bad tensors naming the argument and the tensor, and leaves no temp file', async (t) => {
  const dir = tmp();
  const path = join(dir, 'w.safetensors');
  await t.throwsAsync(writeSafetensors(path, { w: { dtype: 'F32', shape: [2], data: new Float64Array(2) } as never }),
    { instanceOf: TypeError, message: /argument 'tensors': 'w' is F32 and needs a Float32Array, got Float64Array/ });
  await t.throwsAsync(writeSafetensors(path, { w: { dtype: 'F32', shape: [3], data: new Float32Array(2) } }),
    { instanceOf: RangeError, message: /'w' has shape \[3\] \(3 elements\) but 2 elements of data/ });
  await t.throwsAsync(writeSafetensors(path, { __metadata__: { dtype: 'F32', shape: [1], data: new Float32Array(1) } }),
    { instanceOf: RangeError, message: /'__metadata__' is reserved/ });
  await t.throwsAsync(writeSafetensors(path, {}, { a: 1 as never }), { instanceOf: TypeError, message: /argument 'metadata'/ });
  // The rename onto a directory fails after the data was written: the temp file must be gone.
  const blocker = join(dir, 'blocked.safetensors');
  mkdirSync(blocker);
  writeFileSync(join(blocker, 'x'), 'x');
  await t.throwsAsync(writeSafetensors(blocker, { w: { dtype: 'F32', shape: [1], data: new Float32Array(1) } }));
  t.deepEqual(readdirSync(dir), ['blocked.safetensors']);
});

test('an empty tensor map is a valid file', (t) => {
  const bytes = serializeSafetensors(new Map());
  t.is(parseSafetensors(bytes).tensors.size, 0);
});
