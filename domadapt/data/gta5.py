"""GTA5 adapter ("Playing for Data", DATASETS.md §2).

Labels are 8-bit **palette** PNGs whose palette *index* is the Cityscapes label id (the palette only
makes them look like colour maps). They are read by index (:func:`~domadapt.io.read_index_png`);
``.convert("L")`` or ``cv2.imread`` would return colours or luma and silently mis-map every pixel.

A few frames have a label whose size differs from the image by some pixels. Those labels are resized
nearest-neighbour to the image size, never dropped; the count is taken from the PNG headers when the
dataset is indexed and reported in one warning.
"""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any

import numpy as np

from domadapt.data.catalog import CS_ID_TO_TRAINID, CS_LABEL_NAMES
from domadapt.data.paired import PairedSegmentationDataset
from domadapt.io import CorruptSampleError, image_size, read_index_png

_DERIVED = "_labelTrainIds.png"  # DAFormer writes labels/NNNNN_labelTrainIds.png next to the originals


class GTA5(PairedSegmentationDataset):
    """GTA5 frames with Cityscapes 19 train ids (255 = ignore).

    Args:
        root: directory holding ``images/`` and ``labels/`` (``00001.png`` ... ``24966.png``).
        list_file: optional list of image names (ADVENT ``gta5_list/all.txt`` style, ``00001.png`` per
            line; a leading ``images/`` is accepted). Default: every ``images/*.png``.
        **kwargs: ``transform``, ``with_labels``, ``skip_corrupt``, ``limit`` (see the base class).

    Attributes:
        size_mismatches: ``(name, image (W, H), label (W, H))`` of every pair whose label is resized,
            filled by ``setup()``.
    """

    list_prefixes = ("images/",)

    def __init__(self, root: str, list_file: str | None = None, **kwargs: Any) -> None:
        super().__init__(root, list_file=list_file, **kwargs)
        self.image_dir = self.root / "images"
        self.label_dir = self.root / "labels"
        self.layout = "<root>/images/NNNNN.png and <root>/labels/NNNNN.png"
        self.size_mismatches: list[tuple[str, tuple[int, int], tuple[int, int]]] = []
        self._set_table(CS_LABEL_NAMES, CS_ID_TO_TRAINID)

    def list_images(self) -> list[Path]:
        return sorted(self.image_dir.glob("*.png"))

    def label_path(self, image: Path) -> Path:
        return self.label_dir / image.relative_to(self.image_dir)

    def label_files(self) -> list[Path]:
        return sorted(p for p in self.label_dir.glob("*.png") if not p.name.endswith(_DERIVED))

    def read_raw_label(self, path: Path) -> np.ndarray:
        return read_index_png(path)  # (H, W) uint8 palette indices = Cityscapes ids

    def load_label(self, path: Path, image_hw: tuple[int, int]) -> np.ndarray:
        h, w = image_hw
        return read_index_png(path, size=(w, h))  # resized NEAREST only when the sizes differ

    def _index(self) -> list[tuple[Path, Path | None]]:
        pairs = super()._index()
        if self.with_labels:
            self.size_mismatches = find_size_mismatches(pairs)
            if self.size_mismatches:
                name, (iw, ih), (lw, lh) = self.size_mismatches[0]
                warnings.warn(
                    f"{self.label_dir}: {len(self.size_mismatches)} of {len(pairs)} labels differ in size from "
                    f"their image and are resized nearest-neighbour to it (first: {name} image {iw}x{ih}, "
                    f"label {lw}x{lh})",
                    stacklevel=2,
                )
        return pairs


def find_size_mismatches(pairs: list[tuple[Path, Path]]) -> list[tuple[str, tuple[int, int], tuple[int, int]]]:
    """Pairs whose image and label sizes differ, read from the PNG headers (no decoding).

    Unreadable headers are left to the loader, which raises :class:`CorruptSampleError` for that sample
    (and skips it with ``skip_corrupt=True``).

    Returns:
        ``(image name, image (W, H), label (W, H))`` per mismatching pair.
    """
    out = []
    for image, label in pairs:
        try:
            isize, lsize = image_size(image), image_size(label)
        except CorruptSampleError:
            continue
        if isize != lsize:
            out.append((image.name, isize, lsize))
    return out
