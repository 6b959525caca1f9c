/**
 * Runs test/augment/label_reference.py (numpy + nibabel in the repository's .venv) as the independent reference of
 * the augmentation specs: label voxel counts and 6-connected component sizes of NIfTI files, and the Jacobian
 * determinant of a displacement field. Gated by test/helpers/python-reference.ts (skip with the reason, or fail
 * when BRAIN_LDM_REQUIRE_PYTHON=1).
 */
import { writeFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import type { DisplacementField } from '../../ts/augment/displacement-field.js';
import { pythonReference, runPythonArgs } from '../helpers/python-reference.js';

const SCRIPT = fileURLToPath(new URL('./label_reference.py', import.meta.url));

/** The venv gate for the specs using this reference (numpy, nibabel). */
export const pythonGate = (spec: string) => pythonReference(spec, ['numpy', 'nibabel']);

const run = <T>(args: string[]): Promise<T> => runPythonArgs<T>([SCRIPT, ...args]);

export interface LabelStats {
  /** Voxels per label value. */
  labels: Record<string, number>;
  /** Sizes of the 6-connected components of each non-zero label, largest first. */
  components: Record<string, number[]>;
}

export function labelStats(...paths: string[]): Promise<LabelStats[]> {
  return run(['components', ...paths]);
}

/** det(I + grad u) by numpy.gradient over the whole grid. */
export function referenceJacobian(u: DisplacementField, scratchPath: string): Promise<{ min: number; max: number; nonPositive: number }> {
  const n = u.x.length;
  const all = new Float32Array(3 * n);
  all.set(u.x, 0);
  all.set(u.y, n);
  all.set(u.z, 2 * n);
  writeFileSync(scratchPath, Buffer.from(all.buffer));
  return run(['jacobian', scratchPath, ...u.shape.map(String)]);
}

/** Components of at least `minVoxels` voxels (pieces smaller than that are resampling noise on thin structures). */
export function bigComponents(sizes: number[] | undefined, minVoxels: number): number {
  return (sizes ?? []).filter((s) => s >= minVoxels).length;
}

export interface NiftiHeaderInfo { dtype: string; shape: number[]; sform: number[][]; qform: number[][]; sformCode: number; qformCode: number; sha: string }

/** What nibabel reads from a NIfTI file; `sha` is sha256 of the voxels in file order (first index fastest). */
export function niftiInfo(path: string): Promise<NiftiHeaderInfo> {
  return run(['header', path]);
}
