/**
 * The op front end shared by every backend: argument checks, output shapes and
 * allocation, and a queue that runs one op at a time per backend (ops share
 * the backend's scratch memory and threads). Subclasses supply tensor storage
 * and the raw calls into their kernels.
 */
import type {
  Backend, BackendInfo, BackendName, Conv3dOptions, DType, DeviceTensor, GroupNormOptions, NetworkHandle, NetworkWeight,
  OutOption, RawNetwork, Triple,
} from './types.js';
import { BaseTensor } from './base-tensor.js';
import { checkDType, checkHostData, checkNetworkInputs, checkOut, checkShape, checkTensor, describe, sameShape, triple } from './validate.js';

export interface ConvParams {
  stride: Triple;
  padBefore: Triple;
  padAfter: Triple;
}

export abstract class BackendBase<T extends BaseTensor> implements Backend {
  abstract readonly name: BackendName;
  private queue: Promise<unknown> = Promise.resolve();
  private disposed = false;

  abstract info(): BackendInfo;
  /** Zero-filled tensor in backend memory. */
  protected abstract allocate(shape: readonly number[], dtype: DType): T;
  protected abstract rawConv3d(x: T, w: T, b: T | null, out: T, p: ConvParams): Promise<void>;
  protected abstract rawGroupNorm(x: T, groups: number, eps: number, weight: T | null, bias: T | null, silu: boolean, out: T): Promise<void>;
  protected abstract rawSilu(x: T, out: T): Promise<void>;
  protected abstract rawAdd(a: T, b: T, out: T): Promise<void>;
  protected abstract rawConcat(xs: readonly T[], out: T): Promise<void>;
  protected abstract rawCreateNetwork(specText: string, weights: ReadonlyMap<string, NetworkWeight>): Promise<RawNetwork>;
  protected abstract rawNetworkWeightShapes(specText: string): Array<[string, number[]]>;
  protected abstract rawRunOp(name: string, inputs: readonly T[], attrs: Readonly<Record<string, readonly number[]>>, outputs: readonly T[]): Promise<void>;
  protected abstract rawProbePeak(secondsPerRepeat: number): Promise<number>;
  protected abstract rawDispose(): Promise<void>;

  tensor(shape: readonly number[], data?: Float32Array | Uint16Array, dtype: DType = 'float32'): DeviceTensor {
    this.assertLive('tensor');
    const dims = checkShape('tensor', 'shape', shape);
    checkDType('tensor', 'dtype', dtype);
    const size = dims.reduce((a, b) => a * b, 1);
    if (data !== undefined) checkHostData('tensor', 'data', data, dtype, size);
    const t = this.allocate(dims, dtype);
    if (data !== undefined) t.write(data);
    return t;
  }

  async conv3d(input: DeviceTensor, weight: DeviceTensor, bias: DeviceTensor | null, options: Conv3dOptions = {}): Promise<DeviceTensor> {
    const op = 'conv3d';
    this.assertLive(op);
    const x = checkTensor(op, 'input', input, this, 5) as T;
    const w = checkTensor(op, 'weight', weight, this, 5) as T;
    if (w.shape[1] !== x.shape[1])
      throw new RangeError(`${op}: argument 'weight' has shape [${w.shape.join(', ')}] but the input has ${x.shape[1]} channels (shape [${x.shape.join(', ')}])`);
    let b: T | null = null;
    if (bias !== null && bias !== undefined) {
      b = checkTensor(op, 'bias', bias, this, 1) as T;
      if (b.shape[0] !== w.shape[0]) throw new RangeError(`${op}: argument 'bias' has shape [${b.shape.join(', ')}], expected [${w.shape[0]}]`);
    }
    const stride = triple(op, 'stride', options.stride ?? 1, 1);
    const { before, after } = paddingPair(op, options.padding ?? 0);
    const outShape = [x.shape[0], w.shape[0]];
    for (let i = 0; i < 3; i++) {
      const padded = x.shape[2 + i] + before[i] + after[i];
      if (padded < w.shape[2 + i])
        throw new RangeError(`${op}: padded input size ${padded} along ${'DHW'[i]} is smaller than the kernel size ${w.shape[2 + i]}`);
      outShape.push(Math.floor((padded - w.shape[2 + i]) / stride[i]) + 1);
    }
    const out = this.output(op, options.out, outShape);
    await this.enqueue(() => this.rawConv3d(x, w, b, out, { stride, padBefore: before, padAfter: after }));
    return out;
  }

  async groupNorm(input: DeviceTensor, options: GroupNormOptions): Promise<DeviceTensor> {
    const op = 'groupNorm';
    this.assertLive(op);
    const x = checkTensor(op, 'input', input, this, -1) as T;
    if (x.shape.length < 2) throw new RangeError(`${op}: argument 'input' has shape [${x.shape.join(', ')}], expected at least 2 dims [N, C, ...]`);
    if (typeof options !== 'object' || options === null) throw new TypeError(`${op}: argument 'options' must be an object with 'groups', got ${describe(options)}`);
    const channels = x.shape[1];
    const { groups, eps = 1e-5, silu = false } = options;
    if (typeof groups !== 'number' || !Number.isInteger(groups)) throw new TypeError(`${op}: argument 'groups' must be an integer, got ${describe(groups)}`);
    if (groups < 1 || channels % groups !== 0) throw new RangeError(`${op}: argument 'groups' is ${groups}, expected a positive divisor of the ${channels} channels`);
    if (typeof eps !== 'number') throw new TypeError(`${op}: argument 'eps' must be a number, got ${describe(eps)}`);
    if (!(eps > 0) || !Number.isFinite(eps)) throw new RangeError(`${op}: argument 'eps' must be a positive finite number, got ${eps}`);
    const hasWeight = options.weight !== undefined && options.weight !== null;
    const hasBias = options.bias !== undefined && options.bias !== null;
    if (hasWeight !== hasBias) throw new TypeError(`${op}: arguments 'weight' and 'bias' must be given together or both omitted`);
    let gamma: T | null = null;
    let beta: T | null = null;
    if (hasWeight) {
      gamma = checkTensor(op, 'weight', options.weight, this, 1) as T;
      beta = checkTensor(op, 'bias', options.bias, this, 1) as T;
      for (const [name, t] of [['weight', gamma], ['bias', beta]] as const)
        if (t.shape[0] !== channels) throw new RangeError(`${op}: argument '${name}' has shape [${t.shape.join(', ')}], expected [${channels}]`);
    }
    const out = this.output(op, options.out, x.shape);
    await this.enqueue(() => this.rawGroupNorm(x, groups, eps, gamma, beta, Boolean(silu), out));
    return out;
  }

  async silu(input: DeviceTensor, options: OutOption = {}): Promise<DeviceTensor> {
    this.assertLive('silu');
    const x = checkTensor('silu', 'input', input, this, -1) as T;
    const out = this.output('silu', options.out, x.shape);
    await this.enqueue(() => this.rawSilu(x, out));
    return out;
  }

  async add(a: DeviceTensor, b: DeviceTensor, options: OutOption = {}): Promise<DeviceTensor> {
    const op = 'add';
    this.assertLive(op);
    const ta = checkTensor(op, 'a', a, this, -1) as T;
    const tb = checkTensor(op, 'b', b, this, -1) as T;
    const perChannel = ta.shape.length >= 2 && tb.shape.length >= 2 && tb.shape[0] === ta.shape[0] &&
      tb.shape[1] === ta.shape[1] && tb.shape.slice(2).every((d) => d === 1);
    if (!sameShape(ta.shape, tb.shape) && !perChannel)
      throw new RangeError(`${op}: argument 'b' has shape [${tb.shape.join(', ')}], expected [${ta.shape.join(', ')}] or [${ta.shape.slice(0, 2).join(', ')}] (one value per batch and channel)`);
    const out = this.output(op, options.out, ta.shape);
    await this.enqueue(() => this.rawAdd(ta, tb, out));
    return out;
  }

  async concat(inputs: readonly DeviceTensor[], options: OutOption = {}): Promise<DeviceTensor> {
    const op = 'concat';
    this.assertLive(op);
    if (!Array.isArray(inputs) || inputs.length === 0) throw new RangeError(`${op}: argument 'inputs' must be a non-empty array of tensors, got ${describe(inputs)}`);
    const xs = inputs.map((t, i) => checkTensor(op, `inputs[${i}]`, t, this, -1) as T);
    const first = xs[0].shape;
    if (first.length < 2) throw new RangeError(`${op}: argument 'inputs[0]' has shape [${first.join(', ')}], expected at least 2 dims [N, C, ...]`);
    xs.forEach((t, i) => {
      if (t.shape.length !== first.length || t.shape.some((d, k) => k !== 1 && d !== first[k]))
        throw new RangeError(`${op}: argument 'inputs[${i}]' has shape [${t.shape.join(', ')}], which differs from inputs[0] [${first.join(', ')}] outside dim 1`);
    });
    const outShape = first.slice();
    outShape[1] = xs.reduce((s, t) => s + t.shape[1], 0);
    const out = this.output(op, options.out, outShape);
    await this.enqueue(() => this.rawConcat(xs, out));
    return out;
  }

  async runOp(name: string, inputs: readonly DeviceTensor[], attrs: Readonly<Record<string, number | readonly number[]>>,
    outputs: readonly DeviceTensor[]): Promise<void> {
    if (typeof name !== 'string' || name.length === 0)
      throw new TypeError(`runOp: argument 'name' must be a non-empty string, got ${describe(name)}`);
    const op = name;
    this.assertLive(op);
    // Only the dtype conversion takes 16-bit tensors; every other op is float32 throughout.
    const anyDType = name === 'convert_dtype' || name === 'convert';
    const tensors = (arg: string, list: unknown): T[] => {
      if (!Array.isArray(list)) throw new TypeError(`${op}: argument '${arg}' must be an array of tensors, got ${describe(list)}`);
      return list.map((t, i) => opTensor(op, `${arg}[${i}]`, t, this, anyDType) as T);
    };
    const xs = tensors('inputs', inputs);
    const ys = tensors('outputs', outputs);
    if (attrs === undefined || attrs === null) attrs = {};
    if (typeof attrs !== 'object' || Array.isArray(attrs))
      throw new TypeError(`${op}: argument 'attrs' must be an object of numbers or number arrays, got ${describe(attrs)}`);
    const clean: Record<string, number[]> = {};
    for (const [key, value] of Object.entries(attrs)) {
      // Keys travel as text to the wasm C ABI ("key=1,2;key2=3"): identifiers only.
      if (!/^[A-Za-z_][A-Za-z0-9_]*$/.test(key)) throw new RangeError(`${op}: attribute name '${key}' is not an identifier`);
      const values = typeof value === 'number' ? [value] : value;
      if (!Array.isArray(values) || !values.every((v) => typeof v === 'number'))
        throw new TypeError(`${op}: attribute '${key}' must be a number or an array of numbers, got ${describe(value)}`);
      clean[key] = values.slice();
    }
    await this.enqueue(() => this.rawRunOp(name, xs, clean, ys));
  }

  async probePeakGflops(secondsPerRepeat = 0.2): Promise<number> {
    this.assertLive('probePeakGflops');
    if (typeof secondsPerRepeat !== 'number' || !(secondsPerRepeat > 0) || secondsPerRepeat > 60)
      throw new RangeError(`probePeakGflops: argument 'secondsPerRepeat' must be in (0, 60], got ${describe(secondsPerRepeat)}`);
    return this.enqueue(() => this.rawProbePeak(secondsPerRepeat));
  }

  async dispose(): Promise<void> {
    if (this.disposed) return;
    this.disposed = true;
    await this.queue.catch(() => undefined);
    await this.rawDispose();
  }

  protected assertLive(op: string): void {
    if (this.disposed) throw new TypeError(`${op}: the ${this.name} backend has been disposed`);
  }

  private output(op: string, out: DeviceTensor | undefined, shape: readonly number[]): T {
    return (checkOut(op, out, this, shape) as T | undefined) ?? this.allocate(shape, 'float32');
  }

  /** Runs `fn` after every op queued before it; a failed op does not block later ones. */
  async networkWeightShapes(specText: string): Promise<Array<[string, number[]]>> {
    this.assertLive('networkWeightShapes');
    if (typeof specText !== 'string') throw new TypeError(`networkWeightShapes: argument 'specText' must be a string, got ${describe(specText)}`);
    return this.enqueue(async () => this.rawNetworkWeightShapes(specText));
  }

  async createNetwork(specText: string, weights: ReadonlyMap<string, NetworkWeight>): Promise<NetworkHandle> {
    this.assertLive('createNetwork');
    if (typeof specText !== 'string') throw new TypeError(`createNetwork: argument 'specText' must be a string, got ${describe(specText)}`);
    if (!(weights instanceof Map)) throw new TypeError(`createNetwork: argument 'weights' must be a Map of named tensors, got ${describe(weights)}`);
    for (const [name, w] of weights)
      if (!['F32', 'F16', 'BF16'].includes(w?.dtype)) throw new TypeError(`createNetwork: weight '${name}' has dtype ${describe(w?.dtype)}, expected F32, F16 or BF16`);
    return this.networkHandle(await this.enqueue(() => this.rawCreateNetwork(specText, weights)));
  }

  // A method of its own so the handle's closures do not share a scope with createNetwork's `weights`: V8 keeps a
  // scope whole while any closure of it lives, and the wasm backend, which copies the weights into its heap, held
  // the host copy (64 MiB for the default UNet) for the network's life.
  private networkHandle(raw: RawNetwork): NetworkHandle {
    let disposed = false;
    const live = (op: string) => {
      if (disposed) throw new TypeError(`network.${op}: the network has been disposed`);
      this.assertLive(`network.${op}`);
    };
    return {
      entries: raw.entries,
      run: async (entry, inputs) => {
        live('run');
        checkNetworkInputs(raw.entries, entry, inputs);
        return this.enqueue(() => raw.run(entry, inputs));
      },
      stats: () => { live('stats'); return raw.stats(); },
      dispose: async () => {
        if (disposed) return;
        disposed = true;
        await this.enqueue(async () => raw.dispose());
      },
    };
  }

  private enqueue<R>(fn: () => Promise<R>): Promise<R> {
    const run = this.queue.then(fn, fn);
    this.queue = run.catch(() => undefined);
    return run;
  }
}

/** A live tensor of `owner`: float32 unless `anyDType` (runOp's dtype conversion). */
function opTensor(op: string, name: string, t: unknown, owner: object, anyDType: boolean): BaseTensor {
  if (!anyDType) return checkTensor(op, name, t, owner, -1);
  if (!(t instanceof BaseTensor) || t.owner !== owner)
    throw new TypeError(`${op}: argument '${name}' must be a tensor created by this backend, got ${describe(t)}`);
  if (t.disposed) throw new TypeError(`${op}: argument '${name}' has been disposed`);
  return t;
}

function paddingPair(op: string, padding: Conv3dOptions['padding']): { before: Triple; after: Triple } {
  if (typeof padding === 'object' && padding !== null && !Array.isArray(padding)) {
    const p = padding as { before: number | Triple; after: number | Triple };
    return { before: triple(op, 'padding.before', p.before, 0), after: triple(op, 'padding.after', p.after, 0) };
  }
  const both = triple(op, 'padding', padding, 0);
  return { before: both, after: both };
}
