/**
 * Classifier-free guidance (Ho & Salimans 2022, "Classifier-Free Diffusion Guidance", eq. 6) as the thesis samples
 * its mask LDM (MONAI-COMPAT.md 1.3, T:src/evaluation.py DiffusionModelEvaluator.get_synthetic_output):
 *
 *   - the volume condition enters only as cross-attention context [B, 1, 2] = [normalised volume, flag];
 *   - the batch is doubled: first half the condition (flag 1), second half the null condition [u, 0], where u is
 *     ONE torch.rand(()) scalar for the whole sampling call (the model was trained with 20 % of the contexts
 *     replaced by [uniform random, 0]);
 *   - eps = eps_uncond + w * (eps_cond - eps_uncond); w = 1 is a single conditional pass (no doubling).
 *
 * MONAI core's DiffusionInferer (cfg=...) instead orders the doubled batch [uncond, cond] and fills the null
 * context with cfg_fill_value = -1 everywhere; that does not match the thesis model, but bundles trained that way
 * need it, so both the order and the null-context convention are options.
 *
 * Randomness belongs to the caller: the thesis's u is passed in, never drawn here.
 */
import type { NetworkTensor } from '../backend/types.js';

const f32 = Math.fround;

/** Which half of the doubled batch is the conditional one: the thesis's [cond, uncond] or MONAI core's [uncond, cond]. */
export type GuidanceOrder = 'cond-first' | 'uncond-first';
export const GUIDANCE_ORDERS: readonly GuidanceOrder[] = ['cond-first', 'uncond-first'];

/**
 * How the null (unconditional) context is built:
 *   - thesis: [u, 0] per token (volume slot u, flag 0), u one scalar per sampling call, usually uniform in [0, 1);
 *   - monai:  every element `fillValue` (MONAI core cfg_fill_value, default -1);
 *   - vector: a configured D-vector repeated for every batch item and token.
 */
export type NullContextSpec =
  | { convention: 'thesis'; u: number }
  | { convention: 'monai'; fillValue?: number }
  | { convention: 'vector'; vector: ArrayLike<number> };

function show(v: unknown): string {
  const s = JSON.stringify(v);
  return s === undefined ? String(v) : s;
}

/** Checks a context tensor is [B, S, D] float32 of matching length; returns its dims. */
export function checkContext(owner: string, name: string, ctx: unknown): [number, number, number] {
  const c = ctx as NetworkTensor | null | undefined;
  if (c === null || typeof c !== 'object' || c.shape === null || typeof c.shape !== 'object' || typeof c.shape.length !== 'number')
    throw new TypeError(`${owner}: argument '${name}' must be a tensor { shape: [B, S, D], data: Float32Array }, got ${show(ctx)}`);
  if (!(c.data instanceof Float32Array))
    throw new TypeError(`${owner}: argument '${name}'.data must be a Float32Array, got ${(c.data as object)?.constructor?.name ?? typeof c.data}`);
  const shape = Array.from(c.shape);
  if (shape.length !== 3 || !shape.every((d) => Number.isSafeInteger(d) && d >= 1))
    throw new RangeError(`${owner}: argument '${name}' must have shape [B, S, D] (batch, tokens, cross_attention_dim), got [${shape.join(', ')}]`);
  const n = shape[0] * shape[1] * shape[2];
  if (c.data.length !== n)
    throw new RangeError(`${owner}: argument '${name}' has ${c.data.length} elements, but its shape [${shape.join(', ')}] needs ${n}`);
  return shape as [number, number, number];
}

/**
 * The null context for `batch` items of `tokens` tokens of dimension `dim` ([batch, tokens, dim], float32).
 * The thesis convention needs dim = 2 ([volume, flag]).
 */
export function nullContext(spec: NullContextSpec, shape: readonly [number, number, number] | readonly number[]): NetworkTensor {
  const owner = 'nullContext';
  if (!Array.isArray(shape) || shape.length !== 3 || !shape.every((d) => Number.isSafeInteger(d) && d >= 1))
    throw new RangeError(`${owner}: argument 'shape' must be [B, S, D] of positive integers, got ${show(shape)}`);
  const [b, s, d] = shape;
  const data = new Float32Array(b * s * d);
  if (spec === null || typeof spec !== 'object')
    throw new TypeError(`${owner}: argument 'spec' must be { convention: 'thesis' | 'monai' | 'vector', ... }, got ${show(spec)}`);
  switch (spec.convention) {
    case 'thesis': {
      if (typeof spec.u !== 'number' || !Number.isFinite(spec.u))
        throw new TypeError(`${owner}: spec.u must be a finite number (the thesis's one torch.rand(()) per sampling call), got ${show(spec.u)}`);
      if (d !== 2) throw new RangeError(`${owner}: the thesis null context [u, 0] needs cross_attention_dim 2, got shape [${shape.join(', ')}]`);
      for (let i = 0; i < b * s; i++) {
        data[2 * i] = spec.u;
        data[2 * i + 1] = 0;
      }
      break;
    }
    case 'monai': {
      const fill = spec.fillValue ?? -1;
      if (typeof fill !== 'number' || !Number.isFinite(fill))
        throw new TypeError(`${owner}: spec.fillValue must be a finite number (MONAI cfg_fill_value), got ${show(fill)}`);
      data.fill(fill);
      break;
    }
    case 'vector': {
      const v = spec.vector;
      if (v === null || typeof v !== 'object' || typeof v.length !== 'number')
        throw new TypeError(`${owner}: spec.vector must be an array of ${d} numbers, got ${show(v)}`);
      if (v.length !== d) throw new RangeError(`${owner}: spec.vector has ${v.length} elements, expected ${d} (the context dimension)`);
      for (let j = 0; j < d; j++)
        if (typeof v[j] !== 'number' || !Number.isFinite(v[j])) throw new TypeError(`${owner}: spec.vector[${j}] must be a finite number, got ${show(v[j])}`);
      for (let i = 0; i < b * s; i++) for (let j = 0; j < d; j++) data[i * d + j] = v[j];
      break;
    }
    default:
      throw new RangeError(`${owner}: spec.convention must be 'thesis', 'monai' or 'vector', got ${show((spec as { convention?: unknown }).convention)}`);
  }
  return { shape: [b, s, d], data };
}

/** Repeats a [1, S, D] tensor to [B, S, D] (a [B, S, D] one is returned as is). */
function broadcastBatch(owner: string, name: string, ctx: NetworkTensor, batch: number): Float32Array {
  const [b, s, d] = checkContext(owner, name, ctx);
  if (b === batch) return ctx.data;
  if (b !== 1) throw new RangeError(`${owner}: argument '${name}' has batch ${b}, expected ${batch} or 1`);
  const out = new Float32Array(batch * s * d);
  for (let i = 0; i < batch; i++) out.set(ctx.data, i * s * d);
  return out;
}

/**
 * The context of the doubled batch: [cond; uncond] (thesis, default) or [uncond; cond] (MONAI core), shape
 * [2B, S, D]. `nullCtx` may have batch 1 (repeated) or B; it must have the condition's S and D.
 */
export function guidedContext(cond: NetworkTensor, nullCtx: NetworkTensor, order: GuidanceOrder = 'cond-first'): NetworkTensor {
  const owner = 'guidedContext';
  const [b, s, d] = checkContext(owner, 'cond', cond);
  const [, ns, nd] = checkContext(owner, 'nullContext', nullCtx);
  if (ns !== s || nd !== d)
    throw new RangeError(`${owner}: argument 'nullContext' has shape [${Array.from(nullCtx.shape).join(', ')}], expected [${b} or 1, ${s}, ${d}] like the condition`);
  if (!GUIDANCE_ORDERS.includes(order)) throw new RangeError(`${owner}: argument 'order' must be 'cond-first' or 'uncond-first', got ${show(order)}`);
  const uncond = broadcastBatch(owner, 'nullContext', nullCtx, b);
  const condData = cond.data.subarray(0, b * s * d);
  const data = new Float32Array(2 * b * s * d);
  data.set(order === 'cond-first' ? condData : uncond, 0);
  data.set(order === 'cond-first' ? uncond : condData, b * s * d);
  return { shape: [2 * b, s, d], data };
}

/** Throws a RangeError naming 'guidanceScale' unless w is usable (finite, >= 0; != 1 only with a null context). */
export function checkGuidanceScale(owner: string, w: unknown, hasUnconditionalPath: boolean): asserts w is number {
  if (typeof w !== 'number' || !Number.isFinite(w)) throw new TypeError(`${owner}: argument 'guidanceScale' must be a finite number, got ${show(w)}`);
  if (w < 0) throw new RangeError(`${owner}: argument 'guidanceScale' must be >= 0 (1 = conditional only, > 1 = guided), got ${w}`);
  if (w !== 1 && !hasUnconditionalPath)
    throw new RangeError(`${owner}: argument 'guidanceScale' is ${w}, but there is no unconditional path (no 'nullContext' and/or no 'context'); only guidanceScale 1 (a single conditional pass) works without one`);
}

/**
 * eps = eps_uncond + w * (eps_cond - eps_uncond), elementwise in float32 with torch's operation order (each op
 * rounded: the difference, the product with float32(w), the sum). `eps` is the network output of the doubled
 * batch ([cond; uncond] or [uncond; cond] per `order`); the result is one half's length. w = 1 returns the
 * conditional half unchanged (bitwise what a single conditional pass gives only up to the network's batch
 * independence; the sampler avoids the doubled pass entirely for w = 1).
 */
export function combineGuidance(eps: Float32Array, w: number, order: GuidanceOrder = 'cond-first'): Float32Array {
  const owner = 'combineGuidance';
  if (!(eps instanceof Float32Array)) throw new TypeError(`${owner}: argument 'eps' must be a Float32Array, got ${(eps as object)?.constructor?.name ?? typeof eps}`);
  if (eps.length === 0 || eps.length % 2 !== 0) throw new RangeError(`${owner}: argument 'eps' has ${eps.length} elements; the doubled batch needs a positive even count`);
  checkGuidanceScale(owner, w, true);
  if (!GUIDANCE_ORDERS.includes(order)) throw new RangeError(`${owner}: argument 'order' must be 'cond-first' or 'uncond-first', got ${show(order)}`);
  const n = eps.length / 2;
  const c = order === 'cond-first' ? eps.subarray(0, n) : eps.subarray(n);
  const u = order === 'cond-first' ? eps.subarray(n) : eps.subarray(0, n);
  const out = new Float32Array(n);
  if (w === 1) {
    out.set(c);
    return out;
  }
  const wf = f32(w);
  for (let i = 0; i < n; i++) out[i] = u[i] + f32(wf * f32(c[i] - u[i])); // the store rounds the sum
  return out;
}
