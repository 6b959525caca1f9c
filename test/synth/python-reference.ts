/**
 * Runs a Python snippet in the repository's .venv (numpy, torch, MONAI) as an independent reference for the synth
 * specs. The snippet reads JSON from stdin as `inp` and assigns its JSON-able answer to `out`; float32 arrays travel
 * as base64 (`f32(name)` decodes one from `inp`, `b64(array)` encodes one). Without the venv (or its modules) the
 * tests using it skip with one stated reason, or fail when BRAIN_LDM_REQUIRE_PYTHON=1.
 */
import test from 'ava';
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

const PYTHON = fileURLToPath(new URL('../../.venv/bin/python', import.meta.url));

const PRELUDE = `
import sys, json, base64
import numpy as np
inp = json.load(sys.stdin)
def f32(name):
    return np.frombuffer(base64.b64decode(inp[name]), dtype=np.float32)
def b64(a):
    return base64.b64encode(np.ascontiguousarray(a, dtype=np.float32).tobytes()).decode()
out = None
`;

export function encodeF32(a: Float32Array): string {
  return Buffer.from(a.buffer, a.byteOffset, a.byteLength).toString('base64');
}

export function decodeF32(s: string): Float32Array {
  const b = Buffer.from(s, 'base64');
  return new Float32Array(b.buffer.slice(b.byteOffset, b.byteOffset + b.byteLength));
}

/** Runs `code` with `input` and returns its `out`; throws with Python's stderr on failure. */
export function runPython<T = unknown>(code: string, input: unknown = {}): T {
  const r = spawnSync(PYTHON, ['-c', `${PRELUDE}\n${code}\nprint(json.dumps(out))`], {
    input: JSON.stringify(input), encoding: 'utf8', timeout: 120000, maxBuffer: 256 << 20,
  });
  if (r.status !== 0) throw new Error(`python reference failed (exit ${r.status}): ${r.stderr || r.error?.message}`);
  return JSON.parse(r.stdout.trim().split('\n').pop()!) as T;
}

/** `pythonTest` runs when `.venv/bin/python` imports `modules`; otherwise it skips (or fails, see above). */
export function pythonReference(spec: string, modules: readonly string[]): { pythonTest: typeof test; havePython: boolean } {
  const require = process.env.BRAIN_LDM_REQUIRE_PYTHON === '1';
  let reason = '';
  if (!existsSync(PYTHON)) reason = `${PYTHON} not found (bash train/setup_venv.sh creates it)`;
  else {
    const r = spawnSync(PYTHON, ['-c', `import ${modules.join(', ')}`], { encoding: 'utf8', timeout: 120000 });
    if (r.status !== 0) reason = `${PYTHON} cannot import ${modules.join(', ')}: ${(r.stderr || '').trim().split('\n').pop()}`;
  }
  const havePython = reason === '';
  if (!havePython) {
    const msg = `${spec}: Python reference tests are ${require ? 'required (BRAIN_LDM_REQUIRE_PYTHON=1) and fail' : 'skipped'}: ${reason}`;
    console.warn(msg);
    test(`${spec}: Python reference (${modules.join(', ')}) is available`, (t) => {
      if (require) t.fail(msg);
      else { t.log(msg); t.pass(); }
    });
  }
  return { pythonTest: havePython || require ? test : (test.skip as unknown as typeof test), havePython };
}
