"""Domain-adversarial training (DANN) through a gradient-reversal layer."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from domadapt.layers.discriminators import MLPDiscriminator
from domadapt.layers.grl import CoeffSchedule, GradientReversal, grl_coefficient
from domadapt.losses.base import AlignmentLoss, global_pool


class _ReversedDomainClassifier(AlignmentLoss):
    """Shared machinery of single-step adversarial losses: GRL schedule, domain BCE, accuracy.

    Label convention: **source = 1, target = 0** (the discriminator's logit is "source-ness").
    The discriminator minimises the BCE; the reversed gradient makes the feature extractor
    maximise it, so one optimiser step trains both sides. Subclasses set ``self.discriminator``
    (``(N, W) -> (N,)`` logits) and call :meth:`_domain_loss`.
    """

    def __init__(
        self,
        max_coeff: float = 1.0,
        gamma: float = 10.0,
        min_coeff: float = 0.0,
        coeff_schedule: CoeffSchedule = "dann",
    ) -> None:
        super().__init__()
        self.max_coeff, self.gamma, self.min_coeff = max_coeff, gamma, min_coeff
        self.coeff_schedule = coeff_schedule
        self.grl = GradientReversal(grl_coefficient(0.0, max_coeff, gamma, min_coeff, coeff_schedule))
        self._progress = 0.0
        self._accuracy = torch.tensor(float("nan"))

    @property
    def coeff(self) -> float:
        """Current reversal coefficient ``lambda(p)`` (see :func:`~domadapt.layers.grl_coefficient`)."""
        return grl_coefficient(self._progress, self.max_coeff, self.gamma, self.min_coeff, self.coeff_schedule)

    def set_progress(self, p: float) -> None:
        """Set training progress ``p`` in ``[0, 1]``; the GRL coefficient is a pure function of it."""
        self._progress = float(p)

    def extra_logs(self) -> dict[str, Tensor]:
        """``discriminator_accuracy`` of the last batch (0.5 = domains indistinguishable) and ``grl_coeff``."""
        return {"discriminator_accuracy": self._accuracy, "grl_coeff": torch.tensor(self.coeff)}

    def _domain_loss(self, h: Tensor, n_source: int, weights: Tensor | None = None) -> Tensor:
        """BCE of the discriminator on ``GRL(h)``; ``h`` stacks ``n_source`` source rows then target rows.

        Each domain contributes half: ``0.5 * sum_i w_i BCE(d_i, 1) + 0.5 * sum_j w_j BCE(d_j, 0)``
        with weights normalised to sum 1 within each domain (uniform if ``weights`` is None).
        """
        self.grl.coeff = self.coeff
        logits = self.discriminator(self.grl(h))  # (Ns + Nt,)
        labels = torch.zeros_like(logits)
        labels[:n_source] = 1.0
        bce = F.binary_cross_entropy_with_logits(logits, labels, reduction="none")
        if weights is None:
            weights = torch.ones_like(bce)
        w_s, w_t = weights[:n_source], weights[n_source:]
        loss = 0.5 * (bce[:n_source] * w_s).sum() / w_s.sum() + 0.5 * (bce[n_source:] * w_t).sum() / w_t.sum()
        with torch.no_grad():
            self._accuracy = ((logits > 0).float() == labels).float().mean()
        return loss


class DomainAdversarialLoss(_ReversedDomainClassifier):
    """DANN: a domain classifier behind a gradient-reversal layer.

    Ganin & Lempitsky, "Unsupervised Domain Adaptation by Backpropagation", ICML 2015,
    https://arxiv.org/abs/1409.7495 (and Ganin et al., JMLR 2016).

    ``L = 0.5 mean_i BCE(D(R(f_i^s)), 1) + 0.5 mean_j BCE(D(R(f_j^t)), 0)`` where ``R`` is the
    identity forward and multiplies gradients by ``-lambda(p)``; ``D`` minimises ``L`` and the
    feature extractor, through ``R``, maximises it. Label convention: **source = 1, target = 0**.
    ``lambda(p) = min_coeff + (max_coeff - min_coeff)(2 / (1 + exp(-gamma p)) - 1)`` by default,
    from :meth:`set_progress` (0 until it is called, unless ``min_coeff > 0``).

    Segmentation feature maps ``(N, D, H, W)`` are globally average-pooled to ``(N, D)`` first
    (image-level alignment).

    Args:
        in_features: feature width ``D``.
        hidden: discriminator hidden width.
        dropout: discriminator dropout.
        batch_norm: BatchNorm1d in the discriminator instead of dropout (:class:`MLPDiscriminator`).
        max_coeff: GRL coefficient at the end of the schedule.
        gamma: steepness of the ``"dann"`` schedule.
        min_coeff: GRL coefficient at ``p = 0`` (> 0 helps short runs).
        coeff_schedule: ``"dann"``, ``"linear"`` or ``"constant"`` (see ``grl_coefficient``).

    Shape:
        source ``(N, D)`` or ``(N, D, H, W)``, target ``(M, D)`` or ``(M, D, H', W')`` -> ``()``.
    """

    input_kind = "features"
    supports = frozenset({"classification", "segmentation"})

    def __init__(
        self,
        in_features: int,
        hidden: int = 1024,
        dropout: float = 0.5,
        batch_norm: bool = False,
        max_coeff: float = 1.0,
        gamma: float = 10.0,
        min_coeff: float = 0.0,
        coeff_schedule: CoeffSchedule = "dann",
    ) -> None:
        super().__init__(max_coeff, gamma, min_coeff, coeff_schedule)
        self.in_features = in_features
        self.discriminator = MLPDiscriminator(in_features, hidden, dropout, batch_norm)

    def forward(self, source: Tensor, target: Tensor) -> Tensor:
        self.check_inputs(source, target)
        f_s, f_t = global_pool(source), global_pool(target)  # (N, D), (M, D)
        if f_s.shape[1] != self.in_features:
            raise ValueError(
                f"DomainAdversarialLoss: inputs have {f_s.shape[1]} features; expected in_features={self.in_features}"
            )
        return self._domain_loss(torch.cat([f_s, f_t]), f_s.shape[0])


__all__ = ["DomainAdversarialLoss"]
