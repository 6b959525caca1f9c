"""The training set written by train/make_training_set.sh, read into memory (it is small at the reduced grid).

Layout of --data DIR:
  split.json            which subjects are held out and why
  labels/*.nii.gz       training label maps (uint8 SynthSeg values): the prepared training subjects and their
                        augmented copies (<subject>_aug<NNN>)
  images/<stem>_img<NNN>.nii.gz   synthesized images (float32 in [0, 1]) for labels/<stem>.nii.gz
  heldout/labels, heldout/images  the same for the held-out subjects (validation only)
"""
from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path

import nibabel as nib
import numpy as np
import torch

_IMAGE_NAME = re.compile(r"^(?P<stem>.+)_img\d{3,}\.nii\.gz$")


class DataError(ValueError):
    pass


@dataclass
class LabelSet:
    names: list[str]
    labels: torch.Tensor          # [N, 1, D, H, W] uint8 SynthSeg values
    voxel_ml: float


@dataclass
class PairSet:
    names: list[str]              # image file names
    label_index: list[int]        # index into the LabelSet of each image's label map
    images: torch.Tensor          # [N, 1, D, H, W] float32


def _stem(p: Path) -> str:
    return p.name[: -len(".nii.gz")]


def _check_grid(path: Path, img, cfg: dict) -> None:
    g = cfg["grid"]
    shape = tuple(img.shape)
    if shape != tuple(g["shape"]):
        raise DataError(f"{path}: field 'shape' must be {g['shape']} (config grid.shape), got {list(shape)}")
    codes = "".join(nib.aff2axcodes(img.affine))
    if codes != g["orientation"]:
        raise DataError(f"{path}: field 'orientation' must be {g['orientation']} (config grid.orientation), got {codes}")
    zooms = [float(z) for z in img.header.get_zooms()[:3]]
    if not np.allclose(zooms, g["spacing_mm"], atol=1e-3):
        raise DataError(f"{path}: field 'pixdim' must be {g['spacing_mm']} mm (config grid.spacing_mm), got {zooms}")


def _read_labels(path: Path, cfg: dict) -> np.ndarray:
    img = nib.load(str(path))
    _check_grid(path, img, cfg)
    data = np.asarray(img.dataobj)
    if not np.issubdtype(data.dtype, np.integer):
        rounded = np.rint(data)
        if not np.array_equal(rounded, data):
            raise DataError(f"{path}: field 'data' must hold whole label values, got dtype {data.dtype} with fractions")
        data = rounded
    bad = np.setdiff1d(np.unique(data), cfg["labels"])
    if bad.size:
        raise DataError(f"{path}: field 'data' must hold only the 33 SynthSeg labels, got also {bad.tolist()[:10]}")
    return data.astype(np.uint8)


def _read_image(path: Path, cfg: dict) -> np.ndarray:
    img = nib.load(str(path))
    _check_grid(path, img, cfg)
    data = np.asarray(img.get_fdata(dtype=np.float32))
    lo, hi = float(data.min()), float(data.max())
    if lo < -1e-3 or hi > 1 + 1e-3:
        raise DataError(f"{path}: field 'data' must be intensities in [0, 1], got [{lo:.4g}, {hi:.4g}]")
    return np.clip(data, 0, 1)


def read_split(data_dir: Path) -> dict:
    path = data_dir / "split.json"
    if not path.exists():
        raise DataError(f"--data {data_dir}: split.json is missing (make it with train/make_training_set.sh)")
    return json.loads(path.read_text())


def load_labels(folder: Path, cfg: dict) -> LabelSet:
    files = sorted(folder.glob("*.nii.gz"))
    if not files:
        raise DataError(f"{folder}: no label maps (*.nii.gz)")
    arrays = [_read_labels(f, cfg) for f in files]
    voxel_ml = float(np.prod(cfg["grid"]["spacing_mm"])) / 1000.0
    return LabelSet([_stem(f) for f in files], torch.from_numpy(np.stack(arrays)[:, None]), voxel_ml)


def load_pairs(folder: Path, labels: LabelSet, cfg: dict) -> PairSet:
    files = sorted(folder.glob("*_img*.nii.gz"))
    if not files:
        raise DataError(f"{folder}: no synthesized images (<label>_img<NNN>.nii.gz)")
    where = {n: i for i, n in enumerate(labels.names)}
    index = []
    for f in files:
        m = _IMAGE_NAME.match(f.name)
        if not m or m["stem"] not in where:
            raise DataError(f"{f}: no label map {m['stem'] if m else f.name}.nii.gz beside it for this image")
        index.append(where[m["stem"]])
    images = np.stack([_read_image(f, cfg) for f in files])[:, None]
    return PairSet([f.name for f in files], index, torch.from_numpy(images))


def labels_to_indices(labels: torch.Tensor, label_values: list[int]) -> torch.Tensor:
    """SynthSeg values -> one-hot channel indices 0..32 (int64)."""
    lut = torch.zeros(256, dtype=torch.long)
    lut[torch.tensor(label_values)] = torch.arange(len(label_values))
    return lut[labels.long()]


def one_hot(labels: torch.Tensor, label_values: list[int]) -> torch.Tensor:
    """[B, 1, D, H, W] SynthSeg values -> [B, 33, D, H, W] float one-hot (the SPADE `seg`)."""
    idx = labels_to_indices(labels[:, 0], label_values)
    return torch.nn.functional.one_hot(idx, len(label_values)).movedim(-1, 1).float()
