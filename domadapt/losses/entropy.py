"""Target-only losses on predictions: entropy minimisation and minimum class confusion."""

from __future__ import annotations

import math

from torch import Tensor

from domadapt.losses.base import AlignmentLoss, as_samples
from domadapt.losses.functional import entropy_from_logits, mcc


class EntropyLoss(AlignmentLoss):
    """Entropy minimisation on the target: mean Shannon entropy of ``softmax(logits_t)``.

    Grandvalet & Bengio, "Semi-supervised Learning by Entropy Minimization", NeurIPS 2004; used for
    UDA segmentation by Vu et al., "ADVENT", CVPR 2019, https://arxiv.org/abs/1811.12833.

    ``L = mean_i H(softmax(z_i^t))``, ``H(p) = -sum_c p_c log p_c`` (nats), averaged over samples
    and, for ``(N, K, H, W)`` maps, over pixels. ``normalize=True`` divides by ``log K`` so the
    value lies in ``[0, 1]``. The source argument is ignored.

    Args:
        normalize: divide by ``log K``.

    Shape:
        source: ignored; target ``(N, K)`` or ``(N, K, H, W)`` logits -> ``()``.
    """

    input_kind = "logits"
    supports = frozenset({"classification", "segmentation"})
    uses_source = False

    def __init__(self, normalize: bool = False) -> None:
        super().__init__()
        self.normalize = normalize

    def forward(self, source: Tensor | None, target: Tensor) -> Tensor:
        self.check_target(target)  # the source is not used, so it is not checked either
        ent = entropy_from_logits(target, dim=1).mean()
        return ent / math.log(target.shape[1]) if self.normalize else ent


class MinimumClassConfusionLoss(AlignmentLoss):
    """MCC: penalise confusion between classes in the target batch's predictions.

    Jin et al., "Minimum Class Confusion for Versatile Domain Adaptation", ECCV 2020,
    https://arxiv.org/abs/1912.03699.

    ``Y = softmax(Z / T)``; sample weights ``W_ii = B (1 + exp(-H(Y_i))) / sum_j (1 + exp(-H(Y_j)))``
    (no gradient); class confusion ``C = Y^T W Y`` (``K x K``); category normalisation
    ``C~_jk = C_jk / sum_j' C_j'k``; ``L = (1/K) sum_j sum_{k != j} |C~_jk|``.
    Segmentation maps ``(N, K, H, W)`` are treated as ``N*H*W`` pixel samples. Target only.

    Args:
        temperature: probability rescaling temperature ``T`` (2.5 in the paper).

    Shape:
        source: ignored; target ``(N, K)`` or ``(N, K, H, W)`` logits -> ``()``.
    """

    input_kind = "logits"
    supports = frozenset({"classification", "segmentation"})
    uses_source = False

    def __init__(self, temperature: float = 2.5) -> None:
        super().__init__()
        self.temperature = temperature

    def forward(self, source: Tensor | None, target: Tensor) -> Tensor:
        self.check_target(target)
        return mcc(as_samples(target), self.temperature)


__all__ = ["EntropyLoss", "MinimumClassConfusionLoss"]
