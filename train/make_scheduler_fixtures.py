#!/usr/bin/env python3
"""Scheduler fixtures for brain-ldm's TypeScript schedulers (ts/schedulers/), made with MONAI's own schedulers.

For every case this runs a short deterministic sampling loop with the REAL scheduler classes on the CPU in
float32 and records every step:

    DDPM, DDIM, PNDM   monai.networks.schedulers (MONAI core 1.6.1)            semantics "monai-1.6"
                       generative.networks.schedulers (monai-generative 0.2.3)  semantics "generative-0.2.3"
    DPM-Solver++       diffusers' DPMSolverMultistepScheduler (algorithm_type "dpmsolver++", midpoint), fed
                       the MONAI scheduler's betas and alphas_cumprod (MONAI has no DPM-Solver)

The loop (also in test/schedulers/harness.ts):

    x = inputs[shape].sample
    for k, t in enumerate(scheduler.timesteps):
        out = x * float32(0.1 * (t + 1) / (t + 2)) + inputs[shape].base  # a deterministic fake network
        (learned variance types: out = cat([out, inputs[shape].var_learned | var_range], dim=1))
        noise = inputs[shape].noise[k % 8]   # what torch.randn returns inside step (patched), when it is called
        x, x0 = scheduler.step(out, t, x, ...)

Every core case is also run with generative 0.2.3 (same arguments); the index records whether the two agree bit
for bit and, if not, why (they differ in DDPM/DDIM set_timesteps, the cosine schedule, DDIM.reversed_step and
learned variance without a predicted variance). A selection of the differing cases is written as
"generative-0.2.3" fixtures too.

Outputs (committed, ~1 MB; regenerate with this script, the bytes are reproducible):
    test/fixtures/schedulers/index.json             cases: TS config, MONAI kwargs, steps, comparison notes
    test/fixtures/schedulers/inputs.safetensors     per shape: sample, base, noise [8, ...], var_learned, var_range
    test/fixtures/schedulers/schedules.safetensors  betas / alphas / alphas_cumprod of every schedule
    test/fixtures/schedulers/timesteps.safetensors  set_timesteps(n) of every scheduler for many n
    test/fixtures/schedulers/noising.safetensors    add_noise and get_velocity
    test/fixtures/schedulers/<case>.safetensors     timesteps, prev_sample [S, ...], pred_original_sample [S, ...]

Usage:
    .venv/bin/python train/make_scheduler_fixtures.py            # writes test/fixtures/schedulers/
    .venv/bin/python train/make_scheduler_fixtures.py --verify   # regenerates into a temp dir, compares bytes
    .venv/bin/python train/make_scheduler_fixtures.py --list

diffusers is not in train/requirements.txt (it would pull nothing heavy, but the venv stays as pinned); install
it and what it strictly needs beside the venv, without touching torch:
    .venv/bin/pip install --no-deps --target /tmp/pydeps-diffusers diffusers==0.42.1
    .venv/bin/pip install --target /tmp/pydeps-diffusers huggingface-hub==2.4.0 regex requests importlib_metadata Pillow
    PYTHONPATH=/tmp/pydeps-diffusers .venv/bin/python train/make_scheduler_fixtures.py
The script refuses to run without diffusers (the DPM-Solver++ fixtures would be lost otherwise).
"""

from __future__ import annotations

import argparse
import contextlib
import filecmp
import importlib.metadata as importlib_metadata
import json
import math
import os
import pathlib
import shutil
import sys
import tempfile
import warnings

warnings.filterwarnings("ignore")  # generative 0.2.3 and diffusers emit deprecation warnings on import

import numpy as np  # noqa: E402
import torch  # noqa: E402
from safetensors.torch import save_file  # noqa: E402

torch.set_num_threads(1)

import monai.config  # noqa: E402
import monai.networks.schedulers as M  # noqa: E402
from monai.utils.enums import IgniteInfo  # noqa: E402

# generative 0.2.3's generative.utils imports IgniteInfo from monai.config, where MONAI <= 1.3 kept it (the thesis
# pinned 1.3.0); MONAI 1.6 has it in monai.utils.enums only. Re-export it so the import works; the scheduler code
# itself is untouched.
if not hasattr(monai.config, "IgniteInfo"):
    monai.config.IgniteInfo = IgniteInfo
import generative.networks.schedulers as G  # noqa: E402

try:
    from diffusers.schedulers.scheduling_dpmsolver_multistep import DPMSolverMultistepScheduler  # noqa: E402
except Exception:  # noqa: BLE001
    DPMSolverMultistepScheduler = None

ROOT = pathlib.Path(__file__).resolve().parent.parent
OUT = ROOT / "test" / "fixtures" / "schedulers"

SHAPES = {"small": (2, 2, 3, 4), "one": (1, 2, 3, 4), "tiny": (1, 1, 2, 2)}
NOISE_BANK = 8
THESIS = dict(schedule="scaled_linear_beta", beta_start=0.0015, beta_end=0.0205)
SCHEDULES = {
    "linear": dict(schedule="linear_beta"),
    "scaled": dict(schedule="scaled_linear_beta", beta_start=0.0015, beta_end=0.0205),
    "sigmoid": dict(schedule="sigmoid_beta"),
    "cosine": dict(schedule="cosine"),
}
PREDS = {"eps": "epsilon", "x0": "sample", "v": "v_prediction"}
SEM_CORE, SEM_GEN = "monai-1.6", "generative-0.2.3"

# MONAI kwarg -> TS config field (ts/schedulers/index.ts schedulerConfigFromMonai uses the same table)
KW_TO_TS = {
    "num_train_timesteps": "numTrainTimesteps", "schedule": "schedule", "beta_start": "betaStart",
    "beta_end": "betaEnd", "sig_range": "sigRange", "s": "cosineS", "prediction_type": "predictionType",
    "variance_type": "varianceType", "clip_sample": "clipSample", "clip_sample_min": "clipSampleMin",
    "clip_sample_max": "clipSampleMax", "set_alpha_to_one": "setAlphaToOne", "steps_offset": "stepsOffset",
    "skip_prk_steps": "skipPrkSteps",
}
DPM_TO_TS = {"solver_order": "solverOrder", "lower_order_final": "lowerOrderFinal",
             "timestep_spacing": "timestepSpacing", "steps_offset": "stepsOffset",
             "final_sigmas_type": "finalSigmasType"}


def versions() -> dict:
    def v(pkg):
        try:
            return importlib_metadata.version(pkg)
        except importlib_metadata.PackageNotFoundError:
            return None

    return {"torch": torch.__version__, "monai": v("monai"), "generative": v("monai-generative"),
            "diffusers": v("diffusers"), "numpy": np.__version__, "python": sys.version.split()[0],
            "cpu_capability": torch.backends.cpu.get_cpu_capability()}


# ---------------------------------------------------------------------------------------------------------
# inputs

def make_inputs() -> dict:
    out = {}
    for i, (name, shape) in enumerate(SHAPES.items()):
        g = torch.Generator().manual_seed(1000 + i)
        out[name] = {
            "sample": torch.randn(shape, generator=g),
            "base": 0.5 * torch.randn(shape, generator=g),
            "noise": torch.randn((NOISE_BANK,) + shape, generator=g),
            "var_learned": 0.01 + 0.02 * torch.randn(shape, generator=g).abs(),
            "var_range": torch.tanh(torch.randn(shape, generator=g)),
        }
    return out


def model_output(x: torch.Tensor, t: int, base: torch.Tensor) -> torch.Tensor:
    # python float scalar -> float32 inside torch's mul; TS: Math.fround(0.1 * (t + 1) / (t + 2)).
    # The small weight on x keeps every scheduler formula well conditioned: with out ~ x (diffusers' dummy
    # sample * t / (t + 1)) the epsilon -> x0 conversion x - sqrt(1 - alphaBar) * out cancels to a few digits
    # near t = T, which turns torch's 1-ulp sqrt differences (MKL, not correctly rounded) into 1e-5 differences
    # that say nothing about the formulas.
    return x * (0.1 * (t + 1) / (t + 2)) + base


def with_variance(out: torch.Tensor, var: torch.Tensor) -> torch.Tensor:
    return torch.cat([out, var], dim=1)


class NoiseFeed:
    """Replaces torch.randn while a step runs: returns the given tensor and remembers that it was called."""

    def __init__(self):
        self.current = None
        self.calls = 0

    def __call__(self, *args, **kwargs):
        size = args[0] if args else kwargs.get("size")
        assert tuple(size) == tuple(self.current.shape), (size, self.current.shape)
        self.calls += 1
        return self.current.clone()


@contextlib.contextmanager
def fed_noise(feed: NoiseFeed, noise: torch.Tensor):
    real = torch.randn
    feed.current = noise
    feed.calls = 0
    torch.randn = feed
    try:
        yield
    finally:
        torch.randn = real


# ---------------------------------------------------------------------------------------------------------
# cases

def ts_config(kind: str, semantics: str, kwargs: dict, eta: float = 0.0, dpm: dict | None = None) -> dict:
    cfg = {"type": {"ddpm": "ddpm", "ddim": "ddim", "ddim-reversed": "ddim", "pndm": "pndm", "dpm": "dpm-solver++"}[kind],
           "semantics": semantics}
    for k, v in kwargs.items():
        cfg[KW_TO_TS[k]] = v
    if kind in ("ddim", "ddim-reversed") and eta:
        cfg["eta"] = eta
    for k, v in (dpm or {}).items():
        cfg[DPM_TO_TS[k]] = v
    return cfg


def case(name, kind, kwargs, n, shape="small", semantics=SEM_CORE, eta=0.0, model="plain", dpm=None, compare=True):
    return dict(name=name, kind=kind, kwargs=kwargs, n=n, shape=shape, semantics=semantics, eta=eta, model=model,
                dpm=dpm or {}, compare=compare)


def build_cases() -> list:
    cases = []
    # DDPM: schedule x prediction x variance type, then sweeps
    for sn, sk in SCHEDULES.items():
        for pn, pk in PREDS.items():
            for var in ("fixed_small", "fixed_large", "learned", "learned_range"):
                kw = dict(sk, prediction_type=pk, variance_type=var, clip_sample=False)
                cases.append(case(f"ddpm-{sn}-{pn}-{var}-n7", "ddpm", kw, 7,
                                  model={"learned": "learned", "learned_range": "learned_range"}.get(var, "plain")))
    cases += [
        case("ddpm-linear-eps-clip-n7", "ddpm", dict(prediction_type="epsilon", clip_sample=True), 7),
        case("ddpm-cosine-v-clip-n7", "ddpm", dict(schedule="cosine", prediction_type="v_prediction", clip_sample=True), 7),
        case("ddpm-scaled-eps-clipminmax-n7", "ddpm",
             dict(THESIS, prediction_type="epsilon", clip_sample=True, clip_sample_min=-0.5, clip_sample_max=0.8), 7),
        case("ddpm-linear-eps-learned_range-batch1-n5", "ddpm",
             dict(prediction_type="epsilon", variance_type="learned_range", clip_sample=False), 5, shape="one",
             model="learned_range-concat"),
        case("ddpm-linear-eps-learned-novariance-n5", "ddpm",
             dict(prediction_type="epsilon", variance_type="learned", clip_sample=False), 5),
        case("ddpm-linear-eps-n1", "ddpm", dict(clip_sample=False), 1),
        case("ddpm-linear-eps-n3", "ddpm", dict(clip_sample=False), 3),
        case("ddpm-thesis-eps-n50", "ddpm", dict(THESIS, clip_sample=False), 50),
        case("ddpm-linear-eps-n1000", "ddpm", dict(clip_sample=False), 1000, shape="tiny"),
        case("ddpm-thesis-eps-n1000", "ddpm", dict(THESIS, clip_sample=False), 1000, shape="tiny"),
        case("ddpm-linear-eps-T500-n9", "ddpm", dict(num_train_timesteps=500, clip_sample=False), 9),
    ]
    cases += [
        case("ddpm-linear-eps-n7", "ddpm", dict(clip_sample=False), 7, semantics=SEM_GEN),
        case("ddpm-cosine-eps-n7", "ddpm", dict(schedule="cosine", clip_sample=False), 7, semantics=SEM_GEN),
        case("ddpm-thesis-eps-n50", "ddpm", dict(THESIS, clip_sample=False), 50, semantics=SEM_GEN),
        case("ddpm-linear-eps-learned_range-n7", "ddpm",
             dict(prediction_type="epsilon", variance_type="learned_range", clip_sample=False), 7,
             semantics=SEM_GEN, model="learned_range"),
    ]
    # DDIM: schedule x prediction x eta, then sweeps
    for sn, sk in SCHEDULES.items():
        for pn, pk in PREDS.items():
            for eta in (0.0, 0.5):
                kw = dict(sk, prediction_type=pk, clip_sample=False)
                cases.append(case(f"ddim-{sn}-{pn}-eta{eta:g}-n10", "ddim", kw, 10, eta=eta))
    cases += [
        case("ddim-linear-eps-eta0-n50", "ddim", dict(clip_sample=False), 50),
        case("ddim-thesis-eps-eta0-n50", "ddim", dict(THESIS, clip_sample=False), 50),
        case("ddim-thesis-v-eta0.5-n50", "ddim", dict(THESIS, prediction_type="v_prediction", clip_sample=False), 50, eta=0.5),
        case("ddim-linear-x0-clip-n10", "ddim", dict(prediction_type="sample", clip_sample=True), 10),
        case("ddim-cosine-v-clipminmax-n10", "ddim",
             dict(schedule="cosine", prediction_type="v_prediction", clip_sample=True, clip_sample_min=-0.7,
                  clip_sample_max=0.9), 10),
        case("ddim-scaled-eps-offset1-alpha0-n10", "ddim",
             dict(THESIS, clip_sample=False, set_alpha_to_one=False, steps_offset=1), 10),
        case("ddim-linear-eps-n7", "ddim", dict(clip_sample=False), 7),
        case("ddim-linear-eps-n33", "ddim", dict(clip_sample=False), 33),
        case("ddim-linear-eps-eta1-n1", "ddim", dict(clip_sample=False), 1, eta=1.0),
        case("ddim-linear-eps-T500-n10", "ddim", dict(num_train_timesteps=500, clip_sample=False), 10),
        case("ddim-reversed-linear-eps-n10", "ddim-reversed", dict(clip_sample=False), 10),
        case("ddim-reversed-scaled-x0-n10", "ddim-reversed", dict(THESIS, prediction_type="sample", clip_sample=False), 10),
    ]
    cases += [
        case("ddim-linear-eps-eta0-n50", "ddim", dict(clip_sample=False), 50, semantics=SEM_GEN),
        case("ddim-thesis-eps-eta0.5-n50", "ddim", dict(THESIS, clip_sample=False), 50, eta=0.5, semantics=SEM_GEN),
        case("ddim-cosine-v-eta0-n10", "ddim", dict(schedule="cosine", prediction_type="v_prediction", clip_sample=False),
             10, semantics=SEM_GEN),
        case("ddim-scaled-eps-offset1-alpha0-n10", "ddim",
             dict(THESIS, clip_sample=False, set_alpha_to_one=False, steps_offset=1), 10, semantics=SEM_GEN),
        case("ddim-reversed-linear-eps-n10", "ddim-reversed", dict(clip_sample=False), 10, semantics=SEM_GEN),
        case("ddim-reversed-linear-eps-alpha0-n10", "ddim-reversed", dict(clip_sample=False, set_alpha_to_one=False),
             10, semantics=SEM_GEN),
    ]
    # PNDM: schedule x prediction (eps, v) x skip_prk_steps, then sweeps
    for sn, sk in SCHEDULES.items():
        for pn in ("eps", "v"):
            for skip in (False, True):
                kw = dict(sk, prediction_type=PREDS[pn], skip_prk_steps=skip)
                cases.append(case(f"pndm-{sn}-{pn}-{'skip' if skip else 'prk'}-n10", "pndm", kw, 10))
    cases += [
        case("pndm-thesis-eps-prk-n50", "pndm", dict(THESIS), 50),
        case("pndm-linear-eps-prk-n7", "pndm", dict(), 7),
        case("pndm-linear-eps-skip-n7", "pndm", dict(skip_prk_steps=True), 7),
        case("pndm-linear-eps-prk-n4", "pndm", dict(), 4),
        case("pndm-linear-eps-skip-n1", "pndm", dict(skip_prk_steps=True), 1),
        case("pndm-scaled-v-prk-offset1-alpha1-n10", "pndm",
             dict(THESIS, prediction_type="v_prediction", steps_offset=1, set_alpha_to_one=True), 10),
    ]
    cases += [
        case("pndm-cosine-eps-prk-n10", "pndm", dict(schedule="cosine"), 10, semantics=SEM_GEN),
    ]
    # DPM-Solver++ (diffusers) on the MONAI schedules
    for sn, sk in SCHEDULES.items():
        for pn, pk in PREDS.items():
            for spacing in ("linspace", "leading", "trailing"):
                kw = dict(sk, prediction_type=pk)
                cases.append(case(f"dpm-{sn}-{pn}-{spacing}-n10", "dpm", kw, 10, dpm=dict(timestep_spacing=spacing)))
    for n in (15, 20, 25):
        cases.append(case(f"dpm-thesis-eps-trailing-n{n}", "dpm", dict(THESIS), n, dpm=dict(timestep_spacing="trailing")))
    cases += [
        case("dpm-thesis-eps-order1-n10", "dpm", dict(THESIS), 10, dpm=dict(timestep_spacing="trailing", solver_order=1)),
        case("dpm-thesis-eps-sigmamin-n10", "dpm", dict(THESIS), 10,
             dpm=dict(timestep_spacing="trailing", final_sigmas_type="sigma_min")),
        case("dpm-thesis-eps-sigmamin-nolof-n10", "dpm", dict(THESIS), 10,
             dpm=dict(timestep_spacing="trailing", final_sigmas_type="sigma_min", lower_order_final=False)),
        case("dpm-thesis-v-sigmamin-nolof-n20", "dpm", dict(THESIS, prediction_type="v_prediction"), 20,
             dpm=dict(timestep_spacing="linspace", final_sigmas_type="sigma_min", lower_order_final=False)),
        case("dpm-linear-eps-leading-offset1-n10", "dpm", dict(), 10, dpm=dict(timestep_spacing="leading", steps_offset=1)),
        case("dpm-linear-eps-trailing-n1", "dpm", dict(), 1, dpm=dict(timestep_spacing="trailing")),
        case("dpm-linear-eps-trailing-n61", "dpm", dict(), 61, shape="tiny", dpm=dict(timestep_spacing="trailing")),
        case("dpm-cosine-eps-trailing-n10", "dpm", dict(schedule="cosine"), 10, semantics=SEM_GEN,
             dpm=dict(timestep_spacing="trailing")),
    ]
    names = [c["name"] + "@" + c["semantics"] for c in cases]
    assert len(names) == len(set(names)), "duplicate case names"
    return cases


def file_name(c) -> str:
    return f"{c['name']}{'' if c['semantics'] == SEM_CORE else '.generative'}"


# ---------------------------------------------------------------------------------------------------------
# running MONAI / diffusers

def monai_class(kind: str, semantics: str):
    mod = M if semantics == SEM_CORE else G
    return {"ddpm": mod.DDPMScheduler, "ddim": mod.DDIMScheduler, "ddim-reversed": mod.DDIMScheduler,
            "pndm": mod.PNDMScheduler, "dpm": mod.DDPMScheduler}[kind]


def make_monai(kind, semantics, kwargs):
    kw = dict(kwargs)
    if semantics == SEM_GEN:
        if "clip_sample_min" in kw or "clip_sample_max" in kw:
            raise TypeError("monai-generative 0.2.3 has no clip_sample_min/max")
    if kind == "dpm":
        kw = {k: v for k, v in kw.items() if k in ("num_train_timesteps", "schedule", "beta_start", "beta_end")}
    return monai_class(kind, semantics)(**kw)


def make_dpm(c, monai_sched):
    if DPMSolverMultistepScheduler is None:
        raise RuntimeError("diffusers is not importable (see the module docstring)")
    T = monai_sched.num_train_timesteps
    s = DPMSolverMultistepScheduler(
        num_train_timesteps=T, trained_betas=monai_sched.betas.numpy(), solver_order=c["dpm"].get("solver_order", 2),
        prediction_type=c["kwargs"].get("prediction_type", "epsilon"), algorithm_type="dpmsolver++",
        solver_type="midpoint", lower_order_final=c["dpm"].get("lower_order_final", True),
        timestep_spacing=c["dpm"].get("timestep_spacing", "linspace"), steps_offset=c["dpm"].get("steps_offset", 0),
        final_sigmas_type=c["dpm"].get("final_sigmas_type", "zero"))
    # Use MONAI's alphas_cumprod (generative's cosine one is not cumprod(1 - betas)); recompute what
    # DPMSolverMultistepScheduler.__init__ derives from it, with its own expressions.
    ac = monai_sched.alphas_cumprod.clone()
    s.alphas_cumprod = ac
    s.alpha_t = torch.sqrt(ac)
    s.sigma_t = torch.sqrt(1 - ac)
    s.lambda_t = torch.log(s.alpha_t) - torch.log(s.sigma_t)
    s.sigmas = ((1 - ac) / ac) ** 0.5
    return s


def run_case(c, inputs) -> dict:
    """Runs one case; returns timesteps, prev [S, ...], x0 [S, ...] or None (PNDM)."""
    inp = inputs[c["shape"]]
    x = inp["sample"].clone()
    base = inp["base"]
    feed = NoiseFeed()
    monai_sched = make_monai(c["kind"], c["semantics"], c["kwargs"])
    kind = c["kind"]
    prevs, x0s = [], []
    if kind == "dpm":
        sched = make_dpm(c, monai_sched)
        sched.set_timesteps(c["n"])
        timesteps = [int(t) for t in sched.timesteps]
        for k, t in enumerate(sched.timesteps):
            out = model_output(x, int(t), base)
            x = sched.step(out, t, x).prev_sample
            prevs.append(x.clone())
            x0s.append(sched.model_outputs[-1].clone())
        return dict(timesteps=timesteps, prev=torch.stack(prevs), x0=torch.stack(x0s))
    sched = monai_sched
    sched.set_timesteps(c["n"])
    timesteps = [int(t) for t in sched.timesteps]
    if kind == "ddim-reversed":
        ratio = sched.num_train_timesteps // sched.num_inference_steps
        timesteps = [t for t in reversed(timesteps)
                     if c["semantics"] == SEM_GEN or t + ratio < sched.num_train_timesteps]
    for k, t in enumerate(timesteps):
        out = model_output(x, t, base)
        if c["model"] in ("learned", "learned_range", "learned_range-concat"):
            out = with_variance(out, inp["var_learned" if c["model"] == "learned" else "var_range"])
        noise = inp["noise"][k % NOISE_BANK]
        with fed_noise(feed, noise):
            if kind == "ddpm":
                x, x0 = sched.step(out, t, x)
                assert feed.calls == (1 if t > 0 else 0), (c["name"], t, feed.calls)
            elif kind == "ddim":
                x, x0 = sched.step(out, t, x, eta=c["eta"])
                assert feed.calls == (1 if c["eta"] > 0 else 0)
            elif kind == "ddim-reversed":
                x, x0 = sched.reversed_step(out, t, x)
            else:
                x, x0 = sched.step(out, t, x)
                assert x0 is None
        prevs.append(x.clone())
        if x0 is not None:
            x0s.append(x0.clone())
    return dict(timesteps=timesteps, prev=torch.stack(prevs), x0=torch.stack(x0s) if x0s else None)


def same_bits(a: torch.Tensor | None, b: torch.Tensor | None) -> bool:
    if a is None or b is None:
        return a is None and b is None
    return a.shape == b.shape and torch.equal(a.view(torch.int32), b.view(torch.int32))


def compare_generative(c, core_result, inputs) -> dict:
    """Runs the generative 0.2.3 twin of a core case and says whether and why it differs."""
    if c["kind"] == "dpm":
        gsched = make_monai("ddpm", SEM_GEN, c["kwargs"])
        csched = make_monai("ddpm", SEM_CORE, c["kwargs"])
        same = same_bits(gsched.alphas_cumprod, csched.alphas_cumprod)
        return {"identical": same, "note": "same alphas_cumprod" if same else "alphas_cumprod differ (cosine schedule)"}
    g = dict(c, semantics=SEM_GEN)
    try:
        gres = run_case(g, inputs)
    except Exception as e:  # noqa: BLE001
        return {"identical": False, "note": f"generative 0.2.3 raises {type(e).__name__}: {str(e)[:160]}"}
    reasons = []
    if gres["timesteps"] != core_result["timesteps"]:
        reasons.append("timesteps differ")
    if c["kwargs"].get("schedule") == "cosine":
        reasons.append("cosine schedule differs")
    same = (gres["timesteps"] == core_result["timesteps"] and same_bits(gres["prev"], core_result["prev"])
            and same_bits(gres["x0"], core_result["x0"]))
    if same:
        return {"identical": True, "note": "bit-identical"}
    if gres["prev"].shape == core_result["prev"].shape:
        d = (gres["prev"] - core_result["prev"]).abs()
        diff = float(d[~torch.isnan(d)].max()) if (~torch.isnan(d)).any() else float("nan")
    else:
        diff = None
    if diff is not None and not math.isfinite(diff):
        diff = None
    return {"identical": False, "note": "; ".join(reasons) or "values differ", "maxAbsDiffPrev": diff}


# ---------------------------------------------------------------------------------------------------------
# side fixtures

def schedules_fixture():
    tensors, entries = {}, []
    variants = [
        ("linear", SEM_CORE, dict(schedule="linear_beta")),
        ("scaled-thesis", SEM_CORE, dict(THESIS)),
        ("scaled-default", SEM_CORE, dict(schedule="scaled_linear_beta")),
        ("sigmoid", SEM_CORE, dict(schedule="sigmoid_beta")),
        ("sigmoid-r4", SEM_CORE, dict(schedule="sigmoid_beta", beta_start=0.0015, beta_end=0.0205, sig_range=4)),
        ("cosine", SEM_CORE, dict(schedule="cosine")),
        ("cosine", SEM_GEN, dict(schedule="cosine")),
        ("cosine-s0.02-T50", SEM_CORE, dict(schedule="cosine", s=0.02, num_train_timesteps=50)),
        ("cosine-s0.02-T50", SEM_GEN, dict(schedule="cosine", s=0.02, num_train_timesteps=50)),
        ("linear-T10", SEM_CORE, dict(schedule="linear_beta", num_train_timesteps=10, beta_start=0.001, beta_end=0.2)),
    ]
    for name, sem, kw in variants:
        s = make_monai("ddpm", sem, kw)
        key = f"{name}.{sem}"
        for attr in ("betas", "alphas", "alphas_cumprod"):
            tensors[f"{key}.{attr}"] = getattr(s, attr).to(torch.float32).contiguous()
        if sem == SEM_CORE:  # the three beta schedules are identical in generative 0.2.3
            gs = make_monai("ddpm", SEM_GEN, kw)
            same = all(same_bits(getattr(s, a), getattr(gs, a)) for a in ("betas", "alphas", "alphas_cumprod"))
        else:
            same = None
        cfg = {KW_TO_TS[k]: v for k, v in kw.items()}
        cfg.setdefault("numTrainTimesteps", 1000)
        entries.append({"key": key, "semantics": sem, "config": cfg, "generativeIdentical": same})
    return tensors, entries


TIMESTEP_NS = list(range(1, 61)) + [61, 64, 99, 100, 103, 121, 127, 250, 333, 500, 999, 1000]


def timesteps_fixture():
    tensors, entries = {}, []
    variants = []
    for sem in (SEM_CORE, SEM_GEN):
        variants.append(("ddpm", sem, {}, {}))
        variants.append(("ddim", sem, {}, {}))
        variants.append(("ddim", sem, {"steps_offset": 1}, {}))
        variants.append(("pndm", sem, {}, {}))
        variants.append(("pndm", sem, {"skip_prk_steps": True}, {}))
    variants.append(("ddim", SEM_CORE, {"num_train_timesteps": 500, "steps_offset": 3}, {}))
    for spacing in ("linspace", "leading", "trailing"):
        variants.append(("dpm", SEM_CORE, {}, {"timestep_spacing": spacing}))
    variants.append(("dpm", SEM_CORE, {}, {"timestep_spacing": "leading", "steps_offset": 1}))
    variants.append(("dpm", SEM_CORE, {"num_train_timesteps": 500}, {"timestep_spacing": "trailing"}))
    for i, (kind, sem, kw, dpm) in enumerate(variants):
        if kind == "dpm" and DPMSolverMultistepScheduler is None:
            continue
        T = kw.get("num_train_timesteps", 1000)
        ns = [n for n in TIMESTEP_NS if n <= T and not (kind == "pndm" and not kw.get("skip_prk_steps") and n < 4)]
        flat, lengths = [], []
        for n in ns:
            if kind == "dpm":
                s = make_dpm(dict(kwargs=kw, dpm=dpm), make_monai("ddpm", sem, kw))
            else:
                s = make_monai(kind, sem, kw)
            s.set_timesteps(n)
            ts = [int(t) for t in s.timesteps]
            flat += ts
            lengths.append(len(ts))
        key = f"v{i}"
        tensors[f"{key}.timesteps"] = torch.tensor(flat, dtype=torch.int16)  # all in [-1, 1002]
        tensors[f"{key}.lengths"] = torch.tensor(lengths, dtype=torch.int32)
        entries.append({"key": key, "config": ts_config(kind, sem, kw, dpm=dpm), "n": ns})
    return tensors, entries


def noising_fixture(inputs):
    tensors, entries = {}, []
    inp = inputs["small"]
    tlist = [[10, 999], [500, 0], [999, 999]]
    for name, sem, kw in [("linear", SEM_CORE, dict(schedule="linear_beta")), ("scaled-thesis", SEM_CORE, dict(THESIS)),
                          ("sigmoid", SEM_CORE, dict(schedule="sigmoid_beta")), ("cosine", SEM_CORE, dict(schedule="cosine")),
                          ("cosine", SEM_GEN, dict(schedule="cosine"))]:
        s = make_monai("ddpm", sem, kw)
        for j, ts in enumerate(tlist):
            t = torch.tensor(ts, dtype=torch.long)
            key = f"{name}.{sem}.{j}"
            tensors[f"{key}.add_noise"] = s.add_noise(inp["sample"], inp["noise"][1], t).contiguous()
            tensors[f"{key}.velocity"] = s.get_velocity(inp["sample"], inp["noise"][2], t).contiguous()
            cfg = {KW_TO_TS[k]: v for k, v in kw.items()}
            entries.append({"key": key, "config": dict(cfg, type="ddpm", semantics=sem), "t": ts})
    return tensors, entries


# ---------------------------------------------------------------------------------------------------------

def generate(out: pathlib.Path, only: list | None = None) -> dict:
    out.mkdir(parents=True, exist_ok=True)
    inputs = make_inputs()
    in_t = {}
    for sname, d in inputs.items():
        for k, v in d.items():
            in_t[f"{sname}.{k}"] = v.contiguous()
    save_file(in_t, str(out / "inputs.safetensors"))
    st, se = schedules_fixture()
    save_file(st, str(out / "schedules.safetensors"))
    tt, te = timesteps_fixture()
    save_file(tt, str(out / "timesteps.safetensors"))
    nt, ne = noising_fixture(inputs)
    save_file(nt, str(out / "noising.safetensors"))

    index_cases = []
    for c in build_cases():
        if only and c["name"] not in only:
            continue
        if c["kind"] == "dpm" and DPMSolverMultistepScheduler is None:
            print(f"skip {c['name']}: diffusers not importable", file=sys.stderr)
            continue
        res = run_case(c, inputs)
        tensors = {"timesteps": torch.tensor(res["timesteps"], dtype=torch.int32), "prev_sample": res["prev"].contiguous()}
        if res["x0"] is not None:
            tensors["pred_original_sample"] = res["x0"].contiguous()
        fname = file_name(c)
        save_file(tensors, str(out / f"{fname}.safetensors"))
        entry = {
            "name": c["name"], "file": f"{fname}.safetensors", "kind": c["kind"], "semantics": c["semantics"],
            "config": ts_config(c["kind"], c["semantics"], c["kwargs"], c["eta"], c["dpm"]),
            "monaiKwargs": c["kwargs"], "numInferenceSteps": c["n"], "inputs": c["shape"], "model": c["model"],
            "steps": len(res["timesteps"]),
            "nonFinite": bool(not torch.isfinite(res["prev"]).all()),
            "reference": ("diffusers " + str(versions()["diffusers"]) + " DPMSolverMultistepScheduler" if c["kind"] == "dpm"
                          else ("monai " if c["semantics"] == SEM_CORE else "monai-generative ")
                          + str(versions()["monai" if c["semantics"] == SEM_CORE else "generative"])),
        }
        if c["kind"] == "ddim":
            entry["eta"] = c["eta"]
        if c["semantics"] == SEM_CORE and c["compare"]:
            entry["generative"] = compare_generative(c, res, inputs)
        index_cases.append(entry)
        print(f"{fname}: {entry['steps']} steps" + (f"; generative: {entry['generative']['note']}" if "generative" in entry else ""))

    index = {
        "about": "MONAI (core 1.6.1 and generative 0.2.3) and diffusers scheduler outputs for test/schedulers; "
                 "made by train/make_scheduler_fixtures.py",
        "versions": versions(),
        "model": "out = x * float32(0.1 * (t + 1) / (t + 2)) + inputs[shape].base; learned: cat([out, var_learned], 1); "
                 "learned_range: cat([out, var_range], 1); noise at step k = inputs[shape].noise[k % 8]",
        "noiseBank": NOISE_BANK,
        "shapes": {k: list(v) for k, v in SHAPES.items()},
        "schedules": se, "timesteps": te, "noising": ne, "cases": index_cases,
    }
    # one line per list entry: readable diffs without a 100 kB file of indentation
    body = ",\n".join(
        f" {json.dumps(k)}: " + (("[\n" + ",\n".join("  " + json.dumps(e, allow_nan=False) for e in v) + "\n ]")
                                 if isinstance(v, list) else json.dumps(v, allow_nan=False))
        for k, v in index.items())
    (out / "index.json").write_text("{\n" + body + "\n}\n")
    total = sum(p.stat().st_size for p in out.iterdir())
    print(f"{len(index_cases)} cases, {total / 1e6:.2f} MB in {out}")
    return index


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", type=pathlib.Path, default=OUT)
    ap.add_argument("--only", help="comma-separated case names (debugging; needs --out elsewhere)")
    ap.add_argument("--list", action="store_true")
    ap.add_argument("--verify", action="store_true", help="regenerate into a temp dir and compare with --out byte for byte")
    a = ap.parse_args()
    if DPMSolverMultistepScheduler is None and not a.list:
        sys.exit("make_scheduler_fixtures: diffusers is not importable; install it beside the venv (see the module "
                 "docstring: pip install --no-deps --target /tmp/pydeps-diffusers diffusers==0.42.1 ...) and run with "
                 "PYTHONPATH=/tmp/pydeps-diffusers")
    if a.only and a.out.resolve() == OUT.resolve():
        sys.exit("make_scheduler_fixtures: --only writes a partial index.json; give --out DIR (not the committed fixtures)")
    if a.list:
        for c in build_cases():
            print(file_name(c))
        return
    if a.verify:
        with tempfile.TemporaryDirectory() as d:
            generate(pathlib.Path(d))
            bad = [f.name for f in sorted(pathlib.Path(d).iterdir())
                   if not (a.out / f.name).exists() or not filecmp.cmp(f, a.out / f.name, shallow=False)]
            extra = sorted({p.name for p in a.out.iterdir()} - {p.name for p in pathlib.Path(d).iterdir()})
            if bad or extra:
                print(f"differ: {bad}; not generated: {extra}", file=sys.stderr)
                sys.exit(1)
            print("fixtures reproduce byte for byte")
        return
    if a.out.exists() and not a.only:
        for p in a.out.glob("*.safetensors"):
            p.unlink()
    generate(a.out, a.only.split(",") if a.only else None)


if __name__ == "__main__":
    main()
