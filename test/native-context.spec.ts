import test from 'ava';
import { NativeBackend } from '../ts/backend/native-backend.js';
import { loadNativeAddon } from '../ts/backend/native-binding.js';
import { randn } from './helpers/reference.js';

const hasNative = (() => { try { loadNativeAddon(); return true; } catch { return false; } })();
const maybe = hasNative || process.env.BRAIN_LDM_REQUIRE_BACKENDS?.includes('native') ? test : test.skip;

maybe('repeating a convolution of the same shape allocates no new scratch', async (t) => {
  const b = new NativeBackend({ threads: 2 });
  const x = b.tensor([1, 8, 10, 10, 10], randn(8000, 1));
  const w = b.tensor([8, 8, 3, 3, 3], randn(1728, 2));
  const out = b.tensor([1, 8, 10, 10, 10]);
  await b.conv3d(x, w, null, { padding: 1, out });
  const first = b.stats();
  t.true(first.scratchBytes > 0);
  for (let i = 0; i < 5; i++) await b.conv3d(x, w, null, { padding: 1, out });
  t.deepEqual(b.stats(), first);
  await b.dispose();
});

maybe('threads and ISA follow options and are validated', async (t) => {
  const { addon } = loadNativeAddon();
  const b = new NativeBackend({ threads: 1, isa: 'scalar' });
  t.like(b.info(), { backend: 'native', isa: 'scalar', threads: 1 });
  await b.dispose();
  t.throws(() => new NativeBackend({ isa: 'sse9' }), { instanceOf: RangeError, message: /isa 'sse9' is unknown/ });
  if (!addon.supportedIsas().includes('avx512'))
    t.throws(() => new NativeBackend({ isa: 'avx512' }), { instanceOf: RangeError, message: /not supported by this CPU/ });
});

maybe('ops run off the event loop: timers fire while a long convolution computes', async (t) => {
  const b = new NativeBackend({ threads: 1, isa: 'scalar' });
  const x = b.tensor([1, 8, 64, 64, 64], randn(8 * 64 ** 3, 3));
  const w = b.tensor([128, 8, 3, 3, 3], randn(128 * 8 * 27, 4));
  let ticks = 0;
  const timer = setInterval(() => ticks++, 5);
  const t0 = performance.now();
  // Stride 2: never Winograd, so the direct convolution (32^3 outputs from 8 channels, 0.9 G multiply-adds), long
  // enough to observe.
  await b.conv3d(x, w, null, { padding: 1, stride: 2 });
  const elapsed = performance.now() - t0;
  clearInterval(timer);
  t.true(elapsed > 50, `conv took ${elapsed} ms, too short to observe`);
  t.true(ticks >= 3, `only ${ticks} timer ticks during ${elapsed.toFixed(0)} ms`);
  await b.dispose();
});
