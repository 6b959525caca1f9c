/**
 * Training a stage further (train/ldm/stages.py): `lr_schedule: cosine` decays the rate as a function of the step
 * alone, so a killed and resumed stage follows the same schedule and ends on the same weights; `init_from` starts a
 * stage from another run's finished weights, refuses a run whose network, grid or scheduler differ, and the stage
 * totals (done.json, then the exported training.json) name where the weights came from.
 */
import { pythonReference, runReference } from '../helpers/python-reference.js';
import { fileURLToPath } from 'node:url';

const { pythonTest } = pythonReference('train/ldm/stages.py warm start and schedule', ['torch', 'monai', 'yaml']);
const TRAIN_DIR = fileURLToPath(new URL('../../train', import.meta.url));

// A 2-parameter regression trained by the real loop: 4 items, batch 2, 3 epochs (6 steps). `source` trains a run
// with a constant rate and finishes it as train.py does; `tuned` starts from it with a cosine decay, optionally cut
// after 3 steps and resumed. The batch function records the rate and the weights each step starts from.
const LOOP = `
sys.path.insert(0, inp["train"])
import tempfile, torch
from pathlib import Path
from ldm.stages import RunContext, run_training_loop
from ldm.run_state import RunLog, StageFiles
from ldm.config import write_json_atomic
root = Path(tempfile.mkdtemp())
x = torch.linspace(-1, 1, 4).reshape(4, 1)
y = 3 * x + 1
def config(train, network):
    return {"seed": 3, "checkpoint_every_s": 1e9, "grid": {"shape": [4, 4, 4]}, "scheduler": {"t": 1},
            "mask-ae": {"network": network, "train": {"epochs": 3, "batch_size": 2, **train}}}
def train(run, cfg, max_steps=None, seen=None):
    torch.manual_seed(0)
    net = torch.nn.Linear(1, 1)
    def batch(net, idx):
        if seen is not None:
            seen.append({"w": net.weight.item(), "b": net.bias.item(), "lr": opt_lr(net)})
        loss = torch.nn.functional.mse_loss(net(x[idx]), y[idx])
        return loss, {"mse": loss.item()}
    run.mkdir(exist_ok=True)
    write_json_atomic(run / "config.json", cfg)
    ctx = RunContext(run_dir=run, cfg=cfg, device=torch.device("cpu"), log=RunLog(run), max_steps=max_steps)
    return net, run_training_loop(ctx, "mask-ae", net, 4, batch)
# The loop sets the rate on its optimizer before each batch; the batch reads it from the loop's frame (the caller of
# batch), as the rate is not otherwise visible inside a step.
import inspect
def opt_lr(net):
    return inspect.currentframe().f_back.f_back.f_locals["opt"].param_groups[0]["lr"]
src_cfg = config({"lr": 0.05}, {"kind": "linear"})
src_net, src_totals = train(root / "source", src_cfg)
StageFiles(root / "source", "mask-ae").finish(src_net.state_dict(), src_totals)
out = {"source": {"w": src_net.weight.item(), "b": src_net.bias.item()}}
tuned_cfg = config({"lr": 0.05, "lr_schedule": "cosine", "lr_min": 0.001, "init_from": "source"}, {"kind": "linear"})
for name, cut in (("whole", None), ("resumed", 3)):
    seen = []
    net, totals = train(root / name, tuned_cfg, cut, seen)
    if cut:
        net, totals = train(root / name, tuned_cfg, None, seen)
    out[name] = {"seen": seen, "w": net.weight.item(), "b": net.bias.item(), "initFrom": totals.get("initFrom")}
errors = {}
for name, cfg in (("network", config({"lr": 0.05, "init_from": "source"}, {"kind": "wider"})),
                  ("missing", config({"lr": 0.05, "init_from": "nowhere"}, {"kind": "linear"}))):
    try:
        train(root / f"bad-{name}", cfg)
        errors[name] = None
    except ValueError as e:
        errors[name] = str(e)
cfg = config({"lr": 0.05, "init_from": "source"}, {"kind": "linear"})
cfg["scheduler"] = {"t": 2}
try:
    train(root / "bad-scheduler", cfg)
    errors["scheduler"] = None
except ValueError as e:
    errors["scheduler"] = str(e)
out["errors"] = errors
`;

type Step = { w: number; b: number; lr: number };
type Run = { seen: Step[]; w: number; b: number; initFrom: { run: string; steps: number; lastEpoch: Record<string, number> } | null };
type Out = { source: { w: number; b: number }; whole: Run; resumed: Run; errors: Record<string, string | null> };

pythonTest('init_from starts from the other run\'s weights and a cosine rate decays from lr to lr_min, through a kill and resume', async (t) => {
  const r = await runReference<Out>(LOOP, { train: TRAIN_DIR });
  const { whole, resumed, source } = r;
  t.is(whole.seen.length, 6);
  t.deepEqual({ w: whole.seen[0]!.w, b: whole.seen[0]!.b }, source, 'step 0 starts from the source run\'s final weights');
  // lr_min + (lr - lr_min) / 2 * (1 + cos(pi * step / 6))
  const expected = [0, 1, 2, 3, 4, 5].map((s) => 0.001 + 0.049 * 0.5 * (1 + Math.cos(Math.PI * s / 6)));
  whole.seen.forEach((s, i) => t.true(Math.abs(s.lr - expected[i]!) < 1e-12, `step ${i}: lr ${s.lr}, expected ${expected[i]}`));
  // The cut run stops inside step 3 of 6; the checkpoint of the last finished epoch (2 steps) resumes at step 2.
  t.is(resumed.seen.length, 7);
  t.deepEqual([...resumed.seen.slice(0, 2), ...resumed.seen.slice(3)], whole.seen, 'the resumed run takes the same rates from the same weights');
  t.is(resumed.w, whole.w, 'and ends on the same bits');
  t.is(resumed.b, whole.b);
  t.true(whole.initFrom !== null && whole.initFrom.run.endsWith('source'), JSON.stringify(whole.initFrom));
  t.is(whole.initFrom!.steps, 6, 'the totals say how far the source had trained');
  t.is(resumed.initFrom?.run, whole.initFrom!.run, 'a resumed stage still records its origin');
});

pythonTest('init_from refuses a run with another network or scheduler, or one that did not finish the stage', async (t) => {
  const { errors } = await runReference<Out>(LOOP, { train: TRAIN_DIR });
  t.regex(errors.network ?? '', /mask-ae\.train\.init_from: .*source\/config\.json field 'mask-ae\.network' is \{"kind": "linear"\}, this config's is \{"kind": "wider"\}/);
  t.regex(errors.scheduler ?? '', /field 'scheduler' is \{"t": 1\}, this config's is \{"t": 2\}/);
  t.regex(errors.missing ?? '', /mask-ae\.train\.init_from: .*nowhere has no finished mask-ae \(.*nowhere\/mask-ae\/done\.json is missing\)/);
});
