"""CDSSL-style self-training — *our interpretation* of Yu et al., "Unsupervised Domain Adaptation for Object
Detection via Cross-Domain Semi-Supervised Learning" (arXiv 1911.07158).

The paper targets detection and its body was not available to us; METHODS.md §4.3 defines what
domadapt implements from its three named components, for classification and segmentation:

1. *fine-grained domain transfer* — data side: :class:`~domadapt.data.self_training.SelfTrainingDataModule`
   restyles every source image with a paired target image (FDA / histogram matching / a BDL generator);
   this module simply trains on every source-domain sample of the batch, original or restyled;
2. *progressive-confidence label sharpening* — pseudo labels come from rounds of
   ``pseudo_label`` pipeline stages whose threshold starts strict and relaxes
   (:class:`~domadapt.pseudo.thresholds.ProgressiveThreshold`), optionally from an EMA teacher, and
   the target loss can use soft targets sharpened with a temperature (:func:`~domadapt.pseudo.sharpen.sharpen`);
3. *imbalanced sampling* — data side: :class:`~domadapt.data.samplers.MixedDomainSampler`.

Objective per batch (automatic optimisation)::

    L = CE(f(x_s), y_s) + w(p) · L_pl(x_t)

over the source samples of the batch (originals and restyled copies) and the target samples that
carry pseudo labels ``ŷ_t`` (255 = not kept); ``w(p)`` is ``adaptation_weight`` × ``adaptation_schedule``.

* ``pseudo_targets="hard"``: ``L_pl = CE(f(x_t), ŷ_t)`` over kept samples/pixels;
* ``"soft"`` / ``"sharpened"``: ``L_pl = mean_kept −Σ_c q_c log softmax(f(x_t))_c`` with
  ``q = sharpen(softmax(g(x_t)), T)`` (``T = 1`` for ``"soft"``), ``g`` the EMA teacher if there is one,
  else the student itself without gradient. The stored label decides *which* samples count (the
  confidence threshold), the labeller's distribution *what* they are pulled towards.

Both means divide by ``max(#kept, 1)``, so a batch without kept targets adds 0 (never NaN), and no
branch depends on the data (DDP ranks run the same graph). With an EMA teacher
(``ema_decay``), the teacher is updated after every optimiser step and, by default, labels the next
round (:meth:`pseudo_label_probabilities`, used by :func:`~domadapt.pseudo.generate.generate_pseudo_labels`).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Literal

import torch
from torch import nn

from domadapt.losses.pseudo_label import pseudo_label_cross_entropy, soft_pseudo_label_cross_entropy
from domadapt.methods.base import DomainAdaptationModule
from domadapt.pseudo.ema import EMATeacher
from domadapt.pseudo.sharpen import sharpen
from domadapt.structures import IGNORE_INDEX


class CDSSL(DomainAdaptationModule):
    """Self-training on source (+ style-transferred source) and pseudo-labelled target (our CDSSL reading).

    Args:
        net: the network (classification or segmentation).
        pseudo_targets: ``"hard"`` stored labels, ``"soft"`` labeller probabilities, or ``"sharpened"``
            labeller probabilities sharpened with ``temperature``.
        temperature: ``T > 0`` of ``"sharpened"`` targets.
        ema_decay: decay of an EMA teacher (e.g. 0.999); ``None`` = no teacher.
        ema_warmup: mean-teacher ramp ``min(d, (1 + n) / (10 + n))`` of the decay.
        label_with: which network labels the target in the next ``pseudo_label`` stage (``"teacher"``
            falls back to the student when there is no teacher).
        eval_with: which network validation, test and prediction use.
        **kwargs: :class:`DomainAdaptationModule` arguments; ``adaptation_weight`` (default 1) and
            ``adaptation_schedule`` weight the pseudo-label term.
    """

    def __init__(self, net: nn.Module, pseudo_targets: Literal["hard", "soft", "sharpened"] = "hard",
                 temperature: float = 0.5, ema_decay: float | None = None, ema_warmup: bool = False,
                 label_with: Literal["student", "teacher"] = "teacher",
                 eval_with: Literal["student", "teacher"] = "student", **kwargs) -> None:
        if pseudo_targets not in ("hard", "soft", "sharpened"):
            raise ValueError(f"CDSSL.pseudo_targets: expected 'hard', 'soft' or 'sharpened', got {pseudo_targets!r}")
        if not temperature > 0:
            raise ValueError(f"CDSSL.temperature: expected T > 0, got {temperature}")
        for name, value in (("label_with", label_with), ("eval_with", eval_with)):
            if value not in ("student", "teacher"):
                raise ValueError(f"CDSSL.{name}: expected 'student' or 'teacher', got {value!r}")
        super().__init__(net, **kwargs)
        self.teacher = EMATeacher(net, ema_decay, warmup=ema_warmup) if ema_decay is not None else None
        self._predict_with: str | None = None  # set while pseudo labels are generated

    # ------------------------------------------------------------------ training
    def pseudo_label_loss(self, logits_t: torch.Tensor, image_t: torch.Tensor, labels_t: torch.Tensor) -> torch.Tensor:
        """``L_pl`` of the module docstring for one target batch."""
        if self.hparams.pseudo_targets == "hard":
            return pseudo_label_cross_entropy(logits_t, labels_t, IGNORE_INDEX)
        with torch.no_grad():
            ref = self.teacher(image_t).logits if self.teacher is not None else logits_t.detach()
            t = self.hparams.temperature if self.hparams.pseudo_targets == "sharpened" else 1.0
            q = sharpen(ref.float().softmax(1), t)
        return soft_pseudo_label_cross_entropy(logits_t, q.to(logits_t.dtype), labels_t != IGNORE_INDEX)

    def training_step(self, batch: dict, batch_idx: int) -> torch.Tensor:
        src, tgt = batch.get("source"), batch.get("target")
        labelled_t = tgt is not None and ("label" in tgt or "mask" in tgt)  # pseudo labels (never ground truth)
        if src is not None and labelled_t:
            out_s, out_t = self.forward_domains(src["image"], tgt["image"])
        else:
            out_s = self.net_output(src["image"]) if src is not None else None
            out_t = self.net_output(tgt["image"]) if labelled_t else None
        terms: dict[str, torch.Tensor] = {}
        loss = None
        if out_s is not None:
            terms["task"] = loss = self.task_loss(out_s.logits, self.ground_truth(src))
        if out_t is not None:
            labels_t = self.ground_truth(tgt)
            terms["pseudo"] = self.pseudo_label_loss(out_t.logits, tgt["image"], labels_t)
            w = self.adaptation_coefficient()
            loss = w * terms["pseudo"] if loss is None else loss + w * terms["pseudo"]
            self.log_train("train/pseudo_kept", (labels_t != IGNORE_INDEX).float().mean(), batch_size=labels_t.shape[0])
            self.log_train("train/adapt_weight", w, on_epoch=False)
        if loss is None:
            raise ValueError("CDSSL.training_step: the batch has neither source samples nor pseudo-labelled target "
                             "samples; expected batch['source'] and/or a target with `label`/`mask`")
        self.check_finite(terms)
        n_s = src["image"].shape[0] if src is not None else 0
        n_t = tgt["image"].shape[0] if tgt is not None else 0
        self.log_terms({"loss": loss, **{f"loss_{k}": v for k, v in terms.items()}}, batch_size=max(n_s + n_t, 1))
        self.log_train("train/target_share", n_t / max(n_s + n_t, 1), batch_size=n_s + n_t, on_step=False)
        return loss

    def optimizer_step(self, *args, **kwargs) -> None:
        """The optimiser step, then the teacher's EMA step — inside the iteration, so that the checkpoint Lightning
        writes at its end (callbacks' ``on_train_batch_end`` run before the module's) holds the updated teacher."""
        super().optimizer_step(*args, **kwargs)
        if self.teacher is not None:
            self.teacher.update(self.net)

    def load_state_dict(self, state_dict, strict: bool = True, assign: bool = False):
        """Also load weights of a model without a teacher (e.g. source-only: the teacher starts as a copy of
        the loaded student) and a checkpoint with a teacher into a model without one (its weights dropped)."""
        has_teacher = any(k.startswith("teacher.") for k in state_dict)
        if self.teacher is None and has_teacher:
            state_dict = {k: v for k, v in state_dict.items() if not k.startswith("teacher.")}
        if self.teacher is None or has_teacher:
            return super().load_state_dict(state_dict, strict=strict, assign=assign)
        result = super().load_state_dict(state_dict, strict=False, assign=assign)
        missing = [k for k in result.missing_keys if not k.startswith("teacher.")]
        if strict and (missing or result.unexpected_keys):
            raise RuntimeError(f"CDSSL.load_state_dict: missing keys {missing[:3]}, unexpected keys "
                               f"{result.unexpected_keys[:3]}")
        self.teacher.module.load_state_dict(self.net.state_dict())
        self.teacher.num_updates.zero_()
        return result

    # ------------------------------------------------------------------ prediction
    def eval_logits(self, x: torch.Tensor) -> torch.Tensor:
        which = self._predict_with or self.hparams.eval_with
        net = self.teacher.module if which == "teacher" and self.teacher is not None else self.net
        return net(x).logits

    @contextlib.contextmanager
    def predicting_with(self, which: Literal["student", "teacher"]) -> Iterator[None]:
        """Make :meth:`predict_probabilities` use ``which`` network inside the block."""
        old, self._predict_with = self._predict_with, which
        try:
            yield
        finally:
            self._predict_with = old

    def pseudo_label_probabilities(self, image: torch.Tensor, output_size: tuple[int, int] | None = None
                                   ) -> torch.Tensor:
        """Probabilities of the labeller (``label_with``) for pseudo-label generation; see
        :meth:`predict_probabilities`."""
        with self.predicting_with(self.hparams.label_with):
            return self.predict_probabilities(image, output_size)
