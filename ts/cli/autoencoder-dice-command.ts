/**
 * `brain-ldm autoencoder-dice`: how much anatomy a generator's mask autoencoder keeps: each label map (on the
 * generator's grid, e.g. held-out subjects from `prepare-labels`) is encoded, decoded and compared with itself.
 */
import { parseArgs } from 'node:util';
import { loadBackend } from '../backend/select.js';
import { readGenerator } from '../bundle/generator-bundle.js';
import { readLabelVolume } from '../labels/label-volume.js';
import { VENTRICLE_LABELS } from '../labels/synthseg-labels.js';
import { tensorToVolumeOrder, volumeToTensorOrder } from '../labels/voxel-order.js';
import { diceByLabel, groupDice, meanDefined } from '../metrics/dice.js';
import { LabeledPairGenerator } from '../pipeline/labeled-pair-generator.js';
import { BACKEND_OPTIONS, BACKEND_USAGE, UsageError, backendOptions, isUsageError } from './cli-args.js';
import { DEFAULT_GENERATOR } from './generate-command.js';

export const AUTOENCODER_DICE_USAGE = `usage: brain-ldm autoencoder-dice <labels.nii.gz ...> [--generator <dir>] [--json]

Encodes and decodes each SynthSeg label map (on the generator's grid) with the generator's mask autoencoder and
reports Dice per map: the mean over the 33 labels, over the 32 foreground labels, and the ventricles (labels 4, 5,
43, 44, 14, 15 as one structure). --generator defaults to the package's models/default.
${BACKEND_USAGE}`;

const parse = (argv: string[]) => parseArgs({
  args: argv, allowPositionals: true, strict: true,
  options: { generator: { type: 'string' }, json: { type: 'boolean' }, help: { type: 'boolean', short: 'h' }, ...BACKEND_OPTIONS },
});

export interface AutoencoderDiceRow {
  file: string;
  meanDice: number;
  meanForegroundDice: number;
  ventricleDice: number;
  diceByLabel: Record<string, number | null>;
}

export async function autoencoderDiceCommand(argv: string[], print: (line: string) => void, printError = (l: string) => console.error(l)): Promise<number> {
  let parsed: ReturnType<typeof parse>;
  try {
    parsed = parse(argv);
    if (parsed.values.help) { print(AUTOENCODER_DICE_USAGE); return 0; }
    if (parsed.positionals.length === 0) throw new UsageError('expected at least one label map');
    backendOptions(parsed.values);
  } catch (e) {
    if (!isUsageError(e)) throw e;
    printError(`brain-ldm autoencoder-dice: ${(e as Error).message}\n\n${AUTOENCODER_DICE_USAGE}`);
    return 2;
  }
  const generator = await readGenerator(parsed.values.generator ?? DEFAULT_GENERATOR);
  const { grid, labels } = generator.config;
  const backend = await loadBackend(backendOptions(parsed.values));
  const rows: AutoencoderDiceRow[] = [];
  let pairs: LabeledPairGenerator | null = null;
  try {
    pairs = await LabeledPairGenerator.create(backend, generator);
    for (const file of parsed.positionals) {
      const v = await readLabelVolume(file);
      if (v.shape.some((d, i) => d !== grid.shape[i]))
        throw new RangeError(`${file}: shape [${v.shape.join(', ')}] is not the generator's grid [${grid.shape.join(', ')}] (prepare it with brain-ldm prepare-labels)`);
      const reference = v.data instanceof Uint8Array ? v.data : Uint8Array.from(v.data);
      const reconstructed = tensorToVolumeOrder(await pairs.reconstructLabels(volumeToTensorOrder(reference, grid.shape)), grid.shape);
      const byLabel = diceByLabel(reference, reconstructed, labels);
      rows.push({
        file,
        meanDice: meanDefined(byLabel.values()),
        meanForegroundDice: meanDefined([...byLabel].filter(([l]) => l !== 0).map(([, d]) => d)),
        ventricleDice: groupDice(reference, reconstructed, VENTRICLE_LABELS),
        diceByLabel: Object.fromEntries([...byLabel].map(([l, d]) => [String(l), Number.isNaN(d) ? null : d])),
      });
    }
  } finally {
    await pairs?.dispose();
    await backend.dispose();
  }
  const summary = {
    maps: rows.length,
    meanDice: meanDefined(rows.map((r) => r.meanDice)),
    meanForegroundDice: meanDefined(rows.map((r) => r.meanForegroundDice)),
    ventricleDice: meanDefined(rows.map((r) => r.ventricleDice)),
  };
  if (parsed.values.json) {
    print(JSON.stringify({ summary, rows }, null, 2));
    return 0;
  }
  for (const r of rows) print(`${r.file}: mean Dice ${r.meanDice.toFixed(4)} (foreground ${r.meanForegroundDice.toFixed(4)}), ventricles ${r.ventricleDice.toFixed(4)}`);
  print(`mean over ${rows.length} maps: Dice ${summary.meanDice.toFixed(4)} (foreground ${summary.meanForegroundDice.toFixed(4)}), ventricles ${summary.ventricleDice.toFixed(4)}`);
  return 0;
}
