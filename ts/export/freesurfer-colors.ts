/**
 * Display colours (R, G, B) of the 33 SynthSeg labels, from FreeSurfer's colour table
 * FreeSurferColorLUT.txt, $Id v1.105 2015/07/29 (copy read in FNNDSC/pl-freesurfer_simplereport at f4c7aec;
 * the same table EVALUATION.md 2.2 cites). FreeSurfer is distributed under the FreeSurfer Software License; the
 * table's numbers are reproduced as data so montages look as FreeView shows the labels. Left and right structures
 * share a colour there (except the pallidum: 12 48 255 vs 13 48 255).
 */
export const FREESURFER_COLORS: Readonly<Record<number, readonly [number, number, number]>> = Object.freeze({
  0: [0, 0, 0], // Unknown
  2: [245, 245, 245], // Left-Cerebral-White-Matter
  3: [205, 62, 78], // Left-Cerebral-Cortex
  4: [120, 18, 134], // Left-Lateral-Ventricle
  5: [196, 58, 250], // Left-Inf-Lat-Vent
  7: [220, 248, 164], // Left-Cerebellum-White-Matter
  8: [230, 148, 34], // Left-Cerebellum-Cortex
  10: [0, 118, 14], // Left-Thalamus(-Proper)
  11: [122, 186, 220], // Left-Caudate
  12: [236, 13, 176], // Left-Putamen
  13: [12, 48, 255], // Left-Pallidum
  14: [204, 182, 142], // 3rd-Ventricle
  15: [42, 204, 164], // 4th-Ventricle
  16: [119, 159, 176], // Brain-Stem
  17: [220, 216, 20], // Left-Hippocampus
  18: [103, 255, 255], // Left-Amygdala
  24: [60, 60, 60], // CSF
  26: [255, 165, 0], // Left-Accumbens-area
  28: [165, 42, 42], // Left-VentralDC
  41: [245, 245, 245], // Right-Cerebral-White-Matter
  42: [205, 62, 78], // Right-Cerebral-Cortex
  43: [120, 18, 134], // Right-Lateral-Ventricle
  44: [196, 58, 250], // Right-Inf-Lat-Vent
  46: [220, 248, 164], // Right-Cerebellum-White-Matter
  47: [230, 148, 34], // Right-Cerebellum-Cortex
  49: [0, 118, 14], // Right-Thalamus(-Proper)
  50: [122, 186, 220], // Right-Caudate
  51: [236, 13, 176], // Right-Putamen
  52: [13, 48, 255], // Right-Pallidum
  53: [220, 216, 20], // Right-Hippocampus
  54: [103, 255, 255], // Right-Amygdala
  58: [255, 165, 0], // Right-Accumbens-area
  60: [165, 42, 42], // Right-VentralDC
});
