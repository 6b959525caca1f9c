/** The native addon as a Backend: tensors are JS typed arrays the addon reads in place. */
import { BackendBase, type ConvParams } from './backend-base.js';
import { BaseTensor } from './base-tensor.js';
import { checkHostData } from './validate.js';
import { loadNativeAddon, type NativeAddon, type NativeContext, type RawTensor } from './native-binding.js';
import type { NetworkWeight, RawNetwork } from './types.js';
import { DTYPE_CODES, type BackendInfo, type DType, type Precision } from './types.js';

export class NativeTensor extends BaseTensor {
  private storage: Float32Array | Uint16Array | null;

  constructor(owner: object, shape: readonly number[], dtype: DType) {
    super(owner, shape, dtype);
    const size = shape.reduce((a, b) => a * b, 1);
    this.storage = dtype === 'float32' ? new Float32Array(size) : new Uint16Array(size);
  }

  /** The addon's view of this tensor (zero-copy). */
  raw(): RawTensor {
    this.assertLive('native tensor');
    return { data: this.storage!, shape: this.shape, dtype: DTYPE_CODES[this.dtype] };
  }

  read(): Float32Array | Uint16Array {
    this.assertLive('read');
    return this.storage!.slice();
  }

  write(data: Float32Array | Uint16Array): void {
    this.assertLive('write');
    checkHostData('write', 'data', data, this.dtype, this.size);
    this.storage!.set(data);
  }

  protected release(): void {
    this.storage = null;
  }
}

export interface NativeBackendOptions {
  threads?: number;
  isa?: string;
  precision?: Precision;
}

export class NativeBackend extends BackendBase<NativeTensor> {
  readonly name = 'native' as const;
  private readonly context: NativeContext;
  private readonly addon: NativeAddon;
  readonly addonPath: string;

  constructor(options: NativeBackendOptions = {}) {
    super();
    const { addon, path } = loadNativeAddon();
    this.addon = addon;
    this.addonPath = path;
    this.context = new addon.NativeContext({ threads: options.threads, isa: options.isa, precision: options.precision });
  }

  info(): BackendInfo {
    const i = this.context.info();
    return { backend: 'native', isa: i.isa, threads: i.threads, spinMicros: i.spinMicros, splitBatch: i.splitBatch, precision: i.precision, coreVersion: i.coreVersion, compiler: i.compiler };
  }

  /** Scratch arena size and how often it was (re)allocated: constant once shapes repeat. */
  stats(): { scratchBytes: number; scratchAllocations: number } {
    return this.context.stats();
  }

  protected allocate(shape: readonly number[], dtype: DType): NativeTensor {
    return new NativeTensor(this, shape, dtype);
  }

  protected rawConv3d(x: NativeTensor, w: NativeTensor, b: NativeTensor | null, out: NativeTensor, p: ConvParams): Promise<void> {
    return this.context.conv3d(x.raw(), w.raw(), b?.raw() ?? null, out.raw(), p.stride, p.padBefore, p.padAfter);
  }

  protected rawGroupNorm(x: NativeTensor, groups: number, eps: number, weight: NativeTensor | null, bias: NativeTensor | null, silu: boolean, out: NativeTensor): Promise<void> {
    return this.context.groupNorm(x.raw(), groups, eps, weight?.raw() ?? null, bias?.raw() ?? null, silu, out.raw());
  }

  protected rawSilu(x: NativeTensor, out: NativeTensor): Promise<void> {
    return this.context.silu(x.raw(), out.raw());
  }

  protected rawAdd(a: NativeTensor, b: NativeTensor, out: NativeTensor): Promise<void> {
    return this.context.add(a.raw(), b.raw(), out.raw());
  }

  protected rawConcat(xs: readonly NativeTensor[], out: NativeTensor): Promise<void> {
    return this.context.concat(xs.map((x) => x.raw()), out.raw());
  }

  protected rawRunOp(name: string, inputs: readonly NativeTensor[], attrs: Readonly<Record<string, readonly number[]>>, outputs: readonly NativeTensor[]): Promise<void> {
    return this.context.runOp(name, inputs.map((x) => x.raw()), attrs, outputs.map((y) => y.raw()));
  }

  protected rawNetworkWeightShapes(specText: string): Array<[string, number[]]> {
    return this.addon.networkWeightShapes(specText);
  }

  protected async rawCreateNetwork(specText: string, weights: ReadonlyMap<string, NetworkWeight>): Promise<RawNetwork> {
    // float32 weights are read in place by the addon (it keeps the arrays referenced); 16-bit ones are widened there.
    const list = [...weights].map(([name, w]) => ({
      name,
      shape: w.shape,
      dtype: w.dtype === 'F32' ? 0 : w.dtype === 'BF16' ? 1 : 2,
      data: w.dtype === 'F32'
        ? new Float32Array(w.data.buffer, w.data.byteOffset, w.data.byteLength / 4)
        : new Uint16Array(w.data.buffer, w.data.byteOffset, w.data.byteLength / 2),
    }));
    const net = this.context.createNetwork(specText, list);
    return {
      entries: net.entries(),
      run: (entry, inputs) => {
        const raw: Record<string, RawTensor> = {};
        for (const [name, t] of Object.entries(inputs)) raw[name] = { data: t.data, shape: t.shape, dtype: 0 };
        return net.run(entry, raw);
      },
      stats: () => net.stats(),
      dispose: () => net.dispose(),
    };
  }

  protected rawProbePeak(secondsPerRepeat: number): Promise<number> {
    return this.context.probePeakGflops(secondsPerRepeat, 3);
  }

  protected async rawDispose(): Promise<void> {
    this.context.dispose();
  }
}
