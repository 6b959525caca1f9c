/**
 * The mask-decoder stage (train/ldm/stages.py train_mask_decoder): the mask autoencoder's decoder fine-tuned on the
 * mask UNet's one-step estimates of z0. Checked on tiny networks trained by the real stages for a few steps: only the
 * decoder (and post-quant conv) moves, so the encoder, its latents, the mask UNet and the scale factor stay valid;
 * the stage refuses to start without its two mask stages; the export ships its weights as the mask autoencoder; and
 * x0_estimate inverts each prediction type's training target.
 */
import { fileURLToPath } from 'node:url';
import { pythonReference, runReference } from '../helpers/python-reference.js';

const { pythonTest } = pythonReference('train/ldm/stages.py mask-decoder', ['torch', 'monai', 'yaml']);
const TRAIN_DIR = fileURLToPath(new URL('../../train', import.meta.url));

// cpu-reduced-2x-decoder.yaml at a 16^3 grid with 8-channel networks, and 6 random "label maps" (a ball of
// ventricle inside a ball of white matter, radius by item) so the stages have volumes to condition on.
const SETUP = `
sys.path.insert(0, inp["train"])
import copy, tempfile, torch, numpy as np
from pathlib import Path
from ldm.config import load_config, check_config, ConfigError, write_json_atomic
from ldm.data import LabelSet
from ldm.run_state import RunLog, StageFiles
from ldm.stages import RunContext, TrainingData, TRAINERS
import export_generator as eg
cfg = load_config(Path(inp["train"]) / "configs" / "cpu-reduced-2x-decoder.yaml")
cfg["grid"]["shape"] = [16, 16, 16]
cfg["mask-ae"]["network"].update(channels=[8, 8], norm_num_groups=8)
cfg["mask-ae"]["train"].update(crop=[8, 8, 8], epochs=1)
cfg["mask-ae"]["train"].pop("init_from")
cfg["mask-unet"]["network"].update(channels=[8, 8, 8, 8], num_head_channels=[0, 0, 8, 8], norm_num_groups=8)
cfg["mask-unet"]["train"].pop("init_from")
cfg["mask-decoder"]["train"].update(crop=[8, 8, 8], epochs=1, batch_size=2)
cfg["spade-ae"]["train"]["crop"] = [8, 8, 8]
cfg = check_config(cfg, "test")
def maps(n):
    z, y, x = np.meshgrid(*[np.arange(16) - 7.5] * 3, indexing="ij")
    r = np.sqrt(x * x + y * y + z * z)
    out = []
    for i in range(n):
        m = np.zeros((16, 16, 16), np.uint8)
        m[r < 7] = 2
        m[r < 2 + 0.5 * i] = 4
        m[(r < 7) & (x > 5)] = 26
        out.append(m)
    return torch.from_numpy(np.stack(out)[:, None])
data = TrainingData(LabelSet([f"m{i}" for i in range(6)], maps(6), 1.0), None, LabelSet(["h0", "h1"], maps(2), 1.0), None)
root = Path(tempfile.mkdtemp())
def context(run, max_steps):
    run.mkdir(exist_ok=True)
    write_json_atomic(run / "config.json", cfg)
    return RunContext(run, cfg, torch.device("cpu"), RunLog(run), max_steps)
`;

pythonTest('mask-decoder trains the decoder only, keeps the scale factor, and the export ships its weights', async (t) => {
  const r = await runReference<{
    unchanged: string[]; changed: string[]; frozenMoved: string[]; scale: [number, number]; exported: boolean;
    record: Record<string, unknown>; refused: string;
  }>(`${SETUP}
run = root / "run"
ctx = context(run, 3)
try:
    TRAINERS["mask-decoder"](ctx, data)
    refused = ""
except RuntimeError as e:
    refused = str(e)
for stage in ("mask-ae", "mask-unet", "mask-decoder"):
    TRAINERS[stage](ctx, data)
before = torch.load(StageFiles(run, "mask-ae").model, weights_only=True)["model"]
after = torch.load(StageFiles(run, "mask-decoder").model, weights_only=True)["model"]
decoder = lambda k: k.startswith("autoencoder.decoder.") or k.startswith("autoencoder.post_quant_conv.")
changed = sorted(k for k in before if decoder(k) and not torch.equal(before[k], after[k]))
frozen_moved = sorted(k for k in before if not decoder(k) and not torch.equal(before[k], after[k]))
done_ae, done_dec = StageFiles(run, "mask-ae").read_done(), StageFiles(run, "mask-decoder").read_done()
sd = eg.exported_state_dict(run, cfg, "mask-ae", torch.float32)
exported = all(torch.equal(sd[k], after[k]) for k in after)
out = {"changed": changed, "frozenMoved": frozen_moved, "unchanged": sorted(k for k in before if decoder(k) and k not in changed),
       "scale": [done_ae["scaleFactor"], done_dec["scaleFactor"]], "exported": exported, "refused": refused,
       "record": {k: done_dec[k] for k in ("steps", "tMax", "cleanFraction", "guidanceScale")}}
`, { train: TRAIN_DIR });
  t.regex(r.refused, /mask-decoder: stage mask-ae has not finished/);
  t.deepEqual(r.frozenMoved, [], 'the embedding and the encoder keep their weights');
  t.true(r.changed.length > 0 && r.changed.some((k) => k.includes('decoder')), 'the decoder learns');
  t.is(r.scale[0], r.scale[1], 'the scale factor is the autoencoder stage\'s');
  t.true(r.exported, 'the mask autoencoder bundle is exported from the mask-decoder stage');
  t.deepEqual(r.record, { steps: 3, tMax: 500, cleanFraction: 0.25, guidanceScale: 3 });
});

pythonTest('x0_estimate inverts the training target of every prediction type', async (t) => {
  const r = await runReference<Record<string, number>>(`
sys.path.insert(0, inp["train"])
import torch
from monai.networks.schedulers import DDPMScheduler
from ldm.stages import x0_estimate, _diffusion_target
torch.manual_seed(0)
z, noise = torch.randn(3, 4, 5, 6, 7), torch.randn(3, 4, 5, 6, 7)
t = torch.tensor([1, 400, 999])
out = {}
for kind in ("epsilon", "v_prediction", "sample"):
    s = DDPMScheduler(1000, "scaled_linear_beta", beta_start=0.0015, beta_end=0.0205, prediction_type=kind)
    est = x0_estimate(s, _diffusion_target(s, z, noise, t), s.add_noise(z, noise, t), t)
    out[kind] = float((est - z).abs().max())
`, { train: TRAIN_DIR });
  // fp32: at t = 999 epsilon divides by sqrt(alphaBar) ~ 0.03, so its error is ~30x that of the others.
  t.true(r.epsilon < 1e-3, `epsilon ${r.epsilon}`);
  t.true(r.v_prediction < 1e-5, `v_prediction ${r.v_prediction}`);
  t.is(r.sample, 0);
});

pythonTest('the mask-decoder config section is checked field by field', async (t) => {
  const r = await runReference<Record<string, string>>(`${SETUP}
def error(mutate):
    c = copy.deepcopy(cfg)
    mutate(c["mask-decoder"])
    try:
        check_config(c, "x.yaml")
        return ""
    except ConfigError as e:
        return str(e)
out = {
    "tmax": error(lambda s: s["train"].update(t_max=1000)),
    "clean": error(lambda s: s["train"].update(clean_fraction=1)),
    "guidance": error(lambda s: s["train"].update(guidance_scale=0.5)),
    "crop": error(lambda s: s["train"].update(crop=[7, 8, 8])),
    "network": error(lambda s: s.update(network={})),
}
`, { train: TRAIN_DIR });
  t.regex(r.tmax, /x\.yaml: field 'mask-decoder\.train\.t_max' must be an integer timestep in \[1, 1000\), got 1000/);
  t.regex(r.clean, /'mask-decoder\.train\.clean_fraction' must be a fraction in \[0, 1\)/);
  t.regex(r.guidance, /'mask-decoder\.train\.guidance_scale' must be a number >= 1/);
  t.regex(r.crop, /'mask-decoder\.train\.crop' must be 3 integers, each a multiple of 2/);
  t.regex(r.network, /field 'mask-decoder' must be a mapping with train only/);
});
