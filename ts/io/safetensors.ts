/**
 * safetensors reader and writer.
 *
 * Hand-written on purpose: the format is about a page (spec: huggingface/safetensors README, "Format"), and no
 * well-kept npm package reads and writes it without pulling in a framework. Layout:
 *   8 bytes   N, little-endian u64: length of the JSON header
 *   N bytes   JSON {"__metadata__": {str: str}?, name: {"dtype", "shape", "data_offsets": [begin, end]}, ...},
 *             padded with spaces so the byte buffer starts 8-byte aligned
 *   rest      the byte buffer; offsets are relative to its start; it is fully indexed (no holes, no overlap)
 *
 * The writer reproduces the Python `safetensors` package (0.8) byte for byte: tensors are laid out by dtype from
 * the widest to the narrowest (so every tensor starts aligned to its element size without holes), by name within
 * a dtype; header entries follow the data order; metadata keys are sorted by name (Python's order is a hash order,
 * so only files with at most one metadata key compare byte for byte).
 */
import { writeFileAtomically } from './atomic-write.js';
import { closeSync, fstatSync, openSync, readSync } from 'node:fs';
import { endianness } from 'node:os';

/** Element types, named as in the safetensors header. F16/BF16 and F8 hold raw bits (no Float16Array in Node 20). */
export type DType =
  | 'BOOL' | 'U8' | 'I8' | 'F8_E5M2' | 'F8_E4M3' | 'I16' | 'U16' | 'F16' | 'BF16'
  | 'I32' | 'U32' | 'F32' | 'F64' | 'I64' | 'U64';

export type TensorData =
  | Float32Array | Float64Array | Uint8Array | Int8Array | Uint16Array | Int16Array
  | Uint32Array | Int32Array | BigInt64Array | BigUint64Array;

/** A tensor in host memory: `data` is contiguous, row-major over `shape`. */
export interface HostTensor {
  dtype: DType;
  shape: number[];
  data: TensorData;
}

export interface SafetensorsFile {
  metadata: Record<string, string>;
  tensors: Map<string, HostTensor>;
}

type TypedArrayClass = { new (buffer: ArrayBufferLike, byteOffset: number, length: number): TensorData; new (length: number): TensorData; readonly BYTES_PER_ELEMENT: number; readonly name: string };

interface DTypeInfo { size: number; array: TypedArrayClass; rank: number }

/** Element size and host array per dtype; `rank` is the Python package's sort order (widest first in the file). */
export const DTYPES: Readonly<Record<DType, DTypeInfo>> = {
  BOOL: { size: 1, array: Uint8Array, rank: 0 },
  U8: { size: 1, array: Uint8Array, rank: 1 },
  I8: { size: 1, array: Int8Array, rank: 2 },
  F8_E5M2: { size: 1, array: Uint8Array, rank: 3 },
  F8_E4M3: { size: 1, array: Uint8Array, rank: 4 },
  I16: { size: 2, array: Int16Array, rank: 5 },
  U16: { size: 2, array: Uint16Array, rank: 6 },
  F16: { size: 2, array: Uint16Array, rank: 7 },
  BF16: { size: 2, array: Uint16Array, rank: 8 },
  I32: { size: 4, array: Int32Array, rank: 9 },
  U32: { size: 4, array: Uint32Array, rank: 10 },
  F32: { size: 4, array: Float32Array, rank: 11 },
  F64: { size: 8, array: Float64Array, rank: 12 },
  I64: { size: 8, array: BigInt64Array, rank: 13 },
  U64: { size: 8, array: BigUint64Array, rank: 14 },
};

export function isDType(v: unknown): v is DType {
  return typeof v === 'string' && Object.prototype.hasOwnProperty.call(DTYPES, v);
}

/** The safetensors Python package refuses headers above 100 MB; so do we (a corrupt length must not allocate GBs). */
export const MAX_HEADER_BYTES = 100_000_000;

export function checkLittleEndianHost(): void {
  if (endianness() !== 'LE') throw new RangeError('brain-ldm reads and writes little-endian tensor files only; this host is big-endian');
}

export function elementCount(shape: readonly number[]): number {
  return shape.reduce((a, b) => a * b, 1);
}

/**
 * A typed view of `length` elements at `byteOffset` of `bytes`: zero-copy when the absolute address is aligned to
 * the element size, otherwise a copy (typed arrays cannot be misaligned).
 */
export function typedView(dtype: DType, bytes: Uint8Array, byteOffset: number, length: number): TensorData {
  const { array, size } = DTYPES[dtype];
  const at = bytes.byteOffset + byteOffset;
  if (at % size === 0) return new array(bytes.buffer, at, length);
  const copy = new array(length);
  new Uint8Array(copy.buffer).set(bytes.subarray(byteOffset, byteOffset + length * size));
  return copy;
}

/**
 * The whole file in one Buffer. readFileSync stops at 2 GiB, and the thesis mask UNet is about 2.1 GiB in fp32,
 * so read in chunks into one allocation (Node 20 Buffers go up to 4 GiB).
 */
export function readFileFully(path: string): Buffer {
  const fd = openSync(path, 'r');
  try {
    const size = fstatSync(fd).size;
    const buf = Buffer.allocUnsafeSlow(size);
    const chunk = 1 << 30;
    let done = 0;
    while (done < size) {
      const n = readSync(fd, buf, done, Math.min(chunk, size - done), done);
      if (n === 0) throw new RangeError(`${path}: file shrank while being read (got ${done} of ${size} bytes)`);
      done += n;
    }
    return buf;
  } finally {
    closeSync(fd);
  }
}

function describeJson(v: unknown): string {
  const s = JSON.stringify(v);
  return s === undefined ? String(v) : s.length > 60 ? `${s.slice(0, 57)}...` : s;
}

/** Parses and validates a safetensors image held in memory; `source` names it in errors. Tensor data are views of `bytes` where aligned. */
export function parseSafetensors(bytes: Uint8Array, source = '<buffer>'): SafetensorsFile {
  checkLittleEndianHost();
  if (bytes.byteLength < 8) throw new RangeError(`${source}: truncated safetensors file: ${bytes.byteLength} bytes, the 8-byte header length alone needs 8`);
  const dv = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const headerLen = dv.getBigUint64(0, true);
  if (headerLen > BigInt(MAX_HEADER_BYTES))
    throw new RangeError(`${source}: header length ${headerLen} exceeds the ${MAX_HEADER_BYTES}-byte limit (not a safetensors file, or corrupt)`);
  const n = Number(headerLen);
  if (8 + n > bytes.byteLength)
    throw new RangeError(`${source}: truncated safetensors file: header says ${n} bytes of JSON but only ${bytes.byteLength - 8} bytes follow the length`);
  let header: unknown;
  try {
    header = JSON.parse(new TextDecoder('utf-8', { fatal: true }).decode(bytes.subarray(8, 8 + n)));
  } catch (e) {
    throw new RangeError(`${source}: header is not valid UTF-8 JSON: ${(e as Error).message}`);
  }
  if (header === null || typeof header !== 'object' || Array.isArray(header))
    throw new TypeError(`${source}: header must be a JSON object, got ${describeJson(header)}`);
  const dataStart = 8 + n;
  const dataLen = bytes.byteLength - dataStart;
  const metadata: Record<string, string> = {};
  const entries: Array<{ name: string; dtype: DType; shape: number[]; begin: number; end: number }> = [];
  for (const [name, raw] of Object.entries(header as Record<string, unknown>)) {
    if (name === '__metadata__') {
      if (raw === null || typeof raw !== 'object' || Array.isArray(raw))
        throw new TypeError(`${source}: __metadata__ must be an object of strings, got ${describeJson(raw)}`);
      for (const [k, v] of Object.entries(raw as Record<string, unknown>)) {
        if (typeof v !== 'string') throw new TypeError(`${source}: __metadata__.${k} must be a string, got ${describeJson(v)}`);
        metadata[k] = v;
      }
      continue;
    }
    const where = `${source}: tensor '${name}'`;
    if (raw === null || typeof raw !== 'object' || Array.isArray(raw)) throw new TypeError(`${where}: entry must be an object, got ${describeJson(raw)}`);
    const { dtype, shape, data_offsets: offsets } = raw as Record<string, unknown>;
    if (!isDType(dtype)) throw new TypeError(`${where}: unsupported dtype ${describeJson(dtype)} (expected one of ${Object.keys(DTYPES).join(', ')})`);
    if (!Array.isArray(shape) || !shape.every((d) => Number.isSafeInteger(d) && d >= 0))
      throw new TypeError(`${where}: shape must be an array of non-negative integers, got ${describeJson(shape)}`);
    if (!Array.isArray(offsets) || offsets.length !== 2 || !offsets.every((o) => Number.isSafeInteger(o) && o >= 0))
      throw new TypeError(`${where}: data_offsets must be [begin, end] non-negative integers, got ${describeJson(offsets)}`);
    const [begin, end] = offsets as number[];
    if (end < begin) throw new RangeError(`${where}: data_offsets [${begin}, ${end}] end before they begin`);
    if (end > dataLen)
      throw new RangeError(`${where}: data_offsets [${begin}, ${end}] run past the end of the data (${dataLen} bytes): the file is truncated or corrupt`);
    const want = elementCount(shape as number[]) * DTYPES[dtype].size;
    if (end - begin !== want)
      throw new RangeError(`${where}: ${dtype} [${(shape as number[]).join(', ')}] needs ${want} bytes but data_offsets [${begin}, ${end}] hold ${end - begin}`);
    entries.push({ name, dtype, shape: (shape as number[]).slice(), begin, end });
  }
  // Fully indexed: sorted by offset, each tensor starts where the previous ends and the last ends at the file end.
  const byOffset = entries.slice().sort((a, b) => a.begin - b.begin || a.end - b.end);
  let cursor = 0;
  let prev = '';
  for (const e of byOffset) {
    if (e.begin < cursor)
      throw new RangeError(`${source}: tensor '${e.name}' (bytes ${e.begin}-${e.end}) overlaps tensor '${prev}' (which ends at ${cursor})`);
    if (e.begin > cursor)
      throw new RangeError(`${source}: bytes ${cursor}-${e.begin} of the data before tensor '${e.name}' belong to no tensor (the format allows no holes)`);
    cursor = e.end;
    prev = e.name;
  }
  if (cursor !== dataLen)
    throw new RangeError(`${source}: ${dataLen - cursor} bytes after the last tensor${prev ? ` ('${prev}')` : ''} belong to no tensor (the data is ${dataLen} bytes, the tensors end at ${cursor})`);
  const tensors = new Map<string, HostTensor>();
  for (const e of entries) {
    tensors.set(e.name, { dtype: e.dtype, shape: e.shape, data: typedView(e.dtype, bytes, dataStart + e.begin, elementCount(e.shape)) });
  }
  return { metadata, tensors };
}

/** Reads and validates a .safetensors file: one read of the whole file, tensors are views of it where aligned. */
export async function readSafetensors(path: string): Promise<SafetensorsFile> {
  return parseSafetensors(readFileFully(path), path);
}

export type TensorsInput = ReadonlyMap<string, HostTensor> | Readonly<Record<string, HostTensor>>;

interface PlannedTensor { name: string; tensor: HostTensor; begin: number; end: number }

function plan(tensors: TensorsInput, metadata: Readonly<Record<string, string>>, op: string): { header: Buffer; items: PlannedTensor[]; dataBytes: number } {
  checkLittleEndianHost();
  const list: Array<[string, HostTensor]> = tensors instanceof Map
    ? [...(tensors as ReadonlyMap<string, HostTensor>).entries()]
    : Object.entries(tensors as Record<string, HostTensor>);
  if (metadata === null || typeof metadata !== 'object') throw new TypeError(`${op}: argument 'metadata' must be an object of strings`);
  for (const [k, v] of Object.entries(metadata))
    if (typeof v !== 'string') throw new TypeError(`${op}: argument 'metadata': value of '${k}' must be a string, got ${describeJson(v)}`);
  for (const [name, t] of list) {
    if (name === '__metadata__') throw new RangeError(`${op}: argument 'tensors': the name '__metadata__' is reserved by the format`);
    if (t === null || typeof t !== 'object') throw new TypeError(`${op}: argument 'tensors': '${name}' is not a tensor`);
    if (!isDType(t.dtype)) throw new TypeError(`${op}: argument 'tensors': '${name}' has unsupported dtype ${describeJson(t.dtype)}`);
    if (!Array.isArray(t.shape) || !t.shape.every((d) => Number.isSafeInteger(d) && d >= 0))
      throw new TypeError(`${op}: argument 'tensors': '${name}' shape must be an array of non-negative integers, got ${describeJson(t.shape)}`);
    const { array } = DTYPES[t.dtype];
    if (!(t.data instanceof array))
      throw new TypeError(`${op}: argument 'tensors': '${name}' is ${t.dtype} and needs a ${array.name}, got ${(t.data as object)?.constructor?.name ?? typeof t.data}`);
    const count = elementCount(t.shape);
    if (t.data.length !== count)
      throw new RangeError(`${op}: argument 'tensors': '${name}' has shape [${t.shape.join(', ')}] (${count} elements) but ${t.data.length} elements of data`);
  }
  // Widest dtype first, then by name: the Python package's order, which aligns every tensor without holes.
  list.sort(([an, at], [bn, bt]) => DTYPES[bt.dtype].rank - DTYPES[at.dtype].rank || (an < bn ? -1 : an > bn ? 1 : 0));
  const items: PlannedTensor[] = [];
  let offset = 0;
  for (const [name, tensor] of list) {
    const end = offset + tensor.data.byteLength;
    items.push({ name, tensor, begin: offset, end });
    offset = end;
  }
  let json = '{';
  const metaKeys = Object.keys(metadata).sort();
  if (metaKeys.length > 0) json += `"__metadata__":{${metaKeys.map((k) => `${JSON.stringify(k)}:${JSON.stringify(metadata[k])}`).join(',')}},`;
  json += items.map((it) => `${JSON.stringify(it.name)}:{"dtype":"${it.tensor.dtype}","shape":[${it.tensor.shape.join(',')}],"data_offsets":[${it.begin},${it.end}]}`).join(',');
  if (json.endsWith(',')) json = json.slice(0, -1);
  json += '}';
  let headerJson = Buffer.from(json, 'utf8');
  const pad = (8 - (headerJson.length % 8)) % 8;
  if (pad) headerJson = Buffer.concat([headerJson, Buffer.alloc(pad, 0x20)]);
  const header = Buffer.alloc(8 + headerJson.length);
  header.writeBigUInt64LE(BigInt(headerJson.length), 0);
  headerJson.copy(header, 8);
  return { header, items, dataBytes: offset };
}

function bytesOf(t: HostTensor): Uint8Array {
  return new Uint8Array(t.data.buffer, t.data.byteOffset, t.data.byteLength);
}

/** The file image in memory (for small files and tests; writeSafetensors streams instead). */
export function serializeSafetensors(tensors: TensorsInput, metadata: Readonly<Record<string, string>> = {}): Buffer {
  const { header, items, dataBytes } = plan(tensors, metadata, 'serializeSafetensors');
  const out = Buffer.alloc(header.length + dataBytes);
  header.copy(out, 0);
  for (const it of items) out.set(bytesOf(it.tensor), header.length + it.begin);
  return out;
}

export { writeAll } from './atomic-write.js';

/**
 * Writes a .safetensors file atomically: into `path.tmp-<pid>`, flushed, then renamed over `path`, so a crash
 * leaves either the old file or the new one, never a partial file. The temp file is removed on failure.
 */
export async function writeSafetensors(path: string, tensors: TensorsInput, metadata: Readonly<Record<string, string>> = {}): Promise<void> {
  if (typeof path !== 'string' || path.length === 0) throw new TypeError(`writeSafetensors: argument 'path' must be a non-empty string`);
  const { header, items } = plan(tensors, metadata, 'writeSafetensors');
  await writeFileAtomically(path, [header, ...items.map((it) => bytesOf(it.tensor))]);
}
