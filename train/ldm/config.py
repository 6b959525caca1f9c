"""Run configs (train/configs/*.yaml): read, check, and pin to a run directory."""
from __future__ import annotations

import json
import os
from pathlib import Path

try:
    import yaml
except ImportError as e:  # the venv predates PyYAML in train/requirements.txt
    raise SystemExit("train: PyYAML is missing; run `bash train/setup_venv.sh` (train/requirements.txt lists pyyaml)") from e

from .networks import OPTIONAL_STAGES, STAGES

SYNTHSEG_LABELS = [0, 2, 3, 4, 5, 7, 8, 10, 11, 12, 13, 14, 15, 16, 17, 18, 24, 26, 28,
                   41, 42, 43, 44, 46, 47, 49, 50, 51, 52, 53, 54, 58, 60]
VENTRICLE_LABELS = [4, 5, 43, 44, 14, 15]

_TOP = {"name", "seed", "device", "threads", "grid", "labels", "ventricle_labels", "scheduler",
        "checkpoint_every_s", "export", *STAGES, *OPTIONAL_STAGES}
_TRAIN_KEYS = {"epochs": int, "batch_size": int, "lr": float}


class ConfigError(ValueError):
    pass


def _need(cond: bool, file: str, field: str, expected: str, got) -> None:
    if not cond:
        raise ConfigError(f"{file}: field '{field}' must be {expected}, got {json.dumps(got)}")


def check_config(cfg: dict, file: str) -> dict:
    """Raises ConfigError naming the file, the field and what was expected."""
    _need(isinstance(cfg, dict), file, "(top level)", "a mapping", None)
    unknown = sorted(set(cfg) - _TOP)
    _need(not unknown, file, ",".join(unknown), f"absent (known fields: {', '.join(sorted(_TOP))})", unknown)
    for k in _TOP - {"checkpoint_every_s", *OPTIONAL_STAGES}:
        _need(k in cfg, file, k, "present", None)
    g = cfg["grid"]
    _need(isinstance(g, dict) and set(g) == {"orientation", "shape", "spacing_mm"}, file, "grid",
          "{orientation, shape, spacing_mm}", g)
    _need(isinstance(g["shape"], list) and len(g["shape"]) == 3 and all(isinstance(v, int) and v > 0 for v in g["shape"]),
          file, "grid.shape", "3 positive integers", g["shape"])
    _need(isinstance(g["spacing_mm"], list) and len(g["spacing_mm"]) == 3 and all(float(v) > 0 for v in g["spacing_mm"]),
          file, "grid.spacing_mm", "3 positive numbers", g["spacing_mm"])
    _need(cfg["labels"] == SYNTHSEG_LABELS, file, "labels", f"the 33 SynthSeg labels in channel order {SYNTHSEG_LABELS}", cfg["labels"])
    _need(sorted(cfg["ventricle_labels"]) == sorted(VENTRICLE_LABELS), file, "ventricle_labels", str(VENTRICLE_LABELS), cfg["ventricle_labels"])
    _need(cfg["device"] in ("cpu", "cuda"), file, "device", '"cpu" or "cuda"', cfg["device"])
    for stage in (*STAGES, *(s for s in OPTIONAL_STAGES if s in cfg)):
        s = cfg[stage]
        if stage in OPTIONAL_STAGES:  # trains a network above, so it has no network of its own
            _need(isinstance(s, dict) and set(s) == {"train"}, file, stage, "a mapping with train only", s)
        else:
            _need(isinstance(s, dict) and "network" in s and "train" in s, file, stage, "a mapping with network and train", s)
        for k, typ in _TRAIN_KEYS.items():
            v = s["train"].get(k)
            _need(isinstance(v, (int, float)) and not isinstance(v, bool) and typ(v) == v and v > 0,
                  file, f"{stage}.train.{k}", f"a positive {typ.__name__}", v)
        t = s["train"]
        sched = t.get("lr_schedule", "constant")
        _need(sched in ("constant", "cosine"), file, f"{stage}.train.lr_schedule", '"constant" or "cosine"', sched)
        lr_min = t.get("lr_min", 0.0)
        _need(isinstance(lr_min, (int, float)) and 0 <= lr_min < float(t["lr"]), file, f"{stage}.train.lr_min",
              f"a number in [0, lr {t['lr']})", lr_min)
        init = t.get("init_from")
        _need(init is None or (isinstance(init, str) and init != ""), file, f"{stage}.train.init_from",
              "the directory of a run that finished this stage (relative: a sibling of --out)", init)
    # Each autoencoder has its own latent grid (generator.json stores one latentShape per stage).
    for stage in ("mask-ae", "spade-ae"):
        factor = 2 ** (len(cfg[stage]["network"]["channels"]) - 1)
        _need(all(v % factor == 0 for v in g["shape"]), file, "grid.shape",
              f"divisible by {stage}'s downsampling {factor}", g["shape"])
        crop = cfg[stage]["train"].get("crop")
        if crop is not None:
            _need(isinstance(crop, list) and len(crop) == 3 and all(isinstance(c, int) and 0 < c <= s and c % factor == 0
                                                                    for c, s in zip(crop, g["shape"])),
                  file, f"{stage}.train.crop", f"3 integers, each a multiple of {factor} and within grid.shape {g['shape']}", crop)
    emb = cfg["mask-ae"].get("embedding", {})
    _need(emb.get("num_embeddings", 0) > max(SYNTHSEG_LABELS), file, "mask-ae.embedding.num_embeddings", f"> {max(SYNTHSEG_LABELS)}", emb.get("num_embeddings"))
    _need(emb.get("embedding_dim") == cfg["mask-ae"]["network"]["in_channels"], file, "mask-ae.embedding.embedding_dim",
          "mask-ae.network.in_channels (the embedding feeds the autoencoder)", emb.get("embedding_dim"))
    _need(cfg["mask-ae"]["network"]["out_channels"] == len(SYNTHSEG_LABELS), file, "mask-ae.network.out_channels", "33 (logits)", cfg["mask-ae"]["network"]["out_channels"])
    _need(cfg["mask-unet"]["network"].get("cross_attention_dim") == 2, file, "mask-unet.network.cross_attention_dim", "2 ([volume, flag])", cfg["mask-unet"]["network"].get("cross_attention_dim"))
    for stage in ("spade-ae", "spade-unet"):
        _need(cfg[stage]["network"].get("label_nc") == len(SYNTHSEG_LABELS), file, f"{stage}.network.label_nc", "33", cfg[stage]["network"].get("label_nc"))
    for unet, ae in (("mask-unet", "mask-ae"), ("spade-unet", "spade-ae")):
        lc = cfg[ae]["network"]["latent_channels"]
        for k in ("in_channels", "out_channels"):
            _need(cfg[unet]["network"][k] == lc, file, f"{unet}.network.{k}", f"{ae}.network.latent_channels {lc}", cfg[unet]["network"][k])
    dw = cfg["mask-ae"]["train"].get("dice_weight", 0.0)
    _need(isinstance(dw, (int, float)) and dw >= 0, file, "mask-ae.train.dice_weight", "a non-negative number", dw)
    if "mask-decoder" in cfg:
        t = cfg["mask-decoder"]["train"]
        steps = cfg["scheduler"].get("num_train_timesteps", 1000)
        _need(isinstance(t.get("t_max"), int) and 1 <= t["t_max"] < steps, file, "mask-decoder.train.t_max",
              f"an integer timestep in [1, {steps})", t.get("t_max"))
        cf = t.get("clean_fraction")
        _need(isinstance(cf, (int, float)) and 0 <= cf < 1, file, "mask-decoder.train.clean_fraction", "a fraction in [0, 1)", cf)
        gs = t.get("guidance_scale")
        _need(isinstance(gs, (int, float)) and gs >= 1, file, "mask-decoder.train.guidance_scale", "a number >= 1", gs)
        dw = t.get("dice_weight", 0.0)
        _need(isinstance(dw, (int, float)) and dw >= 0, file, "mask-decoder.train.dice_weight", "a non-negative number", dw)
        factor = 2 ** (len(cfg["mask-ae"]["network"]["channels"]) - 1)
        crop = t.get("crop")
        _need(crop is None or (isinstance(crop, list) and len(crop) == 3 and all(
            isinstance(c, int) and 0 < c <= s and c % factor == 0 for c, s in zip(crop, g["shape"]))),
              file, "mask-decoder.train.crop", f"3 integers, each a multiple of {factor} and within grid.shape {g['shape']}", crop)
    p = cfg["mask-unet"]["train"].get("cfg_dropout")
    _need(isinstance(p, (int, float)) and 0 <= p < 1, file, "mask-unet.train.cfg_dropout", "a probability in [0, 1)", p)
    return cfg


def load_config(path: str | Path) -> dict:
    path = Path(path)
    try:
        text = path.read_text()
    except OSError as e:
        raise ConfigError(f"--config {path}: cannot read: {e.strerror}") from e
    return check_config(yaml.safe_load(text), str(path))


def latent_shape(cfg: dict, ae_stage: str) -> list[int]:
    """[C, D, H, W] of one latent: the AE halves the grid once per level after the first."""
    factor = 2 ** (len(cfg[ae_stage]["network"]["channels"]) - 1)
    return [cfg[ae_stage]["network"]["latent_channels"], *(v // factor for v in cfg["grid"]["shape"])]


def write_json_atomic(path: Path, obj) -> None:
    """Temp name then rename, so a killed run never leaves half a file."""
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    tmp.write_text(json.dumps(obj, indent=2) + "\n")
    os.replace(tmp, path)


def pin_config(run_dir: Path, cfg: dict, source: str) -> None:
    """The first run writes the config into the run; later runs (resumes) must bring the same one."""
    pinned = run_dir / "config.json"
    if pinned.exists():
        old = json.loads(pinned.read_text())
        if old != json.loads(json.dumps(cfg)):
            raise ConfigError(f"--config {source}: differs from the config this run started with ({pinned}); "
                              "use a new --out to train with another config")
    else:
        write_json_atomic(pinned, cfg)
