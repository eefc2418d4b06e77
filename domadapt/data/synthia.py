"""SYNTHIA-RAND-CITYSCAPES adapter (DATASETS.md §3).

``GT/LABELS/*.png`` are RGB PNGs with **16 bits per channel**: R = SYNTHIA class id (0-22),
G = instance id, B = 0. Pillow opens them as 8-bit keeping the high byte, i.e. all zeros, so they
are decoded with ``cv2.IMREAD_UNCHANGED``; OpenCV returns BGR, hence the class id is ``[:, :, 2]``.

SYNTHIA has no terrain, truck or train pixels, so results are reported on 16 (or 13) classes
(:attr:`Synthia.protocol`). ``label_map="19"`` trains the usual 19-way Cityscapes head; ``"16"`` and
``"13"`` give compact indices into :data:`CS16_CLASSES` / :data:`CS13_CLASSES`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, ClassVar, Literal

import cv2
import numpy as np

from domadapt.data.catalog import (
    CS13_CLASSES,
    CS16_CLASSES,
    CS19_CLASSES,
    SYNTHIA_CLASSES,
    SYNTHIA_ID_TO_TRAINID_13,
    SYNTHIA_ID_TO_TRAINID_16,
    SYNTHIA_ID_TO_TRAINID_19,
)
from domadapt.data.paired import PairedSegmentationDataset
from domadapt.io import CorruptSampleError, DataError

_DERIVED = "_labelTrainIds.png"  # DAFormer writes GT/LABELS/<id>_labelTrainIds.png beside the originals


def read_synthia_label(path: str | Path) -> np.ndarray:
    """SYNTHIA class ids of a ``GT/LABELS`` file.

    Returns:
        ``(H, W)`` uint16 class ids (R channel of the file).

    Raises:
        CorruptSampleError: missing, corrupt or truncated file.
        DataError: the file is not a 16-bit 3-channel PNG (e.g. an 8-bit ``parsed_LABELS`` file).
    """
    if not Path(path).is_file():
        raise CorruptSampleError(f"{path}: label file not found")
    label = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)  # (H, W, 3) uint16, BGR order
    if label is None:
        raise CorruptSampleError(f"{path}: corrupt or truncated label (OpenCV could not decode it)")
    channels = 1 if label.ndim == 2 else label.shape[2]
    if label.dtype != np.uint16 or channels < 3:
        bits = 8 * label.dtype.itemsize
        raise DataError(f"{path}: expected a 16-bit 3-channel SYNTHIA GT/LABELS PNG (class id in R), found "
                        f"{bits}-bit with {channels} channel(s)")
    return label[:, :, 2]  # R channel == SYNTHIA class id


class Synthia(PairedSegmentationDataset):
    """SYNTHIA-RAND-CITYSCAPES frames with Cityscapes train ids (255 = ignore).

    Args:
        root: directory holding ``RGB/`` and ``GT/LABELS/`` (``0000000.png`` ... ``0009399.png``).
        list_file: optional list of image names relative to ``RGB/`` (DADA ``all.txt`` style; BDL's
            leading ``RGB/`` is accepted). Default: every PNG under ``RGB/`` (sub-folders included, so
            the video-sequence layout ``RGB/Stereo_Left/Omni_F/...`` works too).
        label_map: ``"19"`` Cityscapes train ids (default), ``"16"`` / ``"13"`` compact indices.
        **kwargs: ``transform``, ``with_labels``, ``skip_corrupt``, ``limit`` (see the base class).

    Attributes:
        protocol: evaluation protocol of :data:`~domadapt.data.catalog.PROTOCOLS` to report
            (``"16"``, or ``"13"`` with ``label_map="13"``).
    """

    ID_TO_TRAINID_19: ClassVar[dict[int, int]] = SYNTHIA_ID_TO_TRAINID_19
    ID_TO_TRAINID_16: ClassVar[dict[int, int]] = SYNTHIA_ID_TO_TRAINID_16
    ID_TO_TRAINID_13: ClassVar[dict[int, int]] = SYNTHIA_ID_TO_TRAINID_13
    list_prefixes = ("RGB/",)

    def __init__(
        self,
        root: str,
        list_file: str | None = None,
        label_map: Literal["19", "16", "13"] = "19",
        **kwargs: Any,
    ) -> None:
        super().__init__(root, list_file=list_file, **kwargs)
        tables = {"19": (self.ID_TO_TRAINID_19, CS19_CLASSES), "16": (self.ID_TO_TRAINID_16, CS16_CLASSES),
                  "13": (self.ID_TO_TRAINID_13, CS13_CLASSES)}
        if str(label_map) not in tables:
            raise ValueError(f"Synthia.label_map: expected '19', '16' or '13', got {label_map!r}")
        self.label_map = str(label_map)
        mapping, self.classes = tables[self.label_map]
        self.protocol = "13" if self.label_map == "13" else "16"
        self.image_dir = self.root / "RGB"
        self.label_dir = self.root / "GT" / "LABELS"
        self.layout = "<root>/RGB/NNNNNNN.png and <root>/GT/LABELS/NNNNNNN.png (16-bit)"
        self._set_table(SYNTHIA_CLASSES, mapping)

    def list_images(self) -> list[Path]:
        return sorted(self.image_dir.rglob("*.png"))

    def label_path(self, image: Path) -> Path:
        return self.label_dir / image.relative_to(self.image_dir)

    def label_files(self) -> list[Path]:
        return sorted(p for p in self.label_dir.rglob("*.png") if not p.name.endswith(_DERIVED))

    def read_raw_label(self, path: Path) -> np.ndarray:
        return read_synthia_label(path)
