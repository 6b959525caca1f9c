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
