"""``domadapt data check NAME ROOT``: is a dataset on disk what the adapter expects?

Prints the number of images and labels, unpaired files, image/label size mismatches, unreadable
files and the histogram of raw label values with their class names and train ids (segmentation), or
the split-list statistics (DomainNet). It uses the adapters' own pairing, list parsing and label
decoding, so what it reports is what training will see. ``--max-images N`` limits the decoding; file
pairing, header sizes and list parsing always cover every file.

Exit status: 1 with a final one-line ``error: ...`` on stderr when training on the data would fail or
mis-map labels: the layout is unreadable (missing root, no images, no readable split list; nothing is
printed on stdout), or the report lists images without a label, unreadable files, image/label size
mismatches where the adapter does not resize (Cityscapes, SYNTHIA), or DomainNet split-list lines that
are malformed, out of range (label >= 345), inconsistent with their class folder or name a missing file
(the line names the list files). 0 otherwise; harmless findings stay warnings: labels without an image
(never loaded), GTA5 size mismatches (resized when loading), raw values outside the id table (mapped
to 255), split lists absent for some domains.
"""

from __future__ import annotations

import argparse
import sys
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import numpy as np
from PIL import Image
from tqdm import tqdm

from domadapt.data.catalog import DOMAINNET_DOMAINS, IGNORE_INDEX, domainnet_classes
from domadapt.data.cityscapes import Cityscapes
from domadapt.data.domainnet import ListLine, find_split_list, parse_split_list
from domadapt.data.gta5 import GTA5
from domadapt.data.paired import PairedSegmentationDataset
from domadapt.data.synthia import Synthia
from domadapt.io import CorruptSampleError, DataError, image_size, read_rgb

DatasetName = Literal["cityscapes", "gta5", "synthia", "domainnet"]
SHOW = 10  # examples listed per problem


@dataclass
class CheckReport:
    """What ``data check`` found. Segmentation fields and DomainNet fields are filled as relevant."""

    name: str
    root: str
    num_images: int = 0
    num_labels: int = 0
    per_group: dict[str, int] = field(default_factory=dict)  # images (or list lines) per split / list
    images_without_label: list[str] = field(default_factory=list)
    labels_without_image: list[str] = field(default_factory=list)
    size_mismatches: list[str] = field(default_factory=list)
    unreadable: list[str] = field(default_factory=list)
    num_checked: int = 0  # images (with their labels) decoded; the rest only had their headers read
    value_pixels: dict[int, int] = field(default_factory=dict)  # raw label id -> pixel count
    raw_names: tuple[str, ...] = ()
    id_to_trainid: dict[int, int] = field(default_factory=dict)
    trainid_names: tuple[str, ...] = ()
    num_lines: int = 0
    classes_per_group: dict[str, int] = field(default_factory=dict)
    classes_present: int = 0
    bad_lines: list[str] = field(default_factory=list)
    missing_files: list[str] = field(default_factory=list)
    failing_lists: list[str] = field(default_factory=list)  # DomainNet split lists behind an error
    notes: list[str] = field(default_factory=list)

    @property
    def errors(self) -> list[str]:
        """Findings that make training fail or mis-map labels (exit status 1), e.g. ``"2 unreadable files"``."""
        found = [(self.images_without_label, "images without label"), (self.unreadable, "unreadable files"),
                 (self.bad_lines, "malformed or inconsistent list lines"), (self.missing_files, "listed files missing")]
        if self.name != "gta5":  # the GTA5 adapter resizes such labels; Cityscapes and SYNTHIA refuse them
            found.append((self.size_mismatches, "image/label size mismatches"))
        return [f"{len(items)} {what}" for items, what in found if items]

    def error_line(self) -> str | None:
        """The one-line reason for a non-zero exit (without ``error: ``), ``None`` when there is none."""
        if not self.errors:
            return None
        where = ", ".join(self.failing_lists) if self.failing_lists else self.root
        return f"{where}: {', '.join(self.errors)}; training on this data would fail (see the report above)"

    @property
    def outside_table(self) -> dict[int, int]:
        """Raw values with no entry in the id table (mapped to 255 when loading) -> pixel count."""
        return {v: n for v, n in self.value_pixels.items() if v >= len(self.raw_names)}

    def format(self) -> str:
        """Human-readable report."""
        out = [f"{self.name} at {self.root}"]
        if self.name == "domainnet":
            out.append(f"split lists: {len(self.per_group)}, lines: {self.num_lines}, "
                       f"classes present: {self.classes_present} of {len(domainnet_classes())}")
            out += [f"  {g}: {n} lines, {self.classes_per_group.get(g, 0)} classes" for g, n in self.per_group.items()]
            out += _listing("malformed or inconsistent lines", self.bad_lines)
            out += _listing("listed files missing", self.missing_files)
            out.append(f"files decoded: {self.num_checked} of {self.num_images} found")
        else:
            out.append(f"images: {self.num_images}, labels: {self.num_labels}")
            out += [f"  {g}: {n} images" for g, n in self.per_group.items() if len(self.per_group) > 1]
            out += _listing("images without label", self.images_without_label)
            out += _listing("labels without image", self.labels_without_image)
            out += _listing("image/label size mismatches", self.size_mismatches)
            out.append(f"files decoded: {self.num_checked} of {self.num_images} images and their labels")
        out += _listing("unreadable files", self.unreadable)
        if self.value_pixels:
            out.append("label values (raw id -> name -> train id: pixels):")
            for value, pixels in sorted(self.value_pixels.items()):
                name = self.raw_names[value] if value < len(self.raw_names) else "(not in table)"
                train = self.id_to_trainid.get(value, IGNORE_INDEX)
                target = "ignore" if train == IGNORE_INDEX else f"{train} {self.trainid_names[train]}"
                out.append(f"  {value:5d} {name:22s} -> {target:20s} {pixels}")
            outside = self.outside_table
            out.append(f"values outside the table: {len(outside)} values, {sum(outside.values())} pixels"
                       + (" (mapped to ignore)" if outside else ""))
        out += [f"note: {n}" for n in self.notes]
        return "\n".join(out)


def _listing(title: str, items: list[str]) -> list[str]:
    lines = [f"{title}: {len(items)}"]
    lines += [f"  {item}" for item in items[:SHOW]]
    if len(items) > SHOW:
        lines.append(f"  ... and {len(items) - SHOW} more")
    return lines


def _probe_image(path: Path) -> tuple[int, int]:
    """``(W, H)`` of an image, verifying the whole file (PNG checksums / full JPEG decode)."""
    try:
        with Image.open(path) as im:
            size = im.size
            if im.format == "PNG":
                im.verify()  # walks every chunk and its CRC: finds truncation without decoding pixels
            else:
                im.load()
        return size
    except FileNotFoundError:
        raise CorruptSampleError(f"{path}: file not found") from None
    except Exception as e:  # PIL raises many types for broken files
        raise CorruptSampleError(f"{path}: corrupt or truncated image ({e})") from None


def _segmentation_datasets(name: str, root: str, split: str | None) -> list[tuple[str, PairedSegmentationDataset]]:
    if name == "cityscapes":
        present = [s for s in ("train", "val", "test") if (Path(root) / "leftImg8bit" / s).is_dir()]
        splits = [split] if split else present
        if not splits:  # let the adapter word the error
            splits = ["train"]
        return [(s, Cityscapes(root, split=s)) for s in splits]  # type: ignore[arg-type]
    if split is not None:
        raise ValueError(f"{name} has no splits (got --split {split}); all files are source training data")
    return [("all", GTA5(root) if name == "gta5" else Synthia(root))]


def _check_segmentation(report: CheckReport, name: str, root: str, split: str | None, max_images: int | None) -> None:
    errors: list[DataError] = []
    todo: list[tuple[PairedSegmentationDataset, Path, Path | None]] = []
    for group, ds in _segmentation_datasets(name, root, split):
        try:
            found = ds.scan()
        except DataError as e:
            errors.append(e)
            continue
        report.per_group[group] = len(found.pairs) + len(found.missing_labels)
        report.num_images += report.per_group[group]
        report.num_labels += len(found.pairs) + len(found.orphan_labels)
        report.images_without_label += [f"{img} (expected {lbl})" for img, lbl in found.missing_labels]
        report.labels_without_image += [str(p) for p in found.orphan_labels]
        todo += [(ds, img, lbl) for img, lbl in found.pairs] + [(ds, img, None) for img, _ in found.missing_labels]
        report.raw_names, report.id_to_trainid, report.trainid_names = ds.raw_names, ds.id_to_trainid, ds.classes
    if not report.num_images:
        raise errors[0] if errors else DataError(f"{root}: no images found")
    report.notes += [f"skipped: {e}" for e in errors]
    if name == "gta5":
        report.notes.append("GTA5 labels of another size are resized nearest-neighbour to the image when loading")
    counts = np.zeros(0, np.int64)  # (max raw id + 1,) pixels per raw label value
    limit = len(todo) if max_images is None else max_images
    for i, (ds, image, label) in enumerate(tqdm(todo, desc=f"checking {name}", unit="file", disable=None)):
        decode = i < limit  # beyond the limit only the PNG headers are read (sizes)
        report.num_checked += decode
        try:
            image_wh = _probe_image(image) if decode else image_size(image)
            if label is None:
                continue
            if decode:
                raw = ds.read_raw_label(label)  # (H, W) raw ids
                label_wh = (raw.shape[1], raw.shape[0])
                counts = _add_counts(counts, np.bincount(raw.ravel()))  # O(pixels), unlike np.unique
            else:
                label_wh = image_size(label)
        except DataError as e:  # CorruptSampleError included
            report.unreadable.append(str(e))
            continue
        if label_wh != image_wh:
            (w, h), (lw, lh) = image_wh, label_wh
            report.size_mismatches.append(f"{image.name}: image {w}x{h}, label {lw}x{lh}")
    report.value_pixels = {int(v): int(counts[v]) for v in np.flatnonzero(counts)}


def _add_counts(total: np.ndarray, hist: np.ndarray) -> np.ndarray:
    """Sum two histograms of different lengths."""
    if hist.size > total.size:
        hist[: total.size] += total
        return hist
    total[: hist.size] += hist
    return total


def _check_domainnet(report: CheckReport, root: str, split: str | None, domain: str | None,
                     max_images: int | None, list_dir: str | None) -> None:
    if not Path(root).is_dir():
        raise DataError(f"{root}: dataset root not found; expected <root>/<domain>/<class>/<file> and "
                        "<root>/<domain>_<split>.txt")
    if domain is not None and domain not in DOMAINNET_DOMAINS:
        raise ValueError(f"--domain: expected one of {', '.join(DOMAINNET_DOMAINS)}, got {domain!r}")
    if split is not None and split not in ("train", "test"):
        raise ValueError(f"--split: expected 'train' or 'test' for domainnet, got {split!r}")
    num_classes = len(domainnet_classes())
    labels: Counter[int] = Counter()
    todo: list[tuple[Path, ListLine]] = []
    missing_lists = []
    for d in [domain] if domain else DOMAINNET_DOMAINS:
        for s in [split] if split else ["train", "test"]:
            try:
                path = find_split_list(root, d, s, list_dir)
            except DataError as e:
                missing_lists.append(str(e))
                continue
            lines, problems = parse_split_list(path, num_classes)
            group = f"{d}_{s}"
            report.per_group[group] = len(lines) + len(problems)
            report.classes_per_group[group] = len({line.label for line in lines})
            report.num_lines += report.per_group[group]
            report.bad_lines += problems
            labels.update(line.label for line in lines)
            todo += [(path, line) for line in lines]
            if problems:
                report.failing_lists.append(str(path))
    if not report.per_group:
        raise DataError(f"{root}: no DomainNet split list found ({missing_lists[0]})")
    report.notes += [f"{e}" for e in missing_lists]
    report.classes_present = len(labels)
    report.num_labels = report.num_lines - len(report.bad_lines)
    limit = len(todo) if max_images is None else max_images
    for i, (list_path, line) in enumerate(tqdm(todo, desc="checking domainnet", unit="file", disable=None)):
        path = Path(root) / line.path
        if not path.is_file():  # every listed file is looked for; only the first `limit` are decoded
            report.missing_files.append(f"{path} (listed at line {line.line} of {list_path.name})")
            _add_once(report.failing_lists, str(list_path))
            continue
        report.num_images += 1
        if i < limit:
            report.num_checked += 1
            try:
                read_rgb(path)
            except CorruptSampleError as e:
                report.unreadable.append(f"{e} (listed at line {line.line} of {list_path.name})")
                _add_once(report.failing_lists, str(list_path))


def _add_once(items: list[str], item: str) -> None:
    if item not in items:
        items.append(item)


def check_dataset(
    name: DatasetName,
    root: str,
    split: str | None = None,
    domain: str | None = None,
    max_images: int | None = None,
    list_dir: str | None = None,
) -> CheckReport:
    """Check a dataset on disk.

    Args:
        name: ``cityscapes``, ``gta5``, ``synthia`` or ``domainnet``.
        root: dataset root.
        split: Cityscapes ``train``/``val``/``test`` or DomainNet ``train``/``test``; default: all present.
        domain: DomainNet domain; default: every domain with a split list.
        max_images: decode at most this many files (pairing and list parsing always cover everything).
        list_dir: DomainNet folder of split lists (default: root, root/image_list, root/splits).

    Returns:
        The report (print it with :meth:`CheckReport.format`).

    Raises:
        DataError: the layout is unreadable (missing root, no images, no split list).
        ValueError: an unknown name, split or domain.
    """
    report = CheckReport(name=name, root=str(root))
    if name == "domainnet":
        _check_domainnet(report, root, split, domain, max_images, list_dir)
    elif name in ("cityscapes", "gta5", "synthia"):
        if domain is not None or list_dir is not None:
            raise ValueError(f"--domain and --list-dir apply to domainnet only, not {name}")
        _check_segmentation(report, name, root, split, max_images)
    else:
        raise ValueError(f"unknown dataset {name!r}; expected cityscapes, gta5, synthia or domainnet")
    return report


def main(argv: list[str] | None = None) -> int:
    """``domadapt data check NAME ROOT [--split S] [--domain D] [--max-images N] [--list-dir DIR]``.

    Returns:
        The exit code: 0 usable data (warnings allowed), 1 unreadable layout or problems that would make
        training fail or mis-map labels (:attr:`CheckReport.errors`; one ``error:`` line on stderr).
    """
    parser = argparse.ArgumentParser(prog="domadapt data check", description=__doc__.splitlines()[0])
    parser.add_argument("name", choices=["cityscapes", "gta5", "synthia", "domainnet"])
    parser.add_argument("root", help="dataset root directory")
    parser.add_argument("--split", default=None, help="cityscapes train/val/test, domainnet train/test")
    parser.add_argument("--domain", default=None, help="domainnet domain (default: all with a split list)")
    parser.add_argument("--max-images", type=int, default=None, help="decode at most N files")
    parser.add_argument("--list-dir", default=None, help="domainnet folder of <domain>_<split>.txt lists")
    args = parser.parse_args(argv)
    try:
        report = check_dataset(args.name, args.root, args.split, args.domain, args.max_images, args.list_dir)
    except ValueError as e:  # DataError included
        print(f"error: {' '.join(str(e).split())}", file=sys.stderr)
        return 1
    print(report.format())
    reason = report.error_line()
    if reason is not None:
        print(f"error: {reason}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
