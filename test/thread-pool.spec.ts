/**
 * The worker pool spins a while before its idle threads sleep (native/core/thread_pool.h), for BRAIN_LDM_SPIN_US
 * microseconds (default 2000). Spinning changes when a thread notices work, and so which thread takes which piece
 * of a convolution (ThreadPool::parallel_for_dynamic), never what a piece computes, so every setting must give the
 * same bytes; and the three ways a thread can wait (sleep at once, spin then
 * sleep, catch the work while spinning) must never lose a wake-up, which here would hang the chain of calls
 * until ava's timeout. Bad values are refused when the backend is made, naming the variable and the value.
 */
import test from 'ava';
import type { Backend, DeviceTensor } from '../ts/backend/types.js';
import { createBackend } from '../ts/backend/select.js';
import { randn } from './helpers/reference.js';
import { testBackends, withEnvVar } from './helpers/backends.js';

// Native (its best ISA) and the wasm threads build: the backends whose pools have workers.
const POOLED = [
  ...(testBackends().some((b) => b.name === 'native') ? [{ label: 'native', create: () => createBackend('native', { threads: 2 }) }] : []),
  ...testBackends().filter((b) => b.name === 'wasm-simd-threads'),
];

const withSpinEnv = <T>(value: string | undefined, fn: () => Promise<T>) => withEnvVar('BRAIN_LDM_SPIN_US', value, fn);

/**
 * 120 short calls, each a convolution whose output (normalised, so it stays finite) feeds the next: every call
 * is a few parallel_for rounds a few tens of microseconds long, with the event loop's gap between calls.
 */
async function chain(b: Backend): Promise<Float32Array> {
  let x: DeviceTensor = b.tensor([1, 8, 6, 6, 6], randn(8 * 216, 11));
  const w = b.tensor([8, 8, 3, 3, 3], randn(8 * 8 * 27, 12).map((v) => v * 0.2));
  for (let i = 0; i < 120; i++) {
    const y = await b.conv3d(x, w, null, { padding: 1 });
    const n = await b.groupNorm(y, { groups: 4, eps: 1e-5, silu: i % 2 === 0 });
    x.dispose();
    y.dispose();
    x = n;
  }
  const out = x.read() as Float32Array;
  x.dispose();
  return out;
}

for (const backend of POOLED) {
  test(`${backend.label}: every spin setting gives the same bytes and no call waits forever`, async (t) => {
    const results: Array<[string, Float32Array]> = [];
    // 0: sleep at once; 1: spin a microsecond, then sleep (the gaps between calls are longer); unset: 2000, so
    // the workers catch each call while they spin.
    for (const [value, expected] of [['0', 0], ['1', 1], [undefined, 2000]] as const) {
      const b = await withSpinEnv(value, () => backend.create());
      try {
        t.is(b.info().spinMicros, expected, `BRAIN_LDM_SPIN_US=${value ?? '(unset)'}`);
        t.is(b.info().threads, 2);
        results.push([value ?? 'unset', await chain(b)]);
      } finally {
        await b.dispose();
      }
    }
    const [, reference] = results[0];
    t.true(reference.every(Number.isFinite));
    for (const [label, out] of results.slice(1))
      t.deepEqual(Buffer.from(out.buffer, out.byteOffset, out.byteLength), Buffer.from(reference.buffer, reference.byteOffset, reference.byteLength), `BRAIN_LDM_SPIN_US=${label}`);
  });

  test(`${backend.label}: a BRAIN_LDM_SPIN_US that is not a whole number of microseconds up to 1 s is refused`, async (t) => {
    for (const bad of ['fast', '-5', '2e3', '1000001']) {
      const err = await withSpinEnv(bad, () => t.throwsAsync(() => backend.create()));
      t.regex(err?.message ?? '', new RegExp(`BRAIN_LDM_SPIN_US must be a whole number of microseconds from 0 to 1000000, got '${bad}'`));
    }
    const b = await withSpinEnv('250', () => backend.create());
    t.is(b.info().spinMicros, 250);
    await b.dispose();
  });
}

test('the pooled backends are there to test', (t) => {
  if (POOLED.length === 0 && !process.env.BRAIN_LDM_REQUIRE_BACKENDS) t.pass('no native addon or wasm threads build here');
  else t.true(POOLED.length >= 1);
});
