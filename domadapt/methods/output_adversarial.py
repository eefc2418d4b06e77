"""Output-space adversarial adaptation for segmentation (AdaptSegNet, Tsai et al. CVPR 2018; the
segmentation stage of BDL, Li et al. CVPR 2019 — METHODS.md §1.3(a)).

Manual optimisation, two optimisers, BDL/AdaptSegNet label convention (source = 0, target = 1):

* G-step (discriminator frozen): ``CE(M(x_s), y_s) + λ_adv · BCE(D(softmax(M(x_t))), 0)``
  (+ ``CE(M(x_t), ŷ_t)`` on pseudo labels when the batch carries them);
* D-step (inputs detached): ``½ BCE(D(softmax(p_s)), 0) + ½ BCE(D(softmax(p_t)), 1)``.

``λ_adv`` is ``adaptation_weight`` (1e-3 for DeepLabV2-ResNet-101 in the papers). The discriminator
uses Adam (``discriminator_lr``, betas 0.9/0.99) with the same schedule as the segmentation net.
Lightning counts both optimiser steps: ``trainer.max_steps`` = 2 × iterations.

**Multi-level** (a network with ``multi_level`` and ``forward_levels``, e.g. ``DeepLabV2(multi_level=True)``):
as the released AdaptSegNet (``train_gta2cityscapes_multi.py``) and ADVENT (``MULTI_LEVEL``) code, the
auxiliary output (ASPP on layer3) adds ``λ_seg · CE(aux_s, y_s) + λ_aux · BCE(D_aux(aux_t), 0)`` to the G-step
(``aux_weight`` λ_seg = 0.1, ``aux_adaptation_weight`` λ_aux = 2e-4, on the same schedule as λ_adv) and its
own discriminator ``D_aux`` (a fresh copy of ``loss``) to the D-step. Evaluation uses the main output only, as
both codes do.
"""

from __future__ import annotations

import copy

import torch
from torch import nn

from domadapt import schedules
from domadapt.losses.base import AlignmentLoss
from domadapt.losses.output_space import OutputSpaceAdversarialLoss
from domadapt.losses.pseudo_label import pseudo_label_cross_entropy
from domadapt.methods.base import DomainAdaptationModule
from domadapt.structures import IGNORE_INDEX, NetOutput


class OutputSpaceAdversarial(DomainAdaptationModule):
    """Segmentation adaptation with a discriminator on the output (softmax) space.

    Args:
        net: segmentation network (``task == "segmentation"``).
        loss: the adversarial loss (default: ``OutputSpaceAdversarialLoss(net.num_classes)``); any
            loss with ``forward`` (generator term) and ``discriminator_loss``.
        discriminator_lr: Adam learning rate of the discriminator.
        discriminator_betas: Adam betas of the discriminator.
        pseudo_label_weight: weight of the target cross-entropy on pseudo labels (batches whose target
            carries a ``mask``; 255 = ignore).
        aux_weight: multi-level networks: weight λ_seg of the auxiliary output's source cross-entropy.
        aux_adaptation_weight: multi-level networks: λ_aux of the auxiliary adversarial term.
        **kwargs: :class:`DomainAdaptationModule` arguments (``adaptation_weight`` = λ_adv, default 1e-3).
    """

    optimizer_steps_per_batch = 2
    supports_multi_level = True

    def __init__(self, net: nn.Module, loss: AlignmentLoss | None = None, discriminator_lr: float = 1e-4,
                 discriminator_betas: tuple[float, float] = (0.9, 0.99), pseudo_label_weight: float = 1.0,
                 aux_weight: float = 0.1, aux_adaptation_weight: float = 2e-4, **kwargs) -> None:
        if getattr(net, "task", None) != "segmentation":
            raise TypeError(f"{type(self).__name__}.net: expected a segmentation network, got task "
                            f"{getattr(net, 'task', None)!r}")
        kwargs.setdefault("adaptation_weight", 1e-3)
        loss = loss if loss is not None else self.default_loss(net.num_classes)
        if not hasattr(loss, "discriminator_loss"):
            raise TypeError(f"{type(self).__name__}.loss: {type(loss).__name__} has no discriminator_loss(); "
                            "expected an output-space adversarial loss")
        super().__init__(net, **kwargs)
        self.automatic_optimization = False
        self.loss = loss
        self.multi_level = bool(getattr(net, "multi_level", False))
        self.aux_loss = _fresh_copy(loss) if self.multi_level else None  # D_aux, initialised on its own

    @staticmethod
    def default_loss(num_classes: int) -> AlignmentLoss:
        return OutputSpaceAdversarialLoss(num_classes)

    @classmethod
    def _hparams_ignore(cls) -> list[str]:
        return ["loss"]

    def aux_adaptation_coefficient(self) -> float:
        """λ_aux on the schedule of λ_adv."""
        return self.hparams.aux_adaptation_weight * schedules.get_schedule(self.hparams.adaptation_schedule)(self.progress)

    def forward_levels(self, xs: torch.Tensor, xt: torch.Tensor) -> list[tuple[NetOutput, NetOutput]]:
        """``[(main_s, main_t)]``, plus ``(aux_s, aux_t)`` for a multi-level network (one forward over both
        domains when shapes allow, as :meth:`forward_domains`)."""
        if not self.multi_level:
            return [self.forward_domains(xs, xt)]
        if xs.shape[1:] != xt.shape[1:]:
            return list(zip(self.net.forward_levels(xs), self.net.forward_levels(xt)))
        n = xs.shape[0]
        return [(NetOutput(o.logits[:n], o.features[:n]), NetOutput(o.logits[n:], o.features[n:]))
                for o in self.net.forward_levels(torch.cat([xs, xt]))]

    def configure_optimizers(self):
        d_params = [p for m in (self.loss, self.aux_loss) if m is not None for p in m.parameters() if p.requires_grad]
        opt_d = torch.optim.Adam(d_params, lr=self.hparams.discriminator_lr, betas=tuple(self.hparams.discriminator_betas))
        return [self.scheduled(self.build_optimizer(self.param_groups())), self.scheduled(opt_d)]

    def training_step(self, batch: dict, batch_idx: int) -> None:
        opt_g, opt_d = self.optimizers()
        src, tgt = batch["source"], batch["target"]
        (out_s, out_t), *aux = self.forward_levels(src["image"], tgt["image"])
        terms = {"task": self.task_loss(out_s.logits, self.ground_truth(src)),
                 "adapt": self.loss(out_s.logits, out_t.logits)}
        w = self.adaptation_coefficient()
        loss = terms["task"] + w * terms["adapt"]
        if aux:
            (aux_s, aux_t), = aux
            terms["task_aux"] = self.task_loss(aux_s.logits, self.ground_truth(src))
            terms["adapt_aux"] = self.aux_loss(aux_s.logits, aux_t.logits)
            loss = loss + self.hparams.aux_weight * terms["task_aux"] + self.aux_adaptation_coefficient() * terms["adapt_aux"]
        if "mask" in tgt and (tgt["mask"] != IGNORE_INDEX).any():
            terms["pseudo"] = pseudo_label_cross_entropy(out_t.logits, tgt["mask"], IGNORE_INDEX)
            loss = loss + self.hparams.pseudo_label_weight * terms["pseudo"]
        self.check_finite(terms)
        opt_g.zero_grad()
        self.manual_backward(loss)
        opt_g.step()

        loss_d = self.loss.discriminator_loss(out_s.logits.detach(), out_t.logits.detach())
        if aux:  # D_aux on the auxiliary outputs; one Adam over both discriminators = one Adam each
            loss_d = loss_d + self.aux_loss.discriminator_loss(aux_s.logits.detach(), aux_t.logits.detach())
        self.check_finite({"discriminator": loss_d})
        opt_d.zero_grad()
        self.manual_backward(loss_d)
        opt_d.step()
        self.step_schedulers()
        logs = {"loss": loss.detach(), **{f"loss_{k}": v for k, v in terms.items()}, "loss_discriminator": loss_d}
        self.log_terms(logs, batch_size=src["image"].shape[0])
        for k, v in self.loss.extra_logs().items():
            self.log_train(f"train/{k}", v)


def _fresh_copy(loss: AlignmentLoss) -> AlignmentLoss:
    """A copy of ``loss`` whose parameters are initialised anew (a second, independent discriminator)."""
    aux = copy.deepcopy(loss)
    for m in aux.modules():
        if m is not aux and callable(getattr(m, "reset_parameters", None)):
            m.reset_parameters()
    return aux
