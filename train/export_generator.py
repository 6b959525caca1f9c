#!/usr/bin/env python3
"""Export a finished training run (train/train.py) as a brain-ldm generator directory:

  .venv/bin/python train/export_generator.py --run RUN --out models/<name> [--overwrite] [--verify]

For each network it writes RUN/export/<bundle>.pth ({"model": state_dict}, float16 when the config's
export.dtype says so) and converts it with `brain-ldm import` into <out>/<bundle>/ (model.json +
weights.safetensors). The autoencoders get their scale factor (--scale-factor), the UNets the training DDPM
scheduler's MONAI arguments in model.json `scheduler`; generator.json ties the four together. The directory is
built beside --out and renamed into place, so --out is never half-written.

--keep image --keep-from GENERATOR takes the image half (SPADE autoencoder + SPADE UNet) as it is from an existing
generator instead of from the run (likewise --keep mask): a run that retrains only the mask stages ships with the
image networks it was paired with before. The kept bundles must have the run config's network arguments, grid and
scheduler; their training records and verification come along from GENERATOR/training.json, marked `keptFrom`.

--verify runs every bundle once with `brain-ldm run-network` and compares it with the PyTorch network holding the
same (exported) weights; the maximum relative L2 error allowed is --tolerance. The brain-ldm command is
${BRAIN_LDM:-node bin/brain-ldm.mjs}, as in make_training_set.sh.
"""
from __future__ import annotations

import argparse
import json
import os
import shlex
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from safetensors.torch import load_file, save_file

sys.path.insert(0, str(Path(__file__).resolve().parent))

from ldm.config import check_config, latent_shape, write_json_atomic  # noqa: E402
from ldm.networks import BUNDLE_NAME, NETWORK_CLASS, STAGES, build_network, network_args  # noqa: E402
from ldm.run_state import DATA_NOTICE_FILES, StageFiles  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
SCHEDULER_TARGET = "monai.networks.schedulers.DDPMScheduler"  # trained with MONAI core's class
DTYPES = {"float32": torch.float32, "float16": torch.float16, "bfloat16": torch.bfloat16}


class ExportError(RuntimeError):
    pass


def brain_ldm_command() -> list[str]:
    return shlex.split(os.environ.get("BRAIN_LDM", f"node {ROOT / 'bin' / 'brain-ldm.mjs'}"))


def run_brain_ldm(args: list[str]) -> str:
    cmd = brain_ldm_command() + args
    p = subprocess.run(cmd, capture_output=True, text=True)
    if p.returncode != 0:
        raise ExportError(f"`{shlex.join(cmd)}` failed with exit code {p.returncode}:\n{p.stderr.strip() or p.stdout.strip()}")
    return p.stdout


# The halves of a generator: a UNet trains on its autoencoder's latents, so the two are kept or retrained together.
HALVES = {"mask": ("mask-ae", "mask-unet"), "image": ("spade-ae", "spade-unet")}


def read_run_config(run: Path) -> dict:
    cfg_path = run / "config.json"
    if not cfg_path.exists():
        raise ExportError(f"--run {run}: config.json is missing (not a train.py run directory)")
    return check_config(json.loads(cfg_path.read_text()), str(cfg_path))


def weights_stage(cfg: dict, stage: str) -> str:
    """The run stage whose weights a network's bundle ships: a config with `mask-decoder` fine-tunes mask-ae's decoder
    after the mask UNet (train/ldm/stages.py), and the mask autoencoder bundle takes that stage's weights."""
    return "mask-decoder" if stage == "mask-ae" and "mask-decoder" in cfg else stage


def read_run(run: Path, kept: dict[str, dict] | None = None) -> tuple[dict, dict]:
    kept = kept or {}
    cfg = read_run_config(run)
    done = {}
    extra = ("mask-decoder",) if "mask-decoder" in cfg and "mask-ae" not in kept else ()
    for stage in (*STAGES, *extra):
        if stage in kept:
            done[stage] = kept[stage]
            continue
        path = run / stage / StageFiles.DONE
        if not path.exists():
            raise ExportError(f"--run {run}: stage {stage} has not finished ({path} is missing); "
                              f"run train.py --stage {stage} first")
        done[stage] = json.loads(path.read_text())
    for stage in ("mask-ae", "spade-ae"):
        if not (isinstance(done[stage].get("scaleFactor"), float) and done[stage]["scaleFactor"] > 0):
            raise ExportError(f"{run / stage / StageFiles.DONE}: field 'scaleFactor' must be a positive number, got "
                              f"{done[stage].get('scaleFactor')!r}")
    return cfg, done


def _monai_args(args: dict) -> dict:
    """Network kwargs with MONAI core's `channels` (bundles made from GenerativeModels files say `num_channels`)."""
    out = dict(args)
    if "num_channels" in out:
        out["channels"] = out.pop("num_channels")
    return out


def kept_stages(source: Path, halves: list[str], run: Path) -> dict[str, dict]:
    """The done records of the stages taken from generator `source`, after checking that its bundles are what the
    run's config would have trained: same network class and arguments, grid, labels and training scheduler."""
    if not halves:
        return {}
    gen_path, train_path = source / "generator.json", source / "training.json"
    for path in (gen_path, train_path):
        if not path.exists():
            raise ExportError(f"--keep-from {source}: {path.name} is missing (not a generator written by export_generator.py)")
    cfg = read_run_config(run)
    gen, training = json.loads(gen_path.read_text()), json.loads(train_path.read_text())
    want_grid = {"orientation": cfg["grid"]["orientation"], "shape": cfg["grid"]["shape"], "spacingMm": cfg["grid"]["spacing_mm"]}
    if gen.get("grid") != want_grid:
        raise ExportError(f"{gen_path}: field 'grid' must be the run's {want_grid}, got {gen.get('grid')}")
    if gen.get("labels") != cfg["labels"]:
        raise ExportError(f"{gen_path}: field 'labels' must be the run's {cfg['labels']}, got {gen.get('labels')}")
    kept = {}
    for half in halves:
        for stage in HALVES[half]:
            model_path = source / BUNDLE_NAME[stage] / "model.json"
            model = json.loads(model_path.read_text())
            if model["network"]["class"] != NETWORK_CLASS[stage]:
                raise ExportError(f"{model_path}: field 'network.class' must be {NETWORK_CLASS[stage]}, got {model['network']['class']}")
            got, want = _monai_args(model["network"]["args"]), network_args(stage, cfg)
            if got != want:
                diff = sorted(k for k in set(got) | set(want) if got.get(k) != want.get(k))
                raise ExportError(f"{model_path}: network.args differ from the run config's {stage}.network in {diff} "
                                  f"(bundle {[got.get(k) for k in diff]}, config {[want.get(k) for k in diff]})")
            if stage.endswith("unet"):
                want_sched = {"_target_": SCHEDULER_TARGET, **cfg["scheduler"]}
                if model.get("scheduler") != want_sched:
                    raise ExportError(f"{model_path}: field 'scheduler' must be the run's {want_sched}, got {model.get('scheduler')}")
            record = dict(training["stages"][stage])
            if "scaleFactor" in model and model["scaleFactor"] is not None:
                record["scaleFactor"] = float(model["scaleFactor"])
            record["keptFrom"] = {"generator": str(source), "config": training.get("config")}
            kept[stage] = record
    return kept


def exported_state_dict(run: Path, cfg: dict, stage: str, dtype: torch.dtype) -> dict[str, torch.Tensor]:
    sd = torch.load(StageFiles(run, weights_stage(cfg, stage)).model, map_location="cpu", weights_only=True)["model"]
    return {k: (v.to(dtype) if v.is_floating_point() else v) for k, v in sd.items()}


def write_bundle(run: Path, cfg: dict, done: dict, stage: str, staging: Path, dtype: torch.dtype) -> dict:
    name = BUNDLE_NAME[stage]
    if "keptFrom" in done[stage]:
        source = Path(done[stage]["keptFrom"]["generator"])
        shutil.copytree(source / name, staging / name)
        record = next(b for b in json.loads((source / "training.json").read_text())["bundles"] if b["bundle"] == name)
        return {**record, "keptFrom": done[stage]["keptFrom"]}
    export_dir = run / "export"
    export_dir.mkdir(exist_ok=True)
    pth, args_file = export_dir / f"{name}.pth", export_dir / f"{name}.args.json"
    torch.save({"model": exported_state_dict(run, cfg, stage, dtype)}, pth)
    write_json_atomic(args_file, network_args(stage, cfg))
    cmd = ["import", str(pth), "--network", NETWORK_CLASS[stage], "--args", f"@{args_file}", "--out", str(staging / name), "--json"]
    if "scaleFactor" in done[stage]:
        cmd += ["--scale-factor", repr(done[stage]["scaleFactor"])]
    if stage == "mask-ae":
        emb = cfg[stage]["embedding"]
        cmd += ["--wrapper-embedding", f"{emb['num_embeddings']}x{emb['embedding_dim']}"]
    report = json.loads(run_brain_ldm(cmd))
    model_json = staging / name / "model.json"
    model = json.loads(model_json.read_text())
    model["grid"] = {"shape": cfg["grid"]["shape"], "spacingMm": cfg["grid"]["spacing_mm"]}
    if stage != "mask-unet":
        model["labels"] = cfg["labels"]   # one-hot channel order of the logits / the SPADE seg
    if stage.endswith("unet"):
        model["scheduler"] = {"_target_": SCHEDULER_TARGET, **cfg["scheduler"]}
    write_json_atomic(model_json, model)
    return {"bundle": name, "tensors": report.get("tensors"), "dtypes": report.get("dtypes"),
            "bytes": (staging / name / "weights.safetensors").stat().st_size, "scheme": report.get("scheme")}


def generator_json(cfg: dict, done: dict) -> dict:
    cond = done["mask-unet"]["conditioning"]
    exp = cfg["export"]
    return {
        "format": "brain-ldm-generator", "version": 1,
        "grid": {"orientation": cfg["grid"]["orientation"], "shape": cfg["grid"]["shape"], "spacingMm": cfg["grid"]["spacing_mm"]},
        "labels": cfg["labels"],
        "mask": {"autoencoder": BUNDLE_NAME["mask-ae"], "unet": BUNDLE_NAME["mask-unet"], "latentShape": latent_shape(cfg, "mask-ae")},
        "image": {"autoencoder": BUNDLE_NAME["spade-ae"], "unet": BUNDLE_NAME["spade-unet"], "latentShape": latent_shape(cfg, "spade-ae")},
        "conditioning": {
            "quantity": "ventricle-icv-ratio", "ventricleLabels": cfg["ventricle_labels"],
            "ratioMin": cond["ratioMin"], "ratioMax": cond["ratioMax"], "referenceIcvMl": cond["referenceIcvMl"],
            "trainingVentricleMl": cond["trainingVentricleMl"],
            # Trained with the thesis' dropout ([uniform, 0] for 20% of rows); sampled cond rows first, as the thesis.
            "nullContext": {"convention": "thesis"}, "guidanceOrder": "cond-first",
        },
        "defaults": {"guidanceScale": float(exp["guidance_scale"]), "solver": exp["solver"], "steps": int(exp["steps"])},
        "calibration": None,
    }


def verification_inputs(cfg: dict, stage: str, seed: int = 7) -> dict[str, torch.Tensor]:
    """Seeded inputs of one generation step, by MONAI argument name (what run-network takes)."""
    g = torch.Generator().manual_seed(seed)
    grid = cfg["grid"]["shape"]
    labels = torch.tensor(cfg["labels"])
    seg = torch.nn.functional.one_hot(torch.randint(0, len(labels), (1, *grid), generator=g), len(labels)).movedim(-1, 1).float()
    if stage == "mask-ae":
        return {"z": torch.randn(1, *latent_shape(cfg, "mask-ae"), generator=g)}
    if stage == "spade-ae":
        return {"z": torch.randn(1, *latent_shape(cfg, "spade-ae"), generator=g), "seg": seg}
    if stage == "mask-unet":
        # Batch 2 as under classifier-free guidance: [volume, 1] and the thesis null [u, 0].
        return {"x": torch.randn(2, *latent_shape(cfg, "mask-ae"), generator=g), "timesteps": torch.tensor([500.0, 500.0]),
                "context": torch.tensor([[[0.5, 1.0]], [[0.3, 0.0]]])}
    return {"x": torch.randn(1, *latent_shape(cfg, "spade-ae"), generator=g), "timesteps": torch.tensor([500.0]), "seg": seg}


def torch_reference(net: torch.nn.Module, stage: str, inputs: dict[str, torch.Tensor]) -> torch.Tensor:
    with torch.no_grad():
        if stage == "mask-ae":
            return net.autoencoder.decode(inputs["z"])
        if stage == "spade-ae":
            return net.decode(inputs["z"], inputs["seg"])
        if stage == "mask-unet":
            return net(inputs["x"], inputs["timesteps"].long(), context=inputs["context"])
        return net(inputs["x"], inputs["timesteps"].long(), seg=inputs["seg"])


def verify(run: Path, cfg: dict, done: dict, out: Path, dtype: torch.dtype, tolerance: float, repeat: int,
           threads: int) -> list[dict]:
    results = []
    work = Path(tempfile.mkdtemp(prefix="verify-", dir=run))
    try:
        for stage in STAGES:
            name = BUNDLE_NAME[stage]
            if "keptFrom" in done[stage]:
                # Its PyTorch weights are not in this run; the check made when it was first exported comes along.
                source = Path(done[stage]["keptFrom"]["generator"])
                earlier = json.loads((source / "training.json").read_text()).get("verification") or []
                results += [{**r, "keptFrom": done[stage]["keptFrom"]} for r in earlier if r["bundle"] == name]
                continue
            net = build_network(stage, cfg).eval()
            # The exported values, computed in float32 (as brain-ldm computes with float16 weights).
            net.load_state_dict({k: v.float() if v.is_floating_point() else v
                                 for k, v in exported_state_dict(run, cfg, stage, dtype).items()})
            inputs = verification_inputs(cfg, stage)
            ref = torch_reference(net, stage, inputs)
            save_file({k: v.contiguous() for k, v in inputs.items()}, str(work / f"{name}-in.safetensors"))
            args = ["run-network", str(out / name), "--inputs", str(work / f"{name}-in.safetensors"),
                    "--out", str(work / f"{name}-out.safetensors"), "--threads", str(threads)]
            if repeat > 1:
                args += ["--repeat", str(repeat)]
            t0 = time.monotonic()
            stdout = run_brain_ldm(args)
            wall = time.monotonic() - t0
            got = load_file(str(work / f"{name}-out.safetensors"))["out"]
            rel = float(torch.linalg.vector_norm(got - ref) / torch.linalg.vector_norm(ref))
            r = {"bundle": name, "entry": "decode" if stage.endswith("ae") else "forward", "shape": list(ref.shape),
                 "relL2": rel, "maxAbs": float((got - ref).abs().max()), "wallSeconds": round(wall, 2),
                 "runNetwork": stdout.strip().splitlines()[-1] if stdout.strip() else ""}
            print(json.dumps(r), flush=True)
            if not rel <= tolerance:
                raise ExportError(f"{out / name}: brain-ldm's {r['entry']} differs from PyTorch by relative L2 {rel:.3g} "
                                  f"(tolerance {tolerance:g})")
            results.append(r)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return results


def install(staging: Path, out: Path, overwrite: bool) -> None:
    """Rename the finished directory into place; an existing generator is replaced only with --overwrite."""
    if out.exists():
        if not overwrite:
            raise ExportError(f"--out {out} already exists (pass --overwrite to replace it)")
        if not (out / "generator.json").exists():
            raise ExportError(f"--out {out} exists and is not a generator (no generator.json); refusing to replace it")
        old = out.with_name(f".{out.name}.old-{os.getpid()}")
        os.replace(out, old)
        os.replace(staging, out)
        shutil.rmtree(old)
    else:
        os.replace(staging, out)


def main(argv: list[str]) -> int:
    p = argparse.ArgumentParser(prog="export_generator.py", description=__doc__.split("\n\n")[0])
    p.add_argument("--run", required=True, type=Path, help="a train.py run directory with all four stages finished")
    p.add_argument("--out", required=True, type=Path, help="generator directory to create, e.g. models/cpu-reduced")
    p.add_argument("--overwrite", action="store_true", help="replace an existing generator at --out")
    p.add_argument("--verify", action="store_true", help="run each bundle with brain-ldm and compare with PyTorch")
    p.add_argument("--tolerance", type=float, default=1e-4, help="--verify: largest relative L2 error (default 1e-4)")
    p.add_argument("--repeat", type=int, default=1, help="--verify: time each network this many runs (median)")
    p.add_argument("--threads", type=int, default=2, help="--verify: brain-ldm and torch threads (default 2)")
    p.add_argument("--keep", action="append", choices=sorted(HALVES), default=[],
                   help="take this half's two bundles from --keep-from instead of from the run (repeatable)")
    p.add_argument("--keep-from", type=Path, help="--keep: the generator directory to take them from")
    a = p.parse_args(argv)
    try:
        if bool(a.keep) != bool(a.keep_from):
            raise ExportError("--keep and --keep-from go together (--keep image --keep-from models/default)")
        cfg, done = read_run(a.run, kept_stages(a.keep_from, a.keep, a.run) if a.keep else None)
        dtype_name = cfg["export"].get("dtype", "float32")
        if dtype_name not in DTYPES:
            raise ExportError(f"{a.run / 'config.json'}: field 'export.dtype' must be one of {', '.join(DTYPES)}, got {dtype_name!r}")
        dtype = DTYPES[dtype_name]
        a.out.parent.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=f".{a.out.name}.tmp-", dir=a.out.parent))
        staging.chmod(0o755)  # mkdtemp makes it private; the generator is meant to be shipped and read by anyone
        try:
            bundles = [write_bundle(a.run, cfg, done, stage, staging, dtype) for stage in STAGES]
            write_json_atomic(staging / "generator.json", generator_json(cfg, done))
            summary = {"config": cfg["name"], "weightsDtype": dtype_name, "bundles": bundles,
                       "totalWeightBytes": sum(b["bytes"] for b in bundles),
                       "stages": {s: {k: done[s][k] for k in ("steps", "epochs", "wallSeconds", "encodeSeconds", "truncated", "parameters", "lastEpoch", "keptFrom", "initFrom")
                                      if k in done[s]} for s in done}}
            for name in DATA_NOTICE_FILES:
                if (a.run / name).is_file():
                    shutil.copyfile(a.run / name, staging / f"training-data-{name}")
            if a.verify:
                torch.set_num_threads(a.threads)
                summary["verification"] = verify(a.run, cfg, done, staging, dtype, a.tolerance, a.repeat, a.threads)
            write_json_atomic(staging / "training.json", summary)
            install(staging, a.out, a.overwrite)
        except BaseException:
            shutil.rmtree(staging, ignore_errors=True)
            raise
    except (ExportError, ValueError) as e:
        print(f"export_generator.py: {e}", file=sys.stderr)
        return 1
    print(f"wrote {a.out}: {', '.join(b['bundle'] for b in bundles)}; weights {summary['totalWeightBytes'] / 1e6:.2f} MB ({dtype_name})")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
