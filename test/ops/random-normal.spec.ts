/**
 * random_normal: counter-based N(0, 1) noise (Philox4x32-10 + Box-Muller in double with the core's own
 * log/sin/cos), which must be bit-identical on every backend for the same (seed, stream, offset).
 * Besides the cross-backend comparison, every backend is checked bit for bit against a plain-JS port
 * of the same algorithm below (JS numbers are IEEE doubles with no FMA contraction, so the port
 * reproduces the C++ double arithmetic exactly), and the raw generator against Random123's
 * known-answer vectors.
 */
import test from 'ava';
import { eachBackend, poisoned, testBackends } from '../helpers/backends.js';
import { erfcRef } from '../helpers/reference.js';
import type { Backend } from '../../ts/backend/types.js';

// ---- reference port ----------------------------------------------------------------------------

const M0 = 0xd2511f53n, M1 = 0xcd9e8d57n, W0 = 0x9e3779b9, W1 = 0xbb67ae85;

function philoxRef(counter: readonly number[], key: readonly number[]): number[] {
  let [c0, c1, c2, c3] = counter.map((v) => v >>> 0);
  let [k0, k1] = key.map((v) => v >>> 0);
  for (let r = 0; r < 10; r++) {
    if (r > 0) {
      k0 = (k0 + W0) >>> 0;
      k1 = (k1 + W1) >>> 0;
    }
    const p0 = M0 * BigInt(c0), p1 = M1 * BigInt(c2);
    const hi0 = Number(p0 >> 32n), lo0 = Number(p0 & 0xffffffffn);
    const hi1 = Number(p1 >> 32n), lo1 = Number(p1 & 0xffffffffn);
    [c0, c1, c2, c3] = [(hi1 ^ c1 ^ k0) >>> 0, lo1, (hi0 ^ c3 ^ k1) >>> 0, lo0];
  }
  return [c0, c1, c2, c3];
}

const dv = new DataView(new ArrayBuffer(8));

function logRef(x: number): number {
  dv.setFloat64(0, x);
  const hiWord = dv.getUint32(0);
  let e = ((hiWord >>> 20) & 0x7ff) - 1023;
  dv.setUint32(0, (hiWord & 0x000fffff) | 0x3ff00000);
  let m = dv.getFloat64(0);
  if (m > 1.4142135623730951) {
    m *= 0.5;
    e += 1;
  }
  const s = (m - 1) / (m + 1), z = s * s;
  let p = 1 / 25;
  for (const c of [23, 21, 19, 17, 15, 13, 11, 9, 7, 5, 3]) p = p * z + 1 / c;
  const logM = 2 * s + 2 * s * (z * p);
  return e * 6.93147180369123816490e-01 + (e * 1.90821492927058770002e-10 + logM);
}

function sinCos2PiRef(t: number): [number, number] {
  const q = Math.floor(t * 4 + 0.5);
  const r = t - q * 0.25;
  const k = q & 3;
  const a = r * 6.28318530717958647692, z = a * a;
  const fact = (n: number) => { let f = 1; for (let i = 2; i <= n; i++) f *= i; return f; };
  let ps = -1 / fact(17);
  for (const n of [15, 13, 11, 9, 7, 5, 3]) ps = ps * z + ((n - 1) / 2 % 2 === 1 ? 1 : -1) / fact(n);
  const s = a - a * (z * ps);
  let pc = 1 / fact(18);
  for (const n of [16, 14, 12, 10, 8, 6, 4, 2]) pc = pc * z + (n / 2 % 2 === 1 ? 1 : -1) / fact(n);
  const c = 1 - z * pc;
  return k === 0 ? [s, c] : k === 1 ? [c, -s] : k === 2 ? [-s, -c] : [-c, s];
}

/** random_normal in plain JS: sample `offset + i` of stream (seed, stream), i < n. */
function randomNormalRef(seed: bigint, stream: number, offset: number, n: number): Float32Array {
  const key = [Number(seed & 0xffffffffn), Number(seed >> 32n)];
  const out = new Float32Array(n);
  const st = BigInt(stream);
  for (let i = 0; i < n; i++) {
    const g = BigInt(offset + i), block = g >> 2n, word = Number(g & 3n);
    const w = philoxRef([Number(block & 0xffffffffn), Number(block >> 32n), Number(st & 0xffffffffn), Number(st >> 32n)], key);
    const pair = word >> 1;
    const u1 = (w[2 * pair] + 0.5) * 2 ** -32, u2 = (w[2 * pair + 1] + 0.5) * 2 ** -32;
    const radius = Math.sqrt(-2 * logRef(u1));
    const [sn, cs] = sinCos2PiRef(u2);
    out[i] = radius * ((word & 1) === 0 ? cs : sn);
  }
  return out;
}

// ---- helpers ------------------------------------------------------------------------------------

interface Draw { seed?: bigint; stream?: number; offset?: number }

async function draw(backend: Backend, shape: readonly number[], { seed = 0n, stream = 0, offset = 0 }: Draw): Promise<Float32Array> {
  const out = poisoned(backend, shape);
  await backend.runOp('random_normal', [], {
    seed_hi: Number(seed >> 32n), seed_lo: Number(seed & 0xffffffffn), stream, offset,
  }, [out]);
  return out.read() as Float32Array;
}

const bits = (a: Float32Array) => new Uint32Array(a.buffer, a.byteOffset, a.length);

function firstBitDifference(a: Float32Array, b: Float32Array): string | null {
  if (a.length !== b.length) return `lengths ${a.length} vs ${b.length}`;
  const x = bits(a), y = bits(b);
  for (let i = 0; i < x.length; i++)
    if (x[i] !== y[i]) return `element ${i}: ${a[i]} (0x${x[i].toString(16)}) vs ${b[i]} (0x${y[i].toString(16)})`;
  return null;
}

const SEED = 0x0123456789abcdefn;

// ---- (1) Philox4x32-10 known answers ---------------------------------------------------------

// Random123 kat_vectors, "philox4x32 10" lines: counter[4] key[2] -> expected[4].
const KAT: Array<[number[], number[], number[]]> = [
  [[0, 0, 0, 0], [0, 0], [0x6627e8d5, 0xe169c58d, 0xbc57ac4c, 0x9b00dbd8]],
  [[0xffffffff, 0xffffffff, 0xffffffff, 0xffffffff], [0xffffffff, 0xffffffff], [0x408f276d, 0x41c83b0e, 0xa20bc7c6, 0x6d5451fd]],
  [[0x243f6a88, 0x85a308d3, 0x13198a2e, 0x03707344], [0xa4093822, 0x299f31d0], [0xd16cfe09, 0x94fdcceb, 0x5001e420, 0x24126ea1]],
];

test('the JS reference Philox matches the Random123 known answers', (t) => {
  for (const [ctr, key, want] of KAT) t.deepEqual(philoxRef(ctr, key), want);
});

eachBackend('philox4x32 reproduces the Random123 known-answer vectors', async (t, backend) => {
  for (const [counter, key, want] of KAT) {
    const out = poisoned(backend, [8]);
    await backend.runOp('philox4x32', [], { counter, key }, [out]);
    const y = out.read() as Float32Array;
    const words = [0, 1, 2, 3].map((j) => ((y[2 * j] * 65536) + y[2 * j + 1]) >>> 0);
    t.deepEqual(words.map((w) => w.toString(16)), want.map((w) => w.toString(16)));
  }
});

// ---- (2) identical bits everywhere, and equal to the reference ----------------------------------

eachBackend('random_normal matches the JS reference bit for bit (odd sizes, offsets, 64-bit seed/stream)', async (t, backend) => {
  const cases: Array<Draw & { n: number }> = [
    { n: 1, seed: 0n, stream: 0, offset: 0 },
    { n: 4099, seed: SEED, stream: 7, offset: 0 },
    { n: 1001, seed: 0xffffffffffffffffn, stream: 2 ** 40 + 3, offset: 3 },
    { n: 515, seed: 42n, stream: 1, offset: 2 ** 52 + 1 },
  ];
  for (const { n, ...d } of cases) {
    const got = await draw(backend, [n], d);
    const diff = firstBitDifference(got, randomNormalRef(d.seed!, d.stream!, d.offset!, n));
    t.is(diff, null, `n=${n} seed=${d.seed} stream=${d.stream} offset=${d.offset}`);
  }
});

test('random_normal gives the same bytes on every backend (native ISAs, wasm variants)', async (t) => {
  const backends = testBackends();
  if (backends.length === 0) return t.pass('no backend built');
  const shape = [2, 3, 17, 19, 23];
  let first: { label: string; data: Float32Array } | null = null;
  for (const b of backends) {
    const backend = await b.create();
    try {
      const data = await draw(backend, shape, { seed: SEED, stream: 5, offset: 12345 });
      if (!first) first = { label: b.label, data };
      else t.is(firstBitDifference(first.data, data), null, `${b.label} vs ${first.label}`);
    } finally {
      await backend.dispose();
    }
  }
  t.pass();
});

// A frozen checksum of the algorithm's output: if this changes, every stored seed regenerates
// different samples, so it must only ever change deliberately.
eachBackend('random_normal output is frozen (golden values)', async (t, backend) => {
  const got = await draw(backend, [8], { seed: SEED, stream: 3, offset: 10 });
  t.deepEqual(Array.from(bits(got), (v) => v.toString(16)), GOLDEN);
});
const GOLDEN = ['3f5b7015', '3f0bfe4b', 'bd4c461e', 'beadaf1e', '3e3d5c1c', 'bf2fadbe', '3e57bddb', 'beca1750'];

// ---- (3) any subrange regenerates alone ---------------------------------------------------------

eachBackend('random_normal: y[a:b] drawn from offset a equals that slice of a larger draw', async (t, backend) => {
  const n = 70001;  // more than one work chunk, so thread splits are covered
  const whole = await draw(backend, [n], { seed: SEED, stream: 2, offset: 0 });
  for (const [a, b] of [[0, 1], [1, 6], [3, 4], [5, 9000], [16383, 16390], [16384, 50001], [69999, 70001]]) {
    const part = await draw(backend, [b - a], { seed: SEED, stream: 2, offset: a });
    t.is(firstBitDifference(part, whole.subarray(a, b)), null, `[${a}, ${b})`);
  }
});

// ---- (4) seeds and streams are independent ------------------------------------------------------

eachBackend('random_normal: different streams and seeds give different noise', async (t, backend) => {
  const n = 4096;
  const draws = [
    await draw(backend, [n], { seed: SEED, stream: 0 }),
    await draw(backend, [n], { seed: SEED, stream: 1 }),
    await draw(backend, [n], { seed: SEED + 1n, stream: 0 }),
    await draw(backend, [n], { seed: SEED ^ (1n << 40n), stream: 0 }),
    await draw(backend, [n], { seed: SEED, stream: 2 ** 33 }),
    await draw(backend, [n], { seed: SEED, stream: 0, offset: n }),
  ];
  for (let i = 0; i < draws.length; i++)
    for (let j = i + 1; j < draws.length; j++) {
      let same = 0, dot = 0;
      for (let k = 0; k < n; k++) {
        if (draws[i][k] === draws[j][k]) same++;
        dot += draws[i][k] * draws[j][k];
      }
      t.true(same <= 2, `draws ${i} and ${j} share ${same} values`);
      t.true(Math.abs(dot / n) < 0.08, `draws ${i} and ${j} correlate: ${dot / n}`);
    }
});

eachBackend('random_normal rejects bad attributes by name', async (t, backend) => {
  const y = backend.tensor([4]);
  await t.throwsAsync(backend.runOp('random_normal', [], { seed_lo: 2 ** 32 }, [y]), { instanceOf: RangeError, message: /random_normal: attribute 'seed_lo' must hold integers in \[0, 4294967295\]/ });
  await t.throwsAsync(backend.runOp('random_normal', [], { seed_hi: -1 }, [y]), { instanceOf: RangeError, message: /attribute 'seed_hi'/ });
  await t.throwsAsync(backend.runOp('random_normal', [], { offset: 0.5 }, [y]), { instanceOf: RangeError, message: /attribute 'offset'/ });
  await t.throwsAsync(backend.runOp('random_normal', [], { stream: 2 ** 53 }, [y]), { instanceOf: RangeError, message: /attribute 'stream'/ });
  await t.throwsAsync(backend.runOp('random_normal', [], { seed: 1 }, [y]), { instanceOf: RangeError, message: /unknown attribute 'seed' \(accepted: seed_hi, seed_lo, stream, offset\)/ });
  await t.throwsAsync(backend.runOp('random_normal', [y], {}, [y]), { instanceOf: RangeError, message: /random_normal: takes 0 inputs, got 1/ });
  await t.throwsAsync(backend.runOp('philox4x32', [], { counter: [0, 0, 0], key: [0, 0] }, [backend.tensor([8])]), { instanceOf: RangeError, message: /attribute 'counter' must hold 4 values/ });
  await t.throwsAsync(backend.runOp('philox4x32', [], { counter: [0, 0, 0, 0], key: [0, 0] }, [backend.tensor([4])]), { instanceOf: RangeError, message: /philox4x32: argument 'out'/ });
});

// ---- (5) statistics ------------------------------------------------------------------------------

eachBackend('random_normal statistics over 1e6 samples: moments, KS against the normal CDF, tails', async (t, backend) => {
  const n = 1_000_000;
  const x = await draw(backend, [n], { seed: SEED, stream: 11, offset: 0 });
  let sum = 0, sq = 0, m3 = 0, m4 = 0, zeros = 0, bad = 0, maxAbs = 0;
  for (let i = 0; i < n; i++) {
    const v = x[i];
    if (v === 0) zeros++;
    if (!Number.isFinite(v)) bad++;
    sum += v;
    sq += v * v;
    m3 += v * v * v;
    m4 += v * v * v * v;
    maxAbs = Math.max(maxAbs, Math.abs(v));
  }
  const mean = sum / n, std = Math.sqrt(sq / n - mean * mean);
  t.is(zeros, 0, 'exact zeros');
  t.is(bad, 0, 'non-finite values');
  t.true(Math.abs(mean) < 0.005, `mean ${mean}`);
  t.true(Math.abs(std - 1) < 0.005, `std ${std}`);
  t.true(Math.abs(m3 / n) < 0.02, `third moment ${m3 / n}`);
  t.true(Math.abs(m4 / n - 3) < 0.05, `fourth moment ${m4 / n}`);
  t.true(maxAbs > 4 && maxAbs < 6.8, `max |x| ${maxAbs} (Box-Muller with u >= 2^-33 caps at 6.77)`);
  // Kolmogorov-Smirnov: sup |F_n - Phi| with the 1e-3 critical value 1.95 / sqrt(n).
  const sorted = Float64Array.from(x).sort();
  let d = 0;
  for (let i = 0; i < n; i++) {
    const cdf = 0.5 * erfcRef(-sorted[i] / Math.SQRT2);
    d = Math.max(d, Math.abs(cdf - i / n), Math.abs((i + 1) / n - cdf));
  }
  t.true(d < 1.95 / Math.sqrt(n), `KS distance ${d}`);
});
