/**
 * The one place that loads the emscripten glue built by wasm/build.sh. Each
 * call to loadModule() makes a fresh instance (own heap, own pthread pool), so
 * disposing one backend never pulls memory or workers from under another.
 */
import { existsSync, readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Worker as NodeWorker, WorkerOptions } from 'node:worker_threads';

export type WasmVariant = 'simd-threads' | 'simd' | 'scalar';
export const WASM_VARIANTS: readonly WasmVariant[] = ['simd-threads', 'simd', 'scalar'];

/** Largest thread count a threads instance is built for (one worker per thread beyond the caller). */
export const MAX_WASM_THREADS = 64;

const GLUE = 'brain_ldm.cjs';
const BINARY = 'brain_ldm.wasm';
const WORKER = 'brain_ldm.worker.js';

/**
 * wasm/dist/ of the package. This file sits at ts/backend/ when run from source
 * and at dist/backend/ once tsc has compiled it: both are two levels below the
 * package root.
 */
export function defaultDistDir(): string {
  // BRAIN_LDM_WASM_DIR relocates the builds (bundled apps, tests that need a missing build).
  if (process.env.BRAIN_LDM_WASM_DIR) return process.env.BRAIN_LDM_WASM_DIR;
  return fileURLToPath(new URL('../../wasm/dist/', import.meta.url));
}

export interface VariantPaths {
  dir: string;
  glue: string;
  wasm: string;
  /** Pthread worker script; threads variant only. */
  worker: string | null;
}

export function variantPaths(variant: WasmVariant, distDir: string = defaultDistDir()): VariantPaths {
  const dir = path.join(distDir, variant);
  return {
    dir,
    glue: path.join(dir, GLUE),
    wasm: path.join(dir, BINARY),
    worker: variant === 'simd-threads' ? path.join(dir, WORKER) : null,
  };
}

/**
 * The smallest module that uses SIMD: (module (func (result v128) i32.const 0 i8x16.splat)).
 *   00 61 73 6d 01 00 00 00   magic, version 1
 *   01 05 01 60 00 01 7b      type section: one func type () -> v128
 *   03 02 01 00               function section: one function of type 0
 *   0a 08 01 06 00 41 00 fd 0f 0b   code: no locals; i32.const 0; i8x16.splat; end
 * Engines without SIMD reject the v128 result type and the 0xfd prefix.
 */
const SIMD_PROBE = new Uint8Array([
  0x00, 0x61, 0x73, 0x6d, 0x01, 0x00, 0x00, 0x00,
  0x01, 0x05, 0x01, 0x60, 0x00, 0x01, 0x7b,
  0x03, 0x02, 0x01, 0x00,
  0x0a, 0x08, 0x01, 0x06, 0x00, 0x41, 0x00, 0xfd, 0x0f, 0x0b,
]);

export function simdSupported(): boolean {
  try {
    return typeof WebAssembly === 'object' && WebAssembly.validate(SIMD_PROBE);
  } catch {
    return false;
  }
}

/**
 * Pthreads need a shared wasm memory. SharedArrayBuffer alone is not enough:
 * some embedders (browsers without cross-origin isolation) expose the
 * constructor but refuse shared memories.
 */
export function threadsSupported(): boolean {
  if (typeof SharedArrayBuffer !== 'function') return false;
  try {
    const mem = new WebAssembly.Memory({ initial: 1, maximum: 1, shared: true });
    return mem.buffer instanceof SharedArrayBuffer;
  } catch {
    return false;
  }
}

/** Node's worker_threads.Worker, as far as the pool management here needs it. */
interface PoolWorker {
  unref?(): void;
  terminate(): unknown;
}

interface PThreadApi {
  unusedWorkers: PoolWorker[];
  runningWorkers: PoolWorker[];
  terminateAllThreads(): void;
}

/**
 * The raw surface of one instance: the C ABI of wasm/c_api.cpp (pointers are
 * heap offsets; i32 results may come back negative above 2 GiB, so callers
 * apply `>>> 0`) and the runtime helpers exported by wasm/build.sh.
 */
export interface WasmModule {
  _bl_context_create(threads: number, isaPtr: number): number;
  _bl_context_destroy(ctx: number): void;
  _bl_context_info(ctx: number): number;
  _bl_last_error(): number;
  _bl_last_error_kind(): number;
  _bl_malloc(bytes: number): number;
  _bl_free(ptr: number): void;
  _bl_conv3d(ctx: number, x: number, w: number, bias: number, out: number, stride: number, padBefore: number, padAfter: number): number;
  _bl_group_norm(ctx: number, x: number, groups: number, eps: number, gamma: number, beta: number, silu: number, out: number): number;
  _bl_silu(ctx: number, x: number, out: number): number;
  _bl_add(ctx: number, a: number, b: number, out: number): number;
  _bl_concat(ctx: number, xs: number, count: number, out: number): number;
  _bl_run_op(ctx: number, name: number, inputs: number, nIn: number, attrs: number, outputs: number, nOut: number): number;
  _bl_probe_peak_gflops(ctx: number, secondsPerRepeat: number, repeats: number): number;
  _bl_network_create(ctx: number, spec: number, weights: number, names: number, count: number): number;
  _bl_network_run(ctx: number, net: number, entry: number, inputs: number, names: number, count: number): number;
  _bl_network_output_count(net: number): number;
  _bl_network_output_name(net: number, i: number): number;
  _bl_network_output_desc(net: number, i: number): number;
  _bl_network_release_outputs(net: number): void;
  _bl_network_entries(net: number): number;
  _bl_network_stats(net: number, out: number): void;
  _bl_network_destroy(net: number): void;
  _bl_network_weight_shapes(ctx: number, spec: number): number;
  UTF8ToString(ptr: number, maxBytes?: number): string;
  stringToUTF8(s: string, ptr: number, maxBytes: number): void;
  lengthBytesUTF8(s: string): number;
  /** Replaced by the glue whenever the heap grows on the main thread. */
  HEAPU8: Uint8Array;
  /** Threads variant only: the shared memory, current even after a worker grew it. */
  wasmMemory?: WebAssembly.Memory;
  /** Threads variant only. */
  PThread?: PThreadApi;
}

interface ModuleArgs {
  wasmBinary: Uint8Array;
  locateFile(file: string): string;
  blPoolSize?: number;
  /** Run before the C++ constructors, which read the environment that getenv() then sees. */
  preRun?: Array<(mod: { ENV: Record<string, string> }) => void>;
}

type Factory = (args: ModuleArgs) => Promise<WasmModule>;

const requireCjs = createRequire(import.meta.url);

export interface LoadOptions {
  distDir?: string;
  /** Threads variant: pthread workers to start (threads - 1, at least 1). */
  poolSize?: number;
}

/** The process's BRAIN_LDM_* variables (none outside Node). */
function brainLdmEnv(): Record<string, string> {
  const env: Record<string, string> = {};
  if (typeof process === 'undefined' || !process.env) return env;
  for (const [k, v] of Object.entries(process.env)) if (k.startsWith('BRAIN_LDM_') && v !== undefined) env[k] = v;
  return env;
}

/**
 * Loads a fresh instance of `variant`. Throws an Error whose message is one
 * line saying why the variant is unusable here (not built, no SIMD, no threads).
 */
export async function loadModule(variant: WasmVariant, options: LoadOptions = {}): Promise<WasmModule> {
  const paths = variantPaths(variant, options.distDir);
  for (const file of [paths.glue, paths.wasm, paths.worker]) {
    if (file !== null && !existsSync(file))
      throw new Error(`${file} is missing; the wasm backends are not built: run \`npm run build:wasm\` (needs em++, Debian package emscripten)`);
  }
  if (variant !== 'scalar' && !simdSupported())
    throw new Error('this WebAssembly engine has no SIMD support (wasm simd128); use wasm-scalar');
  if (variant === 'simd-threads' && !threadsSupported())
    throw new Error('this runtime has no SharedArrayBuffer / shared WebAssembly.Memory, so wasm threads are unavailable; use wasm-simd');

  const factory = requireCjs(paths.glue) as Factory;
  if (typeof factory !== 'function') throw new Error(`${paths.glue} does not export an emscripten module factory; rebuild with \`npm run build:wasm\``);
  const args: ModuleArgs = {
    // The glue's own loader fetch()es the path, which Node's fetch rejects.
    wasmBinary: readFileSync(paths.wasm),
    locateFile: (file) => path.join(paths.dir, file),
  };
  // The core's tuning and diagnostics variables (BRAIN_LDM_PROFILE, the SPADE and upsample slab thresholds) reach
  // getenv() only through the glue's own ENV, which starts without the process's environment.
  const env = brainLdmEnv();
  if (Object.keys(env).length > 0) args.preRun = [(m) => { Object.assign(m.ENV, env); }];
  if (variant === 'simd-threads')
    args.blPoolSize = Math.max(1, Math.min(MAX_WASM_THREADS - 1, Math.floor(options.poolSize ?? 1)));
  let mod: WasmModule;
  try {
    // The glue creates its pool workers synchronously inside the factory call.
    const restore = variant === 'simd-threads' ? poolWorkersWithoutExecArgv() : undefined;
    let pending: Promise<WasmModule>;
    try {
      pending = factory(args);
    } finally {
      restore?.();
    }
    mod = await pending;
  } catch (e) {
    throw new Error(`cannot instantiate ${paths.wasm}: ${String((e as Error)?.message ?? e).split('\n')[0]}`);
  }
  unrefWorkers(mod);
  return mod;
}

/**
 * Node workers inherit the parent's execArgv by default, and some flags break
 * them: `node --input-type=module -e ...` makes every pool worker die with
 * ERR_INPUT_TYPE_NOT_ALLOWED, and `--import=tsx` loads the TypeScript loader
 * into each one. emscripten's worker script is plain CommonJS that needs no
 * flags, so its workers get none. The glue reads worker_threads.Worker once,
 * into global.Worker, while it builds the pool; both are put back afterwards
 * (with the pool sized up front it never creates a worker later).
 */
function poolWorkersWithoutExecArgv(): () => void {
  const wt = requireCjs('node:worker_threads') as { Worker: typeof NodeWorker };
  const Base = wt.Worker;
  const g = globalThis as Record<string, unknown>;
  const hadGlobal = Object.prototype.hasOwnProperty.call(g, 'Worker');
  const previousGlobal = g.Worker;
  wt.Worker = class extends Base {
    constructor(file: string | URL, options?: WorkerOptions) {
      super(file, { ...options, execArgv: [] });
    }
  };
  return () => {
    wt.Worker = Base;
    if (hadGlobal) g.Worker = previousGlobal;
    else delete g.Worker;
  };
}

/**
 * Pool workers are Node worker_threads; a ref'd worker keeps the process
 * alive forever even when idle, so they must not hold the event loop.
 */
function unrefWorkers(mod: WasmModule): void {
  const pt = mod.PThread;
  if (!pt) return;
  for (const w of [...pt.unusedWorkers, ...pt.runningWorkers]) w.unref?.();
}

const disposed = new WeakSet<WasmModule>();

/**
 * Ends an instance: terminates its pthread workers (call after the context is
 * destroyed, which joins the threads). The heap is released when the module
 * object is garbage collected.
 */
export function disposeModule(mod: WasmModule): void {
  if (disposed.has(mod)) return;
  disposed.add(mod);
  const pt = mod.PThread;
  if (!pt) return;
  unrefWorkers(mod);
  pt.terminateAllThreads();
}

/** The heap's current buffer; fetch again after anything that may allocate (growth replaces it). */
export function heapBuffer(mod: WasmModule): ArrayBufferLike {
  // On the threads variant a worker can grow the shared memory, leaving the
  // main thread's HEAPU8 short until the glue next checks; the Memory object is
  // always current.
  return mod.wasmMemory ? mod.wasmMemory.buffer : mod.HEAPU8.buffer;
}
