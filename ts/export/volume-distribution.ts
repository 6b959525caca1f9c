/**
 * The distribution of requested ventricle volumes (mL) over the samples of a `generate` run, from the CLI's
 * `--volume-dist` spec:
 *
 *   uniform:A:B             uniform in [A, B)
 *   normal:MEAN:SD          normal, truncated at 0 (a volume cannot be negative)
 *   normal:MEAN:SD:LO:HI    normal truncated to [LO, HI]
 *   list:V1,V2,...          V[sampleIndex mod n] (no randomness; e.g. one sample per bucket, cycled)
 *   fixed:V                 V for every sample
 *
 * A draw is a pure function of (seed, sampleIndex): each sample has its own stream
 * `seededRandom(seed, 'ventricle-volume', sampleIndex)`, so sample 7 gets the same volume whether it is generated
 * alone, in a shard, or after a resume.
 */
import { seededRandom } from '../random/seeded-random.js';

export type VolumeDistributionKind = 'uniform' | 'normal' | 'list' | 'fixed';

export interface VolumeDistribution {
  /** The spec as given. */
  readonly spec: string;
  readonly kind: VolumeDistributionKind;
  /** Smallest and largest volume a draw can return (mL); max is Infinity for a normal without HI. */
  readonly min: number;
  readonly max: number;
  /** The requested ventricle volume (mL) of sample `sampleIndex` in a run seeded with `seed`. */
  draw(sampleIndex: number, seed: number): number;
}

/** A truncated normal whose interval holds less probability than this is refused: rejection would stall. */
const MIN_TRUNCATED_MASS = 1e-3;
/** With mass >= 1e-3, the chance of this many straight rejections is below e^-100. */
const MAX_REJECTIONS = 100_000;

const NUMBER = /^[+-]?(\d+(\.\d*)?|\.\d+)([eE][+-]?\d+)?$/;

/**
 * Parses a `--volume-dist` spec. `option` names the argument in errors (the CLI flag by default).
 */
export function parseVolumeDistribution(spec: string, option = '--volume-dist'): VolumeDistribution {
  const where = `${option} ${JSON.stringify(spec)}`;
  if (typeof spec !== 'string' || spec.trim() === '')
    throw new RangeError(`${option}: expected a distribution such as 'uniform:20:120', 'normal:60:15', 'normal:60:15:20:120', 'list:20,40,80' or 'fixed:50' (volumes in mL), got ${JSON.stringify(spec)}`);
  const [kind, ...fields] = spec.trim().split(':');
  const volume = (text: string | undefined, field: string, allowZero = true): number => {
    if (text === undefined || text.trim() === '') throw new RangeError(`${where}: field ${field} is missing; expected a volume in mL`);
    if (!NUMBER.test(text.trim())) throw new RangeError(`${where}: field ${field} must be a number (mL), got ${JSON.stringify(text)}`);
    const v = Number(text);
    if (!Number.isFinite(v)) throw new RangeError(`${where}: field ${field} must be a finite number (mL), got ${JSON.stringify(text)}`);
    if (v < 0 || (!allowZero && v === 0)) throw new RangeError(`${where}: field ${field} must be ${allowZero ? '>= 0' : '> 0'} mL, got ${v}`);
    return v;
  };
  const arity = (names: string[], alt?: string[]) => {
    if (fields.length !== names.length && (!alt || fields.length !== alt.length))
      throw new RangeError(`${where}: '${kind}' takes ${[names, ...(alt ? [alt] : [])].map((n) => `${kind}:${n.join(':')}`).join(' or ')}, got ${fields.length} field${fields.length === 1 ? '' : 's'}`);
  };
  switch (kind) {
    case 'fixed': {
      arity(['V']);
      const v = volume(fields[0], 'V');
      return make(spec, 'fixed', v, v, () => v);
    }
    case 'list': {
      arity(['V1,V2,...']);
      if (fields[0].trim() === '') throw new RangeError(`${where}: field V1,V2,... is empty; expected comma-separated volumes in mL`);
      const values = fields[0].split(',').map((s, i) => volume(s, `V${i + 1}`));
      return make(spec, 'list', Math.min(...values), Math.max(...values), (index) => values[index % values.length]);
    }
    case 'uniform': {
      arity(['A', 'B']);
      const a = volume(fields[0], 'A');
      const b = volume(fields[1], 'B');
      if (!(b > a)) throw new RangeError(`${where}: field B (upper bound, ${b} mL) must be greater than A (lower bound, ${a} mL)`);
      return make(spec, 'uniform', a, b, (index, seed) => streamFor(seed, index).uniform(a, b));
    }
    case 'normal': {
      arity(['MEAN', 'SD'], ['MEAN', 'SD', 'LO', 'HI']);
      const mean = volume(fields[0], 'MEAN');
      const sd = volume(fields[1], 'SD', false);
      const lo = fields.length === 4 ? volume(fields[2], 'LO') : 0;
      const hi = fields.length === 4 ? volume(fields[3], 'HI') : Infinity;
      if (!(hi > lo)) throw new RangeError(`${where}: field HI (${hi} mL) must be greater than LO (${lo} mL)`);
      const mass = normalCdf((hi - mean) / sd) - normalCdf((lo - mean) / sd);
      if (mass < MIN_TRUNCATED_MASS)
        throw new RangeError(`${where}: [${lo}, ${hi}] mL holds only ${mass.toPrecision(2)} of N(${mean}, ${sd}^2); move LO/HI towards MEAN (at least ${MIN_TRUNCATED_MASS} is needed)`);
      return make(spec, 'normal', lo, hi, (index, seed) => {
        // Rejection keeps the exact truncated shape; the mass check above bounds the expected tries by 1000.
        const r = streamFor(seed, index);
        for (let tries = 0; tries < MAX_REJECTIONS; tries++) {
          const v = r.normal(mean, sd);
          if (v >= lo && v <= hi) return v;
        }
        throw new Error(`${where}: no draw fell in [${lo}, ${hi}] after ${MAX_REJECTIONS} tries (sample ${index}, seed ${seed})`);
      });
    }
    default:
      throw new RangeError(`${where}: unknown distribution ${JSON.stringify(kind)}; expected uniform:A:B, normal:MEAN:SD[:LO:HI], list:V1,V2,... or fixed:V (mL)`);
  }
}

function streamFor(seed: number, sampleIndex: number) {
  return seededRandom(seed, 'ventricle-volume', sampleIndex);
}

function make(spec: string, kind: VolumeDistributionKind, min: number, max: number, draw: (index: number, seed: number) => number): VolumeDistribution {
  return Object.freeze({
    spec, kind, min, max,
    draw(sampleIndex: number, seed: number): number {
      if (!Number.isSafeInteger(sampleIndex) || sampleIndex < 0)
        throw new RangeError(`volume distribution ${JSON.stringify(spec)}: argument 'sampleIndex' must be an integer >= 0, got ${sampleIndex}`);
      if (!Number.isSafeInteger(seed)) throw new RangeError(`volume distribution ${JSON.stringify(spec)}: argument 'seed' must be a safe integer, got ${seed}`);
      return draw(sampleIndex, seed);
    },
  });
}

/**
 * Standard normal CDF through the Chebyshev fit of erfc in Numerical Recipes (fractional error < 1.2e-7): only used
 * to compare a probability mass with 1e-3, so no library is needed.
 */
function normalCdf(z: number): number {
  if (z === Infinity) return 1;
  if (z === -Infinity) return 0;
  const x = Math.abs(z) / Math.SQRT2;
  const t = 1 / (1 + 0.5 * x);
  const erfc = t * Math.exp(-x * x - 1.26551223 + t * (1.00002368 + t * (0.37409196 + t * (0.09678418 + t * (-0.18628806 +
    t * (0.27886807 + t * (-1.13520398 + t * (1.48851587 + t * (-0.82215223 + t * 0.17087277)))))))));
  return z >= 0 ? 1 - erfc / 2 : erfc / 2;
}
