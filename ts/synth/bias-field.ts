/**
 * Random smooth multiplicative bias field (MR intensity inhomogeneity), as SynthSeg's BiasFieldCorruption
 * (BBillot/SynthSeg @66342c1 `ext/lab2im/layers.py`; EVALUATION.md 2.1 step 5): a small grid of
 * ceil(shape x 0.025) values ~ N(0, s^2) with s ~ U(0, maxStd), linearly upsampled to the image (neuron Resize),
 * exponentiated, multiplied in; applied with probability 0.95. The defaults are the values SynthSeg trains with
 * (BrainGenerator / training(): bias_field_std 0.7, bias_scale 0.025).
 *
 * Because linear interpolation is a convex combination, the log field lies within [min, max] of the grid, so the
 * field lies within [exp(min), exp(max)] and is positive everywhere.
 */
import type { Triple } from '../labels/label-volume.js';
import type { SeededRandom } from '../random/seeded-random.js';
import { resizeVolume } from '../volume/axis-resampling.js';

export interface BiasFieldOptions {
  /** Upper bound of the std of the log field (SynthSeg bias_field_std); default 0.7. */
  maxStd?: number;
  /** Grid size relative to the image per axis (SynthSeg bias_scale); default 0.025. */
  shapeFactor?: number;
  /** Probability that the field is applied at all; default 0.95. */
  probability?: number;
}

export const BIAS_FIELD_DEFAULTS: Readonly<Required<BiasFieldOptions>> = Object.freeze({ maxStd: 0.7, shapeFactor: 0.025, probability: 0.95 });

export interface BiasField {
  /** exp(upsampled grid), one value per voxel; null when the coin said not to apply it. */
  field: Float32Array | null;
  /** The drawn std of the log field. */
  std: number;
  gridShape: Triple;
  /** The log-field grid values (file order). */
  grid: Float32Array;
  applied: boolean;
}

function checkOption(name: string, v: number, lo: number, hi: number): void {
  if (typeof v !== 'number' || !(v >= lo && v <= hi)) throw new RangeError(`drawBiasField: option '${name}' must be a number in [${lo}, ${hi}], got ${v}`);
}

/** Grid shape SynthSeg samples the log field on: ceil(shape x factor) per axis (utils.get_resample_shape). */
export function biasGridShape(shape: Triple, shapeFactor: number): Triple {
  return shape.map((n) => Math.max(1, Math.ceil(n * shapeFactor))) as Triple;
}

/** Draws a bias field for an image of `shape`. Draw order: std, grid values (file order), the apply coin. */
export function drawBiasField(shape: Triple, rng: SeededRandom, options: BiasFieldOptions = {}): BiasField {
  const { maxStd, shapeFactor, probability } = { ...BIAS_FIELD_DEFAULTS, ...options };
  checkOption('maxStd', maxStd, 0, 10);
  checkOption('shapeFactor', shapeFactor, 1e-6, 1);
  checkOption('probability', probability, 0, 1);
  const gridShape = biasGridShape(shape, shapeFactor);
  const std = rng.uniform(0, maxStd);
  const grid = new Float32Array(gridShape[0] * gridShape[1] * gridShape[2]);
  for (let i = 0; i < grid.length; i++) grid[i] = rng.normal(0, std);
  const applied = rng.next() < probability;
  let field: Float32Array | null = null;
  if (applied) {
    field = resizeVolume(grid, gridShape, shape, { alignment: 'origin' });
    for (let i = 0; i < field.length; i++) field[i] = Math.exp(field[i]);
  }
  return { field, std, gridShape, grid, applied };
}

/** Multiplies the image by the field in place. */
export function applyBiasField(image: Float32Array, field: Float32Array): void {
  if (image.length !== field.length) throw new RangeError(`applyBiasField: image has ${image.length} voxels but the field ${field.length}`);
  for (let i = 0; i < image.length; i++) image[i] *= field[i];
}
