"""File IO with clear errors and atomic writes.

Readers raise :class:`DataError` (a ``ValueError``) with one line naming the file and what was
expected. Writers go through a temporary file in the same directory and ``os.replace`` so that a
killed process never leaves a half-written file under the final name.
"""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import yaml
from PIL import Image, UnidentifiedImageError


class DataError(ValueError):
    """Bad input on disk: the message names the path or field and what was expected."""


class CorruptSampleError(DataError):
    """A single sample could not be decoded (corrupt or truncated file)."""


def read_rgb(path: str | os.PathLike) -> np.ndarray:
    """Read an image as ``(H, W, 3)`` uint8 RGB.

    Raises:
        CorruptSampleError: the file is missing, truncated or not an image.
    """
    try:
        with Image.open(path) as im:
            im.load()
            return np.array(im.convert("RGB"))  # writable copy (torch.from_numpy needs one)
    except FileNotFoundError:
        raise CorruptSampleError(f"{path}: image file not found") from None
    except (UnidentifiedImageError, OSError, SyntaxError) as e:
        raise CorruptSampleError(f"{path}: corrupt or truncated image ({e})") from None


def read_index_png(path: str | os.PathLike, size: tuple[int, int] | None = None) -> np.ndarray:
    """Read an 8-bit label PNG by its *index* values (mode ``P`` or ``L``), never its colours.

    Args:
        path: label file.
        size: optional ``(W, H)``; a label of another size is resized nearest-neighbour to it.

    Returns:
        ``(H, W)`` uint8 raw ids.
    """
    try:
        with Image.open(path) as im:
            im.load()
            if im.mode not in ("P", "L"):  # a wrongly converted dataset, not one bad file: never skipped
                raise DataError(
                    f"{path}: expected an 8-bit palette (P) or grayscale (L) label PNG, got mode {im.mode}"
                )
            if size is not None and im.size != tuple(size):
                im = im.resize(tuple(size), Image.NEAREST)
            return np.asarray(im)
    except FileNotFoundError:
        raise CorruptSampleError(f"{path}: label file not found") from None
    except (UnidentifiedImageError, OSError, SyntaxError) as e:
        raise CorruptSampleError(f"{path}: corrupt or truncated label ({e})") from None


def image_size(path: str | os.PathLike) -> tuple[int, int]:
    """``(W, H)`` from the file header (no decode)."""
    try:
        with Image.open(path) as im:
            return im.size
    except FileNotFoundError:
        raise CorruptSampleError(f"{path}: file not found") from None
    except (UnidentifiedImageError, OSError, SyntaxError) as e:
        raise CorruptSampleError(f"{path}: corrupt or truncated image ({e})") from None


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike):
    """Yield a temporary path beside ``path``; on success it is renamed onto ``path``.

    Example:
        >>> with atomic_path("out.png") as tmp:  # doctest: +SKIP
        ...     Image.fromarray(a).save(tmp, format="PNG")
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        yield tmp
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def write_json(path: str | os.PathLike, obj: Any) -> None:
    """Write ``obj`` as indented JSON, atomically."""
    with atomic_path(path) as tmp:
        with open(tmp, "w") as f:
            json.dump(obj, f, indent=2, sort_keys=False, default=_json_default)
            f.write("\n")


def write_png(path: str | os.PathLike, array: np.ndarray) -> None:
    """Write a uint8 ``(H, W)`` or ``(H, W, 3)`` array as PNG, atomically."""
    with atomic_path(path) as tmp:
        Image.fromarray(np.asarray(array)).save(tmp, format="PNG")


def _json_default(o: Any):
    if isinstance(o, np.generic):
        return o.item()
    if isinstance(o, np.ndarray):
        return o.tolist()
    if isinstance(o, Path):
        return str(o)
    raise TypeError(f"not JSON serialisable: {type(o).__name__}")


DATA_VARIABLE = "DOMADAPT_DATA"
"""The environment variable that every real-data recipe's dataset roots start with (``${DOMADAPT_DATA}/gta5``)."""


def dataset_root(root: str | os.PathLike) -> Path:
    """A dataset root as written in a recipe: ``~`` and environment variables expanded.

    ``$DOMADAPT_DATA`` (or ``${DOMADAPT_DATA}``) defaults to ``./data`` when unset, so shipped recipes
    (``root: ${DOMADAPT_DATA}/gta5``) work both with the variable and with a ``data/`` folder.
    """
    text = str(root)
    if DATA_VARIABLE in text and DATA_VARIABLE not in os.environ:
        text = text.replace("${DOMADAPT_DATA}", "data").replace("$DOMADAPT_DATA", "data")
    return Path(os.path.expandvars(os.path.expanduser(text)))


def root_hint(root: str | os.PathLike) -> str:
    """Where a dataset root written with ``$DOMADAPT_DATA`` was looked for, for "not found" messages: ``" (…)"``
    naming the variable and its value (or that it is unset), ``""`` for a root written without it."""
    if DATA_VARIABLE not in str(root):
        return ""
    value = os.environ.get(DATA_VARIABLE)
    where = f"{DATA_VARIABLE}={value}" if value else f"{DATA_VARIABLE} is unset, so ./data was used"
    return (f" ({where}; set {DATA_VARIABLE} to the folder that holds gta5/, cityscapes/, synthia/ and domainnet/; "
            "`domadapt data synth NAME DIR` writes a small sample tree)")


def read_yaml_mapping(path: str | os.PathLike, expected: str = "a YAML mapping",
                      error: type[Exception] = ValueError) -> dict[str, Any]:
    """A YAML file that must hold a mapping (a recipe, a run's ``config.yaml``).

    Raises:
        error: one line naming the file: unreadable, invalid YAML, or not a mapping (``expected`` says what was).
    """
    try:
        doc = yaml.safe_load(Path(path).read_text())
    except (OSError, yaml.YAMLError) as e:
        raise error(f"{path}: cannot read it ({' '.join(str(e).split())[:200]})") from None
    if not isinstance(doc, dict):
        raise error(f"{path}: expected {expected}, got {type(doc).__name__}")
    return doc

