/**
 * SynthSeg labels: the 33-label set in channel order, names, contiguous indices, left/right mirroring, and the
 * generation -> SynthSeg mapping, checked against SynthSeg's own tables (via reference.json) and on all 20 real
 * training maps in ../shared/data.
 */
import test from 'ava';
import { readFileSync } from 'node:fs';
import { readLabelVolume, labelCounts } from '../../ts/labels/label-volume.js';
import {
  GENERATION_TO_SYNTHSEG, LEFT_RIGHT_PAIRS, MIRROR_LUT, NEUTRAL_LABELS, NUM_SYNTHSEG_LABELS, SYNTHSEG_GENERATION_LABELS,
  SYNTHSEG_LABELS, SYNTHSEG_LABEL_NAMES, SYNTHSEG_MERGES, VENTRICLE_LABELS, indicesToLabels, isSynthSegLabel,
  labelName, labelsToIndices, mapToSynthSeg, mirrorLabel, mirrorLabels, synthSegIndex, synthSegLabelAt,
} from '../../ts/labels/synthseg-labels.js';
import { sharedData } from '../helpers/shared-data.js';

const { dataTest, dataPath } = sharedData('synthseg-labels.spec');

const ref = JSON.parse(readFileSync(new URL('../fixtures/nifti/reference.json', import.meta.url), 'utf8')) as {
  files: Array<{ path: string; synthseg_counts?: Record<string, number>; generation_to_synthseg?: Record<string, number> }>;
};

test('the 33 labels in the thesis channel order (MONAI-COMPAT.md 1.2), with names', (t) => {
  t.deepEqual([...SYNTHSEG_LABELS], [0, 2, 3, 4, 5, 7, 8, 10, 11, 12, 13, 14, 15, 16, 17, 18, 24, 26, 28, 41, 42, 43, 44, 46, 47, 49, 50, 51, 52, 53, 54, 58, 60]);
  t.is(NUM_SYNTHSEG_LABELS, 33);
  t.deepEqual(Object.keys(SYNTHSEG_LABEL_NAMES).map(Number).sort((a, b) => a - b), [...SYNTHSEG_LABELS]);
  t.is(labelName(24), 'CSF');
  t.is(labelName(43), 'right lateral ventricle');
  t.is(labelName(507), 'extra-cerebral 507 (soft tissue)');
  t.is(labelName(999), 'label 999');
  t.deepEqual([...VENTRICLE_LABELS], [4, 5, 43, 44, 14, 15]);
  t.throws(() => { (SYNTHSEG_LABELS as number[]).push(1); }, { instanceOf: TypeError });
});

test('label <-> contiguous index (0..32) both ways', (t) => {
  SYNTHSEG_LABELS.forEach((l, i) => {
    t.is(synthSegIndex(l), i);
    t.is(synthSegLabelAt(i), l);
    t.true(isSynthSegLabel(l));
  });
  t.false(isSynthSegLabel(1));
  t.throws(() => synthSegIndex(1), { instanceOf: RangeError, message: /synthSegIndex: 1 is not one of the 33 SynthSeg labels/ });
  t.throws(() => synthSegLabelAt(33), { instanceOf: RangeError, message: /index must be an integer in 0\.\.32, got 33/ });
  const labels = Int32Array.from([0, 60, 24, 4, 43, 2]);
  const idx = labelsToIndices(labels);
  t.deepEqual(Array.from(idx), [0, 32, 16, 3, 21, 1]);
  t.deepEqual(Array.from(indicesToLabels(idx)), Array.from(labels));
  t.throws(() => labelsToIndices(Int32Array.from([0, 72])), { message: /voxel 1 has value 72, which is not one of the 33/ });
  t.throws(() => indicesToLabels(Uint8Array.from([33])), { message: /voxel 0 has value 33, expected an index in 0\.\.32/ });
  t.throws(() => labelsToIndices([0, 1] as unknown as Int32Array), { instanceOf: TypeError, message: /must be an integer typed array, got Array/ });
});

test('left/right pairs: every label is neutral or in exactly one pair; mirroring is an involution that swaps sides', (t) => {
  const paired = LEFT_RIGHT_PAIRS.flat();
  t.deepEqual([...paired, ...NEUTRAL_LABELS].sort((a, b) => a - b), [...SYNTHSEG_LABELS]);
  for (const [l, r] of LEFT_RIGHT_PAIRS) {
    t.true(SYNTHSEG_LABEL_NAMES[l].startsWith('left '), `${l}`);
    t.is(SYNTHSEG_LABEL_NAMES[r], SYNTHSEG_LABEL_NAMES[l].replace(/^left /, 'right '));
    t.is(mirrorLabel(l), r);
    t.is(mirrorLabel(r), l);
  }
  for (const l of NEUTRAL_LABELS) t.is(mirrorLabel(l), l);
  for (const l of SYNTHSEG_LABELS) t.is(MIRROR_LUT[MIRROR_LUT[l]], l);
  const all = Uint8Array.from(SYNTHSEG_LABELS);
  t.deepEqual(Array.from(mirrorLabels(mirrorLabels(all))), Array.from(all));
  t.throws(() => mirrorLabel(136), { message: /136 is not one of the 33/ });
});

test('generation -> SynthSeg mapping: EVALUATION.md 2.3, equal to SynthSeg\'s own tables (with 24 kept, SynthSeg 2.0)', (t) => {
  t.is(SYNTHSEG_GENERATION_LABELS.length, 54);
  t.is(GENERATION_TO_SYNTHSEG.size, 54);
  t.deepEqual([...GENERATION_TO_SYNTHSEG.keys()].sort((a, b) => a - b), [...SYNTHSEG_GENERATION_LABELS].sort((a, b) => a - b));
  t.deepEqual({ ...SYNTHSEG_MERGES }, {
    25: 2, 57: 41, 136: 4, 137: 5, 163: 43, 164: 44, 30: 0, 62: 0, 72: 0, 85: 0,
    502: 0, 506: 0, 507: 0, 508: 0, 509: 0, 511: 0, 512: 0, 514: 0, 515: 0, 516: 0, 530: 0,
  });
  for (const l of SYNTHSEG_LABELS) t.is(GENERATION_TO_SYNTHSEG.get(l), l);
  // From SynthSeg's generation_labels.npy + synthseg_segmentation_labels.npy, read by the reference script.
  const table = ref.files.find((f) => f.generation_to_synthseg)!.generation_to_synthseg!;
  t.deepEqual(Object.fromEntries([...GENERATION_TO_SYNTHSEG.entries()].map(([k, v]) => [String(k), v])), table);
});

test('mapToSynthSeg reports merged, dropped and unknown labels with voxel counts', (t) => {
  const input = Int32Array.from([0, 0, 2, 25, 25, 136, 4, 507, 507, 507, 31, 77, 77, 24, 72, -3]);
  const { labels, report } = mapToSynthSeg(input);
  t.deepEqual(Array.from(labels), [0, 0, 2, 2, 2, 4, 4, 0, 0, 0, 0, 0, 0, 24, 0, 0]);
  t.deepEqual(report.merged, [{ from: 25, to: 2, voxels: 2 }, { from: 136, to: 4, voxels: 1 }]);
  t.deepEqual(report.dropped, [{ label: 72, voxels: 1 }, { label: 507, voxels: 3 }]);
  t.deepEqual(report.unknown, [{ label: -3, voxels: 1 }, { label: 31, voxels: 1 }, { label: 77, voxels: 2 }]);
  const extra = mapToSynthSeg(input, { extraMapping: { 31: 4, 77: 2 } });
  t.deepEqual(extra.report.extra, [{ from: 31, to: 4, voxels: 1 }, { from: 77, to: 2, voxels: 2 }]);
  t.is(extra.labels[10], 4);
  t.deepEqual(extra.report.unknown, [{ label: -3, voxels: 1 }]);
  t.throws(() => mapToSynthSeg(input, { unknownLabels: 'error' }, 'x.nii'), { message: /x\.nii: value -3 \(1 voxels\) is not a SynthSeg generation label/ });
  t.throws(() => mapToSynthSeg(input, { extraMapping: { 136: 5 } }), { message: /may not override generation label 136/ });
  t.throws(() => mapToSynthSeg(input, { extraMapping: { 31: 6 } }), { message: /maps 31 to 6, which is not one of the 33/ });
  t.deepEqual(Array.from(mapToSynthSeg(Uint8Array.from([2, 41, 60])).labels), [2, 41, 60]);
});

const SUBJECTS = Array.from({ length: 20 }, (_, k) => `training_seg_${String(k + 1).padStart(2, '0')}.nii.gz`);

dataTest('on all 20 SynthSeg training maps the mapping yields only the 33 labels, every one present', async (t) => {
  for (const s of SUBJECTS) {
    const vol = await readLabelVolume(dataPath(`synthseg-label-maps/${s}`));
    const { labels, report } = mapToSynthSeg(vol.data, { unknownLabels: 'error' }, s);
    t.deepEqual(report.unknown, [], s);
    const counts = labelCounts({ data: labels, shape: vol.shape, affine: vol.affine });
    t.deepEqual([...counts.keys()], [...SYNTHSEG_LABELS], `${s}: labels after mapping`);
    // The choroid-plexus labels were there and went into the ventricles.
    t.deepEqual(report.merged.map((m) => m.from), [25, 57, 136, 137, 163, 164], s);
    const ref1 = ref.files.find((f) => f.path.endsWith(s));
    if (ref1?.synthseg_counts)
      t.deepEqual(Object.fromEntries([...counts.entries()].map(([k, v]) => [String(k), v])), ref1.synthseg_counts, `${s}: counts equal the numpy mapping`);
  }
});
