/**
 * Runs test/augment/label_reference.py (numpy + nibabel in the repository's .venv) as the independent reference of
 * the augmentation specs: label voxel counts and 6-connected component sizes of NIfTI files, and the Jacobian
 * determinant of a displacement field. Without the venv the tests using it skip with the reason, or fail when
 * BRAIN_LDM_REQUIRE_PYTHON=1.
 */
import test from 'ava';
import { spawnSync } from 'node:child_process';
import { existsSync, writeFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import type { DisplacementField } from '../../ts/augment/displacement-field.js';

const PYTHON = fileURLToPath(new URL('../../.venv/bin/python', import.meta.url));
const SCRIPT = fileURLToPath(new URL('./label_reference.py', import.meta.url));

export const havePython = existsSync(PYTHON);

export function pythonGate(spec: string): typeof test {
  const require = process.env.BRAIN_LDM_REQUIRE_PYTHON === '1';
  if (existsSync(PYTHON)) return test;
  const msg = `${PYTHON} not found (bash train/setup_venv.sh): ${spec} reference checks are ${require ? 'required and fail' : 'skipped'}`;
  test(`${spec}: python reference is available`, (t) => { if (require) t.fail(msg); else { t.log(msg); t.pass(); } });
  return require ? test : (test.skip as unknown as typeof test);
}

function run(args: string[]): unknown {
  const r = spawnSync(PYTHON, [SCRIPT, ...args], { encoding: 'utf8', timeout: 300000, maxBuffer: 64 << 20 });
  if (r.status !== 0) throw new Error(`label_reference.py ${args[0]} failed (exit ${r.status}): ${r.stderr || r.error?.message}`);
  return JSON.parse(r.stdout);
}

export interface LabelStats {
  /** Voxels per label value. */
  labels: Record<string, number>;
  /** Sizes of the 6-connected components of each non-zero label, largest first. */
  components: Record<string, number[]>;
}

export function labelStats(...paths: string[]): LabelStats[] {
  return run(['components', ...paths]) as LabelStats[];
}

/** det(I + grad u) by numpy.gradient over the whole grid. */
export function referenceJacobian(u: DisplacementField, scratchPath: string): { min: number; max: number; nonPositive: number } {
  const n = u.x.length;
  const all = new Float32Array(3 * n);
  all.set(u.x, 0);
  all.set(u.y, n);
  all.set(u.z, 2 * n);
  writeFileSync(scratchPath, Buffer.from(all.buffer));
  return run(['jacobian', scratchPath, ...u.shape.map(String)]) as { min: number; max: number; nonPositive: number };
}

/** Components of at least `minVoxels` voxels (pieces smaller than that are resampling noise on thin structures). */
export function bigComponents(sizes: number[] | undefined, minVoxels: number): number {
  return (sizes ?? []).filter((s) => s >= minVoxels).length;
}

export interface NiftiHeaderInfo { dtype: string; shape: number[]; sform: number[][]; qform: number[][]; sformCode: number; qformCode: number; sha: string }

/** What nibabel reads from a NIfTI file; `sha` is sha256 of the voxels in file order (first index fastest). */
export function niftiInfo(path: string): NiftiHeaderInfo {
  return run(['header', path]) as NiftiHeaderInfo;
}
