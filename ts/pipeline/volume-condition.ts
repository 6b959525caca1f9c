/**
 * Ventricle volume in the user's units (mL) <-> the mask model's condition.
 *
 * The model is conditioned on the thesis' quantity (MONAI-COMPAT.md 1.2): r = ventricle volume / intracranial
 * volume, min-max normalised over the training set, c = (r - ratioMin) / (ratioMax - ratioMin). A request in mL has
 * no ICV of its own (the brain is generated afterwards), so without calibration it is converted with the training
 * set's median ICV (`referenceIcvMl`). Whether the model then lands where asked is an empirical question:
 * `brain-ldm calibrate` measures achieved volume against condition and stores a monotone map from mL to condition,
 * which, when present, replaces the reference-ICV conversion.
 */
import type { VolumeCalibration, VolumeConditioning } from '../bundle/generator-bundle.js';

export interface ResolvedCondition {
  /** The value that goes into the context's volume slot. */
  condition: number;
  /** How it was obtained. */
  source: 'calibration' | 'reference-icv' | 'condition';
  /** True when the request lies outside the training set's range or the calibrated range (the model extrapolates). */
  extrapolated: boolean;
  /** Which range the request leaves, for the warning (null when it is inside both). */
  extrapolation: string | null;
}

/** How far (in condition units) a calibrated map may extrapolate past its measured ends (the thesis tried up to 1.55). */
export const CALIBRATION_EXTRAPOLATION = 0.5;

/** Condition for a ventricle/ICV ratio. */
export function conditionForRatio(ratio: number, k: VolumeConditioning): number {
  return (ratio - k.ratioMin) / (k.ratioMax - k.ratioMin);
}

/** The ventricle volume (mL) the uncalibrated conversion associates with a condition. */
export function referenceVolumeMlForCondition(condition: number, k: VolumeConditioning): number {
  return (k.ratioMin + condition * (k.ratioMax - k.ratioMin)) * k.referenceIcvMl;
}

/** Piecewise-linear interpolation through strictly increasing xs, extended linearly past both ends. */
export function interpolateLinear(xs: readonly number[], ys: readonly number[], x: number): number {
  const n = xs.length;
  let i = 1;
  while (i < n - 1 && x > xs[i]) i++;
  const t = (x - xs[i - 1]) / (xs[i] - xs[i - 1]);
  return ys[i - 1] + t * (ys[i] - ys[i - 1]);
}

function mlText(ml: number, digits = 2): string {
  return String(Math.round(ml * 10 ** digits) / 10 ** digits);
}

function checkVolumeMl(ml: unknown, what: string): asserts ml is number {
  if (typeof ml !== 'number' || !Number.isFinite(ml)) throw new TypeError(`${what} must be a number of mL, got ${JSON.stringify(ml) ?? String(ml)}`);
  if (ml <= 0) throw new RangeError(`${what} must be a positive volume in mL, got ${ml}`);
}

/** The condition for a requested ventricle volume in mL (calibrated map when the generator has one). */
export function conditionForVolumeMl(ml: number, k: VolumeConditioning, calibration: VolumeCalibration | null): ResolvedCondition {
  checkVolumeMl(ml, 'ventricle volume');
  const [lo, hi] = k.trainingVentricleMl;
  const outside = (a: number, b: number, range: string) => (ml < a || ml > b ? `${mlText(ml)} mL lies outside the ${range} ${mlText(a, 1)}-${mlText(b, 1)} mL` : null);
  const training = outside(lo, hi, 'training range');
  if (calibration) {
    const xs = calibration.points.map((p) => p[0]);
    const ys = calibration.points.map((p) => p[1]);
    // Past the measured points the map continues its end slopes, but only CALIBRATION_EXTRAPOLATION condition units
    // further: a model whose volume barely moves would otherwise be sent to absurd conditions.
    const condition = Math.min(ys[ys.length - 1] + CALIBRATION_EXTRAPOLATION, Math.max(ys[0] - CALIBRATION_EXTRAPOLATION, interpolateLinear(xs, ys, ml)));
    // The calibrated points span the volumes the model actually reached, which can be narrower than the training range.
    const extrapolation = training ?? outside(xs[0], xs[xs.length - 1], 'calibrated range');
    return { condition, source: 'calibration', extrapolated: extrapolation !== null, extrapolation };
  }
  return { condition: conditionForRatio(ml / k.referenceIcvMl, k), source: 'reference-icv', extrapolated: training !== null, extrapolation: training };
}

/** A condition given directly (the model's normalised value); values outside [0, 1] extrapolate. */
export function conditionGiven(condition: number): ResolvedCondition {
  if (typeof condition !== 'number' || !Number.isFinite(condition)) throw new TypeError(`condition must be a finite number, got ${String(condition)}`);
  const extrapolated = condition < 0 || condition > 1;
  return { condition, source: 'condition', extrapolated, extrapolation: extrapolated ? `condition ${condition} lies outside [0, 1]` : null };
}

/**
 * Isotonic (non-decreasing) least-squares fit of ys over increasing xs, by pool-adjacent-violators
 * (Barlow et al. 1972); `weights` default to 1. Returns one fitted value per input.
 */
export function isotonicFit(ys: readonly number[], weights?: readonly number[]): number[] {
  const blocks: Array<{ sum: number; weight: number; count: number }> = [];
  ys.forEach((y, i) => {
    const w = weights?.[i] ?? 1;
    blocks.push({ sum: y * w, weight: w, count: 1 });
    while (blocks.length > 1) {
      const b = blocks[blocks.length - 1];
      const a = blocks[blocks.length - 2];
      if (a.sum / a.weight <= b.sum / b.weight) break;
      blocks.splice(blocks.length - 2, 2, { sum: a.sum + b.sum, weight: a.weight + b.weight, count: a.count + b.count });
    }
  });
  return blocks.flatMap((b) => new Array<number>(b.count).fill(b.sum / b.weight));
}

export interface CalibrationMeasurement {
  condition: number;
  achievedMl: number;
}

/**
 * The monotone map from mL to condition: achieved volumes are averaged per condition, made non-decreasing in the
 * condition by isotonic regression, and pooled stretches (equal fitted volumes) collapse to one point at their
 * mean condition, so the map is strictly increasing and can be inverted. Throws when the model's volume does not
 * grow with the condition at all.
 */
export function fitVolumeCalibration(measurements: readonly CalibrationMeasurement[]): Array<[number, number]> {
  const byCondition = new Map<number, number[]>();
  for (const m of measurements) {
    if (!Number.isFinite(m.condition) || !Number.isFinite(m.achievedMl)) throw new RangeError(`fitVolumeCalibration: non-finite measurement ${JSON.stringify(m)}`);
    const list = byCondition.get(m.condition) ?? [];
    list.push(m.achievedMl);
    byCondition.set(m.condition, list);
  }
  const conditions = [...byCondition.keys()].sort((a, b) => a - b);
  const means = conditions.map((c) => byCondition.get(c)!.reduce((a, b) => a + b, 0) / byCondition.get(c)!.length);
  const counts = conditions.map((c) => byCondition.get(c)!.length);
  const fitted = isotonicFit(means, counts);
  const points: Array<[number, number]> = [];
  for (let i = 0; i < conditions.length;) {
    let j = i;
    while (j + 1 < conditions.length && fitted[j + 1] === fitted[i]) j++;
    const cs = conditions.slice(i, j + 1);
    points.push([fitted[i], cs.reduce((a, b) => a + b, 0) / cs.length]);
    i = j + 1;
  }
  if (points.length < 2) {
    const summary = conditions.map((c, i) => `${c.toFixed(3)} -> ${means[i].toFixed(1)} mL`).join(', ');
    throw new RangeError(`calibration: the generated ventricle volume does not increase with the condition (${summary}); this model's volume control does not work at these settings`);
  }
  return points;
}

/** Spearman rank correlation (average ranks for ties). */
export function spearman(xs: readonly number[], ys: readonly number[]): number {
  const rank = (v: readonly number[]) => {
    const order = v.map((x, i) => [x, i] as const).sort((a, b) => a[0] - b[0]);
    const r = new Array<number>(v.length);
    for (let i = 0; i < order.length;) {
      let j = i;
      while (j + 1 < order.length && order[j + 1][0] === order[i][0]) j++;
      for (let k = i; k <= j; k++) r[order[k][1]] = (i + j) / 2 + 1;
      i = j + 1;
    }
    return r;
  };
  const rx = rank(xs);
  const ry = rank(ys);
  const mean = (v: number[]) => v.reduce((a, b) => a + b, 0) / v.length;
  const mx = mean(rx);
  const my = mean(ry);
  let sxy = 0, sxx = 0, syy = 0;
  for (let i = 0; i < rx.length; i++) {
    sxy += (rx[i] - mx) * (ry[i] - my);
    sxx += (rx[i] - mx) ** 2;
    syy += (ry[i] - my) ** 2;
  }
  return sxx === 0 || syy === 0 ? Number.NaN : sxy / Math.sqrt(sxx * syy);
}

export function median(v: readonly number[]): number {
  const s = [...v].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
}
