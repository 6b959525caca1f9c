import test from 'ava';
import { hashKey, seededRandom, SeededRandom } from '../../ts/random/seeded-random.js';

test('xoshiro128** matches the reference C implementation for a known state', (t) => {
  // From state {1, 2, 3, 4} the first output of xoshiro128** (Blackman & Vigna) is rotl(2 * 5, 7) * 9 = 11520;
  // the following ones are checked against a plain transcription of the published update.
  const r = new SeededRandom(0);
  Object.assign(r as unknown as Record<string, number>, { a: 1, b: 2, c: 3, d: 4 });
  const out = [r.nextUint32(), r.nextUint32(), r.nextUint32()];
  t.is(out[0], 11520);
  const ref = (() => {
    const s = [1, 2, 3, 4];
    const rot = (x: number, k: number) => ((x << k) | (x >>> (32 - k))) >>> 0;
    const o: number[] = [];
    for (let i = 0; i < 3; i++) {
      o.push(Math.imul(rot(Math.imul(s[1], 5) >>> 0, 7), 9) >>> 0);
      const tt = (s[1] << 9) >>> 0;
      s[2] ^= s[0]; s[3] ^= s[1]; s[1] ^= s[2]; s[0] ^= s[3]; s[2] ^= tt; s[3] = rot(s[3] >>> 0, 11);
      for (let j = 0; j < 4; j++) s[j] >>>= 0;
    }
    return o;
  })();
  t.deepEqual(out, ref);
});

test('same (seed, key) gives the same stream; different keys differ', (t) => {
  const a = seededRandom(42, 'augment', 'training_seg_01', 3);
  const b = seededRandom(42, 'augment', 'training_seg_01', 3);
  const c = seededRandom(42, 'augment', 'training_seg_01', 4);
  const xa = Array.from({ length: 8 }, () => a.next());
  t.deepEqual(Array.from({ length: 8 }, () => b.next()), xa);
  t.notDeepEqual(Array.from({ length: 8 }, () => c.next()), xa);
  t.not(hashKey(['ab', 'c']), hashKey(['a', 'bc']));
  t.throws(() => seededRandom(1.5), { message: /safe integer/ });
});

test('uniform and normal draws have the right moments', (t) => {
  const r = seededRandom(7, 'moments');
  const n = 200000;
  let su = 0, sn = 0, sn2 = 0, lo = 1, hi = 0;
  for (let i = 0; i < n; i++) {
    const u = r.next();
    su += u; lo = Math.min(lo, u); hi = Math.max(hi, u);
    const z = r.normal();
    sn += z; sn2 += z * z;
  }
  t.true(lo >= 0 && hi < 1);
  t.true(Math.abs(su / n - 0.5) < 0.005);
  t.true(Math.abs(sn / n) < 0.01);
  t.true(Math.abs(sn2 / n - 1) < 0.01);
  const counts = new Array(5).fill(0);
  for (let i = 0; i < 50000; i++) counts[r.int(5)]++;
  for (const c of counts) t.true(Math.abs(c - 10000) < 400);
});
