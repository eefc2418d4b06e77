"""Translate a whole source dataset with a trained CycleGAN generator (BDL's ``S' = F(S)``, METHODS.md §1.4).

:func:`translate_dataset` writes every source image translated to the target style under
``out_root`` with the same file names, and the labels untouched (hard-linked or copied for GTA5 /
SYNTHIA, written as train-id PNGs for datasets without label files); the result is read by
:class:`~domadapt.data.translated.TranslatedDataset` (and, for the GTA5 / SYNTHIA layouts, by the
original adapters too). Layouts and label conventions: see :mod:`domadapt.data.translated`.

Resumable and safe to kill: every file is written atomically (temporary file + rename), and a
sample counts as done only when ``progress.jsonl`` holds its record *and* both files exist with the
recorded sizes. A rerun skips done samples and regenerates anything else (a deleted or never
finished output); leftover ``.*.tmp`` files from a killed run are never read. ``manifest.json``
(generator checkpoint hash, source description, file list) is written last, so its presence means
a complete dataset; ``samples.png`` shows the first four sources next to their translations. A
rerun into a folder written by another generator or with other settings is refused.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
from PIL import Image
from torch import nn
from torch.utils.data import DataLoader, Dataset
from tqdm.auto import tqdm

from domadapt.data.base import DomainDataset
from domadapt.data.paired import PairedSegmentationDataset
from domadapt.data.translated import FORMAT, MANIFEST, VERSION
from domadapt.evaluation.pictures import plot_translation_samples
from domadapt.io import atomic_path, read_rgb, write_json, write_png
from domadapt.models.translation import load_generator

Layout = Literal["auto", "gta5", "synthia", "generic"]
JOURNAL = "progress.jsonl"


def _plan(dataset: DomainDataset, layout: str) -> tuple[str, list[dict[str, Any]]]:
    """Resolve ``"auto"`` and list ``{"index", "image", "label", "label_src"}`` per sample (paths relative to out_root)."""
    from domadapt.data.gta5 import GTA5
    from domadapt.data.synthia import Synthia

    if layout == "auto":
        layout = "gta5" if isinstance(dataset, GTA5) else "synthia" if isinstance(dataset, Synthia) else "generic"
    if layout not in ("gta5", "synthia", "generic"):
        raise ValueError(f"translate_dataset.layout: expected 'auto', 'gta5', 'synthia' or 'generic', got {layout!r}")
    paired = isinstance(dataset, PairedSegmentationDataset)
    if layout != "generic" and not paired:
        raise ValueError(f"translate_dataset: layout {layout!r} copies label files, but {dataset.describe()} has "
                         "none; use layout='generic'")
    dirs = {"gta5": ("images", "labels"), "synthia": ("RGB", "GT/LABELS"), "generic": ("images", "labels")}[layout]
    plan = []
    width = max(5, len(str(len(dataset) - 1)))
    for i in range(len(dataset)):
        if paired:
            image_src, label_src = dataset.items[i]
            rel = Path(image_src).relative_to(dataset.image_dir)
            label_rel = Path(label_src).relative_to(dataset.label_dir)
        else:
            rel = label_rel = Path(f"{i:0{width}d}.png")
            label_src = None
        if layout == "generic":  # train-id labels written by us, PNG images
            rel, label_rel, label_src = rel.with_suffix(".png"), label_rel.with_suffix(".png"), None
        plan.append({"index": i, "image": f"{dirs[0]}/{rel.as_posix()}", "label": f"{dirs[1]}/{label_rel.as_posix()}",
                     "label_src": str(label_src) if label_src is not None else None})
    return layout, plan


class _Inputs(Dataset):
    """Decoded inputs of the pending samples: ``(position, (3, H, W) float in [-1, 1], train-id mask or None)``."""

    def __init__(self, dataset: DomainDataset, todo: list[dict], size: tuple[int, int] | None, need_mask: bool) -> None:
        self.dataset, self.todo, self.size, self.need_mask = dataset, todo, size, need_mask

    def __len__(self) -> int:
        return len(self.todo)

    def __getitem__(self, pos: int):
        index = self.todo[pos]["index"]
        if self.need_mask:
            image, mask = self.dataset.load_raw(index)  # (H, W, 3) uint8, (H, W) train ids
        else:  # label files are copied as they are: decode the image only
            image, mask = read_rgb(self.dataset.items[index][0]), None
        if self.size is not None and image.shape[:2] != tuple(self.size):
            h, w = self.size
            image = np.asarray(Image.fromarray(image).resize((w, h), Image.BICUBIC))
        x = torch.from_numpy(np.array(image, dtype=np.float32)).permute(2, 0, 1) / 127.5 - 1.0  # (3, H, W)
        return pos, x, (np.asarray(mask, dtype=np.uint8) if mask is not None else None)


def _link_or_copy(src: str, dst: Path, link: bool) -> None:
    with atomic_path(dst) as tmp:
        os.unlink(tmp)
        try:
            if not link:
                raise OSError
            os.link(src, tmp)
        except OSError:  # other file system, or copies requested
            shutil.copyfile(src, tmp)


def _read_journal(path: Path) -> tuple[dict | None, dict[str, dict]]:
    """Header and records (by image path) of a progress journal; a torn last line is ignored."""
    if not path.is_file():
        return None, {}
    header, records = None, {}
    for line in path.read_text().splitlines():
        try:
            rec = json.loads(line)
        except json.JSONDecodeError:
            continue
        if "header" in rec:
            header = rec["header"]
        elif "image" in rec:
            records[rec["image"]] = rec
    return header, records


def _is_done(root: Path, rec: dict | None) -> bool:
    if rec is None:
        return False
    for key in ("image", "label"):
        p = root / rec[key]
        if not p.is_file() or p.stat().st_size != rec[f"{key}_bytes"]:
            return False
    return True


def translate_dataset(
    generator: str | os.PathLike | nn.Module,
    dataset: DomainDataset,
    out_root: str | os.PathLike,
    layout: Layout = "auto",
    size: tuple[int, int] | None = None,
    batch_size: int = 4,
    device: str | torch.device = "cpu",
    direction: Literal["a2b", "b2a"] = "a2b",
    link_labels: bool = True,
    num_workers: int = 0,
    show_progress: bool = True,
) -> Path:
    """Write ``dataset`` translated by ``generator`` under ``out_root``; returns the manifest path.

    Args:
        generator: see :func:`load_generator`.
        dataset: a labelled segmentation dataset (``GTA5``, ``Synthia``, ``ToyCity``, ...).
        out_root: output folder (created).
        layout: ``"gta5"`` / ``"synthia"`` (label files hard-linked or copied byte for byte) or
            ``"generic"`` (train-id label PNGs); ``"auto"`` picks from the dataset's type.
        size: ``(H, W)`` the images are resized to (bicubic) before translation — the source's
            training resolution, e.g. ``(720, 1280)`` for GTA5 in BDL; ``None`` keeps each image's size.
            Labels keep their original size (readers resize them nearest-neighbour to the image).
        batch_size: images per generator call (images of different sizes go one at a time).
        device: where the generator runs.
        direction: ``"a2b"`` (source -> target, ``G_A``) or ``"b2a"``.
        link_labels: hard-link label files when possible (else copy).
        num_workers: DataLoader processes decoding the inputs.
        show_progress: tqdm progress bar.

    Returns:
        ``out_root / "manifest.json"``.

    Raises:
        ValueError: the dataset is unlabelled or not segmentation, a layout that does not fit it, or
            ``out_root`` holds a translation by another generator / with other settings.
    """
    if dataset.task != "segmentation" or not dataset.with_labels:
        raise ValueError(f"translate_dataset: expected a labelled segmentation dataset, got {dataset.describe()} "
                         f"(task {dataset.task!r}, with_labels={dataset.with_labels})")
    root = Path(out_root)
    module, identity = load_generator(generator, direction)
    module = module.to(device).eval()
    dataset.setup()
    layout, plan = _plan(dataset, layout)
    header = {"generator_sha256": identity["sha256"], "direction": direction, "layout": layout,
              "size": list(size) if size is not None else None, "num_images": len(plan)}
    journal = root / JOURNAL
    old_header, records = _read_journal(journal)
    if old_header is not None and old_header != header:
        raise ValueError(f"{root}: holds a translation with other settings ({_diff(old_header, header)}); use another "
                         "out_root or delete this one")
    todo = [e for e in plan if not _is_done(root, records.get(e["image"]))]
    root.mkdir(parents=True, exist_ok=True)
    if todo:
        (root / MANIFEST).unlink(missing_ok=True)  # the dataset is incomplete until the manifest is rewritten
        if old_header is None:
            with open(journal, "a") as f:
                f.write(json.dumps({"header": header}) + "\n")
        _translate(module, dataset, root, todo, layout, size, batch_size, device, link_labels, num_workers,
                   tqdm(total=len(plan), initial=len(plan) - len(todo), disable=not show_progress, unit="img",
                        desc=f"translate -> {root.name}"))
    manifest = {"format": FORMAT, "version": VERSION, "layout": layout,
                "label_format": {"gta5": "gta5", "synthia": "synthia", "generic": "trainids"}[layout],
                "id_to_trainid": ({str(k): v for k, v in dataset.id_to_trainid.items()} if layout != "generic" else None),
                "classes": list(dataset.classes), "num_images": len(plan), "size": header["size"],
                "generator": identity,
                "source": {"description": dataset.describe(), "type": f"{type(dataset).__module__}.{type(dataset).__name__}",
                           "root": str(getattr(dataset, "root", "")) or None},
                "files": [[e["image"], e["label"]] for e in plan]}
    shown = plan[:4]  # samples.png: the first sources next to their translations, for a look
    plot_translation_samples([dataset.load_raw(e["index"])[0] for e in shown],
                             [read_rgb(root / e["image"]) for e in shown], root / "samples.png")
    write_json(root / MANIFEST, manifest)
    return root / MANIFEST


def _translate(module: nn.Module, dataset: DomainDataset, root: Path, todo: list[dict], layout: str,
               size: tuple[int, int] | None, batch_size: int, device: str | torch.device, link_labels: bool,
               num_workers: int, bar: tqdm) -> None:
    """Translate and write every ``todo`` sample, appending a journal record after each."""
    inputs = _Inputs(dataset, todo, size, need_mask=layout == "generic")
    loader = DataLoader(inputs, batch_size=batch_size, num_workers=num_workers, collate_fn=list)
    path = root / JOURNAL
    if path.stat().st_size and not path.read_bytes().endswith(b"\n"):
        with open(path, "a") as f:  # a killed run left a torn last record: start ours on a new line
            f.write("\n")
    with open(path, "a") as journal, bar, torch.inference_mode():
        for items in loader:
            groups: dict[tuple, list] = {}
            for item in items:  # same-sized images share one generator call
                groups.setdefault(tuple(item[1].shape), []).append(item)
            for group in groups.values():
                out = module(torch.stack([x for _, x, _ in group]).to(device))  # (B, 3, H, W) in [-1, 1]
                out = ((out.float().clamp(-1, 1) + 1) * 127.5).round().byte().permute(0, 2, 3, 1).cpu().numpy()
                for (pos, _, mask), image in zip(group, out):
                    entry = todo[pos]
                    write_png(root / entry["image"], image)
                    if entry["label_src"] is not None:
                        _link_or_copy(entry["label_src"], root / entry["label"], link_labels)
                    else:
                        write_png(root / entry["label"], mask)
                    rec = {"image": entry["image"], "label": entry["label"],
                           "image_bytes": (root / entry["image"]).stat().st_size,
                           "label_bytes": (root / entry["label"]).stat().st_size}
                    journal.write(json.dumps(rec) + "\n")
                    journal.flush()
                    bar.update(1)


def _diff(old: dict, new: dict) -> str:
    keys = [k for k in new if old.get(k) != new[k]]
    return ", ".join(f"{k}: {old.get(k)!r} there, {new[k]!r} now" for k in keys[:2])
