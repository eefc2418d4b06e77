"""Helpers of the dataset-adapter tests: fixture paths, the reference tables transcribed from
DATASETS.md, and writers of small dataset trees in each official on-disk format.

Generated images encode their raw label id in the red channel (``R = raw id, G = 100, B = 200``),
so a test can check after any transform that image and mask still correspond pixel by pixel.
"""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import cv2
import numpy as np
from PIL import Image

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"

# DATASETS.md §1.3, column trainId, by Cityscapes label id 0..33 (transcribed, not imported).
CS_TRAINID_OF_ID = [255] * 7 + [0, 1, 255, 255, 2, 3, 4, 255, 255, 255, 5, 255, 6, 7, 8, 9, 10, 11, 12, 13,
                                14, 15, 255, 255, 16, 17, 18]
# DATASETS.md §3.3 table: SYNTHIA id -> (19-class trainId, 16-class index, 13-class index).
SYNTHIA_TABLE = {
    0: (255, 255, 255), 1: (10, 9, 6), 2: (2, 2, 2), 3: (0, 0, 0), 4: (1, 1, 1), 5: (4, 4, 255),
    6: (8, 8, 5), 7: (5, 5, 255), 8: (13, 12, 9), 9: (7, 7, 4), 10: (11, 10, 7), 11: (18, 15, 12),
    12: (17, 14, 11), 13: (255, 255, 255), 14: (255, 255, 255), 15: (6, 6, 3), 16: (9, 255, 255),
    17: (12, 11, 8), 18: (14, 255, 255), 19: (15, 13, 10), 20: (16, 255, 255), 21: (3, 3, 255),
    22: (255, 255, 255),
}
CS_IDS = list(range(34))
SYNTHIA_IDS = list(range(23))


def reference_lut(table: dict[int, int] | list[int], size: int = 65536) -> np.ndarray:
    """Test-side lookup table (255 for everything not listed)."""
    lut = np.full(size, 255, np.int64)
    items = table.items() if isinstance(table, dict) else enumerate(table)
    for k, v in items:
        lut[k] = v
    return lut


def block_labels(h: int, w: int, ids: list[int], seed: int) -> np.ndarray:
    """A raw-id map made of 4x4-pixel blocks drawn from ``ids`` (deterministic)."""
    rng = np.random.default_rng(seed)
    blocks = rng.choice(ids, size=(-(-h // 4), -(-w // 4)))
    return np.kron(blocks, np.ones((4, 4), np.int64))[:h, :w]


def encode_image(raw: np.ndarray) -> np.ndarray:
    """``(H, W, 3)`` uint8 image whose red channel is the raw id (``raw`` must be < 256)."""
    image = np.empty(raw.shape + (3,), np.uint8)
    image[..., 0], image[..., 1], image[..., 2] = raw, 100, 200
    return image


def cs_palette() -> list[int]:
    """A 768-entry palette (any colours will do: GTA labels are read by index)."""
    rng = np.random.default_rng(0)
    return rng.integers(0, 256, size=768).tolist()


def write_gta5_label(path: Path, raw: np.ndarray) -> None:
    im = Image.fromarray(raw.astype(np.uint8), mode="P")
    im.putpalette(cs_palette())
    path.parent.mkdir(parents=True, exist_ok=True)
    im.save(path)


def write_synthia_label(path: Path, raw: np.ndarray, bits: int = 16) -> None:
    """16-bit 3-channel PNG in OpenCV BGR order: B = 0, G = instance id, R = class id."""
    dtype = np.uint16 if bits == 16 else np.uint8
    bgr = np.zeros(raw.shape + (3,), dtype)
    bgr[..., 2] = raw
    bgr[..., 1] = np.where(raw == 8, 7, 0)  # an instance id on cars, as in the real files
    path.parent.mkdir(parents=True, exist_ok=True)
    assert cv2.imwrite(str(path), bgr)


def write_gray(path: Path, raw: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(raw.astype(np.uint8), mode="L").save(path)


def write_rgb(path: Path, image: np.ndarray, fmt: str = "PNG") -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(image).save(path, format=fmt)


def make_tree(kind: str, root: Path, n: int = 3, hw: tuple[int, int] = (24, 32),
              extra_ids: tuple = ()) -> SimpleNamespace:
    """Write ``n`` samples of dataset ``kind`` under ``root`` in its official layout.

    Returns:
        namespace with ``root``, ``images``, ``labels`` (paths), ``raws`` (raw id maps or class labels),
        ``ref`` (test-side id -> train id table) and ``make(**kw)`` building the adapter.
    """
    from domadapt.data import GTA5, Cityscapes, DomainNet, Synthia

    h, w = hw
    images, labels, raws = [], [], []
    for i in range(n):
        if kind == "domainnet":
            label = [0, 66, 308, 344][i % 4]  # aircraft_carrier, cello, The_Eiffel_Tower, zigzag
            raws.append(label)
            continue
        ids = (CS_IDS if kind in ("cityscapes", "gta5") else SYNTHIA_IDS) + list(extra_ids)
        raw = block_labels(h, w, ids, seed=i)
        raws.append(raw)
        if kind == "cityscapes":
            stem = f"aachen_{i:06d}_{(i * 7919) % 1000000:06d}"  # frame numbers are arbitrary
            images.append(root / "leftImg8bit" / "train" / "aachen" / f"{stem}_leftImg8bit.png")
            labels.append(root / "gtFine" / "train" / "aachen" / f"{stem}_gtFine_labelIds.png")
            write_gray(labels[-1], raw)
        elif kind == "gta5":
            images.append(root / "images" / f"{i + 1:05d}.png")
            labels.append(root / "labels" / f"{i + 1:05d}.png")
            write_gta5_label(labels[-1], raw)
        elif kind == "synthia":
            images.append(root / "RGB" / f"{i:07d}.png")
            labels.append(root / "GT" / "LABELS" / f"{i:07d}.png")
            write_synthia_label(labels[-1], raw)
        write_rgb(images[-1], encode_image(raw))
    if kind == "domainnet":
        from domadapt.data.catalog import domainnet_classes

        classes = domainnet_classes()
        lines = []
        for i, label in enumerate(raws):
            rel = f"clipart/{classes[label]}/clipart_{label + 1:03d}_{i:06d}.jpg"
            images.append(root / rel)
            write_rgb(images[-1], np.full((h, w, 3), 10 + label % 200, np.uint8), fmt="JPEG")
            lines.append(f"{rel} {label}\n")
        (root / "clipart_train.txt").write_text("".join(lines))
        (root / "clipart_test.txt").write_text("".join(lines))
    builders = {
        "cityscapes": lambda **kw: Cityscapes(str(root), split="train", **kw),
        "gta5": lambda **kw: GTA5(str(root), **kw),
        "synthia": lambda **kw: Synthia(str(root), **kw),
        "domainnet": lambda **kw: DomainNet(str(root), "clipart", "train", **kw),
    }
    ref = reference_lut({k: v[0] for k, v in SYNTHIA_TABLE.items()} if kind == "synthia" else CS_TRAINID_OF_ID)
    return SimpleNamespace(root=root, images=images, labels=labels, raws=raws, ref=ref, make=builders[kind])


ADAPTER_KINDS = ["cityscapes", "gta5", "synthia", "domainnet"]
SEGMENTATION_KINDS = ["cityscapes", "gta5", "synthia"]
