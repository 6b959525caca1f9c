/**
 * What a generator keeps of its training: train.py's stage loop stores the final epoch's losses in the stage totals
 * (done.json; export_generator.py copies them into training.json), through a kill and resume, and
 * write_model_card.py turns a generator's training.json and the evaluation files into the card's tables without the
 * run directory (which lives in a scratch folder and may be gone when the card is written).
 */
import { spawnSync } from 'node:child_process';
import { mkdtempSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { VENV_PYTHON, pythonReference, runReference } from '../helpers/python-reference.js';

const { pythonTest } = pythonReference('train/ldm/stages.py stage records', ['torch', 'monai', 'yaml']);
const TRAIN_DIR = fileURLToPath(new URL('../../train', import.meta.url));

// A 2-parameter regression trained by the real loop: 4 items, batch 2, 3 epochs; max_steps cuts the first run
// inside epoch 2 when `cut` is set, and the second run resumes from the checkpoint.
const LOOP = `
sys.path.insert(0, inp["train"])
import tempfile, torch
from pathlib import Path
from ldm.stages import RunContext, run_training_loop
from ldm.run_state import RunLog
run = Path(tempfile.mkdtemp())
cfg = {"seed": 3, "checkpoint_every_s": 1e9, "mask-ae": {"train": {"epochs": 3, "batch_size": 2, "lr": 0.05}}}
x = torch.linspace(-1, 1, 4).reshape(4, 1)
y = 3 * x + 1
def batch(net, idx):
    loss = torch.nn.functional.mse_loss(net(x[idx]), y[idx])
    return loss, {"mse": loss.item()}
def validate(net):
    return {"mse": torch.nn.functional.mse_loss(net(x), y).item()}
def train(max_steps):
    torch.manual_seed(0)
    net = torch.nn.Linear(1, 1)
    ctx = RunContext(run_dir=run, cfg=cfg, device=torch.device("cpu"), log=RunLog(run), max_steps=max_steps)
    return run_training_loop(ctx, "mask-ae", net, 4, batch, validate)
first = train(3 if inp["cut"] else None)
totals = train(None) if inp["cut"] else first
epochs = [json.loads(l) for l in (run / "log.jsonl").read_text().splitlines() if json.loads(l)["event"] == "epoch"]
out = {"first": first, "totals": totals, "lastLogged": epochs[-1]}
`;

for (const cut of [false, true]) {
  pythonTest(`the stage totals carry the final epoch's training and held-out losses${cut ? ' after a kill and resume' : ''}`, async (t) => {
    type Totals = { steps: number; epochs: number; truncated: boolean; lastEpoch: Record<string, number> };
    const r = await runReference<{ first: Totals; totals: Totals; lastLogged: Record<string, number> }>(LOOP, { train: TRAIN_DIR, cut });
    if (cut) t.true(r.first.truncated, 'the first run stops inside epoch 2');
    t.is(r.totals.steps, 6);
    t.is(r.totals.epochs, 3);
    t.false(r.totals.truncated);
    t.is(r.totals.lastEpoch.epoch, 3);
    for (const key of ['loss', 'mse', 'val_mse']) {
      t.is(typeof r.totals.lastEpoch[key], 'number', `${key} in ${JSON.stringify(r.totals.lastEpoch)}`);
      t.is(r.totals.lastEpoch[key], r.lastLogged[key], `${key}: the totals repeat the log's last epoch`);
    }
  });
}

const LABELS = [0, 2, 3, 4, 5, 7, 8, 10, 11, 12, 13, 14, 15, 16, 17, 18, 24, 26, 28, 41, 42, 43, 44, 46, 47, 49, 50, 51, 52, 53, 54, 58, 60];

function writeJson(path: string, value: unknown): void {
  writeFileSync(path, JSON.stringify(value));
}

/** A generator folder, data split and evaluation outputs with known numbers (no weights: the card does not read them). */
function cardInputs(dir: string, keptFrom?: { generator: string; config: string },
  initFrom?: { run: string; steps: number }, labelOffsets?: object): { generator: string; data: string; evalDir: string } {
  const generator = join(dir, 'gen');
  const data = join(dir, 'data');
  const evalDir = join(dir, 'eval');
  for (const d of [generator, data, evalDir]) mkdirSync(d);
  writeJson(join(generator, 'generator.json'), {
    grid: { orientation: 'IPL', shape: [48, 64, 48], spacingMm: [3.334, 3.5, 3.334] },
    labels: LABELS,
    conditioning: { ratioMin: 0.01, ratioMax: 0.18, ventricleLabels: [4, 5, 43, 44, 14, 15], trainingVentricleMl: [14, 285],
      referenceIcvMl: 1500, nullContext: { convention: 'thesis' } },
    defaults: { guidanceScale: 3, solver: 'dpm-solver++', steps: 20 },
    ...(labelOffsets ? { labelOffsets } : {}),
  });
  const stage = (steps: number, lastEpoch?: Record<string, number>) =>
    ({ steps, epochs: 2, wallSeconds: 120, truncated: false, parameters: 1000, ...(lastEpoch ? { lastEpoch } : {}) });
  writeJson(join(generator, 'training.json'), { stages: {
    'mask-ae': stage(100, { epoch: 2, loss: 0.123456, val_dice: 0.8125 }),
    'mask-unet': { ...stage(200, { epoch: 2, loss: 0.0456, val_mse: 0.25 }), ...(initFrom ? { initFrom } : {}) },
    'spade-ae': { ...stage(300), ...(keptFrom ? { keptFrom } : {}) },
    'spade-unet': { ...stage(400, { epoch: 2, loss: 0.5, val_mse: 0.625 }), ...(keptFrom ? { keptFrom } : {}) },
  } });
  writeJson(join(data, 'split.json'), { heldOut: ['s05', 's08'], train: ['s01', 's02', 's03'] });
  writeJson(join(evalDir, 'autoencoder-dice.json'), { summary: { meanDice: 0.754, ventricleDice: 0.91 } });
  writeJson(join(evalDir, 'calibration.json'), {
    calibration: { points: [[10, 0], [300, 1]] },
    verification: { spearman: 0.95, medianRelativeError: 0.12, rows: [{ requestedMl: 50, achievedMl: [48, 55] }] },
  });
  const sample = (missingLabels: number[]) => ({ anatomy: { missingLabels } });
  writeJson(join(evalDir, 'evaluation.json'), {
    samples: 3, pass: { allLabelsPresent: 1 / 3, ventriclesInsideBrain: 1, leftOfRight: 1, anatomy: 1 / 3, t1Order: 1 },
    volume: { spearman: 0.9, medianRelativeError: 0.1 },
    perSample: [sample([58, 26]), sample([58]), sample([])],
  });
  writeJson(join(evalDir, 'timing.json'), { seconds: 7.3 });
  return { generator, data, evalDir };
}

/** Runs write_model_card.py on cardInputs' folders with --config `config` (and any further arguments); the card's text. */
function writeCard(t: import('ava').ExecutionContext, inputs: { generator: string; data: string; evalDir: string }, config: string, ...extra: string[]): string {
  const { generator, data, evalDir } = inputs;
  const r = spawnSync(VENV_PYTHON, [join(TRAIN_DIR, 'write_model_card.py'), '--generator', generator, '--data', data,
    '--eval', evalDir, '--config', config, ...extra], { encoding: 'utf8' });
  t.is(r.status, 0, r.stderr);
  return readFileSync(join(generator, 'MODEL_CARD.md'), 'utf8');
}

pythonTest('write_model_card.py writes the card from the generator\'s training.json when the run is gone', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'brain-ldm-card-'));
  try {
    const { generator, data, evalDir } = cardInputs(dir);
    const card = writeCard(t, { generator, data, evalDir }, join(TRAIN_DIR, 'configs', 'cpu-reduced.yaml'), '--note', 'NOTE-PARAGRAPH');
    t.true(card.includes('| mask-ae | 100 | 2.0 | 0.1235 | dice 0.8125 |'), card);
    t.true(card.includes('| spade-ae | 300 | 2.0 | not recorded | not recorded |'));
    t.true(card.includes('| spade-unet | 400 | 2.0 | 0.5 | mse 0.625 |'));
    t.true(card.includes('| mask autoencoder, mean Dice over 33 labels (held-out maps) | >= 0.85 | 0.754 | **no** |'));
    t.true(card.includes('| mask autoencoder, ventricle Dice (held-out maps) | >= 0.9 | 0.910 | yes |'));
    t.true(card.includes('| anatomy: all 33 labels, ventricles inside, left of right (3 samples) | >= 90% | 33.3% | **no** |'));
    t.true(card.includes('58: 2, 26: 1 of 3.'), 'the labels that go missing, most often first');
    t.true(card.includes('seed 42, 2 threads'), 'seed and threads from the config file');
    t.true(card.includes('NOTE-PARAGRAPH'));
    t.true(card.includes('Held out (never augmented or trained on): s05, s08.'));
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

pythonTest('write_model_card.py names the stages kept from another generator and how to reproduce that', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'brain-ldm-card-'));
  try {
    const { generator, data, evalDir } = cardInputs(dir, { generator: 'models/default', config: 'cpu-reduced-v4' });
    const card = writeCard(t, { generator, data, evalDir }, 'train/configs/cpu-reduced.yaml');
    t.true(card.includes('Stages spade-ae, spade-unet were not retrained: their bundles were kept as they were from the generator '
      + '`models/default` (config `cpu-reduced-v4`)'), card);
    t.true(card.includes('| spade-unet | 400 | 2.0 | 0.5 | mse 0.625 |'), 'their rows are the earlier training\'s');
    t.true(card.includes('--stage mask-ae --data DATA --out RUN\n'), 'only the retrained stages are trained');
    t.true(card.includes('--stage mask-unet --data DATA --out RUN\n'));
    t.false(card.includes('--stage all'));
    t.true(card.includes(`export_generator.py --run RUN --out ${generator} --keep image --keep-from models/default --verify`));
    t.regex(card, /2 threads, on a \d+-core .+ machine/, 'the machine is this one, not a fixed description');
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

pythonTest('write_model_card.py names a stage that started from another run and trains that run first', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'brain-ldm-card-'));
  try {
    const { generator, data, evalDir } = cardInputs(dir, { generator: 'models/default', config: 'cpu-reduced-v4' },
      { run: '/somewhere/runs/cpu-reduced-2x', steps: 1612 });
    const card = writeCard(t, { generator, data, evalDir }, 'train/configs/cpu-reduced-2x-tuned.yaml');
    t.true(card.includes('Stages that started from the weights of a finished run (`train.init_from`): mask-unet from `cpu-reduced-2x` after 1612 steps;'), card);
    const source = card.indexOf('--config train/configs/cpu-reduced-2x.yaml --stage mask-unet --data DATA --out RUNS/cpu-reduced-2x\n');
    const tuned = card.indexOf('--config train/configs/cpu-reduced-2x-tuned.yaml --stage mask-unet --data DATA --out RUN\n');
    t.true(source > 0 && tuned > source, 'the source run is trained before the run that continues it');
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

pythonTest('write_model_card.py lists the label offsets and the volume shares they correct', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'brain-ldm-card-'));
  try {
    // Channel 1 is label 2, channel 31 label 58 (the accumbens): shares among the two moved labels, before 0.20, after 0.90.
    const perLabel = (pairs: Record<number, number>, rest: number) => LABELS.map((_, c) => pairs[c] ?? rest);
    const labelOffsets = {
      offsets: perLabel({ 1: -0.13, 31: 5.58 }, 0), referenceMaps: 496, fittedMasks: 24,
      targetVoxels: perLabel({ 1: 5000, 31: 10 }, 100), meanVoxelsBefore: perLabel({ 1: 5000, 31: 2 }, 100),
      meanVoxelsAfter: perLabel({ 1: 4993, 31: 9 }, 100),
    };
    const { generator, data, evalDir } = cardInputs(dir, undefined, undefined, labelOffsets);
    const card = writeCard(t, { generator, data, evalDir }, join(TRAIN_DIR, 'configs', 'cpu-reduced.yaml'));
    t.true(card.includes('`brain-ldm calibrate --label-reference` on the 496 training maps, fitted on 24 generated masks'), card);
    const accumbens = card.indexOf('| 58 | +5.58 | 0.20 | 0.90 |');
    const wm = card.indexOf('| 2 | -0.13 | 1.00 | 1.00 |');
    t.true(accumbens > 0 && wm > accumbens, 'the label furthest from its share comes first');
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
