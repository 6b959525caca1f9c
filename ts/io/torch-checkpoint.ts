/**
 * Reads `.pt`/`.pth` files written by `torch.save` (the zip format, default since torch 1.6) without Python and
 * without executing anything from the file.
 *
 * What torch 2.13 writes (checked by saving small files and dumping data.pkl with `python -m pickletools`):
 *   - a zip whose entries are all STORED (method 0), local headers with the data-descriptor flag (so sizes are only
 *     in the central directory), data padded to 64 bytes with an "FB" extra field (`<prefix>/.storage_alignment`
 *     says 64), and always a zip64 end-of-central-directory record;
 *   - entries `<prefix>/data.pkl`, `<prefix>/data/<key>` (one per storage), `<prefix>/byteorder` ("little"),
 *     `<prefix>/version`, `<prefix>/.format_version`, `<prefix>/.data/serialization_id`; `<prefix>` is the file
 *     name without extension (older torch: "archive");
 *   - data.pkl in pickle protocol 2 (others with `pickle_protocol=`): `collections.OrderedDict` built with an empty
 *     REDUCE then SETITEMS, each tensor as REDUCE of `torch._utils._rebuild_tensor_v2` on (storage, storage_offset,
 *     size, stride, requires_grad, backward_hooks = OrderedDict()), a module state_dict's `_metadata` set by BUILD,
 *     and each storage as BINPERSID of the tuple ('storage', <torch.FloatStorage class>, '<key>', '<location>',
 *     numel): torch 2.x stores UntypedStorage internally but still names the typed storage class here.
 *
 * The unpickler is restricted: it knows only the opcodes in OPCODES and resolves only the globals in
 * ALLOWED_GLOBALS, each to a plain data builder. Anything else stops the read with an error naming it.
 */
import { crc32 } from 'node:zlib';
import { basename } from 'node:path';
import { DTYPES, checkLittleEndianHost, elementCount, readFileFully, typedView, type DType, type HostTensor, type TensorData } from './safetensors.js';

/** Raised when data.pkl asks for something a state_dict never needs (a global, an opcode); nothing was executed. */
export class UnsafePickleError extends Error {
  override name = 'UnsafePickleError';
}

/** Storage classes torch writes into persistent ids, with the dtype they hold. */
export const STORAGE_CLASSES: Readonly<Record<string, DType>> = {
  'torch.FloatStorage': 'F32',
  'torch.HalfStorage': 'F16',
  'torch.BFloat16Storage': 'BF16',
  'torch.DoubleStorage': 'F64',
  'torch.LongStorage': 'I64',
  'torch.IntStorage': 'I32',
  'torch.ByteStorage': 'U8',
  'torch.BoolStorage': 'BOOL',
};

/** Every global data.pkl may name. Callable ones are handled in `reduce`; storage classes only tag persistent ids. */
export const ALLOWED_GLOBALS: readonly string[] = [
  'collections.OrderedDict',
  'torch._utils._rebuild_tensor_v2',
  'torch._utils._rebuild_parameter',
  ...Object.keys(STORAGE_CLASSES),
];

/** A global named by data.pkl that passed the allow list; inert data, never called. */
export class PickleGlobal {
  constructor(readonly module: string, readonly name: string) {}
  get qualifiedName(): string { return `${this.module}.${this.name}`; }
}

/** One storage (zip entry `<prefix>/data/<key>`), shared by every tensor that views it; `bytes` is a view of the file. */
export class TorchStorage {
  elements?: TensorData;
  constructor(
    readonly key: string,
    readonly dtype: DType,
    readonly numel: number,
    readonly location: string,
    readonly bytes: Uint8Array,
  ) {}
}

/**
 * A tensor from the checkpoint. `data` is contiguous and row-major over `shape`: a zero-copy view of the file where
 * the tensor is contiguous in its storage and aligned, otherwise a copy (`copied`). `strides` and `storageOffset`
 * (in elements) are as stored; `storageKey` names the zip entry. F64 storages are converted to F32 unless the
 * reader was asked to keep them; `storageDType` keeps the stored type.
 */
export class TorchTensor implements HostTensor {
  constructor(
    public dtype: DType,
    public shape: number[],
    public data: TensorData,
    readonly storageDType: DType,
    readonly strides: number[],
    readonly storageOffset: number,
    readonly storageKey: string,
    readonly location: string,
    readonly copied: boolean,
    public requiresGrad = false,
    public isParameter = false,
  ) {}
}

export type PickleValue =
  | null | boolean | number | bigint | string | Uint8Array
  | PickleValue[] | PickleDict | TorchTensor | TorchStorage | PickleGlobal;
export type PickleDict = Map<PickleValue, PickleValue>;

export interface ReadTorchOptions {
  /** 'float32' (default) converts F64 tensors to F32; 'keep' returns them as stored. */
  float64?: 'float32' | 'keep';
  /** Check the CRC-32 of data.pkl and of every storage read (default true; about 1 s per 2 GB). */
  verifyCrc?: boolean;
}

// ---------------------------------------------------------------------------------------------------------------
// Zip container (PKWARE APPNOTE 6.3: end of central directory, zip64 records, central directory, local headers)

interface ZipEntry {
  name: string;
  method: number;
  flags: number;
  crc: number;
  compressedSize: number;
  size: number;
  localOffset: number;
}

const SIG_LOCAL = 0x04034b50;
const SIG_CENTRAL = 0x02014b50;
const SIG_EOCD = 0x06054b50;
const SIG_ZIP64_EOCD = 0x06064b50;
const SIG_ZIP64_LOCATOR = 0x07064b50;

function u64(dv: DataView, at: number, what: string, source: string): number {
  const v = dv.getBigUint64(at, true);
  if (v > BigInt(Number.MAX_SAFE_INTEGER)) throw new RangeError(`${source}: zip ${what} ${v} is out of range (corrupt file)`);
  return Number(v);
}

class ZipArchive {
  readonly entries = new Map<string, ZipEntry>();
  private readonly dv: DataView;

  constructor(readonly bytes: Uint8Array, readonly source: string) {
    this.dv = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
    this.readCentralDirectory();
  }

  private readCentralDirectory(): void {
    const { bytes, dv, source } = this;
    const len = bytes.byteLength;
    let eocd = -1;
    for (let i = len - 22; i >= Math.max(0, len - 22 - 0xffff); i--) {
      if (dv.getUint32(i, true) === SIG_EOCD && i + 22 + dv.getUint16(i + 20, true) === len) { eocd = i; break; }
    }
    if (eocd < 0)
      throw new RangeError(`${source}: truncated: the zip end-of-central-directory record is missing (the file is ${len} bytes and starts like a torch.save zip); copy or download the file again`);
    let count = dv.getUint16(eocd + 10, true);
    let cdSize = dv.getUint32(eocd + 12, true);
    let cdOffset = dv.getUint32(eocd + 16, true);
    const loc = eocd - 20;
    if (loc >= 0 && dv.getUint32(loc, true) === SIG_ZIP64_LOCATOR) {
      const z = u64(dv, loc + 8, 'zip64 record offset', source);
      if (z + 56 > len || dv.getUint32(z, true) !== SIG_ZIP64_EOCD)
        throw new RangeError(`${source}: truncated or corrupt: the zip64 end-of-central-directory record at byte ${z} is missing`);
      count = u64(dv, z + 32, 'entry count', source);
      cdSize = u64(dv, z + 40, 'central directory size', source);
      cdOffset = u64(dv, z + 48, 'central directory offset', source);
    }
    if (cdOffset + cdSize > eocd)
      throw new RangeError(`${source}: truncated or corrupt: the zip central directory (bytes ${cdOffset}-${cdOffset + cdSize}) overruns its end record at byte ${eocd}`);
    let p = cdOffset;
    const utf8 = new TextDecoder('utf-8');
    for (let i = 0; i < count; i++) {
      if (p + 46 > cdOffset + cdSize || dv.getUint32(p, true) !== SIG_CENTRAL)
        throw new RangeError(`${source}: corrupt zip: central directory entry ${i} of ${count} at byte ${p} is missing`);
      const flags = dv.getUint16(p + 8, true);
      const method = dv.getUint16(p + 10, true);
      const crc = dv.getUint32(p + 16, true);
      let compressedSize = dv.getUint32(p + 20, true);
      let size = dv.getUint32(p + 24, true);
      const nameLen = dv.getUint16(p + 28, true);
      const extraLen = dv.getUint16(p + 30, true);
      const commentLen = dv.getUint16(p + 32, true);
      let localOffset = dv.getUint32(p + 42, true);
      if (p + 46 + nameLen + extraLen + commentLen > cdOffset + cdSize)
        throw new RangeError(`${source}: corrupt zip: central directory entry ${i} at byte ${p} overruns the directory`);
      const name = utf8.decode(bytes.subarray(p + 46, p + 46 + nameLen));
      // Zip64 extended information (header id 1) carries, in this order, whichever of the three fields are 0xFFFFFFFF.
      let e = p + 46 + nameLen;
      const extraEnd = e + extraLen;
      while (e + 4 <= extraEnd) {
        const id = dv.getUint16(e, true);
        const sz = dv.getUint16(e + 2, true);
        if (e + 4 + sz > extraEnd) throw new RangeError(`${source}: corrupt zip: extra field of entry '${name}' overruns its header`);
        if (id === 1) {
          let q = e + 4;
          const need = 8 * [size, compressedSize, localOffset].filter((v) => v === 0xffffffff).length;
          if (need > sz) throw new RangeError(`${source}: corrupt zip: zip64 extra field of entry '${name}' is ${sz} bytes, needs ${need}`);
          if (size === 0xffffffff) { size = u64(dv, q, 'entry size', source); q += 8; }
          if (compressedSize === 0xffffffff) { compressedSize = u64(dv, q, 'entry size', source); q += 8; }
          if (localOffset === 0xffffffff) { localOffset = u64(dv, q, 'entry offset', source); q += 8; }
        }
        e += 4 + sz;
      }
      if (this.entries.has(name)) throw new RangeError(`${source}: corrupt zip: entry '${name}' appears twice`);
      this.entries.set(name, { name, method, flags, crc, compressedSize, size, localOffset });
      p = extraEnd + commentLen;
    }
  }

  /** The stored bytes of one entry (a view of the file), after checking it is stored, in range and (optionally) its CRC. */
  read(name: string, verifyCrc: boolean): Uint8Array {
    const { dv, bytes, source } = this;
    const entry = this.entries.get(name);
    if (!entry) throw new RangeError(`${source}: zip entry '${name}' is missing`);
    if (entry.flags & 1) throw new TypeError(`${source}: zip entry '${name}' is encrypted`);
    if (entry.method !== 0)
      throw new TypeError(`${source}: zip entry '${name}' is compressed (method ${entry.method}${entry.method === 8 ? ', deflate' : ''}); torch.save stores every entry uncompressed, so this file was re-zipped by another tool: load and re-save it with torch.save`);
    if (entry.compressedSize !== entry.size)
      throw new RangeError(`${source}: corrupt zip: stored entry '${name}' has compressed size ${entry.compressedSize} but size ${entry.size}`);
    const h = entry.localOffset;
    if (h + 30 > bytes.byteLength || dv.getUint32(h, true) !== SIG_LOCAL)
      throw new RangeError(`${source}: corrupt zip: the local header of entry '${name}' at byte ${h} is missing`);
    const start = h + 30 + dv.getUint16(h + 26, true) + dv.getUint16(h + 28, true);
    if (start + entry.size > bytes.byteLength)
      throw new RangeError(`${source}: truncated: entry '${name}' needs bytes ${start}-${start + entry.size} but the file ends at ${bytes.byteLength}`);
    const data = bytes.subarray(start, start + entry.size);
    if (verifyCrc) {
      let got = 0;
      for (let o = 0; o < data.byteLength; o += 1 << 30) got = crc32(data.subarray(o, o + (1 << 30)), got); // one call takes < 2 GiB
      got >>>= 0;
      if (got !== entry.crc)
        throw new RangeError(`${source}: corrupt: entry '${name}' has CRC-32 ${hex(got)} but the zip directory records ${hex(entry.crc)}`);
    }
    return data;
  }
}

function hex(n: number): string {
  return `0x${n.toString(16).padStart(8, '0')}`;
}

// ---------------------------------------------------------------------------------------------------------------
// Restricted unpickler (opcodes: CPython Lib/pickletools.py; protocol 2 to 5, binary forms only)

/** Every opcode the reader accepts, by byte. Anything else (INST, OBJ, NEWOBJ, EXT*, sets, out-of-band buffers, text-mode forms) is refused. */
export const OPCODES: Readonly<Record<number, string>> = {
  0x80: 'PROTO', 0x95: 'FRAME', 0x2e: 'STOP',
  0x28: 'MARK', 0x30: 'POP', 0x31: 'POP_MARK', 0x32: 'DUP',
  0x7d: 'EMPTY_DICT', 0x64: 'DICT', 0x73: 'SETITEM', 0x75: 'SETITEMS',
  0x5d: 'EMPTY_LIST', 0x6c: 'LIST', 0x61: 'APPEND', 0x65: 'APPENDS',
  0x29: 'EMPTY_TUPLE', 0x74: 'TUPLE', 0x85: 'TUPLE1', 0x86: 'TUPLE2', 0x87: 'TUPLE3',
  0x58: 'BINUNICODE', 0x8c: 'SHORT_BINUNICODE', 0x8d: 'BINUNICODE8',
  0x43: 'SHORT_BINBYTES', 0x42: 'BINBYTES', 0x8e: 'BINBYTES8',
  0x4a: 'BININT', 0x4b: 'BININT1', 0x4d: 'BININT2', 0x8a: 'LONG1', 0x8b: 'LONG4',
  0x47: 'BINFLOAT', 0x88: 'NEWTRUE', 0x89: 'NEWFALSE', 0x4e: 'NONE',
  0x68: 'BINGET', 0x6a: 'LONG_BINGET', 0x71: 'BINPUT', 0x72: 'LONG_BINPUT', 0x94: 'MEMOIZE',
  0x63: 'GLOBAL', 0x93: 'STACK_GLOBAL', 0x52: 'REDUCE', 0x62: 'BUILD',
  0x50: 'PERSID', 0x51: 'BINPERSID',
};

/** Names of opcodes the reader refuses, for the error message (CPython pickletools). */
const REFUSED_OPCODES: Readonly<Record<number, string>> = {
  0x69: 'INST', 0x6f: 'OBJ', 0x81: 'NEWOBJ', 0x92: 'NEWOBJ_EX', 0x82: 'EXT1', 0x83: 'EXT2', 0x84: 'EXT4',
  0x8f: 'EMPTY_SET', 0x90: 'ADDITEMS', 0x91: 'FROZENSET', 0x96: 'BYTEARRAY8', 0x97: 'NEXT_BUFFER', 0x98: 'READONLY_BUFFER',
  0x49: 'INT', 0x4c: 'LONG', 0x46: 'FLOAT', 0x53: 'STRING', 0x54: 'BINSTRING', 0x55: 'SHORT_BINSTRING', 0x56: 'UNICODE',
  0x67: 'GET', 0x70: 'PUT',
};

function isStorage(v: unknown): v is TorchStorage {
  return v instanceof TorchStorage;
}

function typeName(v: unknown): string {
  if (v === null) return 'None';
  if (v instanceof Map) return 'dict';
  if (Array.isArray(v)) return Object.isFrozen(v) ? 'tuple' : 'list';
  if (v instanceof TorchTensor) return 'tensor';
  if (v instanceof PickleGlobal) return `global ${v.qualifiedName}`;
  if (v instanceof Uint8Array) return 'bytes';
  if (isStorage(v)) return 'storage';
  return typeof v === 'string' ? 'str' : typeof v === 'number' ? 'number' : typeof v;
}

class Unpickler {
  private pos = 0;
  private stack: PickleValue[] = [];
  private metastack: PickleValue[][] = [];
  private memo = new Map<number, PickleValue>();
  private readonly dv: DataView;
  private opStart = 0;
  private opName = '';

  constructor(
    private readonly pkl: Uint8Array,
    private readonly where: string,
    private readonly persistentLoad: (pid: PickleValue) => TorchStorage,
    private readonly rebuildTensor: (args: PickleValue[], opOffset: number) => TorchTensor,
  ) {
    this.dv = new DataView(pkl.buffer, pkl.byteOffset, pkl.byteLength);
  }

  private fail(msg: string, Err: new (m: string) => Error = TypeError): never {
    throw new Err(`${this.where}: ${this.opName} at byte offset ${this.opStart}: ${msg}`);
  }

  private need(n: number): number {
    if (this.pos + n > this.pkl.byteLength)
      throw new RangeError(`${this.where}: truncated pickle: ${this.opName} at byte offset ${this.opStart} needs ${n} more bytes, data.pkl ends at ${this.pkl.byteLength}`);
    const p = this.pos;
    this.pos += n;
    return p;
  }

  private lenU64(): number {
    const v = this.dv.getBigUint64(this.need(8), true);
    if (v > BigInt(this.pkl.byteLength)) this.fail(`length ${v} exceeds data.pkl's ${this.pkl.byteLength} bytes`, RangeError);
    return Number(v);
  }

  private text(n: number): string {
    const p = this.need(n);
    return new TextDecoder('utf-8').decode(this.pkl.subarray(p, p + n));
  }

  private line(): string {
    const end = this.pkl.indexOf(0x0a, this.pos);
    if (end < 0) throw new RangeError(`${this.where}: truncated pickle: ${this.opName} at byte offset ${this.opStart} has no end of line`);
    const s = new TextDecoder('latin1').decode(this.pkl.subarray(this.pos, end));
    this.pos = end + 1;
    return s;
  }

  private pop(): PickleValue {
    if (this.stack.length === 0) this.fail('the stack is empty (corrupt pickle)', RangeError);
    return this.stack.pop()!;
  }

  private top(): PickleValue {
    if (this.stack.length === 0) this.fail('the stack is empty (corrupt pickle)', RangeError);
    return this.stack[this.stack.length - 1];
  }

  /** Pushes after the value is computed: a value built by popMark must land on the restored outer stack. */
  private push(v: PickleValue): void {
    this.stack.push(v);
  }

  private popMark(): PickleValue[] {
    const items = this.stack;
    const prev = this.metastack.pop();
    if (!prev) this.fail('no MARK on the stack (corrupt pickle)', RangeError);
    this.stack = prev;
    return items;
  }

  private long(n: number): number | bigint {
    const p = this.need(n);
    if (n === 0) return 0;
    let v = 0n;
    for (let i = n - 1; i >= 0; i--) v = (v << 8n) | BigInt(this.pkl[p + i]);
    if (this.pkl[p + n - 1] & 0x80) v -= 1n << BigInt(8 * n);
    return v >= BigInt(Number.MIN_SAFE_INTEGER) && v <= BigInt(Number.MAX_SAFE_INTEGER) ? Number(v) : v;
  }

  private global(module: string, name: string): PickleGlobal {
    const q = `${module}.${name}`;
    if (!ALLOWED_GLOBALS.includes(q))
      throw new UnsafePickleError(`${this.where}: refuses the global '${q}' (${this.opName} at byte offset ${this.opStart}); a state_dict needs only ${ALLOWED_GLOBALS.join(', ')}. Nothing from the file was executed. If you trust the file, load it in Python and save only its state_dict with torch.save`);
    return new PickleGlobal(module, name);
  }

  private setItems(target: PickleValue, items: PickleValue[]): void {
    if (!(target instanceof Map)) this.fail(`can only set items on a dict, found ${typeName(target)}`);
    if (items.length % 2) this.fail('odd number of items for a dict (corrupt pickle)', RangeError);
    for (let i = 0; i < items.length; i += 2) target.set(items[i], items[i + 1]);
  }

  private reduce(fn: PickleValue, args: PickleValue): PickleValue {
    if (!(fn instanceof PickleGlobal)) this.fail(`can only call an allowed global, found ${typeName(fn)}`);
    if (!Array.isArray(args)) this.fail(`arguments of ${fn.qualifiedName} must be a tuple, found ${typeName(args)}`);
    switch (fn.qualifiedName) {
      case 'collections.OrderedDict': {
        const dict: PickleDict = new Map();
        if (args.length === 0) return dict;
        const [pairs] = args;
        if (args.length !== 1 || !Array.isArray(pairs)) this.fail('collections.OrderedDict takes no arguments or one list of pairs');
        for (const pair of pairs) {
          if (!Array.isArray(pair) || pair.length !== 2) this.fail('collections.OrderedDict items must be (key, value) pairs');
          dict.set(pair[0], pair[1]);
        }
        return dict;
      }
      case 'torch._utils._rebuild_tensor_v2':
        return this.rebuildTensor(args as PickleValue[], this.opStart);
      case 'torch._utils._rebuild_parameter': {
        const [data, requiresGrad] = args;
        if (args.length !== 3 || !(data instanceof TorchTensor) || typeof requiresGrad !== 'boolean')
          this.fail('torch._utils._rebuild_parameter takes (tensor, requires_grad, backward_hooks)');
        data.requiresGrad = requiresGrad;
        data.isParameter = true;
        return data;
      }
      default:
        return this.fail(`the global '${fn.qualifiedName}' is not callable here`);
    }
  }

  run(): PickleValue {
    const { pkl, dv } = this;
    while (true) {
      this.opStart = this.pos;
      if (this.pos >= pkl.byteLength) throw new RangeError(`${this.where}: truncated pickle: data.pkl ends at byte ${pkl.byteLength} before STOP`);
      const op = pkl[this.pos++];
      const name = OPCODES[op];
      this.opName = name ?? `opcode 0x${op.toString(16).padStart(2, '0')}`;
      if (name === undefined) {
        const known = REFUSED_OPCODES[op];
        throw new UnsafePickleError(`${this.where}: unsupported pickle opcode 0x${op.toString(16).padStart(2, '0')}${known ? ` (${known})` : ` ('${String.fromCharCode(op)}')`} at byte offset ${this.opStart}; a torch state_dict never needs it`);
      }
      switch (name) {
        case 'PROTO': {
          const v = pkl[this.need(1)];
          if (v < 2 || v > 5) this.fail(`pickle protocol ${v}; torch.save writes protocol 2 to 5`, RangeError);
          break;
        }
        case 'FRAME': this.lenU64(); break; // a buffering hint; the frame's opcodes follow inline
        case 'STOP': {
          const v = this.pop();
          if (this.stack.length !== 0 || this.metastack.length !== 0) this.fail('values left on the stack after STOP (corrupt pickle)', RangeError);
          return v;
        }
        case 'MARK': this.metastack.push(this.stack); this.stack = []; break; // as CPython: a new stack, the old one kept aside
        case 'POP': this.pop(); break;
        case 'POP_MARK': this.popMark(); break;
        case 'DUP': this.push(this.top()); break;
        case 'EMPTY_DICT': this.push(new Map()); break;
        case 'DICT': { const items = this.popMark(); const d: PickleDict = new Map(); this.setItems(d, items); this.push(d); break; }
        case 'SETITEM': { const v = this.pop(); const k = this.pop(); this.setItems(this.top(), [k, v]); break; }
        case 'SETITEMS': { const items = this.popMark(); this.setItems(this.top(), items); break; }
        case 'EMPTY_LIST': this.push([]); break;
        case 'LIST': this.push(this.popMark().slice()); break;
        case 'APPEND': case 'APPENDS': {
          const items = name === 'APPEND' ? [this.pop()] : this.popMark();
          const list = this.top();
          if (!Array.isArray(list) || Object.isFrozen(list)) this.fail(`can only append to a list, found ${typeName(list)}`);
          list.push(...items);
          break;
        }
        case 'EMPTY_TUPLE': this.push(Object.freeze([]) as unknown as PickleValue[]); break;
        case 'TUPLE': this.push(Object.freeze(this.popMark().slice()) as PickleValue[]); break;
        case 'TUPLE1': case 'TUPLE2': case 'TUPLE3': {
          const n = name === 'TUPLE1' ? 1 : name === 'TUPLE2' ? 2 : 3;
          const items: PickleValue[] = [];
          for (let i = 0; i < n; i++) items.unshift(this.pop());
          this.push(Object.freeze(items) as PickleValue[]);
          break;
        }
        case 'BINUNICODE': this.push(this.text(dv.getUint32(this.need(4), true))); break;
        case 'SHORT_BINUNICODE': this.push(this.text(pkl[this.need(1)])); break;
        case 'BINUNICODE8': this.push(this.text(this.lenU64())); break;
        case 'SHORT_BINBYTES': case 'BINBYTES': case 'BINBYTES8': {
          const n = name === 'SHORT_BINBYTES' ? pkl[this.need(1)] : name === 'BINBYTES' ? dv.getUint32(this.need(4), true) : this.lenU64();
          const p = this.need(n);
          this.push(pkl.slice(p, p + n));
          break;
        }
        case 'BININT': this.push(dv.getInt32(this.need(4), true)); break;
        case 'BININT1': this.push(pkl[this.need(1)]); break;
        case 'BININT2': this.push(dv.getUint16(this.need(2), true)); break;
        case 'LONG1': this.push(this.long(pkl[this.need(1)])); break;
        case 'LONG4': {
          const n = dv.getInt32(this.need(4), true);
          if (n < 0 || n > 64) this.fail(`integer of ${n} bytes; a state_dict never holds one`, RangeError);
          this.push(this.long(n));
          break;
        }
        case 'BINFLOAT': this.push(dv.getFloat64(this.need(8), false)); break;
        case 'NEWTRUE': this.push(true); break;
        case 'NEWFALSE': this.push(false); break;
        case 'NONE': this.push(null); break;
        case 'BINGET': case 'LONG_BINGET': {
          const i = name === 'BINGET' ? pkl[this.need(1)] : dv.getUint32(this.need(4), true);
          if (!this.memo.has(i)) this.fail(`memo slot ${i} was never stored (corrupt pickle)`, RangeError);
          this.push(this.memo.get(i)!);
          break;
        }
        case 'BINPUT': this.memo.set(pkl[this.need(1)], this.top()); break;
        case 'LONG_BINPUT': this.memo.set(dv.getUint32(this.need(4), true), this.top()); break;
        case 'MEMOIZE': this.memo.set(this.memo.size, this.top()); break;
        case 'GLOBAL': { const module = this.line(); const n = this.line(); this.push(this.global(module, n)); break; }
        case 'STACK_GLOBAL': {
          const n = this.pop(); const module = this.pop();
          if (typeof module !== 'string' || typeof n !== 'string') this.fail('module and name must be strings');
          this.push(this.global(module, n));
          break;
        }
        case 'REDUCE': { const args = this.pop(); const fn = this.pop(); this.push(this.reduce(fn, args)); break; }
        case 'BUILD': {
          const state = this.pop();
          const target = this.top();
          // A module state_dict is an OrderedDict carrying `_metadata` (per-module versions); kept as data, unused.
          if (!(target instanceof Map) || !(state instanceof Map)) this.fail(`BUILD is only allowed to set attributes of a dict from a dict, found ${typeName(target)} and ${typeName(state)}`);
          dictAttributes.set(target, state);
          break;
        }
        case 'PERSID': this.push(this.persistentLoad(this.line())); break;
        case 'BINPERSID': this.push(this.persistentLoad(this.pop())); break;
      }
    }
  }
}

/** Attributes set on dicts by BUILD (a module state_dict's `_metadata`), for callers that want them. */
export const dictAttributes = new WeakMap<PickleDict, PickleDict>();

// ---------------------------------------------------------------------------------------------------------------
// Tensors

function isInt(v: unknown): v is number {
  return typeof v === 'number' && Number.isSafeInteger(v);
}

function intTuple(v: unknown): v is number[] {
  return Array.isArray(v) && v.every((d) => isInt(d) && d >= 0);
}

function contiguousStrides(shape: readonly number[]): number[] {
  const s = new Array<number>(shape.length);
  let acc = 1;
  for (let i = shape.length - 1; i >= 0; i--) { s[i] = acc; acc *= shape[i]; }
  return s;
}

/** Copies a strided view out of `src` into a new contiguous array (inner dimension in a tight loop). */
function gather(src: TensorData, shape: number[], strides: number[], offset: number): TensorData {
  const n = elementCount(shape);
  const out = new (src.constructor as new (n: number) => TensorData)(n);
  const rank = shape.length;
  if (n === 0) return out;
  if (rank === 0) { (out as Float32Array)[0] = (src as Float32Array)[offset]; return out; }
  const inner = shape[rank - 1];
  const innerStride = strides[rank - 1];
  const idx = new Array<number>(rank).fill(0);
  let base = offset;
  const o = out as Float32Array;
  const s = src as Float32Array;
  for (let w = 0; w < n; w += inner) {
    for (let j = 0, p = base; j < inner; j++, p += innerStride) o[w + j] = s[p];
    for (let d = rank - 2; d >= 0; d--) {
      idx[d]++;
      base += strides[d];
      if (idx[d] < shape[d]) break;
      base -= strides[d] * shape[d];
      idx[d] = 0;
    }
  }
  return out;
}

function toFloat32(data: TensorData): Float32Array {
  return Float32Array.from(data as Float64Array);
}

// ---------------------------------------------------------------------------------------------------------------
// Reader

function describeStart(bytes: Uint8Array): string {
  return [...bytes.subarray(0, 8)].map((b) => b.toString(16).padStart(2, '0')).join(' ');
}

/** Parses a torch.save zip held in memory; `source` names it in errors. See readTorchCheckpoint. */
export function parseTorchCheckpoint(bytes: Uint8Array, source = '<buffer>', options: ReadTorchOptions = {}): PickleValue {
  checkLittleEndianHost();
  const float64 = options.float64 ?? 'float32';
  if (float64 !== 'float32' && float64 !== 'keep') throw new TypeError(`readTorchCheckpoint: argument 'options.float64' must be 'float32' or 'keep', got ${String(float64)}`);
  const verifyCrc = options.verifyCrc ?? true;
  const isZip = bytes.byteLength >= 4 && bytes[0] === 0x50 && bytes[1] === 0x4b && bytes[2] === 0x03 && bytes[3] === 0x04;
  if (!isZip) {
    const legacyPickle = bytes.byteLength >= 2 && bytes[0] === 0x80 && bytes[1] >= 2 && bytes[1] <= 5;
    const tar = bytes.byteLength >= 262 && new TextDecoder('latin1').decode(bytes.subarray(257, 262)) === 'ustar';
    if (legacyPickle || tar)
      throw new TypeError(`${source}: legacy torch.save format (${tar ? 'tar, torch < 0.4' : 'raw pickle stream, torch < 1.6 or _use_new_zipfile_serialization=False'}), which brain-ldm does not read. Re-save it with a current torch: python -c "import torch; torch.save(torch.load('${basename(source)}', weights_only=True), 'resaved.pth')"`);
    if (bytes.byteLength === 0) throw new RangeError(`${source}: the file is empty`);
    throw new TypeError(`${source}: not a torch.save checkpoint (a zip starting with PK\\x03\\x04); it starts with bytes ${describeStart(bytes)}`);
  }
  const zip = new ZipArchive(bytes, source);
  const pklNames = [...zip.entries.keys()].filter((n) => /^[^/]+\/data\.pkl$/.test(n));
  if (pklNames.length !== 1) {
    const names = [...zip.entries.keys()];
    if (names.some((n) => /^[^/]+\/constants\.pkl$/.test(n)) && names.some((n) => /^[^/]+\/code\//.test(n)))
      throw new TypeError(`${source}: a TorchScript archive (torch.jit.save), not a state_dict; in Python, save the module's state_dict() with torch.save`);
    throw new TypeError(`${source}: expected one '<archive>/data.pkl' entry, found ${pklNames.length === 0 ? 'none' : pklNames.join(', ')} (entries: ${names.slice(0, 8).join(', ')}${names.length > 8 ? ', ...' : ''})`);
  }
  const prefix = pklNames[0].slice(0, -'data.pkl'.length);
  const where = `${source}: ${prefix}data.pkl`;
  const byteorderEntry = `${prefix}byteorder`;
  if (zip.entries.has(byteorderEntry)) {
    const order = new TextDecoder().decode(zip.read(byteorderEntry, verifyCrc)).trim();
    if (order !== 'little') throw new TypeError(`${source}: tensors were saved ${order}-endian; brain-ldm reads little-endian checkpoints only`);
  }
  const storages = new Map<string, TorchStorage>();
  const persistentLoad = (pid: PickleValue): TorchStorage => {
    if (!Array.isArray(pid) || pid[0] !== 'storage')
      throw new UnsafePickleError(`${where}: unsupported persistent id ${typeof pid === 'string' ? `'${pid}'` : typeName(pid)}; torch writes ('storage', <storage class>, key, location, numel)`);
    const [, cls, key, location, numel] = pid;
    if (pid.length !== 5 || !(cls instanceof PickleGlobal) || typeof key !== 'string' || typeof location !== 'string' || !isInt(numel) || numel < 0)
      throw new TypeError(`${where}: malformed storage persistent id (expected ('storage', <storage class>, key, location, numel))`);
    const dtype = STORAGE_CLASSES[cls.qualifiedName];
    if (!dtype) throw new UnsafePickleError(`${where}: '${cls.qualifiedName}' is not a storage class`);
    const known = storages.get(key);
    if (known) {
      if (known.dtype !== dtype) throw new TypeError(`${where}: storage '${key}' is used both as ${known.dtype} and as ${dtype}`);
      return known;
    }
    const entry = `${prefix}data/${key}`;
    if (!zip.entries.has(entry)) throw new RangeError(`${source}: storage '${key}' (${cls.qualifiedName}, ${numel} elements) has no zip entry '${entry}'`);
    const data = zip.read(entry, verifyCrc);
    const nbytes = numel * DTYPES[dtype].size;
    if (data.byteLength < nbytes)
      throw new RangeError(`${source}: storage '${key}' should hold ${numel} ${dtype} elements (${nbytes} bytes) but entry '${entry}' has ${data.byteLength} bytes`);
    const s = new TorchStorage(key, dtype, numel, location, data.subarray(0, nbytes));
    storages.set(key, s);
    return s;
  };
  const rebuildTensor = (args: PickleValue[], opOffset: number): TorchTensor => {
    const [storage, offset, size, stride, requiresGrad] = args as unknown[];
    const bad = (what: string): never => { throw new TypeError(`${where}: _rebuild_tensor_v2 at byte offset ${opOffset}: ${what}`); };
    if (args.length < 6 || args.length > 7) bad(`takes 6 or 7 arguments, got ${args.length}`);
    if (!isStorage(storage)) bad(`first argument must be a storage, got ${typeName(storage)}`);
    const st = storage as TorchStorage;
    if (!isInt(offset) || offset < 0) bad(`storage_offset must be a non-negative integer, got ${String(offset)}`);
    if (!intTuple(size) || !intTuple(stride) || size.length !== stride.length)
      bad(`size and stride must be tuples of non-negative integers of one length, got ${JSON.stringify(size)} and ${JSON.stringify(stride)}`);
    if (typeof requiresGrad !== 'boolean') bad('requires_grad must be a bool');
    const shape = (size as number[]).slice();
    const strides = (stride as number[]).slice();
    const off = offset as number;
    const n = elementCount(shape);
    if (n > 0) {
      const last = off + shape.reduce((acc, d, i) => acc + (d - 1) * strides[i], 0);
      if (last >= st.numel)
        throw new RangeError(`${source}: tensor at byte offset ${opOffset} of data.pkl (shape [${shape.join(', ')}], stride [${strides.join(', ')}], offset ${off}) reads element ${last} of storage '${st.key}', which has ${st.numel}`);
    }
    const want = contiguousStrides(shape);
    const contiguous = shape.every((d, i) => d === 1 || strides[i] === want[i]);
    let data: TensorData;
    let copied = false;
    if (n === 0) {
      data = new DTYPES[st.dtype].array(0);
    } else if (contiguous) {
      data = typedView(st.dtype, st.bytes, off * DTYPES[st.dtype].size, n);
      copied = data.buffer !== st.bytes.buffer;
    } else {
      st.elements ??= typedView(st.dtype, st.bytes, 0, st.numel);
      data = gather(st.elements, shape, strides, off);
      copied = true;
    }
    let dtype = st.dtype;
    if (dtype === 'F64' && float64 === 'float32') { data = toFloat32(data); dtype = 'F32'; copied = true; }
    return new TorchTensor(dtype, shape, data, st.dtype, strides, off, st.key, st.location, copied, requiresGrad as boolean);
  };
  return new Unpickler(zip.read(pklNames[0], verifyCrc), where, persistentLoad, rebuildTensor).run();
}

/**
 * Reads a `.pt`/`.pth` written by torch.save and returns its top-level object: a Map of tensors for a bare
 * state_dict, or a Map holding one (`{"model": state_dict}`, `{"state_dict": ...}`); see extractStateDict.
 * Dicts come back as Maps, lists as arrays, tuples as frozen arrays, tensors as TorchTensor.
 */
export async function readTorchCheckpoint(path: string, options: ReadTorchOptions = {}): Promise<PickleValue> {
  if (typeof path !== 'string' || path.length === 0) throw new TypeError(`readTorchCheckpoint: argument 'path' must be a non-empty string`);
  return parseTorchCheckpoint(readFileFully(path), path, options);
}

// ---------------------------------------------------------------------------------------------------------------
// Finding the state_dict

export interface ExtractedStateDict {
  stateDict: Map<string, TorchTensor>;
  /** 'bare', or the top-level key that held it ('model' for the thesis files, 'state_dict' for MONAI bundles, ...). */
  container: string;
  description: string;
}

/** Keys tried in order when the checkpoint is a dict of things (thesis: model; MONAI/Lightning: state_dict; ...). */
export const STATE_DICT_KEYS: readonly string[] = ['model', 'state_dict', 'model_state_dict', 'net', 'network'];

export function isStateDict(v: unknown): v is Map<string, TorchTensor> {
  if (!(v instanceof Map) || v.size === 0) return false;
  for (const [k, t] of v) if (typeof k !== 'string' || !(t instanceof TorchTensor)) return false;
  return true;
}

function describeTop(v: PickleValue): string {
  if (v instanceof Map) return `a dict with keys ${[...v.keys()].slice(0, 10).map((k) => `'${String(k)}' (${typeName(v.get(k))})`).join(', ')}${v.size > 10 ? ', ...' : ''}`;
  return `a ${typeName(v)}`;
}

/**
 * Finds the state_dict inside a checkpoint's top-level object and says where it was: the object itself (bare), the
 * value under `key` when given, else the first of STATE_DICT_KEYS holding one, else the only top-level value that
 * is one. Fails listing the top-level keys otherwise.
 */
export function extractStateDict(obj: PickleValue, options: { key?: string; source?: string } = {}): ExtractedStateDict {
  const src = options.source ? `${options.source}: ` : '';
  if (options.key !== undefined) {
    if (!(obj instanceof Map) || !obj.has(options.key)) throw new RangeError(`${src}no top-level key '${options.key}' (the checkpoint is ${describeTop(obj)})`);
    const v = obj.get(options.key)!;
    if (!isStateDict(v)) throw new TypeError(`${src}'${options.key}' is not a state_dict (a dict of name -> tensor): it is ${describeTop(v)}`);
    return { stateDict: v, container: options.key, description: `{"${options.key}": state_dict}` };
  }
  if (isStateDict(obj)) return { stateDict: obj, container: 'bare', description: 'a bare state_dict' };
  if (obj instanceof Map) {
    for (const key of STATE_DICT_KEYS) {
      const v = obj.get(key);
      if (isStateDict(v)) {
        const note = key === 'model' ? ' (the thesis container)' : key === 'state_dict' ? ' (MONAI bundle / Lightning container)' : '';
        return { stateDict: v, container: key, description: `{"${key}": state_dict}${note}` };
      }
    }
    const found = [...obj.entries()].filter(([, v]) => isStateDict(v));
    if (found.length === 1) {
      const key = String(found[0][0]);
      return { stateDict: found[0][1] as Map<string, TorchTensor>, container: key, description: `{"${key}": state_dict}` };
    }
    if (found.length > 1)
      throw new RangeError(`${src}several top-level values are state_dicts (${found.map(([k]) => `'${String(k)}'`).join(', ')}); choose one with the state-dict key option`);
  }
  throw new TypeError(`${src}no state_dict found: the checkpoint is ${describeTop(obj)}; expected a dict of name -> tensor, or one under ${STATE_DICT_KEYS.map((k) => `'${k}'`).join(', ')}`);
}
