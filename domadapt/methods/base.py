"""`DomainAdaptationModule`: the LightningModule every method builds on (DESIGN.md §3).

Training objective (automatic optimisation)::

    L = CE(net(x_s), y_s) + w(p) * adaptation_loss(out_s, out_t, batch)

where ``w(p) = adaptation_weight * adaptation_schedule(p)`` and ``p`` in [0, 1] is training progress
computed from the trainer's batch counter (restored from checkpoints; no hidden counters).
Subclasses override :meth:`adaptation_loss` (or :meth:`training_step` for manual optimisation).

Evaluation runs on every named domain of the DataModule (``val/target/miou``, ``val/source/acc``, …)
from one accumulated confusion matrix per domain (torchmetrics; states are summed across DDP ranks).
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any, Literal

import pytorch_lightning as pl
import torch
import torch.nn.functional as F
from pytorch_lightning.utilities import rank_zero_info, rank_zero_warn
from torch import nn

from domadapt import schedules
from domadapt.evaluation.inference import class_probabilities, native_resolution
from domadapt.evaluation.metrics import MetricSet
from domadapt.evaluation.validators import build_validators, check_validator_names
from domadapt.methods.training_terms import TrainingTerms
from domadapt.released_sgd import ReleasedSGD
from domadapt.structures import IGNORE_INDEX, NetOutput

if TYPE_CHECKING:
    from domadapt.evaluation.pictures import PredictionSamples


def iterations_done(module: pl.LightningModule) -> int:
    """Training batches completed by ``module``'s trainer (0 when detached); restored on resume.

    Unlike ``global_step`` it does not count optimiser steps, so it means the same for automatic and
    manual optimisation with any number of optimisers.
    """
    if module._trainer is None:
        return 0
    return module.trainer.fit_loop.epoch_loop.batch_progress.total.completed


def datamodule_of(module: pl.LightningModule) -> pl.LightningDataModule | None:
    """The DataModule of ``module``'s trainer; ``None`` when detached or trained from plain loaders."""
    return getattr(module.trainer, "datamodule", None) if module._trainer is not None else None


def iterations_horizon(trainer: pl.Trainer | None, optimizer_steps_per_batch: int) -> int:
    """Training iterations (batches) that the trainer will run: ``min(max_steps // k, max_epochs x batches per
    epoch)`` with ``k = optimizer_steps_per_batch`` (Lightning's ``max_steps`` counts optimiser steps, its
    ``max_epochs`` batches); 1 when unbounded or detached.

    Lightning's ``estimated_stepping_batches`` mixes the two units (under ``max_epochs`` it counts batches, not
    optimiser steps), so dividing it by ``k`` shortens an epoch-bounded horizon ``k`` times.
    """
    if trainer is None:
        return 1
    bounds = []
    if trainer.max_steps is not None and trainer.max_steps > 0:
        bounds.append(trainer.max_steps // optimizer_steps_per_batch)
    if trainer.max_epochs is not None and trainer.max_epochs > 0:
        trainer.estimated_stepping_batches  # noqa: B018 - sets up the training loader, hence num_training_batches
        if math.isfinite(trainer.num_training_batches):
            bounds.append(trainer.max_epochs * int(trainer.num_training_batches))
    return max(min(bounds), 1) if bounds else 1


class TrainingProgress:
    """``iteration``, ``horizon`` and ``progress`` of a LightningModule whose ``hparams`` has ``schedule_horizon``
    (``None``: the run's length, :func:`iterations_horizon`) and that takes ``optimizer_steps_per_batch`` optimiser
    steps per batch; what every learning-rate and loss-weight schedule reads."""

    #: Optimiser steps Lightning counts per training batch (manual methods with two optimisers set 2).
    optimizer_steps_per_batch: int = 1
    _horizon: tuple[int, int] | None = None  # (id(trainer), horizon): one trainer, one horizon

    @property
    def iteration(self) -> int:
        """Training iterations (batches) done so far; restored from checkpoints by Lightning."""
        return iterations_done(self)

    @property
    def horizon(self) -> int:
        """Iterations from progress 0 to 1."""
        if self.hparams.schedule_horizon:
            return int(self.hparams.schedule_horizon)
        if self._horizon is None or self._horizon[0] != id(self._trainer):
            self._horizon = (id(self._trainer), iterations_horizon(self._trainer, self.optimizer_steps_per_batch))
        return self._horizon[1]

    @property
    def progress(self) -> float:
        """Training progress ``p = iteration / horizon`` in [0, 1]."""
        return schedules.progress(self.iteration, self.horizon)


class DomainAdaptationModule(TrainingTerms, TrainingProgress, pl.LightningModule):
    """Base adaptation method: supervised source loss + scheduled adaptation loss.

    Args:
        net: the network; returns :class:`~domadapt.structures.NetOutput` and declares ``task``,
            ``num_classes`` and ``num_features``. May offer ``param_groups(lr_mult_head)``.
        lr: base learning rate (backbone); the head gets ``lr * head_lr_mult``.
        optimizer: ``"sgd"`` (momentum, Nesterov off), ``"adam"``, ``"adamw"`` (decoupled weight decay, torch
            ``AdamW`` with ``betas`` and ``weight_decay``; DAFormer), or ``"sgd_released"``: SGD as the released
            DeepLab-V2 code (AdaptSegNet, ADVENT, BDL) ran it, each backbone parameter updated as many times per
            step as its parameter listing repeats it (about 3x the nominal backbone rate; :mod:`domadapt.released_sgd`).
        momentum: SGD momentum.
        weight_decay: L2 weight decay (decoupled for ``adamw``).
        betas: Adam / AdamW betas.
        no_decay_keys: parameters whose name (in ``net``, e.g. ``encoder.block1.0.norm1.weight``) contains one of
            these strings get weight decay 0 (mmcv's ``paramwise_cfg`` ``custom_keys={key: dict(decay_mult=0)}``;
            DAFormer: ``("pos_block", "norm")``). Empty = every parameter decays.
        head_lr_mult: learning-rate multiplier of new (head / discriminator) parameters.
        lr_schedule: learning-rate factor as a function of progress (``poly`` = DeepLab ``(1-p)^0.9``,
            ``poly1`` = ``1-p`` (mmcv poly, power 1), ``inv`` = DANN ``(1+10p)^-0.75``, ``constant``).
        lr_warmup_iters: iterations of mmcv's linear warm-up ``W``; the schedule's factor is multiplied by
            ``1 - (1 - r)(1 - i/W)`` for ``i < W`` (:func:`~domadapt.schedules.linear_warmup`). 0 = none.
        lr_warmup_ratio: ``r``, the warm-up's starting fraction of the rate (mmcv's ``warmup_ratio``; DAFormer 1e-6).
        schedule_horizon: iterations over which progress runs from 0 to 1; ``None`` = the length of
            training (``max_steps`` or epochs × batches). BDL uses a horizon longer than the stop step.
        adaptation_weight: weight ``w`` of the adaptation loss.
        adaptation_schedule: ramp of that weight over progress (``constant``, ``linear``, ``dann``).
        protocols: mIoU protocols to report for 19-class segmentation (``"19"``, ``"16"``, ``"13"``).
        validators: label-free model-selection scores computed on the target validation split and
            logged as ``val/target/unsup/<name>`` (:mod:`domadapt.evaluation.validators`; a checkpoint
            monitor). ``agreement`` needs a method with two heads (``eval_heads(x) -> list[Tensor]``).
    """

    #: Whether the method trains a multi-level network's auxiliary output (``net.multi_level``).
    supports_multi_level: bool = False

    def __init__(
        self,
        net: nn.Module,
        lr: float = 0.01,
        optimizer: Literal["sgd", "sgd_released", "adam", "adamw"] = "sgd",
        momentum: float = 0.9,
        weight_decay: float = 5e-4,
        betas: tuple[float, float] = (0.9, 0.999),
        no_decay_keys: tuple[str, ...] = (),
        head_lr_mult: float = 10.0,
        lr_schedule: schedules.ScheduleName = "constant",
        lr_warmup_iters: int = 0,
        lr_warmup_ratio: float = 1e-6,
        schedule_horizon: int | None = None,
        adaptation_weight: float = 1.0,
        adaptation_schedule: schedules.ScheduleName = "constant",
        protocols: tuple[str, ...] = ("19", "16", "13"),
        validators: tuple[str, ...] = ("entropy", "info_max"),
    ) -> None:
        super().__init__()
        for attr in ("task", "num_classes"):
            if not hasattr(net, attr):
                raise TypeError(f"{type(self).__name__}.net: {type(net).__name__} has no `{attr}`; expected a "
                                "domadapt network returning NetOutput(logits, features)")
        if getattr(net, "multi_level", False) and not self.supports_multi_level:
            raise ValueError(f"{type(self).__name__}.net: {type(net).__name__}(multi_level=True) has an auxiliary output "
                             f"that {type(self).__name__} would not train; use OutputSpaceAdversarial or AdvEnt "
                             "(AdaptSegNet / ADVENT multi-level), or multi_level=False")
        schedules.get_schedule(lr_schedule), schedules.get_schedule(adaptation_schedule)  # validate early
        if lr_warmup_iters < 0 or not 0.0 < lr_warmup_ratio <= 1.0:
            raise ValueError(f"{type(self).__name__}.lr_warmup_*: expected lr_warmup_iters >= 0 and 0 < lr_warmup_ratio "
                             f"<= 1, got {lr_warmup_iters} and {lr_warmup_ratio}")
        validators = check_validator_names(validators, f"{type(self).__name__}.validators")
        self.save_hyperparameters(ignore=["net"] + self._hparams_ignore())
        self.net = net
        self.metrics = nn.ModuleDict()
        if "agreement" in validators and not callable(getattr(self, "eval_heads", None)):
            rank_zero_info(f"{type(self).__name__}: validator `agreement` is not logged: the method has no "
                           "second head (eval_heads)")
            validators = tuple(v for v in validators if v != "agreement")
        self.unsup_validators = nn.ModuleDict(build_validators(validators))  # states are not in checkpoints

    @classmethod
    def _hparams_ignore(cls) -> list[str]:
        """Constructor arguments that are modules (not saved as hyper-parameters)."""
        return []

    # ------------------------------------------------------------------ properties
    @property
    def task(self) -> str:
        return self.net.task

    def adaptation_coefficient(self) -> float:
        return self.hparams.adaptation_weight * schedules.get_schedule(self.hparams.adaptation_schedule)(self.progress)

    # ------------------------------------------------------------------ forward
    def forward(self, x: torch.Tensor) -> NetOutput:
        return self.net(x)

    def net_output(self, x: torch.Tensor) -> NetOutput:
        """``net(x)``, checked to be a :class:`NetOutput` (alignment needs ``features``)."""
        out = self.net(x)
        if not isinstance(out, NetOutput):
            raise TypeError(f"{type(self).__name__}: {type(self.net).__name__} returned {type(out).__name__}; "
                            "expected NetOutput(logits, features) — alignment methods need the features")
        return out

    def forward_domains(self, xs: torch.Tensor, xt: torch.Tensor) -> tuple[NetOutput, NetOutput]:
        """One forward over ``cat[x_s, x_t]`` (shared BatchNorm statistics) when shapes allow."""
        if xs.shape[1:] == xt.shape[1:]:
            out = self.net_output(torch.cat([xs, xt]))
            n = xs.shape[0]
            return NetOutput(out.logits[:n], out.features[:n]), NetOutput(out.logits[n:], out.features[n:])
        return self.net_output(xs), self.net_output(xt)

    def task_loss(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """Cross-entropy on labelled samples; pixels/samples equal to 255 are ignored."""
        return F.cross_entropy(logits, target, ignore_index=IGNORE_INDEX)

    @staticmethod
    def ground_truth(sample: dict) -> torch.Tensor:
        return sample["mask"] if "mask" in sample else sample["label"]

    # ------------------------------------------------------------------ training
    def adaptation_loss(self, out_s: NetOutput, out_t: NetOutput, batch: dict) -> torch.Tensor | dict[str, torch.Tensor]:
        """Alignment term(s); a tensor or a dict of named terms (summed). Source-only returns 0."""
        return out_s.logits.new_zeros(())

    def training_step(self, batch: dict, batch_idx: int) -> torch.Tensor:
        src, tgt = batch["source"], batch["target"]
        out_s, out_t = self.forward_domains(src["image"], tgt["image"])
        terms = {"task": self.task_loss(out_s.logits, self.ground_truth(src))}
        adapt = self.adaptation_loss(out_s, out_t, batch)
        adapt_terms = adapt if isinstance(adapt, dict) else {"adapt": adapt}
        w = self.adaptation_coefficient()
        loss = terms["task"] + w * sum(adapt_terms.values())
        self.check_finite({**terms, **adapt_terms})
        self.log_terms({"loss": loss, "loss_task": terms["task"],
                        **{f"loss_{k}": v for k, v in adapt_terms.items()}}, batch_size=src["image"].shape[0])
        self.log_train("train/adapt_weight", w, on_epoch=False)
        return loss

    # ------------------------------------------------------------------ evaluation
    def predict_probabilities(self, image: torch.Tensor, output_size: tuple[int, int] | None = None) -> torch.Tensor:
        """The one prediction path (validation, test, predict, pseudo labels, pictures, export): class probabilities
        of :meth:`eval_logits` at the network's native resolution, segmentation ones upsampled once, bilinearly with
        ``align_corners=True``, to ``output_size`` (the label's size; ``None`` = the image's) — the BDL protocol,
        :mod:`domadapt.evaluation.inference`. The image comes at the size the evaluation transform resized it to.

        Shape:
            ``(N, C, H, W)`` -> ``(N, K)`` or ``(N, K, *output_size)``.
        """
        with native_resolution(self):
            return class_probabilities(self.eval_logits(image), self._label_size(image, output_size))

    def head_probabilities(self, image: torch.Tensor, output_size: tuple[int, int] | None = None) -> list[torch.Tensor]:
        """:meth:`predict_probabilities` of each head of :meth:`eval_heads` (methods with two classifiers)."""
        with native_resolution(self):
            return [class_probabilities(z, self._label_size(image, output_size)) for z in self.eval_heads(image)]

    def _label_size(self, image: torch.Tensor, output_size: tuple[int, int] | None) -> tuple[int, int] | None:
        """``output_size``, or for segmentation without one the image's own size."""
        if self.task == "segmentation" and output_size is None:
            return tuple(image.shape[-2:])
        return output_size

    def eval_logits(self, x: torch.Tensor) -> torch.Tensor:
        """Logits used for evaluation and prediction (methods with several heads override this)."""
        return self.net(x).logits

    def _names(self, stage: str) -> list[str]:
        dm = datamodule_of(self)
        names = getattr(dm, "val_names" if stage == "val" else "test_names", None)
        return list(names) if names else ["target"]

    def _metric(self, stage: str, name: str) -> MetricSet:
        key = f"{stage}_{name}"
        if key not in self.metrics:
            k = self.net.num_classes
            protocols = [p for p in self.hparams.protocols if p != "19"] if self.task == "segmentation" and k == 19 else []
            names = self.class_names()
            self.metrics[key] = MetricSet(self.task, k, names if len(names) == k else None, protocols,
                                          ignore_index=IGNORE_INDEX).to(self.device)
        return self.metrics[key]

    def _eval_step(self, stage: str, batch: dict, dataloader_idx: int) -> None:
        name = self._names(stage)[dataloader_idx]
        target = self.ground_truth(batch)
        size = tuple(target.shape[-2:]) if target.dim() == 3 else None
        probs = self.predict_probabilities(batch["image"], size)
        self._metric(stage, name).update(probs.argmax(1), target)
        if stage == "val" and name == "target" and len(self.unsup_validators):
            self._update_validators(batch["image"], probs, size)

    def _update_validators(self, image: torch.Tensor, probs: torch.Tensor, size: tuple[int, int] | None) -> None:
        """Feed the label-free validators (target labels are never read here)."""
        heads = None
        if any(v.needs_heads for v in self.unsup_validators.values()):
            heads = self.head_probabilities(image, size)
        for v in self.unsup_validators.values():
            v.update(probs, heads)

    def validation_step(self, batch: dict, batch_idx: int, dataloader_idx: int = 0) -> None:
        self._eval_step("val", batch, dataloader_idx)

    def test_step(self, batch: dict, batch_idx: int, dataloader_idx: int = 0) -> None:
        self._eval_step("test", batch, dataloader_idx)

    def _eval_epoch_end(self, stage: str) -> dict[str, Any]:
        results: dict[str, Any] = {}
        for key in list(self.metrics.keys()):
            if not key.startswith(f"{stage}_"):
                continue
            name = key[len(stage) + 1:]
            metric = self.metrics[key]
            summary = metric.compute()  # summed over DDP ranks
            with metric.sync_context():
                cm = metric.confmat.detach().cpu().clone()
            results[name] = {"summary": summary, "confmat": cm}
            for k, v in summary.items():
                self.log(f"{stage}/{name}/{k}", float(v), prog_bar=k in ("miou", "acc") and name == "target",
                         sync_dist=False, add_dataloader_idx=False)
            self.metrics[key].reset()
        if stage == "val":
            for vname, v in self.unsup_validators.items():
                if v.update_called:
                    self.log(f"val/target/unsup/{vname}", float(v.compute()), sync_dist=False, add_dataloader_idx=False)
                v.reset()
        return results

    def on_validation_epoch_end(self) -> None:
        self._eval_epoch_end("val")

    def on_test_epoch_end(self) -> None:
        results = self._eval_epoch_end("test")
        if self.trainer.is_global_zero and results:
            self.write_test_report(results)

    def write_test_report(self, results: dict[str, Any], num_pictures: int = 4) -> None:
        """The test report (:mod:`domadapt.evaluation.run_report`) of ``results`` and of the predictions of the first
        ``num_pictures`` target test samples, into the run directory; the picture also goes to TensorBoard."""
        from domadapt.evaluation.pictures import log_image
        from domadapt.evaluation.run_report import run_dir_of, write_test_report

        try:  # a qualitative picture must not cost the metrics of a finished evaluation
            samples = self.prediction_samples(num_pictures)
        except Exception as e:  # noqa: BLE001 - reported, not hidden
            rank_zero_warn(f"predictions_target.png not written: {type(e).__name__}: {e}")
            samples = None
        _, picture = write_test_report(run_dir_of(self.trainer), results, list(self.class_names()), self.task,
                                       self.global_step, samples)
        if picture is not None:
            log_image(self.trainer.loggers, "test/target/predictions", picture, self.global_step)

    @torch.no_grad()
    def prediction_samples(self, n: int) -> PredictionSamples | None:
        """The first ``n`` samples of the DataModule's ``target_test`` with :meth:`predict_probabilities`' argmax (in
        eval mode; the module's mode is restored); ``None`` without a target test set."""
        from domadapt.evaluation.pictures import PredictionSamples, first_samples, normalisation_of

        dm = datamodule_of(self)
        dataset = getattr(dm, "target_test", None)
        if dataset is None or n <= 0:
            return None
        samples = first_samples(dataset, n)
        targets = [self.ground_truth(s)[0] for s in samples]
        was_training = self.training
        self.eval()
        try:
            preds = [self.predict_probabilities(s["image"].to(self.device),
                                                tuple(t.shape[-2:]) if t.dim() == 2 else None).argmax(1)[0].cpu()
                     for s, t in zip(samples, targets)]
        finally:
            self.train(was_training)
        mean, std = normalisation_of(dataset)
        return PredictionSamples([s["image"][0] for s in samples], preds, targets, mean, std)

    def class_names(self) -> tuple[str, ...]:
        dm = datamodule_of(self)
        names = getattr(dm, "classes", None)
        return tuple(names) if names else tuple(str(i) for i in range(self.net.num_classes))

    def predict_step(self, batch: dict, batch_idx: int, dataloader_idx: int = 0) -> dict[str, torch.Tensor]:
        conf, pred = self.predict_probabilities(batch["image"]).max(1)
        return {"pred": pred, "confidence": conf, "index": batch["index"]}

    # ------------------------------------------------------------------ optimisation
    def param_groups(self) -> list[dict]:
        """Network groups (backbone 1x, head ``head_lr_mult``x) + :meth:`extra_param_groups`."""
        mult = self.hparams.head_lr_mult
        if hasattr(self.net, "param_groups"):
            groups = list(self.net.param_groups(mult))
        else:
            groups = [{"params": [p for p in self.net.parameters() if p.requires_grad], "lr_mult": 1.0, "name": "net"}]
        return groups + self.extra_param_groups()

    def extra_param_groups(self) -> list[dict]:
        """Parameters outside the network trained by the main optimiser (e.g. a DANN discriminator)."""
        return []

    def build_optimizer(self, groups: list[dict], lr: float | None = None) -> torch.optim.Optimizer:
        hp = self.hparams
        lr = hp.lr if lr is None else lr
        groups = [dict(g, lr=lr * g.get("lr_mult", 1.0)) for g in groups if len(list(g["params"])) > 0]
        if hp.get("no_decay_keys"):
            groups = self._split_no_decay(groups, tuple(hp.no_decay_keys))
        if hp.optimizer == "sgd":
            return torch.optim.SGD(groups, lr=lr, momentum=hp.momentum, weight_decay=hp.weight_decay)
        if hp.optimizer == "adam":
            return torch.optim.Adam(groups, lr=lr, betas=tuple(hp.betas), weight_decay=hp.weight_decay)
        if hp.optimizer == "adamw":
            return torch.optim.AdamW(groups, lr=lr, betas=tuple(hp.betas), weight_decay=hp.weight_decay)
        if hp.optimizer == "sgd_released":
            if not hasattr(self.net, "released_lr_repeats"):
                raise ValueError(f"optimizer: 'sgd_released' replays the released DeepLab-V2 code's parameter listing; "
                                 f"{type(self.net).__name__} has none (use 'sgd')")
            repeats = self.net.released_lr_repeats()
            groups = [dict(g, repeats=[repeats.get(id(p), 1) for p in g["params"]]) for g in groups]
            return ReleasedSGD(groups, lr=lr, momentum=hp.momentum, weight_decay=hp.weight_decay)
        raise ValueError(f"optimizer: expected 'sgd', 'sgd_released', 'adam' or 'adamw', got {hp.optimizer!r}")

    def _split_no_decay(self, groups: list[dict], keys: tuple[str, ...]) -> list[dict]:
        """Each group split in two: parameters whose ``net`` name contains one of ``keys`` with ``weight_decay=0``
        (mmcv ``decay_mult=0``), the others as they were. Parameters outside ``net`` keep their decay."""
        names = {id(p): n for n, p in self.net.named_parameters()}
        out = []
        for g in groups:
            params = list(g["params"])
            frozen = [p for p in params if any(k in names.get(id(p), "") for k in keys)]
            rest = [p for p in params if not any(p is q for q in frozen)]
            if rest:
                out.append(dict(g, params=rest))
            if frozen:
                out.append(dict(g, params=frozen, weight_decay=0.0, name=f"{g.get('name', 'group')}_no_decay"))
        return out

    def lr_lambda(self, step: int) -> float:
        """Learning-rate factor after ``step`` scheduler steps (one per training iteration): the schedule of progress
        times the linear warm-up factor (1 after ``lr_warmup_iters``)."""
        factor = schedules.get_schedule(self.hparams.lr_schedule)(schedules.progress(step, self.horizon))
        warmup = self.hparams.get("lr_warmup_iters", 0)
        return factor * schedules.linear_warmup(step, warmup, self.hparams.get("lr_warmup_ratio", 1e-6)) if warmup else factor

    def scheduled(self, opt: torch.optim.Optimizer) -> dict:
        """``{"optimizer", "lr_scheduler"}`` with the configured schedule stepped every iteration."""
        return {"optimizer": opt, "lr_scheduler": {"scheduler": torch.optim.lr_scheduler.LambdaLR(opt, self.lr_lambda),
                                                   "interval": "step"}}

    def step_schedulers(self) -> None:
        """Manual optimisation: advance every scheduler by one iteration."""
        scheds = self.lr_schedulers()
        for s in scheds if isinstance(scheds, list) else [scheds]:
            if s is not None:
                s.step()

    def configure_optimizers(self):
        return self.scheduled(self.build_optimizer(self.param_groups()))
