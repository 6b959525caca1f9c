/**
 * The contract between training and generation: train/ldm/stages.py teaches the UNets the target its scheduler's
 * prediction_type names, and the generator's scheduler (built from the same MONAI kwargs in model.json) turns that
 * output back into x0. A network that outputs exactly the training target must give back the clean latent, for
 * every prediction type; a mismatch (say, a v-trained net sampled as epsilon) would generate garbage silently.
 */
import { fileURLToPath } from 'node:url';
import { decodeF32, encodeF32, pythonReference, runReference } from '../helpers/python-reference.js';
import { createScheduler, predictOriginalSample, schedulerConfigFromMonai, type PredictionType } from '../../ts/schedulers/index.js';
import { randn } from '../helpers/reference.js';

const { pythonTest } = pythonReference('train/ldm/stages.py diffusion target', ['torch', 'monai']);
const TRAIN_DIR = fileURLToPath(new URL('../../train', import.meta.url));
const THESIS = { num_train_timesteps: 1000, schedule: 'scaled_linear_beta', beta_start: 0.0015, beta_end: 0.0205 };
const TIMESTEPS = [0, 37, 500, 871, 999];
const PER_ITEM = 64;

const PYTHON = `
sys.path.insert(0, inp["train"])
import torch
from monai.networks.schedulers import DDPMScheduler
from ldm.stages import _diffusion_target
s = DDPMScheduler(**inp["scheduler"])
t = torch.tensor(inp["t"], dtype=torch.long)
z = torch.from_numpy(f32("z").copy()).reshape(len(inp["t"]), -1)
noise = torch.from_numpy(f32("noise").copy()).reshape(z.shape)
out = {"xt": b64(s.add_noise(z, noise, t).numpy()), "target": b64(_diffusion_target(s, z, noise, t).numpy())}
`;

for (const kind of ['epsilon', 'v_prediction', 'sample'] as const) {
  pythonTest(`a network that outputs train.py's ${kind} target recovers x0 through the generator's scheduler`, async (t) => {
    const z = randn(TIMESTEPS.length * PER_ITEM, 11);
    const noise = randn(TIMESTEPS.length * PER_ITEM, 12);
    const monai = { ...THESIS, prediction_type: kind };
    const r = await runReference<{ xt: string; target: string }>(PYTHON, {
      train: TRAIN_DIR, scheduler: monai, t: TIMESTEPS, z: encodeF32(z), noise: encodeF32(noise),
    });
    const xt = decodeF32(r.xt);
    const target = decodeF32(r.target);
    const scheduler = createScheduler(schedulerConfigFromMonai(monai, { type: 'ddim' }));
    t.is(scheduler.config.predictionType as PredictionType, kind);
    let worst = 0;
    TIMESTEPS.forEach((step, b) => {
      const ab = scheduler.alphasCumprod[step];
      const range = [b * PER_ITEM, (b + 1) * PER_ITEM] as const;
      const x0 = predictOriginalSample(kind, target.subarray(...range), xt.subarray(...range), Math.fround(Math.sqrt(ab)),
        Math.fround(Math.sqrt(1 - ab)));
      for (let i = 0; i < PER_ITEM; i++) {
        // epsilon divides by sqrt(alphaBar) (0.0098 at t = 999): float32 rounding of x_t grows 100x there.
        const tol = kind === 'epsilon' ? 1e-4 / Math.sqrt(ab) : 1e-5;
        worst = Math.max(worst, Math.abs(x0[i] - z[range[0] + i]) / tol);
      }
    });
    t.true(worst <= 1, `worst |x0 - z| is ${worst.toFixed(2)} x the tolerance`);
  });
}

pythonTest('train.py rejects a prediction type the samplers do not know, naming the field', async (t) => {
  const err = await t.throwsAsync(runReference(`
sys.path.insert(0, inp["train"])
import torch
from types import SimpleNamespace
from ldm.stages import _diffusion_target
_diffusion_target(SimpleNamespace(prediction_type="x0"), torch.zeros(1), torch.zeros(1), torch.zeros(1, dtype=torch.long))
`, { train: TRAIN_DIR }));
  t.regex(err?.message ?? '', /scheduler\.prediction_type: expected epsilon, v_prediction or sample, got 'x0'/);
});
