"""On-disk format of a pseudo-label set, shared by the generator and the reader.

Layout of ``out_dir``::

    labels/<name>.png   segmentation: uint8 train ids, 255 = ignore (one per target image)
    labels.csv          classification: ``index,label,confidence`` (label 255 = not kept)
    manifest.json       written LAST: a folder without it is unfinished and is never read

``<name>`` is the image file's stem when the dataset indexes files with unique stems (Cityscapes:
``aachen_000000_000019_leftImg8bit``), else the sample index ``000123`` (embedded datasets). Every
file is written atomically (temporary file + rename, :mod:`domadapt.io`), and an existing manifest
is deleted before anything else is rewritten, so a killed run never looks finished.

The manifest identifies the image list by count and ``sha256`` of the ordered names (hashed with the
dataset's description when names are indices), so that labels made for another dataset, another
split or another ``limit`` are refused by :class:`~domadapt.pseudo.dataset.PseudoLabelled`.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import os
import shutil
from pathlib import Path
from typing import Any

import numpy as np

from domadapt.io import DataError, atomic_path, write_json

FORMAT = "domadapt.pseudo_labels/v1"
MANIFEST = "manifest.json"
LABEL_DIR = "labels"
TABLE = "labels.csv"


# ---------------------------------------------------------------------------------------- names
def _entry_path(entry: Any) -> str | None:
    """The image path of a dataset entry (a path, or a tuple whose first field is one), else ``None``."""
    if isinstance(entry, str | os.PathLike):
        return os.fspath(entry)
    if isinstance(entry, tuple) and entry and isinstance(entry[0], str | os.PathLike):
        return os.fspath(entry[0])
    return None


def sample_names(dataset) -> tuple[list[str], str]:
    """Names of the pseudo-label files of ``dataset``, in dataset order.

    Returns:
        ``(names, naming)``: image stems and ``"stem"`` when every entry is a file with a unique
        stem, else zero-padded indices and ``"index"``.
    """
    items = dataset.setup().items
    paths = [_entry_path(e) for e in items]
    if all(p is not None for p in paths):
        stems = [Path(p).stem for p in paths]  # type: ignore[arg-type]
        if len(set(stems)) == len(stems):
            return stems, "stem"
    width = max(6, len(str(len(items) - 1)))
    return [f"{i:0{width}d}" for i in range(len(items))], "index"


def image_list(dataset) -> dict[str, Any]:
    """The manifest's ``images`` record: description, count, naming and ``sha256`` of the ordered list."""
    names, naming = sample_names(dataset)
    h = hashlib.sha256()
    if naming == "index":  # indices alone do not tell datasets apart
        h.update(dataset.describe().encode())
    for n in names:
        h.update(n.encode() + b"\n")
    return {"dataset": dataset.describe(), "count": len(names), "naming": naming, "sha256": h.hexdigest()}


# ---------------------------------------------------------------------------------------- writing
def start(out_dir: str | os.PathLike) -> Path:
    """Prepare ``out_dir`` for a new set: delete any old manifest first (the set is unfinished from now on),
    then the old label files, so that no file of an earlier set survives into the new one."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    (out / MANIFEST).unlink(missing_ok=True)
    shutil.rmtree(out / LABEL_DIR, ignore_errors=True)
    (out / TABLE).unlink(missing_ok=True)
    (out / LABEL_DIR).mkdir()
    return out


def label_path(out_dir: str | os.PathLike, name: str) -> Path:
    return Path(out_dir) / LABEL_DIR / f"{name}.png"


def write_table(out_dir: str | os.PathLike, labels: np.ndarray, confidence: np.ndarray) -> Path:
    """Write ``labels.csv`` (``index,label,confidence``) atomically; ``labels`` 255 = not kept."""
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(["index", "label", "confidence"])
    for i, (y, p) in enumerate(zip(labels.tolist(), confidence.tolist())):
        w.writerow([i, y, f"{p:.6f}"])
    path = Path(out_dir) / TABLE
    with atomic_path(path) as tmp:
        Path(tmp).write_text(buf.getvalue())
    return path


def finish(out_dir: str | os.PathLike, manifest: dict[str, Any]) -> dict[str, Any]:
    """Write the manifest (with its ``format`` tag), last: from now on the set is complete. Returns it."""
    doc = {"format": FORMAT, **manifest}
    write_json(Path(out_dir) / MANIFEST, doc)
    return doc


# ---------------------------------------------------------------------------------------- reading
def read_manifest(pseudo_dir: str | os.PathLike) -> dict[str, Any]:
    """The manifest of a finished pseudo-label set.

    Raises:
        DataError: no manifest (unfinished or not a pseudo-label folder), unreadable, or another format.
    """
    path = Path(pseudo_dir) / MANIFEST
    if not Path(pseudo_dir).is_dir():
        raise DataError(f"{pseudo_dir}: pseudo-label folder not found")
    if not path.is_file():
        raise DataError(f"{path}: missing; the pseudo-label set in {pseudo_dir} is unfinished (generation was "
                        "interrupted) or not a pseudo-label folder — generate it again")
    try:
        manifest = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise DataError(f"{path}: unreadable manifest ({e})") from None
    found = manifest.get("format") if isinstance(manifest, dict) else None
    if found != FORMAT:
        raise DataError(f"{path}: field `format` is {found!r}; expected {FORMAT!r}")
    return manifest


def read_table(pseudo_dir: str | os.PathLike, count: int) -> np.ndarray:
    """Labels ``(count,)`` int64 from ``labels.csv``, checked to list indices ``0..count-1`` in order."""
    path = Path(pseudo_dir) / TABLE
    if not path.is_file():
        raise DataError(f"{path}: missing; expected the classification pseudo-label table")
    with open(path, newline="") as f:
        rows = list(csv.reader(f))
    if not rows or rows[0] != ["index", "label", "confidence"]:
        raise DataError(f"{path}: expected the header `index,label,confidence`")
    rows = rows[1:]
    if len(rows) != count:
        raise DataError(f"{path}: {len(rows)} rows but the manifest's images.count is {count}")
    try:
        labels = np.array([int(r[1]) for i, r in enumerate(rows) if int(r[0]) == i or _bad_index(path, i, r)])
    except (ValueError, IndexError):
        raise DataError(f"{path}: malformed row; expected integer index and label") from None
    return labels.astype(np.int64)


def _bad_index(path: Path, i: int, row: list[str]) -> bool:
    raise DataError(f"{path}: row {i + 2} has index {row[0]}, expected {i}")
