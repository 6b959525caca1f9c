/**
 * Resolution randomisation, SynthSeg's last image step when randomise_res is on (BrainGenerator / training();
 * BBillot/SynthSeg @66342c1 `SynthSeg/labels_to_image_model.py`, `ext/lab2im/layers.py` SampleResolution,
 * DynamicGaussianBlur, MimicAcquisition, `ext/lab2im/edit_tensors.py` blurring_sigma_for_downsampling;
 * EVALUATION.md 2.1 step 7):
 *   1. an acquisition resolution per axis (mm): with probability 0.1 every axis ~ U(native, 4), otherwise one random
 *      axis ~ U(native, 8) and the others native; with probability 0.05 all native. A slice thickness per axis
 *      ~ U(native, resolution).
 *   2. Gaussian blur with sigma = 0.75 x min(resolution, thickness) / native per axis (0.5 where that minimum is
 *      the native resolution), each multiplied by a factor ~ U(1/1.03, 1.03); window from the largest possible sigma.
 *   3. MimicAcquisition: nearest-neighbour down to int(n x native / resolution) samples per axis, then linear back
 *      to n (neuron interpn conventions, see ts/volume/axis-resampling.ts). Its noise option is off in SynthSeg (noise_std 0).
 * Where SynthSeg's per-axis values are RAS axes, ours are the label map's voxel axes: every per-axis setting here is
 * the same on all axes and the anisotropic axis is drawn uniformly, so the distribution of images is the same.
 * SynthSeg's "isotropic" branch draws each axis separately (tf.random.uniform over a vector of bounds), despite its
 * docstring; we do what the code does.
 */
import type { Triple } from '../labels/label-volume.js';
import type { SeededRandom } from '../random/seeded-random.js';
import { gaussianBlur, synthSegKernelRadius } from './gaussian-blur.js';
import { resampleAxis } from '../volume/axis-resampling.js';

export interface ResolutionOptions {
  /** Upper bound (mm) of the isotropic branch; default 4. */
  maxResIso?: number;
  /** Upper bound (mm) of the one-axis branch; default 8. */
  maxResAniso?: number;
  /** Probability of the isotropic branch; default 0.1. */
  probIso?: number;
  /** Probability of keeping the native resolution; default 0.05. */
  probNative?: number;
  /** Blur sigmas are multiplied by U(1/blurRange, blurRange); default 1.03. */
  blurRange?: number;
}

export const RESOLUTION_DEFAULTS: Readonly<Required<ResolutionOptions>> = Object.freeze({
  maxResIso: 4, maxResAniso: 8, probIso: 0.1, probNative: 0.05, blurRange: 1.03,
});

export type ResolutionMode = 'isotropic' | 'one-axis' | 'native';

export interface SimulatedResolution {
  mode: ResolutionMode;
  /** Axis made coarse in the one-axis branch (voxel axis), else null. */
  axis: number | null;
  nativeMm: Triple;
  resolutionMm: Triple;
  thicknessMm: Triple;
  /** Sigma in voxels from SynthSeg's rule, before and after the random factor. */
  sigmaRule: Triple;
  sigma: Triple;
  kernelRadius: Triple;
  /** Shape of the simulated low-resolution acquisition. */
  acquisitionShape: Triple;
}

/**
 * SynthSeg's blurring_sigma_for_downsampling (mult_coef None): with b = min(resolution, thickness) per axis,
 * sigma = 0.75 x b / native, except 0.5 where b equals the native resolution and 0 where b is 0.
 */
export function blurringSigma(nativeMm: readonly number[], resolutionMm: readonly number[], thicknessMm?: readonly number[]): Triple {
  return [0, 1, 2].map((a) => {
    const blurRes = thicknessMm ? Math.min(resolutionMm[a], thicknessMm[a]) : resolutionMm[a];
    if (blurRes === 0) return 0;
    if (blurRes === nativeMm[a]) return 0.5;
    return (0.75 * blurRes) / nativeMm[a];
  }) as Triple;
}

/** Draws resolution and thickness (SampleResolution). Draw order: axis, 3 iso values, 3 aniso values, the two coins, 3 thicknesses. */
export function drawResolution(nativeMm: Triple, rng: SeededRandom, options: ResolutionOptions = {}): Pick<SimulatedResolution, 'mode' | 'axis' | 'resolutionMm' | 'thicknessMm'> {
  const o = { ...RESOLUTION_DEFAULTS, ...options };
  const axis = rng.int(3);
  const iso = nativeMm.map((m) => rng.uniform(m, Math.max(m, o.maxResIso))) as Triple;
  const aniso = nativeMm.map((m, a) => (a === axis ? rng.uniform(m, Math.max(m, o.maxResAniso)) : m)) as Triple;
  const isoCoin = rng.next() < o.probIso;
  const nativeCoin = rng.next() < o.probNative;
  const mode: ResolutionMode = nativeCoin ? 'native' : isoCoin ? 'isotropic' : 'one-axis';
  const resolutionMm = mode === 'native' ? (nativeMm.slice() as Triple) : mode === 'isotropic' ? iso : aniso;
  // U(native, native) is exactly native, so untouched axes keep sigma 0.5 (the equality test in blurringSigma).
  const thicknessMm = nativeMm.map((m, a) => rng.uniform(m, resolutionMm[a])) as Triple;
  return { mode, axis: mode === 'one-axis' ? axis : null, resolutionMm, thicknessMm };
}

/** Samples per axis of the low-resolution acquisition: int(n x native / resolution), at least 1. */
export function acquisitionShape(shape: Triple, nativeMm: readonly number[], resolutionMm: readonly number[]): Triple {
  // The 1e-9 keeps n x r / r from truncating to n - 1 in floating point when the resolution is the native one.
  return shape.map((n, a) => Math.max(1, Math.floor((n * nativeMm[a]) / resolutionMm[a] + 1e-9))) as Triple;
}

/** MimicAcquisition: nearest down to `lowShape`, then linear back up to `shape`, axis by axis. */
export function mimicAcquisition(data: Float32Array, shape: Triple, lowShape: Triple): Float32Array {
  let cur = { data, shape };
  for (let a = 0; a < 3; a++) {
    if (lowShape[a] === shape[a]) continue;
    cur = resampleAxis(cur.data, cur.shape, a, lowShape[a], { alignment: 'origin', interpolation: 'nearest' });
    cur = resampleAxis(cur.data, cur.shape, a, shape[a], { alignment: 'origin' });
  }
  return cur.data === data ? data.slice() : cur.data;
}

/** Draws an acquisition and applies blur + MimicAcquisition; returns the new image and what was drawn. */
export function simulateResolution(data: Float32Array, shape: Triple, nativeMm: Triple, rng: SeededRandom, options: ResolutionOptions = {}): { data: Float32Array; resolution: SimulatedResolution } {
  const o = { ...RESOLUTION_DEFAULTS, ...options };
  if (!(o.blurRange >= 1)) throw new RangeError(`simulateResolution: option 'blurRange' must be >= 1, got ${o.blurRange}`);
  const drawn = drawResolution(nativeMm, rng, o);
  const sigmaRule = blurringSigma(nativeMm, drawn.resolutionMm, drawn.thicknessMm);
  const sigma = sigmaRule.map((s) => s * rng.uniform(1 / o.blurRange, o.blurRange)) as Triple;
  const maxRes = Math.max(o.maxResIso, o.maxResAniso);
  const kernelRadius = nativeMm.map((m) => synthSegKernelRadius((0.75 * Math.max(maxRes, m)) / m)) as Triple;
  const lowShape = acquisitionShape(shape, nativeMm, drawn.resolutionMm);
  const blurred = gaussianBlur(data, shape, sigma, kernelRadius);
  return {
    data: mimicAcquisition(blurred, shape, lowShape),
    resolution: { ...drawn, nativeMm: nativeMm.slice() as Triple, sigmaRule, sigma, kernelRadius, acquisitionShape: lowShape },
  };
}
