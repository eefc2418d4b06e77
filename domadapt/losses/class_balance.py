"""Class-balance term of MCD (TLlib) and DRT: keeps a classifier from predicting few classes on the target."""

from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor


def class_balance_loss(logits: Tensor, eps: float = 1e-6) -> Tensor:
    """``-mean_c log(mean_b softmax(z)_bc + eps)``: small when the batch spreads over all classes.

    TLlib's ``tllib/alignment/mcd.py`` ``entropy`` and DRT's balance term.

    Shape:
        logits ``(N, C)`` -> ``()``.
    """
    return -(F.softmax(logits, dim=1).mean(0) + eps).log().mean()


__all__ = ["class_balance_loss"]
