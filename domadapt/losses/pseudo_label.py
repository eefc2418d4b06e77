"""The target pseudo-label term of self-training: cross-entropy over the kept pseudo labels.

Used by CDSSL (hard and soft targets), the self-training rounds of
:class:`~domadapt.methods.output_adversarial.OutputSpaceAdversarial` (BDL) and DRT's ``pseudo_label_weight`` hook.
Both functions divide by ``max(#kept, 1)``: a batch with no kept sample or pixel gives 0, not NaN, and the value
needs no branch on the data (DDP ranks run the same graph).
"""

from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor


def pseudo_label_cross_entropy(logits: Tensor, labels: Tensor, ignore_index: int = 255) -> Tensor:
    """``L = Σ_{i: ŷ_i ≠ ignore} −log softmax(z_i)_{ŷ_i} / max(#{i: ŷ_i ≠ ignore}, 1)``.

    ``i`` runs over samples (classification) or pixels (segmentation). With at least one kept label this is
    ``F.cross_entropy(logits, labels, ignore_index=ignore_index)`` to the last bit.

    Args:
        logits: ``(N, K)`` or ``(N, K, H, W)`` class scores.
        labels: ``(N)`` or ``(N, H, W)`` int64 hard pseudo labels; ``ignore_index`` (255) = not kept.
        ignore_index: the label of samples/pixels left out.

    Returns:
        ``()`` the mean cross-entropy over kept labels, 0 when none is kept.
    """
    total = F.cross_entropy(logits, labels, ignore_index=ignore_index, reduction="sum")
    return total / (labels != ignore_index).sum().clamp_min(1)


def soft_pseudo_label_cross_entropy(logits: Tensor, targets: Tensor, keep: Tensor) -> Tensor:
    """``L = Σ_{i kept} −Σ_c q_ic log softmax(z_i)_c / max(#kept, 1)``: soft targets ``q`` on the kept samples.

    Args:
        logits: ``(N, K)`` or ``(N, K, H, W)`` class scores ``z``.
        targets: ``logits``' shape, class distributions ``q`` (summing to 1 over ``K``).
        keep: ``(N)`` or ``(N, H, W)`` bool, the samples/pixels that count.

    Returns:
        ``()`` the mean soft cross-entropy over kept samples, 0 when none is kept.
    """
    per = -(targets * F.log_softmax(logits, 1)).sum(1)  # (N[, H, W])
    return (per * keep).sum() / keep.sum().clamp_min(1)


__all__ = ["pseudo_label_cross_entropy", "soft_pseudo_label_cross_entropy"]
