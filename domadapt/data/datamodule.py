"""`DomainAdaptationDataModule`: labelled source(s) + unlabelled target for training, labelled
target (and optionally source) splits for evaluation.

Training batches are ``{"source": Sample, "target": Sample}`` (DESIGN.md §3): the source loader
iterates the concatenation of all sources (each sample keeps its ``domain`` id ``0..S-1``), the
target loader the unlabelled target train split (``domain`` = ``S``). The two loaders are combined
with Lightning's ``CombinedLoader`` in ``max_size_cycle`` mode, so an epoch is one pass over the
larger of the two and the smaller one restarts. Training loaders use ``drop_last=True`` so every
batch has the configured size (adversarial losses assume equal-sized domains).

Training order and augmentation are seeded and resumable (:mod:`domadapt.data.resumable`): the same
seed gives the same batches, and a run resumed from a mid-epoch checkpoint continues with the batch
after the last one it trained on, so it ends with the weights of an uninterrupted run.

``source_sampling="rare_class"`` draws the source by DAFormer's rare-class sampling instead of a
shuffle (:mod:`domadapt.data.rare_class`; per-image class pixel counts from
:mod:`domadapt.data.class_pixels`, computed once and cached), re-drawing crops that show too little of
the drawn class (:mod:`domadapt.data.rare_class_crops`). An epoch still has as many source draws as
source images.

Datasets are only *indexed* in :meth:`setup`, so ``--print_config`` and recipe checks need no data.
"""

from __future__ import annotations

import copy
import os
from collections.abc import Callable, Sequence
from typing import Literal

import pytorch_lightning as pl
import torch
from pytorch_lightning.utilities import CombinedLoader
from torch.utils.data import ConcatDataset, DataLoader, Dataset

from domadapt.data.base import DomainDataset
from domadapt.data.batching import collate_samples
from domadapt.data.class_pixels import class_pixel_counts
from domadapt.data.rare_class import RareClassSampler
from domadapt.data.rare_class_crops import RareClassCrops
from domadapt.data.resumable import ResumableLoader, ResumableRandomSampler, SeededConcatDataset, resume_loader
from domadapt.data.sharding import ShardSampler
from domadapt.data.transforms import Augment
from domadapt.io import DataError


class DomainAdaptationDataModule(pl.LightningDataModule):
    """Source(s) + target data for domain adaptation.

    Args:
        sources: one labelled source dataset or a list of them (multi-source).
        target: the unlabelled target training split (its labels, if any, are never loaded; a
            :class:`~domadapt.pseudo.PseudoLabelled` target keeps its pseudo labels).
        target_val: labelled target split for validation (``val/target/*`` metrics).
        target_test: labelled target split for ``test`` (defaults to ``target_val``).
        source_val: optional labelled source split for validation (``val/source/*``).
        train_transform: augmentation for training images of every domain whose dataset has none.
        target_transform: augmentation for the target training split (defaults to ``train_transform``).
        eval_transform: deterministic transform for evaluation splits whose dataset has none.
        batch_size: source batch size (all sources together).
        target_batch_size: target batch size (defaults to ``batch_size``).
        eval_batch_size: evaluation batch size (defaults to ``batch_size``).
        num_workers: DataLoader worker processes.
        pin_memory: pin host memory (useful on GPU machines).
        seed: seed of the training order and augmentations (source ``seed``, target ``seed + 7919``);
            ``None`` = the run's ``seed_everything`` seed (``PL_GLOBAL_SEED``), else 0.
        pseudo_labels: wraps ``target`` in its pseudo labels, e.g. ``{class_path:
            domadapt.pseudo.PseudoLabelled, init_args: {pseudo_dir: <pseudo_label stage>/pseudo_labels}}``
            (how a pipeline's fit stage passes ``inputs.pseudo_labels``); ``None`` = unlabelled target.
        source_sampling: ``"uniform"`` (a shuffle of the sources per pass) or ``"rare_class"`` (DAFormer's
            rare-class sampling, segmentation sources only: class ``c`` drawn with
            ``p_c ∝ exp((1 − f_c) / T)``, ``f_c`` its share of the source pixels, then an image with more
            than ``rcs_min_pixels`` pixels of ``c``; :class:`~domadapt.data.rare_class.RareClassSampler`).
        rcs_temperature: ``T > 0`` of rare-class sampling (DAFormer: 0.01).
        rcs_min_pixels: pixels of the drawn class an image must exceed, in the labels as stored (DAFormer: 3000).
        rcs_min_crop_ratio: re-draw the training crop (at most 10 times) until it holds more than
            ``rcs_min_pixels · rcs_min_crop_ratio`` pixels of the drawn class (DAFormer: 0.5); 0 = off.
    """

    def __init__(
        self,
        sources: DomainDataset | list[DomainDataset],
        target: DomainDataset,
        target_val: DomainDataset | None = None,
        target_test: DomainDataset | None = None,
        source_val: DomainDataset | None = None,
        train_transform: Augment | None = None,
        target_transform: Augment | None = None,
        eval_transform: Augment | None = None,
        batch_size: int = 32,
        target_batch_size: int | None = None,
        eval_batch_size: int | None = None,
        num_workers: int = 0,
        pin_memory: bool = False,
        seed: int | None = None,
        pseudo_labels: Callable[[DomainDataset], DomainDataset] | None = None,
        source_sampling: Literal["uniform", "rare_class"] = "uniform",
        rcs_temperature: float = 0.01,
        rcs_min_pixels: int = 3000,
        rcs_min_crop_ratio: float = 0.5,
    ) -> None:
        super().__init__()
        self.sources = list(sources) if isinstance(sources, Sequence) else [sources]
        if not self.sources:
            raise ValueError("DomainAdaptationDataModule.sources: expected at least one source dataset")
        if batch_size <= 0:
            raise ValueError(f"DomainAdaptationDataModule.batch_size: expected > 0, got {batch_size}")
        check_source_sampling(self.sources, source_sampling, rcs_temperature, rcs_min_pixels, rcs_min_crop_ratio)
        self.source_sampling, self.rcs_temperature = source_sampling, float(rcs_temperature)
        self.rcs_min_pixels, self.rcs_min_crop_ratio = int(rcs_min_pixels), float(rcs_min_crop_ratio)
        self.source_sampler: RareClassSampler | None = None  # set by train_dataloader with rare-class sampling
        self._source_pixels = None  # (N, K) class pixel counts of the sources, read once
        self.target = pseudo_labels(target) if pseudo_labels is not None else target
        self.target_val, self.source_val = target_val, source_val
        self.target_test = target_test if target_test is not None else target_val
        self.train_transform, self.eval_transform = train_transform, eval_transform
        self.target_transform = target_transform if target_transform is not None else train_transform
        self.batch_size = batch_size
        self.target_batch_size = target_batch_size or batch_size
        self.eval_batch_size = eval_batch_size or batch_size
        self.num_workers, self.pin_memory = num_workers, pin_memory
        self.seed = seed
        self._ready = False

    # --- metadata available before setup -------------------------------------------------------
    @property
    def task(self) -> str:
        return self.target.task

    @property
    def num_sources(self) -> int:
        return len(self.sources)

    @property
    def val_names(self) -> list[str]:
        """Names of the validation dataloaders, in order (``val/<name>/<metric>``)."""
        return [n for n, d in (("target", self.target_val), ("source", self.source_val)) if d is not None]

    @property
    def test_names(self) -> list[str]:
        return ["target"] if self.target_test is not None else []

    # --- Lightning hooks --------------------------------------------------------------------
    def setup(self, stage: str | None = None) -> None:
        if self._ready:
            return
        for i, ds in enumerate(self.sources):
            self._prepare(ds, domain=i, transform=self.train_transform, with_labels=True)
        self._prepare(self.target, domain=self.num_sources, transform=self.target_transform, with_labels=False)
        for ds, dom in ((self.target_val, self.num_sources), (self.target_test, self.num_sources), (self.source_val, 0)):
            if ds is not None:
                self._prepare(ds, domain=dom, transform=self.eval_transform, with_labels=True)
        self._check_compatible()
        self._ready = True

    @staticmethod
    def _prepare(ds: DomainDataset, domain: int, transform: Augment | None, with_labels: bool) -> None:
        ds.domain = domain
        if ds.transform is None:
            ds.transform = transform
        if not with_labels and not getattr(ds, "pseudo_labelled", False):  # pseudo labels are meant for training
            ds.with_labels = False
        ds.setup()

    def _check_compatible(self) -> None:
        ref = self.target
        for ds in [*self.sources, self.target_val, self.target_test, self.source_val]:
            if ds is None:
                continue
            if ds.task != ref.task:
                raise DataError(f"{ds.describe()}: task {ds.task!r} differs from the target's {ref.task!r}")
            if tuple(ds.classes) != tuple(ref.classes):
                raise DataError(
                    f"{ds.describe()}: class list ({len(ds.classes)} classes) differs from the target "
                    f"{ref.describe()} ({len(ref.classes)} classes); source and target must share one label space"
                )

    def _loader(self, ds, batch_size: int, train: bool, seed: int = 0,
                sampler: ResumableRandomSampler | None = None) -> DataLoader:
        if not train:  # under DDP each rank evaluates a disjoint shard: no sample counted twice
            sampler = ShardSampler(len(ds)) if torch.distributed.is_available() and \
                torch.distributed.is_initialized() else None
            return DataLoader(ds, batch_size=batch_size, sampler=sampler, num_workers=self.num_workers,
                              collate_fn=collate_samples, pin_memory=self.pin_memory,
                              persistent_workers=self.num_workers > 0)
        if len(ds) < batch_size:
            raise DataError(f"{_describe(ds)}: {len(ds)} samples is fewer than one batch of {batch_size} (drop_last)")
        return ResumableLoader(
            ds, batch_size=batch_size, sampler=sampler or ResumableRandomSampler(len(ds), seed=seed), drop_last=True,
            generator=torch.Generator().manual_seed(seed),  # worker seeds; the global RNG is the model's alone
            collate_fn=collate_samples,  # in-memory batches come collated (domadapt.data.batching)
            num_workers=self.num_workers, pin_memory=self.pin_memory, persistent_workers=self.num_workers > 0,
        )

    def data_seed(self) -> int:
        """Base seed of the training order: ``seed``, else the run's ``seed_everything`` seed, else 0."""
        if self.seed is not None:
            return int(self.seed)
        return int(os.environ.get("PL_GLOBAL_SEED", 0))

    def train_dataloader(self) -> CombinedLoader:
        self.setup()
        source = self.sources[0] if self.num_sources == 1 else SeededConcatDataset(self.sources)
        seed = self.data_seed()
        sampler = None
        if self.source_sampling == "rare_class":
            source, sampler = self._rare_class_source(source, seed)
        loaders = {
            "source": self._loader(source, self.batch_size, train=True, seed=seed, sampler=sampler),
            "target": self._loader(self.target, self.target_batch_size, train=True, seed=seed + 7919),
        }
        resume_loaders(self, list(loaders.values()))
        return CombinedLoader(loaders, mode="max_size_cycle")

    def _rare_class_source(self, source, seed: int) -> tuple[Dataset, RareClassSampler]:
        """The source dataset (crops re-drawn when ``rcs_min_crop_ratio > 0``) and its rare-class sampler."""
        if self._source_pixels is None:
            self._source_pixels = class_pixel_counts(source, len(self.classes))
        self.source_sampler = RareClassSampler(self._source_pixels, self.rcs_temperature, self.rcs_min_pixels,
                                               seed=seed)
        if self.source_sampler.rank == 0:
            top = sorted(zip(self.source_sampler.class_probs, self.classes), reverse=True)[:5]
            print(f"rare-class sampling of {_describe(source)}: T = {self.rcs_temperature:g}, images with > "
                  f"{self.rcs_min_pixels} px of the class; most drawn: "
                  + ", ".join(f"{name} {p:.3f}" for p, name in top)
                  + (f"; never drawn (no image above min_pixels): "
                     f"{', '.join(self.classes[c] for c in self.source_sampler.excluded_classes)}"
                     if self.source_sampler.excluded_classes else ""), flush=True)
        if self.rcs_min_crop_ratio > 0:
            source = RareClassCrops(source, self.rcs_min_pixels, self.rcs_min_crop_ratio)
        return source, self.source_sampler

    def val_dataloader(self) -> list[DataLoader]:
        self.setup()
        return [self._loader(d, self.eval_batch_size, train=False) for d in (self.target_val, self.source_val) if d is not None]

    def test_dataloader(self) -> list[DataLoader]:
        self.setup()
        return [self._loader(self.target_test, self.eval_batch_size, train=False)] if self.target_test is not None else []

    def predict_dataloader(self) -> DataLoader:
        """Predictions on the target training split (e.g. for pseudo-labelling)."""
        self.setup()
        ds = copy.copy(self.target)  # same files, deterministic evaluation transform
        ds.transform = self.eval_transform
        return self._loader(ds, self.eval_batch_size, train=False)

    @property
    def classes(self) -> tuple[str, ...]:
        return tuple(self.target.classes)


def resume_position(datamodule: pl.LightningDataModule) -> tuple[int, int]:
    """``(epoch, batches)`` of training already done in the current epoch by the attached trainer.

    Read when the training loader is built, after Lightning has restored a checkpoint's loop progress
    (0, 0 for a fresh run or without a trainer). ``batches`` counts the batches whose optimisation step
    finished (a checkpoint saved at the end of a batch includes that batch).
    """
    trainer = getattr(datamodule, "trainer", None)
    if trainer is None:
        return 0, 0
    loop = trainer.fit_loop
    return int(loop.epoch_progress.current.processed), int(loop.epoch_loop.batch_progress.current.processed)


def resume_loaders(datamodule: pl.LightningDataModule, loaders: list[DataLoader]) -> None:
    """Position the resumable training loaders of an epoch-cycled set at the trainer's progress.

    The epoch is one pass over the longest loader (``max_size_cycle``); when the restored progress
    is at the end of an epoch the loaders start the next one.
    """
    epoch, done = resume_position(datamodule)
    if not loaders:
        return
    if done >= max(len(dl) for dl in loaders):
        epoch, done = epoch + 1, 0
    for dl in loaders:
        resume_loader(dl, epoch, done)


def check_source_sampling(sources: list[DomainDataset], source_sampling: str, temperature: float, min_pixels: int,
                          min_crop_ratio: float) -> None:
    """One-line ``ValueError`` for a bad ``source_sampling`` / ``rcs_*`` argument of the DataModule."""
    name = "DomainAdaptationDataModule"
    if source_sampling not in ("uniform", "rare_class"):
        raise ValueError(f"{name}.source_sampling: expected 'uniform' or 'rare_class', got {source_sampling!r}")
    if not temperature > 0:
        raise ValueError(f"{name}.rcs_temperature: expected T > 0, got {temperature}")
    if min_pixels < 0:
        raise ValueError(f"{name}.rcs_min_pixels: expected >= 0, got {min_pixels}")
    if not min_crop_ratio >= 0:
        raise ValueError(f"{name}.rcs_min_crop_ratio: expected >= 0, got {min_crop_ratio}")
    if source_sampling == "rare_class":
        for ds in sources:
            if ds.task != "segmentation":
                raise ValueError(f"{name}.source_sampling: 'rare_class' needs segmentation sources, got the "
                                 f"{ds.task} source {ds.describe()}")


def _describe(ds) -> str:
    if isinstance(ds, RareClassCrops):
        return ds.describe()
    if isinstance(ds, ConcatDataset):
        return " + ".join(d.describe() for d in ds.datasets)
    return ds.describe()
