/**
 * The only place the native addon is loaded, and the typed surface of what it
 * exports (native/napi/addon.cpp). Search order: BRAIN_LDM_ADDON, then the
 * cmake-js build, then the node-gyp build.
 */
import { createRequire } from 'node:module';
import { existsSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

export interface RawTensor {
  data: Float32Array | Uint16Array;
  shape: readonly number[];
  dtype: number;
}

export interface NativeContextInfo {
  isa: string;
  threads: number;
  spinMicros: number;
  splitBatch: boolean;
  precision: 'fp32' | 'bf16';
  coreVersion: string;
  compiler: string;
  convTile: number;
  convChannelBlock: number;
}

export interface NativeContext {
  info(): NativeContextInfo;
  stats(): { scratchBytes: number; scratchAllocations: number };
  conv3d(x: RawTensor, w: RawTensor, bias: RawTensor | null, out: RawTensor, stride: readonly number[],
    padBefore: readonly number[], padAfter: readonly number[]): Promise<void>;
  groupNorm(x: RawTensor, groups: number, eps: number, weight: RawTensor | null, bias: RawTensor | null,
    silu: boolean, out: RawTensor): Promise<void>;
  silu(x: RawTensor, out: RawTensor): Promise<void>;
  add(a: RawTensor, b: RawTensor, out: RawTensor): Promise<void>;
  concat(xs: readonly RawTensor[], out: RawTensor): Promise<void>;
  runOp(name: string, inputs: readonly RawTensor[], attrs: Readonly<Record<string, readonly number[]>>,
    outputs: readonly RawTensor[]): Promise<void>;
  probePeakGflops(secondsPerRepeat: number, repeats: number): Promise<number>;
  createNetwork(specText: string, weights: ReadonlyArray<RawTensor & { name: string }>): NativeNetwork;
  dispose(): void;
}

/** native/napi/network_wrap.cpp */
export interface NativeNetwork {
  run(entry: string, inputs: Record<string, RawTensor>): Promise<Record<string, { shape: number[]; data: Float32Array }>>;
  entries(): string[];
  stats(): { bufferAllocations: number; bufferBytes: number };
  dispose(): void;
}

export interface NativeAddon {
  NativeContext: new (options: { threads?: number; isa?: string; precision?: string }) => NativeContext;
  planMemory(buffers: readonly { bytes: number; firstUse: number; lastUse: number }[], alignment?: number): {
    offsets: number[];
    totalBytes: number;
  };
  supportedIsas(): string[];
  networkWeightShapes(specText: string): Array<[string, number[]]>;
  bestIsa: string;
  /** Whether this addon and CPU can run precision 'bf16' (AVX512-BF16). */
  bf16Supported: boolean;
  /** The kernels precision 'bf16' runs on: 'amx-bf16' (AMX tiles), 'avx512-bf16' (dot products), or '' (none). */
  bf16Kernels: string;
  coreVersion: string;
}

const packageRoot = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..');

export function addonCandidates(): string[] {
  const fromEnv = process.env.BRAIN_LDM_ADDON;
  if (fromEnv) return [resolve(fromEnv)];
  return [
    resolve(packageRoot, 'build-cmake', 'Release', 'brain_ldm.node'),
    resolve(packageRoot, 'build', 'Release', 'brain_ldm.node'),
  ];
}

let cached: { addon: NativeAddon; path: string } | undefined;

/** Loads the addon once; throws one Error naming every path tried and why it failed. */
export function loadNativeAddon(): { addon: NativeAddon; path: string } {
  if (cached) return cached;
  const require = createRequire(import.meta.url);
  const reasons: string[] = [];
  for (const path of addonCandidates()) {
    if (!existsSync(path)) {
      reasons.push(`${path}: not built`);
      continue;
    }
    try {
      cached = { addon: require(path) as NativeAddon, path };
      return cached;
    } catch (e) {
      reasons.push(`${path}: ${(e as Error).message.split('\n')[0]}`);
    }
  }
  throw new Error(`native addon not available (${reasons.join('; ')}); build it with 'npm run build:native' (cmake) or 'npm run build:gyp' (node-gyp)`);
}
