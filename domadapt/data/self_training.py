"""`SelfTrainingDataModule`: the DataModule of CDSSL-style self-training rounds (our interpretation, METHODS.md §4.3).

It is a :class:`~domadapt.data.datamodule.DomainAdaptationDataModule` with two data-side components:

* **fine-grained domain transfer** (``style_transfer``): every source dataset is wrapped in
  :class:`~domadapt.data.style_transfer.StyleTransferred`, paired per sample with images of the target
  training split; by default the originals are kept too (``keep_original_source``), so each epoch
  trains on source *and* transferred source;
* **imbalanced sampling** (``target_ratio``): once the target carries pseudo labels (``pseudo_labels`` wraps
  it in :class:`~domadapt.pseudo.PseudoLabelled`), training batches come from one loader over
  ``ConcatDataset([sources, target])`` driven by a
  :class:`~domadapt.data.samplers.MixedDomainSampler` — a share ``ρ`` of target samples, drawn
  class-balanced by pseudo label (segmentation: by the rarest class in the image), ``ρ`` growing
  with the self-training ``round``. Each batch of ``batch_size + target_batch_size`` samples is split
  back into ``{"source": Sample, "target": Sample}`` by domain id; a part with no sample in the batch
  is left out of the dict (methods such as :class:`~domadapt.methods.cdssl.CDSSL` allow that).

Before any pseudo label exists (round 0) the mixed loader draws source samples only (ρ = 0); with
``target_ratio=None`` the parent's two loaders are used instead (every batch has source and target).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from torch.utils.data import default_collate

from domadapt.data.base import DomainDataset
from domadapt.data.datamodule import DomainAdaptationDataModule, resume_loaders
from domadapt.data.resumable import ResumableLoader, SeededConcatDataset
from domadapt.data.samplers import MixedDomainSampler, rarest_class
from domadapt.data.style_transfer import StyleTransfer, StyleTransferred
from domadapt.io import DataError, read_index_png
from domadapt.structures import IGNORE_INDEX


def sampling_labels(dataset: DomainDataset, num_classes: int, min_pixels: int = 1) -> np.ndarray:
    """``(N,)`` sampling class of each pseudo-labelled target sample (255 = nothing kept).

    Classification: the pseudo label. Segmentation: :func:`~domadapt.data.samplers.rarest_class` of
    the per-image class pixel counts of the pseudo-label masks (label files are read directly, no image
    is decoded).
    """
    if dataset.task != "segmentation":
        labels = getattr(dataset, "labels", None)
        if labels is None or len(labels) != len(dataset):
            labels = [int(dataset.load_raw(i)[1]) for i in range(len(dataset))]
        return np.asarray(labels, dtype=np.int64)
    counts = np.zeros((len(dataset), num_classes), np.int64)  # (N, K) kept pixels per class and image
    for i in range(len(dataset)):
        if callable(getattr(dataset, "label_file", None)):  # PseudoLabelled: read only the PNG
            mask = read_index_png(dataset.label_file(i))
        else:
            mask = np.asarray(dataset.load_raw(i)[1])
        values = mask[mask != IGNORE_INDEX].ravel().astype(np.int64)
        counts[i] = np.bincount(values[values < num_classes], minlength=num_classes)[:num_classes]
    return rarest_class(counts, min_pixels)


class SplitDomains:
    """Collate a mixed batch into ``{"source": Sample, "target": Sample}`` by each sample's ``domain``.

    Args:
        target_domain: the target's domain id (the number of sources).
    """

    def __init__(self, target_domain: int) -> None:
        self.target_domain = int(target_domain)

    def __call__(self, items: list[dict]) -> dict[str, Any]:
        parts = {"source": [it for it in items if int(it["domain"]) != self.target_domain],
                 "target": [it for it in items if int(it["domain"]) == self.target_domain]}
        return {k: default_collate(v) for k, v in parts.items() if v}


class SelfTrainingDataModule(DomainAdaptationDataModule):
    """Source(s) + target with per-sample style transfer and ratio-ρ class-balanced target sampling.

    Args:
        *args, **kwargs: the arguments of :class:`~domadapt.data.datamodule.DomainAdaptationDataModule`
            (``sources``, ``target``, ``batch_size``, ``seed``, ...). With the mixed loader a batch holds
            ``batch_size + target_batch_size`` samples of both domains together.
        style_transfer: a :class:`~domadapt.data.style_transfer.StyleTransfer` applied to every source
            (references: the target training split); ``None`` = off.
        style_transfer_p: probability that a (copied) source sample is restyled.
        keep_original_source: train on the originals *and* the restyled copies (sources double in size).
        style_seed: seed of the source -> reference pairing (source ``i`` uses ``style_seed + i``);
            ``None`` = the data seed (:meth:`data_seed`: ``seed``, else the run's ``seed_everything``).
        target_ratio: ``ρ`` in round 0 (``None`` = no mixed sampling: the parent's two loaders). Batches are
            source only while the target carries no pseudo labels.
        target_ratio_end: ``ρ`` from round ``rounds − 1`` on (``None`` = constant).
        rounds: self-training rounds over which ``ρ`` moves.
        round: the current round (0-based; a pipeline sets it per fit stage).
        class_balance: ``balance`` of :class:`~domadapt.data.samplers.MixedDomainSampler` (1 = uniform over
            classes, 0 = uniform over samples).
        min_pixels: segmentation: pixels a class needs in an image to count as present.
        epoch_size: indices per epoch (default: all source samples + all target samples).
        sampler_seed: seed of the sampler (the epoch is added by ``set_epoch``); ``None`` = the data seed.
    """

    def __init__(
        self,
        *args: Any,
        style_transfer: StyleTransfer | None = None,
        style_transfer_p: float = 1.0,
        keep_original_source: bool = True,
        style_seed: int | None = None,
        target_ratio: float | None = None,
        target_ratio_end: float | None = None,
        rounds: int = 1,
        round: int = 0,
        class_balance: float = 1.0,
        min_pixels: int = 1,
        epoch_size: int | None = None,
        sampler_seed: int | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(*args, **kwargs)  # jsonargparse follows this call for the parent's arguments
        if target_ratio is not None and self.source_sampling != "uniform":
            raise ValueError(f"SelfTrainingDataModule.source_sampling: {self.source_sampling!r} draws the source "
                             "loader, which target_ratio replaces by the mixed loader; use one of the two")
        for name, value in (("target_ratio", target_ratio), ("target_ratio_end", target_ratio_end)):
            if value is not None and not 0.0 <= value <= 1.0:
                raise ValueError(f"SelfTrainingDataModule.{name}: expected ρ in [0, 1], got {value}")
        if not 0.0 <= style_transfer_p <= 1.0:
            raise ValueError(f"SelfTrainingDataModule.style_transfer_p: expected a probability in [0, 1], got "
                             f"{style_transfer_p}")
        self.style_transfer, self.style_transfer_p = style_transfer, float(style_transfer_p)
        self.keep_original_source, self.style_seed = bool(keep_original_source), style_seed
        self.target_ratio, self.target_ratio_end = target_ratio, target_ratio_end
        self.rounds, self.round, self.class_balance = int(rounds), int(round), float(class_balance)
        self.min_pixels, self.epoch_size, self.sampler_seed = int(min_pixels), epoch_size, sampler_seed
        self.sampler: MixedDomainSampler | None = None

    def setup(self, stage: str | None = None) -> None:
        if not self._ready and self.style_transfer is not None:
            # References are the raw target images, not their pseudo-labelled wrapper.
            refs = getattr(self.target, "dataset", self.target) if getattr(self.target, "pseudo_labelled", False) \
                else self.target
            base = self.data_seed() if self.style_seed is None else int(self.style_seed)
            self.sources = [s if isinstance(s, StyleTransferred) else
                            StyleTransferred(s, refs, self.style_transfer, self.style_transfer_p, base + i,
                                             include_original=self.keep_original_source)
                            for i, s in enumerate(self.sources)]
        super().setup(stage)

    @property
    def mixed(self) -> bool:
        """Whether training uses the single mixed source/target loader (``target_ratio`` is set)."""
        return self.target_ratio is not None

    def train_dataloader(self):
        self.setup()
        if not self.mixed:
            return super().train_dataloader()
        seed = self.data_seed() if self.sampler_seed is None else int(self.sampler_seed)
        source: Sequence = SeededConcatDataset(self.sources)
        pseudo = bool(getattr(self.target, "pseudo_labelled", False))
        if pseudo:
            labels = sampling_labels(self.target, len(self.classes), self.min_pixels)
            ratio, ratio_end = self.target_ratio, self.target_ratio_end
        else:  # round 0: no pseudo labels yet, so batches are source only (no target image is loaded for nothing)
            labels, ratio, ratio_end = np.full(len(self.target), IGNORE_INDEX, np.int64), 0.0, None
        self.sampler = MixedDomainSampler(
            len(source), labels, ratio, ratio_end, self.rounds, self.round,  # type: ignore[arg-type]
            num_samples=self.epoch_size, num_classes=len(self.classes), balance=self.class_balance, seed=seed)
        batch = self.batch_size + self.target_batch_size
        if self.sampler.num_samples < batch:
            raise DataError(f"SelfTrainingDataModule: {self.sampler.num_samples} samples per epoch is fewer than one "
                            f"batch of {batch} (drop_last)")
        if self.sampler.rank == 0:
            missing = [self.classes[c] for c in self.sampler.missing_classes]
            what = (f"{self.sampler.num_drawable}/{len(labels)} target samples with pseudo labels" if pseudo else
                    "no pseudo labels yet: source only")
            print(f"self-training sampler: round {self.round}, ρ = {self.sampler.ratio_now:.2f}, {what}"
                  + (f"; never predicted (weight 0): {', '.join(missing)}" if missing and pseudo else ""))
        loader = ResumableLoader(SeededConcatDataset([source, self.target]), batch_size=batch, sampler=self.sampler,
                                 drop_last=True, collate_fn=SplitDomains(self.num_sources),
                                 generator=torch.Generator().manual_seed(seed),
                                 num_workers=self.num_workers, pin_memory=self.pin_memory,
                                 persistent_workers=self.num_workers > 0)
        resume_loaders(self, [loader])
        return loader
