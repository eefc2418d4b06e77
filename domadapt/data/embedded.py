"""Datasets that need no download: built from data shipped inside installed packages.

What is real and what is synthetic:

* :class:`EmbeddedDigits` — the handwriting is **real**: scikit-learn's ``load_digits`` (1,797
  scanned 8x8 digits). The five domains are **synthetic constructions** on top of it
  (:mod:`domadapt.data.digit_domains`): ``digits`` (upscaled grey, the usual source),
  ``digits-photo`` (MNIST-M style: the digit cut out of a patch of a **real photograph** bundled
  with scikit-image), ``digits-inverted``, ``digits-colour`` and ``digits-noisy``.
* :class:`ToyCity` — the street scenes are **synthetic** (random layouts in Cityscapes train ids,
  :mod:`domadapt.data.toycity`). The ``source`` domain is flat-shaded; the ``target`` domain is
  textured with **real photographs** from scikit-image (brick, grass, gravel, ...), relit, blurred
  and noised, and seen from a lower camera.

Nothing is generated when a dataset is constructed. :meth:`~DomainDataset.setup` generates the
split (a few seconds) and caches it as ``.npz`` under :func:`cache_dir` / ``embedded-v<N>``;
later runs load the file. A corrupt or stale cache file is rebuilt, and two processes building at
once are harmless: each writes a private temporary file and renames it into place.
"""

from __future__ import annotations

import os
import warnings
import zipfile
import zlib
from collections.abc import Callable
from pathlib import Path
from typing import Any, ClassVar, Literal

import numpy as np

from domadapt.data import digit_domains, toycity
from domadapt.data.base import ClassificationDataset, SegmentationDataset, Transform
from domadapt.data.digit_domains import DIGIT_DOMAINS, DigitDomain
from domadapt.io import atomic_path

__all__ = ["CACHE_VERSION", "DIGIT_DOMAINS", "EmbeddedDigits", "ToyCity", "cache_dir", "cached_arrays"]

CACHE_VERSION = 2
"""Bump whenever a generator changes its output, so that old cache files are never reused."""


def cache_dir() -> Path:
    """Root of domadapt's user cache.

    ``$DOMADAPT_CACHE`` if set, else ``$XDG_CACHE_HOME/domadapt``, else ``~/.cache/domadapt``.
    Embedded datasets live in its ``embedded-v<CACHE_VERSION>`` sub-folder.
    """
    if os.environ.get("DOMADAPT_CACHE"):
        return Path(os.environ["DOMADAPT_CACHE"]).expanduser()
    xdg = os.environ.get("XDG_CACHE_HOME")
    return (Path(xdg).expanduser() if xdg else Path.home() / ".cache") / "domadapt"


Expected = dict[str, tuple[tuple[int, ...], str]]  # array name -> (shape, dtype)


def cached_arrays(name: str, build: Callable[[], dict[str, np.ndarray]], expect: Expected | None = None
                  ) -> dict[str, np.ndarray]:
    """Load ``name.npz`` from the versioned cache folder, or ``build()`` it and store it atomically.

    A file that cannot be read, or whose arrays do not match ``expect``, is rebuilt (with a warning)
    and replaced.

    Args:
        name: file stem (encodes every generator argument).
        build: returns the arrays to cache; called only on a miss or a bad file.
        expect: optional ``{array name: (shape, dtype)}`` the cached file must match.

    Returns:
        The arrays, identical whether built now or read back.
    """
    path = cache_dir() / f"embedded-v{CACHE_VERSION}" / f"{name}.npz"
    if path.exists():
        try:
            with np.load(path, allow_pickle=False) as z:
                arrays = {k: z[k] for k in z.files}
            if expect is None or all(k in arrays and arrays[k].shape == shape and arrays[k].dtype == dtype
                                     for k, (shape, dtype) in expect.items()):
                return arrays
            warnings.warn(f"{path}: cached arrays do not match the generator (keys, shapes or dtypes); rebuilding")
        except (OSError, ValueError, EOFError, KeyError, zipfile.BadZipFile, zlib.error) as e:
            warnings.warn(f"{path}: unreadable cache file ({e}); rebuilding it")
    arrays = build()
    try:
        with atomic_path(path) as tmp:
            with open(tmp, "wb") as f:  # a file object, so that numpy adds no ".npz" to the temporary name
                np.savez_compressed(f, **arrays)  # flat renders shrink ~25x; loading costs ~0.2 s
            os.chmod(tmp, 0o644)  # mkstemp makes the file private; a shared cache folder should stay readable
    except OSError as e:  # a read-only home still works, just without the cache
        warnings.warn(f"{path}: could not write cache file ({e}); using the arrays in memory")
    return arrays


class EmbeddedDigits(ClassificationDataset):
    """Ten-class digit domains made from scikit-learn's real handwritten digits (no download).

    Args:
        domain: one of :data:`DIGIT_DOMAINS` (see :mod:`domadapt.data.digit_domains`).
        split: ``"train"`` (5,000 images) or ``"test"`` (1,000 images); the two are made from
            disjoint sets of handwritten digits, the same sets for every domain.
        size: side of the square RGB images.
        transform, with_labels, skip_corrupt, limit: see :class:`~domadapt.data.base.DomainDataset`.

    Attributes (after ``setup()``):
        source_index: ``(N,)`` the ``load_digits()`` index each image was made from.
    """

    classes: tuple[str, ...] = tuple(str(i) for i in range(10))

    def __init__(
        self,
        domain: DigitDomain = "digits",
        split: Literal["train", "test"] = "train",
        size: int = 32,
        transform: Transform | None = None,
        with_labels: bool = True,
        skip_corrupt: bool = False,
        limit: int | None = None,
    ) -> None:
        super().__init__(transform=transform, with_labels=with_labels, skip_corrupt=skip_corrupt, limit=limit)
        if domain not in DIGIT_DOMAINS:
            raise ValueError(f"EmbeddedDigits.domain: expected one of {DIGIT_DOMAINS}, got {domain!r}")
        if split not in ("train", "test"):
            raise ValueError(f"EmbeddedDigits.split: expected 'train' or 'test', got {split!r}")
        if not 8 <= size <= 256:
            raise ValueError(f"EmbeddedDigits.size: expected an int in [8, 256], got {size}")
        self.domain_name, self.split, self.size = domain, split, int(size)
        self.images: np.ndarray | None = None
        self.labels: np.ndarray | None = None
        self.source_index: np.ndarray | None = None

    def describe(self) -> str:
        return f"EmbeddedDigits({self.domain_name}, {self.split}, {self.size}px)"

    def _index(self) -> list:
        n, s = digit_domains.SPLIT_SIZES[self.split], self.size
        arrays = cached_arrays(
            f"digits_{self.domain_name}_{self.split}_{s}px",
            lambda: digit_domains.build_digit_domain(self.domain_name, self.split, s),
            {"images": ((n, s, s, 3), "uint8"), "labels": ((n,), "int64"), "source_index": ((n,), "int64")},
        )
        self.images, self.labels, self.source_index = arrays["images"], arrays["labels"], arrays["source_index"]
        return list(range(n))

    def _load(self, entry: int) -> tuple[np.ndarray, Any]:
        return self.images[entry], int(self.labels[entry])  # type: ignore[index]

    def _arrays(self) -> tuple[np.ndarray, np.ndarray]:
        return self.images, self.labels  # type: ignore[return-value]


class ToyCity(SegmentationDataset):
    """Synthetic street scenes in Cityscapes train ids: flat-shaded ``source``, photo-textured ``target``.

    Labels use the 19-class train-id space (``classes`` = ``CS19_CLASSES``) so Cityscapes palettes and
    metrics apply; only :attr:`PRESENT_CLASSES` are drawn (the others score NaN) and a thin image
    border is 255 (ignore). See :mod:`domadapt.data.toycity` for the generator.

    Args:
        domain: ``"source"`` (rendered look) or ``"target"`` (photo-like look, lower camera).
        split: ``"train"`` or ``"val"`` (independent random scenes).
        height: image height in pixels (32-512; 64 default, 128 for the larger variant).
        width: image width in pixels (32-1024).
        num_images: number of scenes; default :data:`toycity.DEFAULT_COUNTS` (source 600/100,
            target 600/200 for train/val). Scene ``i`` is the same whatever the count.
        transform, with_labels, skip_corrupt, limit: see :class:`~domadapt.data.base.DomainDataset`.
    """

    PRESENT_CLASSES: ClassVar[tuple[int, ...]] = toycity.PRESENT_CLASSES

    def __init__(
        self,
        domain: Literal["source", "target"] = "source",
        split: Literal["train", "val"] = "train",
        height: int = 64,
        width: int = 128,
        num_images: int | None = None,
        transform: Transform | None = None,
        with_labels: bool = True,
        skip_corrupt: bool = False,
        limit: int | None = None,
    ) -> None:
        super().__init__(transform=transform, with_labels=with_labels, skip_corrupt=skip_corrupt, limit=limit)
        if domain not in ("source", "target"):
            raise ValueError(f"ToyCity.domain: expected 'source' or 'target', got {domain!r}")
        if split not in ("train", "val"):
            raise ValueError(f"ToyCity.split: expected 'train' or 'val', got {split!r}")
        if not (32 <= height <= 512 and 32 <= width <= 1024):
            raise ValueError(f"ToyCity: expected 32 <= height <= 512 and 32 <= width <= 1024, got {height}x{width}")
        if num_images is not None and num_images < 1:
            raise ValueError(f"ToyCity.num_images: expected a positive int or None, got {num_images}")
        self.domain_name, self.split, self.height, self.width = domain, split, int(height), int(width)
        self.num_images = toycity.DEFAULT_COUNTS[(domain, split)] if num_images is None else int(num_images)
        self.images: np.ndarray | None = None
        self.masks: np.ndarray | None = None

    def describe(self) -> str:
        return f"ToyCity({self.domain_name}, {self.split}, {self.num_images}x{self.height}x{self.width})"

    def _index(self) -> list:
        n, h, w = self.num_images, self.height, self.width
        arrays = cached_arrays(
            f"toycity_{self.domain_name}_{self.split}_{h}x{w}_n{n}",
            lambda: toycity.build_toycity(self.domain_name, self.split, h, w, n),
            {"images": ((n, h, w, 3), "uint8"), "masks": ((n, h, w), "uint8")},
        )
        self.images, self.masks = arrays["images"], arrays["masks"]
        return list(range(n))

    def _load(self, entry: int) -> tuple[np.ndarray, Any]:
        return self.images[entry], self.masks[entry]  # type: ignore[index]

    def _arrays(self) -> tuple[np.ndarray, np.ndarray]:
        return self.images, self.masks  # type: ignore[return-value]
