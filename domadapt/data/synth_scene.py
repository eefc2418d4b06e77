"""Pictures for the synthetic datasets of :mod:`domadapt.data.synth`: street scenes and object drawings.

A street scene is a map of *elements* (:data:`ELEMENTS`: sky, road, car, ...) built from a perspective
road, bands and rectangles. Each dataset writes an element as its own raw label id (Cityscapes id or
SYNTHIA id) and paints it in the element's colour under the dataset's *look* (gain, offset) with mild
noise, so a segmentation model can learn the classes and the datasets differ in appearance as real
domains do. A DomainNet drawing is one shape whose form and colour follow the class, in the domain's
style. Every function is pure given the generator it is passed.
"""

from __future__ import annotations

import colorsys

import numpy as np

# name, Cityscapes label id, SYNTHIA id, RGB colour. Ids 0, 1, 4 (Cityscapes) and 0, 13, 22 (SYNTHIA) map to 255.
ELEMENTS: tuple[tuple[str, int, int, tuple[int, int, int]], ...] = (
    ("sky", 23, 1, (70, 130, 180)), ("building", 11, 2, (70, 70, 70)), ("road", 7, 3, (128, 64, 128)),
    ("sidewalk", 8, 4, (244, 35, 232)), ("fence", 13, 5, (190, 153, 153)), ("vegetation", 21, 6, (107, 142, 35)),
    ("pole", 17, 7, (153, 153, 153)), ("car", 26, 8, (0, 0, 142)), ("traffic sign", 20, 9, (220, 220, 0)),
    ("person", 24, 10, (220, 20, 60)), ("terrain", 22, 16, (152, 251, 152)),
    ("lane marking", 7, 22, (235, 235, 235)),  # part of the road in Cityscapes; its own (ignored) id in SYNTHIA
    ("static", 4, 13, (110, 90, 60)), ("unlabeled", 0, 0, (20, 20, 20)), ("ego vehicle", 1, 0, (45, 45, 50)),
)
E = {name: i for i, (name, *_) in enumerate(ELEMENTS)}
CS_IDS = np.array([e[1] for e in ELEMENTS], np.uint8)  # (num elements,) element -> Cityscapes label id
SYNTHIA_IDS = np.array([e[2] for e in ELEMENTS], np.uint16)  # (num elements,) element -> SYNTHIA id
COLOURS = np.array([e[3] for e in ELEMENTS], np.float32)  # (num elements, 3)
# Cityscapes colour of label ids 0..33 (DATASETS.md §1.3): the palette GTA5 label PNGs carry.
CS_ID_COLOURS: tuple[tuple[int, int, int], ...] = (
    (0, 0, 0), (0, 0, 0), (0, 0, 0), (0, 0, 0), (0, 0, 0), (111, 74, 0), (81, 0, 81), (128, 64, 128),
    (244, 35, 232), (250, 170, 160), (230, 150, 140), (70, 70, 70), (102, 102, 156), (190, 153, 153),
    (180, 165, 180), (150, 100, 100), (150, 120, 90), (153, 153, 153), (153, 153, 153), (250, 170, 30),
    (220, 220, 0), (107, 142, 35), (152, 251, 152), (70, 130, 180), (220, 20, 60), (255, 0, 0), (0, 0, 142),
    (0, 0, 70), (0, 60, 100), (0, 0, 90), (0, 0, 110), (0, 80, 100), (0, 0, 230), (119, 11, 32),
)
SHAPES = ("ellipse", "box", "triangle", "ring", "cross")  # DomainNet class c is drawn as SHAPES[c % 5]


def street_scene(h: int, w: int, rng: np.random.Generator, ego: bool, terrain: bool) -> tuple[np.ndarray, np.ndarray]:
    """A street seen from a car: sky, buildings and trees above the horizon, a perspective road with
    sidewalks, poles with signs, cars and people drawn far to near.

    Args:
        h: height in pixels.
        w: width in pixels.
        rng: source of every random choice.
        ego: draw the ego-vehicle bonnet at the bottom (Cityscapes).
        terrain: grass verges beyond the sidewalks (SYNTHIA has no terrain: sidewalk instead).

    Returns:
        ``(elements, instances)``: ``(H, W)`` uint8 indices into :data:`ELEMENTS` and ``(H, W)`` uint16
        instance ids (1, 2, ... per car or person, 0 elsewhere).
    """
    rows, cols = np.arange(h)[:, None], np.arange(w)[None, :]
    hz, cx = int(h * rng.uniform(0.38, 0.5)), w * rng.uniform(0.4, 0.6)  # horizon row, vanishing column
    scene = np.full((h, w), E["sky"], np.uint8)
    x = 0
    while x < w:  # skyline: buildings, trees, fences and gaps
        seg, kind = max(1, int(w * rng.uniform(0.06, 0.18))), rng.choice(4, p=[0.6, 0.2, 0.1, 0.1])
        top = hz - int(h * (rng.uniform(0.12, 0.36) if kind == 0 else rng.uniform(0.04, 0.16)))
        scene[max(top, 0):hz, x:x + seg] = (E["building"], E["vegetation"], E["fence"], E["sky"])[kind]
        x += seg
    t = np.clip((rows - hz) / max(h - hz, 1), 0.0, 1.0)  # (H, 1) 0 at the horizon, 1 at the bottom row
    dx, ground = np.abs(cols - cx), rows >= hz  # (1, W), (H, 1)
    scene[ground[:, 0]] = E["terrain"] if terrain else E["sidewalk"]
    scene[ground & (dx < w * (0.05 + 0.8 * t))] = E["sidewalk"]
    scene[ground & (dx < w * (0.02 + 0.45 * t))] = E["road"]
    dash = (rows * 12 // max(h - hz, 1)) % 2 == 0
    scene[ground & dash & (dx < 0.5 + w * 0.006 * t)] = E["lane marking"]
    _box(scene, hz - max(1, h // 30), hz, int(w * rng.uniform(0.0, 0.15)), int(w * rng.uniform(0.2, 0.3)), E["static"])
    instances = np.zeros((h, w), np.uint16)
    objects = [(rng.uniform(0.1, 0.9), rng.choice(["car", "person", "pole"]), rng.uniform(-1, 1))
               for _ in range(int(rng.integers(3, 7)))]
    for k, (depth, kind, side) in enumerate(sorted(objects), start=1):  # far (small depth) first
        bottom = hz + depth * (h - hz)
        road, walk = w * (0.02 + 0.45 * depth), w * (0.05 + 0.8 * depth)  # half widths at that row
        if kind == "car":
            cw = w * 0.28 * depth
            left = cx + side * max(road - cw, 0) / 2 - cw / 2
            _box(scene, bottom - 0.55 * cw, bottom, left, left + cw, E["car"], instances, k)
        elif kind == "person":
            ph, mid = h * 0.4 * depth, cx + np.sign(side or 1) * (road + walk) / 2
            _box(scene, bottom - ph, bottom, mid - 0.15 * ph, mid + 0.15 * ph, E["person"], instances, k)
        else:
            ph, mid = h * 0.9 * depth, cx + np.sign(side or 1) * (road + 0.3 * (walk - road))
            _box(scene, bottom - ph, bottom, mid - w * 0.004 * depth, mid + w * 0.004 * depth, E["pole"])
            _box(scene, bottom - ph, bottom - 0.85 * ph, mid - 0.06 * ph, mid + 0.06 * ph, E["traffic sign"])
    r, c = int(rng.integers(hz, h)), int(rng.integers(0, w))
    _box(scene, r, r + max(1, h // 40), c, c + max(1, w // 40), E["unlabeled"])
    if ego:
        scene[h - max(1, h // 14):] = E["ego vehicle"]
    instances[(scene != E["car"]) & (scene != E["person"])] = 0  # parts hidden by nearer things
    return scene, instances


def _box(scene: np.ndarray, top: float, bottom: float, left: float, right: float, value: int,
         instances: np.ndarray | None = None, k: int = 0) -> None:
    """Fill rows ``[top, bottom)`` and columns ``[left, right)`` (clipped, at least 1 px) in place."""
    h, w = scene.shape
    t, b = int(np.clip(top, 0, h - 1)), int(np.clip(bottom, 1, h))
    left_, r = int(np.clip(left, 0, w - 1)), int(np.clip(right, 1, w))
    t, left_ = min(t, b - 1), min(left_, r - 1)
    scene[t:b, left_:r] = value
    if instances is not None:
        instances[t:b, left_:r] = k


def paint(elements: np.ndarray, rng: np.random.Generator, gain: tuple[float, float, float],
          offset: float) -> np.ndarray:
    """An ``(H, W, 3)`` uint8 RGB image of an element map: colour x gain + offset, brightness jitter, noise."""
    image = COLOURS[elements]  # (H, W, 3) float32
    image *= np.asarray(gain, np.float32) * np.float32(rng.uniform(0.9, 1.1))
    image += np.float32(offset)
    image += rng.integers(-10, 11, size=image.shape, dtype=np.int16)  # mild pixel noise
    return np.clip(image, 0, 255).astype(np.uint8)


def object_drawing(label: int, domain: str, h: int, w: int, rng: np.random.Generator) -> np.ndarray:
    """A DomainNet-style picture of class ``label``: shape ``SHAPES[label % 5]`` in a class hue.

    ``sketch`` and ``quickdraw`` draw the outline only (no colour), ``painting`` and ``real`` add texture.

    Returns:
        ``(H, W, 3)`` uint8 RGB.
    """
    v, u = np.mgrid[0:h, 0:w].astype(np.float32)
    u = (u - w * rng.uniform(0.4, 0.6)) / (w * rng.uniform(0.25, 0.4))  # (H, W) shape coordinates in ~[-1, 1]
    v = (v - h * rng.uniform(0.4, 0.6)) / (h * rng.uniform(0.25, 0.4))
    r2, shape = u * u + v * v, SHAPES[label % len(SHAPES)]
    mask = {"ellipse": r2 <= 1, "box": np.maximum(abs(u), abs(v)) <= 0.8, "ring": (r2 <= 1) & (r2 >= 0.45),
            "triangle": (v <= 0.8) & (v >= 2 * abs(u) - 1), "cross": np.minimum(abs(u), abs(v)) <= 0.3}[shape]
    mask &= np.maximum(abs(u), abs(v)) <= 1
    hue = colorsys.hsv_to_rgb((label * 0.618) % 1.0, 0.8, 0.9)
    colour = np.array(hue, np.float32) * 255
    low = np.kron(rng.normal(0, 1, (h // 16 + 1, w // 16 + 1, 1)), np.ones((16, 16, 1)))[:h, :w]  # (H, W, 1)
    background = {"clipart": 250.0, "quickdraw": 255.0, "sketch": 235.0, "infograph": 225.0,
                  "painting": 150 + 30 * low, "real": 120 + 80 * np.linspace(1, -1, h)[:, None, None] + 15 * low}
    image = np.broadcast_to(np.asarray(background[domain], np.float32), (h, w, 3)).copy()
    if domain in ("sketch", "quickdraw"):
        image[mask & ~_erode(mask, max(1, min(h, w) // 40))] = 30.0 if domain == "quickdraw" else 70.0
    else:
        image[mask] = colour * (1 + 0.2 * low[mask]) if domain in ("painting", "real") else colour
    image += rng.integers(-6, 7, size=image.shape, dtype=np.int16) if domain != "quickdraw" else 0
    return np.clip(image, 0, 255).astype(np.uint8)


def _erode(mask: np.ndarray, steps: int) -> np.ndarray:
    """4-neighbour binary erosion, ``steps`` times (pixels outside the picture count as background)."""
    for _ in range(steps):
        padded = np.pad(mask, 1)
        mask = (padded[1:-1, 1:-1] & padded[:-2, 1:-1] & padded[2:, 1:-1]
                & padded[1:-1, :-2] & padded[1:-1, 2:])
    return mask
