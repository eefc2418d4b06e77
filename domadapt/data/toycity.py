"""Toy-city looks and dataset builder: ``source`` (flat-shaded render) and ``target`` (photo-like).

Both domains come from the same layout generator (:mod:`domadapt.data.toycity_scene`); they differ
in camera (lower on ``target``), street statistics and, here, in appearance:

* ``source`` — every surface has one flat colour (per-class base colour + per-instance jitter),
  facades are flat-shaded by orientation, edges are sharp, there is no noise: a cheap renderer.
* ``target`` — surfaces are textured with **real photographs bundled with scikit-image** mapped in
  surface coordinates (gravel road, brick facades and paving, grass verges and foliage, the
  astronaut photo on clothing, text on signs, the camera photo as reflections on cars and
  windows), with a sky gradient, cast shadows, distance haze, a random exposure (gain, gamma,
  colour cast), vignetting, optical blur and sensor noise.

Scene ``i`` of a split is drawn from its own seed, so it does not depend on how many scenes are
built, nor on the image size.
"""

from __future__ import annotations

import functools

import cv2
import numpy as np

from domadapt.data.toycity_scene import MAT, MATERIALS, PRESENT_CLASSES, Scene, sample_scene

__all__ = ["DEFAULT_COUNTS", "PRESENT_CLASSES", "build_toycity", "render_source", "render_target"]

DEFAULT_COUNTS: dict[tuple[str, str], int] = {
    ("source", "train"): 600, ("source", "val"): 100, ("target", "train"): 600, ("target", "val"): 200,
}
_SEED = 19  # changing it (or the generator) needs a cache-version bump in embedded.py

# material -> (texture, texture pixels per metre, detail amplitude); textures are real photos.
_TEXTURE: dict[str, tuple[str, float, float]] = {
    "road": ("gravel", 90, 0.30), "marking": ("gravel", 90, 0.12), "sidewalk": ("brick", 40, 0.35),
    "terrain": ("grass", 80, 0.55), "building": ("brick", 45, 0.35), "window": ("camera", 25, 0.35),
    "foliage": ("grass", 120, 0.60), "trunk": ("gravel", 150, 0.30), "pole": ("moon", 100, 0.25),
    "sign": ("text", 150, 0.45), "car": ("camera", 30, 0.20), "glass": ("camera", 40, 0.35),
    "wheel": ("gravel", 100, 0.30), "lamp": ("moon", 100, 0.10), "skin": ("moon", 200, 0.10),
}
_GROUND = np.isin(np.arange(len(MATERIALS)), [MAT[m] for m in ("road", "marking", "sidewalk", "terrain")])


@functools.lru_cache(maxsize=1)
def _textures() -> dict[str, np.ndarray]:
    """Zero-mean, unit-variance detail maps of scikit-image's bundled grey photos, plus two colour photos."""
    import skimage.data

    out = {}
    for name in ("brick", "grass", "gravel", "camera", "moon", "text"):
        t = getattr(skimage.data, name)().astype(np.float32)
        t -= cv2.GaussianBlur(t, (0, 0), 16)  # drop slow illumination changes, keep the texture
        out[name] = (t / t.std()).clip(-3, 3)
    for name in ("astronaut", "coffee"):
        out[name] = getattr(skimage.data, name)().astype(np.float32)
    return out


def render_source(scene: Scene) -> np.ndarray:
    """Flat-shaded rendering: ``(H, W, 3)`` uint8, one colour per instance times facade shading."""
    img = scene.colours[scene.inst] * scene.shade[..., None]
    return np.clip(np.rint(img), 0, 255).astype(np.uint8)


@functools.lru_cache(maxsize=4)
def _clouds(h: int, w: int) -> np.ndarray:
    """``(H, W, 1)`` soft cloud pattern in ``[0, 1]``: the large bright structures of the moon photo."""
    import skimage.data

    moon = cv2.GaussianBlur(skimage.data.moon().astype(np.float32), (0, 0), 12)  # keep only large shapes
    moon = (moon - moon.mean()) / moon.std()
    return cv2.resize(moon, (w, h), interpolation=cv2.INTER_AREA)[..., None].clip(0, 2) / 2


@functools.lru_cache(maxsize=4)
def _radius2(h: int, w: int) -> np.ndarray:
    """``(H, W)`` squared distance to the image centre, 1 at the middle of each edge (vignetting)."""
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    return ((yy - h / 2) / (h / 2)) ** 2 + ((xx - w / 2) / (w / 2)) ** 2


def _sample(tex: np.ndarray, u: np.ndarray, v: np.ndarray, scale: float, offset: np.ndarray) -> np.ndarray:
    """Nearest texel at surface coordinates ``(u, v)`` m, ``scale`` texels/m, per-pixel offsets ``(N, 2)``."""
    ty = (np.floor(v * scale) + offset[:, 0]).astype(np.int64) % tex.shape[0]
    tx = (np.floor(u * scale) + offset[:, 1]).astype(np.int64) % tex.shape[1]
    return tex[ty, tx]


def render_target(scene: Scene, rng: np.random.Generator) -> np.ndarray:
    """Photo-like rendering of ``scene``: real-photo textures, lighting, haze, blur and noise.

    Returns:
        ``(H, W, 3)`` uint8 RGB.
    """
    tex = _textures()
    h, w = scene.material.shape
    mat, inst = scene.material, scene.inst
    offsets = rng.integers(0, 4096, (len(scene.colours), 2))  # each instance shows its own texture region
    img = scene.colours[inst].astype(np.float32)  # (H, W, 3) base colours act as tints
    u, v = np.nan_to_num(scene.u), np.nan_to_num(scene.v)
    for name, (tname, scale, amp) in _TEXTURE.items():
        m = mat == MAT[name]
        if m.any():
            detail = _sample(tex[tname], u[m], v[m], scale, offsets[inst[m]])
            img[m] *= (1.0 + amp * detail)[:, None]
    m = mat == MAT["person"]
    if m.any():  # clothing: the base colour blended with a real photo (astronaut suit, coffee shop)
        photo = tex[("astronaut", "coffee")[rng.integers(2)]]
        img[m] = 0.45 * img[m] + 0.55 * _sample(photo, u[m], v[m], 150, offsets[inst[m]])

    # Sky: darker towards the zenith, whiter at the horizon, with soft clouds.
    sky = mat == MAT["sky"]
    t = np.clip((np.arange(h, dtype=np.float32) + 0.5) / max(scene.camera.yh, 1.0), 0, 1)[:, None, None]
    zenith, horizon = scene.colours[0] * 0.8, scene.colours[0] * 0.45 + 0.55 * 235
    grad = np.broadcast_to(zenith * (1 - t) + horizon * t, (h, w, 3))
    clouds = _clouds(h, w)[sky] * np.float32(rng.uniform(0, 50))  # (S, 1)
    img[sky] = grad[sky] + clouds

    img *= scene.shade[..., None]
    if rng.random() < 0.6:  # a building's cast shadow across the ground: a slanted line in ground metres
        gx = scene.ground_x
        edge = rng.uniform(-4, 4) + rng.uniform(-0.3, 0.3) * np.nan_to_num(scene.depth, posinf=0)
        with np.errstate(invalid="ignore"):
            shadow = _GROUND[mat] & ((gx < edge) if rng.random() < 0.5 else (gx > edge))
        img[shadow] *= rng.uniform(0.45, 0.7)
    haze = np.where(sky, 0.0, 1 - np.exp(-np.minimum(scene.depth, 1e4) / rng.uniform(120, 400)))  # (H, W)
    img = img * (1 - haze[..., None]) + horizon.reshape(1, 1, 3) * haze[..., None]

    # Camera: exposure, colour cast, gamma, vignetting, optical blur, sensor noise.
    img = img * (rng.uniform(0.75, 1.15) / 255.0) * rng.uniform(0.88, 1.12, 3).astype(np.float32)
    img = np.clip(img, 0, 1) ** np.float32(rng.uniform(0.75, 1.35))
    img *= (1 - np.float32(rng.uniform(0.1, 0.3) / 2) * _radius2(h, w))[..., None]
    img = cv2.GaussianBlur(img.astype(np.float32), (0, 0), rng.uniform(0.5, 0.9) * h / 64)
    img = img * 255 + rng.standard_normal(img.shape, dtype=np.float32) * np.float32(rng.uniform(2, 6))
    return np.clip(np.rint(img), 0, 255).astype(np.uint8)


def build_toycity(domain: str, split: str, height: int = 64, width: int = 128, count: int | None = None
                  ) -> dict[str, np.ndarray]:
    """Generate a toy-city split deterministically.

    Args:
        domain: ``"source"`` or ``"target"``.
        split: ``"train"`` or ``"val"``.
        height, width: image size in pixels.
        count: number of scenes (default :data:`DEFAULT_COUNTS`).

    Returns:
        ``{"images": (N, H, W, 3) uint8, "masks": (N, H, W) uint8}``; masks hold train ids of
        :data:`PRESENT_CLASSES` and 255 on a thin border.
    """
    count = DEFAULT_COUNTS[(domain, split)] if count is None else count
    images = np.empty((count, height, width, 3), np.uint8)
    masks = np.empty((count, height, width), np.uint8)
    border = max(1, round(height / 64))
    codes = (1 + ("source", "target").index(domain), 1 + ("train", "val").index(split))
    for i in range(count):
        rng = np.random.default_rng([_SEED, *codes, i])
        scene = sample_scene(rng, height, width, domain)
        masks[i] = scene.labels(border)
        images[i] = render_target(scene, rng) if domain == "target" else render_source(scene)
    return {"images": images, "masks": masks}
