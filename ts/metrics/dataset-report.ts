/**
 * The quality report of a generated folder: anatomy and contrast checks per sample (anatomy-checks.ts) and how well
 * achieved ventricle volumes follow the requests (Spearman correlation, median relative error, mean absolute error).
 */
import { join } from 'node:path';
import { readNifti } from '../io/nifti.js';
import { readLabelVolume, type Volume } from '../labels/label-volume.js';
import { readManifestRecords } from '../pipeline/generate-dataset.js';
import { median, spearman } from '../pipeline/volume-condition.js';
import { checkAnatomy, checkContrast, type AnatomyReport, type ContrastReport } from './anatomy-checks.js';

export interface SampleReport {
  index: number;
  anatomy: AnatomyReport;
  contrast: ContrastReport;
  requestedMl: number | null;
  achievedMl: number;
  /** Label values the label presence repair grew in this mask, and those the decoder had left out (empty: none, or no repair ran). */
  repairedLabels: number[];
  missingBeforeRepair: number[];
}

export interface DatasetReport {
  samples: number;
  /** Fractions of samples passing each check; `anatomy` = all labels, ventricles inside and left of right together. */
  pass: { allLabelsPresent: number; ventriclesInsideBrain: number; leftOfRight: number; anatomy: number; t1Order: number };
  /**
   * Samples whose mask had labels grown by the label presence repair, and the anatomy pass rate with a label the
   * decoder left out counted as missing (the other two checks are of the repaired masks): the mask decoder alone.
   */
  labelRepair: { samples: number; anatomyWithoutRepair: number } | null;
  volume: { requests: number; spearman: number; medianRelativeError: number; meanAbsoluteErrorMl: number } | null;
  perSample: SampleReport[];
}

export async function reportGeneratedFolder(out: string): Promise<DatasetReport> {
  const records = [...(await readManifestRecords(out)).values()].filter((r) => r.files !== null).sort((a, b) => a.index - b.index);
  if (records.length === 0) throw new RangeError(`${out}: no finished samples (no manifest*.jsonl records with files)`);
  const perSample: SampleReport[] = [];
  for (const r of records) {
    const labels = (await readLabelVolume(join(out, r.files!.labels))) as Volume<Uint8Array>;
    if (!(labels.data instanceof Uint8Array)) throw new TypeError(`${join(out, r.files!.labels)}: expected a uint8 label map`);
    const img = await readNifti(join(out, r.files!.image));
    if (!(img.data instanceof Float32Array)) throw new TypeError(`${join(out, r.files!.image)}: expected a float32 image`);
    const image: Volume<Float32Array> = { data: img.data, shape: labels.shape, affine: labels.affine };
    perSample.push({ index: r.index, anatomy: checkAnatomy(labels), contrast: checkContrast(image, labels), requestedMl: r.requested.ventricleMl, achievedMl: r.achieved.ventricleMl,
      repairedLabels: r.labelRepair?.labels ?? [], missingBeforeRepair: r.labelRepair?.missing ?? [] });
  }
  const frac = (f: (s: SampleReport) => boolean) => perSample.filter(f).length / perSample.length;
  const anatomyPasses = (s: SampleReport) => s.anatomy.allLabelsPresent && s.anatomy.ventriclesInsideBrain && s.anatomy.leftOfRight;
  const repaired = records.some((r) => r.labelRepair != null);
  const requested = perSample.filter((s) => s.requestedMl !== null);
  const volume = requested.length >= 2 ? {
    requests: requested.length,
    spearman: spearman(requested.map((s) => s.requestedMl!), requested.map((s) => s.achievedMl)),
    medianRelativeError: median(requested.map((s) => Math.abs(s.achievedMl - s.requestedMl!) / s.requestedMl!)),
    meanAbsoluteErrorMl: requested.reduce((a, s) => a + Math.abs(s.achievedMl - s.requestedMl!), 0) / requested.length,
  } : null;
  return {
    samples: perSample.length,
    pass: {
      allLabelsPresent: frac((s) => s.anatomy.allLabelsPresent),
      ventriclesInsideBrain: frac((s) => s.anatomy.ventriclesInsideBrain),
      leftOfRight: frac((s) => s.anatomy.leftOfRight),
      anatomy: frac(anatomyPasses),
      t1Order: frac((s) => s.contrast.t1Order),
    },
    labelRepair: repaired ? {
      samples: perSample.filter((s) => s.repairedLabels.length > 0).length,
      anatomyWithoutRepair: frac((s) => anatomyPasses(s) && s.missingBeforeRepair.length === 0),
    } : null,
    volume,
    perSample,
  };
}
