"""The classifier head of MCD's classification experiments, used by MCD and DRT.

``Dropout -> Linear(D, W) -> BN -> ReLU -> Dropout -> Linear(W, W) -> BN -> ReLU -> Linear(W, K)``: Saito's
released digit heads (``MCD_DA`` ``classification/model/usps.py``, ``svhn2mnist.py``: width 100 / 2048), TLlib's
``ImageClassifierHead`` (``tllib/alignment/mcd.py``, width 1024) and DRT's two classifiers (``resnet_dra.py``, width
1000). Two such heads disagree on target samples in many more directions than two linear heads (whose difference has
rank at most ``K``), which is what the discrepancy steps of MCD and DRT rely on.
"""

from __future__ import annotations

from torch import nn


class MCDHead(nn.Sequential):
    """Two hidden layers with batch normalisation and dropout, then the classifier.

    Args:
        in_features: ``D``.
        num_classes: ``K``.
        width: hidden width ``W``.
        dropout: dropout before each of the first two linear layers.
        small_init: DRT's released initialisation (linear weights and biases ~ N(0, 0.01), BN scale ~ N(1, 0.01),
            shift 0); otherwise PyTorch's defaults (TLlib).

    Shape:
        ``(N, D)`` -> ``(N, K)``.
    """

    def __init__(self, in_features: int, num_classes: int, width: int = 1024, dropout: float = 0.5,
                 small_init: bool = False) -> None:
        super().__init__(
            nn.Dropout(dropout), nn.Linear(in_features, width), nn.BatchNorm1d(width), nn.ReLU(inplace=True),
            nn.Dropout(dropout), nn.Linear(width, width), nn.BatchNorm1d(width), nn.ReLU(inplace=True),
            nn.Linear(width, num_classes),
        )
        if small_init:
            for m in self.modules():
                if isinstance(m, nn.Linear):
                    nn.init.normal_(m.weight, 0.0, 0.01)
                    nn.init.normal_(m.bias, 0.0, 0.01)
                elif isinstance(m, nn.BatchNorm1d):
                    nn.init.normal_(m.weight, 1.0, 0.01)
                    nn.init.zeros_(m.bias)


__all__ = ["MCDHead"]
