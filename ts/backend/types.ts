/**
 * The backend contract: every compute backend (native addon, the three wasm
 * variants, later CUDA) implements it, and every spec in test/ runs against
 * each backend that loads. Tensors live in backend memory (a JS typed array for
 * native, the wasm heap for wasm) and stay there between calls.
 */

export type DType = 'float32' | 'bfloat16' | 'float16';

/** Numeric codes shared with the C++ core (bl::DType). */
export const DTYPE_CODES: Readonly<Record<DType, number>> = { float32: 0, bfloat16: 1, float16: 2 };

export type BackendName = 'native' | 'wasm-simd-threads' | 'wasm-simd' | 'wasm-scalar' | 'cuda';

/** What `backend` accepts: a concrete backend, `wasm` (best wasm variant) or `auto`. */
export type BackendRequest = BackendName | 'wasm' | 'auto';

/** Order tried by `auto`, best first. */
export const AUTO_ORDER: readonly BackendName[] = ['native', 'wasm-simd-threads', 'wasm-simd', 'wasm-scalar'];

export interface BackendOptions {
  /** Backend to load; default `BRAIN_LDM_BACKEND` or `auto`. */
  backend?: BackendRequest;
  /** Worker threads; default `BRAIN_LDM_THREADS` or one per available core. Ignored by single-threaded wasm. */
  threads?: number;
  /** Kernel ISA for native: `auto`, `scalar`, `avx2`, `avx512`; default `BRAIN_LDM_ISA` or `auto`. */
  isa?: string;
  /**
   * Arithmetic of the convolutions: `fp32` (default, or `BRAIN_LDM_PRECISION`), or `bf16`: inputs and weights
   * rounded to bfloat16, products summed in fp32 (native backend on a CPU with AVX512-BF16; about 2x the
   * convolution throughput, outputs within ~1e-2 relative of fp32). Everything else stays fp32.
   */
  precision?: Precision;
}

export type Precision = 'fp32' | 'bf16';
export const PRECISIONS: readonly Precision[] = ['fp32', 'bf16'];

export interface BackendInfo {
  backend: BackendName;
  /** Kernel ISA in use: avx512, avx2, scalar, simd128. */
  isa: string;
  threads: number;
  /**
   * Microseconds an idle worker thread spins before it sleeps: BRAIN_LDM_SPIN_US when the backend was created,
   * else 2000. Spinning saves the wake-up between the many short parallel steps of a forward; 0 suits machines
   * shared with other busy processes.
   */
  spinMicros: number;
  /**
   * Whether a network run gives each group of threads its own share of the batch (the batch and the threads divided
   * by the same number; each share goes through the whole network on its own): BRAIN_LDM_SPLIT_BATCH (0 or 1) when
   * the backend was created, else on for native and off for wasm (slower there). Threads then read only activations
   * they wrote, which keeps a 2-core VM whose cores sit on different dies as fast as one whose cores share a cache.
   */
  splitBatch: boolean;
  /** Arithmetic of the convolutions (see BackendOptions.precision). */
  precision: Precision;
  coreVersion: string;
  /** Compiler that built the core, e.g. "gcc 12.2.0" or "emscripten 3.1.6". */
  compiler: string;
}

/** An N-d tensor resident in a backend's memory. */
export interface DeviceTensor {
  readonly shape: readonly number[];
  readonly dtype: DType;
  /** Number of elements. */
  readonly size: number;
  /** Copies the contents out (float32 -> Float32Array, 16-bit dtypes -> Uint16Array of raw bits). */
  read(): Float32Array | Uint16Array;
  /** Copies `data` in; its length must equal `size`. */
  write(data: Float32Array | Uint16Array): void;
  /** Frees backend memory now; later use throws. */
  dispose(): void;
  readonly disposed: boolean;
}

export type Triple = readonly [number, number, number];

export interface Conv3dOptions {
  /** Stride per spatial dim (D, H, W); default 1. */
  stride?: number | Triple;
  /**
   * Zero padding: a number or triple pads both sides; `{ before, after }` pads
   * asymmetrically (MONAI's autoencoder downsample pads (0, 1) then convolves with pad 0).
   */
  padding?: number | Triple | { before: number | Triple; after: number | Triple };
  out?: DeviceTensor;
}

export interface GroupNormOptions {
  groups: number;
  /** Default 1e-5 (torch.nn.GroupNorm); MONAI's autoencoder uses 1e-6. */
  eps?: number;
  /** Affine scale and shift [C]; both or neither. */
  weight?: DeviceTensor | null;
  bias?: DeviceTensor | null;
  /** Apply SiLU after the affine step in the same pass. */
  silu?: boolean;
  out?: DeviceTensor;
}

export interface OutOption {
  out?: DeviceTensor;
}

export interface Backend {
  readonly name: BackendName;
  info(): BackendInfo;
  /** New tensor; zero-filled unless `data` is given (copied in). */
  tensor(shape: readonly number[], data?: Float32Array | Uint16Array, dtype?: DType): DeviceTensor;
  /** x [N, Cin, D, H, W] * weight [Cout, Cin, KD, KH, KW] (+ bias [Cout]) -> [N, Cout, OD, OH, OW]. */
  conv3d(input: DeviceTensor, weight: DeviceTensor, bias: DeviceTensor | null, options?: Conv3dOptions): Promise<DeviceTensor>;
  groupNorm(input: DeviceTensor, options: GroupNormOptions): Promise<DeviceTensor>;
  silu(input: DeviceTensor, options?: OutOption): Promise<DeviceTensor>;
  /** a + b, with b the same shape as a or one value per (batch, channel). */
  add(a: DeviceTensor, b: DeviceTensor, options?: OutOption): Promise<DeviceTensor>;
  /** Concatenation along the channel dim (dim 1). */
  concat(inputs: readonly DeviceTensor[], options?: OutOption): Promise<DeviceTensor>;
  /**
   * Runs any core op by name on tensors of this backend, writing the caller's `outputs` (the
   * table in native/core/op_registry.h lists every op with its inputs and attributes, e.g.
   * `runOp('attention', [q, k, v], { heads: 2 }, [y])`). Tensors must be float32 except for
   * `convert_dtype`. Unknown ops and missing or unknown attributes throw a RangeError.
   */
  runOp(name: string, inputs: readonly DeviceTensor[], attrs: Readonly<Record<string, number | readonly number[]>>,
    outputs: readonly DeviceTensor[]): Promise<void>;
  /**
   * Builds a MONAI network in the core from spec text (ts/nets/network-spec.ts) and weights
   * (float32, or float16/bfloat16 widened once here). Throws naming the missing, extra or
   * mis-shaped key with both shapes. Use ts/nets/network.ts rather than calling this directly.
   */
  createNetwork(specText: string, weights: ReadonlyMap<string, NetworkWeight>): Promise<NetworkHandle>;
  /**
   * Every weight key the network of `specText` binds, with the shape it expects, in binding order: the exact
   * state_dict layout (generative 0.2.3 names) of that network, from the one graph definition in the core.
   */
  networkWeightShapes(specText: string): Promise<Array<[string, number[]]>>;
  /** Measured fp32 FMA peak of this backend's kernels and threads, GFLOP/s. */
  probePeakGflops(secondsPerRepeat?: number): Promise<number>;
  /** Frees the backend (threads, memory); tensors become unusable. */
  dispose(): Promise<void>;
}

/** A weight on the host, as read from safetensors: F16/BF16 as raw 16-bit patterns. */
export interface NetworkWeight {
  dtype: string;
  shape: readonly number[];
  data: ArrayBufferView;
}

/** A float32 tensor on the host: contiguous row-major `data` over `shape`. */
export interface NetworkTensor {
  shape: readonly number[];
  data: Float32Array;
}

export type NetworkTensors = Record<string, NetworkTensor>;

export interface NetworkStats {
  /** Activation buffers allocated so far; constant once a shape has run once (no allocation per step). */
  bufferAllocations: number;
  bufferBytes: number;
}

/** A network built on one backend; runs go through the backend's op queue. */
export interface NetworkHandle {
  /** "encode"/"decode" for autoencoders, "forward" for UNets. */
  readonly entries: readonly string[];
  run(entry: string, inputs: Readonly<NetworkTensors>): Promise<NetworkTensors>;
  stats(): NetworkStats;
  dispose(): Promise<void>;
}

/** What a backend implements for networks; BackendBase adds checks and queueing. */
export interface RawNetwork {
  entries: readonly string[];
  run(entry: string, inputs: Readonly<NetworkTensors>): Promise<NetworkTensors>;
  stats(): NetworkStats;
  dispose(): void;
}
