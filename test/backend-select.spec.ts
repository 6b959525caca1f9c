import test from 'ava';
import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { loadBackend } from '../ts/backend/select.js';
import { testBackends } from './helpers/backends.js';

const root = fileURLToPath(new URL('..', import.meta.url));

/** Runs loadBackend in a fresh process (the addon and env are per process). */
function selectIn(env: Record<string, string>, options = '{}'): { status: number | null; stdout: string; stderr: string } {
  const code = `import('./ts/backend/select.ts').then(async (m) => { try { const b = await m.loadBackend(${options}); console.log(b.name, b.info().threads); await b.dispose(); } catch (e) { console.log('ERR', e.constructor.name, e.message); } })`;
  const r = spawnSync(process.execPath, ['--import=tsx', '-e', code], { cwd: root, env: { ...process.env, ...env }, encoding: 'utf8', timeout: 60000 });
  return { status: r.status, stdout: r.stdout.trim(), stderr: r.stderr };
}

const names = new Set(testBackends().map((b) => b.name));

test('auto picks the first backend in the order native > wasm simd+threads > wasm simd > wasm scalar', async (t) => {
  const b = await loadBackend({ backend: 'auto', threads: 1 });
  const expected = ['native', 'wasm-simd-threads', 'wasm-simd', 'wasm-scalar'].find((n) => names.has(n as never));
  t.is(b.name, expected as never);
  await b.dispose();
});

test('BRAIN_LDM_BACKEND and BRAIN_LDM_THREADS choose the backend and threads', (t) => {
  const r = selectIn({ BRAIN_LDM_BACKEND: 'wasm-scalar', BRAIN_LDM_THREADS: '1' });
  if (!names.has('wasm-scalar')) return t.regex(r.stdout, /^ERR/);
  t.is(r.stdout, 'wasm-scalar 1');
});

test('when the addon is missing, auto falls back to wasm and an explicit native request explains why', (t) => {
  const env = { BRAIN_LDM_ADDON: '/nonexistent/brain_ldm.node' };
  const auto = selectIn(env, "{ backend: 'auto' }");
  if (names.has('wasm-simd-threads')) t.regex(auto.stdout, /^wasm-simd-threads /);
  const native = selectIn(env, "{ backend: 'native' }");
  t.regex(native.stdout, /^ERR BackendUnavailableError .*native: native addon not available \(\/nonexistent\/brain_ldm\.node: not built\)/s);
});

test('when nothing loads, one error lists every backend with its reason', (t) => {
  // No addon and no wasm build where we point: every candidate must fail, each with a reason.
  const code = `import('./ts/backend/select.ts').then(async (m) => { try { await m.loadBackend({}); console.log('loaded'); } catch (e) { console.log(e.constructor.name + '\\n' + e.message); } })`;
  const r = spawnSync(process.execPath, ['--import=tsx', '-e', code], { cwd: root, env: { ...process.env, BRAIN_LDM_ADDON: '/nonexistent/x.node', BRAIN_LDM_WASM_DIR: '/nonexistent/wasm', BRAIN_LDM_BACKEND: '' }, encoding: 'utf8', timeout: 60000 });
  const out = r.stdout;
  t.regex(out, /^BackendUnavailableError/);
  for (const n of ['native', 'wasm-simd-threads', 'wasm-simd', 'wasm-scalar']) t.regex(out, new RegExp(`^  ${n}: .+`, 'm'));
});

test('bad selection options are caller errors, not fallbacks', async (t) => {
  await t.throwsAsync(loadBackend({ backend: 'tpu' as never }), { instanceOf: RangeError, message: /backend 'tpu' is unknown/ });
  await t.throwsAsync(loadBackend({ threads: 0 }), { instanceOf: RangeError, message: /option 'threads'/ });
  await t.throwsAsync(loadBackend({ backend: 'cuda' }), { message: /cuda: the CUDA backend is not part of this build yet/ });
});
