"""Reference sampling loops for test/pipeline/sample-latent.spec.ts.

Runs the thesis's mask-LDM sampling loop (T:src/evaluation.py DiffusionModelEvaluator.get_synthetic_output, see
MONAI-COMPAT.md 1.3) in PyTorch with monai-generative 0.2.3's own schedulers and DiffusionModelUNet, on the
`mask_unet_thesis` parity case (thesis mask UNet structure with reduced channels and seeded random weights,
made by train/make_parity_fixtures.py):

    scheduler.set_timesteps(n)
    latent = initial noise [1, 3, D, H, W]
    for t in scheduler.timesteps:
        if w == 1:  eps = unet(latent, timesteps=torch.Tensor((t,)), context=[v, 1])           # single pass
        else:       out = unet(cat([latent, latent]), timesteps=torch.Tensor((t,)),
                               context=cat([[v, 1], [u, 0]]))   # cond first, uncond second; ONE scalar u
                    eps_cond, eps_uncond = out.chunk(2); eps = eps_uncond + w * (eps_cond - eps_uncond)
        latent, _ = scheduler.step(eps, t, latent)          # DDPM: noise from a seeded generator, recorded

Writes test/fixtures/sampling/<case>.safetensors (float32 tensors: initial_noise, context_cond, context_uncond,
u, timesteps, latent.<i> after step i, noise.<i> where DDPM drew noise at step i, final) and
test/fixtures/sampling/index.json (per case: scheduler config, steps, guidance scale, timesteps, shapes, the
parity case and a digest of its model.pth). The outputs are small (< 1 MB in all) and committed; the parity
fixture they need is generated, not committed.

    .venv/bin/python train/make_parity_fixtures.py --only mask_unet_thesis   # if not generated yet
    .venv/bin/python train/make_sampling_fixtures.py [--parity-dir DIR] [--out DIR]
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import sys
import warnings

warnings.filterwarnings("ignore")  # generative 0.2.3 emits torch.cuda.amp deprecation warnings on import

import torch  # noqa: E402
from safetensors.torch import save_file  # noqa: E402

torch.set_num_threads(2)
torch.use_deterministic_algorithms(True, warn_only=True)

import monai.config  # noqa: E402
from monai.utils.enums import IgniteInfo  # noqa: E402

# generative 0.2.3's generative.utils (imported by its schedulers) takes IgniteInfo from monai.config, where
# MONAI <= 1.3 kept it; MONAI 1.6 moved it to monai.utils.enums (same shim as train/make_scheduler_fixtures.py).
if not hasattr(monai.config, "IgniteInfo"):
    monai.config.IgniteInfo = IgniteInfo

import generative.networks.nets as G  # noqa: E402
from generative.networks.schedulers import DDIMScheduler, DDPMScheduler, PNDMScheduler  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PARITY_CASE = "mask_unet_thesis"

# The thesis schedule (every thesis script): scaled_linear_beta 0.0015..0.0205, T = 1000, clip_sample False,
# prediction epsilon (default); DDIM/PNDM keep their MONAI defaults otherwise.
SCHEDULE = dict(num_train_timesteps=1000, schedule="scaled_linear_beta", beta_start=0.0015, beta_end=0.0205)

CASES = [
    dict(name="ddim5_w3", scheduler="ddim", steps=5, guidance=3.0, seed=101),
    dict(name="ddim5_w1", scheduler="ddim", steps=5, guidance=1.0, seed=102),
    dict(name="ddpm5_w3", scheduler="ddpm", steps=5, guidance=3.0, seed=103),
    dict(name="pndm6_w2", scheduler="pndm", steps=6, guidance=2.0, seed=104),
]


def make_scheduler(kind: str):
    if kind == "ddim":
        return DDIMScheduler(**SCHEDULE, clip_sample=False), dict(type="ddim", clipSample=False)
    if kind == "ddpm":
        return DDPMScheduler(**SCHEDULE, clip_sample=False), dict(type="ddpm", clipSample=False)
    if kind == "pndm":
        return PNDMScheduler(**SCHEDULE, skip_prk_steps=True), dict(type="pndm", skipPrkSteps=True)
    raise ValueError(kind)


@torch.no_grad()
def run_case(unet: torch.nn.Module, case: dict, latent_shape: list[int]) -> tuple[dict, dict]:
    gen = torch.Generator().manual_seed(case["seed"])
    initial = torch.randn(latent_shape, generator=gen)
    v = torch.rand((), generator=gen)
    u = torch.rand((), generator=gen)  # the thesis's ONE torch.rand(()) for the whole unconditional half
    cond = torch.stack([v, torch.tensor(1.0)]).reshape(1, 1, 2).expand(latent_shape[0], 1, 2).contiguous()
    uncond = torch.stack([u, torch.tensor(0.0)]).reshape(1, 1, 2).expand(latent_shape[0], 1, 2).contiguous()
    w = case["guidance"]

    scheduler, ts_config = make_scheduler(case["scheduler"])
    scheduler.set_timesteps(case["steps"])
    timesteps = [int(t) for t in scheduler.timesteps]
    noise_gen = torch.Generator().manual_seed(case["seed"] + 1000)

    tensors: dict[str, torch.Tensor] = {
        "initial_noise": initial.clone(),
        "context_cond": cond.clone(),
        "context_uncond": uncond.clone(),
        "u": u.reshape(1).clone(),
        "v": v.reshape(1).clone(),
        "timesteps": torch.tensor(timesteps, dtype=torch.float32),
    }
    noise_steps = []
    latent = initial
    for i, t in enumerate(scheduler.timesteps):
        tt = torch.Tensor((t,))  # what DiffusionInferer.sample passes: float, shape (1,)
        if w == 1.0:
            eps = unet(latent, timesteps=tt, context=cond)
        else:
            out = unet(torch.cat([latent, latent]), timesteps=tt, context=torch.cat([cond, uncond]))
            eps_cond, eps_uncond = out.chunk(2)
            eps = eps_uncond + w * (eps_cond - eps_uncond)
        if case["scheduler"] == "ddpm":
            # Record exactly the noise MONAI draws: peek with a copy of the generator state, then let step() draw.
            state = noise_gen.get_state()
            if int(t) > 0:
                tensors[f"noise.{i}"] = torch.randn(eps.size(), dtype=eps.dtype, generator=noise_gen)
                noise_steps.append(i)
            noise_gen.set_state(state)
            latent, _ = scheduler.step(eps, t, latent, generator=noise_gen)
        else:
            latent, _ = scheduler.step(eps, t, latent)
        tensors[f"latent.{i}"] = latent.clone()
    tensors["final"] = latent.clone()

    meta = dict(
        name=case["name"], scheduler=ts_config, monai_scheduler=case["scheduler"], steps=case["steps"],
        guidance_scale=w, order="cond,uncond", timesteps=timesteps, latent_shape=latent_shape,
        noise_steps=noise_steps, u=float(u), v=float(v), seed=case["seed"],
    )
    return tensors, meta


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--parity-dir", default=os.path.join(ROOT, "test", "fixtures", "parity"))
    ap.add_argument("--out", default=os.path.join(ROOT, "test", "fixtures", "sampling"))
    args = ap.parse_args()

    cdir = os.path.join(args.parity_dir, PARITY_CASE)
    if not os.path.isfile(os.path.join(cdir, "model.pth")):
        print(f"{cdir}/model.pth is missing: run train/make_parity_fixtures.py --only {PARITY_CASE}", file=sys.stderr)
        return 1
    with open(os.path.join(cdir, "case.json")) as f:
        pcase = json.load(f)
    unet = G.DiffusionModelUNet(**pcase["args"]).eval()
    obj = torch.load(os.path.join(cdir, "model.pth"), map_location="cpu", weights_only=True)
    sd = obj["model"] if pcase["container"] == "model_key" else obj
    unet.load_state_dict({k: v.float() for k, v in sd.items()}, strict=True)
    with open(os.path.join(cdir, "model.pth"), "rb") as f:
        model_sha = hashlib.sha256(f.read()).hexdigest()

    # One latent (batch 1) of the spatial size the parity fixture exercised.
    latent_shape = [1] + list(pcase["tensor_shapes"]["forward.x"][1:])

    os.makedirs(args.out, exist_ok=True)
    metas = []
    total = 0
    for case in CASES:
        tensors, meta = run_case(unet, case, latent_shape)
        path = os.path.join(args.out, f"{case['name']}.safetensors")
        save_file({k: v.contiguous().float() for k, v in tensors.items()}, path)
        os.chmod(path, 0o644)  # safetensors creates it 0600
        size = os.path.getsize(path)
        total += size
        metas.append(meta)
        print(f"  {case['name']}: {len(meta['timesteps'])} steps {meta['timesteps']}, {size / 1024:.1f} KiB")

    index = dict(
        parity_case=PARITY_CASE, parity_model_sha256=model_sha,
        schedule=dict(numTrainTimesteps=1000, schedule="scaled_linear_beta", betaStart=0.0015, betaEnd=0.0205,
                      predictionType="epsilon", semantics="generative-0.2.3"),
        versions=dict(torch=torch.__version__, generative=_version("monai-generative"), monai=_version("monai")),
        notes=[
            "context_cond = [v, 1], context_uncond = [u, 0] with ONE scalar u per sampling call (thesis null condition)",
            "guided batch = [cond, uncond] (thesis order); eps = uncond + w * (cond - uncond); w = 1: one conditional pass",
            "timesteps passed to the UNet as torch.Tensor((t,)): float32, shape (1,)",
            "latent.<i> is the latent after step i; noise.<i> the DDPM noise drawn at step i (t > 0 only)",
        ],
        cases=metas,
    )
    with open(os.path.join(args.out, "index.json"), "w") as f:
        json.dump(index, f, indent=2)
        f.write("\n")
    print(f"wrote {len(metas)} cases to {args.out}, {total / 1024:.1f} KiB")
    if total >= 1 << 20:
        print("sampling fixtures exceed 1 MB", file=sys.stderr)
        return 1
    return 0


def _version(dist: str) -> str:
    import importlib.metadata as md
    try:
        return md.version(dist)
    except md.PackageNotFoundError:
        return "unknown"


if __name__ == "__main__":
    sys.exit(main())
