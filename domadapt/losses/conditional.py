"""Conditional domain-adversarial training (CDAN, CDAN+E)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from domadapt.layers.discriminators import MLPDiscriminator
from domadapt.layers.grl import CoeffSchedule
from domadapt.losses.adversarial import _ReversedDomainClassifier
from domadapt.losses.base import unpack_pair
from domadapt.losses.functional import entropy_weights, multilinear_map, randomized_multilinear_map

RANDOMIZE_ABOVE = 4096
"""``randomized=None`` switches to the randomized map when ``D * K`` exceeds this (CDAN paper)."""


class ConditionalAdversarialLoss(_ReversedDomainClassifier):
    """CDAN: the domain discriminator sees features conditioned on the classifier's predictions.

    Long et al., "Conditional Adversarial Domain Adaptation", NeurIPS 2018,
    https://arxiv.org/abs/1705.10667.

    With ``g = softmax(logits)`` (detached, as in the authors' code) the discriminator input is the
    multilinear map ``h = f ⊗ g`` flattened to ``D*K`` or, for large ``D*K``, the randomized map
    ``h = (R_f f) ⊙ (R_g g) / sqrt(d)`` with fixed Gaussian ``R_f (D, d)``, ``R_g (K, d)``
    (saved as buffers). Then, as in DANN (label convention **source = 1, target = 0**, gradient
    reversal with the same ``lambda(p)`` schedule),
    ``L = 0.5 sum_i w_i BCE(D(R(h_i^s)), 1) + 0.5 sum_j w_j BCE(D(R(h_j^t)), 0)``
    with ``w`` uniform (CDAN) or, with ``entropy_conditioning`` (CDAN+E),
    ``w_i ∝ 1 + exp(-H(g_i))`` normalised to sum 1 within each domain (weights carry no gradient).

    **Call shape**: ``loss((features_s, logits_s), (features_t, logits_t))`` -- each domain is a
    tuple, so ``input_kind = "features+logits"``.

    Args:
        in_features: feature width ``D``.
        num_classes: number of classes ``K``.
        hidden: discriminator hidden width.
        dropout: discriminator dropout.
        batch_norm: BatchNorm1d in the discriminator instead of dropout (:class:`MLPDiscriminator`).
        randomized: use the randomized map; ``None`` = only when ``D * K > 4096``.
        randomized_dim: output width ``d`` of the randomized map.
        entropy_conditioning: CDAN+E sample weights.
        max_coeff: GRL coefficient at the end of the schedule.
        gamma: steepness of the ``"dann"`` schedule.
        min_coeff: GRL coefficient at ``p = 0``.
        coeff_schedule: ``"dann"``, ``"linear"`` or ``"constant"``.

    Shape:
        source ``((N, D), (N, K))``, target ``((M, D), (M, K))`` -> ``()``.
    """

    input_kind = "features+logits"
    supports = frozenset({"classification"})

    def __init__(
        self,
        in_features: int,
        num_classes: int,
        hidden: int = 1024,
        dropout: float = 0.5,
        batch_norm: bool = False,
        randomized: bool | None = None,
        randomized_dim: int = 1024,
        entropy_conditioning: bool = False,
        max_coeff: float = 1.0,
        gamma: float = 10.0,
        min_coeff: float = 0.0,
        coeff_schedule: CoeffSchedule = "dann",
    ) -> None:
        super().__init__(max_coeff, gamma, min_coeff, coeff_schedule)
        self.in_features, self.num_classes = in_features, num_classes
        self.randomized = in_features * num_classes > RANDOMIZE_ABOVE if randomized is None else randomized
        self.entropy_conditioning = entropy_conditioning
        if self.randomized:
            self.register_buffer("rf", torch.randn(in_features, randomized_dim))
            self.register_buffer("rg", torch.randn(num_classes, randomized_dim))
        width = randomized_dim if self.randomized else in_features * num_classes
        self.discriminator = MLPDiscriminator(width, hidden, dropout, batch_norm)

    def forward(self, source: tuple[Tensor, Tensor], target: tuple[Tensor, Tensor]) -> Tensor:
        f_s, z_s = unpack_pair(self, "source", source, ("features", "logits"))
        f_t, z_t = unpack_pair(self, "target", target, ("features", "logits"))
        self.check_inputs(f_s, f_t, what="features")
        self.check_inputs(z_s, z_t, what="classes")
        if f_s.shape[1] != self.in_features:
            raise ValueError(
                f"ConditionalAdversarialLoss: inputs have {f_s.shape[1]} features; "
                f"expected in_features={self.in_features}"
            )
        if z_s.shape[1] != self.num_classes:
            raise ValueError(
                f"ConditionalAdversarialLoss: inputs have {z_s.shape[1]} classes; "
                f"expected num_classes={self.num_classes}"
            )
        f = torch.cat([f_s, f_t])  # (N+M, D)
        g = F.softmax(torch.cat([z_s, z_t]), dim=1).detach()  # (N+M, K)
        h = randomized_multilinear_map(f, g, self.rf, self.rg) if self.randomized else multilinear_map(f, g)
        weights = entropy_weights(g) if self.entropy_conditioning else None
        return self._domain_loss(h, f_s.shape[0], weights)


__all__ = ["ConditionalAdversarialLoss"]
