/**
 * Many labeled pairs into a folder, the way a dataset is made: sample i of a run is a function of (generator,
 * seed, i, settings) only, so runs resume after a kill, split across machines by shard, and any sample regenerates
 * alone with identical bytes.
 *
 * Folder layout (`out`):
 *   run.json                              the settings; a later run into the folder must use the same ones
 *   sample_000007_image.nii.gz            float32 image in [0, 1]
 *   sample_000007_labels.nii.gz           uint8 SynthSeg label values, same geometry
 *   png/sample_000007.png                 with --png: three-plane montage with the label overlay
 *   DatasetNNN_Name/...                   with --nnunet: an nnU-Net v2 raw dataset of the same pairs
 *   manifest.jsonl                        one line per finished sample (manifest.shard-I-of-N.jsonl per shard)
 *
 * A sample counts as finished when its manifest line exists and its files are there; the manifest line is written
 * last, after every file of the sample has been renamed into place, so a kill at any moment leaves either a
 * finished sample or one that is generated again (to the same bytes). A manifest line cut short by a kill is
 * dropped when the run resumes.
 */
import { mkdir, open, readdir, readFile, stat, truncate, unlink, type FileHandle } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import type { Backend, BackendOptions } from '../backend/types.js';
import { loadBackend } from '../backend/select.js';
import { generatorFingerprint, generatorGridAffine, readGenerator, type Generator } from '../bundle/generator-bundle.js';
import { NnunetDatasetWriter, type NnunetTask } from '../export/nnunet-dataset.js';
import { writeMontagePng } from '../export/png-montage.js';
import type { VolumeDistribution } from '../export/volume-distribution.js';
import { writeFileAtomically, writeAll } from '../io/atomic-write.js';
import { labelCounts, voxelVolumeMm3, writeVolume, type Volume } from '../labels/label-volume.js';
import { tensorToVolumeOrder } from '../labels/voxel-order.js';
import { SCHEDULER_TYPES, type SchedulerType } from '../schedulers/index.js';
import { checkGuidanceScale } from './guidance.js';
import { LabeledPairGenerator, type PairStage } from './labeled-pair-generator.js';
import { conditionForVolumeMl, conditionGiven, type ResolvedCondition } from './volume-condition.js';

/** What ventricle volume each sample asks for. */
export type VolumeRequest =
  | { kind: 'ml'; ml: number }
  | { kind: 'distribution'; distribution: VolumeDistribution }
  | { kind: 'condition'; condition: number };

export interface GenerateDatasetOptions {
  /** Generator directory (generator.json + four bundles) or one already read. */
  generator: string | Generator;
  /** Number of samples in the whole dataset (all shards together). */
  count: number;
  seed: number;
  volume: VolumeRequest;
  /** Defaults: the generator's `defaults`. */
  guidanceScale?: number;
  solver?: SchedulerType;
  steps?: number;
  /** Grow labels a mask holds too few voxels of where they belong (default true; only where the generator has labelPresence). */
  repairLabels?: boolean;
  /** Output folder; without one, samples are only yielded (no files, no resume). */
  out?: string;
  /** This process makes the samples i with i % count === index. */
  shard?: { index: number; count: number };
  nnunet?: { dataset: string; task: NnunetTask } | null;
  png?: boolean;
  /** A backend to use (kept open), or options to load one (disposed at the end). */
  backend?: Backend;
  backendOptions?: BackendOptions;
  onEvent?: (event: GenerateEvent) => void;
}

export type GenerateEvent =
  | { type: 'start'; total: number; todo: number; done: number; backend: string }
  | { type: 'step'; index: number; stage: PairStage; stepIndex: number; totalSteps: number }
  | { type: 'sample'; record: ManifestRecord }
  | { type: 'warning'; message: string };

export interface ManifestRecord {
  index: number;
  seed: number;
  requested: { ventricleMl: number | null; condition: number; conditionSource: ResolvedCondition['source']; extrapolated: boolean };
  achieved: { ventricleMl: number; ventricleMlByLabel: Record<string, number>; icvMl: number; ventricleIcvRatio: number };
  files: { image: string; labels: string; png?: string; nnunetImage?: string; nnunetLabels?: string } | null;
  settings: { guidanceScale: number; solver: SchedulerType; steps: number };
  /** Labels the label presence repair grew in this mask (label-presence.ts), those the decoder left out entirely, and
   * voxels relabelled; null: no repair ran. */
  labelRepair?: { labels: number[]; missing: number[]; voxels: number } | null;
  seconds: { mask: number; image: number; total: number };
  backend: string;
}

export interface GeneratedSample {
  index: number;
  labels: Volume<Uint8Array>;
  image: Volume<Float32Array>;
  record: ManifestRecord;
}

const RUN_JSON = 'run.json';

function fail(option: string, expected: string, got: unknown): never {
  throw new RangeError(`generate: option '${option}' must be ${expected}, got ${JSON.stringify(got) ?? String(got)}`);
}

function round(v: number, digits = 4): number {
  const f = 10 ** digits;
  return Math.round(v * f) / f;
}

/** Sample file stem: zero-padded to at least 6 digits, more when the count needs them. */
export function sampleStem(index: number, count: number): string {
  return `sample_${String(index).padStart(Math.max(6, String(count - 1).length), '0')}`;
}

/** The indices this shard makes, in order. */
export function shardIndices(count: number, shard?: { index: number; count: number }): number[] {
  const out: number[] = [];
  const n = shard?.count ?? 1;
  const k = shard?.index ?? 0;
  for (let i = k; i < count; i += n) out.push(i);
  return out;
}

function manifestName(shard?: { index: number; count: number }): string {
  return shard && shard.count > 1 ? `manifest.shard-${shard.index}-of-${shard.count}.jsonl` : 'manifest.jsonl';
}

/**
 * The records of every manifest in an output folder (all shards), by sample index. A last line without its newline
 * (a kill during the append) is not a record; with `repairManifest` naming this process's manifest, it is cut off
 * so the next append starts on a clean line.
 */
export async function readManifestRecords(out: string, repairManifest?: string): Promise<Map<number, ManifestRecord>> {
  const finished = new Map<number, ManifestRecord>();
  const names = (await readdir(out)).filter((f) => /^manifest(\.shard-\d+-of-\d+)?\.jsonl$/.test(f)).sort();
  for (const name of names) {
    const path = join(out, name);
    const text = await readFile(path, 'utf8');
    const end = text.lastIndexOf('\n') + 1;
    if (end < text.length && name === repairManifest) await truncate(path, Buffer.byteLength(text.slice(0, end), 'utf8'));
    for (const line of text.slice(0, end).split('\n')) {
      if (!line.trim()) continue;
      try {
        const r = JSON.parse(line) as ManifestRecord;
        if (Number.isSafeInteger(r.index)) finished.set(r.index, r);
      } catch {
        throw new RangeError(`${path}: a manifest line is not JSON (${line.slice(0, 60)}...); the folder holds something other than a brain-ldm run`);
      }
    }
  }
  return finished;
}

async function exists(path: string): Promise<boolean> {
  return (await stat(path).catch(() => null)) !== null;
}

function volumeRequestJson(v: VolumeRequest): unknown {
  return v.kind === 'distribution' ? { kind: 'distribution', spec: v.distribution.spec } : v;
}

/** run.json: what makes sample i what it is. A folder holds one run; resuming or adding shards needs the same settings. */
async function checkRunSettings(out: string, settings: Record<string, unknown>): Promise<void> {
  const path = join(out, RUN_JSON);
  const text = await readFile(path, 'utf8').catch((e: NodeJS.ErrnoException) => (e.code === 'ENOENT' ? null : Promise.reject(e)));
  if (text === null) {
    await writeFileAtomically(path, [Buffer.from(`${JSON.stringify(settings, null, 2)}\n`, 'utf8')]);
    return;
  }
  let previous: Record<string, unknown>;
  try {
    previous = JSON.parse(text);
  } catch {
    throw new RangeError(`${path}: not valid JSON; is ${out} a brain-ldm output folder?`);
  }
  const differing = Object.keys({ ...previous, ...settings }).filter((k) => JSON.stringify(previous[k]) !== JSON.stringify(settings[k]));
  if (differing.length)
    throw new RangeError(`${out} holds a run with other settings (${differing.map((k) => `${k}: ${JSON.stringify(previous[k])} there, ${JSON.stringify(settings[k])} now`).join('; ')}); use another --out folder, or the same settings to resume`);
}

/** Validates options and fills defaults from the generator. */
function resolveSettings(o: GenerateDatasetOptions, g: Generator) {
  if (!Number.isSafeInteger(o.count) || o.count < 1) fail('count', 'a positive integer', o.count);
  if (!Number.isSafeInteger(o.seed) || o.seed < 0) fail('seed', 'a non-negative integer', o.seed);
  const guidanceScale = o.guidanceScale ?? g.config.defaults.guidanceScale;
  if (g.config.conditioning.nullContext === null && guidanceScale !== 1)
    fail('guidance', `1: ${join(g.dir, 'generator.json')} has no unconditional path (conditioning.nullContext is null), so classifier-free guidance cannot run`, guidanceScale);
  checkGuidanceScale('generate', guidanceScale, true);
  const solver = o.solver ?? g.config.defaults.solver;
  if (!SCHEDULER_TYPES.includes(solver)) fail('solver', `one of ${SCHEDULER_TYPES.join(', ')}`, solver);
  const steps = o.steps ?? g.config.defaults.steps;
  if (!Number.isSafeInteger(steps) || steps < 1) fail('steps', 'a positive integer', steps);
  if (o.shard) {
    const { index, count } = o.shard;
    if (!Number.isSafeInteger(count) || count < 1) fail('shard', 'i/n with n a positive integer', `${index}/${count}`);
    if (!Number.isSafeInteger(index) || index < 0 || index >= count) fail('shard', `i/n with 0 <= i < n (${count})`, `${index}/${count}`);
  }
  const v = o.volume;
  if (!v || typeof v !== 'object') fail('volume', "{ kind: 'ml' | 'distribution' | 'condition', ... }", v);
  if (v.kind === 'ml') conditionForVolumeMl(v.ml, g.config.conditioning, null); // throws for a bad number
  else if (v.kind === 'condition') conditionGiven(v.condition);
  else if (v.kind !== 'distribution') fail('volume.kind', "'ml', 'distribution' or 'condition'", (v as { kind: unknown }).kind);
  return { guidanceScale, solver, steps };
}

function requestFor(v: VolumeRequest, g: Generator, index: number, seed: number): { ml: number | null; resolved: ResolvedCondition } {
  const k = g.config.conditioning;
  if (v.kind === 'condition') return { ml: null, resolved: conditionGiven(v.condition) };
  const ml = v.kind === 'ml' ? v.ml : v.distribution.draw(index, seed);
  return { ml, resolved: conditionForVolumeMl(ml, k, g.config.calibration) };
}

/** Achieved volumes of a label map (mL): per ventricle label, their total, ICV (every non-zero label). */
export function measureLabelMap(labels: Volume<Uint8Array>, ventricleLabels: readonly number[]): ManifestRecord['achieved'] {
  const voxelMl = voxelVolumeMm3(labels.affine) / 1000;
  const counts = labelCounts(labels);
  const byLabel: Record<string, number> = {};
  let ventricles = 0;
  for (const l of ventricleLabels) {
    const n = counts.get(l) ?? 0;
    ventricles += n;
    byLabel[String(l)] = round(n * voxelMl);
  }
  const icv = labels.data.length - (counts.get(0) ?? 0);
  return { ventricleMl: round(ventricles * voxelMl), ventricleMlByLabel: byLabel, icvMl: round(icv * voxelMl), ventricleIcvRatio: icv ? round(ventricles / icv, 6) : 0 };
}

/**
 * Generates the samples of this shard that are not finished yet, writing them to `out` when given, and yields each
 * as it completes.
 */
export async function* generateDataset(options: GenerateDatasetOptions): AsyncGenerator<GeneratedSample> {
  if (options === null || typeof options !== 'object') throw new TypeError(`generate: argument 'options' must be an object`);
  const emit = options.onEvent ?? (() => undefined);
  const generator = typeof options.generator === 'string' ? await readGenerator(options.generator) : options.generator;
  const { guidanceScale, solver, steps } = resolveSettings(options, generator);
  const cfg = generator.config;
  const repairLabels = options.repairLabels ?? true;
  if (typeof repairLabels !== 'boolean') fail('repairLabels', 'true or false', repairLabels);
  const cal = cfg.calibration;
  if (cal && options.volume.kind !== 'condition' && (cal.guidanceScale !== guidanceScale || cal.solver !== solver || cal.steps !== steps))
    emit({ type: 'warning', message: `the generator's volume calibration was measured with guidance ${cal.guidanceScale}, ${cal.solver} ${cal.steps} steps; this run uses guidance ${guidanceScale}, ${solver} ${steps} steps, so volumes may land less accurately (run brain-ldm calibrate with these settings)` });

  const indices = shardIndices(options.count, options.shard);

  // Networks first: a generator that does not build fails before anything is written.
  const ownBackend = options.backend === undefined;
  const backend = options.backend ?? (await loadBackend(options.backendOptions ?? {}));
  let pairs: LabeledPairGenerator | null = null;
  let manifest: FileHandle | null = null;
  try {
    pairs = await LabeledPairGenerator.create(backend, generator);
    const out = options.out === undefined ? null : resolve(options.out);
    const ownManifest = manifestName(options.shard);
    let finished = new Map<number, ManifestRecord>();
    let nnunet: NnunetDatasetWriter | null = null;
    if (out !== null) {
      await mkdir(out, { recursive: true }).catch((e: NodeJS.ErrnoException) => {
        throw new Error(`generate: cannot create the output folder ${out}: ${e.message}`);
      });
      // Fail on an unwritable folder before any work, with the folder named.
      const probe = join(out, `.write-test-${process.pid}`);
      await writeFileAtomically(probe, [new Uint8Array(0)]).catch((e: NodeJS.ErrnoException) => {
        throw new Error(`generate: the output folder ${out} is not writable: ${e.message}`);
      });
      await unlink(probe);
      await checkRunSettings(out, {
        generator: generatorFingerprint(generator),
        count: options.count, seed: options.seed, volume: volumeRequestJson(options.volume), guidanceScale, solver, steps,
        calibration: cal ? cal.points : null, nnunet: options.nnunet ?? null, png: options.png ?? false,
        // bf16 samples differ from fp32 ones by ~1e-2: one folder holds one precision. Only named when bf16,
        // so folders written before the option existed still resume.
        ...(backend.info().precision === 'bf16' ? { precision: 'bf16' } : {}),
        // Likewise only named when off, and only where there is something to turn off.
        ...(cfg.labelPresence && !repairLabels ? { labelRepair: false } : {}),
      });
      finished = await readManifestRecords(out, ownManifest);
      if (options.png) await mkdir(join(out, 'png'), { recursive: true });
      if (options.nnunet) {
        nnunet = await NnunetDatasetWriter.open(out, options.nnunet.dataset, options.nnunet.task, {
          description: `Synthetic labeled brain MRI generated by brain-ldm (seed ${options.seed})`,
          onWarning: (message) => emit({ type: 'warning', message }),
        });
      }
    }

    const todo: number[] = [];
    for (const i of indices) {
      const r = finished.get(i);
      const done = out !== null && r?.files != null && (await exists(join(out, r.files.image))) && (await exists(join(out, r.files.labels)));
      if (!done) todo.push(i);
    }
    if (out !== null) manifest = await open(join(out, ownManifest), 'a');
    emit({ type: 'start', total: indices.length, todo: todo.length, done: indices.length - todo.length, backend: backend.name });
    const affine = generatorGridAffine(cfg.grid);
    const warned = new Set<string>();
    for (const index of todo) {
      const t0 = performance.now();
      const { ml, resolved } = requestFor(options.volume, generator, index, options.seed);
      if (resolved.extrapolation !== null) {
        const what = resolved.extrapolation;
        if (!warned.has(what)) emit({ type: 'warning', message: `sample ${index}: ${what}; the model extrapolates` });
        warned.add(what);
      }
      const onStep = (e: { stage: PairStage; stepIndex: number; totalSteps: number }) => emit({ type: 'step', index, ...e });
      const mask = await pairs.generateMaskWithRepair({ seed: options.seed, sampleIndex: index, condition: resolved.condition, guidanceScale, solver, steps, repairLabels, onStep });
      const labelsTensor = mask.labels;
      const t1 = performance.now();
      const imageTensor = await pairs.generateImage({ seed: options.seed, sampleIndex: index, labels: labelsTensor, solver, steps, onStep });
      const t2 = performance.now();
      const labels: Volume<Uint8Array> = { data: tensorToVolumeOrder(labelsTensor, cfg.grid.shape), shape: [...cfg.grid.shape], affine };
      const image: Volume<Float32Array> = { data: tensorToVolumeOrder(imageTensor, cfg.grid.shape), shape: [...cfg.grid.shape], affine };
      const record: ManifestRecord = {
        index,
        seed: options.seed,
        requested: { ventricleMl: ml === null ? null : round(ml), condition: round(resolved.condition, 6), conditionSource: resolved.source, extrapolated: resolved.extrapolated },
        achieved: measureLabelMap(labels, cfg.conditioning.ventricleLabels),
        files: null,
        settings: { guidanceScale, solver, steps },
        labelRepair: mask.repair,
        seconds: { mask: round((t1 - t0) / 1000, 3), image: round((t2 - t1) / 1000, 3), total: 0 },
        backend: backend.name,
      };
      if (out !== null) {
        const stem = sampleStem(index, options.count);
        const descrip = { descrip: `brain-ldm seed ${options.seed} sample ${index}` };
        const files: NonNullable<ManifestRecord['files']> = { image: `${stem}_image.nii.gz`, labels: `${stem}_labels.nii.gz` };
        await writeVolume(join(out, files.image), image, descrip);
        await writeVolume(join(out, files.labels), labels, descrip);
        if (options.png) {
          files.png = join('png', `${stem}.png`);
          await writeMontagePng(join(out, files.png), image, labels);
        }
        if (nnunet) {
          const paths = await nnunet.writeCase(stem, image, labels);
          files.nnunetImage = paths.image.slice(out.length + 1);
          files.nnunetLabels = paths.label.slice(out.length + 1);
          await nnunet.finalize();
        }
        record.files = files;
      }
      record.seconds.total = round((performance.now() - t0) / 1000, 3);
      if (manifest) {
        await writeAll(manifest, Buffer.from(`${JSON.stringify(record)}\n`, 'utf8'));
        await manifest.sync();
      }
      emit({ type: 'sample', record });
      yield { index, labels, image, record };
    }
    if (nnunet) await nnunet.finalize();
  } finally {
    await manifest?.close();
    await pairs?.dispose();
    if (ownBackend) await backend.dispose();
  }
}
