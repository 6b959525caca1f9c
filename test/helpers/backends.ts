/**
 * The backend matrix every op spec runs on: native once per ISA this CPU
 * supports (so the scalar and AVX2/AVX-512 kernels are all exercised) and each
 * wasm variant that is built. BRAIN_LDM_REQUIRE_BACKENDS (comma list, set by
 * .ci/run) turns a missing backend into a failure instead of a skip.
 */
import test from 'ava';
import { existsSync } from 'node:fs';
import { resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { createBackend } from '../../ts/backend/select.js';
import { loadNativeAddon } from '../../ts/backend/native-binding.js';
import type { Backend, BackendName, DeviceTensor } from '../../ts/backend/types.js';

export interface TestBackend {
  label: string;
  name: BackendName;
  create(): Promise<Backend>;
}

const root = fileURLToPath(new URL('../..', import.meta.url));
const WASM_VARIANTS: Array<[BackendName, string]> = [
  ['wasm-simd-threads', 'simd-threads'],
  ['wasm-simd', 'simd'],
  ['wasm-scalar', 'scalar'],
];

function discover(): { available: TestBackend[]; missing: Map<string, string> } {
  const available: TestBackend[] = [];
  const missing = new Map<string, string>();
  try {
    const { addon } = loadNativeAddon();
    for (const isa of addon.supportedIsas())
      available.push({ label: `native/${isa}`, name: 'native', create: () => createBackend('native', { isa, threads: 2 }) });
  } catch (e) {
    missing.set('native', (e as Error).message);
  }
  for (const [name, dir] of WASM_VARIANTS) {
    if (existsSync(resolve(root, 'wasm', 'dist', dir)))
      available.push({ label: name, name, create: () => createBackend(name, { threads: 2 }) });
    else missing.set(name, `wasm/dist/${dir} not built (npm run build:wasm)`);
  }
  return { available, missing };
}

const discovered = discover();

export function testBackends(): TestBackend[] {
  return discovered.available;
}

const required = (process.env.BRAIN_LDM_REQUIRE_BACKENDS ?? '').split(',').map((s) => s.trim()).filter(Boolean);
for (const name of required) {
  if (discovered.missing.has(name))
    test(`required backend ${name} loads`, (t) => t.fail(discovered.missing.get(name)));
}

/** Registers `fn` as one ava test per backend; the backend is disposed afterwards. */
export function eachBackend(title: string, fn: (t: import('ava').ExecutionContext, backend: Backend) => Promise<void>): void {
  for (const b of testBackends()) {
    test(`${title} [${b.label}]`, async (t) => {
      const backend = await b.create();
      try {
        await fn(t, backend);
      } finally {
        await backend.dispose();
      }
    });
  }
}

/**
 * Runs `fn` on a native backend made with `options` (a precision, ISA or thread count not every machine has), or
 * logs why it could not be made and passes: a bf16 test on a CPU without AVX512-BF16 is skipped, not failed.
 * `env` is set only while the backend is made (the kernel choices read it then), so concurrent tests do not see it.
 */
export async function withNativeBackend(t: import('ava').ExecutionContext, options: Parameters<typeof createBackend>[1],
  fn: (backend: Backend) => Promise<void>, env: Record<string, string> = {}): Promise<void> {
  let backend: Backend;
  const saved = Object.keys(env).map((k) => [k, process.env[k]] as const);
  Object.assign(process.env, env);
  try {
    backend = await createBackend('native', options);
  } catch (e) {
    t.log(`skipped: ${(e as Error).message}`);
    t.pass();
    return;
  } finally {
    for (const [k, v] of saved) if (v === undefined) delete process.env[k]; else process.env[k] = v;
  }
  try {
    await fn(backend);
  } finally {
    await backend.dispose();
  }
}

/** Runs fn with the environment variable `name` set to `value` (unset for undefined), then restores it. */
export async function withEnvVar<T>(name: string, value: string | undefined, fn: () => Promise<T>): Promise<T> {
  const saved = process.env[name];
  if (value === undefined) delete process.env[name];
  else process.env[name] = value;
  try {
    return await fn();
  } finally {
    if (saved === undefined) delete process.env[name];
    else process.env[name] = saved;
  }
}

/** An output tensor filled with NaN, so any element the kernel fails to write shows up. */
export function poisoned(backend: Backend, shape: readonly number[]): DeviceTensor {
  const size = shape.reduce((a, b) => a * b, 1);
  return backend.tensor(shape, new Float32Array(size).fill(Number.NaN));
}
