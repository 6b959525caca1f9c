/**
 * Label-map preparation for training (the building block of the CLI's prepare step; the CLI wiring is elsewhere).
 *
 * One aseg-style map (FreeSurfer numbering, or SynthSeg's training maps with their generation-only labels) becomes a
 * SynthSeg 33-label map on the training grid, the way the thesis prepares masks (MONAI-COMPAT.md 1.2):
 *   1. read the NIfTI, values as whole-number labels;
 *   2. map to the 33 SynthSeg labels (synthseg-labels.ts: EVALUATION.md 2.3's generation -> output rules);
 *   3. reorient to `orientation` (axis permutation and flips only);
 *   4. resample to `spacingMm` with nearest neighbour, on MONAI Spacing's grid (voxel 0 kept, field of view kept);
 *   5. crop / zero-pad to `shape` around the centre of the bounding box of non-zero labels.
 * The report lists what the mapping merged and dropped (voxels, mL) and the ventricle and intracranial volumes after
 * each step, so a user can see that resampling and cropping did not distort them.
 */
import { affineZooms, readNifti, type Affine } from '../io/nifti.js';
import {
  brainCropStart, cropWindow, intracranialVolumeMl, labelCounts, labelVolumeFromNifti, nonZeroBox, reorient,
  resampleNearest, spacingGrid, ventricleVolumeMl, volumeAxcodes, voxelVolumeMm3, axcodesToOrientation,
  type Triple, type Volume,
} from './label-volume.js';
import {
  SYNTHSEG_LABELS, VENTRICLE_LABELS, labelName, mapToSynthSeg, type MapToSynthSegOptions,
} from './synthseg-labels.js';

export interface PrepareLabelMapOptions extends MapToSynthSegOptions {
  /** Target axis codes, e.g. 'IPL' (the thesis' LDM100K orientation). */
  orientation: string;
  /** Output shape in the target orientation, e.g. [96, 128, 96]. */
  shape: readonly number[];
  /** Voxel size in mm per output axis (target orientation), e.g. [1.667, 1.75, 1.667]. */
  spacingMm: readonly number[];
  /**
   * Labels ignored when centring the crop (still kept in the output). Default [24]: SynthSeg's training maps label
   * CSF down the spinal canal (over 200 mm inferior-superior), which would pull the crop off the top of the brain.
   * Pass [] to centre on every non-zero label, as the thesis' crop_around_mask_center does.
   */
  cropCenterExclude?: readonly number[];
  /** Relative ventricle-volume change (resampled and cropped vs mapped) above which the report warns; default 0.02. */
  ventricleTolerance?: number;
}

/** The thesis grid (MONAI-COMPAT.md 1.2: LDM100K orientation IPL, 1.667 x 1.75 x 1.667 mm, crop 96 x 128 x 96). */
export const THESIS_GRID: Readonly<{ orientation: string; shape: Triple; spacingMm: Triple }> = Object.freeze({
  orientation: 'IPL',
  shape: [96, 128, 96] as Triple,
  spacingMm: [1.667, 1.75, 1.667] as Triple,
});

/** The thesis grid halved, for quick experiments: IPL, 48 x 64 x 48 at 3.334 x 3.5 x 3.334 mm (same field of view). */
export const REDUCED_GRID: Readonly<{ orientation: string; shape: Triple; spacingMm: Triple }> = Object.freeze({
  orientation: 'IPL',
  shape: [48, 64, 48] as Triple,
  spacingMm: [3.334, 3.5, 3.334] as Triple,
});

export interface PrepareReport {
  input: { path: string; shape: number[]; spacingMm: number[]; orientation: string; datatype: string; distinctLabels: number };
  mapping: {
    merged: Array<{ from: number; to: number; name: string; voxels: number; ml: number }>;
    dropped: Array<{ label: number; name: string; voxels: number; ml: number }>;
    unknown: Array<{ label: number; voxels: number; ml: number }>;
    extra: Array<{ from: number; to: number; voxels: number; ml: number }>;
  };
  /** Ventricle volume (labels 4, 5, 43, 44, 14, 15) after each step, mL. */
  ventricleMl: { input: number; mapped: number; resampled: number; output: number };
  /** Non-zero (SynthSeg-labelled) volume after each step, mL. */
  intracranialMl: { mapped: number; resampled: number; output: number };
  /** Relative changes against the mapped map on the native grid (output / mapped - 1). */
  ventricleChange: { resampled: number; output: number };
  resampled: { shape: Triple; spacingMm: Triple };
  /** brainBoxMin/Max: the box the crop is centred on (labels in cropCenterExclude left out); lostByLabel: voxels cut off. */
  crop: { start: Triple; centerExclude: number[]; brainBoxMin: Triple; brainBoxMax: Triple; lostVoxels: number; lostVentricleVoxels: number; lostByLabel: Array<{ label: number; voxels: number }> };
  output: { shape: Triple; spacingMm: number[]; orientation: string; affine: Affine };
  /** Per SynthSeg label: mL on the native grid after mapping and in the output. */
  labels: Array<{ label: number; name: string; mappedMl: number; outputMl: number }>;
  /** SynthSeg labels with no voxel in the output. */
  missingLabels: number[];
  warnings: string[];
}

function round(v: number, digits = 3): number {
  const f = 10 ** digits;
  return Math.round(v * f) / f;
}

/**
 * Reads an aseg-style label map and returns it as a SynthSeg 33-label map (Uint8) on the requested grid, with a
 * report of what changed.
 */
export async function prepareLabelMap(inputPath: string, options: PrepareLabelMapOptions): Promise<{ volume: Volume<Uint8Array>; report: PrepareReport }> {
  const op = 'prepareLabelMap';
  if (typeof inputPath !== 'string' || inputPath.length === 0) throw new TypeError(`${op}: argument 'inputPath' must be a non-empty string`);
  if (options === null || typeof options !== 'object') throw new TypeError(`${op}: argument 'options' must be an object with orientation, shape and spacingMm`);
  axcodesToOrientation(options.orientation, op);
  const { shape, spacingMm } = options;
  if (!Array.isArray(shape) || shape.length !== 3 || !shape.every((v) => Number.isSafeInteger(v) && v >= 1))
    throw new RangeError(`${op}: option 'shape' must be 3 integers >= 1, got ${JSON.stringify(shape)}`);
  if (!Array.isArray(spacingMm) || spacingMm.length !== 3 || !spacingMm.every((v) => typeof v === 'number' && Number.isFinite(v) && v > 0))
    throw new RangeError(`${op}: option 'spacingMm' must be 3 positive numbers, got ${JSON.stringify(spacingMm)}`);
  const tolerance = options.ventricleTolerance ?? 0.02;

  const image = await readNifti(inputPath);
  const raw = labelVolumeFromNifti(image, inputPath);
  const nativeVoxelMl = voxelVolumeMm3(raw.affine) / 1000;
  const rawCounts = labelCounts(raw);
  const warnings: string[] = image.warnings.map((w) => `${inputPath}: ${w}`);

  const mapped = mapToSynthSeg(raw.data, options, inputPath);
  const mappedVolume: Volume<Uint8Array> = { data: mapped.labels, shape: raw.shape, affine: raw.affine };
  const ml = (voxels: number) => round(voxels * nativeVoxelMl, 4);
  const oriented = reorient(mappedVolume, options.orientation);
  const grid = spacingGrid(oriented, spacingMm);
  const resampled = resampleNearest(oriented, grid.shape, spacingMm, grid.affine);
  const cropExclude = options.cropCenterExclude ?? [24];
  if (!nonZeroBox(resampled)) throw new RangeError(`${inputPath}: no voxel keeps a SynthSeg label after mapping and resampling; is this a label map?`);
  const box = nonZeroBox(resampled, cropExclude) ?? nonZeroBox(resampled)!;
  const start = brainCropStart(resampled, shape, { exclude: cropExclude });
  const output = cropWindow(resampled, start, shape);

  const ventricle = {
    input: ventricleVolumeMl(raw),
    mapped: ventricleVolumeMl(mappedVolume),
    resampled: ventricleVolumeMl(resampled),
    output: ventricleVolumeMl(output),
  };
  const icv = { mapped: intracranialVolumeMl(mappedVolume), resampled: intracranialVolumeMl(resampled), output: intracranialVolumeMl(output) };
  const resampledCounts = labelCounts(resampled);
  const outputCounts = labelCounts(output);
  const mappedCounts = labelCounts(mappedVolume);
  const nonZero = (c: Map<number, number>) => [...c.entries()].reduce((s, [l, n]) => s + (l !== 0 ? n : 0), 0);
  const ventricleVoxels = (c: Map<number, number>) => VENTRICLE_LABELS.reduce((s, l) => s + (c.get(l) ?? 0), 0);
  const lostVoxels = nonZero(resampledCounts) - nonZero(outputCounts);
  const lostVentricleVoxels = ventricleVoxels(resampledCounts) - ventricleVoxels(outputCounts);
  const outVoxelMl = voxelVolumeMm3(output.affine) / 1000;
  const change = (v: number) => (ventricle.mapped > 0 ? v / ventricle.mapped - 1 : 0);
  const ventricleChange = { resampled: change(ventricle.resampled), output: change(ventricle.output) };
  const missingLabels = SYNTHSEG_LABELS.filter((l) => !outputCounts.has(l));

  for (const u of mapped.report.unknown)
    warnings.push(`label ${u.label} (${u.voxels} voxels, ${ml(u.voxels)} mL) is not a SynthSeg generation label; set to background`);
  if (Math.abs(ventricleChange.output) > tolerance)
    warnings.push(`ventricle volume changed by ${(100 * ventricleChange.output).toFixed(2)}% (${ventricle.mapped.toFixed(2)} -> ${ventricle.output.toFixed(2)} mL), more than ${(100 * tolerance).toFixed(1)}%`);
  const lostBrain = lostVoxels - (resampledCounts.get(24) ?? 0) + (outputCounts.get(24) ?? 0);
  if (lostBrain > 0 || (lostVoxels > 0 && !cropExclude.includes(24))) {
    const extent = [0, 1, 2].map((a) => (box.max[a] - box.min[a] + 1) * spacingMm[a]);
    warnings.push(`the ${shape.join('x')} crop cuts off ${lostVoxels} labelled voxels (${(lostVoxels * outVoxelMl).toFixed(2)} mL, ${lostBrain} of them not CSF, ${lostVentricleVoxels} ventricle); the box it is centred on spans ${extent.map((e) => e.toFixed(0)).join(' x ')} mm, the crop ${[0, 1, 2].map((a) => (shape[a] * spacingMm[a]).toFixed(0)).join(' x ')} mm`);
  }
  if (missingLabels.length > 0) warnings.push(`SynthSeg labels absent from the output: ${missingLabels.join(', ')}`);

  const report: PrepareReport = {
    input: {
      path: inputPath,
      shape: raw.shape.slice(),
      spacingMm: affineZooms(raw.affine).map((z) => round(z, 6)),
      orientation: volumeAxcodes(raw),
      datatype: image.datatypeName,
      distinctLabels: rawCounts.size,
    },
    mapping: {
      merged: mapped.report.merged.map((m) => ({ ...m, name: labelName(m.from), ml: ml(m.voxels) })),
      dropped: mapped.report.dropped.map((d) => ({ ...d, name: labelName(d.label), ml: ml(d.voxels) })),
      unknown: mapped.report.unknown.map((u) => ({ ...u, ml: ml(u.voxels) })),
      extra: mapped.report.extra.map((e) => ({ ...e, ml: ml(e.voxels) })),
    },
    ventricleMl: { input: round(ventricle.input, 4), mapped: round(ventricle.mapped, 4), resampled: round(ventricle.resampled, 4), output: round(ventricle.output, 4) },
    intracranialMl: { mapped: round(icv.mapped, 3), resampled: round(icv.resampled, 3), output: round(icv.output, 3) },
    ventricleChange: { resampled: round(ventricleChange.resampled, 6), output: round(ventricleChange.output, 6) },
    resampled: { shape: grid.shape, spacingMm: spacingMm.slice() as Triple },
    crop: {
      start, centerExclude: cropExclude.slice(), brainBoxMin: box.min, brainBoxMax: box.max, lostVoxels, lostVentricleVoxels,
      lostByLabel: [...resampledCounts.entries()].filter(([l, c]) => l !== 0 && c !== (outputCounts.get(l) ?? 0)).map(([l, c]) => ({ label: l, voxels: c - (outputCounts.get(l) ?? 0) })),
    },
    output: { shape: output.shape, spacingMm: affineZooms(output.affine).map((z) => round(z, 6)), orientation: volumeAxcodes(output), affine: output.affine },
    labels: SYNTHSEG_LABELS.filter((l) => l !== 0).map((l) => ({
      label: l,
      name: labelName(l),
      mappedMl: round((mappedCounts.get(l) ?? 0) * nativeVoxelMl, 4),
      outputMl: round((outputCounts.get(l) ?? 0) * outVoxelMl, 4),
    })),
    missingLabels,
    warnings,
  };
  return { volume: output as Volume<Uint8Array>, report };
}

/** The report as a few lines of text for a terminal. */
export function formatPrepareReport(r: PrepareReport): string {
  const lines: string[] = [];
  lines.push(`${r.input.path}: ${r.input.shape.join('x')} ${r.input.datatype}, ${r.input.spacingMm.join('x')} mm, ${r.input.orientation}, ${r.input.distinctLabels} distinct values`);
  if (r.mapping.merged.length) lines.push(`  merged:  ${r.mapping.merged.map((m) => `${m.from}->${m.to} ${m.ml.toFixed(2)} mL`).join(', ')}`);
  if (r.mapping.dropped.length) lines.push(`  dropped: ${r.mapping.dropped.map((d) => `${d.label} ${d.ml.toFixed(2)} mL`).join(', ')}`);
  if (r.mapping.extra.length) lines.push(`  extra:   ${r.mapping.extra.map((e) => `${e.from}->${e.to} ${e.ml.toFixed(2)} mL`).join(', ')}`);
  if (r.mapping.unknown.length) lines.push(`  unknown (-> 0): ${r.mapping.unknown.map((u) => `${u.label} ${u.ml.toFixed(2)} mL`).join(', ')}`);
  const v = r.ventricleMl;
  lines.push(`  ventricles (4,5,43,44,14,15): input ${v.input.toFixed(2)} mL, mapped ${v.mapped.toFixed(2)} mL, resampled ${v.resampled.toFixed(2)} mL (${(100 * r.ventricleChange.resampled).toFixed(2)}%), output ${v.output.toFixed(2)} mL (${(100 * r.ventricleChange.output).toFixed(2)}%)`);
  const i = r.intracranialMl;
  lines.push(`  labelled volume: mapped ${i.mapped.toFixed(1)} mL, resampled ${i.resampled.toFixed(1)} mL, output ${i.output.toFixed(1)} mL`);
  lines.push(`  output: ${r.output.shape.join('x')} at ${r.output.spacingMm.join('x')} mm, ${r.output.orientation}; crop start [${r.crop.start.join(', ')}] in the ${r.resampled.shape.join('x')} resampled grid`);
  if (r.crop.lostVoxels > 0) lines.push(`  cut off by the crop: ${r.crop.lostByLabel.map((l) => `${l.label}: ${l.voxels} voxels`).join(', ')}`);
  for (const w of r.warnings) lines.push(`  warning: ${w}`);
  return lines.join('\n');
}
