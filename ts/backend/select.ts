/**
 * Backend selection: by option, else BRAIN_LDM_BACKEND, else `auto`, which
 * tries native -> wasm simd+threads -> wasm simd -> wasm scalar and takes the
 * first that loads. When nothing loads, one error lists why each failed.
 */
import { NativeBackend } from './native-backend.js';
import { createWasmBackend } from './wasm-backend.js';
import { AUTO_ORDER, PRECISIONS, type Backend, type BackendName, type BackendOptions, type BackendRequest, type Precision } from './types.js';
import { describe } from './validate.js';

const REQUESTS: readonly BackendRequest[] = ['auto', 'wasm', ...AUTO_ORDER, 'cuda'];
const WASM_ORDER: readonly BackendName[] = ['wasm-simd-threads', 'wasm-simd', 'wasm-scalar'];

export class BackendUnavailableError extends Error {
  constructor(message: string, readonly reasons: ReadonlyMap<BackendName, string>) {
    super(message);
    this.name = 'BackendUnavailableError';
  }
}

interface ResolvedOptions { threads?: number; isa?: string; precision?: Precision }

function resolveOptions(options: BackendOptions): ResolvedOptions & { request: BackendRequest } {
  const request = (options.backend ?? (process.env.BRAIN_LDM_BACKEND || 'auto')) as BackendRequest;
  if (!REQUESTS.includes(request))
    throw new RangeError(`backend '${String(request)}' is unknown; expected one of ${REQUESTS.join(', ')} (from ${options.backend !== undefined ? "option 'backend'" : 'BRAIN_LDM_BACKEND'})`);
  let threads: number | undefined = options.threads;
  const source = threads !== undefined ? "option 'threads'" : 'BRAIN_LDM_THREADS';
  if (threads === undefined && process.env.BRAIN_LDM_THREADS) threads = Number(process.env.BRAIN_LDM_THREADS);
  if (threads !== undefined) {
    if (typeof threads !== 'number' || Number.isNaN(threads)) throw new TypeError(`${source} must be a number, got ${describe(threads)}`);
    if (!Number.isInteger(threads) || threads < 1 || threads > 1024) throw new RangeError(`${source} must be an integer from 1 to 1024, got ${threads}`);
  }
  const isa = options.isa ?? process.env.BRAIN_LDM_ISA;
  if (isa !== undefined && typeof isa !== 'string') throw new TypeError(`option 'isa' must be a string, got ${describe(isa)}`);
  const precision = (options.precision ?? (process.env.BRAIN_LDM_PRECISION || undefined)) as Precision | undefined;
  if (precision !== undefined && !PRECISIONS.includes(precision))
    throw new RangeError(`precision '${String(precision)}' is unknown; expected one of ${PRECISIONS.join(', ')} (from ${options.precision !== undefined ? "option 'precision'" : 'BRAIN_LDM_PRECISION'})`);
  return { request, threads, isa, precision };
}

/** Creates one named backend or throws why it can't. */
export async function createBackend(name: BackendName, options: ResolvedOptions = {}): Promise<Backend> {
  switch (name) {
    case 'native':
      return new NativeBackend({ threads: options.threads, isa: options.isa, precision: options.precision });
    case 'wasm-simd-threads':
    case 'wasm-simd':
    case 'wasm-scalar':
      if (options.precision === 'bf16')
        throw new RangeError(`precision 'bf16' runs on the native backend (AVX512-BF16); '${name}' computes in fp32`);
      return createWasmBackend(name, { threads: options.threads });
    case 'cuda':
      throw new Error('the CUDA backend is not part of this build yet');
  }
}

/** Loads the requested backend (see BackendOptions); `auto` and `wasm` fall back in order. */
export async function loadBackend(options: BackendOptions = {}): Promise<Backend> {
  const { request, ...resolved } = resolveOptions(options);
  const order: readonly BackendName[] = request === 'auto' ? AUTO_ORDER : request === 'wasm' ? WASM_ORDER : [request];
  const reasons = new Map<BackendName, string>();
  for (const name of order) {
    try {
      return await createBackend(name, resolved);
    } catch (e) {
      // A bad option value is the caller's error, not a reason to fall back.
      if (e instanceof RangeError || e instanceof TypeError) throw e;
      reasons.set(name, (e as Error).message);
    }
  }
  const lines = [...reasons].map(([n, r]) => `  ${n}: ${r}`).join('\n');
  throw new BackendUnavailableError(`no brain-ldm backend could be loaded for '${request}':\n${lines}`, reasons);
}

/** Every backend this machine can load, for tests and `brain-ldm info`; failures come with their reason. */
export async function probeBackends(options: { threads?: number } = {}): Promise<Array<{ name: BackendName; backend?: Backend; error?: string }>> {
  const out: Array<{ name: BackendName; backend?: Backend; error?: string }> = [];
  for (const name of AUTO_ORDER) {
    try {
      out.push({ name, backend: await createBackend(name, options) });
    } catch (e) {
      out.push({ name, error: (e as Error).message });
    }
  }
  return out;
}
