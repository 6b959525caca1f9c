/**
 * `brain-ldm label-presence`: measure where each label lies in reference label maps and how small it may be, and
 * store it in generator.json (labelPresence), so generation grows a label a mask holds too few voxels of where it
 * belongs (pipeline/label-presence.ts). Statistics of the maps only: no network runs.
 */
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { readGenerator, writeGeneratorConfig, type LabelPresence } from '../bundle/generator-bundle.js';
import { readReferenceMaps } from '../labels/reference-maps.js';
import { volumeToTensorOrder } from '../labels/voxel-order.js';
import { DEFAULT_MIN_VOXEL_FRACTION, measureLabelPresence } from '../pipeline/label-presence.js';
import { UsageError, isUsageError, numberOption } from './cli-args.js';
import { DEFAULT_GENERATOR } from './generate-command.js';

export const LABEL_PRESENCE_USAGE = `usage: brain-ldm label-presence [generator-dir] --reference <dir> [options]

Measures, over the label maps in <dir> (on the generator's grid; the training maps, not held-out ones), where each
label's centroid lies relative to the brain's and how far it strays along each axis, and its mean voxel count; stores them as
labelPresence in <generator-dir>/generator.json. Generation then grows a label that a mask holds fewer than
min-fraction x its mean voxels of, inside that region, where the mask decoder ranks it closest to winning (disable
per run with brain-ldm generate --no-label-repair; the manifest names each sample's repaired labels).

options:
  --reference <dir>     label maps (*.nii.gz, *.nii) on the generator's grid
  --min-fraction <f>    a label's minimum as a fraction of its mean voxels in the maps (default ${DEFAULT_MIN_VOXEL_FRACTION})
  --remove              delete labelPresence from generator.json instead (masks as decoded)
  --dry-run             report only; leave generator.json as it is
  --json                print labelPresence as JSON`;

export async function labelPresenceCommand(argv: string[], print: (line: string) => void, printError = (l: string) => console.error(l)): Promise<number> {
  let parsed;
  try {
    parsed = parseArgs({
      args: argv, allowPositionals: true, strict: true,
      options: {
        reference: { type: 'string' }, 'min-fraction': { type: 'string' }, remove: { type: 'boolean' }, 'dry-run': { type: 'boolean' },
        json: { type: 'boolean' }, help: { type: 'boolean', short: 'h' },
      },
    });
    if (parsed.values.help) { print(LABEL_PRESENCE_USAGE); return 0; }
    if (parsed.positionals.length > 1) throw new UsageError(`expected at most one generator directory, got ${parsed.positionals.length}`);
    if (parsed.values.remove && (parsed.values.reference !== undefined || parsed.values['min-fraction'] !== undefined))
      throw new UsageError('--remove takes no --reference or --min-fraction');
    if (!parsed.values.remove && parsed.values.reference === undefined) throw new UsageError('--reference <dir> is required');
    numberOption('min-fraction', parsed.values['min-fraction'], (v) => v > 0 && v <= 1, 'a fraction in (0, 1]');
  } catch (e) {
    if (!isUsageError(e)) throw e;
    printError(`brain-ldm label-presence: ${(e as Error).message}\n\n${LABEL_PRESENCE_USAGE}`);
    return 2;
  }
  const { values, positionals } = parsed;
  const dir = positionals[0] ?? DEFAULT_GENERATOR;
  const generator = await readGenerator(dir);
  const { grid, labels } = generator.config;
  if (values.remove) {
    if (!values['dry-run']) await writeGeneratorConfig(dir, { ...generator.config, labelPresence: null });
    print(values['dry-run'] ? 'dry run: generator.json unchanged' : `removed labelPresence from ${join(dir, 'generator.json')}`);
    return 0;
  }
  const minFraction = numberOption('min-fraction', values['min-fraction'], () => true, '') ?? DEFAULT_MIN_VOXEL_FRACTION;
  const { files, maps } = await readReferenceMaps(values.reference!, grid.shape, '--reference');
  const channel = new Int16Array(256).fill(-1);
  labels.forEach((l, c) => { channel[l] = c; });
  const channelMaps = maps.map((m, i) => {
    const t = volumeToTensorOrder(m as Uint8Array, grid.shape);
    const out = new Uint8Array(t.length);
    for (let v = 0; v < t.length; v++) {
      const c = channel[t[v]] ?? -1;
      if (c < 0) throw new RangeError(`${files[i]}: a voxel holds label ${t[v]}, which is not one of the generator's labels [${labels.join(', ')}]`);
      out[v] = c;
    }
    return out;
  });
  const stats = measureLabelPresence(channelMaps, grid.shape, grid.spacingMm, labels.length, minFraction);
  const presence: LabelPresence = { ...stats, minFraction, referenceMaps: maps.length, date: new Date().toISOString() };
  if (!values['dry-run']) await writeGeneratorConfig(dir, { ...generator.config, labelPresence: presence });
  if (values.json) {
    print(JSON.stringify(presence, null, 2));
    return 0;
  }
  print(`label presence from ${maps.length} maps (minimum = ${minFraction} x mean voxels; region = an ellipsoid around the mean centroid offset from the brain's):`);
  print('  label  min voxels  offset mm (per grid axis)   radius mm (per grid axis)');
  const mm = (v: readonly number[]) => v.map((x) => x.toFixed(1).padStart(7)).join(' ');
  labels.forEach((l, c) => {
    const o = presence.offsetMm[c];
    if (o) print(`  ${String(l).padStart(5)}  ${String(presence.minVoxels[c]).padStart(10)}  ${mm(o)}     ${mm(presence.radiusMm[c])}`);
  });
  print(values['dry-run'] ? 'dry run: generator.json unchanged' : `wrote labelPresence into ${join(dir, 'generator.json')}`);
  return 0;
}
