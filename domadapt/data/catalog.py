"""Class lists, id -> train-id tables, evaluation protocols and palettes (DATASETS.md §1.3, §3.3).

Everything here is literal data checked by tests; nothing is derived from directory listings.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

IGNORE_INDEX = 255

# Cityscapes label id -> train id (cityscapesscripts helpers/labels.py); every other id -> 255.
CS_ID_TO_TRAINID: dict[int, int] = {
    7: 0, 8: 1, 11: 2, 12: 3, 13: 4, 17: 5, 19: 6, 20: 7, 21: 8, 22: 9, 23: 10,
    24: 11, 25: 12, 26: 13, 27: 14, 28: 15, 31: 16, 32: 17, 33: 18,
}
# Names of the 35 Cityscapes label ids 0..33 (license plate, -1, is never drawn).
CS_LABEL_NAMES: tuple[str, ...] = (
    "unlabeled", "ego vehicle", "rectification border", "out of roi", "static", "dynamic",
    "ground", "road", "sidewalk", "parking", "rail track", "building", "wall", "fence",
    "guard rail", "bridge", "tunnel", "pole", "polegroup", "traffic light", "traffic sign",
    "vegetation", "terrain", "sky", "person", "rider", "car", "truck", "bus", "caravan",
    "trailer", "train", "motorcycle", "bicycle",
)
CS19_CLASSES: tuple[str, ...] = (
    "road", "sidewalk", "building", "wall", "fence", "pole", "traffic light", "traffic sign",
    "vegetation", "terrain", "sky", "person", "rider", "car", "truck", "bus", "train",
    "motorcycle", "bicycle",
)
CS19_PALETTE: tuple[tuple[int, int, int], ...] = (
    (128, 64, 128), (244, 35, 232), (70, 70, 70), (102, 102, 156), (190, 153, 153),
    (153, 153, 153), (250, 170, 30), (220, 220, 0), (107, 142, 35), (152, 251, 152),
    (70, 130, 180), (220, 20, 60), (255, 0, 0), (0, 0, 142), (0, 0, 70), (0, 60, 100),
    (0, 80, 100), (0, 0, 230), (119, 11, 32),
)

# SYNTHIA-RAND-CITYSCAPES ids (R channel of GT/LABELS).
SYNTHIA_CLASSES: tuple[str, ...] = (
    "void", "sky", "building", "road", "sidewalk", "fence", "vegetation", "pole", "car",
    "traffic sign", "pedestrian", "bicycle", "motorcycle", "parking-slot", "road-work",
    "traffic light", "terrain", "rider", "truck", "bus", "train", "wall", "lanemarking",
)
SYNTHIA_ID_TO_TRAINID_19: dict[int, int] = {
    3: 0, 4: 1, 2: 2, 21: 3, 5: 4, 7: 5, 15: 6, 9: 7, 6: 8, 16: 9, 1: 10, 10: 11,
    17: 12, 8: 13, 18: 14, 19: 15, 20: 16, 12: 17, 11: 18,
}
SYNTHIA_ID_TO_TRAINID_16: dict[int, int] = {
    3: 0, 4: 1, 2: 2, 21: 3, 5: 4, 7: 5, 15: 6, 9: 7, 6: 8, 1: 9, 10: 10, 17: 11,
    8: 12, 19: 13, 12: 14, 11: 15,
}
SYNTHIA_ID_TO_TRAINID_13: dict[int, int] = {
    3: 0, 4: 1, 2: 2, 15: 3, 9: 4, 6: 5, 1: 6, 10: 7, 17: 8, 8: 9, 19: 10, 12: 11, 11: 12,
}

# Evaluation protocols: the 19-class train ids scored by each protocol (METHODS.md §0.1).
PROTOCOLS: dict[str, tuple[int, ...]] = {
    "19": tuple(range(19)),
    "16": (0, 1, 2, 3, 4, 5, 6, 7, 8, 10, 11, 12, 13, 15, 17, 18),
    "13": (0, 1, 2, 6, 7, 8, 10, 11, 12, 13, 15, 17, 18),
}
CS16_CLASSES = tuple(CS19_CLASSES[i] for i in PROTOCOLS["16"])
CS13_CLASSES = tuple(CS19_CLASSES[i] for i in PROTOCOLS["13"])

DOMAINNET_DOMAINS: tuple[str, ...] = ("clipart", "infograph", "painting", "quickdraw", "real", "sketch")


def lut_from(mapping: Mapping[int, int], size: int = 256) -> np.ndarray:
    """Vectorised lookup table: ``lut[id] = mapping.get(id, 255)``.

    Args:
        mapping: id -> train id.
        size: table length (256 for 8-bit labels, 65536 for 16-bit).

    Returns:
        ``(size,)`` uint8 array.
    """
    lut = np.full(size, IGNORE_INDEX, np.uint8)
    lut[list(mapping)] = list(mapping.values())
    return lut


def domainnet_classes() -> tuple[str, ...]:
    """The fixed 345-class DomainNet order (label ``i`` = line ``i`` of the shipped list)."""
    from importlib.resources import files

    text = files("domadapt").joinpath("resources/domainnet_classes.txt").read_text()
    return tuple(line.strip() for line in text.splitlines() if line.strip())


def colorize(mask: np.ndarray, palette=CS19_PALETTE) -> np.ndarray:
    """Map ``(H, W)`` train ids to an ``(H, W, 3)`` uint8 colour image; 255 (and unknown) -> black."""
    table = np.zeros((256, 3), np.uint8)
    table[: len(palette)] = np.asarray(palette, np.uint8)
    return table[np.asarray(mask, np.int64).clip(0, 255)]
