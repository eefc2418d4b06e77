"""Toy-city scene generator: random street layouts in Cityscapes train ids (synthetic, no IO).

A scene is laid out in metres and projected through a pinhole camera at height ``h`` above a flat
ground (horizon row ``yh``, vanishing column ``vx``, focal length ``f`` pixels):

    x = vx + f * X / D,     y = yh + f * (h - Y) / D

for a point ``X`` metres to the right, ``Y`` metres up and ``D`` metres ahead. Inverting this per
pixel gives the ground plane (road, sidewalks, grass verges with perspective) and the two building
facades (vertical planes along the street, cut into buildings of random height); trees, poles with
traffic signs, cars (rear view, rounded boxes) and pedestrians (thin ellipses) stand on the ground
and are painted far to near. The result is a *G-buffer* (:class:`Scene`: material, instance and
surface coordinates per pixel) that :mod:`domadapt.data.toycity` turns into the
flat-shaded ``source`` look or the photo-textured ``target`` look.

The two domains also differ in camera: the ``target`` camera is lower (1.1-1.5 m instead of
1.7-2.3 m) with the horizon lower in the frame, and its streets have more trees and gaps.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from domadapt.structures import IGNORE_INDEX

# road, sidewalk, building, pole, traffic sign, vegetation, terrain, sky, person, car
PRESENT_CLASSES: tuple[int, ...] = (0, 1, 2, 5, 7, 8, 9, 10, 11, 13)
# Materials (what a pixel looks like) and the train id each one is labelled with.
MATERIALS: tuple[tuple[str, int], ...] = (
    ("sky", 10), ("road", 0), ("marking", 0), ("sidewalk", 1), ("terrain", 9), ("building", 2),
    ("window", 2), ("foliage", 8), ("trunk", 8), ("pole", 5), ("sign", 7), ("car", 13), ("glass", 13),
    ("wheel", 13), ("lamp", 13), ("person", 11), ("skin", 11),
)
MAT = {name: i for i, (name, _) in enumerate(MATERIALS)}
MATERIAL_TO_TRAINID = np.array([c for _, c in MATERIALS], np.uint8)


@dataclass
class Camera:
    """Pinhole camera over flat ground: focal ``f`` px, ``height`` m, horizon row ``yh``, centre column ``vx``."""

    f: float
    height: float
    yh: float
    vx: float

    def project(self, x: float, y: float, d: float) -> tuple[float, float, float]:
        """World ``(X right, Y up, D ahead)`` metres -> ``(col, row, pixels per metre)``."""
        s = self.f / d
        return self.vx + s * x, self.yh + s * (self.height - y), s


@dataclass
class Scene:
    """Per-pixel description of one scene (a G-buffer). All maps are ``(H, W)``.

    Attributes:
        material: index into :data:`MATERIALS`.
        inst: instance index into ``colours`` (every painted surface is one instance).
        colours: ``(K, 3)`` float32 base RGB per instance (0-255).
        u, v: surface coordinates in metres (ground: lateral/depth, facade: depth/height,
            objects: local offsets), for texturing.
        depth: distance in metres (``inf`` for sky), for haze.
        shade: flat-shading factor (facade orientation).
        ground_x: lateral coordinate ``X`` (m) of the ground plane at each pixel (NaN above the
            horizon), for cast shadows.
    """

    material: np.ndarray
    inst: np.ndarray
    colours: np.ndarray
    u: np.ndarray
    v: np.ndarray
    depth: np.ndarray
    shade: np.ndarray
    camera: Camera
    ground_x: np.ndarray = field(repr=False)

    def labels(self, border: int = 1) -> np.ndarray:
        """``(H, W)`` uint8 train ids; a ``border``-pixel frame is 255 (unlabelled)."""
        lab = MATERIAL_TO_TRAINID[self.material]
        if border > 0:
            lab[:border], lab[-border:], lab[:, :border], lab[:, -border:] = (IGNORE_INDEX,) * 4
        return lab


class _Canvas:
    """Paints materials into the G-buffer, one instance per call, inside a bounding box."""

    def __init__(self, h: int, w: int, camera: Camera, sky: np.ndarray) -> None:
        self.yy, self.xx = (a.astype(np.float32) + 0.5 for a in np.mgrid[0:h, 0:w])  # pixel centres
        self.material = np.zeros((h, w), np.uint8)  # all sky
        self.inst = np.zeros((h, w), np.int32)
        self.u, self.v = np.zeros((h, w), np.float32), self.yy / h
        self.depth = np.full((h, w), np.inf, np.float32)
        self.shade = np.ones((h, w), np.float32)
        self.colours: list[np.ndarray] = [sky]
        self.camera, self.h, self.w = camera, h, w

    def paint(self, mask, material: str, colour, box=None, u=None, v=None, depth=None, shade=1.0) -> None:
        """Paint ``mask`` (full size, or local to ``box = (y0, y1, x0, x1)``) as a new instance."""
        sl = np.s_[:, :] if box is None else np.s_[box[0] : box[1], box[2] : box[3]]
        self.colours.append(np.asarray(colour, np.float32))
        for buf, val in ((self.material, MAT[material]), (self.inst, len(self.colours) - 1), (self.u, u),
                         (self.v, v), (self.depth, depth), (self.shade, shade)):
            if val is not None:
                np.copyto(buf[sl], val, where=mask, casting="unsafe")

    def box(self, x0: float, x1: float, y0: float, y1: float):
        """Integer pixel box covering ``[x0, x1] x [y0, y1]`` clipped to the image, or ``None`` if empty."""
        bx0, bx1 = max(int(np.floor(x0)), 0), min(int(np.ceil(x1)) + 1, self.w)
        by0, by1 = max(int(np.floor(y0)), 0), min(int(np.ceil(y1)) + 1, self.h)
        if bx0 >= bx1 or by0 >= by1:
            return None
        return by0, by1, bx0, bx1

    def shape(self, kind: str, cx: float, cy: float, rx: float, ry: float, material: str, colour,
              depth: float, scale: float, corner: float = 0.0) -> None:
        """Paint an axis-aligned ``ellipse`` / rounded ``rect`` / ``triangle`` centred on ``(cx, cy)`` px."""
        rx, ry = max(rx, 0.5), max(ry, 0.5)  # at least one pixel wide, so far objects do not vanish
        b = self.box(cx - rx, cx + rx, cy - ry, cy + ry)
        if b is None:
            return
        dx, dy = self.xx[b[0] : b[1], b[2] : b[3]] - cx, self.yy[b[0] : b[1], b[2] : b[3]] - cy
        if kind == "ellipse":
            m = (dx / rx) ** 2 + (dy / ry) ** 2 <= 1
        elif kind == "triangle":  # apex up
            m = (np.abs(dx) <= rx * (dy + ry) / (2 * ry)) & (np.abs(dy) <= ry)
        else:  # rounded rectangle, corner radius in pixels
            r = min(corner, rx, ry)
            qx, qy = np.maximum(np.abs(dx) - (rx - r), 0), np.maximum(np.abs(dy) - (ry - r), 0)
            m = (np.abs(dx) <= rx) & (np.abs(dy) <= ry) & (qx**2 + qy**2 <= r**2 + 1e-6)
        self.paint(m, material, colour, box=b, u=dx / scale, v=dy / scale, depth=depth)

    def board(self, x: float, d: float, w: float, y0: float, y1: float, material: str, colour,
              kind: str = "rect", corner: float = 0.0) -> None:
        """Paint a world-space upright shape at ``(X=x, D=d)`` spanning heights ``[y0, y1]`` m, width ``w`` m."""
        cx, cy, s = self.camera.project(x, (y0 + y1) / 2, d)
        self.shape(kind, cx, cy, w * s / 2, (y1 - y0) * s / 2, material, colour, d, s, corner * s)


def _colour(rng: np.random.Generator, base, jitter: float = 12.0) -> np.ndarray:
    c = np.asarray(base, np.float32) + rng.normal(0, jitter, 3).astype(np.float32)
    return np.minimum(np.maximum(c, 0), 255)  # cheaper than np.clip on 3 values


_BUILDING = ((190, 170, 140), (150, 85, 65), (130, 130, 135), (205, 200, 190), (95, 90, 85), (170, 150, 110))
_CAR = ((220, 220, 220), (30, 30, 35), (160, 160, 165), (170, 30, 30), (30, 50, 140), (80, 80, 85), (60, 90, 60))
_SIGN = ((30, 70, 190), (200, 40, 40), (230, 200, 40), (235, 235, 235))
_CLOTHES = ((40, 40, 50), (90, 30, 30), (30, 50, 90), (120, 110, 90), (200, 200, 200), (60, 80, 50))


def sample_scene(rng: np.random.Generator, h: int, w: int, domain: str) -> Scene:
    """Draw one random street scene for ``domain`` (``"source"`` or ``"target"``).

    Args:
        rng: the scene's own generator (scene ``i`` is seeded by ``i``, so it is count-independent).
        h, w: image size in pixels.
        domain: selects the camera and street statistics (lower camera, more trees on ``target``).

    Returns:
        The scene's :class:`Scene` G-buffer.
    """
    tgt = domain == "target"
    cam = Camera(f=w * rng.uniform(0.5, 0.7), height=rng.uniform(1.1, 1.5) if tgt else rng.uniform(1.7, 2.3),
                 yh=h * (rng.uniform(0.42, 0.52) if tgt else rng.uniform(0.30, 0.42)), vx=w * rng.uniform(0.4, 0.6))
    cv = _Canvas(h, w, cam, _colour(rng, (rng.uniform(100, 150), rng.uniform(150, 190), rng.uniform(205, 240)), 5))
    yy, xx = cv.yy, cv.xx

    # Ground plane: lateral X and depth D of every pixel below the horizon.
    below = yy > cam.yh + 0.25
    dist = np.where(below, cam.f * cam.height / np.maximum(yy - cam.yh, 1e-3), np.inf).astype(np.float32)
    lat = np.where(below, (xx - cam.vx) * dist / cam.f, np.nan).astype(np.float32)
    road_l, road_r = -rng.uniform(2.0, 5.0), rng.uniform(3.0, 8.0)
    walk = rng.uniform(1.5, 4.0, 2)
    verge = np.where(rng.random(2) < (0.7 if tgt else 0.4), rng.uniform(1.0, 4.0, 2), 0.0)
    edges = (road_l - walk[0], road_r + walk[1])  # outer sidewalk edges
    facade_x = (edges[0] - verge[0], edges[1] + verge[1])
    with np.errstate(invalid="ignore"):
        cv.paint(below, "terrain", _colour(rng, (130, 160, 85)), u=lat, v=dist, depth=dist)
        for side in (0, 1):
            m = (lat >= facade_x[0]) & (lat <= edges[0]) if side == 0 else (lat >= edges[1]) & (lat <= facade_x[1])
            cv.paint(m, "terrain", _colour(rng, (130, 160, 85)), u=lat, v=dist, depth=dist)
        g = rng.uniform(140, 180)
        cv.paint((lat >= edges[0]) & (lat <= edges[1]), "sidewalk", _colour(rng, (g, g - 5, g - 12)), u=lat, v=dist,
                 depth=dist)
        g = rng.uniform(65, 100)
        on_road = (lat >= road_l) & (lat <= road_r)
        cv.paint(on_road, "road", _colour(rng, (g, g, g + 4), 4), u=lat, v=dist, depth=dist)
        lane = rng.uniform(2.8, 3.6)
        phase = np.mod(lat - road_l + lane / 2, lane) - lane / 2  # signed offset to the nearest lane line
        near_line = (np.abs(phase) < 0.12) & (lat > road_l + lane / 2) & (lat < road_r - 1.0)
        dash = np.mod(dist, rng.uniform(7, 10)) < 3.0
        cv.paint(on_road & near_line & dash, "marking", _colour(rng, (225, 225, 215), 5), u=lat, v=dist, depth=dist)

    street_end = rng.uniform(40, 110)
    _far_skyline(cv, rng, street_end * 1.3, tgt)
    light = rng.uniform(0.7, 1.0, 2)  # the two facades face opposite ways: flat shading differs
    light[rng.integers(2)] = 1.0
    for side in (0, 1):
        _facades(cv, rng, facade_x[side], street_end, light[side], gap_p=0.3 if tgt else 0.15)

    # Street furniture, cars, people: drawn far to near so that near things occlude far ones.
    objects: list[tuple[float, str, float]] = []
    for _ in range(rng.integers(2, 7) if tgt else rng.integers(0, 5)):
        side = rng.integers(2)
        lo, hi = sorted((edges[side] + (0.3 if side else -0.3) * walk[side], facade_x[side]))
        objects.append((rng.uniform(4, street_end), "tree", rng.uniform(lo, hi)))
    for k in range(rng.integers(1, 4)):
        side = rng.integers(2)
        objects.append((rng.uniform(4, 50), "pole" if k else "signpole",
                        (road_l - 0.4, road_r + 0.4)[side]))
    for _ in range(rng.integers(1, 5)):
        objects.append((rng.uniform(6, 60), "car", rng.uniform(road_l + 1.0, road_r - 1.0)))
    for _ in range(rng.integers(1, 5)):
        side = rng.integers(2)
        lo, hi = sorted(((road_l, road_r)[side], edges[side]))
        objects.append((rng.uniform(3.5, 40), "person", rng.uniform(lo + 0.3, hi - 0.3) if hi - lo > 0.6 else lo))
    for d, kind, x in sorted(objects, key=lambda o: -o[0]):
        _OBJECTS[kind](cv, rng, x, d)

    return Scene(cv.material, cv.inst, np.stack(cv.colours), cv.u, cv.v, cv.depth, cv.shade, cam, lat)


def _far_skyline(cv: _Canvas, rng: np.random.Generator, d: float, tgt: bool) -> None:
    """Distant buildings and tree lines on the horizon (behind everything else)."""
    cam, x = cv.camera, 0.0
    while x < cv.w:
        seg = rng.uniform(0.05, 0.25) * cv.w
        tree = rng.random() < (0.6 if tgt else 0.4)
        top = cam.yh - cam.f * rng.uniform(3, 15) / d
        box = cv.box(x, x + seg, top, cam.yh + 0.5)
        bumps = rng.uniform(0.3, 0.8) if tree else 0.0
        colour = _colour(rng, (55, 100, 45) if tree else _BUILDING[rng.integers(len(_BUILDING))])
        x += seg
        if box is None:
            continue
        yy, xx = cv.yy[box[0] : box[1], box[2] : box[3]], cv.xx[box[0] : box[1], box[2] : box[3]]
        m = (xx >= x - seg) & (xx < x) & (yy >= top) & (yy <= cam.yh + 0.5)
        m &= cv.material[box[0] : box[1], box[2] : box[3]] == MAT["sky"]
        if tree:  # bumpy crown line instead of a flat roof
            m &= yy >= top + np.abs(np.sin(xx * bumps)) * (cam.yh - top) * 0.4
        cv.paint(m, "foliage" if tree else "building", colour, box=box, u=xx / cam.f * d,
                 v=(cam.yh - yy) / cam.f * d, depth=d)


def _facades(cv: _Canvas, rng: np.random.Generator, fx: float, street_end: float, light: float, gap_p: float) -> None:
    """Buildings of random length and height on the vertical plane ``X = fx``, with window grids."""
    cam = cv.camera
    with np.errstate(divide="ignore", invalid="ignore"):
        d_col = cam.f * fx / (cv.xx[0] - cam.vx)  # (W,) facade depth seen in each column (<0: other side)
    start = 0.5
    while start < street_end:
        length = rng.uniform(6, 20)
        if rng.random() >= gap_p:
            height = rng.uniform(5, 22)
            colour = _colour(rng, _BUILDING[rng.integers(len(_BUILDING))], 15)
            spacing, floor = rng.uniform(2.5, 4.0), rng.uniform(2.8, 3.5)
            window = _colour(rng, (55, 70, 95), 10)
            cols = np.flatnonzero((d_col >= start) & (d_col < start + length))  # contiguous: d is monotonic
            if len(cols):
                box = (0, cv.h, cols[0], cols[-1] + 1)
                d = np.broadcast_to(d_col[box[2] : box[3]], (cv.h, box[3] - box[2]))  # (H, w') depth
                y = cam.height - (cv.yy[:, box[2] : box[3]] - cam.yh) * d / cam.f  # (H, w') height on facade
                m = (y >= 0) & (y <= height)
                cv.paint(m, "building", colour, box=box, u=d, v=y, depth=d, shade=light)
                # Windows: a grid in facade coordinates, only where a window spans > 4 px (else aliasing).
                big = (cam.f * abs(fx) * spacing / d**2 > 4) & (cam.f * floor / d > 4)
                if big.any():
                    level = np.mod(y, floor) / floor
                    win = (m & big & (y > floor * 0.9) & (y < height - 0.8) & (level > 0.35) & (level < 0.8)
                           & (np.mod(d - start, spacing) / spacing > 0.3))
                    cv.paint(win, "window", window, box=box, u=d, v=y, depth=d, shade=light)
        start += length


def _tree(cv: _Canvas, rng: np.random.Generator, x: float, d: float) -> None:
    trunk_h, r = rng.uniform(1.5, 3.0), rng.uniform(1.2, 2.5)
    cv.board(x, d, 0.3, 0.0, trunk_h + r * 0.5, "trunk", _colour(rng, (85, 60, 40)))
    leaf = _colour(rng, (55, 105, 45), 15)
    for dx, dy in ((0.0, 0.0), *rng.uniform(-0.45, 0.45, (2, 2))):
        cy = trunk_h + r * (0.8 + dy)
        cv.board(x + dx * r, d, 2 * r * rng.uniform(0.8, 1.1), cy - r, cy + r, "foliage", leaf, kind="ellipse")


def _pole(cv: _Canvas, rng: np.random.Generator, x: float, d: float, sign: bool = False) -> None:
    height = rng.uniform(4.0, 7.0)
    cv.board(x, d, 0.18, 0.0, height, "pole", _colour(rng, (120, 120, 125), 15))
    if sign or rng.random() < 0.5:
        size, top = rng.uniform(0.6, 0.9), height - rng.uniform(0.2, 1.5)
        kind = ("rect", "ellipse", "triangle")[rng.integers(3)]
        cv.board(x, d, size, top - size, top, "sign", _colour(rng, _SIGN[rng.integers(len(_SIGN))]), kind=kind)


def _car(cv: _Canvas, rng: np.random.Generator, x: float, d: float) -> None:
    w, h = rng.uniform(1.6, 2.0), rng.uniform(1.3, 1.65)
    paint = _colour(rng, _CAR[rng.integers(len(_CAR))], 10)
    for side in (-1, 1):
        cv.board(x + side * 0.36 * w, d, 0.26 * w, 0.0, 0.4, "wheel", _colour(rng, (25, 25, 28), 3))
    cv.board(x, d, w, 0.22, 0.62 * h, "car", paint, corner=0.15)
    cv.board(x, d, 0.8 * w, 0.55 * h, h, "car", paint, corner=0.25)
    cv.board(x, d, 0.66 * w, 0.65 * h, 0.93 * h, "glass", _colour(rng, (45, 50, 60), 6), corner=0.1)
    for side in (-1, 1):
        cv.board(x + side * 0.38 * w, d, 0.14 * w, 0.42 * h, 0.52 * h, "lamp", _colour(rng, (205, 40, 35), 8))


def _person(cv: _Canvas, rng: np.random.Generator, x: float, d: float) -> None:
    h = rng.uniform(1.55, 1.9)
    cv.board(x, d, rng.uniform(0.36, 0.46), 0.0, 0.88 * h, "person",
             _colour(rng, _CLOTHES[rng.integers(len(_CLOTHES))], 15), kind="ellipse")
    g = rng.uniform(120, 220)
    cv.board(x, d, 0.23, 0.86 * h, h, "skin", _colour(rng, (g, 0.8 * g, 0.68 * g), 6), kind="ellipse")


_OBJECTS = {"tree": _tree, "pole": _pole, "signpole": lambda cv, rng, x, d: _pole(cv, rng, x, d, sign=True),
            "car": _car, "person": _person}
