/** `brain-ldm evaluate <folder>`: the quality report of a generated folder (anatomy, contrast, volume adherence). */
import { parseArgs } from 'node:util';
import { reportGeneratedFolder } from '../metrics/dataset-report.js';
import { UsageError, isUsageError } from './cli-args.js';

export const EVALUATE_USAGE = `usage: brain-ldm evaluate <generated-folder> [--json]

Checks every finished sample of a \`brain-ldm generate\` folder and reports the fraction that passes:
  all labels     every one of the 33 SynthSeg labels is present
  ventricles in  no ventricle voxel touches background or the volume border
  left of right  each left structure's centroid lies left of its right partner's (world RAS x)
  T1 contrast    mean intensity white matter > cortex > ventricles
and, over samples that asked for a volume in mL, the Spearman correlation of achieved vs requested ventricle
volume, the median relative error and the mean absolute error.`;

const pct = (v: number) => `${(100 * v).toFixed(1)}%`;

export async function evaluateCommand(argv: string[], print: (line: string) => void, printError = (l: string) => console.error(l)): Promise<number> {
  let parsed;
  try {
    parsed = parseArgs({ args: argv, allowPositionals: true, strict: true, options: { json: { type: 'boolean' }, help: { type: 'boolean', short: 'h' } } });
    if (parsed.values.help) { print(EVALUATE_USAGE); return 0; }
    if (parsed.positionals.length !== 1) throw new UsageError('expected exactly one generated folder');
  } catch (e) {
    if (!isUsageError(e)) throw e;
    printError(`brain-ldm evaluate: ${(e as Error).message}\n\n${EVALUATE_USAGE}`);
    return 2;
  }
  const report = await reportGeneratedFolder(parsed.positionals[0]);
  if (parsed.values.json) {
    print(JSON.stringify(report, null, 2));
    return 0;
  }
  const p = report.pass;
  print(`${report.samples} samples in ${parsed.positionals[0]}`);
  print(`  all labels ${pct(p.allLabelsPresent)}, ventricles inside ${pct(p.ventriclesInsideBrain)}, left of right ${pct(p.leftOfRight)}; all three ${pct(p.anatomy)}`);
  if (report.labelRepair)
    print(`  label presence repair grew labels in ${report.labelRepair.samples} of ${report.samples} masks; all three counting the labels the decoder left out ${pct(report.labelRepair.anatomyWithoutRepair)}`);
  print(`  T1 contrast (white matter > cortex > ventricles) ${pct(p.t1Order)}`);
  if (report.volume) {
    const v = report.volume;
    print(`  volume over ${v.requests} requests: Spearman ${v.spearman.toFixed(3)}, median relative error ${pct(v.medianRelativeError)}, mean absolute error ${v.meanAbsoluteErrorMl.toFixed(1)} mL`);
  }
  return 0;
}
