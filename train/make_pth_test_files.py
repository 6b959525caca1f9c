"""Makes the small checkpoint files under test/fixtures/pth/ that the TypeScript readers are tested on.

The tests never run Python: this script is run once by hand and its outputs are committed.

    .venv/bin/python train/make_pth_test_files.py            # writes test/fixtures/pth/

MONAI core's SpatialAttentionBlock imports einops; if the venv lacks it:
    .venv/bin/pip install --target /tmp/pydeps einops==0.8.2 && PYTHONPATH=/tmp/pydeps .venv/bin/python ...

Outputs (all tiny):
  readers:  bare.pth, thesis-container.pth, bundle-container.pth, fp16.pth, bf16.pth, float64.pth,
            noncontiguous.pth, shared-storage.pth, parameter.pth, protocol4.pth, protocol5.pth,
            forbidden-os-system.pth, forbidden-eval.pth, forbidden-main-class.pth, forbidden-numpy.pth (only
            parsed by the tests, never loaded), bad-opcode.pth (EMPTY_SET at byte 2 of data.pkl), truncated.pth,
            compressed.pth (re-zipped with deflate), legacy.pth (_use_new_zipfile_serialization=False),
            expected.json (the exact values, as numbers or raw bits, and the forbidden globals' names and offsets)
  safetensors: reference.safetensors (written by the Python `safetensors` package), reference.json
  key schemes (2D tiny configs; key names are the same as 3D):
            <arch>-generative.pth     monai-generative 0.2.3 state_dict (the canonical scheme)
            <arch>-monai-core.pth     monai 1.6 state_dict with default switches (include_fc=True), made with
                                      MONAI's own load_old_state_dict where the class has one
            <arch>-monai-core-nofc-fused.pth  monai 1.6 with include_fc=False, use_combined_linear=True, loaded
                                      from a copy of the generative weights; its forward is checked here to equal
                                      the generative forward once the generative model's missing projections are
                                      identities
            key-schemes.json          per arch: the class and its generative constructor kwargs
"""

import collections
import io
import json
import math
import os
import pathlib
import zipfile

import numpy as np
import torch
import torch.nn as nn

OUT = pathlib.Path(__file__).resolve().parent.parent / "test" / "fixtures" / "pth"


def num(x):
    """A JSON number, or "Infinity" / "-Infinity" / "NaN" as a string (JSON has none; JS Number() reads these)."""
    x = float(x)
    return x if math.isfinite(x) else ("NaN" if math.isnan(x) else ("Infinity" if x > 0 else "-Infinity"))


def f32_list(t):
    return [num(x) for x in t.detach().to(torch.float32).reshape(-1).tolist()]


def bits16(t):
    return [int(x) & 0xFFFF for x in t.detach().contiguous().view(torch.int16).reshape(-1).tolist()]


def describe(t):
    d = {"dtype": str(t.dtype).replace("torch.", ""), "shape": list(t.shape), "stride": list(t.stride()),
         "storage_offset": t.storage_offset()}
    if t.dtype in (torch.float16, torch.bfloat16):
        d["bits"] = bits16(t)
        d["values"] = f32_list(t)
    elif t.dtype in (torch.int64, torch.int32, torch.uint8, torch.bool):
        d["values"] = [int(x) for x in t.reshape(-1).tolist()]
    elif t.dtype == torch.float64:
        d["values"] = [num(x) for x in t.reshape(-1).tolist()]
        d["values_f32"] = f32_list(t)
    else:
        d["values"] = f32_list(t)
    return d


class Tiny(nn.Module):
    """A module whose state_dict has the usual mix: conv, GroupNorm, Linear, BatchNorm buffers (int64 counter)."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv3d(1, 2, kernel_size=1)
        self.norm = nn.GroupNorm(1, 2)
        self.fc = nn.Linear(3, 2)
        self.bn = nn.BatchNorm1d(2)


class OsSystem:
    def __reduce__(self):
        return (os.system, ("echo this must never run",))


class EvalIt:
    def __reduce__(self):
        return (eval, ("1+1",))


class Foo:
    def __init__(self):
        self.x = 1


def save(obj, name, **kw):
    torch.save(obj, OUT / name, **kw)


def make_readers():
    expected = {}
    torch.manual_seed(0)
    m = Tiny()
    with torch.no_grad():
        m.bn.running_mean.copy_(torch.tensor([0.5, -0.25]))
        m.bn.num_batches_tracked.fill_(7)
    sd = m.state_dict()
    save(sd, "bare.pth")
    expected["bare"] = {k: describe(v) for k, v in sd.items()}

    torch.manual_seed(1)
    thesis = collections.OrderedDict()
    thesis["embedding.weight"] = torch.randn(5, 3)
    thesis["autoencoder.encoder.blocks.0.conv.weight"] = torch.randn(2, 3, 1, 1, 1)
    thesis["autoencoder.encoder.blocks.0.conv.bias"] = torch.randn(2)
    save({"model": thesis}, "thesis-container.pth")
    expected["thesis-container"] = {k: describe(v) for k, v in thesis.items()}

    # A MONAI-bundle / Lightning style container with an optimizer state beside the weights.
    other = Tiny()
    opt = torch.optim.Adam(other.parameters(), lr=1e-3)
    other.fc(torch.ones(1, 3)).sum().backward()
    opt.step()
    save({"state_dict": sd, "epoch": 3, "optimizer": opt.state_dict(), "best_metric": 0.125}, "bundle-container.pth")

    half = collections.OrderedDict()
    half["w"] = torch.tensor([[1.0, -2.5, 65504.0], [6.1035e-05, 0.0, -0.0]], dtype=torch.float16)
    half["b"] = torch.tensor([0.1, 0.2], dtype=torch.float16)
    save(half, "fp16.pth")
    expected["fp16"] = {k: describe(v) for k, v in half.items()}

    bf = collections.OrderedDict()
    bf["w"] = torch.tensor([[1.0, -2.5, 3.0e38], [1.0e-38, 0.1, -0.0]], dtype=torch.bfloat16)
    save(bf, "bf16.pth")
    expected["bf16"] = {k: describe(v) for k, v in bf.items()}

    f64 = collections.OrderedDict()
    f64["w"] = torch.tensor([1.0 / 3.0, -2.0, 1e-40, 1e300], dtype=torch.float64)
    save(f64, "float64.pth")
    expected["float64"] = {k: describe(v) for k, v in f64.items()}

    base = torch.arange(24, dtype=torch.float32).reshape(2, 3, 4)
    nc = collections.OrderedDict()
    nc["transposed"] = base[0].t()                      # stride (1, 4)
    nc["strided"] = base[:, :, ::2]                     # stride (12, 4, 2)
    nc["permuted"] = base.permute(2, 0, 1)              # stride (1, 12, 4)
    nc["offset_slice"] = base[1, 1:, 1:3]               # offset 17, stride (4, 1)
    nc["expanded"] = torch.tensor([5.0, 6.0]).reshape(2, 1).expand(2, 3)  # stride (1, 0)
    save(nc, "noncontiguous.pth")
    expected["noncontiguous"] = {k: describe(v) for k, v in nc.items()}

    whole = torch.arange(10, dtype=torch.float32) * 0.5
    shared = collections.OrderedDict()
    shared["whole"] = whole
    shared["mid"] = whole[2:6]
    shared["grid"] = whole.view(2, 5)
    save(shared, "shared-storage.pth")
    expected["shared-storage"] = {k: describe(v) for k, v in shared.items()}

    p = nn.Parameter(torch.tensor([1.5, -1.5]))
    save({"p": p, "plain": torch.tensor([2.0])}, "parameter.pth")
    expected["parameter"] = {"p": describe(p), "plain": describe(torch.tensor([2.0]))}

    save(sd, "protocol4.pth", pickle_protocol=4)
    save(sd, "protocol5.pth", pickle_protocol=5)

    save({"model": sd, "evil": OsSystem()}, "forbidden-os-system.pth")
    save({"evil": EvalIt()}, "forbidden-eval.pth")
    save({"obj": Foo()}, "forbidden-main-class.pth")
    save({"model": sd, "array": np.arange(3)}, "forbidden-numpy.pth")
    # The name each file's pickle actually uses: protocol 2 writes eval as __builtin__.eval and os.system as
    # posix.system (its __module__ on Linux); numpy 2 arrays reduce through numpy._core.multiarray._reconstruct.
    import pickletools
    allowed = {"collections.OrderedDict", "torch._utils._rebuild_tensor_v2", "torch._utils._rebuild_parameter"}
    expected["forbidden"] = {}
    for name in ("forbidden-os-system", "forbidden-eval", "forbidden-main-class", "forbidden-numpy"):
        with zipfile.ZipFile(OUT / f"{name}.pth") as z:
            pkl = z.read([n for n in z.namelist() if n.endswith("/data.pkl")][0])
        for op, arg, pos in pickletools.genops(pkl):
            if op.name == "GLOBAL" and not (arg.replace(" ", ".") in allowed or arg.startswith("torch ")):
                expected["forbidden"][name] = {"global": arg.replace(" ", "."), "offset": pos}
                break

    raw = (OUT / "bare.pth").read_bytes()
    (OUT / "truncated.pth").write_bytes(raw[: len(raw) * 2 // 3])
    expected["truncated"] = {"size": len(raw) * 2 // 3, "full": len(raw)}

    # Re-zipped with deflate by another tool: torch writes stored entries only.
    with zipfile.ZipFile(OUT / "bare.pth") as src, zipfile.ZipFile(OUT / "compressed.pth", "w", zipfile.ZIP_DEFLATED) as dst:
        for info in src.infolist():
            dst.writestr(info.filename, src.read(info.filename))
    expected["compressed"] = {"first_entry": zipfile.ZipFile(OUT / "compressed.pth").namelist()[0]}

    save(sd, "legacy.pth", _use_new_zipfile_serialization=False)

    # Opcode offset check: a valid zip whose data.pkl holds an opcode the reader refuses (EMPTY_SET at byte 2).
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_STORED) as z:
        z.writestr("archive/data.pkl", b"\x80\x02\x8f.")
        z.writestr("archive/byteorder", b"little")
    (OUT / "bad-opcode.pth").write_bytes(buf.getvalue())
    expected["bad-opcode"] = {"opcode": "0x8f", "name": "EMPTY_SET", "offset": 2}
    return expected


def make_safetensors_reference():
    from safetensors.torch import save_file

    t = collections.OrderedDict()
    t["conv.weight"] = torch.arange(12, dtype=torch.float32).reshape(2, 2, 3) * 0.25 - 1.0
    t["conv.bias"] = torch.tensor([0.5, -0.5], dtype=torch.float32)
    t["half"] = torch.tensor([1.0, -2.0, 0.5], dtype=torch.float16)
    t["brain"] = torch.tensor([1.0, 3.0e38], dtype=torch.bfloat16)
    t["steps"] = torch.tensor([7, -1], dtype=torch.int64)
    t["mask"] = torch.tensor([True, False, True], dtype=torch.bool)
    t["scalar"] = torch.tensor(2.5, dtype=torch.float64)
    t["empty"] = torch.zeros(0, 3, dtype=torch.float32)
    # One metadata key only: the Python package writes metadata in hash order, so more keys are not reproducible.
    save_file(t, OUT / "reference.safetensors", metadata={"format": "pt"})
    ref = {"metadata": {"format": "pt"}, "tensors": {k: describe(v) for k, v in t.items()}}
    (OUT / "reference.json").write_text(json.dumps(ref, indent=1, allow_nan=False) + "\n")


# ----------------------------------------------------------------------------------------------------------------
# Key schemes: generative 0.2.3 vs monai 1.6 on the same tiny architectures


def g_to_m(sd, want=None):
    """Generative 0.2.3 names -> MONAI core names, written here independently of the TypeScript table. It is
    checked against MONAI's own load_old_state_dict (keys and values) and by equal forwards. `want` (the target
    model's keys) decides per block whether it has an output projection (include_fc) and a fused qkv
    (use_combined_linear): MONAI 1.6's SPADEDiffusionModelUNet up blocks ignore both switches."""
    out = collections.OrderedDict()
    blocks = {k[: -len(".to_q.weight")] for k in sd if k.endswith(".to_q.weight")}
    spatial = {b for b in blocks if not b.endswith((".attn1", ".attn2"))}  # AttentionBlock -> SpatialAttentionBlock
    cross = blocks - spatial                                              # BasicTransformerBlock attn1 / attn2
    has = (lambda key: True) if want is None else (lambda key: key in want)
    for k, v in sd.items():
        stem, leaf, param = k.rsplit(".", 2)[0], k.rsplit(".", 2)[1], k.rsplit(".", 1)[1]
        if stem in spatial and leaf in ("to_q", "to_k", "to_v"):
            n = f"{stem}.attn.{leaf}.{param}"
        elif stem in spatial and leaf == "proj_attn":
            n = f"{stem}.attn.out_proj.{param}"
            if not has(n):
                continue
        elif k.endswith((".to_out.0.weight", ".to_out.0.bias")) and k.rsplit(".", 3)[0] in cross:
            n = f"{k.rsplit('.', 3)[0]}.out_proj.{param}"
            if not has(n):
                continue
        elif ".conv.conv." in k and (".upsampler." in k or k.startswith("decoder.blocks.")):
            n = k.replace(".conv.conv.", ".postconv.conv.")
        elif ".param_free_norm.N." in k:
            n = k.replace(".param_free_norm.N.", ".param_free_norm.")
        else:
            n = k
        out[n] = v.clone()
    # SABlock(use_combined_linear=True): one qkv Linear, rows [q; k; v]; cross-attention (attn2) is never fused
    for b in [f"{b}.attn" for b in spatial] + [b for b in cross if b.endswith(".attn1")]:
        for param in ("weight", "bias"):
            if f"{b}.to_q.{param}" in out and want is not None and f"{b}.qkv.weight" in want:
                out[f"{b}.qkv.{param}"] = torch.cat([out.pop(f"{b}.to_{x}.{param}") for x in "qkv"], 0)
    return out


def packed(sd):
    """The same tensors as views of one storage per dtype: torch.save then writes one zip entry per dtype instead of
    one per tensor (about 250 bytes of zip headers and alignment each), which keeps the fixtures small; it also
    exercises storage offsets."""
    out = collections.OrderedDict()
    by_dtype = collections.defaultdict(list)
    for k, v in sd.items():
        by_dtype[v.dtype].append(k)
    for dtype, keys in by_dtype.items():
        flat = torch.cat([sd[k].reshape(-1) for k in keys]) if keys else None
        off = 0
        for k in keys:
            n = sd[k].numel()
            out[k] = flat[off:off + n].view(sd[k].shape)
            off += n
    return collections.OrderedDict((k, out[k]) for k in sd)


ARCHS = {
    "unet": ("DiffusionModelUNet", dict(spatial_dims=2, in_channels=1, out_channels=1, num_res_blocks=1, attention_levels=(False, True),
                                        norm_num_groups=2, num_head_channels=2, resblock_updown=False), (2, 4)),
    "unet-cross": ("DiffusionModelUNet", dict(spatial_dims=2, in_channels=1, out_channels=1, num_res_blocks=1, attention_levels=(False, True),
                                              norm_num_groups=2, num_head_channels=2, with_conditioning=True, cross_attention_dim=3, resblock_updown=True), (2, 4)),
    "ae": ("AutoencoderKL", dict(spatial_dims=2, in_channels=1, out_channels=1, latent_channels=1, num_res_blocks=1, norm_num_groups=2,
                                 attention_levels=(False, True), with_encoder_nonlocal_attn=True, with_decoder_nonlocal_attn=True), (2, 4)),
    "spade-unet": ("SPADEDiffusionModelUNet", dict(spatial_dims=2, label_nc=2, in_channels=1, out_channels=1, num_res_blocks=1,
                                                   attention_levels=(False, True), norm_num_groups=2, num_head_channels=2, with_conditioning=True,
                                                   cross_attention_dim=3, resblock_updown=False, spade_intermediate_channels=2), (2, 4)),
    "spade-ae": ("SPADEAutoencoderKL", dict(spatial_dims=2, label_nc=2, in_channels=1, out_channels=1, latent_channels=1, num_res_blocks=1,
                                            norm_num_groups=2, attention_levels=(False, True), spade_intermediate_channels=2,
                                            with_encoder_nonlocal_attn=True, with_decoder_nonlocal_attn=True), (2, 4)),
}


def forward(net, cls, kw, x, seg, ctx):
    with torch.no_grad():
        if cls == "DiffusionModelUNet":
            return net(x, torch.tensor([10.0]), context=ctx if kw.get("with_conditioning") else None)
        if cls == "SPADEDiffusionModelUNet":
            return net(x, torch.tensor([10.0]), seg=seg, context=ctx)
        if cls == "AutoencoderKL":
            return net.decode(net.encode(x)[0])
        return net.decode(net.encode(x)[0], seg)


def make_key_schemes():
    import generative.networks.nets as G
    import monai.networks.nets as M

    summary = {}
    for arch, (cls, kw, ch) in ARCHS.items():
        torch.manual_seed(3)
        g = getattr(G, cls)(**kw, num_channels=ch).eval()
        with torch.no_grad():  # zero-initialised layers would hide a misplaced tensor: randomise everything
            for prm in g.parameters():
                prm.copy_(torch.randn_like(prm) * 0.3)
        gsd = g.state_dict()
        save(packed(gsd), f"{arch}-generative.pth")

        m = getattr(M, cls)(**kw, channels=ch).eval()
        msd = g_to_m(gsd)
        if hasattr(m, "load_old_state_dict"):
            m.load_old_state_dict(collections.OrderedDict((k, v.clone()) for k, v in gsd.items()))
            theirs = m.state_dict()
            assert list(sorted(theirs)) == list(sorted(msd)), (arch, set(theirs) ^ set(msd))
            for k in theirs:
                if not k.endswith(("attn.out_proj.weight", "attn.out_proj.bias")) or "transformer_blocks" in k:
                    assert torch.equal(theirs[k], msd[k]), (arch, k)
            msd = theirs  # keep MONAI's own result (its out_proj choice) as the file
        else:
            m.load_state_dict(msd, strict=True)
        save(packed(m.state_dict()), f"{arch}-monai-core.pth")

        # include_fc=False + fused qkv: equal forward to generative once generative's applied-but-absent projections
        # (cross-attention attn1.to_out.0) are identities; generative never applies proj_attn.
        g2 = getattr(G, cls)(**kw, num_channels=ch).eval()
        g2.load_state_dict(gsd)
        with torch.no_grad():
            for name, mod in g2.named_modules():
                if name.endswith("attn1.to_out.0"):
                    mod.weight.copy_(torch.eye(mod.weight.shape[0]))
                    mod.bias.zero_()
        m2 = getattr(M, cls)(**kw, channels=ch, include_fc=False, use_combined_linear=True).eval()
        m2.load_state_dict(g_to_m(g2.state_dict(), want=set(m2.state_dict())), strict=True)
        if cls == "SPADEAutoencoderKL":
            # Not a naming difference: monai 1.6 passes eps=norm_eps (1e-6) to the SPADE decoder's parameter-free
            # GroupNorm where generative 0.2.3 keeps torch's default 1e-5; same weights, outputs differ by ~4e-4.
            for mod in m2.modules():
                if isinstance(mod, nn.GroupNorm) and not mod.affine:
                    assert mod.eps == kw.get("norm_eps", 1e-6)
                    mod.eps = 1e-5
        torch.manual_seed(4)
        x = torch.randn(1, 1, 8, 8)
        seg = torch.softmax(torch.randn(1, kw.get("label_nc", 1), 8, 8), 1)
        ctx = torch.randn(1, 1, kw.get("cross_attention_dim", 1) or 1)
        a, b = forward(g2, cls, kw, x, seg, ctx), forward(m2, cls, kw, x, seg, ctx)
        assert torch.allclose(a, b, atol=1e-5), (arch, (a - b).abs().max())
        save(packed(m2.state_dict()), f"{arch}-monai-core-nofc-fused.pth")

        summary[arch] = {
            "class": cls,
            "args": {**{k: list(v) if isinstance(v, tuple) else v for k, v in kw.items()}, "num_channels": list(ch)},
        }
    (OUT / "key-schemes.json").write_text(json.dumps(summary) + "\n")


def main():
    OUT.mkdir(parents=True, exist_ok=True)
    expected = make_readers()
    (OUT / "expected.json").write_text(json.dumps(expected, indent=1, allow_nan=False) + "\n")
    make_safetensors_reference()
    make_key_schemes()
    total = sum(p.stat().st_size for p in OUT.iterdir())
    print(f"wrote {len(list(OUT.iterdir()))} files, {total} bytes, to {OUT}")


if __name__ == "__main__":
    main()
