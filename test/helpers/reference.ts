/**
 * Plain reference implementations (float64 accumulation, no blocking, no
 * tricks) that every backend's kernels are compared against, plus seeded
 * random data and error measures.
 */

/** mulberry32: small, seedable, good enough for test data. */
export function rng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** Normal(mean, std) samples; never all zeros, so a kernel that writes zeros fails. */
export function randn(n: number, seed: number, mean = 0, std = 1): Float32Array {
  const r = rng(seed);
  const out = new Float32Array(n);
  for (let i = 0; i < n; i++) {
    const u = Math.max(r(), 1e-12);
    out[i] = mean + std * Math.sqrt(-2 * Math.log(u)) * Math.cos(2 * Math.PI * r());
  }
  return out;
}

export const numel = (shape: readonly number[]) => shape.reduce((a, b) => a * b, 1);

/** One convolution of a spec: input and weight shapes, stride, padding before and after in each of D, H, W. */
export interface ConvCase {
  title: string;
  x: number[];
  w: number[];
  stride: [number, number, number];
  before: [number, number, number];
  after: [number, number, number];
}

export function conv3dRef(x: Float32Array, xs: readonly number[], w: Float32Array, ws: readonly number[], b: Float32Array | null,
  stride: readonly number[], before: readonly number[], after: readonly number[]): { data: Float32Array; shape: number[] } {
  const [n, c, d, h, wd] = xs;
  const [o, , kd, kh, kw] = ws;
  const od = Math.floor((d + before[0] + after[0] - kd) / stride[0]) + 1;
  const oh = Math.floor((h + before[1] + after[1] - kh) / stride[1]) + 1;
  const ow = Math.floor((wd + before[2] + after[2] - kw) / stride[2]) + 1;
  const y = new Float32Array(n * o * od * oh * ow);
  let idx = 0;
  for (let bn = 0; bn < n; bn++)
    for (let co = 0; co < o; co++)
      for (let z = 0; z < od; z++)
        for (let yy = 0; yy < oh; yy++)
          for (let xx = 0; xx < ow; xx++) {
            let s = b ? b[co] : 0;
            for (let ci = 0; ci < c; ci++)
              for (let a = 0; a < kd; a++) {
                const iz = z * stride[0] + a - before[0];
                if (iz < 0 || iz >= d) continue;
                for (let bb = 0; bb < kh; bb++) {
                  const iy = yy * stride[1] + bb - before[1];
                  if (iy < 0 || iy >= h) continue;
                  for (let cc = 0; cc < kw; cc++) {
                    const ix = xx * stride[2] + cc - before[2];
                    if (ix < 0 || ix >= wd) continue;
                    s += x[(((bn * c + ci) * d + iz) * h + iy) * wd + ix] * w[(((co * c + ci) * kd + a) * kh + bb) * kw + cc];
                  }
                }
              }
            y[idx++] = s;
          }
  return { data: y, shape: [n, o, od, oh, ow] };
}

export function groupNormRef(x: Float32Array, shape: readonly number[], groups: number, eps: number,
  gamma: Float32Array | null, beta: Float32Array | null, silu: boolean): Float32Array {
  const [n, c] = shape;
  const spatial = numel(shape) / (n * c);
  const per = c / groups;
  const y = new Float32Array(x.length);
  for (let b = 0; b < n; b++)
    for (let g = 0; g < groups; g++) {
      const start = (b * c + g * per) * spatial;
      const count = per * spatial;
      let mean = 0;
      for (let i = 0; i < count; i++) mean += x[start + i];
      mean /= count;
      let v = 0;
      for (let i = 0; i < count; i++) v += (x[start + i] - mean) ** 2;
      const rstd = 1 / Math.sqrt(v / count + eps);
      for (let ch = 0; ch < per; ch++) {
        const cc = g * per + ch;
        for (let s = 0; s < spatial; s++) {
          const i = start + ch * spatial + s;
          let val = (x[i] - mean) * rstd * (gamma ? gamma[cc] : 1) + (beta ? beta[cc] : 0);
          if (silu) val = siluRef(val);
          y[i] = val;
        }
      }
    }
  return y;
}

export function siluRef(v: number): number {
  return v / (1 + Math.exp(-v));
}

/** ||a - b|| / ||b||; NaN anywhere in `a` (a poisoned, unwritten element) gives Infinity. */
export function relL2(a: ArrayLike<number>, b: ArrayLike<number>): number {
  if (a.length !== b.length) throw new Error(`length ${a.length} != ${b.length}`);
  let num = 0;
  let den = 0;
  for (let i = 0; i < a.length; i++) {
    if (!Number.isFinite(a[i])) return Infinity;
    num += (a[i] - b[i]) ** 2;
    den += b[i] ** 2;
  }
  return Math.sqrt(num / Math.max(den, 1e-30));
}

/** Largest |a - b| / (atol + rtol |b|): <= 1 means every element is within tolerance. */
export function maxScaledError(a: ArrayLike<number>, b: ArrayLike<number>, atol: number, rtol: number): number {
  let worst = 0;
  for (let i = 0; i < a.length; i++) {
    if (!Number.isFinite(a[i])) return Infinity;
    worst = Math.max(worst, Math.abs(a[i] - b[i]) / (atol + rtol * Math.abs(b[i])));
  }
  return worst;
}

// ---------------------------------------------------------------------------
// References for the MONAI ops. Where PyTorch's float32 evaluation order is part of the contract
// (pooling sums, nearest-index rule, timestep embedding) the reference rounds each step with
// Math.fround exactly as PyTorch does; elsewhere it computes in float64.

/** AvgPool3d(2, 2) summing in PyTorch's (kd, kh, kw) order in float32, then / 8. */
export function avgPool3d2xRef(x: Float32Array, shape: readonly number[]): { data: Float32Array; shape: number[] } {
  const [n, c, d, h, w] = shape;
  const od = Math.floor(d / 2), oh = Math.floor(h / 2), ow = Math.floor(w / 2);
  const y = new Float32Array(n * c * od * oh * ow);
  let idx = 0;
  for (let p = 0; p < n * c; p++)
    for (let z = 0; z < od; z++)
      for (let yy = 0; yy < oh; yy++)
        for (let xx = 0; xx < ow; xx++) {
          let s = 0;
          for (let a = 0; a < 2; a++)
            for (let b = 0; b < 2; b++)
              for (let e = 0; e < 2; e++) s = Math.fround(s + x[((p * d + 2 * z + a) * h + 2 * yy + b) * w + 2 * xx + e]);
          y[idx++] = Math.fround(s / 8);
        }
  return { data: y, shape: [n, c, od, oh, ow] };
}

/**
 * PyTorch's legacy nearest source index (aten UpSample.h nearest_idx, no explicit scale):
 * identity and exact x2 special-cased, else scale = float(in) / float(out) in float32 and
 * src = min(floor(float(dst) * scale), in - 1).
 */
export function nearestIndexRef(dst: number, inSize: number, outSize: number): number {
  if (outSize === inSize) return dst;
  if (outSize === 2 * inSize) return dst >> 1;
  const scale = Math.fround(Math.fround(inSize) / Math.fround(outSize));
  return Math.min(Math.floor(Math.fround(dst * scale)), inSize - 1);
}

/** Nearest resize of [N, C, ...spatial] (1 to 3 spatial dims) to `outSpatial`. */
export function resizeNearestRef(x: Float32Array, shape: readonly number[], outSpatial: readonly number[]): Float32Array {
  const [n, c] = shape;
  const inS = [1, 1, 1], outS = [1, 1, 1];
  const sp = shape.length - 2;
  for (let i = 0; i < sp; i++) {
    inS[3 - sp + i] = shape[2 + i];
    outS[3 - sp + i] = outSpatial[i];
  }
  const y = new Float32Array(n * c * outS[0] * outS[1] * outS[2]);
  let idx = 0;
  for (let p = 0; p < n * c; p++)
    for (let z = 0; z < outS[0]; z++)
      for (let yy = 0; yy < outS[1]; yy++)
        for (let xx = 0; xx < outS[2]; xx++) {
          const sz = nearestIndexRef(z, inS[0], outS[0]), sy = nearestIndexRef(yy, inS[1], outS[1]), sx = nearestIndexRef(xx, inS[2], outS[2]);
          y[idx++] = x[((p * inS[0] + sz) * inS[1] + sy) * inS[2] + sx];
        }
  return y;
}

/** LayerNorm over the channels of [N, C, ...tokens] (biased variance), float64. */
export function layerNormChannelsRef(x: Float32Array, shape: readonly number[], eps: number,
  gamma: Float32Array | null, beta: Float32Array | null): Float64Array {
  const [n, c] = shape;
  const t = numel(shape) / (n * c);
  const y = new Float64Array(x.length);
  for (let b = 0; b < n; b++)
    for (let j = 0; j < t; j++) {
      const at = (ch: number) => (b * c + ch) * t + j;
      let mean = 0;
      for (let ch = 0; ch < c; ch++) mean += x[at(ch)];
      mean /= c;
      let v = 0;
      for (let ch = 0; ch < c; ch++) v += (x[at(ch)] - mean) ** 2;
      const rstd = 1 / Math.sqrt(v / c + eps);
      for (let ch = 0; ch < c; ch++) y[at(ch)] = (x[at(ch)] - mean) * rstd * (gamma ? gamma[ch] : 1) + (beta ? beta[ch] : 0);
    }
  return y;
}

/**
 * erfc in float64 to ~1e-15 relative: for |z| < 3 the all-positive series
 * erf(z) = 2/sqrt(pi) exp(-z^2) sum_n 2^n z^(2n+1) / (2n+1)!!, beyond it the continued fraction
 * erfc(z) = exp(-z^2)/sqrt(pi) / (z + (1/2)/(z + 1/(z + (3/2)/(z + ...)))).
 */
export function erfcRef(z: number): number {
  if (Number.isNaN(z)) return NaN;
  if (z < 0) return 2 - erfcRef(-z);
  if (z < 3) {
    let term = z, sum = z;
    for (let k = 1; term > 1e-18 * sum; k++) {
      term *= (2 * z * z) / (2 * k + 1);
      sum += term;
    }
    return 1 - (2 / Math.sqrt(Math.PI)) * Math.exp(-z * z) * sum;
  }
  if (z > 27) return 0;
  let f = z;
  for (let k = 120; k >= 1; k--) f = z + k / 2 / f;
  return Math.exp(-z * z) / Math.sqrt(Math.PI) / f;
}

/** Exact-erf GELU, x * Phi(x), in float64 (the negative tail through erfc, no cancellation). */
export function geluRef(x: number): number {
  if (x === Infinity) return Infinity;
  return x * 0.5 * erfcRef(-x / Math.SQRT2);
}

export function leakyReluRef(x: number, slope: number): number {
  return x > 0 ? x : x * slope;
}

/** GEGLU over channels: [N, 2C, ...] -> [N, C, ...] = value half * gelu(gate half), float64. */
export function gegluChannelsRef(x: Float32Array, shape: readonly number[]): Float64Array {
  const n = shape[0];
  const half = numel(shape) / n / 2;
  const y = new Float64Array(n * half);
  for (let b = 0; b < n; b++)
    for (let i = 0; i < half; i++) y[b * half + i] = x[b * 2 * half + i] * geluRef(x[b * 2 * half + half + i]);
  return y;
}

/**
 * Multi-head attention on channels-first sequences in float64: q [N, H*Dh, Tq], k [N, H*Dh, Tk],
 * v [N, H*Dv, Tk] -> [N, H*Dv, Tq], softmax(scale * q.k) over keys with the maximum subtracted.
 */
export function attentionRef(q: Float32Array, qShape: readonly number[], k: Float32Array, v: Float32Array,
  vShape: readonly number[], tk: number, heads: number, scale: number): Float64Array {
  const [n, cq, tq] = qShape;
  const cv = vShape[1];
  const dh = cq / heads, dv = cv / heads;
  const y = new Float64Array(n * cv * tq);
  const s = new Float64Array(tk);
  for (let b = 0; b < n; b++)
    for (let h = 0; h < heads; h++)
      for (let i = 0; i < tq; i++) {
        let m = -Infinity;
        for (let j = 0; j < tk; j++) {
          let dot = 0;
          for (let c = 0; c < dh; c++) dot += q[(b * cq + h * dh + c) * tq + i] * k[(b * cq + h * dh + c) * tk + j];
          s[j] = scale * dot;
          m = Math.max(m, s[j]);
        }
        let l = 0;
        for (let j = 0; j < tk; j++) {
          s[j] = Math.exp(s[j] - m);
          l += s[j];
        }
        for (let c = 0; c < dv; c++) {
          let acc = 0;
          for (let j = 0; j < tk; j++) acc += s[j] * v[(b * cv + h * dv + c) * tk + j];
          y[(b * cv + h * dv + c) * tq + i] = acc / l;
        }
      }
  return y;
}

/**
 * MONAI get_timestep_embedding in PyTorch's float32 steps: exponent = f32(-ln 1e4) * k,
 * freq = exp(exponent / half), arg = t * freq, [cos(arg), sin(arg)], zero-padded to an odd dim.
 */
export function timestepEmbeddingRef(t: Float32Array, dim: number): Float32Array {
  const half = Math.floor(dim / 2);
  const y = new Float32Array(t.length * dim);
  const negLog = Math.fround(-Math.log(10000));
  for (let b = 0; b < t.length; b++)
    for (let k = 0; k < half; k++) {
      const exponent = Math.fround(negLog * k);
      const freq = Math.fround(Math.exp(Math.fround(exponent / half)));
      const arg = Math.fround(t[b] * freq);
      y[b * dim + k] = Math.cos(arg);
      y[b * dim + half + k] = Math.sin(arg);
    }
  return y;
}

/** Embedding lookup of a label map: ids [N, 1, ...], table [rows, E] -> [N, E, ...]. */
export function embeddingChannelsRef(ids: Float32Array, idsShape: readonly number[], table: Float32Array, width: number): Float32Array {
  const n = idsShape[0];
  const spatial = numel(idsShape) / n;
  const y = new Float32Array(n * width * spatial);
  for (let b = 0; b < n; b++)
    for (let e = 0; e < width; e++)
      for (let p = 0; p < spatial; p++) y[(b * width + e) * spatial + p] = table[ids[b * spatial + p] * width + e];
  return y;
}

const f32Scratch = new Float32Array(1);
const u32Scratch = new Uint32Array(f32Scratch.buffer);

export function f32Bits(v: number): number {
  f32Scratch[0] = v;
  return u32Scratch[0];
}

export function bitsToF32(bits: number): number {
  u32Scratch[0] = bits >>> 0;
  return f32Scratch[0];
}

/**
 * float32 -> 16-bit float with `mant` mantissa bits and minimum normal exponent `emin`, round to
 * nearest even, by exact float64 arithmetic (independent of the core's bit tricks). Returns the
 * encoded bits; NaN gives `nanBits(sign)`.
 */
function toSmallFloat(v: number, mant: number, emin: number, emaxBits: number, nanBits: (sign: number) => number): number {
  const v32 = Math.fround(v);
  const sign = f32Bits(v32) >>> 31;
  const signBit = sign << 15;
  if (Number.isNaN(v32)) return nanBits(sign);
  const a = Math.abs(v32);
  const infBits = signBit | (emaxBits << mant);
  if (a === Infinity) return infBits;
  if (a === 0) return signBit;
  const e = Math.floor(Math.log2(a));
  const exp = 2 ** e > a ? e - 1 : 2 ** (e + 1) <= a ? e + 1 : e;  // exact binade, log2 rounding aside
  const q = 2 ** (Math.max(exp, emin) - mant);                       // quantum of the target format
  const r = a / q;                                                   // exact in float64
  let m = Math.floor(r);
  const frac = r - m;
  if (frac > 0.5 || (frac === 0.5 && m % 2 === 1)) m += 1;
  const value = m * q;
  if (value < 2 ** emin) return signBit | m;                          // subnormal (m < 2^mant)
  const ve = Math.floor(Math.log2(value));
  const vexp = 2 ** ve > value ? ve - 1 : 2 ** (ve + 1) <= value ? ve + 1 : ve;
  const bias = emin === -14 ? 15 : 127;
  const biased = vexp + bias;
  if (biased >= emaxBits) return infBits;
  return signBit | (biased << mant) | (value / 2 ** (vexp - mant) - 2 ** mant);
}

/** float32 -> IEEE half bits, as c10::Half (NaN -> sign | 0x7E00). */
export function f32ToF16Ref(v: number): number {
  return toSmallFloat(v, 10, -14, 31, (sign) => (sign << 15) | 0x7e00);
}

/** float32 -> bfloat16 bits, as c10::BFloat16 round_to_nearest_even (NaN -> 0x7FC0). */
export function f32ToBf16Ref(v: number): number {
  return toSmallFloat(v, 7, -126, 255, () => 0x7fc0);
}

/** IEEE half bits -> float32 bits (exact, NaN payload kept). */
export function f16ToF32BitsRef(h: number): number {
  const sign = (h & 0x8000) << 16;
  const e = (h >> 10) & 0x1f, m = h & 0x3ff;
  if (e === 31) return (sign | 0x7f800000 | (m << 13)) >>> 0;
  if (e === 0) return (sign | f32Bits(m * 2 ** -24)) >>> 0;
  return (sign | ((e + 112) << 23) | (m << 13)) >>> 0;
}

/** bfloat16 bits -> float32 bits. */
export function bf16ToF32BitsRef(h: number): number {
  return (h << 16) >>> 0;
}

/** The first index where two arrays differ bit for bit (NaN equals NaN, 0 differs from -0), or -1 where none does. */
export function firstDifference(a: Float32Array, b: Float32Array): number {
  for (let i = 0; i < Math.min(a.length, b.length); i++) if (!Object.is(a[i], b[i])) return i;
  return a.length === b.length ? -1 : Math.min(a.length, b.length);
}
