"""Tiny YAML-instantiable pieces for pipeline tests: a random segmentation domain and a recipe using it."""

from __future__ import annotations

from typing import Any

from domadapt.data.base import ArrayDataset, Transform
from tests.conftest import random_domain


class RandomSegDomain(ArrayDataset):
    """`tests.conftest.random_domain` as a class (recipes name it with ``class_path``).

    Args:
        n: number of images.
        seed: random seed (different seeds = different images).
        shift: colour shift (the target domain is shifted).
        height: image height.
        width: image width.
        transform: see :class:`~domadapt.data.base.DomainDataset`.
        with_labels: see :class:`~domadapt.data.base.DomainDataset`.
        limit: see :class:`~domadapt.data.base.DomainDataset`.
    """

    def __init__(self, n: int = 16, seed: int = 0, shift: float = 0.0, height: int = 32, width: int = 48,
                 transform: Transform | None = None, with_labels: bool = True, limit: int | None = None) -> None:
        d = random_domain("segmentation", n, seed, shift=shift, size=(height, width))
        super().__init__(d.images, d.targets, d.classes, task="segmentation", name=f"random{seed}-n{n}",
                         transform=transform, with_labels=with_labels, limit=limit)


def _domain(seed: int, shift: float, n: int) -> dict:
    return {"class_path": "tests.pipeline.pipeline_toys.RandomSegDomain",
            "init_args": {"n": n, "seed": seed, "shift": shift}}


def tiny_recipe(iterations: int = 2) -> dict[str, Any]:
    """An OutputSpaceAdversarial recipe on random 32x48 domains with a 3-layer net (seconds on CPU)."""
    return {
        "trainer": {"max_steps": 2 * iterations, "accelerator": "cpu", "devices": 1, "enable_progress_bar": False,
                    "enable_model_summary": False, "num_sanity_val_steps": 0, "limit_val_batches": 1,
                    "limit_test_batches": 1, "log_every_n_steps": 1},
        "model": {"class_path": "domadapt.methods.OutputSpaceAdversarial",
                  "init_args": {"net": {"class_path": "tests.conftest.TinySegNet", "init_args": {"num_classes": 4}},
                                "lr": 0.01, "adaptation_weight": 0.01}},
        "data": {"class_path": "domadapt.data.DomainAdaptationDataModule",
                 "init_args": {"sources": [_domain(0, 0.0, 16)], "target": _domain(1, 30.0, 16),
                               "target_val": _domain(2, 30.0, 8), "batch_size": 4}},
    }


def tiny_translation_recipe(iterations: int = 1) -> dict[str, Any]:
    """A CycleGAN (BDL translation stage) recipe with a 1-block generator on the same random domains."""
    recipe = tiny_recipe(iterations)
    recipe["model"] = {"class_path": "domadapt.methods.translation.Translation",
                       "init_args": {"ngf": 4, "n_blocks": 1, "ndf": 4, "n_layers": 1, "pool_size": 2,
                                     "sample_images": 0}}
    return recipe
