/**
 * `brain-ldm calibrate`: measure achieved ventricle volume against the condition, store the monotone map from mL to
 * condition in generator.json, and report how close requests then land.
 */
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { loadBackend } from '../backend/select.js';
import { readGenerator, writeGeneratorConfig } from '../bundle/generator-bundle.js';
import { DEFAULT_LABEL_MASKS, calibrateLabels, meanLabelVoxels } from '../pipeline/calibrate-labels.js';
import { calibrateVolume } from '../pipeline/calibrate-volume.js';
import { readReferenceMaps } from '../labels/reference-maps.js';
import { SCHEDULER_TYPES, type SchedulerType } from '../schedulers/index.js';
import { BACKEND_OPTIONS, BACKEND_USAGE, UsageError, backendOptions, isUsageError, nonNegativeInt, numberOption, positiveInt } from './cli-args.js';
import { DEFAULT_GENERATOR } from './generate-command.js';
import { ProgressBar } from './progress-bar.js';

export const CALIBRATE_USAGE = `usage: brain-ldm calibrate [generator-dir] [options]

Sweeps the condition over the training range, measures the ventricle volume of the generated masks, and stores a
monotone map from mL to condition in <generator-dir>/generator.json (requests in mL then use it). Then generates
masks for targets across the training range through the new map and reports achieved vs requested.

With --label-reference, first fits the label offsets: per-label constants added to the mask decoder's logits
before the argmax, so that generated masks hold each label (other than background and the ventricles) in the mean
amount the reference maps do. Give it the training label maps on the generator's grid, not held-out ones. The
volume sweep then runs with the new offsets. Without it, offsets already in generator.json are kept and used.

options:
  --label-reference <dir>  fit the label offsets to the label maps (*.nii.gz, *.nii) in <dir>
  --label-masks <n>  generated masks the offsets are fitted on (default ${DEFAULT_LABEL_MASKS})
  --requests <n>     conditions in the sweep and targets in the check (default 8)
  --samples <n>      masks per condition / target (default 4)
  --guidance <w>     guidance scale (default: the generator's); the map holds for these settings
  --solver <name>    ${SCHEDULER_TYPES.join(', ')} (default: the generator's)
  --steps <n>        solver steps (default: the generator's)
  --seed <n>         (default 0)
  --no-verify        skip the check run
  --dry-run          report only; leave generator.json as it is
  --json             print the result as JSON
${BACKEND_USAGE}`;

const parse = (argv: string[]) => parseArgs({
  args: argv, allowPositionals: true, strict: true,
  options: {
    'label-reference': { type: 'string' }, 'label-masks': { type: 'string' }, requests: { type: 'string' }, samples: { type: 'string' }, guidance: { type: 'string' }, solver: { type: 'string' },
    steps: { type: 'string' }, seed: { type: 'string' }, 'no-verify': { type: 'boolean' }, 'dry-run': { type: 'boolean' },
    json: { type: 'boolean' }, quiet: { type: 'boolean' }, help: { type: 'boolean', short: 'h' }, ...BACKEND_OPTIONS,
  },
});

const fmt = (v: number, d = 1) => v.toFixed(d);

export async function calibrateCommand(argv: string[], print: (line: string) => void, printError = (l: string) => console.error(l)): Promise<number> {
  let parsed: ReturnType<typeof parse>;
  let requests: number | undefined;
  try {
    parsed = parse(argv);
    const { values, positionals } = parsed;
    if (values.help) { print(CALIBRATE_USAGE); return 0; }
    if (positionals.length > 1) throw new UsageError(`expected at most one generator directory, got ${positionals.length}`);
    requests = positiveInt('requests', values.requests);
    if (requests !== undefined && requests < 2) throw new UsageError(`--requests must be at least 2, got '${values.requests}'`);
    positiveInt('samples', values.samples);
    positiveInt('label-masks', values['label-masks']);
    if (values['label-masks'] !== undefined && values['label-reference'] === undefined) throw new UsageError('--label-masks needs --label-reference');
    positiveInt('steps', values.steps);
    nonNegativeInt('seed', values.seed);
    numberOption('guidance', values.guidance, (v) => v >= 0, 'a number >= 0 (1 = no guidance)');
    if (values.solver !== undefined && !SCHEDULER_TYPES.includes(values.solver as SchedulerType))
      throw new UsageError(`--solver must be one of ${SCHEDULER_TYPES.join(', ')}, got '${values.solver}'`);
    backendOptions(values);
  } catch (e) {
    if (!isUsageError(e)) throw e;
    printError(`brain-ldm calibrate: ${(e as Error).message}\n\n${CALIBRATE_USAGE}`);
    return 2;
  }
  const { values, positionals } = parsed;
  const dir = positionals[0] ?? DEFAULT_GENERATOR;
  const generator = await readGenerator(dir);
  const guidanceScale = numberOption('guidance', values.guidance, () => true, '') ?? generator.config.defaults.guidanceScale;
  if (generator.config.conditioning.nullContext === null && guidanceScale !== 1)
    throw new Error(`--guidance ${guidanceScale}: ${join(dir, 'generator.json')} has no unconditional path (conditioning.nullContext is null); only guidance 1 works`);
  const reference = values['label-reference'] === undefined ? null : await readLabelTargets(values['label-reference'], generator.config.grid.shape, generator.config.labels);
  const backend = await loadBackend(backendOptions(values));
  let bar: ProgressBar | null = null;
  let phase = '';
  try {
    if (reference) {
      if (!values.quiet) { bar = new ProgressBar({ total: positiveInt('label-masks', values['label-masks']) ?? DEFAULT_LABEL_MASKS }); bar.note(`fitting label offsets to ${reference.maps} maps`); }
      generator.config.labelOffsets = await calibrateLabels({
        generator, backend, targetVoxels: reference.targetVoxels, referenceMaps: reference.maps,
        masks: positiveInt('label-masks', values['label-masks']), guidanceScale, solver: values.solver as SchedulerType | undefined,
        steps: positiveInt('steps', values.steps), seed: nonNegativeInt('seed', values.seed),
        onStep: values.quiet ? undefined : (e) => bar?.step(e.sample, 'mask', e.stepIndex, e.totalSteps),
        onProgress: values.quiet ? undefined : (e) => bar?.sample(`condition ${fmt(e.condition, 3)}`),
      });
      (bar as ProgressBar | null)?.end();
      bar = null;
    }
    const result = await calibrateVolume({
      generator, backend, requests, samplesPerRequest: positiveInt('samples', values.samples), guidanceScale,
      solver: values.solver as SchedulerType | undefined, steps: positiveInt('steps', values.steps), seed: nonNegativeInt('seed', values.seed),
      verify: !values['no-verify'],
      onStep: values.quiet ? undefined : (e) => bar?.step(e.sample, 'mask', e.stepIndex, e.totalSteps),
      onProgress: values.quiet ? undefined : (e) => {
        if (e.phase !== phase) {
          bar?.end();
          phase = e.phase;
          bar = new ProgressBar({ total: e.total });
          bar.note(e.phase === 'sweep' ? 'sweeping the condition' : 'checking requests through the calibrated map');
        }
        bar!.sample(`condition ${fmt(e.condition, 3)}: ${fmt(e.achievedMl)} mL`);
      },
    });
    (bar as ProgressBar | null)?.end();
    const { calibration, verification } = result;
    if (!values['dry-run']) await writeGeneratorConfig(dir, { ...generator.config, calibration });
    const labelOffsets = reference ? generator.config.labelOffsets : undefined;
    if (values.json) {
      print(JSON.stringify({ ...(labelOffsets ? { labelOffsets } : {}), calibration, sweep: result.sweep, verification }, null, 2));
      return 0;
    }
    if (labelOffsets) {
      print(`label offsets (${labelOffsets.fittedMasks} masks; mean voxels per mask: reference maps, before and after the offsets):`);
      print('  label  reference   before    after  offset');
      generator.config.labels.forEach((l, c) => print(`  ${String(l).padStart(5)}  ${fmt(labelOffsets.targetVoxels[c]).padStart(9)}  ${fmt(labelOffsets.meanVoxelsBefore[c]).padStart(7)}  ${fmt(labelOffsets.meanVoxelsAfter[c]).padStart(7)}  ${fmt(labelOffsets.offsets[c], 3).padStart(6)}`));
    }
    print(`calibration (${calibration.solver}, ${calibration.steps} steps, guidance ${calibration.guidanceScale}, ${calibration.samplesPerRequest} samples per condition):`);
    print('  mL       condition');
    for (const [ml, c] of calibration.points) print(`  ${fmt(ml).padStart(7)}  ${fmt(c, 4)}`);
    const [lo, hi] = generator.config.conditioning.trainingVentricleMl;
    const reach = [calibration.points[0][0], calibration.points[calibration.points.length - 1][0]];
    if (reach[0] > lo || reach[1] < hi)
      printError(`brain-ldm calibrate: warning: over the training conditions the model's ventricles span ${fmt(reach[0])}-${fmt(reach[1])} mL, less than the training range ${fmt(lo)}-${fmt(hi)} mL; requests outside ${fmt(reach[0])}-${fmt(reach[1])} mL extrapolate`);
    if (verification) {
      print('achieved vs requested (mL):');
      print('  requested  condition  achieved (mean +- sd)');
      for (const r of verification.rows) {
        const mean = r.achievedMl.reduce((a, b) => a + b, 0) / r.achievedMl.length;
        const sd = Math.sqrt(r.achievedMl.reduce((a, b) => a + (b - mean) ** 2, 0) / Math.max(1, r.achievedMl.length - 1));
        print(`  ${fmt(r.requestedMl).padStart(9)}  ${fmt(r.condition, 4).padStart(9)}  ${fmt(mean)} +- ${fmt(sd)}`);
      }
      print(`Spearman ${fmt(verification.spearman, 3)}, median relative error ${fmt(100 * verification.medianRelativeError)}%, mean absolute error ${fmt(verification.meanAbsoluteErrorMl)} mL`);
    }
    print(values['dry-run'] ? 'dry run: generator.json unchanged' : `wrote the calibration into ${join(dir, 'generator.json')}`);
    return 0;
  } finally {
    await backend.dispose();
  }
}

/** The reference maps' mean voxels per label; every map must lie on the generator's grid and hold only its labels. */
async function readLabelTargets(dir: string, shape: readonly number[], labels: readonly number[]): Promise<{ maps: number; targetVoxels: number[] }> {
  const { files, maps } = await readReferenceMaps(dir, shape, '--label-reference');
  return { maps: maps.length, targetVoxels: meanLabelVoxels(maps, labels, files) };
}
