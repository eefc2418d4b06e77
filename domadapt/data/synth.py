"""``domadapt data synth NAME ROOT``: a small synthetic dataset in the official on-disk format.

Try a recipe, an adapter or ``domadapt data check`` before downloading 60 GB: :func:`synthesize`
writes GTA5, Cityscapes, SYNTHIA-RAND-CITYSCAPES or DomainNet files exactly as the real release lays
them out (../shared/DATASETS.md), with simple street scenes / object drawings whose labels the
adapters map (and a few ignored ids), at the real image size times ``scale``. The same arguments give
byte-identical files; image ``i`` does not depend on how many images are asked for.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Literal

import cv2
import numpy as np
from PIL import Image

from domadapt.data.catalog import DOMAINNET_DOMAINS, domainnet_classes
from domadapt.data.synth_scene import CS_ID_COLOURS, CS_IDS, SYNTHIA_IDS, object_drawing, paint, street_scene
from domadapt.io import DataError, atomic_path

SynthName = Literal["gta5", "cityscapes", "synthia", "domainnet"]
SYNTH_NAMES: tuple[str, ...] = ("gta5", "cityscapes", "synthia", "domainnet")
# Real image size (W, H) at scale 1; DomainNet images vary, 256x256 is the usual training size.
FULL_SIZE: dict[str, tuple[int, int]] = {"gta5": (1914, 1052), "cityscapes": (2048, 1024), "synthia": (1280, 760),
                                         "domainnet": (256, 256)}
MIN_SIDE, MAX_SIDE = 8, 8192
# Cityscapes cities per split and whether their frame numbers vary (bochum, hamburg, frankfurt) or are 000019.
CITIES: dict[str, tuple[tuple[str, bool], ...]] = {
    "train": (("aachen", False), ("bochum", True), ("hamburg", True), ("zurich", False)),
    "val": (("frankfurt", True), ("lindau", False), ("munster", False)),
}
DOMAINNET_LABELS = (0, 344, 66, 172, 308)  # aircraft_carrier, zigzag, cello, ..., drawn in turn
DOMAINNET_HEIGHTS = (1.0, 0.875, 0.75)  # height / width of DomainNet drawings (quickdraw: square)
# Colour gain and offset per dataset: the synthetic "domain shift".
LOOKS = {"gta5": ((1.1, 1.0, 0.85), 12.0), "cityscapes": ((0.8, 0.9, 0.85), 10.0), "synthia": ((1.0, 1.0, 1.1), 25.0)}


def synthesize(name: SynthName, root: str | Path, images: int = 4, scale: float = 1.0, seed: int = 0) -> Path:
    """Write a small deterministic dataset tree in the official layout of ``name`` under ``root``.

    Files of the same names are replaced (atomically); other files under ``root`` are left alone.

    Args:
        name: ``gta5``, ``cityscapes``, ``synthia`` or ``domainnet`` (:data:`SYNTH_NAMES`).
        root: the dataset's own root (e.g. ``<data>/gta5``), created if missing.
        images: images to write; Cityscapes: per split (train and val), DomainNet: per domain and split.
        scale: image size relative to the real dataset (``1.0``: GTA5 1914x1052, Cityscapes 2048x1024,
            SYNTHIA 1280x760, DomainNet about 256x256).
        seed: seed of :func:`numpy.random.default_rng`.

    Returns:
        ``Path(root)``.

    Raises:
        ValueError: unknown name, ``images < 1``, or a scale giving images under 8 or over 8192 px a side.
        DataError: ``root`` exists and is not a directory.
    """
    w, h = synth_size(name, images, scale)
    root = Path(root)
    if root.exists() and not root.is_dir():
        raise DataError(f"{root}: exists and is not a directory; expected a dataset root folder")
    key = SYNTH_NAMES.index(name)
    if name == "domainnet":
        _write_domainnet(root, images, w, seed, key)
        return root
    for split_index, split in enumerate(("train", "val") if name == "cityscapes" else ("all",)):
        for i in range(images):
            rng = np.random.default_rng([seed, key, split_index, i])  # image i alone decides its content
            frame = int(rng.integers(1, 1_000_000))
            elements, instances = street_scene(h, w, rng, ego=name == "cityscapes", terrain=name != "synthia")
            image = Image.fromarray(paint(elements, rng, *LOOKS[name]))  # (H, W, 3) RGB
            if name == "gta5":
                label = Image.fromarray(CS_IDS[elements], mode="P")  # palette index = Cityscapes label id
                label.putpalette([c for colour in CS_ID_COLOURS for c in colour])
                _save_pil(root / "images" / f"{i + 1:05d}.png", image)
                _save_pil(root / "labels" / f"{i + 1:05d}.png", label)
            elif name == "cityscapes":
                city, varies = CITIES[split][i % len(CITIES[split])]
                stem = f"{city}_{i // len(CITIES[split]):06d}_{frame if varies else 19:06d}"
                _save_pil(root / "leftImg8bit" / split / city / f"{stem}_leftImg8bit.png", image)
                _save_pil(root / "gtFine" / split / city / f"{stem}_gtFine_labelIds.png",
                          Image.fromarray(CS_IDS[elements], mode="L"))
            else:
                bgr = np.zeros((h, w, 3), np.uint16)  # OpenCV order: B = 0, G = instance id, R = class id
                bgr[..., 1], bgr[..., 2] = instances, SYNTHIA_IDS[elements]
                _save_pil(root / "RGB" / f"{i:07d}.png", image)
                _save_bytes(root / "GT" / "LABELS" / f"{i:07d}.png", _encode_png(bgr))
    return root


def synth_size(name: str, images: int, scale: float) -> tuple[int, int]:
    """Validate the arguments of :func:`synthesize`; the image size ``(W, H)`` at ``scale``.

    DomainNet drawings are this wide and 75-100 % as high (quickdraw: square).

    Raises:
        ValueError: unknown name, ``images < 1``, or images under 8 / over 8192 px a side.
    """
    if name not in SYNTH_NAMES:
        raise ValueError(f"unknown dataset {name!r}; expected one of {', '.join(SYNTH_NAMES)}")
    if isinstance(images, bool) or not isinstance(images, int) or images < 1:
        raise ValueError(f"images: expected an integer >= 1, got {images!r}")
    if not scale > 0:  # also catches NaN
        raise ValueError(f"scale: expected a number > 0, got {scale!r}")
    full_w, full_h = FULL_SIZE[name]
    w, h = round(full_w * scale), round(full_h * scale)
    low = min(w, round(h * min(DOMAINNET_HEIGHTS))) if name == "domainnet" else min(w, h)
    if low < MIN_SIDE:
        need = MIN_SIDE / min(full_w, full_h * (min(DOMAINNET_HEIGHTS) if name == "domainnet" else 1))
        raise ValueError(f"scale {scale} is too small for {name}: images would be under {MIN_SIDE} px a side "
                         f"(use --scale {need:.3g} or more)")
    if max(w, h) > MAX_SIDE:
        raise ValueError(f"scale {scale} is too large for {name}: images would be {w}x{h}, over {MAX_SIDE} px a side")
    return w, h


def _write_domainnet(root: Path, images: int, size: int, seed: int, key: int) -> None:
    """``<domain>/<class>/<file>`` drawings and ``<domain>_{train,test}.txt`` lists for all six domains."""
    classes = domainnet_classes()
    for d, domain in enumerate(DOMAINNET_DOMAINS):
        for s, split in enumerate(("train", "test")):
            lines = []
            for i in range(images):
                rng = np.random.default_rng([seed, key, d, s, i])
                label, number = DOMAINNET_LABELS[i % len(DOMAINNET_LABELS)], 2 * i + s + 1  # unique across splits
                h = size if domain == "quickdraw" else round(size * DOMAINNET_HEIGHTS[i % len(DOMAINNET_HEIGHTS)])
                image = Image.fromarray(object_drawing(label, domain, h, size, rng))
                if domain == "quickdraw":  # the official quickdraw files are <16-digit id>.png
                    file, fmt = f"{int(rng.integers(10**15, 10**16))}.png", "PNG"
                else:
                    file, fmt = f"{domain}_{label + 1:03d}_{number:06d}.jpg", "JPEG"
                rel = f"{domain}/{classes[label]}/{file}"
                _save_pil(root / rel, image, fmt, quality=90)
                lines.append((label, f"{rel} {label}\n"))
            text = "".join(line for _, line in sorted(lines, key=lambda x: x[0]))  # grouped by label, as shipped
            _save_bytes(root / f"{domain}_{split}.txt", text.encode())


def _save_pil(path: Path, image: Image.Image, fmt: str = "PNG", quality: int = 90) -> None:
    with atomic_path(path) as tmp:
        image.save(tmp, format=fmt, **({"quality": quality} if fmt == "JPEG" else {}))


def _encode_png(array: np.ndarray) -> bytes:
    ok, buf = cv2.imencode(".png", array)
    if not ok:  # pragma: no cover - OpenCV encodes any uint8/uint16 array
        raise DataError(f"OpenCV could not encode a {array.dtype} {array.shape} array as PNG")
    return buf.tobytes()


def _save_bytes(path: Path, data: bytes) -> None:
    with atomic_path(path) as tmp:
        Path(tmp).write_bytes(data)


def summary(name: str, root: str | Path, images: int, scale: float) -> str:
    """One line saying what :func:`synthesize` wrote where: file counts and image size."""
    w, h = synth_size(name, images, scale)
    if name == "domainnet":
        n = images * 2 * len(DOMAINNET_DOMAINS)
        return (f"domainnet: wrote {n} images ({len(DOMAINNET_DOMAINS)} domains x train/test x {images}) and "
                f"{2 * len(DOMAINNET_DOMAINS)} split lists under {root}, images {w} px wide, "
                f"{round(h * min(DOMAINNET_HEIGHTS))}-{h} px high")
    n = images * (2 if name == "cityscapes" else 1)
    per = f" (train and val, {images} each)" if name == "cityscapes" else ""
    return f"{name}: wrote {n} images and {n} labels{per} under {root}, {w}x{h} (WxH)"


class _Parser(argparse.ArgumentParser):
    """argparse with a one-line error (no usage dump); still exits 2."""

    def error(self, message: str) -> None:  # type: ignore[override]
        print(f"{self.prog}: error: {message} (see --help)", file=sys.stderr)
        raise SystemExit(2)


def main(argv: list[str] | None = None) -> int:
    """``domadapt data synth NAME ROOT [--images N] [--scale S] [--seed K]``.

    Returns:
        The exit code: 0 written, 2 bad arguments, 1 the root cannot be written (one line on stderr).
    """
    parser = _Parser(prog="domadapt data synth",
                     description="Write a small synthetic dataset in the official on-disk format of NAME.",
                     epilog="example: domadapt data synth gta5 data/gta5 --images 8 --scale 0.25")
    parser.add_argument("name", choices=SYNTH_NAMES, metavar="NAME", help=f"one of {', '.join(SYNTH_NAMES)}")
    parser.add_argument("root", metavar="ROOT", help="the dataset's own root, e.g. data/gta5 (created if missing)")
    parser.add_argument("--images", type=int, default=4, metavar="N",
                        help="images to write; cityscapes: per split (train, val); domainnet: per domain and split "
                             "(default: 4)")
    parser.add_argument("--scale", type=float, default=1.0, metavar="S",
                        help="image size relative to the real data: 1.0 = gta5 1914x1052, cityscapes 2048x1024, "
                             "synthia 1280x760, domainnet ~256x256 (default: 1.0)")
    parser.add_argument("--seed", type=int, default=0, metavar="K", help="random seed; same arguments, same bytes (default: 0)")
    try:
        args = parser.parse_args(argv)
    except SystemExit as e:  # --help (0) or a parse error (2, already printed)
        return int(e.code or 0)
    try:
        root = synthesize(args.name, args.root, args.images, args.scale, args.seed)
    except DataError as e:
        print(f"{parser.prog}: error: {e}", file=sys.stderr)
        return 1
    except ValueError as e:
        print(f"{parser.prog}: error: {e}", file=sys.stderr)
        return 2
    except OSError as e:
        print(f"{parser.prog}: error: {args.root}: cannot write ({e.strerror or e})", file=sys.stderr)
        return 1
    print(summary(args.name, root, args.images, args.scale))
    return 0


if __name__ == "__main__":
    sys.exit(main())
