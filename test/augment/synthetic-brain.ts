/**
 * A small synthetic SynthSeg label map for the augmentation specs: an ellipsoidal head with CSF, cortex, white matter,
 * lateral ventricles with caudate beside them, thalami below, a 3rd ventricle slab at the midline and a cerebellum.
 * Built in world (RAS) mm, so any affine works; left structures lie at x < 0.
 */
import { applyAffine, type Affine } from '../../ts/io/nifti.js';
import type { Triple, Volume } from '../../ts/labels/label-volume.js';

/** Label at world point (x, y, z), RAS mm. */
function labelAt(x: number, y: number, z: number): number {
  const left = x < 0; // RAS: -x is the subject's left
  const e = (a: number, b: number, c: number, cx = 0, cy = 0, cz = 0) => ((x - cx) / a) ** 2 + ((y - cy) / b) ** 2 + ((z - cz) / c) ** 2;
  if (e(62, 75, 58) > 1) return 0;
  if (e(58, 71, 54) > 1) return 24;
  if (e(9, 18, 3, 0, -2, -8) <= 1 && Math.abs(x) < 1.6) return 14;
  if (e(7, 28, 7, left ? -11 : 11, 4, 10) <= 1) return left ? 4 : 43;
  if (e(5, 9, 6, left ? -19 : 19, 14, 6) <= 1) return left ? 11 : 50;
  if (e(10, 12, 9, left ? -10 : 10, -10, -6) <= 1) return left ? 10 : 49;
  if (e(28, 18, 14, 0, -52, -34) <= 1) return left ? 8 : 47;
  if (e(52, 65, 48) > 1) return left ? 3 : 42;
  return left ? 2 : 41;
}

/** The map on a grid of `shape` with voxel-to-world `affine` (voxel centres sampled). */
export function syntheticBrain(shape: Triple, affine: Affine): Volume<Uint8Array> {
  const data = new Uint8Array(shape[0] * shape[1] * shape[2]);
  let n = 0;
  for (let k = 0; k < shape[2]; k++) for (let j = 0; j < shape[1]; j++) for (let i = 0; i < shape[0]; i++, n++) {
    const [x, y, z] = applyAffine(affine, [i, j, k]);
    data[n] = labelAt(x, y, z);
  }
  return { data, shape, affine };
}

/** RAS grid of 2.5 mm voxels, centred on the head. */
export const RAS_2P5: Affine = [[2.5, 0, 0, -65], [0, 2.5, 0, -80], [0, 0, 2.5, -62.5], [0, 0, 0, 1]];
export const RAS_SHAPE: Triple = [53, 65, 51];

/** IPL grid (the thesis orientation) of 3 mm voxels: axis 0 inferior, 1 posterior, 2 left. */
export const IPL_3: Affine = [[0, 0, -3, 66], [0, -3, 0, 81], [-3, 0, 0, 63], [0, 0, 0, 1]];
export const IPL_SHAPE: Triple = [43, 55, 45];
