#!/usr/bin/env python3
"""Writes a generator's MODEL_CARD.md from the training run and the numbers train/evaluate_generator.sh measured:

  .venv/bin/python train/write_model_card.py --generator models/default --data DATA --eval EVAL \
      [--run RUN] [--config train/configs/cpu-reduced.yaml] [--machine "..."] [--note "..."]

Every number in the card comes from a file (GENERATOR/training.json, which export_generator.py writes from the run's
done.json files, or RUN/log.jsonl when --run is given; DATA/split.json; EVAL/*.json);
the card states the issue's quality bars next to what was measured, passed or not. Written atomically.
"""
from __future__ import annotations

import argparse
import json
import math
import os
import sys
from collections import Counter
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from ldm.config import load_config as load_config_file  # noqa: E402

# The quality bars of issue 5 (mask autoencoder, volume control, anatomy, images).
BARS = {
    "meanDice": 0.85, "ventricleDice": 0.9, "spearman": 0.9, "medianRelativeError": 0.15, "anatomy": 0.9,
}


def read_json(path: Path):
    if not path.exists():
        raise SystemExit(f"write_model_card: {path} is missing (run train/evaluate_generator.sh first)")
    return json.loads(path.read_text())


def log_records(run: Path) -> list[dict]:
    return [json.loads(line) for line in (run / "log.jsonl").read_text().splitlines() if line.strip()]


def stage_summaries(generator: Path, run: Path | None) -> tuple[dict, dict]:
    """Per stage: the totals (steps, wall time) and the last epoch's losses. The run's log is the fuller record
    when there is one; the generator's training.json carries the same totals for a generator whose run is gone."""
    stages = read_json(generator / "training.json")["stages"]
    done = dict(stages)
    last_epoch = {stage: d.get("lastEpoch", {}) for stage, d in stages.items()}
    if run is not None:
        # Stages kept from another generator (export_generator.py --keep) are not in this run's log.
        records = log_records(run)
        done.update({r["stage"]: r for r in records if r.get("event") == "stage-done"})
        last_epoch.update({r["stage"]: r for r in records if r.get("event") == "epoch"})
    return done, last_epoch


def this_machine() -> str:
    """What the card says the run ran on when --machine is not given: this machine's CPU, cores and memory."""
    model = "unknown CPU"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
        mem_kb = next(int(l.split()[1]) for l in Path("/proc/meminfo").read_text().splitlines() if l.startswith("MemTotal"))
    except (OSError, StopIteration, ValueError):
        return f"a {os.cpu_count()}-core {model} machine"
    return f"a {os.cpu_count()}-core {model} machine, {mem_kb / 2**20:.0f} GiB"


def yes(ok: bool) -> str:
    return "yes" if ok else "**no**"


def folder_mb(path: Path) -> float:
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file()) / 1e6


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--generator", type=Path, required=True)
    ap.add_argument("--run", type=Path, help="the train.py run (optional: GENERATOR/training.json has the stage totals)")
    ap.add_argument("--data", type=Path, required=True)
    ap.add_argument("--eval", type=Path, required=True)
    ap.add_argument("--machine", help="where it was trained (default: this machine's CPU, cores and memory)")
    ap.add_argument("--config", default="train/configs/cpu-reduced.yaml")
    ap.add_argument("--note", default="", help="a paragraph for the Training section (e.g. which stages came from another run)")
    args = ap.parse_args()

    gen = read_json(args.generator / "generator.json")
    config = read_json(args.run / "config.json") if args.run else load_config_file(args.config)
    split = read_json(args.data / "split.json")
    dice = read_json(args.eval / "autoencoder-dice.json")
    cal = read_json(args.eval / "calibration.json")
    ev = read_json(args.eval / "evaluation.json")
    timing = read_json(args.eval / "timing.json")
    done, last_epoch = stage_summaries(args.generator, args.run)

    grid = gen["grid"]
    k = gen["conditioning"]
    v = cal["verification"]
    p = ev["pass"]
    size_mb = folder_mb(args.generator)
    total_wall = sum(d.get("wallSeconds", 0) + d.get("encodeSeconds", 0) for d in done.values())
    lines = []
    w = lines.append
    w(f"# Model card: {args.generator.name}")
    w("")
    w("A brain-ldm generator: the two-stage recipe of Ruschke et al. (2024), a mask LDM conditioned on ventricle volume")
    w("with classifier-free guidance and a SPADE image LDM, trained with MONAI core's network classes by `train/`,")
    w(f"at a reduced size that trains on a CPU. Grid: {grid['orientation']} {'x'.join(map(str, grid['shape']))} at "
      f"{' x '.join(str(s) for s in grid['spacingMm'])} mm. Bundle size: {size_mb:.1f} MB (float16 weights).")
    w("")
    w("## Data and licence")
    w("Trained on label maps derived from the 20 SynthSeg training label maps (Billot et al., Medical Image Analysis 86:102789,")
    w("2023; https://github.com/BBillot/SynthSeg; Apache-2.0, see `training-data-LICENSE-Apache-2.0.txt` and")
    w("`training-data-SOURCE.md` beside this card). Images are SynthSeg-style renderings of those maps with SynthSeg's T1")
    w("priors (`brain-ldm synthseg-images`), so the image model paints SynthSeg-like T1 contrast, not real scanner images.")
    w(f"Held out (never augmented or trained on): {', '.join(split['heldOut'])}. The other {len(split['train'])} subjects were")
    w("augmented with `brain-ldm augment-labels` (ventricles enlarged x1-3, mild affine, elastic, flips).")
    w("")
    w("## Conditioning")
    w(f"Condition = (ventricle/ICV ratio - {k['ratioMin']:.5f}) / ({k['ratioMax']:.5f} - {k['ratioMin']:.5f}); ventricle labels "
      f"{k['ventricleLabels']}. Training ventricle volumes {k['trainingVentricleMl'][0]:.1f}-{k['trainingVentricleMl'][1]:.1f} mL; "
      f"reference ICV {k['referenceIcvMl']:.0f} mL. Null context: {k['nullContext']}; defaults: guidance "
      f"{gen['defaults']['guidanceScale']}, {gen['defaults']['solver']} {gen['defaults']['steps']} steps.")
    w("")
    w("## Training")
    w(f"Config `{args.config}` (pinned in the run as config `{config.get('name', '?')}`), seed {config.get('seed')}, "
      f"{config.get('threads')} threads, on {args.machine or this_machine()}. Wall time {total_wall / 60:.0f} min in total.")
    if args.note:
        w("")
        w(args.note)
    kept = {s: d["keptFrom"] for s, d in done.items() if "keptFrom" in d}
    if kept:
        w("")
        w(f"Stages {', '.join(kept)} were not retrained: their bundles were kept as they were from the generator "
          + " and ".join(sorted({f"`{k['generator']}` (config `{k['config']}`)" for k in kept.values()}))
          + " (`export_generator.py --keep`); their rows below are that training's.")
    # Stages that continued another run's weights (train.init_from): that run comes first in Reproduce below.
    init = {s: d["initFrom"] for s, d in done.items() if "initFrom" in d and s not in kept}
    if init:
        w("")
        w("Stages that started from the weights of a finished run (`train.init_from`): "
          + ", ".join(f"{stage} from `{Path(i['run']).name}` after {i['steps']} steps" for stage, i in init.items())
          + "; steps and wall time below are this run's only.")
    w("")
    w("| stage | steps | wall (min) | last epoch loss | held-out |")
    w("|---|---|---|---|---|")
    for stage in ("mask-ae", "mask-unet", "spade-ae", "spade-unet", *(["mask-decoder"] if "mask-decoder" in done else [])):
        d = done.get(stage, {})
        e = last_epoch.get(stage, {})
        val = ", ".join(f"{key[4:]} {val:.4g}" for key, val in e.items() if key.startswith("val_"))
        loss = f"{e['loss']:.4g}" if "loss" in e else "not recorded"
        w(f"| {stage} | {d.get('steps', '-')} | {(d.get('wallSeconds', 0) + d.get('encodeSeconds', 0)) / 60:.1f} | "
          f"{loss} | {val or 'not recorded'} |")
    w("")
    w("## Quality (measured with `bash train/evaluate_generator.sh`, i.e. brain-ldm running these bundles)")
    w("")
    w("| criterion | bar | measured | met |")
    w("|---|---|---|---|")
    s = dice["summary"]
    w(f"| mask autoencoder, mean Dice over 33 labels (held-out maps) | >= {BARS['meanDice']} | {s['meanDice']:.3f} | {yes(s['meanDice'] >= BARS['meanDice'])} |")
    w(f"| mask autoencoder, ventricle Dice (held-out maps) | >= {BARS['ventricleDice']} | {s['ventricleDice']:.3f} | {yes(s['ventricleDice'] >= BARS['ventricleDice'])} |")
    n_req = len(v["rows"])
    n_per = len(v["rows"][0]["achievedMl"]) if v["rows"] else 0
    w(f"| volume control, Spearman achieved vs requested ({n_req} requests x {n_per}) | >= {BARS['spearman']} | {v['spearman']:.3f} | {yes(v['spearman'] >= BARS['spearman'])} |")
    w(f"| volume control, median relative error | <= {BARS['medianRelativeError']:.0%} | {v['medianRelativeError']:.1%} | {yes(v['medianRelativeError'] <= BARS['medianRelativeError'])} |")
    rep = ev.get("labelRepair")
    alone = f" ({rep['anatomyWithoutRepair']:.1%} without the label presence repair)" if rep else ""
    w(f"| anatomy: all 33 labels, ventricles inside, left of right ({ev['samples']} samples) | >= {BARS['anatomy']:.0%} | {p['anatomy']:.1%}{alone} | {yes(p['anatomy'] >= BARS['anatomy'])} |")
    w(f"| images: mean intensity white matter > cortex > ventricles | all samples | {p['t1Order']:.1%} | {yes(p['t1Order'] == 1)} |")
    w(f"| one labeled pair with the defaults | <= 60 s | {timing['seconds']:.1f} s | {yes(timing['seconds'] <= 60)} |")
    w("")
    w(f"Anatomy in detail: all labels {p['allLabelsPresent']:.1%}, ventricles inside the brain {p['ventriclesInsideBrain']:.1%}, "
      f"left of right {p['leftOfRight']:.1%}. Volume control, uncalibrated samples of the anatomy run: "
      + (f"Spearman {ev['volume']['spearman']:.3f}, median relative error {ev['volume']['medianRelativeError']:.1%}." if ev.get("volume") else "n/a."))
    missing = Counter(l for r in ev.get("perSample", []) for l in r["anatomy"]["missingLabels"])
    if missing:
        w("")
        w("Labels missing from generated masks (label: samples without it): "
          + ", ".join(f"{label}: {n}" for label, n in missing.most_common()) + f" of {ev['samples']}.")
    lp = gen.get("labelPresence")
    if lp and rep:
        grown = Counter(l for r in ev.get("perSample", []) for l in r.get("repairedLabels", []))
        w("")
        w(f"Label presence (stored in generator.json; `brain-ldm label-presence` on {lp['referenceMaps']} reference maps): where a "
          f"generated mask holds fewer than {lp['minFraction']} x a label's mean voxels in those maps, the label is grown inside the "
          "region the maps have it in (its mean position relative to the brain's centroid, +- their spread), where the mask decoder "
          "ranks it closest to winning (pipeline/label-presence.ts). The manifest names each sample's repaired labels; "
          "`brain-ldm generate --no-label-repair` turns it off. It grew labels in "
          f"{rep['samples']} of {ev['samples']} masks"
          + (" (label: masks): " + ", ".join(f"{label}: {n}" for label, n in grown.most_common()) if grown else "")
          + f"; the decoder alone passes the anatomy checks in {rep['anatomyWithoutRepair']:.1%}.")
    lo = gen.get("labelOffsets")
    if lo:
        # Which labels the offsets moved, and by how much: the labels whose mean volume was furthest from the
        # reference without them (ratios to the reference's share among the labels the fit moves).
        labels = gen["labels"]
        moved = [c for c, o in enumerate(lo["offsets"]) if o != 0]
        t_sum = sum(lo["targetVoxels"][c] for c in moved)
        b_sum = sum(lo["meanVoxelsBefore"][c] for c in moved)
        ratio = lambda vox, c: (vox[c] / b_sum) / (lo["targetVoxels"][c] / t_sum) if lo["targetVoxels"][c] > 0 else float("nan")
        worst = sorted(moved, key=lambda c: abs(math.log(max(ratio(lo["meanVoxelsBefore"], c), 1e-6))), reverse=True)[:8]
        w("")
        w(f"Label offsets (stored in generator.json; `brain-ldm calibrate --label-reference` on the {lo['referenceMaps']} training maps, "
          f"fitted on {lo['fittedMasks']} generated masks): per-label constants added to the mask decoder's logits before the argmax, so each "
          "label takes its training share of the voxels (background and ventricles keep 0; pipeline/label-offsets.ts). The labels "
          "that were furthest from their share (mean volume over the fitted masks / training share):")
        w("")
        w("| label | offset | without offsets | with offsets |")
        w("|---|---|---|---|")
        for c in worst:
            w(f"| {labels[c]} | {lo['offsets'][c]:+.2f} | {ratio(lo['meanVoxelsBefore'], c):.2f} | {ratio(lo['meanVoxelsAfter'], c):.2f} |")
    w("")
    w("Calibration (stored in generator.json; requests in mL go through it):")
    w("")
    w("| mL | condition |")
    w("|---|---|")
    for ml, c in cal["calibration"]["points"]:
        w(f"| {ml:.1f} | {c:.4f} |")
    w("")
    w("Achieved vs requested through the calibrated map:")
    w("")
    w("| requested mL | achieved mL (each sample) |")
    w("|---|---|")
    for r in v["rows"]:
        w(f"| {r['requestedMl']:.1f} | {', '.join(f'{a:.1f}' for a in r['achievedMl'])} |")
    w("")
    w("## Reproduce")
    w("```sh")
    w("bash train/make_training_set.sh DATA --augment-at reduced")
    trained = [x for x in ("mask-ae", "mask-unet", "spade-ae", "spade-unet", "mask-decoder") if x not in kept and x in done]
    # A run named by init_from is a sibling of RUN, trained by the config of the same name.
    for stage, i in init.items():
        source = Path(i["run"]).name
        w(f".venv/bin/python train/train.py --config train/configs/{source}.yaml --stage {stage} --data DATA --out RUNS/{source}")
    if init:
        w("# RUN below is RUNS/<name>, a sibling of the run(s) above")
    for stage in (["all"] if not kept else trained):
        w(f".venv/bin/python train/train.py --config {args.config} --stage {stage} --data DATA --out RUN")
    halves = [h for h, stages in (("mask", ("mask-ae", "mask-unet")), ("image", ("spade-ae", "spade-unet"))) if all(x in kept for x in stages)]
    keep = "".join(f" --keep {h}" for h in halves) + (f" --keep-from {next(iter(kept.values()))['generator']}" if halves else "")
    w(f".venv/bin/python train/export_generator.py --run RUN --out {args.generator}{keep} --verify")
    w(f"bash train/evaluate_generator.sh {args.generator} DATA EVAL")
    w(f".venv/bin/python train/write_model_card.py --generator {args.generator} --data DATA --eval EVAL --config {args.config}")
    w("```")
    text = "\n".join(lines) + "\n"
    out = args.generator / "MODEL_CARD.md"
    tmp = out.with_name(f".{out.name}.tmp-{os.getpid()}")
    tmp.write_text(text)
    os.replace(tmp, out)
    print(f"write_model_card: wrote {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
