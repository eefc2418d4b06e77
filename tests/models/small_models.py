"""Small CPU configurations of every network in ``domadapt.models.MODELS`` (no downloads)."""

from __future__ import annotations

import functools

import torch

from domadapt.models import MODELS

# name -> (constructor kwargs, input shape). Every MODELS entry must appear here.
SMALL: dict[str, tuple[dict, tuple[int, ...]]] = {
    "ResNetClassifier": ({"arch": "resnet18", "num_classes": 7, "bottleneck_dim": 16}, (2, 3, 32, 32)),
    "DigitsNet": ({"num_classes": 10, "num_features": 24}, (4, 3, 32, 32)),
    "LeNet": ({"num_classes": 10, "num_features": 24, "bottleneck": 16}, (4, 3, 32, 32)),
    "SmpSegmenter": (
        {"arch": "Unet", "encoder_name": "resnet18", "num_classes": 5, "decoder_channels": (32, 16, 16, 8, 8)},
        (2, 3, 64, 64),
    ),
    "DeepLabV2": ({"backbone": "resnet50", "num_classes": 5}, (1, 3, 33, 33)),
    "DAFormerSegmenter": (
        {"encoder_name": "mit_b0", "num_classes": 5, "encoder_weights": None, "embed_dims": 32},
        (2, 3, 64, 64),
    ),
    "DynamicResNet": ({"arch": "resnet18", "num_classes": 7, "bottleneck_dim": 16}, (2, 3, 32, 32)),
    "DynamicDigitsNet": ({"num_classes": 10, "num_features": 24}, (4, 3, 32, 32)),
}


def build(name: str, seed: int = 0, **overrides) -> torch.nn.Module:
    """The small configuration of ``MODELS[name]``, initialised from ``seed``."""
    kwargs, _ = SMALL[name]
    torch.manual_seed(seed)
    return MODELS[name](**{**kwargs, **overrides})


def example_input(name: str, seed: int = 1) -> torch.Tensor:
    """A random input of the small configuration's shape."""
    g = torch.Generator().manual_seed(seed)
    return torch.randn(*SMALL[name][1], generator=g)


@functools.lru_cache(maxsize=None)
def shared(name: str) -> torch.nn.Module:
    """One instance per name for tests that only read the model (building is the slow part)."""
    return build(name)
