/**
 * Schedulers: DDPM, DDIM and PNDM with MONAI's exact formulas (generative 0.2.3 or MONAI core 1.6 semantics),
 * and DPM-Solver++(2M) for few-step sampling. `createScheduler` builds one from a plain config object:
 *
 *   createScheduler({ type: 'ddim', numTrainTimesteps: 1000, schedule: 'scaled_linear_beta', betaStart: 0.0015,
 *                     betaEnd: 0.0205, predictionType: 'epsilon', clipSample: false })
 *
 * Every field but `type` has MONAI's default (diffusers' for the DPM-Solver fields); unknown fields and bad
 * values throw a TypeError/RangeError naming `config.<field>`.
 */
import { DdimScheduler, type DdimSchedulerConfig } from './ddim-scheduler.js';
import { DdpmScheduler, type DdpmSchedulerConfig } from './ddpm-scheduler.js';
import { DpmSolverMultistepScheduler, type DpmSolverMultistepSchedulerConfig } from './dpm-solver-multistep-scheduler.js';
import { PndmScheduler, type PndmSchedulerConfig } from './pndm-scheduler.js';
import { SCHEDULER_TYPES, type Scheduler, type SchedulerType } from './scheduler.js';
import type { Semantics } from './noise-schedule.js';

export * from './scheduler.js';
export * from './noise-schedule.js';
export * from './ddpm-scheduler.js';
export * from './ddim-scheduler.js';
export * from './pndm-scheduler.js';
export * from './dpm-solver-multistep-scheduler.js';

/** A scheduler config: `type` plus any of that scheduler's fields (the rest take their defaults). */
export type SchedulerConfigInput =
  | ({ type: 'ddpm' } & Partial<DdpmSchedulerConfig>)
  | ({ type: 'ddim' } & Partial<DdimSchedulerConfig>)
  | ({ type: 'pndm' } & Partial<PndmSchedulerConfig>)
  | ({ type: 'dpm-solver++' } & Partial<DpmSolverMultistepSchedulerConfig>);

export function createScheduler(config: SchedulerConfigInput): Scheduler {
  if (config === null || typeof config !== 'object' || Array.isArray(config))
    throw new TypeError(`createScheduler: argument 'config' must be an object, got ${JSON.stringify(config)}`);
  const type = (config as { type?: unknown }).type;
  switch (type) {
    case 'ddpm':
      return new DdpmScheduler(config as Partial<DdpmSchedulerConfig>);
    case 'ddim':
      return new DdimScheduler(config as Partial<DdimSchedulerConfig>);
    case 'pndm':
      return new PndmScheduler(config as Partial<PndmSchedulerConfig>);
    case 'dpm-solver++':
      return new DpmSolverMultistepScheduler(config as Partial<DpmSolverMultistepSchedulerConfig>);
    default: {
      const Err = typeof type === 'string' ? RangeError : TypeError;
      throw new Err(`createScheduler: config.type must be one of ${SCHEDULER_TYPES.map((t) => `'${t}'`).join(', ')}, got ${JSON.stringify(type)}`);
    }
  }
}

/** MONAI constructor argument -> config field. */
const MONAI_ARGS: Readonly<Record<string, string>> = {
  num_train_timesteps: 'numTrainTimesteps',
  schedule: 'schedule',
  beta_start: 'betaStart',
  beta_end: 'betaEnd',
  sig_range: 'sigRange',
  s: 'cosineS',
  prediction_type: 'predictionType',
  variance_type: 'varianceType',
  clip_sample: 'clipSample',
  clip_sample_min: 'clipSampleMin',
  clip_sample_max: 'clipSampleMax',
  set_alpha_to_one: 'setAlphaToOne',
  steps_offset: 'stepsOffset',
  skip_prk_steps: 'skipPrkSteps',
};

const MONAI_CLASSES: Readonly<Record<string, SchedulerType>> = { DDPMScheduler: 'ddpm', DDIMScheduler: 'ddim', PNDMScheduler: 'pndm' };

/**
 * A config from a MONAI scheduler's constructor arguments (snake_case, as in a bundle's inference.json or the
 * thesis YAML), e.g. `{"_target_": "generative.networks.schedulers.DDPMScheduler", "num_train_timesteps": 1000,
 * "schedule": "scaled_linear_beta", "beta_start": 0.0015, "beta_end": 0.0205, "clip_sample": false}`.
 * `_target_` (a "generative." or "monai." path) picks the type and the semantics unless `type`/`semantics` are
 * given; the result is validated by createScheduler. `type` may differ from the training class (e.g. sample a
 * DDPM-trained model with 'dpm-solver++'): the fields the chosen type lacks are dropped then.
 */
export function schedulerConfigFromMonai(args: Readonly<Record<string, unknown>>, options: { type?: SchedulerType; semantics?: Semantics } = {}): SchedulerConfigInput {
  if (args === null || typeof args !== 'object' || Array.isArray(args))
    throw new TypeError(`schedulerConfigFromMonai: argument 'args' must be an object of MONAI constructor arguments`);
  const target = args._target_;
  let type = options.type;
  let semantics = options.semantics;
  if (target !== undefined) {
    if (typeof target !== 'string') throw new TypeError(`schedulerConfigFromMonai: args._target_ must be a string, got ${JSON.stringify(target)}`);
    const cls = MONAI_CLASSES[target.split('.').pop() as string];
    if (!cls) throw new RangeError(`schedulerConfigFromMonai: args._target_ '${target}' is not a MONAI DDPMScheduler, DDIMScheduler or PNDMScheduler`);
    type ??= cls;
    semantics ??= target.startsWith('generative.') ? 'generative-0.2.3' : target.startsWith('monai.') ? 'monai-1.6' : undefined;
  }
  if (type === undefined) throw new TypeError(`schedulerConfigFromMonai: no scheduler type: pass options.type or args._target_`);
  const probe = createScheduler({ type } as SchedulerConfigInput).config as unknown as Record<string, unknown>;
  const out: Record<string, unknown> = { type };
  if (semantics !== undefined) out.semantics = semantics;
  for (const [key, value] of Object.entries(args)) {
    if (key === '_target_') continue;
    const field = MONAI_ARGS[key];
    if (field === undefined) throw new RangeError(`schedulerConfigFromMonai: args.${key} is not a MONAI scheduler argument brain-ldm knows (known: ${Object.keys(MONAI_ARGS).join(', ')})`);
    if (field in probe) out[field] = value;
  }
  createScheduler(out as SchedulerConfigInput); // validate now, naming the field
  return out as SchedulerConfigInput;
}
