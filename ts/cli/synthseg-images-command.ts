/**
 * `brain-ldm synthseg-images`: SynthSeg-style images for label maps (ts/synth/synthesize-image.ts). Image k of a map
 * depends only on (seed, the map's basename, k, the options), so reruns, and runs over a subset of the maps, give
 * the same bytes. Every file is written to a temporary name and renamed; the manifest is rewritten the same way after
 * each image, keeping lines of earlier runs for other outputs.
 */
import { join } from 'node:path';
import { JsonlManifest } from '../augment/jsonl-manifest.js';
import { writeVolume } from '../labels/label-volume.js';
import { synthesizeImage, type SynthesisParameters } from '../synth/synthesize-image.js';
import { CONTRASTS, type Contrast } from '../synth/synthseg-priors.js';
import { integerOption, UsageError } from './cli-args.js';
import { labelBasename, parseLabelMapArgs, readLabelMap, runLabelMapCommand } from './label-map-commands.js';

export const SYNTHSEG_IMAGES_USAGE = `usage: brain-ldm synthseg-images <labels.nii.gz ...> --out <dir> --seed <int> [options]

Renders SynthSeg-style MRI images for label maps (33 SynthSeg labels, or aseg-style maps with SynthSeg's generation
labels): per-class Gaussian intensities, bias field, gamma, random-resolution blur, normalised to [0, 1]. Writes
<dir>/<label basename>_img<NNN>.nii.gz (float32, the label map's shape and affine) and one JSON line per image to
<dir>/synth-manifest.jsonl: {labels, output, seed, index, contrast, parameters}.

options:
  --out <dir>             output folder (created if missing)
  --seed <int>            random seed; image k of a map depends only on (seed, map basename, k)
  --count <k>             images per label map (default 1)
  --contrast <name>       t1 (default: SynthSeg's T1 priors) or random (its uniform random contrast)
  --no-bias               no bias field
  --no-blur               no resolution randomisation (blur + low-resolution acquisition)
  --json                  print each manifest line instead of a summary
  --help                  this text`;

const OPTIONS = {
  out: { type: 'string' },
  seed: { type: 'string' },
  count: { type: 'string' },
  contrast: { type: 'string' },
  'no-bias': { type: 'boolean' },
  'no-blur': { type: 'boolean' },
  json: { type: 'boolean' },
  help: { type: 'boolean', short: 'h' },
} as const;

export const SYNTH_MANIFEST = 'synth-manifest.jsonl';

export interface SynthManifestRecord {
  labels: string;
  output: string;
  seed: number;
  index: number;
  contrast: Contrast;
  parameters: SynthesisParameters;
}

interface SynthsegImagesArgs {
  inputs: string[];
  out: string;
  seed: number;
  count: number;
  contrast: Contrast;
  bias: boolean;
  blur: boolean;
  json: boolean;
}

function parseSynthsegImagesArgs(argv: string[]): SynthsegImagesArgs | 'help' {
  const parsed = parseLabelMapArgs(argv, OPTIONS);
  if (parsed === 'help') return 'help';
  const { values, inputs, out } = parsed;
  if (values.seed === undefined) throw new UsageError('missing --seed <int>');
  const contrast = (values.contrast ?? 't1') as Contrast;
  if (!CONTRASTS.includes(contrast)) throw new UsageError(`--contrast must be one of ${CONTRASTS.join(', ')}, got '${values.contrast}'`);
  return {
    inputs,
    out,
    seed: integerOption('seed', values.seed),
    count: integerOption('count', values.count, 1) ?? 1,
    contrast,
    bias: !values['no-bias'],
    blur: !values['no-blur'],
    json: values.json ?? false,
  };
}

function summary(r: SynthManifestRecord, ms: number): string {
  const p = r.parameters;
  const parts: string[] = [r.contrast];
  parts.push(p.bias ? (p.bias.applied ? `bias std ${p.bias.std.toFixed(2)}` : 'bias drawn, not applied') : 'no bias');
  if (p.intensity.gamma !== null) parts.push(`gamma ${p.intensity.gamma.toFixed(2)}`);
  if (p.resolution) parts.push(`${p.resolution.mode} resolution ${p.resolution.resolutionMm.map((v) => v.toFixed(2)).join('x')} mm`);
  else parts.push('no blur');
  return `wrote ${r.output} (${parts.join(', ')}) in ${ms.toFixed(0)} ms`;
}

/**
 * Runs `brain-ldm synthseg-images` (arguments after the command word). Returns 0, or 2 for a usage error (printed
 * with the usage to `printError`). Failures while reading or writing throw; the CLI prints them and exits 1.
 */
export async function synthsegImagesCommand(argv: string[], print: (line: string) => void, printError = (l: string) => console.error(l)): Promise<number> {
  return runLabelMapCommand('synthseg-images', SYNTHSEG_IMAGES_USAGE, () => parseSynthsegImagesArgs(argv), async (args) => {
    const manifest = await JsonlManifest.open(join(args.out, SYNTH_MANIFEST), 'output');
    const width = Math.max(3, String(args.count - 1).length);
    for (const input of args.inputs) {
      const stem = labelBasename(input);
      const { labels, qformCode, sformCode } = await readLabelMap(input);
      for (let k = 0; k < args.count; k++) {
        const t0 = performance.now();
        const { image, parameters } = synthesizeImage(labels, args.seed, [stem, k], { contrast: args.contrast, bias: args.bias, blur: args.blur, source: input });
        const output = join(args.out, `${stem}_img${String(k).padStart(width, '0')}.nii.gz`);
        await writeVolume(output, image, { qformCode, sformCode, descrip: `brain-ldm synthseg-images ${args.contrast} seed ${args.seed} #${k}` });
        const record: SynthManifestRecord = { labels: input, output, seed: args.seed, index: k, contrast: args.contrast, parameters };
        const line = await manifest.put({ ...record });
        print(args.json ? line : summary(record, performance.now() - t0));
      }
    }
  }, print, printError);
}
