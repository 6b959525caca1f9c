/**
 * The project's venv Python (`.venv/bin/python`: numpy, nibabel, torch, MONAI) as an independent reference for the
 * specs. `pythonReference` gates the tests that need it: without the venv (or one of the modules a spec names) they
 * skip after one test states why, or fail when BRAIN_LDM_REQUIRE_PYTHON=1 or BRAIN_LDM_REQUIRE_PARITY=1 (CI sets
 * the latter after building the venv).
 *
 * Two ways to call it: `runPython(script, args)` runs a script that prints its JSON answer itself (argv in
 * sys.argv[1:]); `runReference(code, input)` runs a snippet that reads JSON from stdin as `inp` and assigns its
 * JSON-able answer to `out`, float32 arrays travelling as base64 (`f32(name)` decodes one from `inp`, `b64(array)`
 * encodes one; `encodeF32` / `decodeF32` are the TypeScript side).
 */
import test from 'ava';
import { spawn, spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

export const VENV_PYTHON = fileURLToPath(new URL('../../.venv/bin/python', import.meta.url));

/** `pythonTest` runs when the venv is there and imports `modules` (or Python is required), else it skips. */
export function pythonReference(spec: string, modules: readonly string[] = []): { pythonTest: typeof test; havePython: boolean } {
  const require = process.env.BRAIN_LDM_REQUIRE_PYTHON === '1' || process.env.BRAIN_LDM_REQUIRE_PARITY === '1';
  let reason = '';
  if (!existsSync(VENV_PYTHON)) reason = `${VENV_PYTHON} not found (bash train/setup_venv.sh creates it)`;
  else if (modules.length > 0) {
    const r = spawnSync(VENV_PYTHON, ['-c', `import ${modules.join(', ')}`], { encoding: 'utf8', timeout: 120000 });
    if (r.status !== 0) reason = `${VENV_PYTHON} cannot import ${modules.join(', ')}: ${(r.stderr || '').trim().split('\n').pop()}`;
  }
  const havePython = reason === '';
  if (!havePython) {
    const msg = `${spec}: Python reference tests are ${require ? 'required (BRAIN_LDM_REQUIRE_PYTHON=1 or BRAIN_LDM_REQUIRE_PARITY=1) and fail' : 'skipped'}: ${reason}`;
    console.warn(msg);
    test(`${spec}: Python reference${modules.length > 0 ? ` (${modules.join(', ')})` : ''} is available`, (t) => {
      if (require) t.fail(msg);
      else { t.log(msg); t.pass(); }
    });
  }
  return { pythonTest: havePython || require ? test : (test.skip as unknown as typeof test), havePython };
}

/**
 * Runs the venv Python with `argv` (and `stdin`, if given) and parses the last line of its stdout as JSON (libraries
 * may print notices before it); rejects with Python's stderr on failure. One thread (OMP_NUM_THREADS=1): the specs
 * share the machine.
 */
export function runPythonArgs<T = unknown>(argv: string[], stdin?: string, python = VENV_PYTHON): Promise<T> {
  return new Promise((resolve, reject) => {
    const child = spawn(python, argv, { env: { ...process.env, OMP_NUM_THREADS: '1' }, timeout: 300000 });
    const out: Buffer[] = [];
    const err: Buffer[] = [];
    child.stdout.on('data', (b: Buffer) => out.push(b));
    child.stderr.on('data', (b: Buffer) => err.push(b));
    child.on('error', reject);
    child.on('close', (code, signal) => {
      const stderr = Buffer.concat(err).toString('utf8');
      if (code !== 0) {
        reject(new Error(`${python} ${argv[0] === '-c' ? '-c <script>' : argv[0]} failed (${signal ?? `exit ${code}`}): ${stderr}`));
        return;
      }
      const lines = Buffer.concat(out).toString('utf8').trim().split('\n');
      try {
        resolve(JSON.parse(lines[lines.length - 1]) as T);
      } catch (e) {
        reject(new Error(`${python}: the last line of stdout is not JSON (${(e as Error).message}); stderr: ${stderr}`));
      }
    });
    child.stdin.end(stdin ?? '');
  });
}

/** Runs `script` (python -c) with `args` in sys.argv[1:]; the script prints its JSON answer. */
export function runPython<T = unknown>(script: string, args: string[] = [], python = VENV_PYTHON): Promise<T> {
  return runPythonArgs<T>(['-c', script, ...args], undefined, python);
}

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

/** Runs `code` with `input` as `inp` and resolves to its `out`. */
export function runReference<T = unknown>(code: string, input: unknown = {}): Promise<T> {
  return runPythonArgs<T>(['-c', `${PRELUDE}\n${code}\nprint(json.dumps(out))`], JSON.stringify(input));
}

export function encodeF32(a: Float32Array): string {
  return Buffer.from(a.buffer, a.byteOffset, a.byteLength).toString('base64');
}

export function decodeF32(s: string): Float32Array {
  const b = Buffer.from(s, 'base64');
  return new Float32Array(b.buffer.slice(b.byteOffset, b.byteOffset + b.byteLength));
}
