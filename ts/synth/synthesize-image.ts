/**
 * SynthSeg's label -> image generator without the spatial steps: given a label map, an MRI-like float32 image on the
 * same grid. It renders the image side of the training pairs for the SPADE image model and is the non-learned
 * baseline the evaluation compares against.
 *
 * Steps, in the order of SynthSeg's labels_to_image_model (EVALUATION.md 2.1; the spatial deformation, random crop
 * and flip of steps 1-3 are label augmentation and live in ts/augment, so the output keeps the map's geometry):
 *   1. GMM intensities per class (gmm-intensities.ts; T1 priors or random contrast);
 *   2. bias field (bias-field.ts), unless `bias: false`;
 *   3. clip to [0, 300] and min-max normalise, then gamma unless `gamma: false` (intensity-augmentation.ts);
 *   4. resolution randomisation: blur + low-resolution acquisition (resolution-blur.ts), unless `blur: false`;
 *   5. a final min-max normalisation to exactly [0, 1]. SynthSeg stops after step 4, whose output already lies in
 *      [0, 1] but need not reach 0 and 1; the image model is trained on full-range [0, 1] images, so we stretch.
 * There is no separate noise step: SynthSeg's default pipeline has none (its MimicAcquisition and
 * IntensityAugmentation noise options are off); the per-voxel GMM draw is the noise.
 *
 * Randomness: one seededRandom stream per step, keyed (seed, 'synthseg-image', ...streamKey, step), so an image is a
 * function of (seed, streamKey, options) alone, and switching a step off leaves the other steps' draws unchanged.
 */
import { affineZooms } from '../io/nifti.js';
import { checkVolume, type LabelVolume, type Triple, type Volume } from '../labels/label-volume.js';
import { seededRandom } from '../random/seeded-random.js';
import { applyBiasField, drawBiasField, type BiasFieldOptions } from './bias-field.js';
import { classLookup, describeGmm, drawGmmParameters, renderGmm } from './gmm-intensities.js';
import { applyGamma, clipInPlace, CLIP_MAX, drawGamma, KERAS_EPSILON, minMaxNormalise } from './intensity-augmentation.js';
import { simulateResolution, type ResolutionOptions, type SimulatedResolution } from './resolution-blur.js';
import { CONTRASTS, type Contrast } from './synthseg-priors.js';

export interface SynthesizeImageOptions {
  /** 't1' (default): SynthSeg's T1 priors; 'random': its uniform random contrast. */
  contrast?: Contrast;
  /** Bias field on/off (default on) and its settings. */
  bias?: boolean;
  biasField?: BiasFieldOptions;
  /** Gamma augmentation on/off (default on). */
  gamma?: boolean;
  /** Resolution randomisation (blur + low-resolution acquisition) on/off (default on) and its settings. */
  blur?: boolean;
  resolution?: ResolutionOptions;
  /** Names the label map in errors. */
  source?: string;
}

/** Everything drawn for one image, JSON-ready (the CLI's manifest `parameters`). */
export interface SynthesisParameters {
  gmm: ReturnType<typeof describeGmm>;
  bias: { applied: boolean; std: number; gridShape: Triple; logFieldMin: number; logFieldMax: number } | null;
  intensity: { clip: [number, number]; min: number; max: number; gamma: number | null };
  resolution: SimulatedResolution | null;
  output: { min: number; max: number };
}

export interface SynthesizedImage {
  image: Volume<Float32Array>;
  parameters: SynthesisParameters;
}

function checkOptions(o: SynthesizeImageOptions, source: string): Contrast {
  const contrast = o.contrast ?? 't1';
  if (!CONTRASTS.includes(contrast)) throw new RangeError(`${source}: option 'contrast' must be one of ${CONTRASTS.join(', ')}, got ${JSON.stringify(contrast)}`);
  for (const k of ['bias', 'gamma', 'blur'] as const) {
    if (o[k] !== undefined && typeof o[k] !== 'boolean') throw new TypeError(`${source}: option '${k}' must be a boolean, got ${JSON.stringify(o[k])}`);
  }
  return contrast;
}

/**
 * Renders one image for `labels` (SynthSeg or aseg-style generation labels). `seed` and `streamKey` name the random
 * streams (the CLI uses [label basename, image index]).
 */
export function synthesizeImage(labels: LabelVolume, seed: number, streamKey: ReadonlyArray<string | number>, options: SynthesizeImageOptions = {}): SynthesizedImage {
  const source = options.source ?? 'synthesizeImage';
  checkVolume(labels, source);
  const contrast = checkOptions(options, source);
  const stream = (step: string) => seededRandom(seed, 'synthseg-image', ...streamKey, step);
  const shape = labels.shape.slice() as Triple;

  const { lut, counts } = classLookup(labels, contrast, source);
  const gmm = drawGmmParameters(stream('gmm'), contrast);
  const image = renderGmm(labels, lut, gmm, stream('voxels'));

  let bias: SynthesisParameters['bias'] = null;
  if (options.bias !== false) {
    const b = drawBiasField(shape, stream('bias'), options.biasField);
    if (b.field) applyBiasField(image, b.field);
    let lo = Infinity;
    let hi = -Infinity;
    for (const v of b.grid) { lo = Math.min(lo, v); hi = Math.max(hi, v); }
    bias = { applied: b.applied, std: b.std, gridShape: b.gridShape, logFieldMin: lo, logFieldMax: hi };
  }

  clipInPlace(image, 0, CLIP_MAX);
  const range = minMaxNormalise(image, KERAS_EPSILON);
  let gamma: number | null = null;
  if (options.gamma !== false) {
    gamma = drawGamma(stream('gamma'));
    applyGamma(image, gamma);
  }

  let data = image;
  let resolution: SimulatedResolution | null = null;
  if (options.blur !== false) {
    const nativeMm = affineZooms(labels.affine) as Triple;
    ({ data, resolution } = simulateResolution(image, shape, nativeMm, stream('resolution'), options.resolution));
  }

  const output = minMaxNormalise(data);
  return {
    image: { data, shape, affine: labels.affine.map((r) => r.slice()) },
    parameters: {
      gmm: describeGmm(gmm, counts),
      bias,
      intensity: { clip: [0, CLIP_MAX], min: range.min, max: range.max, gamma },
      resolution,
      output,
    },
  };
}
