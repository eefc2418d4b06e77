"""Reader of a translated source dataset written by :func:`domadapt.pipeline.translate.translate_dataset`.

The translation stage of BDL writes the source images translated to the target style, with the
source labels untouched, and finishes with ``manifest.json`` (METHODS.md §1.4, pitfall 1: the
segmentation stage trains on these images). Three layouts exist:

* ``gta5`` — ``images/NNNNN.png`` + ``labels/NNNNN.png`` (the original palette PNGs of Cityscapes
  *label ids*, hard-linked or copied); :class:`~domadapt.data.GTA5` reads it too;
* ``synthia`` — ``RGB/NNNNNNN.png`` + ``GT/LABELS/NNNNNNN.png`` (the original 16-bit files);
  :class:`~domadapt.data.Synthia` reads it too;
* ``generic`` — ``images/<name>.png`` + ``labels/<name>.png`` with 8-bit *train ids* (255 =
  ignore), written for datasets that have no label files of their own (embedded ToyCity, arrays).
  Train ids are kept as they are rather than mapped back to label ids: the reader below needs no
  id table and works for any class list (the manifest carries it).

:class:`TranslatedDataset` reads all three from the manifest, so it knows the exact file list:
a missing file is a one-line :class:`~domadapt.io.DataError` when the dataset is indexed, where the
GTA5/SYNTHIA adapters (which list the folder) would silently see a smaller dataset.
Translated images may be smaller than the original labels (translation at the training
resolution); labels are then resized nearest-neighbour to the image, as the GTA5 adapter does.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from domadapt.data.base import SegmentationDataset
from domadapt.data.catalog import lut_from
from domadapt.io import DataError, dataset_root, read_index_png, read_rgb

MANIFEST = "manifest.json"
FORMAT = "domadapt-translated"
VERSION = 1


def read_manifest(root: str | Path) -> dict[str, Any]:
    """The manifest of a finished translated dataset.

    Raises:
        DataError: no manifest (translation not finished), unreadable, or not a translated-dataset manifest.
    """
    path = Path(root) / MANIFEST
    if not path.is_file():
        raise DataError(f"{path}: not found; expected a finished translated dataset (run "
                        "domadapt.pipeline.translate.translate_dataset to completion)")
    try:
        manifest = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise DataError(f"{path}: unreadable manifest ({e})") from None
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT or manifest.get("version") != VERSION:
        raise DataError(f"{path}: not a {FORMAT} v{VERSION} manifest")
    return manifest


class TranslatedDataset(SegmentationDataset):
    """A translated source dataset (any layout of :func:`~domadapt.pipeline.translate.translate_dataset`).

    Args:
        root: the ``out_root`` the translation was written to (holds ``manifest.json``).
        **kwargs: ``transform``, ``with_labels``, ``skip_corrupt``, ``limit`` (see the base class).

    Attributes (after ``setup()``):
        manifest: the parsed ``manifest.json``; ``classes`` come from it.
    """

    def __init__(self, root: str, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.root = dataset_root(root)
        self.manifest: dict[str, Any] = {}
        self.lut: np.ndarray | None = None

    def describe(self) -> str:
        return f"TranslatedDataset({self.root})"

    def _index(self) -> list[tuple[Path, Path]]:
        self.manifest = read_manifest(self.root)
        self.classes = tuple(self.manifest["classes"])
        table = self.manifest.get("id_to_trainid")
        self.lut = lut_from({int(k): int(v) for k, v in table.items()}, size=65536) if table else None
        files = [(self.root / image, self.root / label) for image, label in self.manifest["files"]]
        missing = [p for pair in files for p in (pair if self.with_labels else pair[:1]) if not p.is_file()]
        if missing:
            raise DataError(f"{missing[0]}: missing from the translated dataset ({len(missing)} of the files listed "
                            f"in {MANIFEST} are missing); re-run translate_dataset on {self.root} to regenerate them")
        return files

    def read_raw_label(self, path: Path, size: tuple[int, int]) -> np.ndarray:
        """Raw label values of ``path`` at ``size`` ``(W, H)`` (nearest-neighbour when resized)."""
        if self.manifest["label_format"] == "synthia":
            from domadapt.data.synthia import read_synthia_label

            raw = read_synthia_label(path)  # (H, W) uint16 SYNTHIA ids
            if raw.shape[::-1] != tuple(size):
                raw = cv2.resize(raw, tuple(size), interpolation=cv2.INTER_NEAREST)
            return raw
        return read_index_png(path, size=size)  # label ids (gta5) or train ids (generic)

    def _load(self, entry: tuple[Path, Path]) -> tuple[np.ndarray, np.ndarray | None]:
        image_path, label_path = entry
        image = read_rgb(image_path)  # (H, W, 3) uint8
        if not self.with_labels:
            return image, None
        raw = self.read_raw_label(label_path, (image.shape[1], image.shape[0]))
        return image, (self.lut[raw] if self.lut is not None else raw.astype(np.uint8))
