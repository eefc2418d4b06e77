#!/usr/bin/env python3
"""Write ``*_gtFine_labelTrainIds.png`` next to every ``*_gtFine_labelIds.png`` of a Cityscapes root.

Only needed for ``Cityscapes(label_type="labelTrainIds")`` or for other tools that expect these
files (mmsegmentation-style loaders); domadapt's default ``labelIds`` reading maps ids on the fly.

The train ids are ``CS_ID_TO_TRAINID[labelIds]`` (unknown ids -> 255), the same lookup table the
adapter uses. cityscapesScripts instead rasterises the polygon files; on real data both agree.

Each file is written atomically (temporary file + rename), so an interrupted run never leaves a
half-written PNG; re-running skips files that already exist (``--overwrite`` redoes them).

Usage::

    python datasets/cityscapes/prepare_trainids.py /data/cityscapes [--splits train val] [--workers 4]
"""

from __future__ import annotations

import argparse
import sys
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

from tqdm import tqdm

from domadapt.data.catalog import CS_ID_TO_TRAINID, lut_from
from domadapt.io import DataError, read_index_png, write_png

SUFFIX_IN, SUFFIX_OUT = "_gtFine_labelIds.png", "_gtFine_labelTrainIds.png"
LUT = lut_from(CS_ID_TO_TRAINID)  # (256,) uint8


def output_path(label_ids: Path) -> Path:
    """``..._gtFine_labelIds.png`` -> ``..._gtFine_labelTrainIds.png`` in the same folder."""
    return label_ids.with_name(label_ids.name[: -len(SUFFIX_IN)] + SUFFIX_OUT)


def convert(label_ids: Path) -> Path:
    """Convert one file (atomic write) and return the output path."""
    out = output_path(label_ids)
    write_png(out, LUT[read_index_png(label_ids)])
    return out


def find_inputs(root: Path, splits: list[str]) -> list[Path]:
    """Every ``gtFine/<split>/<city>/*_gtFine_labelIds.png``, sorted."""
    gtfine = root / "gtFine"
    if not gtfine.is_dir():
        raise DataError(f"{gtfine}: directory not found; expected <root>/gtFine/<split>/<city>/*{SUFFIX_IN}")
    return sorted(p for s in splits for p in (gtfine / s).glob(f"*/*{SUFFIX_IN}"))


def main(argv: list[str] | None = None) -> int:
    """Command line entry point; returns the exit code."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("root", type=Path, help="Cityscapes root (holds gtFine/)")
    parser.add_argument("--splits", nargs="+", default=["train", "val", "test"])
    parser.add_argument("--overwrite", action="store_true", help="rewrite files that already exist")
    parser.add_argument("--workers", type=int, default=1, help="processes (default 1)")
    args = parser.parse_args(argv)
    try:
        inputs = find_inputs(args.root, args.splits)
    except DataError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    if not inputs:
        print(f"error: {args.root}/gtFine/{{{','.join(args.splits)}}}: no *{SUFFIX_IN} files found", file=sys.stderr)
        return 1
    todo = [p for p in inputs if args.overwrite or not output_path(p).is_file()]
    print(f"{len(inputs)} labelIds files, {len(inputs) - len(todo)} already converted, {len(todo)} to write")
    if args.workers > 1:
        with ProcessPoolExecutor(args.workers) as pool:
            for _ in tqdm(pool.map(convert, todo, chunksize=16), total=len(todo), unit="file"):
                pass
    else:
        for path in tqdm(todo, unit="file"):
            convert(path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
