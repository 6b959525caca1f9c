#!/usr/bin/env python3
"""The thesis recipe's cost in PyTorch for a generator's networks: per-step time of each network, measured, and the
seconds per labeled pair projected for DDPM 1000 steps per stage (the recipe of Ruschke et al.) and for the 20
solver steps brain-ldm runs by default. Used by bench/pair.ts; prints one JSON line.

  .venv/bin/python bench/pair_pytorch.py --config train/configs/cpu-reduced.yaml [--threads 2] [--repeat 5]
      [--precision fp32|bf16]

The networks are built from the run config with MONAI core's classes (train/ldm/networks.py), the same classes and
sizes the shipped generator was trained with; their weights are freshly initialised, which does not change the
time of a forward. Inputs: the mask UNet at batch 2 (classifier-free guidance), the SPADE UNet at batch 1 with the
one-hot label map at image resolution, both decoders at batch 1, as brain-ldm's generator runs them.
"""
from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "train"))
from ldm.config import latent_shape, load_config  # noqa: E402
from ldm.networks import build_network  # noqa: E402


def timed(fn, repeat: int) -> float:
    fn()  # warm-up: oneDNN picks its kernels here
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def main(argv: list[str]) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--config", type=Path, required=True)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--precision", choices=["fp32", "bf16"], default="fp32")
    a = ap.parse_args(argv)
    torch.set_num_threads(a.threads)
    torch.manual_seed(0)
    cfg = load_config(a.config)
    grid = list(cfg["grid"]["shape"])
    n_labels = len(cfg["labels"])
    mask_latent = latent_shape(cfg, "mask-ae")
    image_latent = latent_shape(cfg, "spade-ae")
    nets = {stage: build_network(stage, cfg).eval() for stage in ("mask-ae", "mask-unet", "spade-ae", "spade-unet")}
    mask_ae = nets["mask-ae"].autoencoder
    seg = torch.zeros(1, n_labels, *grid)
    seg[:, 0] = 1
    z_mask = torch.randn(2, *mask_latent)
    z_image = torch.randn(1, *image_latent)
    t2 = torch.full((2,), 500, dtype=torch.long)
    t1 = torch.full((1,), 500, dtype=torch.long)
    context = torch.tensor([[[0.5, 1.0]], [[0.3, 0.0]]])
    autocast = torch.autocast("cpu", dtype=torch.bfloat16, enabled=a.precision == "bf16")
    with torch.inference_mode(), autocast:
        step = {
            "mask-unet (batch 2, CFG)": timed(lambda: nets["mask-unet"](z_mask, t2, context=context), a.repeat),
            "mask decoder": timed(lambda: mask_ae.decode(z_mask[:1]), a.repeat),
            "image unet": timed(lambda: nets["spade-unet"](z_image, t1, seg=seg), a.repeat),
            "image decoder": timed(lambda: nets["spade-ae"].decode(z_image, seg), a.repeat),
        }
    unets = step["mask-unet (batch 2, CFG)"] + step["image unet"]
    decoders = step["mask decoder"] + step["image decoder"]
    print(json.dumps({
        "engine": f"pytorch {torch.__version__}", "precision": a.precision, "threads": a.threads,
        "secondsPerStep": step,
        "thesisRecipeSeconds": 1000 * unets + decoders,  # DDPM 1000 steps per stage
        "twentyStepSeconds": 20 * unets + decoders,      # the default solver's step count, networks only
    }))
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
