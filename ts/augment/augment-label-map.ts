/**
 * One augmented copy of a SynthSeg label map, as the training set is built: ventricle enlargement (on the original
 * anatomy), then the SynthSeg-style affine + elastic deformation (one resampling), then the left/right flip. Copy k
 * of input `name` depends only on (seed, name, k): every random number comes from
 * seededRandom(seed, 'augment-labels', name, k), so reruns and partial reruns give the same bytes.
 */
import { checkVolume, intracranialVolumeMl, labelCounts, ventricleVolumeMl, type Volume } from '../labels/label-volume.js';
import { SYNTHSEG_LABELS } from '../labels/synthseg-labels.js';
import { seededRandom } from '../random/seeded-random.js';
import { applySpatialAugmentation, drawSpatialAugmentation, type SpatialAugmentationOptions } from './spatial-augmentation.js';
import { MAX_VENTRICLE_FACTOR, createVentricleEnlarger, type VentricleEnlarger } from './ventricle-enlargement.js';

export interface LabelAugmentationOptions {
  /** Ventricle volume factor: a number, or [lo, hi] drawn uniformly per copy; default 1 (no enlargement). */
  ventricleFactor?: number | readonly [number, number];
  /** Accepted relative error of the ventricle factor; default 0.02. */
  ventricleTolerance?: number;
  spatial?: SpatialAugmentationOptions;
}

/** What the manifest records per output (augment-manifest.jsonl). */
export interface LabelAugmentationRecord {
  seed: number;
  index: number;
  ventricleFactorRequested: number;
  ventricleMlBefore: number;
  /** Ventricle volume of the output (after enlargement, deformation and flip). */
  ventricleMlAfter: number;
  icvMlBefore: number;
  icvMlAfter: number;
  flipped: boolean;
  /** Ventricle volume right after the enlargement, before the spatial deformation. */
  ventricleMlEnlarged: number;
  /** ventricleMlEnlarged / ventricleMlBefore. */
  ventricleFactorAchieved: number;
  affine: { applied: boolean; scaling: number[]; rotationDeg: number[]; shearing: number[]; translationMm: number[]; determinant: number };
  elastic: { applied: boolean; stdMm: number };
  /** Range of the Jacobian determinant of the spatial sampling map. */
  jacobian: { min: number; max: number };
}

/** Checks a ventricle factor or range and returns it as [lo, hi]. */
export function ventricleFactorRange(value: number | readonly [number, number] | undefined, source = 'ventricleFactor'): [number, number] {
  const range: [number, number] = value === undefined ? [1, 1] : typeof value === 'number' ? [value, value] : [value[0], value[1]];
  if (!range.every((v) => typeof v === 'number' && v >= 1 && v <= MAX_VENTRICLE_FACTOR) || range[0] > range[1])
    throw new RangeError(`${source} must be a factor in 1..${MAX_VENTRICLE_FACTOR} or a range lo:hi within it with lo <= hi, got ${JSON.stringify(value)}`);
  return range;
}

/** Throws unless every voxel holds one of the 33 SynthSeg labels. */
export function checkSynthSegLabels(volume: Volume, source: string): void {
  checkVolume(volume, source);
  const counts = [...labelCounts(volume).keys()].filter((v) => !SYNTHSEG_LABELS.includes(v));
  if (counts.length > 0)
    throw new RangeError(`${source}: values ${counts.slice(0, 8).join(', ')}${counts.length > 8 ? ', ...' : ''} are not SynthSeg labels (expected ${SYNTHSEG_LABELS.join(', ')}); prepare the map first (brain-ldm prepare-labels)`);
}

/**
 * Copy `index` of the map named `name` (the stream key; the CLI uses the input's basename). Pass an `enlarger` made
 * by createVentricleEnlarger for this map to reuse its flow field across copies.
 */
export function augmentLabelMap(
  volume: Volume<Uint8Array>, key: { seed: number; name: string; index: number }, options: LabelAugmentationOptions = {}, enlarger?: VentricleEnlarger,
): { volume: Volume<Uint8Array>; record: LabelAugmentationRecord } {
  const { seed, name, index } = key;
  if (!Number.isSafeInteger(seed)) throw new RangeError(`augmentLabelMap: 'seed' must be a safe integer, got ${seed}`);
  if (typeof name !== 'string' || name.length === 0) throw new TypeError(`augmentLabelMap: 'name' must be a non-empty string`);
  if (!Number.isSafeInteger(index) || index < 0) throw new RangeError(`augmentLabelMap: 'index' must be an integer >= 0, got ${index}`);
  if (!(volume.data instanceof Uint8Array)) throw new TypeError(`augmentLabelMap: field 'volume.data' must be a Uint8Array of SynthSeg labels`);
  const [lo, hi] = ventricleFactorRange(options.ventricleFactor);
  const rng = seededRandom(seed, 'augment-labels', name, index);
  // Always drawn first, so a fixed factor and a range leave the spatial draws the same.
  const u = rng.next();
  const factor = lo === hi ? lo : lo + (hi - lo) * u;
  const enlarged = (enlarger ?? createVentricleEnlarger(volume)).enlarge(factor, options.ventricleTolerance);
  const parameters = drawSpatialAugmentation(rng, volume, options.spatial);
  const spatial = applySpatialAugmentation(enlarged.volume, parameters);
  const out = spatial.volume;
  return {
    volume: out,
    record: {
      seed, index,
      ventricleFactorRequested: factor,
      ventricleMlBefore: enlarged.ventricleMlBefore,
      ventricleMlAfter: ventricleVolumeMl(out),
      icvMlBefore: enlarged.icvMlBefore,
      icvMlAfter: intracranialVolumeMl(out),
      flipped: parameters.flip,
      ventricleMlEnlarged: enlarged.ventricleMlAfter,
      ventricleFactorAchieved: enlarged.factorAchieved,
      affine: { applied: parameters.affine, scaling: parameters.scaling, rotationDeg: parameters.rotationDeg, shearing: parameters.shearing, translationMm: parameters.translationMm, determinant: spatial.affineDeterminant },
      elastic: { applied: parameters.elastic, stdMm: parameters.nonlinStdMm },
      jacobian: { min: spatial.minJacobian, max: spatial.maxJacobian },
    },
  };
}

