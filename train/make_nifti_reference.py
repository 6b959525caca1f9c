#!/usr/bin/env python3
"""Reference numbers for the NIfTI reader and the label-map preparation, made with nibabel (and MONAI for the
thesis resampling), from the real files in ../shared/data (never copied into the repository).

    .venv/bin/python train/make_nifti_reference.py                 # writes test/fixtures/nifti/reference.json
    .venv/bin/python train/make_nifti_reference.py --check DIR     # checks files our writer produced (see below)

Per file (three SynthSeg training label maps and the MNI ICBM152 2009a T1) the JSON holds:
  - the raw header fields as stored (nibabel Nifti1Header.from_fileobj with check=False: the in-memory header of a
    loaded image has vox_offset and scl_* reset, so it is not what the file says);
  - img.affine (nibabel's get_best_affine), the qform and sform affines, shape, dtype, aff2axcodes;
  - a few voxel values at fixed indices (random ones and non-zero ones, seeded);
  - label maps: voxel count per raw label, per SynthSeg label after the generation -> output mapping (built here
    independently from SynthSeg's own generation_labels.npy and synthseg_segmentation_labels.npy, with 24 kept as in
    SynthSeg 2.0), ventricle counts, the affine and a few voxels of nibabel's as_closest_canonical (RAS) and of
    the IPL reorientation (nibabel ornt_transform), and per-label counts after MONAI Orientation('IPL') +
    Spacing((1.667, 1.75, 1.667), mode='nearest') (the thesis preprocessing, MONAI-COMPAT.md 1.2);
  - the T1: sum, min, max and the count of non-zero voxels.

--check DIR reads DIR/expected.json written by test/nifti/nifti-write.spec.ts when BRAIN_LDM_NIFTI_CHECK_DIR=DIR
is set, and checks that nibabel reads every file listed there with the expected shape, dtype, affine (img.affine,
qform and sform), header fields and data (sha256 of the little-endian voxel bytes in file order).
"""

from __future__ import annotations

import argparse
import gzip
import hashlib
import importlib.metadata as md
import json
import math
import os
import sys
import warnings

warnings.filterwarnings("ignore")

import nibabel as nib  # noqa: E402
import numpy as np  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DATA = os.path.join(os.path.dirname(ROOT), "shared", "data")
OUT = os.path.join(ROOT, "test", "fixtures", "nifti", "reference.json")

LABEL_MAPS = ["training_seg_01.nii.gz", "training_seg_02.nii.gz", "training_seg_13.nii.gz"]
T1 = "mni_icbm152_t1_tal_nlin_sym_09a_converted.nii.gz"
VENTRICLES = [4, 5, 43, 44, 14, 15]
THESIS_SPACING = (1.667, 1.75, 1.667)


def clean(v):
    """JSON-safe: NaN/inf -> None, numpy scalars -> Python numbers, bytes -> str."""
    if isinstance(v, dict):
        return {str(k): clean(x) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return [clean(x) for x in v]
    if isinstance(v, np.ndarray):
        return clean(v.tolist())
    if isinstance(v, (bytes, np.bytes_)):
        return bytes(v).split(b"\0", 1)[0].decode("latin1")
    if isinstance(v, (np.integer,)):
        return int(v)
    if isinstance(v, (float, np.floating)):
        f = float(v)
        return f if math.isfinite(f) else None
    return v


def raw_header(path):
    opener = gzip.open if path.endswith(".gz") else open
    with opener(path, "rb") as f:
        hdr = nib.Nifti1Header.from_fileobj(f, check=False)
    fields = ["sizeof_hdr", "dim_info", "dim", "intent_p1", "intent_p2", "intent_p3", "intent_code", "datatype",
              "bitpix", "slice_start", "pixdim", "vox_offset", "scl_slope", "scl_inter", "slice_end", "slice_code",
              "xyzt_units", "cal_max", "cal_min", "slice_duration", "toffset", "glmax", "glmin", "descrip",
              "aux_file", "qform_code", "sform_code", "quatern_b", "quatern_c", "quatern_d", "qoffset_x",
              "qoffset_y", "qoffset_z", "srow_x", "srow_y", "srow_z", "intent_name", "magic"]
    out = {k: clean(hdr[k][()] if hdr[k].shape == () else hdr[k]) for k in fields}
    out["endianness"] = "little" if hdr.endianness == "<" else "big"
    return hdr, out


def synthseg_lut():
    pri = os.path.join(DATA, "synthseg-label-maps", "labels_classes_priors")
    gen = np.load(os.path.join(pri, "generation_labels.npy"))
    seg = np.load(os.path.join(pri, "synthseg_segmentation_labels.npy"))
    assert len(gen) == len(seg) == 54, (len(gen), len(seg))
    lut = np.full(1024, -1, np.int64)
    lut[gen] = seg
    lut[24] = 24  # SynthSeg 2.0 keeps CSF (EVALUATION.md 2.3); the 1.0 table maps it to 0
    return lut, {int(g): int(s if g != 24 else 24) for g, s in zip(gen, seg)}


def sample_indices(shape, data, rng, n_random=12, n_nonzero=12):
    idx = [tuple(int(rng.integers(0, s)) for s in shape) for _ in range(n_random)]
    nz = np.argwhere(data != 0)
    if len(nz):
        for r in rng.choice(len(nz), size=min(n_nonzero, len(nz)), replace=False):
            idx.append(tuple(int(v) for v in nz[r]))
    idx.append(tuple(s - 1 for s in shape))
    idx.append((0, 0, 0))
    return idx


def counts(arr):
    vals, cnt = np.unique(arr, return_counts=True)
    return {int(v): int(c) for v, c in zip(vals, cnt)}


def monai_thesis(mapped, affine):
    import torch
    from monai.data import MetaTensor
    from monai.transforms import Orientation, Spacing

    torch.set_num_threads(4)
    t = MetaTensor(torch.from_numpy(mapped[None].astype(np.float32)), affine=torch.from_numpy(affine))
    t = Orientation(axcodes="IPL")(t)
    oriented_affine = t.affine.numpy().copy()
    r = Spacing(pixdim=THESIS_SPACING, mode="nearest")(t)
    arr = r[0].numpy().astype(np.int64)
    a = r.affine.numpy()
    return {
        "orientation_affine": clean(oriented_affine),
        "affine": clean(a),
        "shape": list(arr.shape),
        "label_counts": counts(arr),
        "ventricle_voxels": int(np.isin(arr, VENTRICLES).sum()),
        "voxel_mm3": float(abs(np.linalg.det(a[:3, :3]))),
    }


def describe_file(rel, rng, label_map):
    path = os.path.join(DATA, rel)
    img = nib.load(path)
    hdr, raw = raw_header(path)
    data = np.asanyarray(img.dataobj)
    entry = {
        "path": rel,
        "shape": list(img.shape),
        "dtype": str(img.get_data_dtype()),
        "header": raw,
        "affine": clean(img.affine),
        "qform": clean(hdr.get_qform()),
        "sform": clean(hdr.get_sform()),
        "axcodes": "".join(nib.aff2axcodes(img.affine)),
        "zooms": clean(img.header.get_zooms()),
    }
    idx = sample_indices(img.shape, data, rng)
    entry["voxels"] = [{"index": list(i), "value": clean(data[i])} for i in idx]
    if label_map:
        lab = data.astype(np.int64)
        assert np.array_equal(lab, data), f"{rel}: non-integer label values"
        lut, table = synthseg_lut()
        assert (lut[np.unique(lab)] >= 0).all(), f"{rel}: label outside SynthSeg's generation labels"
        mapped = lut[lab]
        entry["label_counts"] = counts(lab)
        entry["synthseg_counts"] = counts(mapped)
        entry["ventricle_voxels_raw"] = int(np.isin(lab, VENTRICLES).sum())
        entry["ventricle_voxels_mapped"] = int(np.isin(mapped, VENTRICLES).sum())
        entry["nonzero_voxels_mapped"] = int((mapped != 0).sum())
        entry["generation_to_synthseg"] = table
        can = nib.as_closest_canonical(img)
        cdata = np.asanyarray(can.dataobj)
        entry["canonical"] = {
            "affine": clean(can.affine),
            "shape": list(can.shape),
            "voxels": [{"index": list(i), "value": clean(cdata[i])} for i in sample_indices(can.shape, cdata, rng, 6, 6)],
        }
        start = nib.orientations.io_orientation(img.affine)
        end = nib.orientations.axcodes2ornt("IPL")
        tr = nib.orientations.ornt_transform(start, end)
        ipl = nib.orientations.apply_orientation(data, tr)
        ipl_aff = img.affine @ nib.orientations.inv_ornt_aff(tr, img.shape)
        entry["ipl"] = {
            "affine": clean(ipl_aff),
            "shape": list(ipl.shape),
            "voxels": [{"index": list(i), "value": clean(ipl[i])} for i in sample_indices(ipl.shape, ipl, rng, 6, 6)],
        }
        entry["monai_thesis"] = monai_thesis(mapped, img.affine)
    else:
        f = data.astype(np.float64)
        entry["stats"] = {"sum": float(f.sum()), "min": float(f.min()), "max": float(f.max()),
                          "nonzero": int((f != 0).sum())}
    return entry


def make_reference(out):
    rng = np.random.default_rng(20260311)
    files = [describe_file(os.path.join("synthseg-label-maps", f), rng, True) for f in LABEL_MAPS]
    files.append(describe_file(os.path.join("mni-icbm152-2009a", T1), rng, False))
    ref = {
        "generator": "train/make_nifti_reference.py",
        "versions": {p: md.version(p) for p in ("nibabel", "numpy", "monai", "torch")},
        "thesis_spacing": list(THESIS_SPACING),
        "files": files,
    }
    os.makedirs(os.path.dirname(out), exist_ok=True)
    with open(out, "w") as f:
        json.dump(clean(ref), f, indent=1, allow_nan=False)
        f.write("\n")
    print(f"wrote {out} ({os.path.getsize(out)} bytes)")


def check_dir(d):
    with open(os.path.join(d, "expected.json")) as f:
        expected = json.load(f)
    bad = 0
    for e in expected["files"]:
        path = os.path.join(d, e["file"])
        img = nib.load(path)
        hdr = img.header
        data = np.asanyarray(img.dataobj)
        problems = []
        if list(img.shape) != e["shape"]:
            problems.append(f"shape {img.shape} != {e['shape']}")
        if str(img.get_data_dtype()) != e["dtype"]:
            problems.append(f"dtype {img.get_data_dtype()} != {e['dtype']}")
        want = np.array(e["affine"], dtype=np.float64)
        for name, got in (("affine", img.affine), ("qform", hdr.get_qform()), ("sform", hdr.get_sform())):
            if not np.allclose(got, want, rtol=0, atol=e.get("affine_atol", 1e-5)):
                problems.append(f"{name} {got.tolist()} != {want.tolist()}")
        _, stored = raw_header(path)  # img.header has vox_offset / scl_* reset; compare what the file says
        for k, v in e.get("header", {}).items():
            got = stored[k]
            if got != v:
                problems.append(f"header {k} {got!r} != {v!r}")
        got_sha = hashlib.sha256(np.asarray(data, dtype=data.dtype.newbyteorder("<")).tobytes(order="F")).hexdigest()
        if got_sha != e["sha256"]:
            problems.append(f"data sha256 {got_sha} != {e['sha256']}")
        status = "ok" if not problems else "MISMATCH: " + "; ".join(problems)
        bad += bool(problems)
        print(f"{e['file']}: {img.shape} {img.get_data_dtype()} {''.join(nib.aff2axcodes(img.affine))} "
              f"sform_code {int(hdr['sform_code'])} qform_code {int(hdr['qform_code'])}: {status}")
    print(f"{len(expected['files']) - bad} of {len(expected['files'])} files read identically in nibabel {nib.__version__}")
    return 1 if bad else 0


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", default=OUT)
    ap.add_argument("--check", metavar="DIR", help="check files written by the test suite into DIR")
    args = ap.parse_args()
    if args.check:
        sys.exit(check_dir(args.check))
    if not os.path.isdir(DATA):
        sys.exit(f"make_nifti_reference: {DATA} not found (the shared data folder next to the repository)")
    make_reference(args.out)


if __name__ == "__main__":
    main()
