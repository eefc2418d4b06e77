"""DAFormer: DACS self-training with a Transformer network, rare-class sampling and thing-class ImageNet feature
distance (Hoyer et al., CVPR 2022), for segmentation.

Per batch, with :class:`~domadapt.methods.DACS`'s objective (EMA teacher ``α = 0.999``, ClassMix, confidence weight
``q`` = the share of teacher confidences ``≥ 0.968``, mixed image colour-jittered and blurred)::

    L = CE(f(x_s), y_s) + mean_i [M_i CE(f(x_m)_i, y_s,i) + (1 − M_i) q_i CE(f(x_m)_i, ŷ_t,i)] + L_FD

* ``q_i = 0`` on the top ``psweight_ignore_top`` and bottom ``psweight_ignore_bottom`` rows of the target crop
  (DAFormer's pseudo-label crop against rectification artefacts and the ego car; DAFormer@e6f6e04
  mmseg/models/uda/dacs.py:280-286; 15 and 120 at 512x512 crops of 1024x512 Cityscapes). With MIC (``mic_weight``)
  the masked term reads the same ``q`` (MIC@2f932a9 seg/mmseg/models/uda/dacs.py:387-392,430-433).
* ``L_FD`` (:class:`~domadapt.losses.feature_distance.ImageNetFeatureDistance`): ``λ_FD`` times the mean L2 distance,
  over source feature pixels of thing classes, between the student's last encoder stage and that of a frozen copy of
  the network made at construction, when the encoder still holds its ImageNet weights (DAFormer@e6f6e04
  mmseg/models/uda/dacs.py:153-189,248-253). It is on only for a network that says its encoder holds ImageNet
  weights (``net.imagenet_encoder``: DAFormerSegmenter or SmpSegmenter with ``encoder_weights: imagenet`` and no
  local ``weights`` file, DeepLabV2 with ``weights: imagenet``); otherwise the run says in one line at its start that
  FD is off.
* The teacher runs in train mode with dropout and drop-path off (``teacher_mode="train_no_dropout"``: BatchNorm of the
  decoder on each target batch's statistics; DAFormer@e6f6e04 mmseg/models/uda/dacs.py:263-270).

Rare-class sampling is the DataModule's ``source_sampling: rare_class`` (:mod:`domadapt.data.rare_class`).
``L_FD`` reads the last encoder stage of the supervised source pass (``forward_with_encoder``), as DAFormer does; a
network without that method (or ``source_augment``, where the supervised pass sees augmented images) gets a second
encoder pass over the plain source images.
"""

from __future__ import annotations

from typing import Literal

import torch
from pytorch_lightning.utilities import rank_zero_info
from torch import nn

from domadapt.losses.feature_distance import CITYSCAPES_THINGS, ImageNetFeatureDistance
from domadapt.methods.dacs import DACS, MixMask, Weighting
from domadapt.structures import NetOutput


class DAFormer(DACS):
    """DACS with DAFormer's defaults, pseudo-label margins and thing-class ImageNet feature distance (module
    docstring).

    Args:
        net: a segmentation network; ImageNet feature distance needs ``encoder_features(x)`` and
            ``imagenet_encoder = True`` (else it is off and the run says so).
        fd_weight: ``λ_FD`` (DAFormer: 0.005; 0 = off).
        fd_classes: the classes whose source pixels FD reads (DAFormer: Cityscapes' things 6, 7, 11-18; ``None`` =
            every pixel).
        fd_scale_min_ratio: share a downscaled label's majority class needs (DAFormer: 0.75).
        psweight_ignore_top, psweight_ignore_bottom: target rows at the top / bottom of the crop whose pseudo-label
            weight is 0 (DAFormer: 15 and 120 at 512x512 crops; 0 = none).
        ema_decay, threshold, weighting, mix, jitter, saturation, hue, jitter_p, blur_p: :class:`DACS`'s, with
            DAFormer's values (0.999, 0.968, quality, class, 0.2, 0.2, 0.2, 0.8, 0.5; DAFormer's
            ``color_jitter_probability=0.2`` is the probability of *not* jittering: it jitters when ``U(0, 1) > 0.2``,
            DAFormer@e6f6e04 mmseg/models/utils/dacs_transforms.py:52-56).
        ema_warmup_start: :class:`DACS`'s (DAFormer: 2, its ramp ``min(α, 1 − 1/(k + 1))`` at the update before
            iteration ``k``, DAFormer@e6f6e04 mmseg/models/uda/dacs.py:104-105,217-218).
        teacher_mode: :class:`~domadapt.pseudo.ema.EMATeacher`'s mode (DAFormer: ``"train_no_dropout"``).
        **kwargs: :class:`DACS` / :class:`~domadapt.methods.DomainAdaptationModule` arguments (MIC's ``mic_*``,
            ``optimizer="adamw"``, ``lr_warmup_iters``, ...).
    """

    def __init__(self, net: nn.Module, fd_weight: float = 0.005,
                 fd_classes: tuple[int, ...] | None = CITYSCAPES_THINGS, fd_scale_min_ratio: float = 0.75,
                 psweight_ignore_top: int = 15, psweight_ignore_bottom: int = 120, ema_decay: float = 0.999,
                 threshold: float = 0.968, weighting: Weighting = "quality", mix: MixMask = "class",
                 jitter: float = 0.2, saturation: float | None = 0.2, hue: float = 0.2, jitter_p: float = 0.8,
                 blur_p: float = 0.5, ema_warmup_start: int = 2,
                 teacher_mode: Literal["eval", "train", "train_no_dropout"] = "train_no_dropout",
                 **kwargs) -> None:
        if getattr(net, "task", None) != "segmentation":
            raise TypeError(f"DAFormer.net: expected a segmentation network, got {type(net).__name__} "
                            f"(task {getattr(net, 'task', None)!r})")
        if fd_weight < 0 or not 0.0 <= fd_scale_min_ratio <= 1.0:
            raise ValueError(f"DAFormer.fd_*: expected fd_weight >= 0 and 0 <= fd_scale_min_ratio <= 1, got "
                             f"{fd_weight} and {fd_scale_min_ratio}")
        if psweight_ignore_top < 0 or psweight_ignore_bottom < 0:
            raise ValueError(f"DAFormer.psweight_ignore_*: expected rows >= 0, got {psweight_ignore_top} and "
                             f"{psweight_ignore_bottom}")
        if teacher_mode not in ("eval", "train", "train_no_dropout"):
            raise ValueError(f"DAFormer.teacher_mode: expected 'eval', 'train' or 'train_no_dropout', got {teacher_mode!r}")
        super().__init__(net, ema_decay=ema_decay, ema_warmup_start=ema_warmup_start, threshold=threshold,
                         weighting=weighting, mix=mix, jitter=jitter,
                         saturation=saturation, hue=hue, jitter_p=jitter_p, blur_p=blur_p,
                         teacher_mode="eval" if teacher_mode == "eval" else "train", **kwargs)
        self.teacher.mode = teacher_mode
        self.feature_distance, self.fd_status = self._build_feature_distance(net, fd_weight, fd_classes,
                                                                             fd_scale_min_ratio)

    @staticmethod
    def _build_feature_distance(net: nn.Module, weight: float, classes: tuple[int, ...] | None,
                                min_ratio: float) -> tuple[ImageNetFeatureDistance | None, str]:
        """The FD term (``None`` when off) and the one line that says which."""
        name = type(net).__name__
        if weight == 0:
            return None, "DAFormer: ImageNet feature distance off (fd_weight: 0)"
        if not callable(getattr(net, "encoder_features", None)):
            return None, f"DAFormer: ImageNet feature distance off: {name} has no encoder_features(x)"
        if not getattr(net, "imagenet_encoder", False):
            return None, (f"DAFormer: ImageNet feature distance off: {name} was not built with ImageNet encoder "
                          "weights (e.g. encoder_weights: null, or a local weights file); fd_weight is ignored")
        fd = ImageNetFeatureDistance(net, classes, min_ratio, weight)
        return fd, f"DAFormer: ImageNet feature distance on (λ {weight}, classes {list(classes or []) or 'all'})"

    def on_fit_start(self) -> None:
        super().on_fit_start()
        rank_zero_info(self.fd_status)

    # ------------------------------------------------------------------ pieces
    def confidence_weight(self, confidence: torch.Tensor) -> torch.Tensor:
        """DACS's ``q``, 0 on the ignored top / bottom rows of segmentation crops."""
        q = super().confidence_weight(confidence)
        top, bottom = self.hparams.psweight_ignore_top, self.hparams.psweight_ignore_bottom
        if q.dim() != 3 or not (top or bottom):
            return q
        q = q.clone()
        q[:, :top] = 0
        if bottom:
            q[:, -bottom:] = 0
        return q

    # ------------------------------------------------------------------ training
    def source_terms(self, image: torch.Tensor, image_in: torch.Tensor, labels: torch.Tensor,
                     out: NetOutput | None = None) -> dict[str, torch.Tensor]:
        """DACS's source term and, with FD on, ``{"fd": L_FD}`` read from the last encoder stage of the same pass
        (``forward_with_encoder``), as DAFormer reuses the supervised forward's features; a second encoder pass over
        the plain images only when that pass saw other images or is already done (``source_augment``, ``alignment``)
        or the network has no ``forward_with_encoder``."""
        if self.feature_distance is None:
            return super().source_terms(image, image_in, labels, out)
        encoder = None
        one_pass = callable(getattr(self.net, "forward_with_encoder", None)) and not self.hparams.source_augment
        if out is None and one_pass:
            out, encoder = self.net.forward_with_encoder(image)
        terms = super().source_terms(image, image_in, labels, out)
        if encoder is None:
            encoder = self.net.encoder_features(image)
        return {**terms, "fd": self.feature_distance(encoder, image, labels)}


__all__ = ["DAFormer"]
