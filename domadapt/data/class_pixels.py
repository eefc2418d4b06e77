"""Per-image class pixel counts of a segmentation dataset's labels: one streaming pass, cached on disk.

What rare-class sampling (:mod:`domadapt.data.rare_class`) needs from the source labels, computed the
way the pseudo-label statistics are (:mod:`domadapt.pseudo.stats`): one pass, one label in memory at a
time, integer counts that add up exactly across DDP ranks.

* ``counts[i, c]`` = pixels of train id ``c`` in the label of image ``i`` as the dataset delivers it
  before any transform (ids ``>= K``, 255 included, are not counted). Shape ``(N, K)`` int64.
* Only label files are decoded: a paired dataset (GTA5, SYNTHIA, Cityscapes) reads the image's size
  from its header and its label through the dataset's own ``load_label`` and lookup table; a
  :class:`~domadapt.data.translated.TranslatedDataset` likewise; in-memory datasets (ToyCity) count
  their mask array; :class:`~domadapt.data.style_transfer.StyleTransferred` reuses the counts of the
  dataset it restyles (labels are never touched); a :class:`~torch.utils.data.ConcatDataset` stacks
  its parts. Any other dataset falls back to ``load_raw`` (images decoded too, no cache).
* File-based counts are cached in ``<cache_dir>/class-pixels-v<CACHE_VERSION>/<name>-<key>.npz``
  (:func:`~domadapt.data.embedded.cache_dir`). ``key`` is the SHA-256 of the dataset's identity: its
  type and description (root, split), ``K``, the label lookup table, and every label file's path, size
  and modification time -- so a changed file list or a rewritten label is a miss. The file also stores
  the key and is checked against it and against ``(N, K)``; an unreadable or mismatching file is
  rebuilt with a warning, written atomically (two processes building at once are harmless).
* Under DDP each rank counts the images ``rank, rank + R, …`` and the counts are summed; rank 0 writes
  the cache. Every rank must call :func:`class_pixel_counts` (Lightning builds the training loaders
  on every rank).
"""

from __future__ import annotations

import hashlib
import json
import os
import warnings
import zipfile
import zlib
from collections.abc import Callable
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
from torch.utils.data import ConcatDataset

from domadapt import distributed
from domadapt.io import CorruptSampleError, atomic_path, image_size

CACHE_VERSION = 1
"""Bump whenever the counting changes, so that old cache files are never reused."""


class LabelReader(NamedTuple):
    """How to read a dataset's labels alone.

    Attributes:
        read: ``read(i)`` -> ``(H, W)`` train-id mask of image ``i`` (before any transform).
        files: the label file of every image (what the cache key fingerprints), or ``None`` for data
            in memory or without a label-only path (not cached).
    """

    read: Callable[[int], np.ndarray]
    files: list[Path] | None


def count_classes(mask: np.ndarray, num_classes: int) -> np.ndarray:
    """``(K,)`` int64 pixels of each class ``0..K-1`` in ``mask`` (other values, e.g. 255, not counted)."""
    values = np.asarray(mask).ravel()
    return np.bincount(values[values < num_classes].astype(np.int64), minlength=num_classes)[:num_classes]


def label_reader(dataset: Any) -> LabelReader:
    """A label-only reader of a (set-up, labelled) segmentation dataset; see the module docstring."""
    from domadapt.data.paired import PairedSegmentationDataset
    from domadapt.data.translated import TranslatedDataset

    items = dataset.setup().items
    arrays = dataset._arrays() if callable(getattr(dataset, "_arrays", None)) else None
    if arrays is not None:
        masks = arrays[1]
        return LabelReader(lambda i: masks[items[i]], None)
    if isinstance(dataset, (PairedSegmentationDataset, TranslatedDataset)):
        if any(label is None for _, label in items):
            raise ValueError(f"{dataset.describe()}: indexed without labels (with_labels=False); rare-class "
                             "sampling needs the source labels")

        def read(i: int) -> np.ndarray:
            image, label = items[i]
            w, h = image_size(image)  # header only: the image is never decoded
            if isinstance(dataset, TranslatedDataset):
                raw = dataset.read_raw_label(label, (w, h))
                return dataset.lut[raw] if dataset.lut is not None else raw
            return dataset.lut[dataset.load_label(label, (h, w))]

        return LabelReader(read, [Path(label) for _, label in items])
    return LabelReader(lambda i: np.asarray(dataset.load_raw(i)[1]), None)


def dataset_key(dataset: Any, files: list[Path], num_classes: int) -> str:
    """Hex SHA-256 of a file-based dataset's identity (type, description, ``K``, lookup table, label files)."""
    h = hashlib.sha256()
    head = {"version": CACHE_VERSION, "type": f"{type(dataset).__module__}.{type(dataset).__qualname__}",
            "describe": dataset.describe(), "num_classes": int(num_classes), "classes": list(dataset.classes)}
    h.update(json.dumps(head, sort_keys=True).encode())
    lut = getattr(dataset, "lut", None)
    if lut is not None:
        h.update(np.ascontiguousarray(lut).tobytes())
    for path in files:
        try:
            st = os.stat(path)
            h.update(f"\n{path}\t{st.st_size}\t{st.st_mtime_ns}".encode())
        except OSError:  # counted as missing; reading it will raise (or skip it with skip_corrupt)
            h.update(f"\n{path}\tmissing".encode())
    return h.hexdigest()


def cache_path(dataset: Any, key: str) -> Path:
    """Where the counts of ``dataset`` with identity ``key`` are cached."""
    from domadapt.data.embedded import cache_dir

    name = "".join(ch if ch.isalnum() else "_" for ch in type(dataset).__name__)
    return cache_dir() / f"class-pixels-v{CACHE_VERSION}" / f"{name}-{key[:32]}.npz"


def read_cached_counts(path: Path, key: str, shape: tuple[int, int]) -> np.ndarray | None:
    """The cached ``(N, K)`` counts at ``path`` if present, readable and made for ``key``; else ``None``
    (a bad file is reported with a warning and left to be rebuilt)."""
    if not path.exists():
        return None
    try:
        with np.load(path, allow_pickle=False) as z:
            counts, stored = z["counts"], str(z["key"])
        if stored == key and counts.shape == tuple(shape) and counts.dtype == np.int64:
            return counts
        warnings.warn(f"{path}: cached class pixel counts do not match the dataset (key, shape or dtype); rebuilding")
    except (OSError, ValueError, EOFError, KeyError, zipfile.BadZipFile, zlib.error) as e:
        warnings.warn(f"{path}: unreadable cache file ({e}); rebuilding it")
    return None


def write_cached_counts(path: Path, key: str, counts: np.ndarray) -> None:
    """Store ``counts`` with its ``key`` atomically (a failure to write only warns)."""
    try:
        with atomic_path(path) as tmp:
            with open(tmp, "wb") as f:  # a file object, so that numpy adds no ".npz" to the temporary name
                np.savez_compressed(f, counts=counts, key=np.array(key))
            os.chmod(tmp, 0o644)
    except OSError as e:
        warnings.warn(f"{path}: could not write cache file ({e}); using the counts in memory")


def stream_counts(dataset: Any, read: Callable[[int], np.ndarray], num_classes: int) -> np.ndarray:
    """``(N, K)`` counts of this rank's share of the images (rows of other ranks stay 0), one label at a time.

    A corrupt label raises, or counts as empty (never drawn) with a warning when the dataset has
    ``skip_corrupt``.
    """
    world, rank = distributed.world()
    counts = np.zeros((len(dataset), num_classes), np.int64)
    for i in range(rank, len(dataset), world):
        try:
            counts[i] = count_classes(read(i), num_classes)
        except CorruptSampleError as e:
            if not getattr(dataset, "skip_corrupt", False):
                raise
            warnings.warn(f"class pixel counts: skipping corrupt label ({e}); that image is never drawn")
    return counts


def class_pixel_counts(dataset: Any, num_classes: int | None = None, cache: bool = True) -> np.ndarray:
    """``(N, K)`` int64 pixels of each class in each image of a segmentation dataset (see the module docstring).

    Args:
        dataset: a labelled segmentation dataset (set up here if it is not), or a ``ConcatDataset`` of them.
        num_classes: ``K``; default the dataset's number of classes.
        cache: read and write the on-disk cache for file-based datasets.

    Returns:
        ``counts`` with ``counts[i, c]`` the pixels of class ``c`` in the label of sample ``i``.
    """
    from domadapt.data.style_transfer import StyleTransferred

    if isinstance(dataset, ConcatDataset):
        k = num_classes if num_classes is not None else len(dataset.datasets[0].classes)
        return np.concatenate([class_pixel_counts(d, k, cache) for d in dataset.datasets])
    if getattr(dataset, "task", None) != "segmentation":
        raise ValueError(f"class_pixel_counts: {dataset.describe()} is a {dataset.task} dataset; class pixel "
                         "counts need segmentation labels")
    k = int(num_classes) if num_classes is not None else len(dataset.classes)
    if isinstance(dataset, StyleTransferred):  # same labels as the dataset it restyles: index i shows i % n
        inner = class_pixel_counts(dataset.dataset, k, cache)
        return inner[np.asarray(dataset.setup().items, np.int64) % len(inner)]
    read, files = label_reader(dataset)
    if files is None or not cache:
        return distributed.sum_counts(stream_counts(dataset, read, k))[0]
    key = dataset_key(dataset, files, k)
    path = cache_path(dataset, key)
    shape = (len(dataset), k)
    counts = read_cached_counts(path, key, shape)
    missed = distributed.sum_counts(np.array([counts is None], np.int64))[0][0] > 0  # every rank takes one branch
    if not missed:
        return counts  # type: ignore[return-value]
    world, rank = distributed.world()
    if rank == 0:
        print(f"class pixel counts: reading {len(dataset)} labels of {dataset.describe()} once "
              f"(cached in {path})", flush=True)
    counts = distributed.sum_counts(stream_counts(dataset, read, k))[0]
    if rank == 0:
        write_cached_counts(path, key, counts)
    return counts
