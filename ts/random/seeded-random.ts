/**
 * The project's one JavaScript-side pseudo-random generator, for the parts that draw parameters on the host:
 * label augmentation, the SynthSeg-style synthesizer, volume distributions, the thesis' null-context scalar.
 * Diffusion noise does NOT come from here: it is Philox in the C++ core (random/noise.ts), bit-identical on every
 * backend.
 *
 * Generator: xoshiro128** (Blackman & Vigna 2018), 32-bit state words, period 2^128 - 1; its 128-bit state is
 * filled by SplitMix32 from a 32-bit hash of the stream key. Why hand-written: the numbers must be a function of
 * (seed, stream) alone and stay the same across Node versions and machines; npm's seedable PRNGs either wrap
 * Math.random-style globals or do not let a stream be derived from a name, and the whole thing is 40 lines.
 *
 * Streams: `seededRandom(seed, 'augment', 'training_seg_01', 3)` and any other key tuple give independent sequences;
 * the same tuple gives the same sequence. Keys are hashed with FNV-1a over their UTF-8 bytes (numbers as decimal
 * strings), separated by a 0x1f byte so ('ab', 'c') and ('a', 'bc') differ.
 */

const FNV_OFFSET = 0x811c9dc5;
const FNV_PRIME = 0x01000193;

function fnv1a(h: number, bytes: Uint8Array): number {
  for (const b of bytes) h = Math.imul(h ^ b, FNV_PRIME) >>> 0;
  return h;
}

const encoder = new TextEncoder();

/** 32-bit hash of a key tuple (FNV-1a, parts separated by 0x1f). */
export function hashKey(parts: ReadonlyArray<string | number>): number {
  let h = FNV_OFFSET;
  for (const p of parts) {
    if (typeof p === 'number' && !Number.isFinite(p)) throw new RangeError(`seededRandom: stream key parts must be finite numbers or strings, got ${p}`);
    h = fnv1a(h, encoder.encode(String(p)));
    h = fnv1a(h, Uint8Array.of(0x1f));
  }
  return h;
}

/** SplitMix32 step (the 32-bit variant of Steele et al.'s SplitMix), used only to expand a hash into state. */
function splitMix32(state: { s: number }): number {
  state.s = (state.s + 0x9e3779b9) >>> 0;
  let z = state.s;
  z = Math.imul(z ^ (z >>> 16), 0x85ebca6b) >>> 0;
  z = Math.imul(z ^ (z >>> 13), 0xc2b2ae35) >>> 0;
  return (z ^ (z >>> 16)) >>> 0;
}

const rotl = (x: number, k: number) => ((x << k) | (x >>> (32 - k))) >>> 0;

export class SeededRandom {
  private a: number;
  private b: number;
  private c: number;
  private d: number;
  private spareNormal: number | null = null;

  constructor(hash: number) {
    const st = { s: hash >>> 0 };
    this.a = splitMix32(st);
    this.b = splitMix32(st);
    this.c = splitMix32(st);
    this.d = splitMix32(st);
    if ((this.a | this.b | this.c | this.d) === 0) this.a = 1; // the all-zero state is the generator's one fixed point
  }

  /** Next raw 32-bit output of xoshiro128**. */
  nextUint32(): number {
    const result = Math.imul(rotl(Math.imul(this.b, 5) >>> 0, 7), 9) >>> 0;
    const t = (this.b << 9) >>> 0;
    this.c = (this.c ^ this.a) >>> 0;
    this.d = (this.d ^ this.b) >>> 0;
    this.b = (this.b ^ this.c) >>> 0;
    this.a = (this.a ^ this.d) >>> 0;
    this.c = (this.c ^ t) >>> 0;
    this.d = rotl(this.d, 11);
    return result;
  }

  /** Uniform in [0, 1) with 53 random bits. */
  next(): number {
    const hi = this.nextUint32() >>> 5; // 27 bits
    const lo = this.nextUint32() >>> 6; // 26 bits
    return (hi * 67108864 + lo) / 9007199254740992;
  }

  /** Uniform in [lo, hi). */
  uniform(lo: number, hi: number): number {
    return lo + (hi - lo) * this.next();
  }

  /** Integer uniform in [0, n). */
  int(n: number): number {
    if (!Number.isSafeInteger(n) || n < 1) throw new RangeError(`SeededRandom.int: n must be a positive integer, got ${n}`);
    return Math.floor(this.next() * n);
  }

  /** Standard normal (Box-Muller; the second value of each pair is kept for the next call). */
  normal(mean = 0, std = 1): number {
    if (this.spareNormal !== null) {
      const z = this.spareNormal;
      this.spareNormal = null;
      return mean + std * z;
    }
    const u1 = 1 - this.next(); // (0, 1]: log stays finite
    const u2 = this.next();
    const r = Math.sqrt(-2 * Math.log(u1));
    this.spareNormal = r * Math.sin(2 * Math.PI * u2);
    return mean + std * r * Math.cos(2 * Math.PI * u2);
  }
}

/**
 * A generator for the stream named by (seed, ...key). `seed` must be a safe integer (any sign); it is hashed with
 * the key, so nearby seeds give unrelated streams.
 */
export function seededRandom(seed: number, ...key: Array<string | number>): SeededRandom {
  if (!Number.isSafeInteger(seed)) throw new RangeError(`seededRandom: seed must be a safe integer, got ${seed}`);
  return new SeededRandom(hashKey([seed, ...key]));
}
