"""The cases of the shared method tests: one per listed LightningModule, the adaptation methods
(:func:`domadapt.list_methods`) and the image translators (:func:`domadapt.list_translators`).

A case knows how to build its module small, feed it tiny data, watch its network, read its predictions and write
it in a recipe, so the same test functions (training, checkpoint round trip, schedule horizon, precision,
channels_last, kill-resume, export) run over every listed module.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any, Literal

import pytorch_lightning as pl
import torch
from torch import nn

import domadapt
from domadapt.data.datamodule import DomainAdaptationDataModule
from domadapt.data.transforms import IMAGENET_MEAN, IMAGENET_STD
from domadapt.losses import CORALLoss
from domadapt.methods import METHODS, TRANSLATORS
from tests.conftest import tiny_datamodule, tiny_net

SEGMENTATION_ONLY = frozenset({"OutputSpaceAdversarial", "AdvEnt", "DAFormer"})
TINY_TRANSLATION = dict(ngf=4, n_blocks=1, ndf=4, n_layers=2)


class MethodCase:
    """A listed adaptation method: a tiny network of its task, lr 0.01, class probabilities as predictions.

    Args:
        name: the class name in :data:`~domadapt.methods.METHODS`.

    Attributes:
        train_keys: per-step training logs that must be finite after a few steps.
        val_metric: the name of the per-domain validation metric (``val/<domain>/<name>``).
        val_range: the ``(low, high)`` range that metric lies in.
    """

    train_keys: tuple[str, ...] = ("train/loss_step",)
    val_range: tuple[float, float] = (0.0, 1.0)

    def __init__(self, name: str) -> None:
        self.name = name
        self.cls: type[pl.LightningModule] = {**METHODS, **TRANSLATORS}[name]

    def __str__(self) -> str:
        return self.name  # the pytest id

    @property
    def task(self) -> Literal["classification", "segmentation"]:
        return "segmentation" if self.name in SEGMENTATION_ONLY else "classification"

    @property
    def val_metric(self) -> str:
        return "acc" if self.task == "classification" else "miou"

    def kwargs(self) -> dict[str, Any]:
        """Constructor arguments besides ``net`` and ``lr`` (small, fast settings)."""
        return {"FeatureAlignment": {"loss": CORALLoss()}, "DANN": {"hidden": 16}, "CDAN": {"hidden": 16},
                "MCD": {"num_k": 2}, "CDSSL": {"ema_decay": 0.9},
                "DACS": {"mic_weight": 1.0, "mic_block": 8},
                "DAFormer": {"mic_weight": 1.0, "mic_block": 8, "psweight_ignore_top": 2, "psweight_ignore_bottom": 4,
                             "optimizer": "adamw", "lr_warmup_iters": 2}}.get(self.name, {})

    def build(self, **overrides: Any) -> pl.LightningModule:
        """The module, on :func:`~tests.conftest.tiny_net` (seeded), with ``overrides`` over :meth:`kwargs`."""
        return self.cls(net=tiny_net(self.task), lr=0.01, **{**self.kwargs(), **overrides})

    def reload(self, path: Path) -> pl.LightningModule:
        """``load_from_checkpoint`` with a freshly drawn network, so the weights can only come from the file."""
        net = tiny_net(self.task)
        torch.nn.init.normal_(next(net.parameters()))
        return self.cls.load_from_checkpoint(path, net=net, **self.kwargs())

    def datamodule(self, n: int = 32, batch_size: int = 8) -> DomainAdaptationDataModule:
        return tiny_datamodule(self.task, n=n, batch_size=batch_size)

    def example(self, n: int = 3) -> torch.Tensor:
        """Random images of the tiny data's size, ``(n, 3, H, W)``."""
        return torch.randn(n, 3, 32, 32) if self.task == "classification" else torch.randn(n, 3, 32, 48)

    def predict(self, module: pl.LightningModule, x: torch.Tensor) -> torch.Tensor:
        """The prediction path (what ``domadapt export`` writes), in eval mode without gradients."""
        module.eval()
        with torch.no_grad():
            return self.prediction_path(module)(x)

    def prediction_path(self, module: pl.LightningModule) -> Callable[[torch.Tensor], torch.Tensor]:
        """Images -> class probabilities."""
        return module.predict_probabilities

    def network(self, module: pl.LightningModule) -> nn.Module:
        """The network whose forward calls the precision and memory-format tests watch."""
        return module.net

    def recipe_model(self) -> dict[str, Any]:
        """The ``model`` section of a ``domadapt fit`` recipe (lr 0.01, the same small settings)."""
        net = ({"class_path": "tests.conftest.TinySegNet"} if self.task == "segmentation" else
               {"class_path": "domadapt.models.DigitsNet", "init_args": {"num_classes": 4, "num_features": 16}})
        return {"class_path": f"domadapt.methods.{self.name}",
                "init_args": {"net": net, "lr": 0.01, **_recipe_values(self.kwargs())}}


class TranslatorCase(MethodCase):
    """A listed image translator (BDL's CycleGAN stage): tiny generators and discriminators (ngf = ndf = 4, one
    residual block), an image pool of 2, on the segmentation data (labels unused, images ImageNet-normalised by
    :class:`~domadapt.data.Augment`); the prediction is the source -> target translation.
    """

    train_keys = ("train/loss_G_step", "train/loss_D_step")
    val_metric = "cycle_l1"
    val_range = (0.0, 2.0)  # L1 between images in [-1, 1]

    @property
    def task(self) -> Literal["segmentation"]:
        return "segmentation"

    def kwargs(self) -> dict[str, Any]:
        return {**TINY_TRANSLATION, "pool_size": 2, "input_mean": IMAGENET_MEAN, "input_std": IMAGENET_STD}

    def build(self, **overrides: Any) -> pl.LightningModule:
        torch.manual_seed(0)
        return self.cls(**{**self.kwargs(), **overrides})

    def reload(self, path: Path) -> pl.LightningModule:
        torch.manual_seed(1234)  # another initialisation: the weights can only come from the file
        return self.cls.load_from_checkpoint(path)

    def prediction_path(self, module: pl.LightningModule) -> Callable[[torch.Tensor], torch.Tensor]:
        """Source images -> target-domain images (``G_A``)."""
        return module.translate

    def network(self, module: pl.LightningModule) -> nn.Module:
        return module.g_a

    def recipe_model(self) -> dict[str, Any]:
        return {"class_path": f"domadapt.methods.{self.name}", "init_args": _recipe_values(self.kwargs())}


def _recipe_values(kwargs: dict[str, Any]) -> dict[str, Any]:
    """Constructor arguments as YAML values: modules as ``class_path`` entries, tuples as lists."""
    def value(v: Any) -> Any:
        if isinstance(v, nn.Module):
            return {"class_path": f"{type(v).__module__}.{type(v).__name__}"}
        return list(v) if isinstance(v, tuple) else v

    return {k: value(v) for k, v in kwargs.items()}


CASES: list[MethodCase] = ([MethodCase(name) for name in domadapt.list_methods()]
                           + [TranslatorCase(name) for name in domadapt.list_translators()])
