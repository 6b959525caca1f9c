import test from 'ava';
import { main } from '../ts/cli.js';
import { loadNativeAddon } from '../ts/backend/native-binding.js';

async function run(args: string[]): Promise<{ code: number; out: string }> {
  const lines: string[] = [];
  const code = await main(args, (l) => lines.push(l));
  return { code, out: lines.join('\n') };
}

const hasNative = (() => { try { loadNativeAddon(); return true; } catch { return false; } })();

test('brain-ldm info prints backend, ISA, threads and versions', async (t) => {
  const { code, out } = await run(['info', '--threads', '2']);
  t.is(code, 0);
  t.regex(out, /^brain-ldm \d+\.\d+\.\d+/m);
  t.regex(out, new RegExp(`^node ${process.version.replace(/\./g, '\\.')}`, 'm'));
  t.regex(out, /^backend: (native|wasm-simd-threads|wasm-simd|wasm-scalar)$/m);
  t.regex(out, /^isa: (avx512|avx2|scalar|simd128)$/m);
  t.regex(out, /^threads: 2 \(idle threads spin 2000 us before they sleep; BRAIN_LDM_SPIN_US\)$/m);
  t.regex(out, /^core: \d+\.\d+\.\d+ \((gcc|clang|emscripten)/m);
  if (hasNative) t.regex(out, /^backend: native$/m);
});

test('brain-ldm info --json reports every backend with a reason when it does not load', async (t) => {
  const { code, out } = await run(['info', '--json']);
  t.is(code, 0);
  const report = JSON.parse(out);
  t.deepEqual(report.backends.map((b: { name: string }) => b.name), ['native', 'wasm-simd-threads', 'wasm-simd', 'wasm-scalar']);
  for (const b of report.backends) t.true(b.ok || (typeof b.error === 'string' && b.error.length > 0));
});

test('brain-ldm rejects unknown commands, options and backends with exit code 2 or 1', async (t) => {
  t.is((await run(['frobnicate'])).code, 2);
  t.is((await run(['info', '--nope'])).code, 2);
  t.is((await run(['info', '--threads', 'zero'])).code, 2);
  t.is((await run(['info', '--backend', 'tpu'])).code, 1);
});
