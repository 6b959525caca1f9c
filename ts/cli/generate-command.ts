/**
 * `brain-ldm generate`: labeled pairs (image + SynthSeg label map) with the ventricle volume asked for, into a
 * folder that resumes after a kill and fills from many machines with --shard.
 */
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { NNUNET_TASKS, parseNnunetDatasetName, type NnunetTask } from '../export/nnunet-dataset.js';
import { parseVolumeDistribution } from '../export/volume-distribution.js';
import { generateDataset, type VolumeRequest } from '../pipeline/generate-dataset.js';
import { SCHEDULER_TYPES, type SchedulerType } from '../schedulers/index.js';
import { BACKEND_OPTIONS, BACKEND_USAGE, UsageError, backendOptions, isUsageError, nonNegativeInt, numberOption, positiveInt } from './cli-args.js';
import { ProgressBar } from './progress-bar.js';

/** The bundle the README's main command uses: models/default in the package. */
export const DEFAULT_GENERATOR = fileURLToPath(new URL('../../models/default/', import.meta.url));

export const GENERATE_USAGE = `usage: brain-ldm generate [generator-dir] --out <folder> (--ventricle-volume <mL> | --volume-dist <spec> | --condition <c>) [options]

Generates labeled brain MRI pairs: <out>/sample_NNNNNN_image.nii.gz (float32, [0, 1]) and
<out>/sample_NNNNNN_labels.nii.gz (uint8 SynthSeg labels), one manifest.jsonl line per sample with the requested
and achieved ventricle volume. Rerun the same command after a kill: finished samples are kept, the rest are made.
generator-dir defaults to the package's models/default.

volume (one of):
  --ventricle-volume <mL>   total ventricle volume (labels 4, 5, 43, 44, 14, 15) for every sample
  --volume-dist <spec>      per sample: uniform:A:B, normal:MEAN:SD[:LO:HI], list:20,40,80, fixed:V (mL)
  --condition <c>           the model's normalised condition (0..1 spans the training set)

options:
  --count <n>               samples in the whole dataset (default 1)
  --seed <n>                sample i depends only on (seed, i) (default 0)
  --guidance <w>            classifier-free guidance scale (default: the generator's; 1 = no guidance)
  --solver <name>           ${SCHEDULER_TYPES.join(', ')} (default: the generator's)
  --steps <n>               solver steps per stage (default: the generator's)
  --no-label-repair         keep masks as decoded: do not grow labels a mask holds too few voxels of (where the
                            generator has labelPresence; the manifest names each sample's repaired labels)
  --shard <i/n>             make only samples with index % n == i (many machines, one folder)
  --nnunet <DatasetNNN_Name>  also write an nnU-Net v2 raw dataset in <out>/DatasetNNN_Name
  --nnunet-task <task>      synthseg (33 classes, 0..32; default) or ventricles (binary)
  --png                     also write <out>/png/sample_NNNNNN.png (three planes, label overlay)
  --quiet                   no progress bar
  --json                    print each manifest record to stdout
${BACKEND_USAGE}`;

function parseShard(text: string | undefined): { index: number; count: number } | undefined {
  if (text === undefined) return undefined;
  const m = /^(\d+)\/(\d+)$/.exec(text.trim());
  if (!m) throw new UsageError(`--shard must be i/n (e.g. 0/4), got '${text}'`);
  const index = Number(m[1]);
  const count = Number(m[2]);
  if (count < 1 || index >= count) throw new UsageError(`--shard ${text}: need n >= 1 and 0 <= i < n`);
  return { index, count };
}

const parse = (argv: string[]) => parseArgs({
  args: argv, allowPositionals: true, strict: true,
  options: {
    out: { type: 'string' }, count: { type: 'string' }, seed: { type: 'string' },
    'ventricle-volume': { type: 'string' }, 'volume-dist': { type: 'string' }, condition: { type: 'string' },
    guidance: { type: 'string' }, solver: { type: 'string' }, steps: { type: 'string' }, shard: { type: 'string' },
    nnunet: { type: 'string' }, 'nnunet-task': { type: 'string' }, png: { type: 'boolean' }, 'no-label-repair': { type: 'boolean' },
    quiet: { type: 'boolean' }, json: { type: 'boolean' }, help: { type: 'boolean', short: 'h' }, ...BACKEND_OPTIONS,
  },
});

export async function generateCommand(argv: string[], print: (line: string) => void, printError = (l: string) => console.error(l)): Promise<number> {
  let parsed: ReturnType<typeof parse> | undefined;
  let volume: VolumeRequest;
  let shard: { index: number; count: number } | undefined;
  let nnunet: { dataset: string; task: NnunetTask } | null = null;
  try {
    parsed = parse(argv);
    const { values, positionals } = parsed;
    if (values.help) { print(GENERATE_USAGE); return 0; }
    if (positionals.length > 1) throw new UsageError(`expected at most one generator directory, got ${positionals.length}: ${positionals.join(' ')}`);
    if (!values.out) throw new UsageError('missing --out <folder>');
    const given = (['ventricle-volume', 'volume-dist', 'condition'] as const).filter((k) => values[k] !== undefined);
    if (given.length !== 1) throw new UsageError(given.length ? `give only one of --${given.join(', --')}` : 'missing the volume: --ventricle-volume <mL>, --volume-dist <spec> or --condition <c>');
    if (values['ventricle-volume'] !== undefined)
      volume = { kind: 'ml', ml: numberOption('ventricle-volume', values['ventricle-volume'], (v) => v > 0, 'a positive volume in mL')! };
    else if (values['volume-dist'] !== undefined) {
      try {
        volume = { kind: 'distribution', distribution: parseVolumeDistribution(values['volume-dist']) };
      } catch (e) {
        throw new UsageError((e as Error).message);
      }
    } else volume = { kind: 'condition', condition: numberOption('condition', values.condition, () => true, 'a number')! };
    if (values.solver !== undefined && !SCHEDULER_TYPES.includes(values.solver as SchedulerType))
      throw new UsageError(`--solver must be one of ${SCHEDULER_TYPES.join(', ')}, got '${values.solver}'`);
    shard = parseShard(values.shard);
    if (values['nnunet-task'] !== undefined && !values.nnunet) throw new UsageError('--nnunet-task needs --nnunet <DatasetNNN_Name>');
    if (values.nnunet !== undefined) {
      const task = (values['nnunet-task'] ?? 'synthseg') as NnunetTask;
      if (!NNUNET_TASKS.includes(task)) throw new UsageError(`--nnunet-task must be one of ${NNUNET_TASKS.join(', ')}, got '${values['nnunet-task']}'`);
      try {
        parseNnunetDatasetName(values.nnunet);
      } catch (e) {
        throw new UsageError(`--nnunet: ${(e as Error).message}`);
      }
      nnunet = { dataset: values.nnunet, task };
    }
    numberOption('guidance', values.guidance, (v) => v >= 0, 'a number >= 0 (1 = no guidance)');
    positiveInt('steps', values.steps);
    positiveInt('count', values.count);
    nonNegativeInt('seed', values.seed);
    backendOptions(values);
  } catch (e) {
    if (!isUsageError(e)) throw e;
    printError(`brain-ldm generate: ${(e as Error).message}\n\n${GENERATE_USAGE}`);
    return 2;
  }
  const { values, positionals } = parsed!;
  const generator = positionals[0] ?? DEFAULT_GENERATOR;
  if (positionals[0] === undefined && !existsSync(generator))
    throw new Error(`no generator given and the default one (${generator}) is not installed; pass a generator directory`);
  let bar: ProgressBar | null = null;
  const warnings: string[] = [];
  let made = 0;
  const t0 = performance.now();
  for await (const sample of generateDataset({
    generator, out: values.out, count: positiveInt('count', values.count) ?? 1, seed: nonNegativeInt('seed', values.seed) ?? 0, volume: volume!,
    guidanceScale: numberOption('guidance', values.guidance, () => true, ''), solver: values.solver as SchedulerType | undefined,
    steps: positiveInt('steps', values.steps), repairLabels: !values['no-label-repair'], shard, nnunet, png: values.png ?? false,
    backendOptions: backendOptions(values),
    onEvent: (e) => {
      if (e.type === 'warning') {
        if (bar) bar.note(`warning: ${e.message}`);
        else warnings.push(e.message);
      } else if (e.type === 'start') {
        if (!values.quiet) {
          bar = new ProgressBar({ total: e.total, done: e.done });
          for (const w of warnings.splice(0)) bar.note(`warning: ${w}`);
          bar.note(`brain-ldm generate: ${e.todo} to make, ${e.done} already done${shard ? ` (shard ${shard.index}/${shard.count})` : ''}, backend ${e.backend}`);
        }
      } else if (e.type === 'step') bar?.step(e.index, e.stage, e.stepIndex, e.totalSteps);
      else if (e.type === 'sample') {
        const r = e.record;
        bar?.sample(`sample ${r.index}: ventricles ${r.achieved.ventricleMl} mL${r.requested.ventricleMl !== null ? ` (asked ${r.requested.ventricleMl})` : ''}, ${r.seconds.total} s`);
      }
    },
  })) {
    made++;
    if (values.json) print(JSON.stringify(sample.record));
  }
  (bar as ProgressBar | null)?.end();
  for (const w of warnings) printError(`brain-ldm generate: warning: ${w}`);
  if (!values.json) print(`generated ${made} sample${made === 1 ? '' : 's'} into ${values.out} in ${((performance.now() - t0) / 1000).toFixed(1)} s`);
  return 0;
}
