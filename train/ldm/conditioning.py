"""The mask UNet's condition (MONAI-COMPAT.md 1.2): ventricle volume over intracranial volume, min-max normalised
over the training set. ICV is every labelled voxel, as brain-ldm's intracranialVolumeMl counts it, so the
ratios the generator converts requests with match the ones trained on."""
from __future__ import annotations

import numpy as np
import torch

from .data import LabelSet


def volume_measures(labels: LabelSet, ventricle_labels: list[int]) -> dict[str, np.ndarray]:
    flat = labels.labels.reshape(labels.labels.shape[0], -1)
    ventricle = torch.isin(flat, torch.tensor(ventricle_labels, dtype=flat.dtype)).sum(1).double().numpy()
    icv = (flat != 0).sum(1).double().numpy()
    if (icv == 0).any():
        raise ValueError(f"label map {labels.names[int(np.argmax(icv == 0))]} has no labelled voxel")
    return {"ventricleMl": ventricle * labels.voxel_ml, "icvMl": icv * labels.voxel_ml, "ratio": ventricle / icv}


def conditioning_stats(measures: dict[str, np.ndarray]) -> dict:
    """What generator.json's `conditioning` needs from the training set."""
    return {
        "ratioMin": float(measures["ratio"].min()),
        "ratioMax": float(measures["ratio"].max()),
        "referenceIcvMl": float(np.median(measures["icvMl"])),
        "trainingVentricleMl": [float(measures["ventricleMl"].min()), float(measures["ventricleMl"].max())],
        "count": int(measures["ratio"].size),
    }


def normalised_volume(ratio: np.ndarray, stats: dict) -> np.ndarray:
    return (ratio - stats["ratioMin"]) / (stats["ratioMax"] - stats["ratioMin"])


def training_context(volume: torch.Tensor, dropout: float, generator: torch.Generator | None = None) -> torch.Tensor:
    """[B] normalised volumes -> context [B, 1, 2] = [volume, 1]; with probability `dropout` a row becomes the
    thesis' null condition [uniform random, 0] (classifier-free guidance dropout)."""
    b = volume.shape[0]
    drop = torch.rand(b, generator=generator) < dropout
    value = torch.where(drop, torch.rand(b, generator=generator), volume.float())
    flag = (~drop).float()
    return torch.stack([value, flag], dim=-1)[:, None, :]
