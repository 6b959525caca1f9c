/**
 * `brain-ldm augment-labels`: augmented copies of SynthSeg label maps for training (ts/augment/augment-label-map.ts):
 * ventricle enlargement, SynthSeg-style affine + elastic deformation, left/right flip. Copy k of a map depends only
 * on (seed, the map's basename, k), so reruns and partial reruns (--start) give the same bytes.
 */
import { join } from 'node:path';
import { augmentLabelMap, checkSynthSegLabels, ventricleFactorRange } from '../augment/augment-label-map.js';
import { JsonlManifest } from '../augment/jsonl-manifest.js';
import { createVentricleEnlarger } from '../augment/ventricle-enlargement.js';
import { writeVolume, type Volume } from '../labels/label-volume.js';
import { decimal, integerOption, numberOption, UsageError } from './cli-args.js';
import { labelBasename, parseLabelMapArgs, readLabelMap, runLabelMapCommand } from './label-map-commands.js';

export const AUGMENT_LABELS_USAGE = `usage: brain-ldm augment-labels <in.nii.gz ...> --out <dir> --count <n> --seed <int> [options]

Writes augmented copies of SynthSeg label maps (33 labels, e.g. from brain-ldm prepare-labels) on the input grid:
ventricles enlarged by a volume factor (a smooth diffeomorphic push that compresses the surrounding tissue and keeps
the brain's outer boundary), then SynthSeg's random affine (scaling U(0.8, 1.2), rotation U(-15, 15) degrees,
shearing U(-0.012, 0.012)) and smooth elastic deformation, then a left/right flip with left/right labels swapped.
Writes <dir>/<basename>_aug<NNN>.nii.gz (uint8) and one JSON line per output to <dir>/augment-manifest.jsonl:
{input, output, seed, index, ventricleFactorRequested, ventricleMlBefore, ventricleMlAfter, icvMlBefore,
icvMlAfter, flipped, ...}; ventricleMlAfter is measured on the output (after the spatial deformation too).

options:
  --out <dir>                 output folder (created if missing)
  --count <n>                 copies per input
  --seed <int>                copy k of a map depends only on (seed, map basename, k)
  --start <k>                 first copy index (default 0), to redo or extend part of a set
  --ventricle-factor <f>      ventricle volume factor in 1..3, or lo:hi drawn uniformly per copy (default 1: none)
  --no-affine                 no affine part
  --scaling <b>               scaling drawn from U(1 - b, 1 + b) per axis (default 0.2, SynthSeg's)
  --rotation <deg>            rotation drawn from U(-deg, deg) per axis (default 15, SynthSeg's)
  --no-elastic                no elastic part
  --flip-prob <p>             probability of the left/right flip (default 0.5)
  --json                      print each manifest line instead of a summary
  --help                      this text`;

export const AUGMENT_MANIFEST = 'augment-manifest.jsonl';

const OPTIONS = {
  out: { type: 'string' },
  count: { type: 'string' },
  seed: { type: 'string' },
  start: { type: 'string' },
  'ventricle-factor': { type: 'string' },
  'no-affine': { type: 'boolean' },
  scaling: { type: 'string' },
  rotation: { type: 'string' },
  'no-elastic': { type: 'boolean' },
  'flip-prob': { type: 'string' },
  json: { type: 'boolean' },
  help: { type: 'boolean', short: 'h' },
} as const;

interface AugmentLabelsArgs {
  inputs: string[];
  out: string;
  count: number;
  seed: number;
  start: number;
  ventricleFactor: [number, number];
  affine: boolean;
  scalingBounds: number;
  rotationBoundsDeg: number;
  elastic: boolean;
  flipProbability: number;
  json: boolean;
}

/** '2' or '1:3' as [lo, hi]. */
export function parseVentricleFactor(text: string): [number, number] {
  const parts = text.split(':');
  const values = parts.map(decimal);
  if (parts.length > 2 || values.some((v) => !Number.isFinite(v)))
    throw new UsageError(`--ventricle-factor must be a number such as 2 or a range lo:hi such as 1:3, got '${text}'`);
  try {
    return ventricleFactorRange(values.length === 1 ? values[0] : [values[0], values[1]], '--ventricle-factor');
  } catch (e) {
    throw new UsageError(`${(e as Error).message.replace(/, got .*$/, '')}, got '${text}'`);
  }
}

function parseAugmentLabelsArgs(argv: string[]): AugmentLabelsArgs | 'help' {
  const parsed = parseLabelMapArgs(argv, OPTIONS);
  if (parsed === 'help') return 'help';
  const { values, inputs, out } = parsed;
  if (values.count === undefined) throw new UsageError('missing --count <n>');
  if (values.seed === undefined) throw new UsageError('missing --seed <int>');
  const bound = (name: string, text: string | undefined, max: number) => numberOption(name, text, (v) => v >= 0 && v < max, `a number in [0, ${max})`);
  return {
    inputs,
    out,
    count: integerOption('count', values.count, 1),
    seed: integerOption('seed', values.seed),
    start: integerOption('start', values.start, 0) ?? 0,
    ventricleFactor: parseVentricleFactor(values['ventricle-factor'] ?? '1'),
    affine: !values['no-affine'],
    scalingBounds: bound('scaling', values.scaling, 1) ?? 0.2,
    rotationBoundsDeg: bound('rotation', values.rotation, 180) ?? 15,
    elastic: !values['no-elastic'],
    flipProbability: numberOption('flip-prob', values['flip-prob'], (v) => v >= 0 && v <= 1, 'a probability in [0, 1]') ?? 0.5,
    json: values.json ?? false,
  };
}

/** A SynthSeg label map as uint8, keeping the file's sform / qform codes for the outputs. */
async function readSynthSegMap(path: string): Promise<{ volume: Volume<Uint8Array>; qformCode: number; sformCode: number }> {
  const { labels, qformCode, sformCode } = await readLabelMap(path);
  checkSynthSegLabels(labels, path);
  const data = labels.data instanceof Uint8Array ? labels.data : Uint8Array.from(labels.data);
  return { volume: { data, shape: labels.shape, affine: labels.affine }, qformCode, sformCode };
}

/**
 * Runs `brain-ldm augment-labels` (arguments after the command word). Returns 0, or 2 for a usage error (printed
 * with the usage to `printError`). Failures while reading, augmenting or writing throw; the CLI exits 1.
 */
export async function augmentLabelsCommand(argv: string[], print: (line: string) => void, printError = (l: string) => console.error(l)): Promise<number> {
  return runLabelMapCommand('augment-labels', AUGMENT_LABELS_USAGE, () => parseAugmentLabelsArgs(argv), async (args) => {
    const manifest = await JsonlManifest.open(join(args.out, AUGMENT_MANIFEST), 'output');
    const width = Math.max(3, String(args.start + args.count - 1).length);
    const options = {
      ventricleFactor: args.ventricleFactor,
      spatial: { affine: args.affine, scalingBounds: args.scalingBounds, rotationBoundsDeg: args.rotationBoundsDeg, elastic: args.elastic, flipProbability: args.flipProbability },
    };
    for (const input of args.inputs) {
      const name = labelBasename(input);
      const { volume, qformCode, sformCode } = await readSynthSegMap(input);
      const enlarger = createVentricleEnlarger(volume);
      for (let index = args.start; index < args.start + args.count; index++) {
        const t0 = performance.now();
        let result;
        try {
          result = augmentLabelMap(volume, { seed: args.seed, name, index }, options, enlarger);
        } catch (e) {
          throw new Error(`${input} copy ${index}: ${(e as Error).message}`);
        }
        const output = join(args.out, `${name}_aug${String(index).padStart(width, '0')}.nii.gz`);
        await writeVolume(output, result.volume, { qformCode, sformCode, descrip: `brain-ldm augment-labels seed ${args.seed} #${index}` });
        const r = result.record;
        const line = await manifest.put({
          input, output, seed: r.seed, index: r.index, ventricleFactorRequested: r.ventricleFactorRequested,
          ventricleMlBefore: r.ventricleMlBefore, ventricleMlAfter: r.ventricleMlAfter, icvMlBefore: r.icvMlBefore, icvMlAfter: r.icvMlAfter,
          flipped: r.flipped, ventricleMlEnlarged: r.ventricleMlEnlarged, ventricleFactorAchieved: r.ventricleFactorAchieved,
          affine: r.affine, elastic: r.elastic, jacobian: r.jacobian,
        });
        print(args.json ? line : `wrote ${output}: ventricles ${r.ventricleMlBefore.toFixed(1)} -> ${r.ventricleMlEnlarged.toFixed(1)} mL enlarged (x${r.ventricleFactorAchieved.toFixed(3)} for x${r.ventricleFactorRequested.toFixed(3)}), ${r.ventricleMlAfter.toFixed(1)} mL after the deformation; ICV ${r.icvMlBefore.toFixed(1)} -> ${r.icvMlAfter.toFixed(1)} mL${r.flipped ? '; flipped' : ''} (${(performance.now() - t0).toFixed(0)} ms)`);
      }
    }
  }, print, printError);
}
