"""Shared machinery of the segmentation adapters: image/label pairing on disk, list files, errors.

Every official segmentation layout we read (Cityscapes, GTA5, SYNTHIA) is "an image directory and a
label directory whose file names correspond". :class:`PairedSegmentationDataset` owns that logic once:
listing images (from the directory or from a list file), deriving each label path, reporting images
without a label and labels without an image (:meth:`~PairedSegmentationDataset.scan`, also used by
``domadapt data check``), and mapping raw label ids to train ids with a lookup table. A subclass
only says where files live and how to decode a raw label.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np

from domadapt.data.base import SegmentationDataset
from domadapt.data.catalog import lut_from
from domadapt.io import DataError, dataset_root, read_rgb, root_hint


class FilePairs(NamedTuple):
    """Result of pairing images with labels.

    Attributes:
        pairs: ``(image, label)`` paths, both present, in image order.
        missing_labels: ``(image, expected label path)`` for images whose label is absent.
        orphan_labels: label files with no image (only computed when no list file restricts the images).
    """

    pairs: list[tuple[Path, Path]]
    missing_labels: list[tuple[Path, Path]]
    orphan_labels: list[Path]


def require_dir(path: Path, expected: str, what: str = "directory") -> Path:
    """Return ``path`` if it is a directory, else raise a one-line :class:`DataError`.

    Args:
        path: directory that must exist.
        expected: the expected layout, quoted in the message.
        what: what the directory is ("dataset root", "directory").
    """
    if not path.is_dir():
        raise DataError(f"{path}: {what} not found; expected {expected}")
    return path


def resolve_list_file(list_file: str | os.PathLike, root: Path) -> Path:
    """A list file as given, or relative to the dataset root when it is not found as given."""
    path = Path(list_file)
    if not path.is_file() and not path.is_absolute() and (root / path).is_file():
        path = root / path
    if not path.is_file():
        raise DataError(f"{list_file}: list file not found (also looked in {root})")
    return path


def read_name_list(path: Path, strip_prefixes: tuple[str, ...] = ()) -> list[tuple[int, str]]:
    """Non-blank lines of a list file as ``(line number, name)``, optional leading folders removed.

    Only the first whitespace-separated token of a line is kept, so lists that append a label path
    (``image.png label.png``) are accepted too.

    Raises:
        DataError: the file cannot be decoded as text.
    """
    try:
        lines = path.read_text().splitlines()
    except (OSError, UnicodeDecodeError) as e:
        raise DataError(f"{path}: unreadable list file ({e})") from None
    out = []
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        name = line.split()[0]
        for prefix in strip_prefixes:
            if name.startswith(prefix):
                name = name[len(prefix):]
                break
        out.append((number, name))
    return out


class PairedSegmentationDataset(SegmentationDataset):
    """A segmentation dataset stored as an image folder plus a label folder with matching names.

    Subclasses set, in ``__init__`` before calling :meth:`_set_table`: ``image_dir``, ``label_dir``,
    ``layout`` (the expected layout, quoted in errors) and implement :meth:`list_images`,
    :meth:`label_path`, :meth:`label_files` and :meth:`read_raw_label`.

    Args:
        root: dataset root directory.
        list_file: optional list of image names (one per line, relative to ``image_dir``); lines
            may carry one of ``list_prefixes`` (e.g. ``RGB/``) which is removed.
        **kwargs: ``transform``, ``with_labels``, ``skip_corrupt``, ``limit`` (see the base class).

    Attributes:
        protocol: the evaluation protocol of :data:`~domadapt.data.catalog.PROTOCOLS` that results on
            this label space are reported with (``"19"`` unless a subclass says otherwise).
        raw_names: name of each raw label id (for reports); ``id_to_trainid``: the mapping; ``lut``:
            the same mapping as a ``(65536,)`` lookup table, 255 for every unlisted id.
    """

    list_prefixes: tuple[str, ...] = ()
    protocol: str = "19"

    def __init__(self, root: str, list_file: str | None = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.root, self.root_text = dataset_root(root), str(root)
        self.list_file = list_file
        self.image_dir = self.root
        self.label_dir = self.root
        self.layout = ""

    def _set_table(self, raw_names: tuple[str, ...], id_to_trainid: dict[int, int]) -> None:
        """Raw id names (for reports) and the id -> train id table; unknown ids map to 255."""
        self.raw_names = tuple(raw_names)
        self.id_to_trainid = dict(id_to_trainid)
        self.lut = lut_from(self.id_to_trainid, size=65536)  # (65536,) uint8, covers 16-bit ids

    # --- to implement -----------------------------------------------------------------------
    def list_images(self) -> list[Path]:
        """Every image of the split, sorted (used when no list file is given)."""
        raise NotImplementedError

    def label_path(self, image: Path) -> Path:
        """Where the label of ``image`` must be."""
        raise NotImplementedError

    def label_files(self) -> list[Path]:
        """Every label file on disk (derived files such as ``*_labelTrainIds.png`` excluded)."""
        raise NotImplementedError

    def read_raw_label(self, path: Path) -> np.ndarray:
        """Decode a label file to raw ids ``(H, W)`` (uint8 or uint16), before the lookup table."""
        raise NotImplementedError

    # --- shared behaviour -------------------------------------------------------------------
    def describe(self) -> str:
        return f"{type(self).__name__}({self.root})"

    def images(self) -> list[Path]:
        """The images of this dataset, from the list file or the directory (limit applied)."""
        require_dir(self.root, self.layout, what="dataset root" + root_hint(self.root_text))
        require_dir(self.image_dir, self.layout)
        if self.list_file is None:
            images = self.list_images()
            if not images:
                raise DataError(f"{self.image_dir}: no images found (empty split); expected {self.layout}")
        else:
            path = resolve_list_file(self.list_file, self.root)
            names = read_name_list(path, self.list_prefixes)
            if not names:
                raise DataError(f"{path}: list file is empty (empty split)")
            images = []
            for number, name in names[: self.limit]:
                image = self.image_dir / name
                if not image.is_file():
                    raise DataError(f"{path}:{number}: image {image} not found; expected {self.layout}")
                images.append(image)
        return images[: self.limit]

    def scan(self, images: list[Path] | None = None) -> FilePairs:
        """Pair every image (default: :meth:`images`) with its label; unpaired files are returned, not raised."""
        images = self.images() if images is None else images
        pairs, missing = [], []
        for image in images:
            label = self.label_path(image)
            (pairs if label.is_file() else missing).append((image, label))
        orphans: list[Path] = []
        if self.list_file is None and self.limit is None and self.label_dir.is_dir():
            expected = {label for _, label in pairs}
            orphans = [p for p in self.label_files() if p not in expected]
        return FilePairs(pairs, missing, orphans)

    def _index(self) -> list[tuple[Path, Path | None]]:
        images = self.images()
        if not self.with_labels:
            return [(image, None) for image in images]
        require_dir(self.label_dir, self.layout)
        found = self.scan(images)
        if found.missing_labels:
            image, label = found.missing_labels[0]
            more = len(found.missing_labels) - 1
            extra = f" ({more} more images without label)" if more else ""
            raise DataError(f"{image}: no label found; expected {label}{extra}")
        return found.pairs

    def load_label(self, path: Path, image_hw: tuple[int, int]) -> np.ndarray:
        """Raw ids of ``path`` checked against the image size ``(H, W)``.

        Raises:
            DataError: the label and the image differ in size (no resize rule for this dataset).
        """
        raw = self.read_raw_label(path)
        if raw.shape != tuple(image_hw):
            (h, w), (lh, lw) = image_hw, raw.shape
            raise DataError(f"{path}: label is {lw}x{lh} (WxH) but its image is {w}x{h}; "
                            f"expected equal sizes for {type(self).__name__}")
        return raw

    def _load(self, entry: tuple[Path, Path | None]) -> tuple[np.ndarray, np.ndarray | None]:
        image_path, label_path = entry
        image = read_rgb(image_path)  # (H, W, 3) uint8
        if label_path is None or not self.with_labels:
            return image, None
        raw = self.load_label(label_path, image.shape[:2])  # (H, W) raw ids
        return image, self.lut[raw]  # (H, W) uint8 train ids, 255 = ignore
