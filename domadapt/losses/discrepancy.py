"""Maximum classifier discrepancy (MCD)."""

from __future__ import annotations

from torch import Tensor

from domadapt.losses.base import AlignmentLoss, unpack_pair
from domadapt.losses.functional import l1_discrepancy


class ClassifierDiscrepancyLoss(AlignmentLoss):
    """MCD: L1 distance between two classifiers' target predictions.

    Saito et al., "Maximum Classifier Discrepancy for Unsupervised Domain Adaptation", CVPR 2018,
    https://arxiv.org/abs/1712.02560.

    ``L = mean_{i,k} |softmax(z1_i^t)_k - softmax(z2_i^t)_k|`` (also over pixels for maps).

    **Call shape**: ``loss((logits_c1_s, logits_c2_s), (logits_c1_t, logits_c2_t))``: each domain
    is a tuple of the two classifiers' logits (``input_kind = "logits+logits"``); the discrepancy
    is computed on the **target** only, the source tuple is checked for shape but not used.

    ``alternating = True``: MCD steps separate optimisers -- (A) generator + classifiers on source
    cross-entropy, (B) classifiers alone on source CE **minus** this loss (maximise the
    discrepancy), (C) generator alone on this loss (minimise it). DRT's single-step variant puts a
    gradient-reversal layer between generator and classifiers instead (METHODS.md §3.3).

    Shape:
        source / target tuples of ``(N, K)`` or ``(N, K, H, W)`` logits -> ``()``.
    """

    input_kind = "logits+logits"
    supports = frozenset({"classification", "segmentation"})
    alternating = True
    uses_source = False

    def forward(self, source: tuple[Tensor, Tensor], target: tuple[Tensor, Tensor]) -> Tensor:
        s1, s2 = unpack_pair(self, "source", source, ("logits_c1", "logits_c2"))
        t1, t2 = unpack_pair(self, "target", target, ("logits_c1", "logits_c2"))
        self.check_inputs(s1, t1)  # ranks, dtypes and class counts agree across domains
        for role, a, b in (("source", s1, s2), ("target", t1, t2)):
            if a.shape != b.shape:
                raise ValueError(
                    f"ClassifierDiscrepancyLoss: {role} logits_c1 has shape {tuple(a.shape)} but logits_c2 has "
                    f"{tuple(b.shape)}; expected the same shape"
                )
        return l1_discrepancy(t1, t2)


__all__ = ["ClassifierDiscrepancyLoss"]
