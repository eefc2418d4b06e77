"""Base classes shared by every dataset (adapters and embedded data).

A dataset is *lazy*: the constructor only stores its arguments, files are indexed by
:meth:`DomainDataset.setup` (called by the DataModule's ``setup()`` or on first use), so recipes can
be printed and checked with no data on disk.

Subclasses implement two methods:

* ``_index() -> list`` — one entry per sample (paths, arrays, ...); raise :class:`DataError` when
  the layout is wrong;
* ``_load(entry) -> (image, target)`` — ``image`` ``(H, W, 3)`` uint8 RGB, ``target`` an ``(H, W)``
  uint8 train-id mask (segmentation) or an ``int`` label (classification).

and, when the samples sit in memory as arrays, ``_arrays() -> (images, targets)`` (``(N, H, W, 3)`` uint8 and
``(N,)`` labels or ``(N, H, W)`` masks, indexed by the entries) so that a batch with a pixel-wise transform is built
in one step (:mod:`domadapt.data.batching`).

``__getitem__`` applies the transform and returns a :class:`~domadapt.structures.Sample`; ``__getitems__`` (what a
``DataLoader`` calls for a batch) returns the samples of a batch.
"""

from __future__ import annotations

import copy
import functools
import warnings
from collections.abc import Callable, Sequence
from typing import Any, ClassVar

import numpy as np
import torch
from torch.utils.data import Dataset

from domadapt.data.batching import BatchedSamples, TransformedImages, pixel_table
from domadapt.data.resumable import seed_of
from domadapt.io import CorruptSampleError, DataError
from domadapt.structures import Task, target_key

Transform = Callable[..., dict]


def to_tensor_sample(image: np.ndarray, mask: np.ndarray | None = None) -> dict:
    """Default transform: ``(H, W, 3)`` uint8 -> ``(3, H, W)`` float in ``[0, 1]``; mask -> int64."""
    out = {"image": torch.from_numpy(np.ascontiguousarray(image)).permute(2, 0, 1).float().div_(255.0)}
    if mask is not None:
        out["mask"] = torch.from_numpy(np.ascontiguousarray(mask)).long()
    return out


class DomainDataset(Dataset):
    """A labelled or unlabelled image dataset of one domain.

    Args:
        transform: callable ``transform(image=HWC uint8, mask=HW uint8 | None) -> dict`` returning
            tensors (see :class:`domadapt.data.transforms.Augment`); ``None`` only scales to [0, 1].
        with_labels: return ``label`` / ``mask`` (``False`` for the unlabelled target train split).
        skip_corrupt: replace an unreadable sample by the next one with a counted warning instead of
            failing. Off by default: corrupt data is never skipped silently.
        limit: use only the first ``limit`` samples (quick experiments, tests).
    """

    task: ClassVar[Task] = "classification"
    classes: tuple[str, ...] = ()

    def __init__(
        self,
        transform: Transform | None = None,
        with_labels: bool = True,
        skip_corrupt: bool = False,
        limit: int | None = None,
    ) -> None:
        self.transform = transform
        self.with_labels = with_labels
        self.skip_corrupt = skip_corrupt
        self.limit = limit
        self.domain = 0
        self.num_skipped = 0
        self._items: list | None = None

    # --- to implement -----------------------------------------------------------------------
    def _index(self) -> list:
        raise NotImplementedError

    def _load(self, entry: Any) -> tuple[np.ndarray, Any]:
        raise NotImplementedError

    def _arrays(self) -> tuple[np.ndarray, np.ndarray] | None:
        """In-memory data: ``(images, targets)`` indexed by the entries of ``_index`` (positions), else ``None``.
        A subclass that overrides ``_load`` must override this too."""
        return None

    def describe(self) -> str:
        """One line naming the dataset for messages and logs."""
        return type(self).__name__

    # --- shared behaviour -------------------------------------------------------------------
    @property
    def num_classes(self) -> int:
        return len(self.classes)

    def labelled(self) -> DomainDataset:
        """This dataset with its labels: itself when ``with_labels``, else a copy that pairs (and indexes)
        its files anew, labels included. What a stage that needs labels (translating a source) uses, whatever
        the recipe that built the dataset set ``with_labels`` to."""
        if self.with_labels:
            return self
        out = copy.copy(self)
        out.with_labels, out._items = True, None
        return out

    def setup(self) -> DomainDataset:
        """Index the files once (idempotent). Raises :class:`DataError` on a bad layout."""
        if self._items is None:
            items = list(self._index())
            if self.limit is not None:
                items = items[: self.limit]
            if not items:
                raise DataError(f"{self.describe()}: no samples found (empty split)")
            self._items = items
        return self

    @property
    def items(self) -> list:
        return self.setup()._items  # type: ignore[return-value]

    def __len__(self) -> int:
        return len(self.items)

    def load_raw(self, index: int) -> tuple[np.ndarray, Any]:
        """Decoded ``(image, target)`` of sample ``index`` before any transform."""
        return self._load(self.items[index])

    def __getitem__(self, index: int) -> dict:
        n = len(self)
        for attempt in range(n):
            i = (index + attempt) % n
            try:
                image, target = self.load_raw(i)
                break
            except CorruptSampleError as e:
                if not self.skip_corrupt:
                    raise
                self.num_skipped += 1
                warnings.warn(f"skipping corrupt sample ({self.num_skipped} so far in this worker): {e}")
        else:  # pragma: no cover - every file corrupt
            raise DataError(f"{self.describe()}: every sample is corrupt")
        return self._to_sample(image, target, index)

    def __getitems__(self, indices: list[int]) -> Sequence[dict]:
        """The samples at ``indices`` (a ``DataLoader`` batch): one gather when the data sit in memory and the
        transform is pixel-wise (:mod:`domadapt.data.batching`), else one ``__getitem__`` each."""
        images = self._transformed_images()
        if images is None:
            return [self[i] for i in indices]
        items = self.items
        positions = np.asarray([items[int(i)] for i in indices], dtype=np.int64)
        batch = {"image": images[positions]}
        if self.with_labels:
            batch[target_key(self.task)] = torch.from_numpy(np.asarray(self._arrays()[1][positions])).long()
        batch["domain"] = torch.full((len(indices),), self.domain, dtype=torch.long)
        batch["index"] = torch.tensor([int(i) for i in indices], dtype=torch.long)
        return BatchedSamples(batch)

    def _transformed_images(self) -> TransformedImages | None:
        """The in-memory images under the transform's pixel table, built once per transform; ``None`` when the data
        are files or the transform is not pixel-wise."""
        pixelwise = getattr(self.transform, "pixel_table", lambda: None)  # Augment.pixel_table
        table = _default_table() if self.transform is None else pixelwise()
        arrays = None if table is None else self._arrays()
        if arrays is None or arrays[0].dtype != np.uint8 or arrays[0].ndim != 4 or arrays[0].shape[-1] != 3:
            return None
        cached = self.__dict__.get("_pixelwise")
        if cached is None or cached.table is not table or cached.images is not arrays[0]:
            cached = self._pixelwise = TransformedImages(arrays[0], table)
        return cached

    def __getstate__(self) -> dict:  # DataLoader workers rebuild the transformed copy they use
        state = dict(self.__dict__)
        state.pop("_pixelwise", None)
        return state

    def _to_sample(self, image: np.ndarray, target: Any, index: int) -> dict:
        transform = self.transform or to_tensor_sample
        seed = seed_of(index)  # a training draw carries the seed of its augmentation
        if seed is not None and callable(getattr(transform, "reseed", None)):
            transform.reseed(seed)
        if self.task == "segmentation":
            out = transform(image=image, mask=target)
            if not self.with_labels:
                out.pop("mask", None)
            elif out["mask"].dtype != torch.long:
                out["mask"] = out["mask"].long()
        else:
            out = transform(image=image)
            out.pop("mask", None)
            if self.with_labels:
                out["label"] = torch.tensor(int(target), dtype=torch.long)
        out["domain"] = torch.tensor(self.domain, dtype=torch.long)
        out["index"] = torch.tensor(int(index), dtype=torch.long)
        return out


@functools.cache
def _default_table() -> torch.Tensor:
    """The :func:`~domadapt.data.batching.pixel_table` of :func:`to_tensor_sample`."""
    return pixel_table(to_tensor_sample)


class SegmentationDataset(DomainDataset):
    """Base for semantic-segmentation datasets (Cityscapes 19 train ids by default)."""

    task: ClassVar[Task] = "segmentation"

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        from domadapt.data.catalog import CS19_CLASSES

        self.classes = CS19_CLASSES


class ClassificationDataset(DomainDataset):
    """Base for image-classification datasets."""

    task: ClassVar[Task] = "classification"


class ArrayDataset(DomainDataset):
    """In-memory dataset over arrays (embedded data, tests).

    Args:
        images: ``(N, H, W, 3)`` uint8.
        targets: ``(N,)`` int labels (classification) or ``(N, H, W)`` uint8 masks (segmentation).
        classes: class names.
        task: ``"classification"`` or ``"segmentation"``.
        name: shown in messages.
    """

    def __init__(
        self,
        images: np.ndarray,
        targets: np.ndarray,
        classes: tuple[str, ...],
        task: Task = "classification",
        name: str = "arrays",
        **kwargs,
    ) -> None:
        super().__init__(**kwargs)
        if len(images) != len(targets):
            raise DataError(f"{name}: {len(images)} images but {len(targets)} targets")
        self.images, self.targets = images, targets
        self.classes = tuple(classes)
        self.task = task  # type: ignore[misc]
        self.name = name

    def describe(self) -> str:
        return self.name

    def _index(self) -> list:
        return list(range(len(self.images)))

    def _load(self, entry: int) -> tuple[np.ndarray, Any]:
        return self.images[entry], self.targets[entry]

    def _arrays(self) -> tuple[np.ndarray, np.ndarray]:
        return self.images, self.targets
