/**
 * `brain-ldm prepare-labels`: aseg-style label maps -> SynthSeg 33-label maps on the training grid
 * (ts/labels/prepare-label-maps.ts), one uint8 NIfTI per input and one report line per input in
 * <out>/prepare-report.jsonl.
 */
import { join } from 'node:path';
import { JsonlManifest } from '../augment/jsonl-manifest.js';
import { axcodesToOrientation, writeVolume, type Triple } from '../labels/label-volume.js';
import { formatPrepareReport, prepareLabelMap, REDUCED_GRID, THESIS_GRID } from '../labels/prepare-label-maps.js';
import { UsageError } from './cli-args.js';
import { labelBasename, parseLabelMapArgs, runLabelMapCommand } from './label-map-commands.js';

export const PREPARE_LABELS_USAGE = `usage: brain-ldm prepare-labels <in.nii.gz ...> --out <dir> [options]

Maps aseg-style label maps (FreeSurfer numbering or SynthSeg's generation labels) to the 33 SynthSeg labels,
reorients, resamples (nearest, in physical space) and crops around the brain. Writes <dir>/<input basename>.nii.gz
(uint8 SynthSeg values, sform and qform from the new affine) and one JSON report per input to
<dir>/prepare-report.jsonl (what was merged and dropped, ventricle and intracranial volumes after each step,
crop losses, warnings), replacing the line of an output written before.

options:
  --out <dir>              output folder (created if missing)
  --grid <grid>            thesis (default: IPL 96x128x96 at 1.667x1.75x1.667 mm), reduced (IPL 48x64x48 at
                           3.334x3.5x3.334 mm) or <W>x<H>x<D>@<sx>,<sy>,<sz> (voxels and mm)
  --orientation <codes>    axis codes of the output, e.g. IPL or RAS (default: the grid's, IPL)
  --json                   print each report line instead of a summary
  --help                   this text`;

export const PREPARE_REPORT = 'prepare-report.jsonl';

const OPTIONS = {
  out: { type: 'string' },
  grid: { type: 'string' },
  orientation: { type: 'string' },
  json: { type: 'boolean' },
  help: { type: 'boolean', short: 'h' },
} as const;

interface Grid { orientation: string; shape: Triple; spacingMm: Triple }

/** thesis | reduced | <W>x<H>x<D>@<sx>,<sy>,<sz>. */
export function parseGrid(text: string): Grid {
  if (text === 'thesis') return { ...THESIS_GRID };
  if (text === 'reduced') return { ...REDUCED_GRID };
  const m = /^(\d+)x(\d+)x(\d+)@([^,]+),([^,]+),([^,]+)$/.exec(text);
  const shape = m ? [m[1], m[2], m[3]].map(Number) : [];
  const spacing = m ? [m[4], m[5], m[6]].map((s) => (/^\s*(\d+(\.\d*)?|\.\d+)\s*$/.test(s) ? Number(s) : Number.NaN)) : [];
  if (!m || !shape.every((v) => Number.isSafeInteger(v) && v >= 1) || !spacing.every((v) => Number.isFinite(v) && v > 0))
    throw new UsageError(`--grid must be thesis, reduced or <W>x<H>x<D>@<sx>,<sy>,<sz> with positive sizes (e.g. 96x128x96@1.667,1.75,1.667), got '${text}'`);
  return { orientation: THESIS_GRID.orientation, shape: shape as Triple, spacingMm: spacing as Triple };
}

function parsePrepareLabelsArgs(argv: string[]): { inputs: string[]; out: string; grid: Grid; json: boolean } | 'help' {
  const parsed = parseLabelMapArgs(argv, OPTIONS);
  if (parsed === 'help') return 'help';
  const { values, inputs, out } = parsed;
  const grid = parseGrid(values.grid ?? 'thesis');
  if (values.orientation !== undefined) {
    try {
      axcodesToOrientation(values.orientation);
    } catch {
      throw new UsageError(`--orientation must be 3 axis codes naming each of L/R, P/A, I/S once (e.g. IPL, RAS), got '${values.orientation}'`);
    }
    grid.orientation = values.orientation.toUpperCase();
  }
  return { inputs, out, grid, json: values.json ?? false };
}

/**
 * Runs `brain-ldm prepare-labels` (arguments after the command word). Returns 0, or 2 for a usage error (printed
 * with the usage to `printError`). Failures while reading or writing throw; the CLI prints them and exits 1.
 */
export async function prepareLabelsCommand(argv: string[], print: (line: string) => void, printError = (l: string) => console.error(l)): Promise<number> {
  return runLabelMapCommand('prepare-labels', PREPARE_LABELS_USAGE, () => parsePrepareLabelsArgs(argv), async (args) => {
    const reports = await JsonlManifest.open(join(args.out, PREPARE_REPORT), 'outputPath');
    for (const input of args.inputs) {
      const { volume, report } = await prepareLabelMap(input, args.grid);
      const outputPath = join(args.out, `${labelBasename(input)}.nii.gz`);
      await writeVolume(outputPath, volume, { descrip: `brain-ldm prepare-labels ${args.grid.orientation} ${args.grid.shape.join('x')}` });
      const line = await reports.put({ outputPath, ...report });
      print(args.json ? line : `${formatPrepareReport(report)}\n  wrote ${outputPath}`);
    }
  }, print, printError);
}
