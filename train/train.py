#!/usr/bin/env python3
"""Train the four networks of brain-ldm's generator (Ruschke et al. 2024 recipe, MONAI core classes).

  .venv/bin/python train/train.py --config train/configs/cpu-reduced.yaml --stage all --data DATA --out RUN

--stage mask-ae | mask-unet | spade-ae | spade-unet | mask-decoder | all (mask-decoder: only with its config
section; it fine-tunes the mask decoder on the mask UNet's latents, after both mask stages). A UNet stage needs its autoencoder stage finished in
the same run (it trains on that autoencoder's latents, scaled by its scale factor). Finished stages are skipped;
an interrupted stage resumes from RUN/<stage>/checkpoint.pt. Losses per epoch go to RUN/log.jsonl.
Then: train/export_generator.py --run RUN --out models/<name>.
"""
from __future__ import annotations

import argparse
import shutil
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))

from ldm.config import ConfigError, load_config, pin_config  # noqa: E402
from ldm.data import DataError, load_labels, load_pairs, read_split  # noqa: E402
from ldm.networks import ALL_STAGES, STAGES  # noqa: E402
from ldm.run_state import DATA_NOTICE_FILES, RunLog, StageFiles  # noqa: E402
from ldm.stages import TRAINERS, RunContext, TrainingData  # noqa: E402


def parse_args(argv: list[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="train.py", description=__doc__.split("\n\n")[0])
    p.add_argument("--config", required=True, help="run config, e.g. train/configs/cpu-reduced.yaml")
    p.add_argument("--stage", required=True, choices=[*ALL_STAGES, "all"])
    p.add_argument("--data", required=True, type=Path, help="training set made by train/make_training_set.sh")
    p.add_argument("--out", required=True, type=Path, help="run directory (created; reused to resume)")
    p.add_argument("--threads", type=int, help="torch CPU threads (default: the config's `threads`)")
    p.add_argument("--max-steps", type=int, help="smoke runs: stop each stage after this many optimizer steps")
    return p.parse_args(argv)


def load_data(data_dir: Path, cfg: dict, need_images: bool) -> TrainingData:
    read_split(data_dir)  # refuses a folder make_training_set.sh did not write
    labels = load_labels(data_dir / "labels", cfg)
    held_dir = data_dir / "heldout"
    heldout_labels = load_labels(held_dir / "labels", cfg) if (held_dir / "labels").is_dir() else None
    pairs = heldout_pairs = None
    if need_images:
        pairs = load_pairs(data_dir / "images", labels, cfg)
        if heldout_labels is not None and (held_dir / "images").is_dir():
            heldout_pairs = load_pairs(held_dir / "images", heldout_labels, cfg)
    return TrainingData(labels, pairs, heldout_labels, heldout_pairs)


def keep_data_notice(data_dir: Path, run_dir: Path) -> None:
    """The weights derive from the training data: its origin and licence travel with the run (and the export)."""
    for name in DATA_NOTICE_FILES:
        if (data_dir / name).is_file() and not (run_dir / name).exists():
            shutil.copyfile(data_dir / name, run_dir / name)


def main(argv: list[str]) -> int:
    args = parse_args(argv)
    try:
        cfg = load_config(args.config)
        if args.threads is not None and args.threads < 1:
            raise ConfigError(f"--threads must be a positive integer, got {args.threads}")
        if args.max_steps is not None and args.max_steps < 1:
            raise ConfigError(f"--max-steps must be a positive integer, got {args.max_steps}")
        if cfg["device"] == "cuda" and not torch.cuda.is_available():
            raise ConfigError(f"{args.config}: field 'device' is \"cuda\" but torch sees no CUDA device")
        optional = tuple(s for s in ALL_STAGES if s not in STAGES and s in cfg)
        stages = STAGES + optional if args.stage == "all" else (args.stage,)
        if args.stage not in (*STAGES, *optional, "all"):
            raise ConfigError(f"--stage {args.stage}: {args.config} has no '{args.stage}' section")
        todo = [s for s in stages if not (args.out / s / StageFiles.DONE).exists()]
        for s in stages:
            if s not in todo:
                print(f"train.py: {s} already finished in {args.out}; skipped", flush=True)
        if not todo:
            return 0
        # The data is checked before the run directory is touched, so a bad --data leaves nothing behind.
        data = load_data(args.data, cfg, need_images=any(s.startswith("spade") for s in todo))
        args.out.mkdir(parents=True, exist_ok=True)
        pin_config(args.out, cfg, args.config)
        keep_data_notice(args.data, args.out)
    except (ConfigError, DataError) as e:
        print(f"train.py: {e}", file=sys.stderr)
        return 2
    torch.set_num_threads(args.threads or int(cfg["threads"]))
    ctx = RunContext(args.out, cfg, torch.device(cfg["device"]), RunLog(args.out), args.max_steps)
    ctx.log.write("run", stages=todo, data=str(args.data), held_out=read_split(args.data).get("heldOut"),
                  training_maps=len(data.labels.names), training_pairs=len(data.pairs.names) if data.pairs else None,
                  config=str(args.config), threads=torch.get_num_threads(),
                  max_steps=args.max_steps, torch=torch.__version__)
    for s in todo:
        TRAINERS[s](ctx, data)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
