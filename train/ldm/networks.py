"""The four networks, built from a run config with MONAI core's own classes.

Attention keeps MONAI core's defaults (include_fc=True, separate to_q/k/v): SPADEDiffusionModelUNet in MONAI 1.6.1
ignores include_fc in its up blocks (train/KEY_SCHEMES.md, "Pitfall"), so only the default gives one behaviour in
every block, which the importer records as attentionOutputProjection=true.
"""
from __future__ import annotations

import torch
from torch import nn
from monai.networks.nets import AutoencoderKL, DiffusionModelUNet, SPADEAutoencoderKL, SPADEDiffusionModelUNet

# The four stages, their MONAI class and the bundle directory each one is exported to (generator.json names them).
STAGES = ("mask-ae", "mask-unet", "spade-ae", "spade-unet")
# Stages a config may add: they retrain part of a network above and export through its bundle. "mask-decoder"
# fine-tunes mask-ae's decoder on the mask UNet's latents (stages.train_mask_decoder); when a config has it, the
# mask-autoencoder bundle takes its weights.
OPTIONAL_STAGES = ("mask-decoder",)
ALL_STAGES = STAGES + OPTIONAL_STAGES
NETWORK_CLASS = {
    "mask-ae": "AutoencoderKL", "mask-unet": "DiffusionModelUNet",
    "spade-ae": "SPADEAutoencoderKL", "spade-unet": "SPADEDiffusionModelUNet",
}
BUNDLE_NAME = {
    "mask-ae": "mask-autoencoder", "mask-unet": "mask-unet",
    "spade-ae": "image-autoencoder", "spade-unet": "image-unet",
}
_CLASSES = {"AutoencoderKL": AutoencoderKL, "DiffusionModelUNet": DiffusionModelUNet,
            "SPADEAutoencoderKL": SPADEAutoencoderKL, "SPADEDiffusionModelUNet": SPADEDiffusionModelUNet}


class EmbeddingWrapper(nn.Module):
    """The thesis mask autoencoder input (T:src/custom_autoencoders.py): a learned vector per raw SynthSeg value.

    state_dict keys are `autoencoder.*` then `embedding.weight`, which is what `brain-ldm import` detects.
    """

    def __init__(self, autoencoder: AutoencoderKL, num_embeddings: int, embedding_dim: int) -> None:
        super().__init__()
        self.autoencoder = autoencoder
        self.embedding = nn.Embedding(num_embeddings, embedding_dim)

    def embed(self, labels: torch.Tensor) -> torch.Tensor:
        """[B, 1, D, H, W] integer SynthSeg values -> [B, E, D, H, W]."""
        return torch.movedim(self.embedding(labels[:, 0].long()), -1, 1)

    def forward(self, labels: torch.Tensor):
        return self.autoencoder(self.embed(labels))


def network_args(stage: str, cfg: dict) -> dict:
    """The MONAI constructor kwargs of a stage, exactly as written in the run config (`channels`, MONAI core's name)."""
    return dict(cfg[stage]["network"])


def build_network(stage: str, cfg: dict) -> nn.Module:
    """A freshly initialised network for `stage` (the mask autoencoder inside its EmbeddingWrapper)."""
    net = _CLASSES[NETWORK_CLASS[stage]](**network_args(stage, cfg))
    if stage == "mask-ae":
        emb = cfg[stage]["embedding"]
        net = EmbeddingWrapper(net, emb["num_embeddings"], emb["embedding_dim"])
    return net


def parameter_count(net: nn.Module) -> int:
    return sum(p.numel() for p in net.parameters())
