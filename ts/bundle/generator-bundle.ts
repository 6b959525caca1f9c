/**
 * A generator: the four networks of the two-stage labeled-pair recipe (Ruschke et al. 2024) and what ties them
 * together, as one directory:
 *
 *   generator.json
 *   mask-autoencoder/   model bundle: AutoencoderKL (+ EmbeddingWrapper), scaleFactor = 1/std of its latents
 *   mask-unet/          model bundle: DiffusionModelUNet with cross-attention context [volume, flag]; scheduler = training DDPM
 *   image-autoencoder/  model bundle: SPADEAutoencoderKL, scaleFactor
 *   image-unet/         model bundle: SPADEDiffusionModelUNet; scheduler
 *
 * generator.json:
 *   { "format": "brain-ldm-generator", "version": 1,
 *     "grid": { "orientation": "IPL", "shape": [48, 64, 48], "spacingMm": [3.334, 3.5, 3.334] },
 *     "labels": [0, 2, ..., 60],                       the label value of each one-hot channel (SynthSeg order)
 *     "mask":  { "autoencoder": "mask-autoencoder",  "unet": "mask-unet",  "latentShape": [3, 12, 16, 12] },
 *     "image": { "autoencoder": "image-autoencoder", "unet": "image-unet", "latentShape": [6, 12, 16, 12] },
 *     "conditioning": { "quantity": "ventricle-icv-ratio", "ventricleLabels": [4, 5, 43, 44, 14, 15],
 *                       "ratioMin": 0.01, "ratioMax": 0.08, "referenceIcvMl": 1450, "trainingVentricleMl": [12, 140],
 *                       "nullContext": { "convention": "thesis" }, "guidanceOrder": "cond-first" },
 *     "defaults": { "guidanceScale": 3, "solver": "dpm-solver++", "steps": 20 },
 *     "calibration": null | { "points": [[ml, condition], ...], "guidanceScale", "solver", "steps",
 *                             "samplesPerRequest", "seed", "date", "verification": {...} | null },
 *     "labelOffsets": null | { "offsets": [one per label], "referenceMaps", "targetVoxels": [...], "fittedMasks",
 *                              "guidanceScale", "solver", "steps", "seed", "date",
 *                              "meanVoxelsBefore": [...], "meanVoxelsAfter": [...] },
 *     "labelPresence": null | { "minVoxels": [one per label], "offsetMm": [[3] or null per label],
 *                               "radiusMm": [[3] per label], "minFraction", "referenceMaps", "date" } }
 *
 * The condition is the thesis' (MONAI-COMPAT.md 1.2): ventricle volume over intracranial volume, min-max
 * normalised over the training set with ratioMin/ratioMax. A request in mL becomes a ratio through referenceIcvMl
 * (the training set's median ICV), unless `brain-ldm calibrate` has measured a map from mL to condition.
 * labelOffsets (optional; `brain-ldm calibrate --label-reference`) are added to the mask decoder's logits before the
 * argmax (pipeline/label-offsets.ts); absent or null: plain argmax. labelPresence (optional; `brain-ldm calibrate
 * --presence-reference`, or with --label-reference) grows a label that a generated mask holds too few voxels of,
 * where the reference maps have it (pipeline/label-presence.ts); absent or null: masks as decoded.
 */
import { createHash } from 'node:crypto';
import { readFile, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { writeFileAtomically } from '../io/atomic-write.js';
import type { Affine } from '../io/nifti.js';
import { axcodesToOrientation } from '../labels/label-volume.js';
import { SCHEDULER_TYPES, type SchedulerType } from '../schedulers/index.js';
import { GUIDANCE_ORDERS, type GuidanceOrder, type NullContextSpec } from '../pipeline/guidance.js';
import type { LabelPresenceStats } from '../pipeline/label-presence.js';
import { JsonChecker, type JsonObject } from './json-checker.js';
import { readBundle, type ModelBundle, type NetworkClass } from './model-bundle.js';

export const GENERATOR_FORMAT = 'brain-ldm-generator';
export const GENERATOR_VERSION = 1;
export const GENERATOR_JSON = 'generator.json';

export interface GeneratorGrid {
  orientation: string;
  shape: [number, number, number];
  spacingMm: [number, number, number];
}

export interface GeneratorStage {
  /** Bundle directory of the autoencoder, relative to the generator directory. */
  autoencoder: string;
  /** Bundle directory of the diffusion UNet, relative to the generator directory. */
  unet: string;
  /** Latent [C, D, H, W] of one sample (the batch dimension is not included). */
  latentShape: number[];
}

/** The null condition of classifier-free guidance (see nullContext in pipeline/guidance.ts); thesis: [u, 0], u drawn per sample. */
export type NullContextConfig =
  | { convention: 'thesis' }
  | { convention: 'monai'; fillValue?: number }
  | { convention: 'vector'; vector: number[] };

export interface VolumeConditioning {
  quantity: 'ventricle-icv-ratio';
  ventricleLabels: number[];
  ratioMin: number;
  ratioMax: number;
  referenceIcvMl: number;
  /** Smallest and largest ventricle volume (mL) in the training set: requests outside extrapolate. */
  trainingVentricleMl: [number, number];
  /** The unconditional path of classifier-free guidance; null when the model was trained without condition dropout (guidance 1 only). */
  nullContext: NullContextConfig | null;
  guidanceOrder: GuidanceOrder;
}

export interface GeneratorDefaults {
  guidanceScale: number;
  solver: SchedulerType;
  steps: number;
}

/** A measured, monotone map from requested ventricle volume (mL) to condition, and the settings it holds for. */
export interface VolumeCalibration {
  /** [ml, condition] pairs, both strictly increasing. */
  points: Array<[number, number]>;
  guidanceScale: number;
  solver: SchedulerType;
  steps: number;
  samplesPerRequest: number;
  seed: number;
  date: string;
  /** Achieved-vs-requested error of a run made with the calibrated map (brain-ldm calibrate --verify). */
  verification: JsonObject | null;
}

/** Per-label logit offsets of the mask decoder's argmax and how they were fitted (pipeline/label-offsets.ts). */
export interface LabelOffsets {
  /** One offset per entry of `labels` (channel order), in logits. */
  offsets: number[];
  /** Label maps the targets were measured on, and their mean voxels per label. */
  referenceMaps: number;
  targetVoxels: number[];
  /** Generated masks the offsets were fitted on, and the settings that made them. */
  fittedMasks: number;
  guidanceScale: number;
  solver: SchedulerType;
  steps: number;
  seed: number;
  date: string;
  /** Mean voxels per label over the fitted masks without and with the offsets. */
  meanVoxelsBefore: number[];
  meanVoxelsAfter: number[];
}

/** Where each label belongs and its minimum size (pipeline/label-presence.ts), and the maps they were measured on. */
export interface LabelPresence extends LabelPresenceStats {
  minFraction: number;
  referenceMaps: number;
  date: string;
}

export interface GeneratorConfig {
  format: typeof GENERATOR_FORMAT;
  version: typeof GENERATOR_VERSION;
  grid: GeneratorGrid;
  labels: number[];
  mask: GeneratorStage;
  image: GeneratorStage;
  conditioning: VolumeConditioning;
  defaults: GeneratorDefaults;
  calibration: VolumeCalibration | null;
  labelOffsets: LabelOffsets | null;
  labelPresence: LabelPresence | null;
}

export interface Generator {
  dir: string;
  config: GeneratorConfig;
  maskAutoencoder: ModelBundle;
  maskUnet: ModelBundle;
  imageAutoencoder: ModelBundle;
  imageUnet: ModelBundle;
}

function strictlyIncreasing(v: readonly number[]): boolean {
  return v.every((x, i) => i === 0 || x > v[i - 1]);
}

function validateStage(c: JsonChecker, raw: unknown, path: string): GeneratorStage {
  const o = c.object(raw, path);
  c.only(o, path, ['autoencoder', 'unet', 'latentShape']);
  const dir = (k: string) => {
    const v = c.string(o[k], `${path}.${k}`, 'a bundle directory name relative to the generator');
    if (v.includes('..') || v.startsWith('/')) c.fail(`${path}.${k}`, 'a relative path inside the generator directory', v, RangeError);
    return v;
  };
  const latentShape = c.positiveInts(o.latentShape, `${path}.latentShape`);
  if (latentShape.length !== 4) c.fail(`${path}.latentShape`, '[channels, D, H, W]', o.latentShape, RangeError);
  return { autoencoder: dir('autoencoder'), unet: dir('unet'), latentShape };
}

function validateNullContext(c: JsonChecker, raw: unknown, path: string): NullContextConfig {
  const o = c.object(raw, path);
  switch (o.convention) {
    case 'thesis':
      c.only(o, path, ['convention']);
      return { convention: 'thesis' };
    case 'monai':
      c.only(o, path, ['convention'], ['fillValue']);
      return o.fillValue === undefined ? { convention: 'monai' } : { convention: 'monai', fillValue: c.finite(o.fillValue, `${path}.fillValue`) };
    case 'vector': {
      c.only(o, path, ['convention', 'vector']);
      if (!Array.isArray(o.vector) || o.vector.length === 0) c.fail(`${path}.vector`, 'a non-empty array of numbers', o.vector);
      return { convention: 'vector', vector: (o.vector as unknown[]).map((x, i) => c.finite(x, `${path}.vector[${i}]`)) };
    }
    default:
      return c.fail(`${path}.convention`, '"thesis", "monai" or "vector"', o.convention, RangeError);
  }
}

function validateSolver(c: JsonChecker, v: unknown, path: string): SchedulerType {
  if (!SCHEDULER_TYPES.includes(v as SchedulerType)) c.fail(path, `one of ${SCHEDULER_TYPES.join(', ')}`, v, RangeError);
  return v as SchedulerType;
}

function validateSteps(c: JsonChecker, v: unknown, path: string): number {
  if (!Number.isSafeInteger(v) || (v as number) < 1) c.fail(path, 'a positive integer', v);
  return v as number;
}

function validateCalibration(c: JsonChecker, raw: unknown, path: string): VolumeCalibration | null {
  if (raw === null) return null;
  const o = c.object(raw, path);
  c.only(o, path, ['points', 'guidanceScale', 'solver', 'steps', 'samplesPerRequest', 'seed', 'date', 'verification']);
  if (!Array.isArray(o.points) || o.points.length < 2) c.fail(`${path}.points`, 'an array of at least two [ml, condition] pairs', o.points);
  const points = (o.points as unknown[]).map((p, i): [number, number] => {
    if (!Array.isArray(p) || p.length !== 2) c.fail(`${path}.points[${i}]`, 'an [ml, condition] pair', p);
    return [c.finite(p[0], `${path}.points[${i}][0]`), c.finite(p[1], `${path}.points[${i}][1]`)];
  });
  if (!strictlyIncreasing(points.map((p) => p[0])) || !strictlyIncreasing(points.map((p) => p[1])))
    c.fail(`${path}.points`, 'strictly increasing in both mL and condition (a monotone map)', o.points, RangeError);
  if (!Number.isSafeInteger(o.samplesPerRequest) || (o.samplesPerRequest as number) < 1) c.fail(`${path}.samplesPerRequest`, 'a positive integer', o.samplesPerRequest);
  if (!Number.isSafeInteger(o.seed) || (o.seed as number) < 0) c.fail(`${path}.seed`, 'a non-negative integer', o.seed);
  if (typeof o.date !== 'string' || Number.isNaN(Date.parse(o.date))) c.fail(`${path}.date`, 'an ISO 8601 date-time', o.date);
  return {
    points,
    guidanceScale: c.finite(o.guidanceScale, `${path}.guidanceScale`),
    solver: validateSolver(c, o.solver, `${path}.solver`),
    steps: validateSteps(c, o.steps, `${path}.steps`),
    samplesPerRequest: o.samplesPerRequest as number,
    seed: o.seed as number,
    date: o.date as string,
    verification: c.jsonObjectOrNull(o.verification, `${path}.verification`),
  };
}

function validateLabelOffsets(c: JsonChecker, raw: unknown, path: string, labelCount: number): LabelOffsets | null {
  if (raw === undefined || raw === null) return null;
  const o = c.object(raw, path);
  const keys = ['offsets', 'referenceMaps', 'targetVoxels', 'fittedMasks', 'guidanceScale', 'solver', 'steps', 'seed', 'date', 'meanVoxelsBefore', 'meanVoxelsAfter'] as const;
  c.only(o, path, [...keys]);
  const perLabel = (key: 'offsets' | 'targetVoxels' | 'meanVoxelsBefore' | 'meanVoxelsAfter') => {
    const v = o[key];
    if (!Array.isArray(v) || v.length !== labelCount) c.fail(`${path}.${key}`, `an array of ${labelCount} numbers (one per entry of labels)`, v);
    return (v as unknown[]).map((x, i) => c.finite(x, `${path}.${key}[${i}]`));
  };
  const offsets = perLabel('offsets');
  offsets.forEach((x, i) => { if (Math.abs(x) > 16) c.fail(`${path}.offsets[${i}]`, 'an offset within [-16, 16] logits', x, RangeError); });
  for (const key of ['referenceMaps', 'fittedMasks'] as const)
    if (!Number.isSafeInteger(o[key]) || (o[key] as number) < 1) c.fail(`${path}.${key}`, 'a positive integer', o[key]);
  if (!Number.isSafeInteger(o.seed) || (o.seed as number) < 0) c.fail(`${path}.seed`, 'a non-negative integer', o.seed);
  if (typeof o.date !== 'string' || Number.isNaN(Date.parse(o.date))) c.fail(`${path}.date`, 'an ISO 8601 date-time', o.date);
  return {
    offsets, referenceMaps: o.referenceMaps as number, targetVoxels: perLabel('targetVoxels'), fittedMasks: o.fittedMasks as number,
    guidanceScale: c.finite(o.guidanceScale, `${path}.guidanceScale`), solver: validateSolver(c, o.solver, `${path}.solver`),
    steps: validateSteps(c, o.steps, `${path}.steps`), seed: o.seed as number, date: o.date as string,
    meanVoxelsBefore: perLabel('meanVoxelsBefore'), meanVoxelsAfter: perLabel('meanVoxelsAfter'),
  };
}

function validateLabelPresence(c: JsonChecker, raw: unknown, path: string, labelCount: number): LabelPresence | null {
  if (raw === undefined || raw === null) return null;
  const o = c.object(raw, path);
  c.only(o, path, ['minVoxels', 'offsetMm', 'radiusMm', 'minFraction', 'referenceMaps', 'date']);
  const perLabel = (key: string) => {
    const v = o[key];
    if (!Array.isArray(v) || v.length !== labelCount) c.fail(`${path}.${key}`, `an array of ${labelCount} entries (one per entry of labels)`, v);
    return v as unknown[];
  };
  const minVoxels = perLabel('minVoxels').map((x, i) => {
    if (!Number.isSafeInteger(x) || (x as number) < 0) c.fail(`${path}.minVoxels[${i}]`, 'a non-negative integer', x);
    return x as number;
  });
  const offsetMm = perLabel('offsetMm').map((x, i): [number, number, number] | null => {
    if (x === null) return null;
    if (!Array.isArray(x) || x.length !== 3) c.fail(`${path}.offsetMm[${i}]`, 'null or [3 numbers] (mm per grid axis)', x);
    return (x as unknown[]).map((y, k) => c.finite(y, `${path}.offsetMm[${i}][${k}]`)) as [number, number, number];
  });
  const radiusMm = perLabel('radiusMm').map((x, i): [number, number, number] => {
    if (!Array.isArray(x) || x.length !== 3) c.fail(`${path}.radiusMm[${i}]`, '[3 radii] (mm per grid axis)', x);
    return (x as unknown[]).map((y, k) => {
      const r = c.finite(y, `${path}.radiusMm[${i}][${k}]`);
      // A label with a position needs a region with room in it.
      if (offsetMm[i] === null ? r < 0 : !(r > 0)) c.fail(`${path}.radiusMm[${i}][${k}]`, offsetMm[i] === null ? 'a radius >= 0 (mm)' : 'a radius > 0 (mm)', y, RangeError);
      return r;
    }) as [number, number, number];
  });
  const minFraction = c.finite(o.minFraction, `${path}.minFraction`);
  if (!(minFraction > 0 && minFraction <= 1)) c.fail(`${path}.minFraction`, 'a fraction in (0, 1]', o.minFraction, RangeError);
  if (!Number.isSafeInteger(o.referenceMaps) || (o.referenceMaps as number) < 1) c.fail(`${path}.referenceMaps`, 'a positive integer', o.referenceMaps);
  if (typeof o.date !== 'string' || Number.isNaN(Date.parse(o.date))) c.fail(`${path}.date`, 'an ISO 8601 date-time', o.date);
  return { minVoxels, offsetMm, radiusMm, minFraction, referenceMaps: o.referenceMaps as number, date: o.date as string };
}

/** Validates a parsed generator.json; `file` names it in errors. Returns a normalised copy. */
export function validateGeneratorConfig(raw: unknown, file = GENERATOR_JSON): GeneratorConfig {
  const c = new JsonChecker(file);
  const o = c.object(raw, '(top level)');
  c.only(o, '', ['format', 'version', 'grid', 'labels', 'mask', 'image', 'conditioning', 'defaults', 'calibration'], ['labelOffsets', 'labelPresence']);
  if (o.format !== GENERATOR_FORMAT) c.fail('format', `"${GENERATOR_FORMAT}"`, o.format);
  if (o.version !== GENERATOR_VERSION) c.fail('version', `${GENERATOR_VERSION} (this brain-ldm reads version ${GENERATOR_VERSION} generators)`, o.version, RangeError);

  const g = c.object(o.grid, 'grid');
  c.only(g, 'grid', ['orientation', 'shape', 'spacingMm']);
  const orientation = c.string(g.orientation, 'grid.orientation', 'axis codes such as "IPL"');
  try {
    axcodesToOrientation(orientation, 'grid.orientation');
  } catch {
    c.fail('grid.orientation', 'three axis codes, one of L/R, one of P/A, one of I/S, such as "IPL"', orientation, RangeError);
  }
  const shape = c.positiveInts(g.shape, 'grid.shape');
  if (shape.length !== 3) c.fail('grid.shape', '3 positive integers', g.shape, RangeError);
  if (!Array.isArray(g.spacingMm) || g.spacingMm.length !== 3) c.fail('grid.spacingMm', '3 positive numbers (mm)', g.spacingMm);
  const spacingMm = (g.spacingMm as unknown[]).map((x, i) => c.positive(x, `grid.spacingMm[${i}]`));

  if (!Array.isArray(o.labels) || o.labels.length < 2 || !o.labels.every((l) => Number.isSafeInteger(l) && l >= 0 && l <= 255))
    c.fail('labels', 'an array of at least 2 label values in 0..255 (one per one-hot channel)', o.labels);
  const labels = (o.labels as number[]).slice();
  if (new Set(labels).size !== labels.length) c.fail('labels', 'distinct label values', o.labels, RangeError);
  if (labels[0] !== 0) c.fail('labels[0]', '0 (background is channel 0)', labels[0], RangeError);

  const mask = validateStage(c, o.mask, 'mask');
  const image = validateStage(c, o.image, 'image');
  for (const [name, st] of [['mask', mask], ['image', image]] as const)
    for (let a = 0; a < 3; a++)
      if (shape[a] % st.latentShape[a + 1] !== 0)
        c.fail(`${name}.latentShape`, `spatial sizes dividing grid.shape [${shape.join(', ')}]`, st.latentShape, RangeError);

  const k = c.object(o.conditioning, 'conditioning');
  c.only(k, 'conditioning', ['quantity', 'ventricleLabels', 'ratioMin', 'ratioMax', 'referenceIcvMl', 'trainingVentricleMl', 'nullContext', 'guidanceOrder']);
  if (k.quantity !== 'ventricle-icv-ratio') c.fail('conditioning.quantity', '"ventricle-icv-ratio"', k.quantity, RangeError);
  if (!Array.isArray(k.ventricleLabels) || k.ventricleLabels.length === 0 || !k.ventricleLabels.every((l) => labels.includes(l as number)))
    c.fail('conditioning.ventricleLabels', 'a non-empty array of values from labels', k.ventricleLabels);
  const ratioMin = c.finite(k.ratioMin, 'conditioning.ratioMin');
  const ratioMax = c.finite(k.ratioMax, 'conditioning.ratioMax');
  if (!(ratioMin >= 0 && ratioMax > ratioMin && ratioMax < 1)) c.fail('conditioning.ratioMax', `a ratio in (ratioMin ${ratioMin}, 1)`, k.ratioMax, RangeError);
  const referenceIcvMl = c.positive(k.referenceIcvMl, 'conditioning.referenceIcvMl');
  if (!Array.isArray(k.trainingVentricleMl) || k.trainingVentricleMl.length !== 2) c.fail('conditioning.trainingVentricleMl', '[smallest, largest] in mL', k.trainingVentricleMl);
  const tv = (k.trainingVentricleMl as unknown[]).map((x, i) => c.positive(x, `conditioning.trainingVentricleMl[${i}]`)) as [number, number];
  if (!(tv[1] > tv[0])) c.fail('conditioning.trainingVentricleMl', '[smallest, largest] with largest > smallest', k.trainingVentricleMl, RangeError);
  const nullContext = k.nullContext === null ? null : validateNullContext(c, k.nullContext, 'conditioning.nullContext');
  if (!GUIDANCE_ORDERS.includes(k.guidanceOrder as GuidanceOrder)) c.fail('conditioning.guidanceOrder', '"cond-first" or "uncond-first"', k.guidanceOrder, RangeError);

  const d = c.object(o.defaults, 'defaults');
  c.only(d, 'defaults', ['guidanceScale', 'solver', 'steps']);
  const guidanceScale = c.finite(d.guidanceScale, 'defaults.guidanceScale');
  if (guidanceScale < 0) c.fail('defaults.guidanceScale', 'a number >= 0', d.guidanceScale, RangeError);
  if (nullContext === null && guidanceScale !== 1)
    c.fail('defaults.guidanceScale', '1 (conditioning.nullContext is null: the model has no unconditional path)', d.guidanceScale, RangeError);

  return {
    format: GENERATOR_FORMAT,
    version: GENERATOR_VERSION,
    grid: { orientation, shape: shape as [number, number, number], spacingMm: spacingMm as [number, number, number] },
    labels,
    mask,
    image,
    conditioning: {
      quantity: 'ventricle-icv-ratio', ventricleLabels: (k.ventricleLabels as number[]).slice(), ratioMin, ratioMax,
      referenceIcvMl, trainingVentricleMl: tv, nullContext, guidanceOrder: k.guidanceOrder as GuidanceOrder,
    },
    defaults: { guidanceScale, solver: validateSolver(c, d.solver, 'defaults.solver'), steps: validateSteps(c, d.steps, 'defaults.steps') },
    calibration: validateCalibration(c, o.calibration, 'calibration'),
    labelOffsets: validateLabelOffsets(c, o.labelOffsets, 'labelOffsets', labels.length),
    labelPresence: validateLabelPresence(c, o.labelPresence, 'labelPresence', labels.length),
  };
}

/**
 * The affine of generated volumes: voxel axes along the grid's axis codes with its spacing, the grid centre at the
 * world origin (a generated brain has no scanner position; centring keeps viewers and nnU-Net's planner happy).
 */
export function generatorGridAffine(grid: GeneratorGrid): Affine {
  const orientation = axcodesToOrientation(grid.orientation, 'generatorGridAffine');
  const a: Affine = [[0, 0, 0, 0], [0, 0, 0, 0], [0, 0, 0, 0], [0, 0, 0, 1]];
  orientation.forEach(([world, sign], axis) => {
    a[world][axis] = sign * grid.spacingMm[axis];
  });
  for (let r = 0; r < 3; r++) {
    let centre = 0;
    for (let axis = 0; axis < 3; axis++) centre += a[r][axis] * (grid.shape[axis] - 1) / 2;
    a[r][3] = -centre;
  }
  return a;
}

/** The null context spec for one sampling call; the thesis' u is drawn by the caller. */
export function nullContextSpec(config: NullContextConfig, u: number): NullContextSpec {
  return config.convention === 'thesis' ? { convention: 'thesis', u } : config;
}

async function readJson(path: string, what: string): Promise<unknown> {
  const text = await readFile(path, 'utf8').catch((e: NodeJS.ErrnoException) => {
    if (e.code === 'ENOENT') throw new RangeError(`${what}: ${path} is missing`);
    throw e;
  });
  try {
    return JSON.parse(text);
  } catch (e) {
    throw new TypeError(`${path}: not valid JSON: ${(e as Error).message}`);
  }
}

/** Reads and validates `<dir>/generator.json` (the networks are not loaded). */
export async function readGeneratorConfig(dir: string): Promise<GeneratorConfig> {
  if (typeof dir !== 'string' || dir.length === 0) throw new TypeError(`readGeneratorConfig: argument 'dir' must be a non-empty string`);
  const info = await stat(dir).catch(() => null);
  if (!info) throw new RangeError(`generator ${dir}: no such directory`);
  if (!info.isDirectory()) throw new TypeError(`generator ${dir}: not a directory (a generator is a directory with ${GENERATOR_JSON} and four model bundles)`);
  const path = join(dir, GENERATOR_JSON);
  return validateGeneratorConfig(await readJson(path, `generator ${dir}`), path);
}

const EXPECTED_CLASSES: ReadonlyArray<[keyof Omit<Generator, 'dir' | 'config'>, 'mask' | 'image', 'autoencoder' | 'unet', NetworkClass]> = [
  ['maskAutoencoder', 'mask', 'autoencoder', 'AutoencoderKL'],
  ['maskUnet', 'mask', 'unet', 'DiffusionModelUNet'],
  ['imageAutoencoder', 'image', 'autoencoder', 'SPADEAutoencoderKL'],
  ['imageUnet', 'image', 'unet', 'SPADEDiffusionModelUNet'],
];

/**
 * Reads a generator directory: generator.json and its four bundles, checked to be the right network classes,
 * with scale factors on the autoencoders and training schedulers on the UNets.
 */
export async function readGenerator(dir: string): Promise<Generator> {
  const config = await readGeneratorConfig(dir);
  const out: Partial<Generator> = { dir, config };
  for (const [key, stage, role, cls] of EXPECTED_CLASSES) {
    const rel = config[stage][role];
    const bundleDir = join(dir, rel);
    const bundle = await readBundle(bundleDir).catch((e: Error) => {
      throw new (e.constructor as new (m: string) => Error)(`generator ${dir}: ${stage}.${role} '${rel}': ${e.message}`);
    });
    const where = `${join(bundleDir, 'model.json')}`;
    if (bundle.config.network.class !== cls)
      throw new RangeError(`${where}: field 'network.class' must be ${cls} for the generator's ${stage}.${role}, got ${bundle.config.network.class}`);
    if (role === 'autoencoder' && bundle.config.scaleFactor === null)
      throw new RangeError(`${where}: field 'scaleFactor' must be set for the generator's ${stage} autoencoder (1/std of its training latents), got null`);
    if (role === 'unet' && bundle.config.scheduler === null)
      throw new RangeError(`${where}: field 'scheduler' must hold the training scheduler's MONAI arguments for the generator's ${stage} UNet, got null`);
    out[key] = bundle;
  }
  return out as Generator;
}

/**
 * What identifies a generator's networks and settings independently of where it lies: sha256 over generator.json
 * without its calibration and the four bundles' weight hashes (provenance.sha256). Label offsets and label presence
 * count (they change the label maps of the same sample); a generator without them hashes as it did before they existed. Output folders record it so a
 * resumed run is the same run.
 */
export function generatorFingerprint(g: Generator): string {
  const { calibration: _calibration, labelOffsets, labelPresence, ...rest } = g.config;
  const config = {
    ...rest, ...(labelOffsets ? { labelOffsets: labelOffsets.offsets } : {}),
    ...(labelPresence ? { labelPresence: [labelPresence.minVoxels, labelPresence.offsetMm, labelPresence.radiusMm] } : {}),
  };
  const hash = createHash('sha256').update(JSON.stringify(config));
  for (const b of [g.maskAutoencoder, g.maskUnet, g.imageAutoencoder, g.imageUnet]) hash.update(b.config.provenance.sha256).update(JSON.stringify(b.config.network));
  return hash.digest('hex');
}

/** Writes generator.json atomically after validating it (used by calibrate and the exporters). */
export async function writeGeneratorConfig(dir: string, config: GeneratorConfig): Promise<void> {
  const valid = validateGeneratorConfig(config, `writeGeneratorConfig: ${join(dir, GENERATOR_JSON)}`);
  await writeFileAtomically(join(dir, GENERATOR_JSON), [Buffer.from(`${JSON.stringify(valid, null, 2)}\n`, 'utf8')]);
}
