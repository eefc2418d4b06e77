"""`FeatureAlignment`: source CE + any :class:`~domadapt.losses.AlignmentLoss` on features, logits
or probabilities — the generic method behind DAN (MMD), Deep CORAL, entropy minimisation, MCC and
any user loss named by ``class_path``.

``L = CE(net(x_s), y_s) + w(p) * loss(select(out_s), select(out_t))`` where ``select`` picks what the
loss declares in ``input_kind`` (or ``on`` when given). Losses that carry parameters (e.g. a domain
discriminator behind a gradient-reversal layer) are trained by the same optimiser at
``lr * head_lr_mult``.
"""

from __future__ import annotations

from typing import Literal

from torch import nn

from domadapt.losses.base import AlignmentLoss
from domadapt.methods.base import DomainAdaptationModule
from domadapt.structures import NetOutput


def select(out: NetOutput, kind: str):
    """What of a :class:`NetOutput` a loss consumes (see ``AlignmentLoss.input_kind``)."""
    if kind == "features":
        return out.features
    if kind == "logits":
        return out.logits
    if kind == "probs":
        return out.logits.softmax(1)
    if kind == "features+logits":
        return out.features, out.logits
    raise ValueError(f"input kind {kind!r} cannot be fed from one network output; expected features, logits, "
                     "probs or features+logits")


def check_alignment_loss(loss: AlignmentLoss, net: nn.Module, where: str) -> None:
    """Refuse (``TypeError`` naming ``where``) what is not an :class:`AlignmentLoss`, a loss that needs alternating
    optimiser steps, or one that does not support the network's task."""
    if not isinstance(loss, AlignmentLoss):
        raise TypeError(f"{where}: got {type(loss).__name__}; expected a subclass of domadapt.losses.AlignmentLoss")
    if loss.alternating:
        raise TypeError(f"{where}: {type(loss).__name__} needs alternating optimiser steps; use its dedicated method "
                        "(MCD, OutputSpaceAdversarial, AdvEnt)")
    task = getattr(net, "task", None)
    if task is not None and task not in loss.supports:
        raise TypeError(f"{where}: {type(loss).__name__} supports {sorted(loss.supports)} inputs but the network's "
                        f"task is {task!r}")


class FeatureAlignment(DomainAdaptationModule):
    """Source cross-entropy plus an alignment loss between the two domains' outputs.

    Args:
        net: network returning ``NetOutput(logits, features)``.
        loss: the alignment loss (any ``AlignmentLoss`` subclass, including a user's own).
        on: override what the loss receives (default: ``loss.input_kind``).
        **kwargs: :class:`DomainAdaptationModule` arguments (lr, schedules, adaptation_weight, …).
    """

    def __init__(self, net: nn.Module, loss: AlignmentLoss,
                 on: Literal["features", "logits", "probs", "features+logits"] | None = None, **kwargs) -> None:
        check_alignment_loss(loss, net, f"{type(self).__name__}.loss")
        super().__init__(net, **kwargs)
        self.loss = loss
        self.on = on or loss.input_kind

    @classmethod
    def _hparams_ignore(cls) -> list[str]:
        return ["loss"]

    def adaptation_loss(self, out_s: NetOutput, out_t: NetOutput, batch: dict):
        self.loss.set_progress(self.progress)
        value = self.loss(select(out_s, self.on), select(out_t, self.on))
        for k, v in self.loss.extra_logs().items():
            self.log_train(f"train/{k}", v)
        return value

    def extra_param_groups(self) -> list[dict]:
        params = [p for p in self.loss.parameters() if p.requires_grad]
        return [{"params": params, "lr_mult": self.hparams.head_lr_mult, "name": "alignment"}] if params else []
