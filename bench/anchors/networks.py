"""PyTorch side of bench/anchors: the networks the anchors compare, built with MONAI core's own classes and seeded
random weights, and the PyTorch anchor itself (fp32 and bf16 autocast).

  make DIR NAME [--small]   -> DIR/NAME/{model.pth, args.json, inputs.safetensors, model.onnx, meta.json}
  run  DIR NAME --precision fp32|bf16 --repeat N --threads T
                            -> one JSON line {median_ms, times_ms, peak_rss_mib, ...}; DIR/NAME/out_torch_<precision>.safetensors

Every parameter is re-drawn (MONAI zero-initialises output convolutions, which would make outputs trivially equal).
FLOPs are counted by torch.utils.flop_counter (convolutions and matrix products, 2 per multiply-add; norms and
activations are not counted), so GFLOP/s means the same thing for every engine. `--small` shrinks the inputs for a
smoke run of the whole chain.
"""
from __future__ import annotations

import argparse
import json
import resource
import statistics
import sys
import time
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file
from torch.utils.flop_counter import FlopCounterMode

# name -> MONAI class, constructor kwargs, entry point, input shapes (full size, small size).
NETWORKS = {
    # The "default-size" UNet of TOOLCHAIN.md's reference table: 16.7M parameters, batch 2 as under CFG.
    "default-unet": {
        "class": "DiffusionModelUNet", "entry": "forward",
        "args": dict(spatial_dims=3, in_channels=3, out_channels=3, channels=[64, 128, 128],
                     attention_levels=[False, False, False], num_res_blocks=2, norm_num_groups=32, num_head_channels=8),
        "inputs": {"x": [2, 3, 16, 20, 16], "timesteps": [2]},
        "small": {"x": [2, 3, 8, 8, 8], "timesteps": [2]},
    },
    # The thesis' mask UNet (MONAI-COMPAT.md 1.2): 553M parameters, latent 24x32x24, batch 2 (CFG), volume context.
    "thesis-mask-unet": {
        "class": "DiffusionModelUNet", "entry": "forward",
        "args": dict(spatial_dims=3, in_channels=3, out_channels=3, num_res_blocks=2, channels=[256, 512, 768],
                     attention_levels=[False, True, True], num_head_channels=[0, 512, 768], norm_num_groups=32,
                     upcast_attention=True, resblock_updown=True, with_conditioning=True, cross_attention_dim=2),
        "inputs": {"x": [2, 3, 24, 32, 24], "timesteps": [2], "context": [2, 1, 2]},
        "small": {"x": [2, 3, 8, 8, 8], "timesteps": [2], "context": [2, 1, 2]},
    },
    # The thesis' SPADE autoencoder decoder (MONAI-COMPAT.md 1.4) painting a 96x128x96 image from a 33-label mask.
    "spade-decoder": {
        "class": "SPADEAutoencoderKL", "entry": "decode",
        "args": dict(spatial_dims=3, label_nc=33, in_channels=1, out_channels=1, latent_channels=6, channels=[64, 128, 128],
                     num_res_blocks=2, norm_num_groups=32, attention_levels=[False, False, False],
                     with_encoder_nonlocal_attn=False, with_decoder_nonlocal_attn=False),
        "inputs": {"z": [1, 6, 24, 32, 24], "seg": [1, 33, 96, 128, 96]},
        "small": {"z": [1, 6, 4, 4, 4], "seg": [1, 33, 16, 16, 16]},
    },
}


def build(name: str) -> torch.nn.Module:
    import monai.networks.nets as nets
    spec = NETWORKS[name]
    net = getattr(nets, spec["class"])(**spec["args"])
    gen = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for pname, p in net.named_parameters():
            if p.dim() > 1:
                p.copy_(torch.randn(p.shape, generator=gen) / (p[0].numel() ** 0.5))
            elif pname.endswith("weight"):
                p.copy_(1 + 0.1 * torch.randn(p.shape, generator=gen))
            else:
                p.copy_(0.1 * torch.randn(p.shape, generator=gen))
    return net.eval()


def make_inputs(name: str, small: bool) -> dict[str, torch.Tensor]:
    shapes = NETWORKS[name]["small" if small else "inputs"]
    gen = torch.Generator().manual_seed(1)
    out = {}
    for k, shape in shapes.items():
        if k == "timesteps":
            out[k] = torch.tensor([500.0, 300.0][: shape[0]])
        elif k == "context":  # [normalised volume, flag]: one conditional and one null row, as under CFG
            out[k] = torch.tensor([[[0.4, 1.0]], [[0.7, 0.0]]])[: shape[0]]
        elif k == "seg":  # a one-hot label map: random labels in blocks of 4 voxels
            b, c, *sp = shape
            coarse = torch.randint(0, c, (b, *[max(1, s // 4) for s in sp]), generator=gen)
            labels = torch.nn.functional.interpolate(coarse[:, None].float(), size=sp, mode="nearest")[:, 0].long()
            out[k] = torch.nn.functional.one_hot(labels, c).movedim(-1, 1).float().contiguous()
        else:
            out[k] = torch.randn(shape, generator=gen)
    return out


def call(net: torch.nn.Module, name: str, inputs: dict[str, torch.Tensor]) -> torch.Tensor:
    if NETWORKS[name]["entry"] == "decode":
        return net.decode(inputs["z"], inputs["seg"])
    return net(inputs["x"], inputs["timesteps"], context=inputs.get("context"))


class _Decode(torch.nn.Module):
    """torch.onnx.export traces forward(); the decoder is the autoencoder's decode()."""

    def __init__(self, net: torch.nn.Module):
        super().__init__()
        self.net = net

    def forward(self, z, seg):
        return self.net.decode(z, seg)


def make(root: Path, name: str, small: bool) -> None:
    d = root / name
    d.mkdir(parents=True, exist_ok=True)
    net = build(name)
    inputs = make_inputs(name, small)
    torch.save({"model": net.state_dict()}, d / "model.pth")
    (d / "args.json").write_text(json.dumps(NETWORKS[name]["args"]))
    save_file(inputs, d / "inputs.safetensors")
    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        call(net, name, inputs)
    names = list(inputs)
    module = _Decode(net) if NETWORKS[name]["entry"] == "decode" else net
    args = tuple(inputs[k] for k in names)
    tmp = d / "model.onnx.tmp"
    # The TorchScript exporter: it needs no onnxscript and writes weights over 2 GB to external data itself.
    torch.onnx.export(module, args, str(tmp), input_names=names, output_names=["out"], opset_version=17, dynamo=False)
    tmp.rename(d / "model.onnx")
    meta = {"name": name, "class": NETWORKS[name]["class"], "entry": NETWORKS[name]["entry"], "small": small,
            "inputs": {k: list(v.shape) for k, v in inputs.items()},
            "parameters": sum(p.numel() for p in net.parameters()), "flops": int(counter.get_total_flops())}
    (d / "meta.json").write_text(json.dumps(meta, indent=1))
    print(json.dumps(meta))


def run(root: Path, name: str, precision: str, repeat: int, threads: int) -> None:
    torch.set_num_threads(threads)
    d = root / name
    import monai.networks.nets as nets
    net = getattr(nets, NETWORKS[name]["class"])(**NETWORKS[name]["args"])
    net.load_state_dict(torch.load(d / "model.pth", weights_only=True)["model"])
    net.eval()
    inputs = load_file(d / "inputs.safetensors")
    autocast = torch.autocast("cpu", dtype=torch.bfloat16, enabled=precision == "bf16")
    times = []
    with torch.inference_mode(), autocast:
        y = call(net, name, inputs)  # warm-up: oneDNN picks and caches its kernels here
        for _ in range(repeat):
            t0 = time.perf_counter()
            y = call(net, name, inputs)
            times.append((time.perf_counter() - t0) * 1e3)
    save_file({"out": y.float().contiguous()}, d / f"out_torch_{precision}.safetensors")
    print(json.dumps({"engine": f"pytorch {torch.__version__}", "precision": precision, "threads": threads,
                      "median_ms": statistics.median(times), "times_ms": times,
                      "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
                      "output": f"out_torch_{precision}.safetensors"}))


def main(argv: list[str]) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("command", choices=["make", "run"])
    ap.add_argument("dir", type=Path)
    ap.add_argument("name", choices=sorted(NETWORKS))
    ap.add_argument("--small", action="store_true")
    ap.add_argument("--precision", choices=["fp32", "bf16"], default="fp32")
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--threads", type=int, default=2)
    a = ap.parse_args(argv)
    if a.command == "make":
        make(a.dir, a.name, a.small)
    else:
        run(a.dir, a.name, a.precision, a.repeat, a.threads)


if __name__ == "__main__":
    main(sys.argv[1:])
