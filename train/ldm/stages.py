"""The four training stages of the recipe (MONAI-COMPAT.md 1.3-1.4), scaled by the run config.

One loop serves all four: a stage supplies its network, its item count and a function from a batch of item
indices to (loss, named parts). The loop owns epochs, seeded shuffling, checkpoints, the log and wall time.
"""
from __future__ import annotations

import json
import math
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np
import torch
import torch.nn.functional as F
from monai.networks.schedulers import DDPMScheduler
from monai.utils import set_determinism

from .conditioning import conditioning_stats, normalised_volume, training_context, volume_measures
from .config import write_json_atomic
from .data import LabelSet, PairSet, labels_to_indices, one_hot
from .networks import ALL_STAGES, build_network, parameter_count
from .run_state import RunLog, StageFiles

KL_DIMS = (1, 2, 3, 4)


@dataclass
class RunContext:
    run_dir: Path
    cfg: dict
    device: torch.device
    log: RunLog
    max_steps: int | None = None      # smoke runs: stop each stage after this many optimizer steps


@dataclass
class TrainingData:
    labels: LabelSet
    pairs: PairSet | None
    heldout_labels: LabelSet | None
    heldout_pairs: PairSet | None


BatchFn = Callable[[torch.nn.Module, np.ndarray], tuple[torch.Tensor, dict[str, float]]]


def kl_divergence(mu: torch.Tensor, sigma: torch.Tensor) -> torch.Tensor:
    """KL(N(mu, sigma) || N(0, 1)) summed over latent voxels, mean over the batch (the MONAI/thesis form)."""
    return (0.5 * (mu.pow(2) + sigma.pow(2) - torch.log(sigma.pow(2)) - 1).sum(KL_DIMS)).mean()


def _stage_seed(cfg: dict, stage: str) -> int:
    return int(cfg["seed"]) * 10 + ALL_STAGES.index(stage)


def init_run_dir(ctx: RunContext, stage: str) -> Path:
    """`init_from` names a finished run; a relative name is a sibling of this run's directory (runs/<name>)."""
    p = Path(ctx.cfg[stage]["train"]["init_from"])
    return p if p.is_absolute() else ctx.run_dir.parent / p


def load_initial_weights(ctx: RunContext, stage: str, net: torch.nn.Module) -> dict:
    """Starts `stage` from the same stage of another run (fine-tuning with a new schedule or more steps). The source
    must have finished that stage with the same network, or the weights would load into a different model."""
    src = init_run_dir(ctx, stage)
    where = f"{stage}.train.init_from"
    files = StageFiles.existing(src, stage)
    if files is None or not files.is_done():
        raise ValueError(f"{where}: {src} has no finished {stage} ({src / stage / StageFiles.DONE} is missing)")
    src_cfg = json.loads((src / "config.json").read_text())
    # The grid and the scheduler too: a UNet's weights mean something only for its latent grid and its target.
    fields = [(f"{stage}.{k}", lambda c, k=k: c[stage].get(k)) for k in ("network", "embedding")]
    fields += [(k, lambda c, k=k: c.get(k)) for k in ("grid", "scheduler")]
    for name, get in fields:
        if get(src_cfg) != get(ctx.cfg):
            raise ValueError(f"{where}: {src}/config.json field '{name}' is {json.dumps(get(src_cfg))}, "
                             f"this config's is {json.dumps(get(ctx.cfg))}; they must be equal")
    net.load_state_dict(torch.load(files.model, map_location="cpu", weights_only=True)["model"])
    done = files.read_done()
    return {"run": str(src), "config": src_cfg.get("name"), "steps": done.get("steps"),
            "lastEpoch": done.get("lastEpoch", {})}


def learning_rate_schedule(tcfg: dict, total_steps: int) -> Callable[[int], float]:
    """`lr_schedule: constant` (the default) or `cosine`: lr -> lr_min over the stage's steps (Loshchilov & Hutter's
    SGDR without restarts). A stage that starts from another run's weights (`init_from`) needs the decay: at a
    constant rate its held-out loss stops at the level the noise of the steps allows (train/README.md, "v6")."""
    lr = float(tcfg["lr"])
    if tcfg.get("lr_schedule", "constant") == "constant":
        return lambda step: lr
    lr_min = float(tcfg.get("lr_min", 0.0))
    return lambda step: lr_min + (lr - lr_min) * 0.5 * (1 + math.cos(math.pi * min(step, total_steps) / total_steps))


def run_training_loop(ctx: RunContext, stage: str, net: torch.nn.Module, n_items: int, batch_fn: BatchFn,
                      validate: Callable[[torch.nn.Module], dict[str, float]] | None = None) -> dict:
    """Trains `net` in place; resumes from <run>/<stage>/checkpoint.pt when there is one. Returns the stage totals."""
    tcfg = ctx.cfg[stage]["train"]
    files = StageFiles(ctx.run_dir, stage)
    opt = torch.optim.Adam(net.parameters(), lr=float(tcfg["lr"]))
    batch_size = int(tcfg["batch_size"])
    batches_per_epoch = math.ceil(n_items / batch_size)
    lr_at = learning_rate_schedule(tcfg, int(tcfg["epochs"]) * batches_per_epoch)
    state = {"epoch": 0, "batch": 0, "step": 0, "elapsed_s": 0.0, "cpu_s": 0.0, "sums": {}, "epoch_s": 0.0, "epoch_cpu_s": 0.0}
    if files.checkpoint.exists():
        ck = torch.load(files.checkpoint, map_location="cpu", weights_only=False)
        net.load_state_dict(ck["model"])
        opt.load_state_dict(ck["optimizer"])
        torch.set_rng_state(ck["rng"])
        state = ck["state"]
        ctx.log.write("resume", stage=stage, epoch=state["epoch"], batch=state["batch"], step=state["step"])
    elif "init_from" in tcfg:
        state["initFrom"] = load_initial_weights(ctx, stage, net)
        ctx.log.write("init", stage=stage, **state["initFrom"])

    def save_checkpoint() -> None:
        files.save_torch({"model": net.state_dict(), "optimizer": opt.state_dict(), "rng": torch.get_rng_state(),
                          "state": state}, files.checkpoint)

    every_s = float(ctx.cfg.get("checkpoint_every_s", 300))
    last_save = time.monotonic()
    truncated = False
    epochs = int(tcfg["epochs"])
    net.train()
    while state["epoch"] < epochs and not truncated:
        # The order of an epoch depends only on (seed, stage, epoch), so a resumed run sees the same batches.
        order = np.random.default_rng([_stage_seed(ctx.cfg, stage), state["epoch"]]).permutation(n_items)
        while state["batch"] < batches_per_epoch:
            if ctx.max_steps is not None and state["step"] >= ctx.max_steps:
                truncated = True
                break
            t0, c0 = time.monotonic(), time.process_time()
            idx = order[state["batch"] * batch_size:(state["batch"] + 1) * batch_size]
            # The rate is a function of the step alone, so a resumed run continues the same schedule.
            for group in opt.param_groups:
                group["lr"] = lr_at(state["step"])
            opt.zero_grad(set_to_none=True)
            loss, parts = batch_fn(net, idx)
            if not torch.isfinite(loss):
                raise FloatingPointError(f"{stage}: loss is {loss.item()} at epoch {state['epoch']}, step {state['step']}")
            loss.backward()
            opt.step()
            # CPU seconds beside wall seconds: on a shared machine the wall clock measures the neighbours too.
            dt, dc = time.monotonic() - t0, time.process_time() - c0
            state["batch"] += 1
            state["step"] += 1
            state["elapsed_s"] += dt
            state["epoch_s"] += dt
            state["cpu_s"] += dc
            state["epoch_cpu_s"] += dc
            for k, v in {"loss": loss.item(), **parts}.items():
                state["sums"][k] = state["sums"].get(k, 0.0) + v
            if time.monotonic() - last_save > every_s:
                save_checkpoint()
                last_save = time.monotonic()
        done_batches = state["batch"]
        if done_batches:
            means = {k: v / done_batches for k, v in state["sums"].items()}
            val = {}
            if validate is not None:
                net.eval()
                with torch.no_grad():
                    val = {f"val_{k}": v for k, v in validate(net).items()}
                net.train()
            # Kept in the checkpointed state so the stage's done.json (and the exported training.json, and so the
            # model card) carries the final losses even when the run directory's log is gone.
            state["last"] = {"epoch": state["epoch"] + 1, **{k: round(v, 6) for k, v in {**means, **val}.items()}}
            ctx.log.write("epoch", stage=stage, epoch=state["epoch"] + 1, batches=done_batches, step=state["step"],
                          **{k: round(v, 6) for k, v in {**means, **val}.items()},
                          epoch_s=round(state["epoch_s"], 2), s_per_step=round(state["epoch_s"] / done_batches, 4),
                          cpu_s_per_step=round(state["epoch_cpu_s"] / done_batches, 4), lr=lr_at(state["step"] - 1),
                          elapsed_s=round(state["elapsed_s"], 2), partial=done_batches < batches_per_epoch)
        if not truncated:
            state.update(epoch=state["epoch"] + 1, batch=0, sums={}, epoch_s=0.0, epoch_cpu_s=0.0)
            save_checkpoint()
            last_save = time.monotonic()
    net.eval()
    return {"steps": state["step"], "epochs": state["epoch"], "wallSeconds": round(state["elapsed_s"], 2),
            "truncated": truncated, "secondsPerStep": round(state["elapsed_s"] / max(state["step"], 1), 4),
            "cpuSeconds": round(state["cpu_s"], 2), "threads": torch.get_num_threads(),
            "parameters": parameter_count(net), "batchSize": batch_size, "itemsPerEpoch": n_items,
            "lastEpoch": state.get("last", {}), **({"initFrom": state["initFrom"]} if "initFrom" in state else {})}


def _encode_all(encode: Callable[[np.ndarray], tuple[torch.Tensor, torch.Tensor]], n: int, batch: int):
    mus, sigmas = [], []
    with torch.no_grad():
        for s in range(0, n, batch):
            mu, sigma = encode(np.arange(s, min(n, s + batch)))
            mus.append(mu.cpu())
            sigmas.append(sigma.cpu())
    return torch.cat(mus), torch.cat(sigmas)


def _finish_autoencoder(ctx: RunContext, stage: str, net, totals: dict, encode_train, n_train: int, names: list[str],
                        encode_heldout, n_heldout: int, heldout_names: list[str]) -> None:
    """Scale factor = 1/std of sampled training latents (mu + sigma * eps, as encode_stage_2_inputs draws them);
    the thesis took one batch, this takes the whole training set. The latents are kept for the UNet stage."""
    t0 = time.monotonic()
    mu, sigma = _encode_all(encode_train, n_train, 4)
    g = torch.Generator().manual_seed(_stage_seed(ctx.cfg, stage))
    z = mu + sigma * torch.randn(mu.shape, generator=g)
    scale = float(1.0 / z.std())
    latents = {"names": names, "mu": mu, "sigma": sigma}
    if n_heldout:
        hmu, hsigma = _encode_all(encode_heldout, n_heldout, 4)
        latents.update(heldout_names=heldout_names, heldout_mu=hmu, heldout_sigma=hsigma)
    files = StageFiles(ctx.run_dir, stage)
    files.save_torch(latents, files.latents)
    done = {**totals, "scaleFactor": scale, "latentStd": float(z.std()), "encodeSeconds": round(time.monotonic() - t0, 2)}
    files.finish(net.state_dict(), done)
    ctx.log.write("stage-done", stage=stage, **done)


def _finish_unet(ctx: RunContext, stage: str, net, totals: dict, extra: dict | None = None) -> None:
    done = {**totals, **(extra or {})}
    StageFiles(ctx.run_dir, stage).finish(net.state_dict(), done)
    ctx.log.write("stage-done", stage=stage, **done)


def random_crop(crop: list[int] | None, *volumes: torch.Tensor) -> tuple[torch.Tensor, ...]:
    """One random window of size `crop`, the same for every volume of the batch (label map, target, image, seg).
    The autoencoders are convolutional, so they can learn on windows and still run on the whole grid."""
    if not crop:
        return volumes
    shape = volumes[0].shape[-3:]
    if any(c > s for c, s in zip(crop, shape)):
        raise ValueError(f"train.crop {crop} is larger than the grid {list(shape)}")
    start = [int(torch.randint(0, s - c + 1, ())) for c, s in zip(crop, shape)]
    window = tuple(slice(a, a + c) for a, c in zip(start, crop))
    return tuple(v[(..., *window)] for v in volumes)


def _to(ctx: RunContext, t: torch.Tensor) -> torch.Tensor:
    return t.to(ctx.device, non_blocking=True)


def _stage_start(ctx: RunContext, stage: str) -> torch.nn.Module:
    set_determinism(seed=_stage_seed(ctx.cfg, stage))
    net = build_network(stage, ctx.cfg).to(ctx.device)
    ctx.log.write("stage-start", stage=stage, parameters=parameter_count(net), device=str(ctx.device),
                  threads=torch.get_num_threads())
    return net


def soft_dice_loss(logits: torch.Tensor, target: torch.Tensor, n_classes: int) -> torch.Tensor:
    """1 - mean soft Dice over the foreground classes of the batch (smoothed by 1 so absent classes count as met).

    Cross-entropy alone is dominated by background and large structures; the Dice term gives the small ones (pallidum,
    accumbens, inferior lateral ventricles) equal weight, as nnU-Net's Dice + CE does."""
    p = logits.softmax(1)
    onehot = F.one_hot(target, n_classes).movedim(-1, 1).to(p.dtype)
    dims = (0, *range(2, p.ndim))
    inter = (p * onehot).sum(dims)
    denom = p.sum(dims) + onehot.sum(dims)
    return 1 - ((2 * inter + 1) / (denom + 1))[1:].mean()


def label_loss(logits: torch.Tensor, target: torch.Tensor, n_classes: int, dice_weight: float) -> tuple[torch.Tensor, dict]:
    """Cross-entropy, plus `dice_weight` x soft Dice when it is not 0: the loss of every stage that decodes label maps."""
    ce = F.cross_entropy(logits, target)
    loss, parts = ce, {"ce": ce.item()}
    if dice_weight:
        dice = soft_dice_loss(logits, target, n_classes)
        loss = loss + dice_weight * dice
        parts["dice_loss"] = dice.item()
    return loss, parts


def train_mask_autoencoder(ctx: RunContext, data: TrainingData) -> None:
    stage = "mask-ae"
    cfg = ctx.cfg
    kl_w = float(cfg[stage]["train"]["kl_weight"])
    dice_w = float(cfg[stage]["train"].get("dice_weight", 0.0))
    net = _stage_start(ctx, stage)
    labels = data.labels.labels
    targets = labels_to_indices(labels[:, 0], cfg["labels"])

    crop = cfg[stage]["train"].get("crop")

    def batch(net, idx):
        x, target = random_crop(crop, labels[idx], targets[idx])
        logits, mu, sigma = net(_to(ctx, x))
        loss, parts = label_loss(logits, _to(ctx, target), len(cfg["labels"]), dice_w)
        kl = kl_divergence(mu, sigma)
        return loss + kl_w * kl, {**parts, "kl": kl.item()}

    def validate(net):
        if data.heldout_labels is None:
            return {}
        x = data.heldout_labels.labels
        mu, _ = net.autoencoder.encode(net.embed(_to(ctx, x)))
        logits = net.autoencoder.decode(mu)
        target = _to(ctx, labels_to_indices(x[:, 0], cfg["labels"]))
        return {"ce": F.cross_entropy(logits, target).item(), "accuracy": (logits.argmax(1) == target).float().mean().item()}

    totals = run_training_loop(ctx, stage, net, labels.shape[0], batch, validate)
    encode = lambda src: (lambda idx: net.autoencoder.encode(net.embed(_to(ctx, src.labels[idx]))))  # noqa: E731
    held = data.heldout_labels
    _finish_autoencoder(ctx, stage, net, totals, encode(data.labels), labels.shape[0], data.labels.names,
                        encode(held) if held else None, held.labels.shape[0] if held else 0, held.names if held else [])


def train_spade_autoencoder(ctx: RunContext, data: TrainingData) -> None:
    stage = "spade-ae"
    cfg = ctx.cfg
    if data.pairs is None:
        raise ValueError(f"{stage}: the training set has no images (images/<label>_img<NNN>.nii.gz)")
    kl_w = float(cfg[stage]["train"]["kl_weight"])
    net = _stage_start(ctx, stage)
    pairs, labels = data.pairs, data.labels.labels

    def seg_of(p: PairSet, lab: torch.Tensor, idx) -> torch.Tensor:
        return _to(ctx, one_hot(lab[[p.label_index[i] for i in idx]], cfg["labels"]))

    crop = cfg[stage]["train"].get("crop")

    def batch(net, idx):
        x, seg = random_crop(crop, _to(ctx, pairs.images[idx]), seg_of(pairs, labels, idx))
        recon, mu, sigma = net(x, seg)
        l1 = F.l1_loss(recon, x)
        kl = kl_divergence(mu, sigma)
        return l1 + kl_w * kl, {"l1": l1.item(), "kl": kl.item()}

    def validate(net):
        hp = data.heldout_pairs
        if hp is None:
            return {}
        idx = list(range(len(hp.names)))
        x = _to(ctx, hp.images)
        mu, _ = net.encode(x)
        return {"l1": F.l1_loss(net.decode(mu, seg_of(hp, data.heldout_labels.labels, idx)), x).item()}

    totals = run_training_loop(ctx, stage, net, pairs.images.shape[0], batch, validate)
    encode = lambda p: (lambda idx: net.encode(_to(ctx, p.images[idx])))  # noqa: E731
    hp = data.heldout_pairs
    _finish_autoencoder(ctx, stage, net, totals, encode(pairs), pairs.images.shape[0], pairs.names,
                        encode(hp) if hp else None, len(hp.names) if hp else 0, hp.names if hp else [])


def _autoencoder_outputs(ctx: RunContext, ae_stage: str, unet_stage: str, names: list[str]) -> tuple[dict, float]:
    files = StageFiles(ctx.run_dir, ae_stage)
    if not files.is_done():
        raise RuntimeError(f"{unet_stage}: stage {ae_stage} has not finished in {ctx.run_dir} (run --stage {ae_stage} first)")
    latents = torch.load(files.latents, map_location="cpu", weights_only=False)
    if latents["names"] != names:
        raise RuntimeError(f"{unet_stage}: {files.latents} was encoded from other training items than --data holds; "
                           f"retrain {ae_stage} in a new run")
    return latents, float(files.read_done()["scaleFactor"])


def _diffusion_target(scheduler: DDPMScheduler, z: torch.Tensor, noise: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    """What the UNet learns to output, by the scheduler's prediction_type (the sampler reads the same field from
    model.json). v-prediction (Salimans & Ho 2022) keeps the x0 estimate well conditioned at high noise: with
    epsilon a small UNet's error at t > 800 is multiplied by sqrt((1 - alphaBar) / alphaBar) (10-100x) in x0, and
    those early errors set the whole sample (train/README.md, run v3)."""
    kind = scheduler.prediction_type
    if kind == "epsilon":
        return noise
    if kind == "v_prediction":
        return scheduler.get_velocity(z, noise, t)
    if kind == "sample":
        return z
    raise ValueError(f"scheduler.prediction_type: expected epsilon, v_prediction or sample, got {kind!r}")


def _diffusion_batch(ctx: RunContext, scheduler: DDPMScheduler, mu: torch.Tensor, sigma: torch.Tensor, scale: float):
    """A noised latent batch and its target: z = (mu + sigma * eps) * scale (encode_stage_2_inputs, scaled as the
    LatentDiffusionInferer does), then DDPM forward noising at uniform random timesteps."""
    z = (mu + sigma * torch.randn_like(sigma)) * scale
    noise = torch.randn_like(z)
    t = torch.randint(0, scheduler.num_train_timesteps, (z.shape[0],), dtype=torch.long)
    target = _diffusion_target(scheduler, z, noise, t)
    return _to(ctx, scheduler.add_noise(z, noise, t)), _to(ctx, t), _to(ctx, target)


def _fixed_validation(ctx, stage, scheduler, mu, sigma, scale, forward) -> float:
    """Diffusion loss on held-out latents with noise and timesteps fixed by the seed, comparable across epochs."""
    g = torch.Generator().manual_seed(_stage_seed(ctx.cfg, stage) + 1)
    z = (mu + sigma * torch.randn(mu.shape, generator=g)) * scale
    noise = torch.randn(z.shape, generator=g)
    t = torch.linspace(50, scheduler.num_train_timesteps - 50, z.shape[0]).long()
    pred = forward(_to(ctx, scheduler.add_noise(z, noise, t)), _to(ctx, t))
    return F.mse_loss(pred, _to(ctx, _diffusion_target(scheduler, z, noise, t))).item()


def train_mask_unet(ctx: RunContext, data: TrainingData) -> None:
    stage = "mask-unet"
    cfg = ctx.cfg
    latents, scale = _autoencoder_outputs(ctx, "mask-ae", stage, data.labels.names)
    measures = volume_measures(data.labels, cfg["ventricle_labels"])
    stats = conditioning_stats(measures)
    write_json_atomic(ctx.run_dir / "conditioning.json", stats)
    volume = torch.from_numpy(normalised_volume(measures["ratio"], stats)).float()
    scheduler = DDPMScheduler(**cfg["scheduler"])
    dropout = float(cfg[stage]["train"]["cfg_dropout"])
    net = _stage_start(ctx, stage)

    def batch(net, idx):
        x, t, target = _diffusion_batch(ctx, scheduler, latents["mu"][idx], latents["sigma"][idx], scale)
        context = _to(ctx, training_context(volume[idx], dropout))
        mse = F.mse_loss(net(x, t, context=context), target)
        return mse, {"mse": mse.item()}

    validate = None
    if "heldout_mu" in latents:
        held_ratio = volume_measures(data.heldout_labels, cfg["ventricle_labels"])["ratio"]
        held_ctx = torch.stack([torch.from_numpy(normalised_volume(held_ratio, stats)).float(),
                                torch.ones(len(held_ratio))], -1)[:, None, :]

        def validate(net):
            return {"mse": _fixed_validation(ctx, stage, scheduler, latents["heldout_mu"], latents["heldout_sigma"], scale,
                                             lambda x, t: net(x, t, context=_to(ctx, held_ctx)))}

    totals = run_training_loop(ctx, stage, net, len(latents["names"]), batch, validate)
    _finish_unet(ctx, stage, net, totals, {"conditioning": stats})


def train_spade_unet(ctx: RunContext, data: TrainingData) -> None:
    stage = "spade-unet"
    cfg = ctx.cfg
    if data.pairs is None:
        raise ValueError(f"{stage}: the training set has no images (images/<label>_img<NNN>.nii.gz)")
    latents, scale = _autoencoder_outputs(ctx, "spade-ae", stage, data.pairs.names)
    scheduler = DDPMScheduler(**cfg["scheduler"])
    net = _stage_start(ctx, stage)
    pairs, labels = data.pairs, data.labels.labels

    def batch(net, idx):
        x, t, target = _diffusion_batch(ctx, scheduler, latents["mu"][idx], latents["sigma"][idx], scale)
        # SPADE gets the one-hot map at image resolution and resizes it to each feature map itself (as the
        # thesis' LatentDiffusionInferer passes it).
        seg = _to(ctx, one_hot(labels[[pairs.label_index[i] for i in idx]], cfg["labels"]))
        mse = F.mse_loss(net(x, t, seg=seg), target)
        return mse, {"mse": mse.item()}

    validate = None
    if "heldout_mu" in latents:
        hp = data.heldout_pairs
        held_seg = one_hot(data.heldout_labels.labels[hp.label_index], cfg["labels"])

        def validate(net):
            return {"mse": _fixed_validation(ctx, stage, scheduler, latents["heldout_mu"], latents["heldout_sigma"], scale,
                                             lambda x, t: net(x, t, seg=_to(ctx, held_seg)))}

    totals = run_training_loop(ctx, stage, net, len(latents["names"]), batch, validate)
    _finish_unet(ctx, stage, net, totals)


def x0_estimate(scheduler: DDPMScheduler, prediction: torch.Tensor, x_t: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    """The UNet's estimate of the clean latent from one prediction at timesteps t (per row), by prediction_type."""
    ab = scheduler.alphas_cumprod.to(x_t.device)[t].float().view(-1, *([1] * (x_t.ndim - 1)))
    kind = scheduler.prediction_type
    if kind == "epsilon":
        return (x_t - (1 - ab).sqrt() * prediction) / ab.sqrt()
    if kind == "v_prediction":
        return ab.sqrt() * x_t - (1 - ab).sqrt() * prediction
    if kind == "sample":
        return prediction
    raise ValueError(f"scheduler.prediction_type: expected epsilon, v_prediction or sample, got {kind!r}")


def _load_finished(ctx: RunContext, stage: str, needed_by: str) -> torch.nn.Module:
    files = StageFiles(ctx.run_dir, stage)
    if not files.is_done():
        raise RuntimeError(f"{needed_by}: stage {stage} has not finished in {ctx.run_dir} (run --stage {stage} first)")
    net = build_network(stage, ctx.cfg).to(ctx.device)
    net.load_state_dict(torch.load(files.model, map_location="cpu", weights_only=True)["model"])
    return net


def train_mask_decoder(ctx: RunContext, data: TrainingData) -> None:
    """Fine-tunes the mask autoencoder's decoder on the latents the mask UNet makes, not only on encoded ones.

    Sampled latents are smoother than encoded ones: the argmax then gives the voxels of the smallest structures
    (accumbens, pallidum, inferior lateral ventricles: 3-30 voxels at 3.3 mm) to their larger neighbours, and decoding
    the UNet's one-step estimate of z0 from training latents noised to t = 300-500 loses them in the same way
    (train/README.md, "v8"). So each batch decodes, for a fraction of its rows, that estimate under the sampler's
    guidance instead of z, with the training map as the target. Only the decoder (and its post-quant conv) learns: the
    encoder, hence the latents and the mask UNet trained on them, stay as they are, and so does the scale factor."""
    stage = "mask-decoder"
    cfg = ctx.cfg
    tcfg = cfg[stage]["train"]
    latents, scale = _autoencoder_outputs(ctx, "mask-ae", stage, data.labels.names)
    unet = _load_finished(ctx, "mask-unet", stage).eval()
    for p in unet.parameters():
        p.requires_grad_(False)
    set_determinism(seed=_stage_seed(cfg, stage))
    net = _load_finished(ctx, "mask-ae", stage)
    for p in net.parameters():
        p.requires_grad_(False)
    for module in (net.autoencoder.decoder, net.autoencoder.post_quant_conv):
        for p in module.parameters():
            p.requires_grad_(True)
    ctx.log.write("stage-start", stage=stage, parameters=parameter_count(net), device=str(ctx.device),
                  threads=torch.get_num_threads(),
                  trainable=sum(p.numel() for p in net.parameters() if p.requires_grad))
    stats = conditioning_stats(volume_measures(data.labels, cfg["ventricle_labels"]))
    volume = torch.from_numpy(normalised_volume(volume_measures(data.labels, cfg["ventricle_labels"])["ratio"], stats)).float()
    scheduler = DDPMScheduler(**cfg["scheduler"])
    labels = data.labels.labels
    targets = labels_to_indices(labels[:, 0], cfg["labels"])
    t_max, clean = int(tcfg["t_max"]), float(tcfg["clean_fraction"])
    guidance = float(tcfg["guidance_scale"])
    dice_w = float(tcfg.get("dice_weight", 0.0))
    factor = 2 ** (len(cfg["mask-ae"]["network"]["channels"]) - 1)
    crop = tcfg.get("crop")

    def estimate(z: torch.Tensor, t: torch.Tensor, vol: torch.Tensor) -> torch.Tensor:
        """Guided one-step z0 estimate from z noised to t (cond rows first, as the sampler stacks them)."""
        noise = torch.randn_like(z)
        x_t = scheduler.add_noise(z, noise, t)
        cond = training_context(vol, 0.0)
        null = training_context(vol, 1.0)
        with torch.no_grad():
            out = unet(_to(ctx, torch.cat([x_t, x_t])), _to(ctx, torch.cat([t, t])), context=_to(ctx, torch.cat([cond, null])))
        pc, pu = out.chunk(2)
        return x0_estimate(scheduler, pu + guidance * (pc - pu), _to(ctx, x_t), _to(ctx, t))

    def batch(net, idx):
        z = (latents["mu"][idx] + latents["sigma"][idx] * torch.randn_like(latents["sigma"][idx])) * scale
        noisy = torch.rand(len(idx)) >= clean
        z_in = _to(ctx, z.clone())
        if noisy.any():
            t = torch.randint(1, t_max + 1, (int(noisy.sum()),), dtype=torch.long)
            z_in[_to(ctx, noisy)] = estimate(z[noisy], t, volume[idx][noisy])
        target = _to(ctx, targets[idx])
        if crop:  # a latent window and the map window it decodes to
            lat = [c // factor for c in crop]
            start = [int(torch.randint(0, s - c + 1, ())) for c, s in zip(lat, z_in.shape[-3:])]
            z_in = z_in[(..., *[slice(a, a + c) for a, c in zip(start, lat)])]
            target = target[(..., *[slice(a * factor, (a + c) * factor) for a, c in zip(start, lat)])]
        loss, parts = label_loss(net.autoencoder.decode(z_in / scale), target, len(cfg["labels"]), dice_w)
        return loss, {**parts, "noisy": float(noisy.float().mean())}

    def validate(net):
        """Held-out maps: the clean reconstruction (the autoencoder's own quality), and the decoded one-step estimate
        at t = t_max / 2 with noise fixed by the seed (what this stage improves)."""
        if data.heldout_labels is None:
            return {}
        x = data.heldout_labels.labels
        target = _to(ctx, labels_to_indices(x[:, 0], cfg["labels"]))
        mu, _ = net.autoencoder.encode(net.embed(_to(ctx, x)))
        logits = net.autoencoder.decode(mu)
        out = {"ce": F.cross_entropy(logits, target).item(), "accuracy": (logits.argmax(1) == target).float().mean().item()}
        ratio = volume_measures(data.heldout_labels, cfg["ventricle_labels"])["ratio"]
        state = torch.get_rng_state()
        torch.manual_seed(_stage_seed(cfg, stage) + 1)
        t = torch.full((x.shape[0],), max(1, t_max // 2), dtype=torch.long)
        z0 = estimate(mu.cpu() * scale, t, torch.from_numpy(normalised_volume(ratio, stats)).float())
        torch.set_rng_state(state)
        noisy_logits = net.autoencoder.decode(z0 / scale)
        out["estimate_accuracy"] = (noisy_logits.argmax(1) == target).float().mean().item()
        return out

    totals = run_training_loop(ctx, stage, net, labels.shape[0], batch, validate)
    done = {**totals, "scaleFactor": scale, "tMax": t_max, "cleanFraction": clean, "guidanceScale": guidance}
    StageFiles(ctx.run_dir, stage).finish(net.state_dict(), done)
    ctx.log.write("stage-done", stage=stage, **done)


TRAINERS = {"mask-ae": train_mask_autoencoder, "mask-unet": train_mask_unet,
            "spade-ae": train_spade_autoencoder, "spade-unet": train_spade_unet,
            "mask-decoder": train_mask_decoder}
