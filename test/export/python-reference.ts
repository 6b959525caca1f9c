/**
 * Runs short Python scripts in the project's venv (`.venv/bin/python`: nibabel, numpy) as an independent reader of
 * what the exporters wrote. Without the venv the tests that need it skip with one stated reason, or fail when
 * BRAIN_LDM_REQUIRE_PYTHON=1 or BRAIN_LDM_REQUIRE_PARITY=1 (CI sets the latter after building the venv).
 */
import test from 'ava';
import { execFile } from 'node:child_process';
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';

const run = promisify(execFile);

export const VENV_PYTHON = fileURLToPath(new URL('../../.venv/bin/python', import.meta.url));

/** `pythonTest` runs when the venv is there (or is required), else skips after one test states why. */
export function venvPython(spec: string): { pythonTest: typeof test; havePython: boolean } {
  const require = process.env.BRAIN_LDM_REQUIRE_PYTHON === '1' || process.env.BRAIN_LDM_REQUIRE_PARITY === '1';
  const havePython = existsSync(VENV_PYTHON);
  if (!havePython) {
    const msg = `${VENV_PYTHON} not found (bash train/setup_venv.sh creates it): ${spec} read-back checks with nibabel are ${require ? 'required and fail' : 'skipped'}`;
    test(`${spec}: the Python venv is present`, (t) => {
      if (require) t.fail(msg);
      else { t.log(msg); t.pass(); }
    });
  }
  return { pythonTest: havePython || require ? test : (test.skip as unknown as typeof test), havePython };
}

/** Runs `script` with `args` (sys.argv[1:]) and parses its stdout as JSON. */
export async function runPython<T = unknown>(script: string, args: string[] = [], python = VENV_PYTHON): Promise<T> {
  const { stdout } = await run(python, ['-c', script, ...args], { maxBuffer: 64 << 20, env: { ...process.env, OMP_NUM_THREADS: '1' } });
  return JSON.parse(stdout) as T;
}
