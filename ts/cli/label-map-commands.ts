/**
 * What the commands over a list of label maps (prepare-labels, augment-labels, synthseg-images) share: the strict
 * argument parse with inputs and --out, the naming of outputs by the input's basename, the usage-error / --help
 * frame, and reading a map with the sform / qform codes its outputs keep.
 */
import { mkdirSync } from 'node:fs';
import { basename } from 'node:path';
import { parseArgs, type ParseArgsConfig } from 'node:util';
import { readNifti } from '../io/nifti.js';
import { labelVolumeFromNifti, type LabelVolume } from '../labels/label-volume.js';
import { UsageError } from './cli-args.js';

/** The map's name without .nii / .nii.gz; the key of its random streams and the stem of its outputs. */
export function labelBasename(path: string): string {
  const name = basename(path);
  const m = /^(.+)\.nii(\.gz)?$/i.exec(name);
  if (!m) throw new UsageError(`${path}: expected a NIfTI label map (.nii or .nii.gz)`);
  return m[1];
}

/** Inputs are named by their basename in outputs and random streams, so two inputs may not share one. */
export function checkDistinctBasenames(paths: readonly string[]): void {
  const seen = new Map<string, string>();
  for (const p of paths) {
    const b = labelBasename(p);
    if (seen.has(b)) throw new UsageError(`${p} and ${seen.get(b)} have the same basename '${b}', so their outputs (and random streams) would collide`);
    seen.set(b, p);
  }
}

type ParsedOptions<O extends ParseArgsConfig['options']> = ReturnType<typeof parseArgs<{ args: string[]; allowPositionals: true; strict: true; options: O }>>['values'];

/**
 * parseArgs (strict) plus the checks every label-map command needs: --help, at least one input, --out, distinct
 * input basenames. Every complaint is a UsageError.
 */
export function parseLabelMapArgs<O extends NonNullable<ParseArgsConfig['options']> & { out: { type: 'string' }; help: { type: 'boolean' } }>(
  argv: string[], options: O,
): { values: ParsedOptions<O>; inputs: string[]; out: string } | 'help' {
  let parsed;
  try {
    parsed = parseArgs({ args: argv, allowPositionals: true, strict: true, options });
  } catch (e) {
    throw new UsageError((e as Error).message);
  }
  const { values, positionals } = parsed as { values: ParsedOptions<O> & { out?: string; help?: boolean }; positionals: string[] };
  if (values.help) return 'help';
  if (positionals.length === 0) throw new UsageError('missing the label maps (one or more .nii or .nii.gz files)');
  if (!values.out) throw new UsageError('missing --out <dir>');
  checkDistinctBasenames(positionals);
  return { values, inputs: positionals, out: values.out };
}

/**
 * The frame the label-map commands share: a usage error prints the message and the usage and returns 2, --help
 * prints the usage, the output folder is created, then `body` runs (its failures throw; the CLI exits 1).
 */
export async function runLabelMapCommand<A extends { out: string }>(
  command: string, usage: string, parse: () => A | 'help', body: (args: A) => Promise<void>,
  print: (line: string) => void, printError: (line: string) => void,
): Promise<number> {
  let args: A | 'help';
  try {
    args = parse();
  } catch (e) {
    if (!(e instanceof UsageError)) throw e;
    printError(`brain-ldm ${command}: ${e.message}\n\n${usage}`);
    return 2;
  }
  if (args === 'help') {
    print(usage);
    return 0;
  }
  mkdirSync(args.out, { recursive: true });
  await body(args);
  return 0;
}

/** A label map and the sform / qform codes its outputs keep (a missing or unknown code becomes 2, aligned). */
export async function readLabelMap(path: string): Promise<{ labels: LabelVolume; qformCode: number; sformCode: number }> {
  const image = await readNifti(path);
  const valid = (c: number) => (c >= 1 && c <= 4 ? c : 2);
  return { labels: labelVolumeFromNifti(image, path), qformCode: valid(image.header.qformCode), sformCode: valid(image.header.sformCode) };
}
