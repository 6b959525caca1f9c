/**
 * The WebAssembly backends: the C++ core compiled by wasm/build.sh, driven
 * through the C ABI in wasm/c_api.cpp. Tensors live in the instance's heap
 * from creation to dispose; an op only passes their offsets, never copies.
 */
import os from 'node:os';

import { BackendBase, type ConvParams } from './backend-base.js';
import { BaseTensor } from './base-tensor.js';
import { DTYPE_CODES, type BackendInfo, type DType, type NetworkTensors, type NetworkWeight, type RawNetwork } from './types.js';
import { checkHostData, describe } from './validate.js';
import {
  disposeModule, heapBuffer, loadModule, MAX_WASM_THREADS, type WasmModule, type WasmVariant,
} from './wasm-binding.js';

export type WasmBackendName = 'wasm-simd-threads' | 'wasm-simd' | 'wasm-scalar';

export interface WasmBackendOptions {
  /** Threads for wasm-simd-threads (default: one per available core); the single-threaded variants ignore it. */
  threads?: number;
  /** Folder holding the built variants; default the package's wasm/dist/. */
  distDir?: string;
}

const VARIANTS: Readonly<Record<WasmBackendName, WasmVariant>> = {
  'wasm-simd-threads': 'simd-threads',
  'wasm-simd': 'simd',
  'wasm-scalar': 'scalar',
};

// bl_tensor_desc in wasm/c_api.cpp: int32 dtype, int32 ndim, int32 shape[8], uint32 data.
const DESC_BYTES = 44;
const DESC_INTS = DESC_BYTES / 4;
// Scratch layout: three int32 triples (stride, pad before, pad after), then descriptors.
const TRIPLES_BYTES = 64;
const INITIAL_DESCS = 16;
const HEAP_LIMIT = 2 ** 32;

/** One instance's heap, shared by the backend and its tensors; `mod` is null once disposed. */
class Heap {
  mod: WasmModule | null;
  // Tensors dropped without dispose() would leak heap bytes for the life of
  // the instance, and the heap never shrinks; free them when collected.
  private readonly leaks = new FinalizationRegistry<number>((ptr) => this.mod?._bl_free(ptr));

  constructor(mod: WasmModule) {
    this.mod = mod;
  }

  module(op: string): WasmModule {
    if (!this.mod) throw new TypeError(`${op}: the wasm backend has been disposed`);
    return this.mod;
  }

  alloc(op: string, bytes: number): number {
    const mod = this.module(op);
    if (bytes >= HEAP_LIMIT) throw new RangeError(`${op}: ${bytes} bytes exceed the 4 GiB WebAssembly heap`);
    const ptr = mod._bl_malloc(bytes) >>> 0;
    if (ptr === 0)
      throw new Error(`${op}: out of wasm memory allocating ${bytes} bytes (heap ${heapBuffer(mod).byteLength} bytes, limit 4 GiB)`);
    return ptr;
  }

  track(t: WasmTensor, ptr: number): void {
    this.leaks.register(t, ptr, t);
  }

  free(t: WasmTensor, ptr: number): void {
    this.leaks.unregister(t);
    this.mod?._bl_free(ptr);
  }
}

export class WasmTensor extends BaseTensor {
  /** Heap offset of the first element. */
  readonly ptr: number;
  readonly byteLength: number;
  private readonly heap: Heap;

  constructor(owner: WasmBackend, heap: Heap, shape: readonly number[], dtype: DType) {
    super(owner, shape, dtype);
    this.heap = heap;
    this.byteLength = this.size * (dtype === 'float32' ? 4 : 2);
    this.ptr = heap.alloc('tensor', this.byteLength);
    heap.track(this, this.ptr);
    // Heap growth replaces the buffer, so views are made fresh after every allocation.
    new Uint8Array(heapBuffer(heap.module('tensor')), this.ptr, this.byteLength).fill(0);
  }

  read(): Float32Array | Uint16Array {
    this.assertLive('read');
    const buf = heapBuffer(this.heap.module('read'));
    // slice() copies into a fresh, unshared ArrayBuffer the caller may keep.
    return this.dtype === 'float32'
      ? new Float32Array(buf, this.ptr, this.size).slice()
      : new Uint16Array(buf, this.ptr, this.size).slice();
  }

  write(data: Float32Array | Uint16Array): void {
    this.assertLive('write');
    checkHostData('write', 'data', data, this.dtype, this.size);
    const buf = heapBuffer(this.heap.module('write'));
    if (this.dtype === 'float32') new Float32Array(buf, this.ptr, this.size).set(data);
    else new Uint16Array(buf, this.ptr, this.size).set(data);
  }

  protected release(): void {
    this.heap.free(this, this.ptr);
  }
}

export class WasmBackend extends BackendBase<WasmTensor> {
  readonly name: WasmBackendName;
  private readonly heap: Heap;
  private readonly ctx: number;
  private readonly infoValue: BackendInfo;
  private scratch: number;
  private scratchDescs: number;

  /** Use createWasmBackend(); this takes ownership of a loaded instance. */
  private constructor(name: WasmBackendName, mod: WasmModule, threads: number) {
    super();
    this.name = name;
    this.heap = new Heap(mod);
    this.scratchDescs = INITIAL_DESCS;
    this.scratch = this.heap.alloc('createWasmBackend', TRIPLES_BYTES + INITIAL_DESCS * DESC_BYTES);
    const isa = name === 'wasm-scalar' ? 'scalar' : 'simd128';
    mod.stringToUTF8(isa, this.scratch, TRIPLES_BYTES);
    this.ctx = mod._bl_context_create(threads, this.scratch) >>> 0;
    if (this.ctx === 0) {
      const err = this.lastError(mod);
      mod._bl_free(this.scratch);
      throw err;
    }
    const raw = JSON.parse(mod.UTF8ToString(mod._bl_context_info(this.ctx))) as Omit<BackendInfo, 'backend'>;
    this.infoValue = { backend: name, isa: raw.isa, threads: raw.threads, spinMicros: raw.spinMicros, splitBatch: raw.splitBatch, precision: 'fp32', coreVersion: raw.coreVersion, compiler: raw.compiler };
  }

  /** @internal */
  static async create(name: WasmBackendName, options: WasmBackendOptions): Promise<WasmBackend> {
    const variant = VARIANTS[name];
    const threads = variant === 'simd-threads' ? resolveThreads(options.threads) : 1;
    const mod = await loadModule(variant, { distDir: options.distDir, poolSize: threads - 1 });
    try {
      return new WasmBackend(name, mod, threads);
    } catch (e) {
      disposeModule(mod);
      throw e;
    }
  }

  info(): BackendInfo {
    return { ...this.infoValue };
  }

  protected allocate(shape: readonly number[], dtype: DType): WasmTensor {
    return new WasmTensor(this, this.heap, shape, dtype);
  }

  protected async rawConv3d(x: WasmTensor, w: WasmTensor, b: WasmTensor | null, out: WasmTensor, p: ConvParams): Promise<void> {
    const mod = this.heap.module('conv3d');
    const i32 = this.scratchView(mod);
    i32.set(p.stride, 0);
    i32.set(p.padBefore, 3);
    i32.set(p.padAfter, 6);
    const dx = this.desc(i32, 0, x);
    const dw = this.desc(i32, 1, w);
    const db = b ? this.desc(i32, 2, b) : 0;
    const dy = this.desc(i32, 3, out);
    const s = this.scratch;
    this.check(mod, mod._bl_conv3d(this.ctx, dx, dw, db, dy, s, s + 12, s + 24));
  }

  protected async rawGroupNorm(x: WasmTensor, groups: number, eps: number, weight: WasmTensor | null, bias: WasmTensor | null, silu: boolean, out: WasmTensor): Promise<void> {
    const mod = this.heap.module('groupNorm');
    const i32 = this.scratchView(mod);
    const dx = this.desc(i32, 0, x);
    const dg = weight ? this.desc(i32, 1, weight) : 0;
    const db = bias ? this.desc(i32, 2, bias) : 0;
    const dy = this.desc(i32, 3, out);
    this.check(mod, mod._bl_group_norm(this.ctx, dx, groups, eps, dg, db, silu ? 1 : 0, dy));
  }

  protected async rawSilu(x: WasmTensor, out: WasmTensor): Promise<void> {
    const mod = this.heap.module('silu');
    const i32 = this.scratchView(mod);
    this.check(mod, mod._bl_silu(this.ctx, this.desc(i32, 0, x), this.desc(i32, 1, out)));
  }

  protected async rawAdd(a: WasmTensor, b: WasmTensor, out: WasmTensor): Promise<void> {
    const mod = this.heap.module('add');
    const i32 = this.scratchView(mod);
    this.check(mod, mod._bl_add(this.ctx, this.desc(i32, 0, a), this.desc(i32, 1, b), this.desc(i32, 2, out)));
  }

  protected async rawConcat(xs: readonly WasmTensor[], out: WasmTensor): Promise<void> {
    const mod = this.heap.module('concat');
    this.ensureScratch(mod, xs.length + 1);
    const i32 = this.scratchView(mod);
    xs.forEach((t, i) => this.desc(i32, i, t));
    const dy = this.desc(i32, xs.length, out);
    this.check(mod, mod._bl_concat(this.ctx, this.scratch + TRIPLES_BYTES, xs.length, dy));
  }

  protected async rawRunOp(name: string, inputs: readonly WasmTensor[], attrs: Readonly<Record<string, readonly number[]>>, outputs: readonly WasmTensor[]): Promise<void> {
    const mod = this.heap.module(name);
    this.ensureScratch(mod, inputs.length + outputs.length);
    // Attributes as text, "key=1,2,3;key2=0.5" (parse_attrs in wasm/c_api.cpp; String(number) round-trips).
    const text = Object.entries(attrs).map(([k, v]) => `${k}=${v.map(String).join(',')}`).join(';');
    const nameBytes = mod.lengthBytesUTF8(name) + 1;
    const textBytes = mod.lengthBytesUTF8(text) + 1;
    const strings = this.heap.alloc(name, nameBytes + textBytes);
    try {
      mod.stringToUTF8(name, strings, nameBytes);
      mod.stringToUTF8(text, strings + nameBytes, textBytes);
      const i32 = this.scratchView(mod);  // after the allocation: heap growth replaces the buffer
      inputs.forEach((t, i) => this.desc(i32, i, t));
      outputs.forEach((t, i) => this.desc(i32, inputs.length + i, t));
      const descs = this.scratch + TRIPLES_BYTES;
      this.check(mod, mod._bl_run_op(this.ctx, strings, descs, inputs.length, strings + nameBytes,
        descs + inputs.length * DESC_BYTES, outputs.length));
    } finally {
      mod._bl_free(strings);
    }
  }

  protected rawNetworkWeightShapes(specText: string): Array<[string, number[]]> {
    const mod = this.heap.module('networkWeightShapes');
    const [spec] = this.heapStrings('networkWeightShapes', [specText]);
    let text: string;
    try {
      const ptr = mod._bl_network_weight_shapes(this.ctx, spec) >>> 0;
      if (!ptr) throw this.lastError(mod);
      text = mod.UTF8ToString(ptr);
    } finally {
      mod._bl_free(spec);
    }
    return text.split('\n').filter((l) => l.length > 0).map((line) => {
      const [name, dims] = line.split('\t');
      return [name, dims.split(',').map(Number)];
    });
  }

  protected async rawCreateNetwork(specText: string, weights: ReadonlyMap<string, NetworkWeight>): Promise<RawNetwork> {
    const mod = this.heap.module('createNetwork');
    const names = [...weights.keys()];
    const tensors: WasmTensor[] = [];
    let handle = 0;
    try {
      for (const w of weights.values()) {
        const dtype: DType = w.dtype === 'F32' ? 'float32' : w.dtype === 'BF16' ? 'bfloat16' : 'float16';
        const t = this.allocate(w.shape, dtype);
        t.write(dtype === 'float32'
          ? new Float32Array(w.data.buffer, w.data.byteOffset, w.data.byteLength / 4)
          : new Uint16Array(w.data.buffer, w.data.byteOffset, w.data.byteLength / 2));
        tensors.push(t);
      }
      this.ensureScratch(mod, tensors.length);
      const [spec, joined] = this.heapStrings('createNetwork', [specText, names.join('\n')]);
      try {
        const i32 = this.scratchView(mod);
        tensors.forEach((t, i) => this.desc(i32, i, t));
        handle = mod._bl_network_create(this.ctx, spec, this.scratch + TRIPLES_BYTES, joined, tensors.length) >>> 0;
      } finally {
        mod._bl_free(spec);
      }
      if (!handle) throw this.lastError(mod);
    } catch (e) {
      tensors.forEach((t) => t.dispose());
      throw e;
    }
    // float32 weights are read in place for the network's life; 16-bit ones were widened into its own copies.
    const kept = tensors.filter((t) => t.dtype === 'float32');
    tensors.filter((t) => t.dtype !== 'float32').forEach((t) => t.dispose());
    return {
      entries: mod.UTF8ToString(mod._bl_network_entries(handle)).split('\n'),
      run: async (entry, inputs) => this.runNetwork(handle, entry, inputs),
      stats: () => {
        const m = this.heap.module('network.stats');
        m._bl_network_stats(handle, this.scratch);
        const f64 = new Float64Array(heapBuffer(m), this.scratch, 2);
        return { bufferAllocations: f64[0], bufferBytes: f64[1] };
      },
      dispose: () => {
        this.heap.mod?._bl_network_destroy(handle);
        kept.forEach((t) => t.dispose());
      },
    };
  }

  private runNetwork(handle: number, entry: string, inputs: Readonly<NetworkTensors>): NetworkTensors {
    const mod = this.heap.module('network.run');
    const names = Object.keys(inputs);
    const tensors = names.map((n) => this.tensor(inputs[n].shape, inputs[n].data) as WasmTensor);
    try {
      this.ensureScratch(mod, tensors.length);
      const [entryPtr, namesPtr] = this.heapStrings('network.run', [entry, names.join('\n')]);
      try {
        const i32 = this.scratchView(mod);
        tensors.forEach((t, i) => this.desc(i32, i, t));
        this.check(mod, mod._bl_network_run(this.ctx, handle, entryPtr, this.scratch + TRIPLES_BYTES, namesPtr, tensors.length));
      } finally {
        mod._bl_free(entryPtr);
      }
      const outputs: NetworkTensors = {};
      const count = mod._bl_network_output_count(handle);
      for (let i = 0; i < count; i++) {
        const name = mod.UTF8ToString(mod._bl_network_output_name(handle, i));
        const desc = new Int32Array(heapBuffer(mod), mod._bl_network_output_desc(handle, i) >>> 0, DESC_INTS);
        const shape = Array.from(desc.subarray(2, 2 + desc[1]));
        const size = shape.reduce((a, b) => a * b, 1);
        outputs[name] = { shape, data: new Float32Array(heapBuffer(mod), desc[10] >>> 0, size).slice() };
      }
      mod._bl_network_release_outputs(handle);
      return outputs;
    } finally {
      tensors.forEach((t) => t.dispose());
    }
  }

  /** Copies strings into one heap allocation; returns their pointers (free the first to free all). */
  private heapStrings(op: string, strings: readonly string[]): number[] {
    const mod = this.heap.module(op);
    const sizes = strings.map((s) => mod.lengthBytesUTF8(s) + 1);
    const base = this.heap.alloc(op, sizes.reduce((a, b) => a + b, 0));
    const ptrs: number[] = [];
    let at = base;
    strings.forEach((s, i) => {
      mod.stringToUTF8(s, at, sizes[i]);
      ptrs.push(at);
      at += sizes[i];
    });
    return ptrs;
  }

  protected async rawProbePeak(secondsPerRepeat: number): Promise<number> {
    const mod = this.heap.module('probePeakGflops');
    const gflops = mod._bl_probe_peak_gflops(this.ctx, secondsPerRepeat, 3);
    if (gflops < 0) throw this.lastError(mod);
    return gflops;
  }

  protected async rawDispose(): Promise<void> {
    const mod = this.heap.mod;
    if (!mod) return;
    // Destroying the context joins its threads before their workers are terminated.
    mod._bl_context_destroy(this.ctx);
    mod._bl_free(this.scratch);
    this.heap.mod = null;
    disposeModule(mod);
  }

  private scratchView(mod: WasmModule): Int32Array {
    return new Int32Array(heapBuffer(mod), this.scratch, (TRIPLES_BYTES + this.scratchDescs * DESC_BYTES) / 4);
  }

  /** Grows the descriptor area for a concat with more inputs than it holds; kept for later calls. */
  private ensureScratch(mod: WasmModule, descs: number): void {
    if (descs <= this.scratchDescs) return;
    let n = this.scratchDescs;
    while (n < descs) n *= 2;
    const ptr = this.heap.alloc('concat', TRIPLES_BYTES + n * DESC_BYTES);
    mod._bl_free(this.scratch);
    this.scratch = ptr;
    this.scratchDescs = n;
  }

  /** Writes descriptor `index` and returns its heap offset. */
  private desc(i32: Int32Array, index: number, t: WasmTensor): number {
    const base = (TRIPLES_BYTES >> 2) + index * DESC_INTS;
    i32[base] = DTYPE_CODES[t.dtype];
    i32[base + 1] = t.shape.length;
    for (let k = 0; k < 8; k++) i32[base + 2 + k] = k < t.shape.length ? t.shape[k] : 0;
    i32[base + 10] = t.ptr | 0;  // uint32 in C; the bits are what matter
    return this.scratch + TRIPLES_BYTES + index * DESC_BYTES;
  }

  private check(mod: WasmModule, rc: number): void {
    if (rc !== 0) throw this.lastError(mod);
  }

  private lastError(mod: WasmModule): Error {
    const kind = mod._bl_last_error_kind();
    const message = mod.UTF8ToString(mod._bl_last_error()) || `${this.name}: unknown error (kind ${kind})`;
    if (kind === 1) return new TypeError(message);
    if (kind === 2) return new RangeError(message);
    return new Error(message);
  }
}

function resolveThreads(threads: number | undefined): number {
  if (threads === undefined || threads === 0) return Math.min(os.availableParallelism(), MAX_WASM_THREADS);
  if (typeof threads !== 'number' || !Number.isInteger(threads))
    throw new TypeError(`createWasmBackend: option 'threads' must be an integer, got ${describe(threads)}`);
  if (threads < 0) throw new RangeError(`createWasmBackend: option 'threads' must be >= 1 (or 0 for one per core), got ${threads}`);
  return Math.min(threads, MAX_WASM_THREADS);
}

/**
 * Loads a wasm variant. Throws an Error with a one-line reason when it cannot
 * run here (not built, no SIMD, no SharedArrayBuffer), for the backend selector
 * to list after the backend's name; TypeError/RangeError only for bad options.
 */
export async function createWasmBackend(name: WasmBackendName, options: WasmBackendOptions = {}): Promise<WasmBackend> {
  if (!Object.prototype.hasOwnProperty.call(VARIANTS, name))
    throw new TypeError(`createWasmBackend: argument 'name' must be one of ${Object.keys(VARIANTS).join(', ')}, got ${describe(name)}`);
  return WasmBackend.create(name, options ?? {});
}
