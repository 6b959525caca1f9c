/**
 * Generated (image, label map) pairs as an nnU-Net v2 raw dataset, ready for `nnUNetv2_plan_and_preprocess`:
 *
 *   <root>/DatasetXXX_Name/dataset.json
 *   <root>/DatasetXXX_Name/imagesTr/<case>_0000.nii.gz   float32 image (channel 0, e.g. "T1")
 *   <root>/DatasetXXX_Name/labelsTr/<case>.nii.gz        uint8 labels, written with the image's affine
 *
 * Rules (../shared/design/EVALUATION.md 1.1-1.3, from MIC-DKFZ/nnUNet dataset_format.md,
 * verify_dataset_integrity.py, dataset_name_id_conversion.py, label_handling.py): the id is the three digits after
 * "Dataset" and 001-010 belong to the Medical Segmentation Decathlon; dataset.json needs channel_names, labels
 * (name -> int, "background": 0, consecutive), numTraining (= the cases nnU-Net finds) and file_ending; other keys are
 * free metadata. Label values follow the thesis (EVALUATION.md 4.1): the 33 SynthSeg labels become their channel
 * index 0..32, or ventricles (4, 5, 43, 44, 14, 15) become 1; the label file gets the image's affine, as the thesis'
 * export does.
 *
 * Crash and resume safety: every file is written to a temporary name and renamed. A case's label is written before
 * its image, because nnU-Net finds cases by their images (an image without a label fails its integrity check, a
 * label without an image is ignored). `finalize()` counts complete cases on disk, so a resumed or sharded run that
 * finalizes again gets numTraining right.
 */
import { mkdir, readdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { writeFileAtomically } from '../io/atomic-write.js';
import { writeNifti } from '../io/nifti.js';
import { checkVolume, type Volume } from '../labels/label-volume.js';
import { labelsToIndices, SYNTHSEG_LABEL_NAMES, SYNTHSEG_LABELS, VENTRICLE_LABELS } from '../labels/synthseg-labels.js';

export type NnunetTask = 'synthseg' | 'ventricles';

export const NNUNET_TASKS: readonly NnunetTask[] = Object.freeze(['synthseg', 'ventricles']);

export const NNUNET_FILE_ENDING = '.nii.gz';

/** Decathlon ids (EVALUATION.md 1.1): usable, but they clash with anyone who also has the Decathlon datasets. */
const DECATHLON_IDS = { first: 1, last: 10 };

/** Characters safe in a folder or file name on every OS nnU-Net runs on, and in nnU-Net's own name parsing. */
const SAFE_NAME = /^[A-Za-z0-9][A-Za-z0-9_-]*$/;

export interface NnunetDatasetName {
  /** 1..999 */
  id: number;
  /** The part after `DatasetXXX_`. */
  name: string;
  /** `DatasetXXX_Name` */
  folder: string;
  /** Set for ids 001-010 (the Medical Segmentation Decathlon's). */
  warning?: string;
}

/** Validates `DatasetXXX_Name` (nnU-Net v2 folder naming) and splits it. */
export function parseNnunetDatasetName(datasetName: string): NnunetDatasetName {
  const expected = "expected 'DatasetXXX_Name' with XXX a three-digit id 001-999 and Name of letters, digits, '_' or '-' (e.g. 'Dataset801_SynthVentricles')";
  if (typeof datasetName !== 'string') throw new TypeError(`nnU-Net dataset name: ${expected}, got ${typeof datasetName}`);
  const m = /^Dataset(\d{3})_(.*)$/.exec(datasetName);
  if (!m) throw new RangeError(`nnU-Net dataset name ${JSON.stringify(datasetName)}: ${expected}`);
  const id = Number(m[1]);
  const name = m[2];
  if (id === 0) throw new RangeError(`nnU-Net dataset name ${JSON.stringify(datasetName)}: id 000 is not a dataset id; ${expected}`);
  if (name === '') throw new RangeError(`nnU-Net dataset name ${JSON.stringify(datasetName)}: the name after 'Dataset${m[1]}_' is empty; ${expected}`);
  if (!SAFE_NAME.test(name) || name.length > 200)
    throw new RangeError(`nnU-Net dataset name ${JSON.stringify(datasetName)}: the name ${JSON.stringify(name)} has characters that are unsafe in a folder name or is over 200 long; ${expected}`);
  const out: NnunetDatasetName = { id, name, folder: datasetName };
  if (id >= DECATHLON_IDS.first && id <= DECATHLON_IDS.last)
    out.warning = `nnU-Net dataset ${datasetName}: ids 001-010 are the Medical Segmentation Decathlon's; if you also use those datasets, pick an id above 010 so nnU-Net does not find two datasets with id ${m[1]}`;
  return out;
}

/** dataset.json `labels` of a task: name -> nnU-Net value, "background": 0, consecutive. */
export function nnunetLabels(task: NnunetTask): Record<string, number> {
  checkTask(task, 'nnunetLabels');
  if (task === 'ventricles') return { background: 0, ventricles: 1 };
  return Object.fromEntries(SYNTHSEG_LABELS.map((label, index) => [SYNTHSEG_LABEL_NAMES[label], index]));
}

/** Per nnU-Net value, the SynthSeg labels it stands for (kept in dataset.json so the export can be mapped back). */
function sourceLabels(task: NnunetTask): Record<string, number[]> {
  if (task === 'ventricles') return { 0: SYNTHSEG_LABELS.filter((l) => !VENTRICLE_LABELS.includes(l)), 1: [...VENTRICLE_LABELS] };
  return Object.fromEntries(SYNTHSEG_LABELS.map((label, index) => [index, [label]]));
}

const VENTRICLE_LUT: Int16Array = (() => {
  const lut = new Int16Array(256).fill(-1);
  for (const l of SYNTHSEG_LABELS) lut[l] = VENTRICLE_LABELS.includes(l) ? 1 : 0;
  return lut;
})();

/** SynthSeg label values -> the task's nnU-Net values; a value outside the 33 SynthSeg labels is an error naming it. */
export function toNnunetLabelMap(labels: Uint8Array, task: NnunetTask): Uint8Array {
  checkTask(task, 'toNnunetLabelMap');
  if (!(labels instanceof Uint8Array)) throw new TypeError(`toNnunetLabelMap: argument 'labels' must be a Uint8Array of SynthSeg label values, got ${(labels as object)?.constructor?.name ?? typeof labels}`);
  if (task === 'synthseg') {
    try {
      return labelsToIndices(labels);
    } catch (e) {
      throw new RangeError(`toNnunetLabelMap: ${(e as Error).message.replace(/^labelsToIndices: /, '')}`);
    }
  }
  const out = new Uint8Array(labels.length);
  for (let n = 0; n < labels.length; n++) {
    const v = VENTRICLE_LUT[labels[n]];
    if (v < 0) throw new RangeError(`toNnunetLabelMap: voxel ${n} has value ${labels[n]}, which is not one of the 33 SynthSeg labels (${SYNTHSEG_LABELS.join(', ')})`);
    out[n] = v;
  }
  return out;
}

function checkTask(task: unknown, op: string): asserts task is NnunetTask {
  if (!NNUNET_TASKS.includes(task as NnunetTask)) throw new RangeError(`${op}: argument 'task' must be one of ${NNUNET_TASKS.map((t) => `'${t}'`).join(', ')}, got ${JSON.stringify(task)}`);
}

/**
 * Checks a case id: letters, digits, '_' and '-', not ending in `_` + four digits (that reads as nnU-Net's channel
 * suffix: `x_0001`'s image `x_0001_0000.nii.gz` is easily mistaken for channel 1 of case `x`).
 */
export function checkNnunetCaseId(caseId: string): void {
  if (typeof caseId !== 'string' || !SAFE_NAME.test(caseId) || caseId.length > 200)
    throw new RangeError(`nnU-Net case id ${JSON.stringify(caseId)}: expected 1-200 letters, digits, '_' or '-', starting with a letter or digit (e.g. 'synth_000042')`);
  if (/_\d{4}$/.test(caseId))
    throw new RangeError(`nnU-Net case id ${JSON.stringify(caseId)}: ends in '_' and four digits, which reads as nnU-Net's channel suffix (_0000); use e.g. ${JSON.stringify(caseId.replace(/_(\d{4})$/, '-$1'))}`);
}

export interface NnunetDatasetOptions {
  /** Name of channel 0 in dataset.json; it picks nnU-Net's normalisation (any MR name = per-image z-score). Default 'T1'. */
  channelName?: string;
  description?: string;
  /** Written as dataset.json "licence" (nnU-Net's spelling). */
  license?: string;
  reference?: string;
  /** Receives warnings (e.g. a Decathlon id); default: console.warn. */
  onWarning?: (message: string) => void;
}

export interface NnunetCasePaths {
  image: string;
  label: string;
}

export interface NnunetFinalizeResult {
  /** Path of the dataset.json written. */
  path: string;
  /** Complete cases (label and image on disk), sorted. */
  cases: string[];
  numTraining: number;
  /** Cases with only one of the two files (an interrupted write, or a shard still running). */
  incomplete: string[];
}

/** Writes generated pairs into one nnU-Net v2 raw dataset folder. Create with `NnunetDatasetWriter.open`. */
export class NnunetDatasetWriter {
  private constructor(
    readonly folder: string,
    readonly dataset: NnunetDatasetName,
    readonly task: NnunetTask,
    private readonly options: Required<Pick<NnunetDatasetOptions, 'channelName'>> & NnunetDatasetOptions,
  ) {}

  get imagesTr(): string { return join(this.folder, 'imagesTr'); }
  get labelsTr(): string { return join(this.folder, 'labelsTr'); }

  /**
   * Creates (or reopens, to resume or add a shard) `<root>/<datasetName>/{imagesTr,labelsTr}`. Reopening a folder
   * whose dataset.json has other labels, channels or file ending, or a root holding another dataset with the same id,
   * is an error naming both.
   */
  static async open(root: string, datasetName: string, task: NnunetTask, options: NnunetDatasetOptions = {}): Promise<NnunetDatasetWriter> {
    if (typeof root !== 'string' || root === '') throw new TypeError(`NnunetDatasetWriter.open: argument 'root' must be a folder path, got ${JSON.stringify(root)}`);
    const dataset = parseNnunetDatasetName(datasetName);
    checkTask(task, 'NnunetDatasetWriter.open');
    const channelName = options.channelName ?? 'T1';
    if (typeof channelName !== 'string' || channelName.trim() === '')
      throw new RangeError(`NnunetDatasetWriter.open: option 'channelName' must be a non-empty string such as 'T1', got ${JSON.stringify(channelName)}`);
    for (const key of ['description', 'license', 'reference'] as const)
      if (options[key] !== undefined && typeof options[key] !== 'string') throw new TypeError(`NnunetDatasetWriter.open: option '${key}' must be a string, got ${typeof options[key]}`);
    if (dataset.warning) (options.onWarning ?? console.warn)(dataset.warning);

    const siblings = await readdir(root).catch((e: NodeJS.ErrnoException) => { if (e.code === 'ENOENT') return [] as string[]; throw e; });
    const prefix = `Dataset${String(dataset.id).padStart(3, '0')}_`;
    const clash = siblings.find((s) => s.startsWith(prefix) && s !== dataset.folder);
    if (clash) throw new Error(`NnunetDatasetWriter.open: ${join(root, clash)} already has id ${String(dataset.id).padStart(3, '0')}; nnU-Net needs one name per id, so ${dataset.folder} cannot go beside it (pick another id or name it ${clash})`);

    const folder = join(root, dataset.folder);
    const writer = new NnunetDatasetWriter(folder, dataset, task, { ...options, channelName });
    await writer.checkExistingDatasetJson();
    await mkdir(writer.imagesTr, { recursive: true });
    await mkdir(writer.labelsTr, { recursive: true });
    return writer;
  }

  private async checkExistingDatasetJson(): Promise<void> {
    const path = join(this.folder, 'dataset.json');
    let text: string;
    try {
      text = await readFile(path, 'utf8');
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === 'ENOENT') return;
      throw e;
    }
    let existing: Record<string, unknown>;
    try {
      existing = JSON.parse(text);
    } catch (e) {
      throw new Error(`NnunetDatasetWriter.open: ${path} is not valid JSON (${(e as Error).message}); move it away or fix it before adding cases`);
    }
    const wanted = this.datasetJson(0);
    for (const key of ['labels', 'channel_names', 'file_ending'] as const) {
      const have = JSON.stringify(existing[key]);
      const want = JSON.stringify(wanted[key]);
      if (have !== want) {
        const existingTask = (existing.brain_ldm as { task?: unknown } | undefined)?.task;
        throw new Error(`NnunetDatasetWriter.open: ${path} has ${key} ${abbreviate(have)}${existingTask !== undefined ? ` (task ${JSON.stringify(existingTask)})` : ''}, but this export (task '${this.task}') writes ${key} ${abbreviate(want)}; use another dataset name or the matching task`);
      }
    }
  }

  /** Paths a case is written to. */
  casePaths(caseId: string): NnunetCasePaths {
    checkNnunetCaseId(caseId);
    return { image: join(this.imagesTr, `${caseId}_0000${NNUNET_FILE_ENDING}`), label: join(this.labelsTr, `${caseId}${NNUNET_FILE_ENDING}`) };
  }

  /**
   * Writes one case: labels (mapped to the task's values, uint8, with the image's affine) first, then the float32
   * image. Everything is checked before anything is written; an existing case with the same id is replaced.
   */
  async writeCase(caseId: string, image: Volume<Float32Array>, labels: Volume<Uint8Array>): Promise<NnunetCasePaths> {
    const op = `NnunetDatasetWriter.writeCase(${JSON.stringify(caseId)})`;
    const paths = this.casePaths(caseId);
    checkVolume(image, `${op}: image`);
    checkVolume(labels, `${op}: labels`);
    if (!(image.data instanceof Float32Array)) throw new TypeError(`${op}: field 'image.data' must be a Float32Array, got ${(image.data as object).constructor.name}`);
    if (!(labels.data instanceof Uint8Array)) throw new TypeError(`${op}: field 'labels.data' must be a Uint8Array of SynthSeg labels, got ${(labels.data as object).constructor.name}`);
    if (labels.shape.some((d, a) => d !== image.shape[a]))
      throw new RangeError(`${op}: labels shape [${labels.shape.join(', ')}] differs from image shape [${image.shape.join(', ')}]`);
    const worst = maxAffineDifference(image.affine, labels.affine);
    if (worst > 1e-3)
      throw new RangeError(`${op}: labels affine differs from the image affine by up to ${worst.toPrecision(3)} (mm per voxel or mm); they must describe the same grid`);
    const bad = image.data.findIndex((v) => !Number.isFinite(v));
    if (bad >= 0) throw new RangeError(`${op}: image voxel ${bad} is ${image.data[bad]}; nnU-Net refuses non-finite images`);
    let mapped: Uint8Array;
    try {
      mapped = toNnunetLabelMap(labels.data, this.task);
    } catch (e) {
      throw new RangeError(`${op}: ${(e as Error).message}`);
    }
    await writeNifti(paths.label, { data: mapped, shape: image.shape, affine: image.affine, header: { descrip: `brain-ldm ${this.task} labels` } });
    await writeNifti(paths.image, { data: image.data, shape: image.shape, affine: image.affine, header: { descrip: 'brain-ldm synthetic image' } });
    return paths;
  }

  /** Complete and incomplete cases on disk. */
  async scanCases(): Promise<{ cases: string[]; incomplete: string[] }> {
    const imageSuffix = `_0000${NNUNET_FILE_ENDING}`;
    const list = async (dir: string, suffix: string) => new Set((await readdir(dir)).filter((f) => f.endsWith(suffix)).map((f) => f.slice(0, -suffix.length)));
    const images = await list(this.imagesTr, imageSuffix);
    const labels = await list(this.labelsTr, NNUNET_FILE_ENDING);
    const cases = [...images].filter((c) => labels.has(c)).sort();
    const incomplete = [...new Set([...images, ...labels])].filter((c) => !(images.has(c) && labels.has(c))).sort();
    return { cases, incomplete };
  }

  /**
   * Writes dataset.json with numTraining = the complete cases on disk. Safe to call again after more cases (a resumed
   * run, another shard). Cases with a missing file are reported (and passed to onWarning), not deleted: another shard
   * may be writing them.
   */
  async finalize(): Promise<NnunetFinalizeResult> {
    const { cases, incomplete } = await this.scanCases();
    if (incomplete.length > 0)
      (this.options.onWarning ?? console.warn)(`nnU-Net dataset ${this.dataset.folder}: ${incomplete.length} case(s) have only one of image/label and are not counted: ${incomplete.slice(0, 5).join(', ')}${incomplete.length > 5 ? ', ...' : ''}`);
    const path = join(this.folder, 'dataset.json');
    await writeFileAtomically(path, [Buffer.from(`${JSON.stringify(this.datasetJson(cases.length), null, 2)}\n`, 'utf8')]);
    return { path, cases, numTraining: cases.length, incomplete };
  }

  /** The dataset.json object: nnU-Net's four required keys, then free metadata. */
  datasetJson(numTraining: number): Record<string, unknown> {
    const o = this.options;
    return {
      channel_names: { 0: o.channelName },
      labels: nnunetLabels(this.task),
      numTraining,
      file_ending: NNUNET_FILE_ENDING,
      name: this.dataset.name,
      description: o.description ?? `Synthetic brain MRI generated by brain-ldm; labels: ${this.task === 'synthseg' ? 'the 33 SynthSeg labels as 0..32' : 'binary ventricle mask (SynthSeg 4, 5, 43, 44, 14, 15)'}`,
      ...(o.reference !== undefined ? { reference: o.reference } : {}),
      ...(o.license !== undefined ? { licence: o.license } : {}),
      converted_by: 'brain-ldm',
      brain_ldm: { task: this.task, synthseg_labels: sourceLabels(this.task) },
    };
  }
}

function maxAffineDifference(a: number[][], b: number[][]): number {
  let worst = 0;
  for (let r = 0; r < 4; r++) for (let c = 0; c < 4; c++) worst = Math.max(worst, Math.abs(a[r][c] - b[r][c]));
  return worst;
}

function abbreviate(s: string): string {
  return s.length > 160 ? `${s.slice(0, 157)}...` : s;
}
