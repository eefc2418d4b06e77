"""DACS: domain adaptation via cross-domain mixed sampling (Tranheden et al., WACV 2021), for segmentation and
classification.

Per batch (automatic optimisation), with the student ``f``, its EMA teacher ``g`` (:class:`~domadapt.pseudo.ema.EMATeacher`,
``θ_g ← α θ_g + (1 − α) θ_f`` after every step, ``α = 0.99``) and a mask ``M`` (1 = source pixel,
:mod:`domadapt.layers.mixing`)::

    p = softmax(g(x_t)),  ŷ_t = argmax p,  c = max p                    (teacher on the plain target image)
    x_m = A(M · x_s + (1 − M) · x_t)                                 (A = strong augmentation, StrongAugment)
                                        (or M · A(x_s) + (1 − M) · A(x_t) with augment_before_mix)
    L = CE(f(A_s(x_s)), y_s) + w(p) · mean_i [ M_i · CE(f(x_m)_i, y_s,i) + (1 − M_i) · q_i · CE(f(x_m)_i, ŷ_t,i) ]

``i`` runs over pixels (segmentation, ``M_i`` in {0, 1}) or samples (classification, ``M_i`` the share of the image
inside the pasted box); ``A_s`` is the identity unless ``source_augment``. The target confidence weight ``q``:

* ``weighting="quality"`` (DACS's ``threshold_uniform``, its default): one number per batch, the share of target
  pixels/samples with ``c ≥ τ`` (``τ = 0.968``);
* ``"threshold"``: ``q_i = [c_i ≥ τ]`` per pixel/sample;
* ``"none"``: ``q_i = 1``.

With ``mic_weight > 0``, masked image consistency (MIC, Hoyer et al., CVPR 2023; released ``mic`` code, mask mode
``separatetrgaug``) adds ``λ_m · mean_i q_i · CE(f(A(x_t) ⊙ K)_i, ŷ_t,i)``: the strongly augmented target image with
random blocks masked out (:func:`~domadapt.layers.masking.block_masks`, block ``b`` px, ratio ``r``) must give the
teacher's labels of the whole image, with the same weight ``q`` (MIC's ``mask_pseudo_threshold="same"``).

With an ``alignment`` loss (any :class:`~domadapt.losses.AlignmentLoss` that steps with the network, e.g. DANN's
:class:`~domadapt.losses.DomainAdversarialLoss`), ``λ_a · loss(out(x_s), out(x_t))`` is added on the plain images (one
joint forward of source and target, as :class:`~domadapt.methods.FeatureAlignment`) — alignment and self-training in
one run (ours; not in DACS). Its parameters train at ``lr · head_lr_mult``.

Masks: ``mix="class"`` is DACS's ClassMix (half of the classes of each source label map), ``"cut"`` a random box per
image (CutMix; the only mask classification has), ``"none"`` no mixing (``M = 0``: FixMatch-style self-training with
the teacher), ``"auto"`` = class for segmentation, cut for classification. The pseudo label of an ignored source
pixel (255) stays ignored. DACS's released code forwards the source batch and the mixed batch separately (two
forwards, one backward), as here. Its teacher runs in train mode, BatchNorm normalising each target batch with its own
statistics (its DeepLabV2 freezes only BatchNorm's scale and shift): ``teacher_mode="train"``; the default ``"eval"``
uses the running statistics copied from the student (the same for networks without BatchNorm).
"""

from __future__ import annotations

from typing import Literal

import torch
import torch.nn.functional as F
from torch import nn

from domadapt.evaluation.pictures import normalisation_of
from domadapt.layers.masking import block_masks, mask_images
from domadapt.layers.mixing import class_mix_masks, cut_mix_masks, mix, source_share
from domadapt.layers.strong_augment import StrongAugment
from domadapt.losses.base import AlignmentLoss
from domadapt.methods.alignment import check_alignment_loss, select
from domadapt.methods.base import DomainAdaptationModule, datamodule_of
from domadapt.pseudo.ema import EMATeacher
from domadapt.structures import IGNORE_INDEX, NetOutput

Weighting = Literal["quality", "threshold", "none"]
MixMask = Literal["auto", "class", "cut", "none"]


class DACS(DomainAdaptationModule):
    """Cross-domain mixed sampling with an EMA teacher (see the module docstring for the objective).

    Args:
        net: the network (classification or segmentation).
        ema_decay: ``α`` of the teacher (DACS: 0.99).
        ema_warmup: ``"average"``: the decay is ``min(α, 1 − 1/(n + s))`` after ``n`` teacher updates, the mean of
            the students seen until that is older than ``α`` allows (DACS and DAFormer, released); ``"none"``: ``α``
            from the first update (:class:`EMATeacher` ``warmup``).
        ema_warmup_start: ``s`` (DACS 1: its first update copies the student; DAFormer 2).
        threshold: ``τ`` of the confidence weight (DACS: 0.968).
        weighting: ``"quality"``, ``"threshold"`` or ``"none"`` (module docstring).
        mix: ``"auto"``, ``"class"``, ``"cut"`` or ``"none"`` (module docstring).
        jitter, saturation, hue, jitter_p, blur_p, channel_shuffle_p, invert_p: the strong augmentation of mixed
            images (:class:`~domadapt.layers.strong_augment.StrongAugment`; DACS: 0.25, None, 0.25, 0.8, 0.5, 0, 0).
        augment_decisions: whether each image decides by itself if it is jittered / blurred (``"image"``) or one
            draw per iteration decides for all (``"batch"``, the released DACS / DAFormer / MIC).
        mic_weight: ``λ_m`` of the masked image consistency term (0 = off; MIC: 1).
        mic_block: block side ``b`` of the MIC masks, in pixels of the training input (MIC: 64 for segmentation,
            32 at 224 px for classification).
        mic_ratio: share ``r`` of blocks masked out (MIC: 0.7 segmentation, 0.5 classification).
        alignment: an alignment loss between the source and target outputs of the plain images (``None`` = none).
        alignment_weight: ``λ_a``.
        source_augment: also strongly augment the source images of the supervised term (not in DACS).
        augment_before_mix: augment the source and the target image each with its own draw and then mix them (each
            part keeps its own colours), instead of augmenting the mixed image (DACS).
        input_mean, input_std: the images' normalisation, undone around the colour operations; ``None`` = read from
            the DataModule's target training set at the start of training (``(0, 1)`` if it has none).
        teacher_mode: ``"eval"`` (BatchNorm running statistics copied from the student) or ``"train"`` (each target
            batch normalised with its own statistics, as DACS's released teacher; :class:`EMATeacher` ``mode``).
        eval_with: which network validation, test, prediction and export use.
        **kwargs: :class:`DomainAdaptationModule` arguments; ``adaptation_weight`` / ``adaptation_schedule`` weight
            the mixed term (DACS: 1, constant).
    """

    def __init__(self, net: nn.Module, ema_decay: float = 0.99, ema_warmup: Literal["average", "none"] = "average",
                 ema_warmup_start: int = 1, threshold: float = 0.968,
                 weighting: Weighting = "quality", mix: MixMask = "auto", jitter: float = 0.25,
                 saturation: float | None = None, hue: float = 0.25,
                 jitter_p: float = 0.8, blur_p: float = 0.5, channel_shuffle_p: float = 0.0, invert_p: float = 0.0,
                 augment_decisions: Literal["image", "batch"] = "image", mic_weight: float = 0.0, mic_block: int = 64,
                 mic_ratio: float = 0.7,
                 alignment: AlignmentLoss | None = None, alignment_weight: float = 1.0, source_augment: bool = False,
                 augment_before_mix: bool = False, input_mean: tuple[float, float, float] | None = None,
                 input_std: tuple[float, float, float] | None = None,
                 teacher_mode: Literal["eval", "train"] = "eval", eval_with: Literal["student", "teacher"] = "student",
                 **kwargs) -> None:
        for name, value, allowed in (("weighting", weighting, ("quality", "threshold", "none")),
                                     ("mix", mix, ("auto", "class", "cut", "none")),
                                     ("eval_with", eval_with, ("student", "teacher")),
                                     ("teacher_mode", teacher_mode, ("eval", "train")),
                                     ("ema_warmup", ema_warmup, ("average", "none"))):
            if value not in allowed:
                raise ValueError(f"DACS.{name}: expected one of {allowed}, got {value!r}")
        if mic_weight < 0 or mic_block < 1 or not 0.0 <= mic_ratio < 1.0:
            raise ValueError(f"DACS.mic_*: expected mic_weight >= 0, mic_block >= 1, 0 <= mic_ratio < 1; got "
                             f"{mic_weight}, {mic_block}, {mic_ratio}")
        if not 0.0 <= threshold <= 1.0:
            raise ValueError(f"DACS.threshold: expected a confidence in [0, 1], got {threshold}")
        if alignment is not None:
            check_alignment_loss(alignment, net, "DACS.alignment")
        super().__init__(net, **kwargs)
        self.alignment = alignment
        if mix == "class" and self.task != "segmentation":
            raise ValueError("DACS.mix: 'class' (ClassMix) needs label maps; a classification network takes 'cut' "
                             "or 'none'")
        self.augment = StrongAugment(jitter=jitter, saturation=saturation, hue=hue, jitter_p=jitter_p, blur_p=blur_p,
                                     channel_shuffle_p=channel_shuffle_p, invert_p=invert_p,
                                     decisions=augment_decisions)
        self.teacher = EMATeacher(net, ema_decay, warmup=ema_warmup, average_start=ema_warmup_start,
                                  mode=teacher_mode)
        self._normalisation = (tuple(input_mean), tuple(input_std)) if input_mean and input_std else None

    @classmethod
    def _hparams_ignore(cls) -> list[str]:
        return ["alignment"]

    def extra_param_groups(self) -> list[dict]:
        params = [p for p in self.alignment.parameters() if p.requires_grad] if self.alignment is not None else []
        return [{"params": params, "lr_mult": self.hparams.head_lr_mult, "name": "alignment"}] if params else []

    # ------------------------------------------------------------------ pieces
    @property
    def mix_mask(self) -> str:
        """The mask kind in use (``"auto"`` resolved by the task)."""
        if self.hparams.mix != "auto":
            return self.hparams.mix
        return "class" if self.task == "segmentation" else "cut"

    def normalisation(self) -> tuple[tuple[float, ...], tuple[float, ...]]:
        """``(mean, std)`` of the input images, in ``[0, 1]`` units."""
        if self._normalisation is None:
            dm = datamodule_of(self)
            target = getattr(dm, "target", None)
            self._normalisation = normalisation_of(target) if target is not None else ((0.0,) * 3, (1.0,) * 3)
        return self._normalisation

    def masks(self, labels_s: torch.Tensor, image_t: torch.Tensor) -> torch.Tensor:
        """``(N_t, 1, H, W)`` mixing masks, one per target image; ``labels_s`` are the labels of the source images
        pasted on them, already paired (:meth:`_pairing`: source ``i mod N_s`` on target ``i``)."""
        n, _, h, w = image_t.shape
        kind = self.mix_mask
        if kind == "none":
            return image_t.new_zeros(n, 1, h, w)
        if kind == "cut":
            return cut_mix_masks(n, h, w, image_t.device).to(image_t.dtype)
        return class_mix_masks(labels_s).to(image_t.dtype)

    @staticmethod
    def _pairing(source: torch.Tensor, n: int) -> torch.Tensor:
        return torch.arange(n, device=source.device) % source.shape[0]

    @staticmethod
    def _at_image_size(logits: torch.Tensor, image: torch.Tensor) -> torch.Tensor:
        """Segmentation logits upsampled (bilinear, ``align_corners=True``) to the image's size when they differ."""
        if logits.dim() == 4 and logits.shape[-2:] != image.shape[-2:]:
            return F.interpolate(logits, size=image.shape[-2:], mode="bilinear", align_corners=True)
        return logits

    def confidence_weight(self, confidence: torch.Tensor) -> torch.Tensor:
        """``q`` of the module docstring, ``confidence``'s shape."""
        kept = (confidence >= self.hparams.threshold).to(confidence.dtype)
        if self.hparams.weighting == "quality":
            return kept.mean().expand_as(confidence)
        if self.hparams.weighting == "threshold":
            return kept
        return torch.ones_like(confidence)

    def mixed_loss(self, logits: torch.Tensor, mask: torch.Tensor, labels_s: torch.Tensor, labels_t: torch.Tensor,
                   weight_t: torch.Tensor) -> torch.Tensor:
        """``mean_i [M_i CE(z_i, y_s,i) + (1 − M_i) q_i CE(z_i, ŷ_t,i)]`` over all pixels/samples (ignored ones add 0).

        Args:
            logits: ``(N, K)`` or ``(N, K, H, W)`` student logits on the mixed images.
            mask: ``(N, 1, H, W)`` the mixing masks.
            labels_s: ``(N)`` / ``(N, H, W)`` the paired source labels (255 = ignore).
            labels_t: ``(N)`` / ``(N, H, W)`` teacher pseudo labels.
            weight_t: ``labels_t``'s shape, ``q``.
        """
        ce_s = F.cross_entropy(logits, labels_s, ignore_index=IGNORE_INDEX, reduction="none")
        ce_t = F.cross_entropy(logits, labels_t, reduction="none")
        share = mask[:, 0] if logits.dim() == 4 else source_share(mask)
        return (share * ce_s + (1 - share) * weight_t * ce_t).mean()

    def alignment_loss(self, out_s: NetOutput, out_t: NetOutput) -> torch.Tensor:
        """The ``alignment`` loss on what it consumes (``input_kind``) of the two outputs; its extra logs logged."""
        self.alignment.set_progress(self.progress)
        value = self.alignment(select(out_s, self.alignment.input_kind), select(out_t, self.alignment.input_kind))
        for k, v in self.alignment.extra_logs().items():
            self.log_train(f"train/{k}", v)
        return value

    def source_terms(self, image: torch.Tensor, image_in: torch.Tensor, labels: torch.Tensor,
                     out: NetOutput | None = None) -> dict[str, torch.Tensor]:
        """The loss terms of the supervised source pass, each added to the loss as it is: ``{"task": CE}`` (a subclass
        may add terms read from the same pass).

        Args:
            image: ``(N, 3, H, W)`` the plain source images.
            image_in: the images the student sees (``image`` strongly augmented with ``source_augment``).
            labels: their labels.
            out: the student's output on ``image_in`` when already computed (the joint pass of ``alignment``).
        """
        out = self.net_output(image_in) if out is None else out
        return {"task": self.task_loss(out.logits, labels)}

    def masked_loss(self, image_t: torch.Tensor, labels_t: torch.Tensor, weight_t: torch.Tensor,
                    mean: tuple[float, ...], std: tuple[float, ...]) -> torch.Tensor:
        """MIC's term ``mean_i q_i CE(f(A(x_t) ⊙ K)_i, ŷ_t,i)`` (module docstring)."""
        n, _, h, w = image_t.shape
        keep = block_masks(n, h, w, self.hparams.mic_block, self.hparams.mic_ratio, image_t.device)
        masked = mask_images(self.augment(image_t, mean, std), keep)
        logits = self._at_image_size(self.net_output(masked).logits, image_t)
        return (weight_t * F.cross_entropy(logits, labels_t, reduction="none")).mean()

    # ------------------------------------------------------------------ training
    def training_step(self, batch: dict, batch_idx: int) -> torch.Tensor:
        src, tgt = batch["source"], batch["target"]
        xs, ys, xt = src["image"], self.ground_truth(src), tgt["image"]
        mean, std = self.normalisation()
        xs_in = self.augment(xs, mean, std) if self.hparams.source_augment else xs
        if self.alignment is None:
            terms = self.source_terms(xs, xs_in, ys)
        else:
            out_s, out_t = self.forward_domains(xs_in, xt)
            terms = {**self.source_terms(xs, xs_in, ys, out_s), "align": self.alignment_loss(out_s, out_t)}
        source = [v for k, v in terms.items() if k != "align"]

        teacher_logits = self._at_image_size(self.teacher(xt).logits, xt)
        confidence, labels_t = teacher_logits.float().softmax(1).max(1)
        weight_t = self.confidence_weight(confidence)

        pair = self._pairing(ys, xt.shape[0])
        ys_pair = ys[pair]
        mask = self.masks(ys_pair, xt)
        if self.hparams.augment_before_mix:
            x_mix = mix(mask, self.augment(xs[pair], mean, std), self.augment(xt, mean, std))
        else:
            x_mix = self.augment(mix(mask, xs[pair], xt), mean, std)
        logits_mix = self._at_image_size(self.net_output(x_mix).logits, xt)
        terms["mix"] = self.mixed_loss(logits_mix, mask, ys_pair, labels_t, weight_t)
        if self.hparams.mic_weight > 0:
            terms["masked"] = self.masked_loss(xt, labels_t, weight_t, mean, std)

        w = self.adaptation_coefficient()
        loss = sum(source) + w * terms["mix"]
        if "masked" in terms:
            loss = loss + self.hparams.mic_weight * terms["masked"]
        if "align" in terms:
            loss = loss + self.hparams.alignment_weight * terms["align"]
        self.check_finite(terms)
        n = xs.shape[0]
        self.log_terms({"loss": loss, **{f"loss_{k}": v for k, v in terms.items()}}, batch_size=n)
        self.log_train("train/pseudo_quality", (confidence >= self.hparams.threshold).float().mean(), batch_size=n)
        self.log_train("train/adapt_weight", w, on_epoch=False)
        return loss

    def optimizer_step(self, *args, **kwargs) -> None:
        """The optimiser step, then the teacher's EMA step — inside the iteration, so that the checkpoint Lightning
        writes at its end (before ``on_train_batch_end`` of the module) holds the updated teacher."""
        super().optimizer_step(*args, **kwargs)
        self.teacher.update(self.net)

    # ------------------------------------------------------------------ prediction
    def eval_logits(self, x: torch.Tensor) -> torch.Tensor:
        net = self.teacher.module if self.hparams.eval_with == "teacher" else self.net
        return net(x).logits


__all__ = ["DACS"]
