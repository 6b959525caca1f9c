/**
 * export_generator.py --keep image --keep-from GENERATOR: a run that retrains only the mask stages ships with the
 * image bundles of an earlier generator. The kept bundles are checked against the run's config (network class and
 * arguments, grid, labels, scheduler) and copied byte for byte; their training records and verification come along,
 * marked keptFrom. The checks run on a synthetic generator folder (model.json files as `brain-ldm import` writes
 * them, GenerativeModels-style `num_channels` included) and the repository's cpu-reduced config.
 */
import { fileURLToPath } from 'node:url';
import { pythonReference, runReference } from '../helpers/python-reference.js';

const { pythonTest } = pythonReference('train/export_generator.py --keep', ['torch', 'monai', 'yaml', 'safetensors']);
const TRAIN_DIR = fileURLToPath(new URL('../../train', import.meta.url));

const SETUP = `
sys.path.insert(0, inp["train"])
import copy, tempfile, torch
from pathlib import Path
import export_generator as eg
from ldm.config import load_config, write_json_atomic
root = Path(tempfile.mkdtemp())
cfg = load_config(Path(inp["train"]) / "configs" / "cpu-reduced.yaml")
run, src = root / "run", root / "gen"
run.mkdir(); src.mkdir()
write_json_atomic(run / "config.json", cfg)
g = cfg["grid"]
write_json_atomic(src / "generator.json", {"grid": {"orientation": g["orientation"], "shape": g["shape"], "spacingMm": g["spacing_mm"]},
                                           "labels": cfg["labels"]})
def bundle_args(stage):
    a = dict(cfg[stage]["network"])
    a["num_channels"] = a.pop("channels")   # what a GenerativeModels-scheme bundle records
    return a
models = {
    "spade-ae": {"network": {"class": "SPADEAutoencoderKL", "args": bundle_args("spade-ae")}, "scaleFactor": 0.625},
    "spade-unet": {"network": {"class": "SPADEDiffusionModelUNet", "args": bundle_args("spade-unet")},
                   "scaleFactor": None, "scheduler": {"_target_": eg.SCHEDULER_TARGET, **cfg["scheduler"]}},
}
weights = {}
for stage, model in models.items():
    d = src / eg.BUNDLE_NAME[stage]
    d.mkdir()
    write_json_atomic(d / "model.json", model)
    weights[stage] = bytes(range(256)) * (3 if stage == "spade-ae" else 5)
    (d / "weights.safetensors").write_bytes(weights[stage])
rec = lambda steps: {"steps": steps, "epochs": 3, "wallSeconds": 60.0, "truncated": False, "parameters": 10}
write_json_atomic(src / "training.json", {
    "config": "cpu-reduced-old",
    "bundles": [{"bundle": eg.BUNDLE_NAME[s], "bytes": len(weights[s]), "scheme": "generative"} for s in models],
    "stages": {"spade-ae": rec(744), "spade-unet": rec(1488)},
    "verification": [{"bundle": "image-autoencoder", "relL2": 7e-7}, {"bundle": "image-unet", "relL2": 6e-7}]})
`;

pythonTest('--keep image takes the image bundles, their records and verification from the other generator', async (t) => {
  const r = await runReference<{
    kept: Record<string, Record<string, unknown>>; copied: boolean; bundle: Record<string, unknown>; verified: Array<Record<string, unknown>>;
  }>(`${SETUP}
kept = eg.kept_stages(src, ["image"], run)
staging = root / "staging"; staging.mkdir()
bundle = eg.write_bundle(run, cfg, kept, "spade-ae", staging, torch.float16)
copied = (staging / "image-autoencoder" / "weights.safetensors").read_bytes() == weights["spade-ae"]
# verify() runs brain-ldm only for stages trained in the run; with everything kept it only carries records over.
all_kept = {**kept, "mask-ae": {"keptFrom": kept["spade-ae"]["keptFrom"]}, "mask-unet": {"keptFrom": kept["spade-ae"]["keptFrom"]}}
verified = eg.verify(run, cfg, all_kept, staging, torch.float16, 1e-4, 1, 1)
out = {"kept": kept, "copied": copied, "bundle": bundle, "verified": verified}
`, { train: TRAIN_DIR });
  t.deepEqual(Object.keys(r.kept).sort(), ['spade-ae', 'spade-unet']);
  t.is(r.kept['spade-ae'].scaleFactor, 0.625, 'the scale factor comes from the bundle');
  t.false('scaleFactor' in r.kept['spade-unet']);
  t.is(r.kept['spade-unet'].steps, 1488, 'the training record comes from training.json');
  t.like(r.kept['spade-ae'].keptFrom as object, { config: 'cpu-reduced-old' });
  t.true(r.copied, 'the weights are copied byte for byte');
  t.like(r.bundle, { bundle: 'image-autoencoder', bytes: 768, scheme: 'generative' });
  t.deepEqual(r.verified.map((v) => [v.bundle, v.relL2]), [['image-autoencoder', 7e-7], ['image-unet', 6e-7]]);
  t.true(r.verified.every((v) => typeof v.keptFrom === 'object'));
});

pythonTest('--keep refuses bundles the run config would not have trained, naming the file and the field', async (t) => {
  const r = await runReference<Record<string, string>>(`${SETUP}
def error(mutate):
    m = copy.deepcopy(models)
    gen = {"grid": {"orientation": g["orientation"], "shape": g["shape"], "spacingMm": g["spacing_mm"]}, "labels": cfg["labels"]}
    mutate(m, gen)
    for stage, model in m.items():
        write_json_atomic(src / eg.BUNDLE_NAME[stage] / "model.json", model)
    write_json_atomic(src / "generator.json", gen)
    try:
        eg.kept_stages(src, ["image"], run)
        return "accepted"
    except eg.ExportError as e:
        return str(e)
out = {
    "ok": error(lambda m, gen: None),
    "latent": error(lambda m, gen: m["spade-ae"]["network"]["args"].update(latent_channels=3)),
    "class": error(lambda m, gen: m["spade-unet"]["network"].update({"class": "DiffusionModelUNet"})),
    "scheduler": error(lambda m, gen: m["spade-unet"]["scheduler"].update(prediction_type="epsilon")),
    "grid": error(lambda m, gen: gen["grid"].update(shape=[96, 128, 96])),
}
`, { train: TRAIN_DIR });
  t.is(r.ok, 'accepted');
  t.regex(r.latent, /image-autoencoder\/model\.json: network\.args differ .*spade-ae\.network in \['latent_channels'\] \(bundle \[3\], config \[6\]\)/);
  t.regex(r.class, /image-unet\/model\.json: field 'network\.class' must be SPADEDiffusionModelUNet, got DiffusionModelUNet/);
  t.regex(r.scheduler, /image-unet\/model\.json: field 'scheduler' must be the run's .*v_prediction/);
  t.regex(r.grid, /generator\.json: field 'grid' must be the run's .*got .*96, 128, 96/);
});
