/**
 * SynthSeg's intensity classes and T1 priors: which generation labels share one Gaussian, and the hyper-priors the
 * T1 means and standard deviations are drawn from.
 *
 * Derived from SynthSeg (Billot et al., Medical Image Analysis 86:102789, 2023), https://github.com/BBillot/SynthSeg
 * at commit 66342c1f05e520f3729a6d7ca1042eb7f01b6266, files data/labels_classes_priors/generation_classes.npy,
 * generation_classes_contrast_specific.npy, prior_means_t1.npy and prior_stds_t1.npy (values copied at full float64
 * precision; test/synth/synthseg-priors.spec.ts checks them against the .npy files in ../shared/data).
 *   Copyright 2020 Benjamin Billot. Licensed under the Apache License, Version 2.0 (the "License"); you may not use
 *   these values except in compliance with the License. You may obtain a copy of the License at
 *   http://www.apache.org/licenses/LICENSE-2.0. Distributed on an "AS IS" BASIS, WITHOUT WARRANTIES OR CONDITIONS OF
 *   ANY KIND, either express or implied.
 * Why a table here rather than reading the .npy files: the synthesizer must run from the npm package alone, and these
 * are 208 small numbers.
 *
 * Both class arrays are indexed like SYNTHSEG_GENERATION_LABELS (SynthSeg's `generation_labels.npy` order).
 */
import { SYNTHSEG_GENERATION_LABELS } from '../labels/synthseg-labels.js';

/** Image contrast: SynthSeg's T1 priors, or its uniform random means and stds (any contrast). */
export type Contrast = 't1' | 'random';
export const CONTRASTS: readonly Contrast[] = Object.freeze(['t1', 'random']);

/**
 * `generation_classes.npy`: 48 classes for random contrast; every label its own class except lateral + inferior
 * lateral ventricle (4+5, 43+44), hippocampus + amygdala (17+18, 53+54) and the two choroid-plexus parts (136+137,
 * 163+164), and left/right do NOT share (so random contrast can differ between hemispheres).
 */
export const RANDOM_CONTRAST_CLASSES: readonly number[] = Object.freeze([
  0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17,
  18, 19, 20, 20, 21, 22, 23, 24, 25, 26, 27, 27, 28, 29, 30, 31, 32, 32,
  33, 34, 35, 35, 36, 37, 38, 39, 40, 41, 42, 42, 43, 44, 45, 46, 47, 47,
]);

/**
 * `generation_classes_contrast_specific.npy`: 25 classes that go with the T1 priors. 1 = all fluid (4, 5, 43, 44,
 * 14, 15, 24, 72), 2 = white matter (2, 41, 85), 3 = cortex-like grey matter (3, 42, caudate, hippocampus, amygdala,
 * accumbens), 4 cerebellum WM, 5 cerebellum cortex, 6 thalamus, 7 putamen, 8 pallidum, 9 ventral DC, 10 lesions,
 * 11 vessels, 12 choroid plexus, 13 brain-stem, 14-24 the extra-cerebral 5xx labels; left and right share.
 */
export const T1_CLASSES: readonly number[] = Object.freeze([
  0, 1, 1, 13, 1, 1, 2, 14, 15, 16, 17, 18, 19, 20, 21, 22, 23, 24,
  2, 3, 1, 1, 4, 5, 6, 3, 7, 8, 3, 3, 10, 3, 9, 11, 12, 12,
  2, 3, 1, 1, 4, 5, 6, 3, 7, 8, 3, 3, 10, 3, 9, 11, 12, 12,
]);

/** `prior_means_t1.npy`: row 0 the mean, row 1 the std of the normal hyper-prior of each T1 class's GMM mean (0-255 scale). */
export const T1_PRIOR_MEANS: readonly (readonly number[])[] = Object.freeze([
  Object.freeze([
    7.0, 44.4385264550833, 160.29378443234492, 96.29526151539469, 135.9521106855132, 88.15506261353025,
    129.5238557459574, 124.05468047469526, 151.79945791847132, 142.5328064522177, 116.10473738110677,
    86.8343310828987, 59.62853626088221, 129.78496267137987, 126.3769669615632, 18.11697144919318,
    93.9053228097728, 117.13488728429984, 69.9128974786404, 113.73387770499774, 68.23628889499031,
    48.42668288972521, 30.19849002985411, 94.2426829164611, 144.4557236967426,
  ]),
  Object.freeze([
    1.75, 11.210001368512474, 21.655844669193947, 12.178316605695171, 13.411238382212543, 10.559704414182196,
    17.685388126420584, 15.727682412855374, 19.510731984131617, 16.057257785125692, 14.821761501649558,
    17.475098960898077, 10.40865690279693, 12.235182498482693, 24.79729954278778, 3.843221098869565,
    9.128999671437644, 11.666945860158505, 9.249405575346758, 12.418014268529209, 11.095524933574055,
    8.56551669138015, 6.860728038927216, 18.319961163270744, 16.318490849782307,
  ]),
]);

/** `prior_stds_t1.npy`: row 0 the mean, row 1 the std of the normal hyper-prior of each T1 class's GMM std. */
export const T1_PRIOR_STDS: readonly (readonly number[])[] = Object.freeze([
  Object.freeze([
    5.0, 25.56555603788309, 15.632235778579707, 18.918288160684572, 15.340137978944725, 17.092720702516466,
    19.588602621708688, 13.805922639652465, 8.55665306983607, 21.12773274840113, 19.456808446436163,
    17.166713512140877, 23.65403494485737, 17.533202677573566, 83.95184226273605, 13.859914316970356,
    48.601450922191766, 64.79087693228959, 25.465356931191103, 74.86602865084008, 35.857049512738094,
    19.91995258866948, 22.023968167584222, 43.3205582756548, 44.67356303162778,
  ]),
  Object.freeze([
    2.5, 9.840770928742954, 5.47665590202549, 6.3053362804003825, 5.661437037660658, 5.4918666925984,
    7.77360196385341, 7.145593877171753, 4.071372402456837, 6.95113295059529, 7.169353781964023,
    8.508409460087348, 11.083184948384499, 6.784258384604395, 49.36716792082647, 7.4398963787268135,
    12.556632258406427, 28.514962130995112, 13.13529979937599, 20.46649412196124, 18.3541064871792,
    8.999439884968732, 11.59856222125836, 20.13599184417704, 26.211428007121288,
  ]),
]);

/** Class index of each generation label for a contrast (lookup by label value). */
export function generationClasses(contrast: Contrast): ReadonlyMap<number, number> {
  const classes = contrast === 't1' ? T1_CLASSES : RANDOM_CONTRAST_CLASSES;
  return new Map(SYNTHSEG_GENERATION_LABELS.map((label, i) => [label, classes[i]] as [number, number]));
}

/** Number of intensity classes of a contrast (25 for T1, 48 for random). */
export function classCount(contrast: Contrast): number {
  return Math.max(...(contrast === 't1' ? T1_CLASSES : RANDOM_CONTRAST_CLASSES)) + 1;
}
