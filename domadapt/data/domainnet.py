"""DomainNet adapter (cleaned release, DATASETS.md §4).

Split lists ``<domain>_<split>.txt`` hold lines ``<domain>/<class>/<file> <label>`` with paths relative
to the root. Labels follow the fixed 345-class order of :func:`~domadapt.data.catalog.domainnet_classes`
(not ``sorted()``). Painting splits have 344 classes each, which is accepted. A line whose label
disagrees with its class directory (a re-indexed third-party list) is an error, not a silent mis-map.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal, NamedTuple

import numpy as np

from domadapt.data.base import ClassificationDataset
from domadapt.data.catalog import DOMAINNET_DOMAINS, domainnet_classes
from domadapt.io import DataError, dataset_root, read_rgb, root_hint

LIST_SUBDIRS = ("", "image_list", "splits")  # searched in this order under the root (TLlib, Dassl)


class ListLine(NamedTuple):
    """One parsed split line: ``path`` relative to the root, ``label``, 1-based ``line`` number."""

    path: str
    label: int
    line: int


def find_split_list(root: str | Path, domain: str, split: str, list_dir: str | Path | None = None) -> Path:
    """Locate ``<domain>_<split>.txt`` in ``list_dir`` or, if ``None``, the root and its usual sub-folders.

    Raises:
        DataError: no such file; the message names every path tried.
    """
    name = f"{domain}_{split}.txt"
    dirs = [Path(list_dir)] if list_dir is not None else [Path(root) / sub for sub in LIST_SUBDIRS]
    tried = [d / name for d in dirs]
    for path in tried:
        if path.is_file():
            return path
    raise DataError(f"split list not found; tried {', '.join(str(p) for p in tried)}")


def parse_split_list(path: Path, num_classes: int) -> tuple[list[ListLine], list[str]]:
    """Parse a split list without raising on bad lines.

    Args:
        path: the list file.
        num_classes: labels must lie in ``[0, num_classes)``.

    Returns:
        ``(lines, problems)``: the good lines, and one ``"<file>:<line>: <reason>"`` per bad line.

    Raises:
        DataError: the file cannot be read as text.
    """
    classes = domainnet_classes()
    index = {name: i for i, name in enumerate(classes)}
    try:
        text = path.read_text()
    except (OSError, UnicodeDecodeError) as e:
        raise DataError(f"{path}: unreadable split list ({e})") from None
    good, problems = [], []
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        parts = line.rsplit(maxsplit=1)  # class names have no spaces, but be safe with the path
        try:
            rel, label = parts[0], int(parts[1])
        except (IndexError, ValueError):
            problems.append(f"{path}:{number}: malformed line {line[:80]!r}; "
                            "expected '<domain>/<class>/<file> <label>'")
            continue
        if not 0 <= label < num_classes:
            problems.append(f"{path}:{number}: label {label} outside 0..{num_classes - 1}")
            continue
        folder = Path(rel).parent.name
        if folder in index and index[folder] != label:
            problems.append(f"{path}:{number}: label {label} ({classes[label]}) but the file is in class folder "
                            f"{folder!r} = label {index[folder]} (re-indexed list?)")
            continue
        good.append(ListLine(rel, label, number))
    return good, problems


class DomainNet(ClassificationDataset):
    """One domain and split of DomainNet (345 classes).

    Args:
        root: directory holding ``<domain>/<class>/<file>`` (and usually the split lists).
        domain: ``clipart``, ``infograph``, ``painting``, ``quickdraw``, ``real`` or ``sketch``.
        split: ``train`` or ``test``.
        list_dir: folder of the split lists; default: ``root``, then ``root/image_list``, then
            ``root/splits``.
        **kwargs: ``transform``, ``with_labels``, ``skip_corrupt``, ``limit`` (see the base class).

    Note:
        The domain name is stored as :attr:`domain_name`; :attr:`domain` is the integer domain id
        that the base class puts in every sample.
    """

    def __init__(
        self,
        root: str,
        domain: Literal["clipart", "infograph", "painting", "quickdraw", "real", "sketch"],
        split: Literal["train", "test"] = "train",
        list_dir: str | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        if domain not in DOMAINNET_DOMAINS:
            raise ValueError(f"DomainNet.domain: expected one of {', '.join(DOMAINNET_DOMAINS)}, got {domain!r}")
        if split not in ("train", "test"):
            raise ValueError(f"DomainNet.split: expected 'train' or 'test', got {split!r}")
        self.root, self.domain_name, self.split, self.list_dir = dataset_root(root), domain, split, list_dir
        self.root_text = str(root)
        self.classes = domainnet_classes()

    def describe(self) -> str:
        return f"DomainNet({self.root}, {self.domain_name}, split={self.split})"

    def _index(self) -> list[ListLine]:
        if not self.root.is_dir():
            raise DataError(f"{self.root}: dataset root not found{root_hint(self.root_text)}; expected "
                            "<root>/<domain>/<class>/<file> and <root>/<domain>_<split>.txt")
        path = find_split_list(self.root, self.domain_name, self.split, self.list_dir)
        lines, problems = parse_split_list(path, len(self.classes))
        if problems:
            more = f" ({len(problems) - 1} more bad lines)" if len(problems) > 1 else ""
            raise DataError(problems[0] + more)
        if not lines:
            raise DataError(f"{path}: split list is empty")
        # Stat'ing every file of a 120k-line list is slow on network disks; a wrong root shows on the first.
        first = self.root / lines[0].path
        if not first.is_file():
            raise DataError(f"{path}:{lines[0].line}: image {first} not found; is root the folder holding "
                            f"{self.domain_name}/?")
        return lines

    def _load(self, entry: ListLine) -> tuple[np.ndarray, int]:
        return read_rgb(self.root / entry.path), entry.label


def domainnet_leave_one_out(root: str, target: str, list_dir: str | None = None, **kwargs: Any) -> dict:
    """The usual multi-source protocol: train on five domains, adapt to and test on the sixth.

    Args:
        root: DomainNet root.
        target: the held-out domain.
        list_dir: folder of the split lists (see :class:`DomainNet`).
        **kwargs: passed to every dataset (``transform``, ``limit``, ...); ``with_labels`` is ignored
            (sources and the test split are labelled, the target training split is not).

    Returns:
        ``{"sources": [DomainNet(d, "train") for the 5 other domains], "target": DomainNet(target,
        "train", with_labels=False), "target_test": DomainNet(target, "test")}``.
    """
    if target not in DOMAINNET_DOMAINS:
        raise ValueError(f"domainnet_leave_one_out: target must be one of {', '.join(DOMAINNET_DOMAINS)}, "
                         f"got {target!r}")
    kwargs.pop("with_labels", None)
    sources = [DomainNet(root, d, "train", list_dir, **kwargs) for d in DOMAINNET_DOMAINS if d != target]
    return {
        "sources": sources,
        "target": DomainNet(root, target, "train", list_dir, with_labels=False, **kwargs),  # type: ignore[arg-type]
        "target_test": DomainNet(root, target, "test", list_dir, **kwargs),  # type: ignore[arg-type]
    }
