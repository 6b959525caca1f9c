#!/usr/bin/env python3
"""Parity fixtures for the brain-ldm engine, made with the REAL MONAI classes.

For every case this builds a network with monai-generative 0.2.3 (``generative.networks.nets``) or MONAI core
(``monai.networks.nets``), re-initialises every parameter from a seeded generator (so no path is trivially zero
and every weight matters), runs the entries on seeded random inputs on the CPU in float32 and writes

    <out>/<case>/model.pth            torch.save, bare state_dict or {"model": state_dict} (thesis format),
                                      float32 / float16 / bfloat16 tensors
    <out>/<case>/case.json            class, constructor kwargs, key scheme, container, entries, seed, versions
    <out>/<case>/tensors.safetensors  inputs and reference outputs, float32, named "<entry>.<name>"
    <out>/keys/<case>.txt             every stored state_dict key with its dtype and shape

Channel counts and spatial sizes are reduced; the module structure is the one of the real configs
(../shared/design/MONAI-COMPAT.md sections 1.3, 1.4, 2.x, 3). For float16/bfloat16 cases the reference
outputs are computed in float32 from the weights rounded to that dtype, i.e. what an fp32 engine gets from
the stored file.

Usage:
    .venv/bin/python train/make_parity_fixtures.py [--out DIR] [--only NAME[,NAME...]] [--list]
    .venv/bin/python train/make_parity_fixtures.py --verify            # reload the written files, re-run, compare
    .venv/bin/python train/make_parity_fixtures.py --compare-monai     # G 0.2.3 -> MONAI core conversion check
    .venv/bin/python train/make_parity_fixtures.py --key-schemes train/KEY_SCHEMES.md
"""

from __future__ import annotations

import argparse
import copy
import hashlib
import importlib.metadata as importlib_metadata
import io
import json
import math
import os
import re
import sys
import time
import warnings
from collections import OrderedDict

warnings.filterwarnings("ignore")  # generative 0.2.3 emits torch.cuda.amp deprecation warnings on import

import torch  # noqa: E402
import torch.nn as nn  # noqa: E402
from safetensors.torch import save_file  # noqa: E402

torch.set_num_threads(2)
torch.use_deterministic_algorithms(True, warn_only=True)

import generative.networks.nets as G  # noqa: E402
import monai.networks.nets as M  # noqa: E402

# The 33 SynthSeg labels of the thesis (MONAI-COMPAT.md 1.2), in one-hot channel order.
SYNTHSEG_LABELS = [0, 2, 3, 4, 5, 7, 8, 10, 11, 12, 13, 14, 15, 16, 17, 18, 24, 26, 28,
                   41, 42, 43, 44, 46, 47, 49, 50, 51, 52, 53, 54, 58, 60]
NUM_LABELS = len(SYNTHSEG_LABELS)  # 33
VOCAB = 61  # largest SynthSeg label + 1 (thesis EmbeddingWrapper)

# Spatial sizes: all three axes differ so that an axis mix-up in the engine cannot pass.
IMG3 = (16, 24, 20)       # 3-level AEs (x4 down) -> latent (4, 6, 5)
LAT3 = (4, 6, 5)
IMG2 = (16, 24, 20)       # 2-level AE (x2 down)  -> latent (8, 12, 10)
LAT2 = (8, 12, 10)
PIN_LAT = (4, 5, 3)       # 4-level AE (x8 down)  -> image (32, 40, 24)
PIN_IMG = (32, 40, 24)
UNET_LAT = (8, 12, 16)    # 3-level UNets: 8x12x16 -> 4x6x8 -> 2x3x4
SPADE_SEG = (16, 24, 32)  # SPADE UNet seg at image resolution (2x latent here; SPADE resizes it)


def versions() -> dict:
    def v(pkg):
        try:
            return importlib_metadata.version(pkg)
        except importlib_metadata.PackageNotFoundError:
            return None

    return {"torch": torch.__version__, "monai": v("monai"), "generative": v("monai-generative"),
            "safetensors": v("safetensors"), "numpy": v("numpy"), "python": sys.version.split()[0]}


# ---------------------------------------------------------------------------------------------------------------
# The thesis EmbeddingWrapper (T:src/custom_autoencoders.py), reproduced: keys autoencoder.* then embedding.weight
# ---------------------------------------------------------------------------------------------------------------
class EmbeddingWrapper(nn.Module):
    def __init__(self, base_autoencoder: nn.Module, vocabulary_size: int, embedding_dim: int) -> None:
        super().__init__()
        self.autoencoder = base_autoencoder
        self.embedding = nn.Embedding(vocabulary_size, embedding_dim)

    def prepare_input(self, x: torch.Tensor) -> torch.Tensor:
        x = x[:, 0]                      # [B, D, H, W] integer label values
        x = self.embedding(x)            # [B, D, H, W, E]
        return torch.movedim(x, x.ndim - 1, 1)  # [B, E, D, H, W]

    def encode(self, x):
        return self.autoencoder.encode(self.prepare_input(x))

    def decode(self, z):
        return self.autoencoder.decode(z)


# ---------------------------------------------------------------------------------------------------------------
# Cases
# ---------------------------------------------------------------------------------------------------------------
def ae_entries(img, lat, in_ch, seg=False, label_input=False):
    """encode: x -> z_mu, z_sigma; decode: z [, seg] -> out."""
    return {
        "encode": {"inputs": ["x"], "outputs": ["z_mu", "z_sigma"],
                   "_shapes": {"x": (1, 1 if label_input else in_ch, *img)}, "_label_input": label_input},
        "decode": {"inputs": ["z", "seg"] if seg else ["z"], "outputs": ["out"],
                   "_shapes": {"z": (1, None, *lat), "seg": (1, None, *img)}},
    }


THESIS_UNET_ARGS = dict(spatial_dims=3, in_channels=3, out_channels=3, num_res_blocks=2,
                        num_channels=[32, 64, 64], attention_levels=[False, True, True],
                        num_head_channels=[0, 64, 64], norm_num_groups=8, upcast_attention=True,
                        resblock_updown=True, with_conditioning=True, cross_attention_dim=2)

SPADE_UNET_ARGS = dict(spatial_dims=3, in_channels=6, out_channels=6, label_nc=NUM_LABELS, num_res_blocks=2,
                       num_channels=[32, 64, 64], attention_levels=[False, True, True],
                       num_head_channels=[0, 64, 64], norm_num_groups=8, upcast_attention=True,
                       resblock_updown=True, with_conditioning=False, spade_intermediate_channels=32)


def monai_args(args: dict, **flags) -> dict:
    """Generative kwargs -> MONAI core kwargs (num_channels -> channels) plus the behaviour flags, explicit."""
    out = {}
    for k, v in args.items():
        out["channels" if k == "num_channels" else k] = v
    out.update(flags)
    return out


CASES: list[dict] = [
    # 1. Thesis mask AE: EmbeddingWrapper(61, E) + AutoencoderKL(E -> 33 logits), 3 levels, no attention.
    dict(name="mask_ae_thesis", package="generative", network="AutoencoderKL", container="model_key",
         wrapper={"type": "EmbeddingWrapper", "num_embeddings": VOCAB, "embedding_dim": 16},
         args=dict(spatial_dims=3, in_channels=16, out_channels=NUM_LABELS, latent_channels=3,
                   num_channels=[16, 32, 32], num_res_blocks=2, norm_num_groups=8,
                   attention_levels=[False, False, False], with_encoder_nonlocal_attn=False,
                   with_decoder_nonlocal_attn=False),
         entries=ae_entries(IMG3, LAT3, 16, label_input=True)),
    # 2. Thesis mask UNet: cross-attention (SpatialTransformer) levels, 1 head, context [vol, flag].
    dict(name="mask_unet_thesis", package="generative", network="DiffusionModelUNet", container="model_key",
         args=THESIS_UNET_ARGS,
         entries={"forward": {"inputs": ["x", "timesteps", "context"], "outputs": ["out"], "_batch": 2,
                              "_context": "thesis_cfg"}}),
    # 3. Thesis SPADE AE.
    dict(name="spade_ae", package="generative", network="SPADEAutoencoderKL", container="model_key",
         args=dict(spatial_dims=3, label_nc=NUM_LABELS, in_channels=1, out_channels=1, latent_channels=6,
                   num_channels=[16, 32, 32], num_res_blocks=2, norm_num_groups=8,
                   attention_levels=[False, False, False], with_encoder_nonlocal_attn=False,
                   with_decoder_nonlocal_attn=False, spade_intermediate_channels=16),
         entries=ae_entries(IMG3, LAT3, 1, seg=True)),
    # 4. Thesis SPADE UNet: self-attention (AttentionBlock) levels, SPADE in the up path.
    dict(name="spade_unet", package="generative", network="SPADEDiffusionModelUNet", container="model_key",
         args=SPADE_UNET_ARGS,
         entries={"forward": {"inputs": ["x", "timesteps", "seg"], "outputs": ["out"], "_batch": 2}}),
    # 5a. Brain LDM bundle (Pinaya et al.) AE, 4 levels, x8.
    dict(name="brain_ldm_pinaya_ae", package="generative", network="AutoencoderKL", container="state_dict",
         args=dict(spatial_dims=3, in_channels=1, out_channels=1, latent_channels=3,
                   num_channels=[16, 32, 32, 32], num_res_blocks=2, norm_num_groups=8, norm_eps=1e-6,
                   attention_levels=[False, False, False, False], with_encoder_nonlocal_attn=False,
                   with_decoder_nonlocal_attn=False),
         entries=ae_entries(PIN_IMG, PIN_LAT, 1)),
    # 5b. Brain LDM bundle UNet: latent (3) + 4 broadcast condition channels, and the same 4 values as context.
    dict(name="brain_ldm_pinaya_unet", package="generative", network="DiffusionModelUNet", container="state_dict",
         args=dict(spatial_dims=3, in_channels=7, out_channels=3, num_res_blocks=2, num_channels=[32, 64, 64],
                   attention_levels=[False, True, True], num_head_channels=[0, 64, 64], norm_num_groups=8,
                   resblock_updown=True, with_conditioning=True, transformer_num_layers=1,
                   cross_attention_dim=4, upcast_attention=True),
         entries={"forward": {"inputs": ["x", "timesteps", "context"], "outputs": ["out"], "_batch": 2,
                              "_context": "pinaya_concat"}}),
    # 6. Self-attention UNet: AttentionBlock (dead proj_attn), 2 heads at level 1, plain Downsample/Upsample,
    #    per-level num_res_blocks, class embedding.
    dict(name="unet_attention_block", package="generative", network="DiffusionModelUNet", container="state_dict",
         args=dict(spatial_dims=3, in_channels=3, out_channels=3, num_res_blocks=[1, 2, 1],
                   num_channels=[32, 64, 64], attention_levels=[False, True, True],
                   num_head_channels=[0, 32, 64], norm_num_groups=8, resblock_updown=False,
                   with_conditioning=False, num_class_embeds=4),
         entries={"forward": {"inputs": ["x", "timesteps", "class_labels"], "outputs": ["out"], "_batch": 2}}),
    # 7. AE with attention levels and non-local attention in encoder and decoder.
    dict(name="ae_with_attention", package="generative", network="AutoencoderKL", container="state_dict",
         args=dict(spatial_dims=3, in_channels=1, out_channels=1, latent_channels=3, num_channels=[16, 32],
                   num_res_blocks=1, norm_num_groups=8, attention_levels=[False, True],
                   with_encoder_nonlocal_attn=True, with_decoder_nonlocal_attn=True),
         entries=ae_entries(IMG2, LAT2, 1)),
    # Extra: cross-attention with a multi-token context, 2 heads and 2 transformer layers (with the thesis'
    #    1-token context, attn2.to_q/to_k and norm2 have no effect on the output, so they are tested here).
    dict(name="unet_crossattn_multitoken", package="generative", network="DiffusionModelUNet",
         container="state_dict",
         args=dict(spatial_dims=3, in_channels=3, out_channels=3, num_res_blocks=1, num_channels=[32, 64],
                   attention_levels=[False, True], num_head_channels=[0, 32], norm_num_groups=8,
                   resblock_updown=False, with_conditioning=True, transformer_num_layers=2,
                   cross_attention_dim=4, upcast_attention=False),
         entries={"forward": {"inputs": ["x", "timesteps", "context"], "outputs": ["out"], "_batch": 2,
                              "_context": "multitoken"}}),
    # 8. MONAI core networks (key scheme monai-core, bare state_dict, behaviour flags explicit).
    dict(name="monai_unet", package="monai", network="DiffusionModelUNet", container="state_dict",
         args=monai_args(THESIS_UNET_ARGS, include_fc=True, use_combined_linear=False, use_flash_attention=False),
         entries={"forward": {"inputs": ["x", "timesteps", "context"], "outputs": ["out"], "_batch": 2,
                              "_context": "thesis_cfg"}}),
    dict(name="monai_ae", package="monai", network="AutoencoderKL", container="state_dict",
         args=dict(spatial_dims=3, in_channels=1, out_channels=1, latent_channels=3, channels=[16, 32],
                   num_res_blocks=1, norm_num_groups=8, attention_levels=[False, True],
                   with_encoder_nonlocal_attn=True, with_decoder_nonlocal_attn=True,
                   include_fc=True, use_combined_linear=False, use_flash_attention=False),
         entries=ae_entries(IMG2, LAT2, 1)),
    dict(name="monai_spade_ae", package="monai", network="SPADEAutoencoderKL", container="state_dict",
         args=dict(spatial_dims=3, label_nc=NUM_LABELS, in_channels=1, out_channels=1, latent_channels=6,
                   channels=[16, 32, 32], num_res_blocks=2, norm_num_groups=8,
                   attention_levels=[False, False, False], with_encoder_nonlocal_attn=False,
                   with_decoder_nonlocal_attn=False, spade_intermediate_channels=16,
                   include_fc=True, use_combined_linear=False, use_flash_attention=False),
         entries=ae_entries(IMG3, LAT3, 1, seg=True)),
    # Extra: MONAI core SPADE UNet with the combined qkv Linear (attn.qkv keys) and out_proj.
    dict(name="monai_spade_unet", package="monai", network="SPADEDiffusionModelUNet", container="state_dict",
         args=monai_args(SPADE_UNET_ARGS, include_fc=True, use_combined_linear=True, use_flash_attention=False),
         entries={"forward": {"inputs": ["x", "timesteps", "seg"], "outputs": ["out"], "_batch": 2}}),
    # 9. Half-precision storage variants (same seeds as their fp32 cases: the fp32 weights rounded).
    dict(name="mask_unet_thesis_fp16", base="mask_unet_thesis", weight_dtype="float16"),
    dict(name="spade_unet_bf16", base="spade_unet", weight_dtype="bfloat16", container="state_dict"),
]

PACKAGE_LABEL = {"generative": "generative-0.2.3", "monai": "monai-1.6.1"}
KEY_SCHEME = {"generative": "generative", "monai": "monai-core"}
DTYPES = {"float32": torch.float32, "float16": torch.float16, "bfloat16": torch.bfloat16}


def resolve_cases() -> list[dict]:
    by_name = {c["name"]: c for c in CASES}
    out = []
    for i, c in enumerate(CASES):
        if "base" in c:
            full = copy.deepcopy(by_name[c["base"]])
            full.update({k: v for k, v in c.items() if k != "base"})
            full["seed_from"] = c["base"]
        else:
            full = copy.deepcopy(c)
        full.setdefault("wrapper", None)
        full.setdefault("weight_dtype", "float32")
        # Seed from the (base) case name, so adding/reordering cases never changes another case's fixtures.
        seed_name = full.get("seed_from", full["name"])
        full["seed"] = int(hashlib.sha256(seed_name.encode()).hexdigest()[:8], 16) % 100000 + 1000
        out.append(full)
    return out


# ---------------------------------------------------------------------------------------------------------------
# Model construction and re-initialisation
# ---------------------------------------------------------------------------------------------------------------
def build(case: dict) -> nn.Module:
    mod = G if case["package"] == "generative" else M
    cls = getattr(mod, case["network"])
    net = cls(**case["args"])
    if case["wrapper"]:
        w = case["wrapper"]
        net = EmbeddingWrapper(net, w["num_embeddings"], w["embedding_dim"])
    return net.eval()


@torch.no_grad()
def reinit(net: nn.Module, gen: torch.Generator) -> None:
    """Give every parameter a non-trivial random value (MONAI zero-initialises out.2, proj_out, conv2, ...).

    conv / linear weights ~ N(0, std 1/sqrt(fan_in)), their biases ~ N(0, std 0.1); GroupNorm/LayerNorm weights ~
    N(1, std 0.1), biases ~ N(0, std 0.1); embeddings ~ N(0, 1). Parameters are visited in module order.
    """
    touched = set()
    norm_types = (nn.GroupNorm, nn.LayerNorm, nn.InstanceNorm1d, nn.InstanceNorm2d, nn.InstanceNorm3d,
                  nn.BatchNorm1d, nn.BatchNorm2d, nn.BatchNorm3d)
    for mname, m in net.named_modules():
        for pname, p in m.named_parameters(recurse=False):
            full = f"{mname}.{pname}" if mname else pname
            if isinstance(m, norm_types):
                v = torch.randn(p.shape, generator=gen) * 0.1 + (1.0 if pname == "weight" else 0.0)
            elif isinstance(m, nn.Embedding):
                v = torch.randn(p.shape, generator=gen)
            elif pname == "weight" and p.ndim >= 2:
                fan_in = p[0].numel()
                if isinstance(m, (nn.ConvTranspose1d, nn.ConvTranspose2d, nn.ConvTranspose3d)):
                    fan_in = p.shape[0] * p[0, 0].numel()
                v = torch.randn(p.shape, generator=gen) / math.sqrt(fan_in)
            elif pname == "bias":
                v = torch.randn(p.shape, generator=gen) * 0.1
            else:
                raise RuntimeError(f"reinit: unhandled parameter {full} of {type(m).__name__}")
            p.copy_(v)
            touched.add(full)
    missing = {k for k, _ in net.named_parameters()} - touched
    if missing:
        raise RuntimeError(f"reinit: parameters not re-initialised: {sorted(missing)[:5]}")


# ---------------------------------------------------------------------------------------------------------------
# Inputs
# ---------------------------------------------------------------------------------------------------------------
def one_hot_seg(gen, batch, spatial, n=NUM_LABELS):
    lab = torch.randint(0, n, (batch, *spatial), generator=gen)
    return torch.nn.functional.one_hot(lab, n).movedim(-1, 1).to(torch.float32).contiguous()


def label_map(gen, batch, spatial):
    idx = torch.randint(0, NUM_LABELS, (batch, 1, *spatial), generator=gen)
    return torch.tensor(SYNTHSEG_LABELS, dtype=torch.float32)[idx]


def latent_channels(case):
    return case["args"]["latent_channels"]


def make_inputs(case: dict, entry: str, spec: dict, gen: torch.Generator) -> dict:
    a = case["args"]
    x: dict[str, torch.Tensor] = OrderedDict()
    if entry == "encode":
        shape = spec["_shapes"]["x"]
        x["x"] = label_map(gen, shape[0], shape[2:]) if spec.get("_label_input") else torch.randn(shape, generator=gen)
    elif entry == "decode":
        zs = spec["_shapes"]["z"]
        x["z"] = torch.randn((zs[0], latent_channels(case), *zs[2:]), generator=gen)
        if "seg" in spec["inputs"]:
            ss = spec["_shapes"]["seg"]
            x["seg"] = one_hot_seg(gen, ss[0], ss[2:], a["label_nc"])
    elif entry == "forward":
        b = spec["_batch"]
        ctx_mode = spec.get("_context")
        if ctx_mode == "pinaya_concat":
            # bundle sampler: 4 conditions in [0,1] as cross-attention context AND as constant channels
            lat = torch.randn((b, a["out_channels"], *UNET_LAT), generator=gen)
            cond = torch.rand((b, 4), generator=gen)
            cond_ch = cond[:, :, None, None, None].expand(b, 4, *UNET_LAT)
            x["x"] = torch.cat([lat, cond_ch], dim=1).contiguous()
        else:
            x["x"] = torch.randn((b, a["in_channels"], *UNET_LAT), generator=gen)
        # integer-valued float timesteps, as a scheduler/inferer passes them; one per batch row
        x["timesteps"] = torch.randint(0, 1000, (b,), generator=gen).to(torch.float32)
        if ctx_mode == "thesis_cfg":
            # CFG batch of the thesis: row 0 = [v, 1] (conditional), row 1 = [rand, 0] (null condition)
            v = torch.rand((1,), generator=gen)
            r = torch.rand((1,), generator=gen)
            x["context"] = torch.tensor([[[v.item(), 1.0]], [[r.item(), 0.0]]], dtype=torch.float32)
        elif ctx_mode == "pinaya_concat":
            x["context"] = cond[:, None, :].contiguous()
        elif ctx_mode == "multitoken":
            x["context"] = torch.randn((b, 3, a["cross_attention_dim"]), generator=gen)
        if "class_labels" in spec["inputs"]:
            x["class_labels"] = torch.randint(0, a["num_class_embeds"], (b,), generator=gen).to(torch.float32)
        if "seg" in spec["inputs"]:
            x["seg"] = one_hot_seg(gen, b, SPADE_SEG, a["label_nc"])
    assert list(x.keys()) == spec["inputs"], (entry, list(x.keys()), spec["inputs"])
    return x


@torch.no_grad()
def run_entry(net: nn.Module, case: dict, entry: str, inp: dict) -> dict:
    if entry == "encode":
        xin = inp["x"].long() if case["wrapper"] else inp["x"]
        z_mu, z_sigma = net.encode(xin)
        return OrderedDict(z_mu=z_mu, z_sigma=z_sigma)
    if entry == "decode":
        if "seg" in inp:
            return OrderedDict(out=net.decode(inp["z"], inp["seg"]))
        return OrderedDict(out=net.decode(inp["z"]))
    if entry == "forward":
        kw = {}
        if "context" in inp:
            kw["context"] = inp["context"]
        if "class_labels" in inp:
            kw["class_labels"] = inp["class_labels"].long()
        if "seg" in inp:
            kw["seg"] = inp["seg"]
        return OrderedDict(out=net(inp["x"], inp["timesteps"], **kw))
    raise ValueError(entry)


# ---------------------------------------------------------------------------------------------------------------
# One case
# ---------------------------------------------------------------------------------------------------------------
def prepare(case: dict):
    """Build the net with its seeded weights, rounded to the storage dtype; return (net_fp32, stored_state_dict)."""
    torch.manual_seed(case["seed"])
    net = build(case)
    reinit(net, torch.Generator().manual_seed(case["seed"]))
    dt = DTYPES[case["weight_dtype"]]
    if dt != torch.float32:
        net = net.to(dt)               # what a user's model.half() / .to(torch.bfloat16) stores
    stored = net.state_dict()          # OrderedDict with _metadata, exactly what users torch.save
    net = copy.deepcopy(net).float()   # fp32 engine view of the stored weights (exact cast back)
    return net, stored


def write_case(case: dict, out_dir: str, vers: dict) -> dict:
    t0 = time.perf_counter()
    net, stored = prepare(case)
    cdir = os.path.join(out_dir, case["name"])
    os.makedirs(cdir, exist_ok=True)

    gen = torch.Generator().manual_seed(case["seed"] + 1)
    tensors: dict[str, torch.Tensor] = OrderedDict()
    report = []
    entries_json = {}
    for entry, spec in case["entries"].items():
        inp = make_inputs(case, entry, spec, gen)
        outs = run_entry(net, case, entry, inp)
        assert list(outs.keys()) == spec["outputs"]
        for k, v in inp.items():
            tensors[f"{entry}.{k}"] = v.detach().to(torch.float32).contiguous()
        for k, v in outs.items():
            v = v.detach().to(torch.float32).contiguous()
            if not torch.isfinite(v).all():
                raise RuntimeError(f"{case['name']}: non-finite output {entry}.{k}")
            tensors[f"{entry}.{k}"] = v
            report.append(f"{entry}.{k} {list(v.shape)} std={v.std().item():.4g}")
        entries_json[entry] = {"inputs": spec["inputs"], "outputs": spec["outputs"]}

    payload = stored if case["container"] == "state_dict" else {"model": stored}
    torch.save(payload, os.path.join(cdir, "model.pth"))
    save_file(tensors, os.path.join(cdir, "tensors.safetensors"))
    os.chmod(os.path.join(cdir, "tensors.safetensors"), 0o644)  # safetensors creates it 0600

    meta = OrderedDict(
        name=case["name"],
        package=PACKAGE_LABEL[case["package"]],
        network=case["network"],
        wrapper=case["wrapper"],
        args=case["args"],
        key_scheme=KEY_SCHEME[case["package"]],
        container=case["container"],
        weight_dtype=case["weight_dtype"],
        entries=entries_json,
        seed=case["seed"],
        versions=vers,
        tensor_shapes={k: list(v.shape) for k, v in tensors.items()},
        notes=case_notes(case),
    )
    with open(os.path.join(cdir, "case.json"), "w") as f:
        json.dump(meta, f, indent=2)
        f.write("\n")

    os.makedirs(os.path.join(out_dir, "keys"), exist_ok=True)
    with open(os.path.join(out_dir, "keys", f"{case['name']}.txt"), "w") as f:
        for k, v in stored.items():
            f.write(f"{k}\t{str(v.dtype).replace('torch.', '')}\t{list(v.shape)}\n")

    n_params = sum(p.numel() for p in net.parameters())
    dt = time.perf_counter() - t0
    print(f"{case['name']:24s} {case['package']:10s} {case['network']:24s} params={n_params:>9,d} "
          f"{case['weight_dtype']:8s} {case['container']:10s} {dt:5.1f}s")
    for r in report:
        print(f"    {r}")
    return {"name": case["name"], "seconds": dt}


def has_attention_block(case: dict) -> bool:
    """Does the net contain plain self-attention blocks (G AttentionBlock / M SpatialAttentionBlock)?"""
    a = case["args"]
    if case["network"] in ("AutoencoderKL", "SPADEAutoencoderKL"):
        return any(a.get("attention_levels", [])) or a.get("with_encoder_nonlocal_attn", True) or \
            a.get("with_decoder_nonlocal_attn", True)
    return not a.get("with_conditioning", False)  # UNets: the mid block always has attention


def case_notes(case: dict) -> list[str]:
    n = ["inputs are float32; integer-valued inputs (label maps, timesteps, class_labels) are stored as float32 "
         "and cast to long only where MONAI needs it (nn.Embedding)",
         "all parameters re-initialised from the seed (normal, mean/std): conv/linear weight 0/(1/sqrt(fan_in)), "
         "bias 0/0.1, GroupNorm/LayerNorm weight 1/0.1 and bias 0/0.1, embedding 0/1"]
    if case["wrapper"]:
        n.append("encode.x is the raw SynthSeg label map [B,1,D,H,W]; encode = embedding(x[:,0]) moved to "
                 "channels, then AutoencoderKL.encode; decode = AutoencoderKL.decode")
    if case["weight_dtype"] != "float32":
        n.append(f"model.pth holds {case['weight_dtype']} tensors; the reference outputs are computed in float32 "
                 "from exactly those values cast back to float32")
    if case["network"] in ("AutoencoderKL", "SPADEAutoencoderKL"):
        n.append("encode returns (z_mu, z_sigma) with z_sigma = exp(clamp(log_sigma,-30,20)/2); decode = "
                 "post_quant_conv + decoder")
    if case["package"] == "generative" and has_attention_block(case):
        n.append("generative 0.2.3 AttentionBlock: proj_attn weights are stored but never applied in forward")
    if case["network"] == "SPADEAutoencoderKL" and case["package"] == "generative":
        n.append("generative 0.2.3 SPADE AE decoder: param_free_norm is GroupNorm(affine=False) with eps 1e-5 "
                 "(norm_eps is not passed); MONAI core passes eps=norm_eps")
    if case["network"] == "DiffusionModelUNet" and case["args"].get("with_conditioning") is False or \
            case["network"] == "SPADEDiffusionModelUNet":
        n.append("the middle block always has attention (AttentionBlock with num_head_channels[-1])")
    if case["name"] == "brain_ldm_pinaya_unet":
        n.append("forward.x = cat(latent[3 ch], the 4 conditions of forward.context broadcast as constant "
                 "channels) as in the bundle sampler")
    if case["name"].startswith("mask_unet") or case["name"] == "monai_unet":
        n.append("forward.context row 0 = [v, 1] (conditional), row 1 = [rand, 0] (thesis null condition)")
    if "seg" in json.dumps({k: v["inputs"] for k, v in case["entries"].items()}):
        n.append("seg = one-hot float32 of uniform random labels over label_nc channels; SPADE resizes it with "
                 "F.interpolate(mode='nearest') to every feature map")
    return n


# ---------------------------------------------------------------------------------------------------------------
# G 0.2.3 -> MONAI core comparison (not part of the fixtures; run with --compare-monai)
# ---------------------------------------------------------------------------------------------------------------
def plan_g_to_m(g_shapes: "OrderedDict[str, tuple]", m_shapes: "OrderedDict[str, tuple]"):
    """Semantics-preserving generative-0.2.3 -> monai-core conversion plan (the rules of KEY_SCHEMES.md).

    Returns (plan, dropped): plan maps every M key to ("copy", g_key) | ("cat0", [g_q, g_k, g_v]) | ("eye", None) |
    ("zeros", None); dropped lists the G keys that are not used (only proj_attn, dead in G, may be dropped).
    Raises ValueError when the M model cannot represent the G model (e.g. include_fc=False on a cross-attention UNet).
    """
    plan: "OrderedDict[str, tuple]" = OrderedDict()
    used = set()

    def take(gk):
        if gk not in g_shapes:
            raise ValueError(f"no generative key {gk}")
        used.add(gk)
        return gk

    for mk in m_shapes:
        if mk in g_shapes:
            plan[mk] = ("copy", take(mk))
            continue
        m = re.match(r"^(.*\.attn[12])\.out_proj\.(weight|bias)$", mk)            # transformer attn1 / attn2
        if m:
            plan[mk] = ("copy", take(f"{m.group(1)}.to_out.0.{m.group(2)}"))
            continue
        m = re.match(r"^(.*\.attn1)\.qkv\.weight$", mk)                            # transformer attn1, combined
        if m:
            plan[mk] = ("cat0", [take(f"{m.group(1)}.to_{x}.weight") for x in "qkv"])
            continue
        m = re.match(r"^(.*)\.attn\.(to_q|to_k|to_v)\.(weight|bias)$", mk)         # AttentionBlock -> SABlock
        if m:
            plan[mk] = ("copy", take(f"{m.group(1)}.{m.group(2)}.{m.group(3)}"))
            continue
        m = re.match(r"^(.*)\.attn\.qkv\.(weight|bias)$", mk)                      # AttentionBlock, combined qkv
        if m:
            plan[mk] = ("cat0", [take(f"{m.group(1)}.to_{x}.{m.group(2)}") for x in "qkv"])
            continue
        m = re.match(r"^(.*)\.attn\.out_proj\.(weight|bias)$", mk)                 # G never applied proj_attn
        if m:
            plan[mk] = ("eye" if m.group(2) == "weight" else "zeros", None)
            continue
        m = re.match(r"^(.*)\.postconv\.conv\.(weight|bias)$", mk)                 # Upsample conv
        if m:
            plan[mk] = ("copy", take(f"{m.group(1)}.conv.conv.{m.group(2)}"))
            continue
        m = re.match(r"^(.*)\.param_free_norm\.(weight|bias)$", mk)                # SPADE UNet GroupNorm
        if m:
            plan[mk] = ("copy", take(f"{m.group(1)}.param_free_norm.N.{m.group(2)}"))
            continue
        raise ValueError(f"no rule for monai-core key {mk}")
    dropped = [k for k in g_shapes if k not in used]
    bad = [k for k in dropped if not re.search(r"\.proj_attn\.(weight|bias)$", k)]
    if bad:
        raise ValueError(f"G weights that matter have no place in this MONAI model: {bad[:3]}")
    return plan, dropped


def apply_plan(plan, gsd: dict, msd_template: dict) -> "OrderedDict[str, torch.Tensor]":
    out = OrderedDict()
    for mk, (op, src) in plan.items():
        t = msd_template[mk]
        if op == "copy":
            out[mk] = gsd[src].clone()
        elif op == "cat0":
            out[mk] = torch.cat([gsd[k] for k in src], dim=0)
        elif op == "eye":
            out[mk] = torch.eye(t.shape[0], t.shape[1], dtype=t.dtype)
        elif op == "zeros":
            out[mk] = torch.zeros_like(t)
        if out[mk].shape != t.shape:
            raise ValueError(f"{mk}: shape {list(out[mk].shape)} != {list(t.shape)}")
    return out


@torch.no_grad()
def compare_monai() -> None:
    cases = {c["name"]: c for c in resolve_cases()}
    print("generative 0.2.3 fixture weights loaded into MONAI 1.6.1 classes: max |out_M - out_G| on the fixture "
          "inputs (rel = / max|out_G|)")
    flag_sets = [dict(include_fc=True, use_combined_linear=False), dict(include_fc=False, use_combined_linear=False),
                 dict(include_fc=True, use_combined_linear=True)]
    for name in ["mask_ae_thesis", "ae_with_attention", "brain_ldm_pinaya_ae", "mask_unet_thesis",
                 "brain_ldm_pinaya_unet", "unet_attention_block", "spade_ae", "spade_unet"]:
        case = cases[name]
        gnet, _ = prepare(case)
        gen = torch.Generator().manual_seed(case["seed"] + 1)
        inputs = {e: make_inputs(case, e, s, gen) for e, s in case["entries"].items()}
        if case["wrapper"]:  # compare the bare AE on the embedded input
            inputs["encode"]["x"] = gnet.prepare_input(inputs["encode"]["x"].long()).contiguous()
            gnet = gnet.autoencoder
            case = dict(case, wrapper=None)
        ref = {e: run_entry(gnet, case, e, i) for e, i in inputs.items()}
        for flags in flag_sets:
            for how in ("load_old_state_dict", "rules"):
                mnet = getattr(M, case["network"])(**monai_args(case["args"], **flags)).eval()
                gsd = OrderedDict((k, v.clone()) for k, v in gnet.state_dict().items())
                try:
                    if how == "load_old_state_dict":
                        if not hasattr(mnet, "load_old_state_dict"):
                            raise AttributeError("class has no load_old_state_dict")
                        buf, _stdout = io.StringIO(), sys.stdout
                        sys.stdout = buf
                        try:
                            mnet.load_old_state_dict(gsd)
                        finally:
                            sys.stdout = _stdout
                    else:
                        tmpl = mnet.state_dict()
                        plan, _ = plan_g_to_m(OrderedDict((k, tuple(v.shape)) for k, v in gsd.items()),
                                              OrderedDict((k, tuple(v.shape)) for k, v in tmpl.items()))
                        mnet.load_state_dict(apply_plan(plan, gsd, tmpl), strict=True)
                except Exception as ex:  # noqa: BLE001
                    print(f"  {name:22s} {flags_str(flags)} {how:19s}: n/a ({type(ex).__name__}: "
                          f"{str(ex).splitlines()[0][:100]})")
                    continue
                diffs = []
                for e, i in inputs.items():
                    o = run_entry(mnet, case, e, i)
                    for k in o:
                        d = (o[k] - ref[e][k]).abs().max().item()
                        s = ref[e][k].abs().max().item()
                        diffs.append(f"{e}.{k} {d:.2g} (rel {d / max(s, 1e-30):.1g})")
                print(f"  {name:22s} {flags_str(flags)} {how:19s}: {', '.join(diffs)}")


def flags_str(flags: dict) -> str:
    return f"fc={'T' if flags['include_fc'] else 'F'} qkv={'T' if flags['use_combined_linear'] else 'F'}"


# ---------------------------------------------------------------------------------------------------------------
# Key scheme listing (the generated part of train/KEY_SCHEMES.md)
# ---------------------------------------------------------------------------------------------------------------
def key_schemes_report() -> str:
    """For each class, attention flavour and MONAI flag set: every monai-core key whose G source differs."""
    small = dict(spatial_dims=3, num_res_blocks=1, norm_num_groups=8)
    variants = [
        ("AutoencoderKL", dict(in_channels=1, out_channels=1, latent_channels=3, num_channels=[8, 16],
                               attention_levels=[False, True], with_encoder_nonlocal_attn=True,
                               with_decoder_nonlocal_attn=True)),
        ("DiffusionModelUNet (with_conditioning=True, resblock_updown=False)",
         dict(in_channels=3, out_channels=3, num_channels=[8, 16], attention_levels=[False, True],
              num_head_channels=[0, 16], with_conditioning=True, cross_attention_dim=2, resblock_updown=False)),
        ("DiffusionModelUNet (with_conditioning=False, resblock_updown=True)",
         dict(in_channels=3, out_channels=3, num_channels=[8, 16], attention_levels=[False, True],
              num_head_channels=[0, 16], with_conditioning=False, resblock_updown=True)),
        ("SPADEAutoencoderKL", dict(label_nc=4, in_channels=1, out_channels=1, latent_channels=3,
                                    num_channels=[8, 16], attention_levels=[False, True],
                                    with_encoder_nonlocal_attn=True, with_decoder_nonlocal_attn=True,
                                    spade_intermediate_channels=8)),
        ("SPADEDiffusionModelUNet (with_conditioning=False, resblock_updown=False)",
         dict(in_channels=3, out_channels=3, label_nc=4, num_channels=[8, 16], attention_levels=[False, True],
              num_head_channels=[0, 16], with_conditioning=False, resblock_updown=False,
              spade_intermediate_channels=8)),
    ]
    flag_sets = [dict(include_fc=True, use_combined_linear=False), dict(include_fc=False, use_combined_linear=False),
                 dict(include_fc=True, use_combined_linear=True)]
    lines = []
    for title, cfg in variants:
        cls = title.split()[0]
        full = dict(**small, **cfg)
        gnet = getattr(G, cls)(**full)
        gsh = OrderedDict((k, tuple(v.shape)) for k, v in gnet.state_dict().items())
        lines.append(f"### {title}\n")
        lines.append("generative config: `" + json.dumps(full) + "`\n")
        for flags in flag_sets:
            mnet = getattr(M, cls)(**monai_args(full, **flags))
            msh = OrderedDict((k, tuple(v.shape)) for k, v in mnet.state_dict().items())
            lines.append(f"**monai-core with `{json.dumps(flags)}`** ({len(gsh)} generative keys, "
                         f"{len(msh)} monai-core keys)\n")
            try:
                plan, dropped = plan_g_to_m(gsh, msh)
            except ValueError as ex:
                lines.append(f"Not convertible without changing outputs: {ex}\n")
                continue
            lines.append("| monai-core key | from generative 0.2.3 | shape |")
            lines.append("|---|---|---|")
            n = 0
            for mk, (op, src) in plan.items():
                if op == "copy" and src == mk:
                    continue
                n += 1
                if op == "copy":
                    how = f"`{src}`"
                elif op == "cat0":
                    how = "cat(dim 0) of " + ", ".join(f"`{s}`" for s in src)
                elif op == "eye":
                    how = "*identity (no G counterpart; G never applies proj_attn)*"
                else:
                    how = "*zeros (no G counterpart)*"
                lines.append(f"| `{mk}` | {how} | {list(msh[mk])} |")
            for gk in dropped:
                lines.append(f"| *(dropped)* | `{gk}` (dead in G) | {list(gsh[gk])} |")
            if not n and not dropped:
                lines.append("| *(identical key sets)* | | |")
            lines.append("")
    return "\n".join(lines)


@torch.no_grad()
def verify(out_dir: str, only: list[str] | None) -> int:
    """Rebuild every case from its files alone (case.json + model.pth) and re-run the entries: outputs must be
    bit-identical to tensors.safetensors."""
    from safetensors.torch import load_file

    bad = 0
    names = sorted(d for d in os.listdir(out_dir) if os.path.isfile(os.path.join(out_dir, d, "case.json")))
    for name in names:
        if only and name not in only:
            continue
        cdir = os.path.join(out_dir, name)
        with open(os.path.join(cdir, "case.json")) as f:
            meta = json.load(f)
        case = {"package": "generative" if meta["package"].startswith("generative") else "monai",
                "network": meta["network"], "args": meta["args"], "wrapper": meta["wrapper"]}
        net = build(case)
        obj = torch.load(os.path.join(cdir, "model.pth"), map_location="cpu", weights_only=True)
        sd = obj["model"] if meta["container"] == "model_key" else obj
        dtypes = {str(v.dtype).replace("torch.", "") for v in sd.values()}
        if dtypes != {meta["weight_dtype"]}:
            print(f"  {name}: stored dtypes {dtypes} != {meta['weight_dtype']}")
            bad += 1
        net.load_state_dict({k: v.float() for k, v in sd.items()}, strict=True)
        tensors = load_file(os.path.join(cdir, "tensors.safetensors"))
        worst = 0.0
        for entry, spec in meta["entries"].items():
            inp = OrderedDict((k, tensors[f"{entry}.{k}"]) for k in spec["inputs"])
            outs = run_entry(net, case, entry, inp)
            for k in spec["outputs"]:
                worst = max(worst, (outs[k] - tensors[f"{entry}.{k}"]).abs().max().item())
        status = "OK (bit-identical)" if worst == 0.0 else f"max abs diff {worst:.3g}"
        if worst > 1e-5:
            bad += 1
        print(f"  {name:26s} {status}")
    print(f"verify: {len(names) if not only else len(only)} case(s), {bad} problem(s)")
    return 1 if bad else 0


def remove_stale(out_dir: str, current: set) -> None:
    """Remove fixture folders / key lists of cases that no longer exist (only folders holding a case.json)."""
    import shutil

    for d in sorted(os.listdir(out_dir)):
        if d not in current and os.path.isfile(os.path.join(out_dir, d, "case.json")):
            print(f"removing stale case {d}")
            shutil.rmtree(os.path.join(out_dir, d))
    kdir = os.path.join(out_dir, "keys")
    if os.path.isdir(kdir):
        for f in sorted(os.listdir(kdir)):
            if f.endswith(".txt") and f[:-4] not in current:
                os.remove(os.path.join(kdir, f))


def write_index(out_dir: str, vers: dict) -> None:
    """<out>/index.json: the case folders present (sorted), so a test can enumerate them."""
    names = sorted(d for d in os.listdir(out_dir) if os.path.isfile(os.path.join(out_dir, d, "case.json")))
    with open(os.path.join(out_dir, "index.json"), "w") as f:
        json.dump({"generator": "train/make_parity_fixtures.py", "cases": names, "versions": vers}, f, indent=2)
        f.write("\n")


# ---------------------------------------------------------------------------------------------------------------
def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    here = os.path.dirname(os.path.abspath(__file__))
    ap.add_argument("--out", default=os.path.join(os.path.dirname(here), "test", "fixtures", "parity"))
    ap.add_argument("--only", default=None, help="comma-separated case names")
    ap.add_argument("--list", action="store_true", help="list the case names and exit")
    ap.add_argument("--verify", action="store_true",
                    help="rebuild each case in --out from case.json + model.pth and check the stored outputs")
    ap.add_argument("--compare-monai", action="store_true",
                    help="load the generative-0.2.3 fixture weights into MONAI core classes and print differences")
    ap.add_argument("--key-schemes", metavar="PATH", default=None,
                    help="print (PATH '-') or splice into PATH the generated G->M key tables")
    args = ap.parse_args()

    cases = resolve_cases()
    if args.list:
        for c in cases:
            print(c["name"])
        return 0
    if args.compare_monai:
        compare_monai()
        return 0
    if args.verify:
        return verify(args.out, [x.strip() for x in args.only.split(",")] if args.only else None)
    if args.key_schemes:
        text = key_schemes_report()
        if args.key_schemes == "-":
            print(text)
        else:
            begin, end = "<!-- BEGIN GENERATED -->", "<!-- END GENERATED -->"
            with open(args.key_schemes) as f:
                doc = f.read()
            i, j = doc.index(begin) + len(begin), doc.index(end)
            with open(args.key_schemes, "w") as f:
                f.write(doc[:i] + "\n" + text + "\n" + doc[j:])
            print(f"updated {args.key_schemes}")
        return 0

    if args.only:
        want = [s.strip() for s in args.only.split(",") if s.strip()]
        unknown = [w for w in want if w not in {c["name"] for c in cases}]
        if unknown:
            ap.error(f"unknown case(s): {unknown}; known: {[c['name'] for c in cases]}")
        cases = [c for c in cases if c["name"] in want]

    vers = versions()
    print(f"torch {vers['torch']}, monai {vers['monai']}, monai-generative {vers['generative']}, "
          f"threads {torch.get_num_threads()}, out {args.out}")
    t0 = time.perf_counter()
    os.makedirs(args.out, exist_ok=True)
    for c in cases:
        write_case(c, args.out, vers)
    if not args.only:
        remove_stale(args.out, {c["name"] for c in cases})
    write_index(args.out, vers)
    print(f"{len(cases)} case(s) in {time.perf_counter() - t0:.1f}s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
