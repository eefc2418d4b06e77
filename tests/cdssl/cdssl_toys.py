"""Small pieces for CDSSL tests: a YAML-instantiable random classification domain and hand-written
pseudo-label sets (so that tests control exactly which labels the sampler sees)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from domadapt.data.base import ArrayDataset, Transform
from domadapt.io import write_png
from domadapt.pseudo import writer
from tests.conftest import random_domain


class RandomClsDomain(ArrayDataset):
    """`tests.conftest.random_domain("classification", ...)` as a class (recipes name it with ``class_path``).

    Args:
        n: number of images.
        seed: random seed.
        shift: colour shift (the target domain is shifted).
        transform: see :class:`~domadapt.data.base.DomainDataset`.
        with_labels: see :class:`~domadapt.data.base.DomainDataset`.
    """

    def __init__(self, n: int = 32, seed: int = 0, shift: float = 0.0, transform: Transform | None = None,
                 with_labels: bool = True) -> None:
        d = random_domain("classification", n, seed, shift=shift)  # 32x32, what DigitsNet expects
        super().__init__(d.images, d.targets, d.classes, name=f"randcls{seed}-n{n}", transform=transform,
                         with_labels=with_labels)


def write_pseudo_set(dataset, labels, out: Path) -> Path:
    """A finished pseudo-label set for ``dataset``: ``(N,)`` labels (classification) or ``(N, H, W)`` masks."""
    dataset.setup()
    writer.start(out)
    if dataset.task == "segmentation":
        names, _ = writer.sample_names(dataset)
        for name, mask in zip(names, labels):
            write_png(writer.label_path(out, name), np.asarray(mask, np.uint8))
    else:
        writer.write_table(out, np.asarray(labels), np.ones(len(labels)))
    writer.finish(out, {"task": dataset.task, "images": writer.image_list(dataset),
                        "model": {"sha256": "hand-written", "source": "test"}, "kept_ratio": {"overall": 1.0}})
    return out
