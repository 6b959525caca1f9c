/**
 * Dice overlap of label maps, as nnU-Net and the thesis report it (EVALUATION.md 1.6): per label
 * 2 TP / (2 TP + FP + FN), undefined (NaN) when the label is absent from both maps; and binary Dice of a label
 * group (the six ventricle labels as one structure, the thesis' ventricle Dice).
 */
export function diceByLabel(reference: Uint8Array, prediction: Uint8Array, labels: readonly number[]): Map<number, number> {
  if (reference.length !== prediction.length) throw new RangeError(`diceByLabel: maps have ${reference.length} and ${prediction.length} voxels`);
  const tp = new Float64Array(256);
  const inRef = new Float64Array(256);
  const inPred = new Float64Array(256);
  for (let v = 0; v < reference.length; v++) {
    const r = reference[v];
    const p = prediction[v];
    inRef[r]++;
    inPred[p]++;
    if (r === p) tp[r]++;
  }
  const out = new Map<number, number>();
  for (const l of labels) {
    const denominator = inRef[l] + inPred[l];
    out.set(l, denominator === 0 ? Number.NaN : (2 * tp[l]) / denominator);
  }
  return out;
}

export function groupDice(reference: Uint8Array, prediction: Uint8Array, group: readonly number[]): number {
  if (reference.length !== prediction.length) throw new RangeError(`groupDice: maps have ${reference.length} and ${prediction.length} voxels`);
  const member = new Uint8Array(256);
  for (const l of group) member[l] = 1;
  let tp = 0, r = 0, p = 0;
  for (let v = 0; v < reference.length; v++) {
    const a = member[reference[v]];
    const b = member[prediction[v]];
    r += a;
    p += b;
    tp += a & b;
  }
  return r + p === 0 ? Number.NaN : (2 * tp) / (r + p);
}

/** Mean over the defined (non-NaN) values. */
export function meanDefined(values: Iterable<number>): number {
  let s = 0, n = 0;
  for (const v of values) if (!Number.isNaN(v)) { s += v; n++; }
  return n ? s / n : Number.NaN;
}
