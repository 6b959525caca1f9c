/**
 * The class tables and T1 priors in ts/synth/synthseg-priors.ts against SynthSeg's own .npy files in ../shared/data
 * (read by numpy), plus the groupings EVALUATION.md 2.3 describes.
 */
import test from 'ava';
import { SYNTHSEG_GENERATION_LABELS } from '../../ts/labels/synthseg-labels.js';
import {
  classCount, generationClasses, RANDOM_CONTRAST_CLASSES, T1_CLASSES, T1_PRIOR_MEANS, T1_PRIOR_STDS,
} from '../../ts/synth/synthseg-priors.js';
import { sharedData } from '../helpers/shared-data.js';
import { pythonReference, runReference } from '../helpers/python-reference.js';

const { dataPath, haveData } = sharedData('synthseg-priors.spec', 'synthseg-label-maps/labels_classes_priors/prior_means_t1.npy');
const { pythonTest } = pythonReference('synthseg-priors.spec', ['numpy']);
const npyTest = haveData ? pythonTest : test.skip;

npyTest('tables equal SynthSeg\'s generation_labels, classes and T1 prior .npy files value for value', async (t) => {
  const dir = dataPath('synthseg-label-maps/labels_classes_priors/');
  const npy = await runReference<Record<string, unknown>>(`
names = ['generation_labels', 'generation_classes', 'generation_classes_contrast_specific', 'prior_means_t1', 'prior_stds_t1']
out = {n: np.load(inp['dir'] + n + '.npy').tolist() for n in names}
`, { dir });
  t.deepEqual(npy.generation_labels, [...SYNTHSEG_GENERATION_LABELS]);
  t.deepEqual(npy.generation_classes, [...RANDOM_CONTRAST_CLASSES]);
  t.deepEqual(npy.generation_classes_contrast_specific, [...T1_CLASSES]);
  // JSON carries float64 exactly (shortest round-trip repr), so equality is exact.
  t.deepEqual(npy.prior_means_t1, T1_PRIOR_MEANS.map((r) => [...r]));
  t.deepEqual(npy.prior_stds_t1, T1_PRIOR_STDS.map((r) => [...r]));
});

test('class groupings: T1 puts all fluid, WM and cortex-like GM together; random contrast keeps sides apart', (t) => {
  t.is(classCount('t1'), 25);
  t.is(classCount('random'), 48);
  const t1 = generationClasses('t1');
  const random = generationClasses('random');
  t.is(t1.size, 54);
  for (const l of [4, 5, 43, 44, 14, 15, 24, 72]) t.is(t1.get(l), 1, `fluid label ${l}`);
  for (const l of [2, 41, 85]) t.is(t1.get(l), 2, `WM label ${l}`);
  for (const l of [3, 42, 11, 50, 17, 53, 18, 54, 26, 58]) t.is(t1.get(l), 3, `GM label ${l}`);
  t.is(t1.get(0), 0);
  t.is(random.get(4), random.get(5));
  t.is(random.get(17), random.get(18));
  t.not(random.get(2), random.get(41));
  t.not(random.get(4), random.get(43));
  // The T1 priors order the classes as T1 contrast does: WM brighter than GM brighter than fluid.
  t.true(T1_PRIOR_MEANS[0][2] > T1_PRIOR_MEANS[0][3] && T1_PRIOR_MEANS[0][3] > T1_PRIOR_MEANS[0][1]);
  t.is(T1_PRIOR_MEANS[0].length, 25);
  t.is(T1_PRIOR_STDS[1].length, 25);
});
