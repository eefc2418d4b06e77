"""DANN (Ganin & Lempitsky, ICML 2015, https://arxiv.org/abs/1409.7495).

A domain discriminator on features behind a gradient-reversal layer:
``L = CE(y_s) + w * BCE(D(R_λ(f)), domain)``, ``λ(p) = max(min_coeff, max_coeff (2/(1+e^{-γp}) - 1))``.
The discriminator is an MLP, by default without BatchNorm (with DigitsNet a BN discriminator separated
the domains by batch statistics and stopped aligning within small budgets; ``batch_norm=True`` gives
Transfer-Learning-Library's BN discriminator, which BatchNorm-free networks such as LeNet need); its
accuracy is logged as ``train/discriminator_accuracy`` — near 100 % means the features are not being aligned.
"""

from __future__ import annotations

from torch import nn

from domadapt.losses.adversarial import DomainAdversarialLoss
from domadapt.methods.alignment import FeatureAlignment


class DANN(FeatureAlignment):
    """Domain-adversarial training of the feature extractor.

    Args:
        net: network with ``num_features``.
        hidden: discriminator width.
        dropout: discriminator dropout.
        batch_norm: BatchNorm1d in the discriminator instead of dropout.
        grl_max: final gradient-reversal coefficient.
        grl_gamma: steepness of the DANN ramp.
        grl_min: floor of the coefficient (a reversal starting at exactly 0 stalls short runs).
        **kwargs: :class:`DomainAdaptationModule` arguments.
    """

    def __init__(self, net: nn.Module, hidden: int = 1024, dropout: float = 0.5, batch_norm: bool = False,
                 grl_max: float = 1.0, grl_gamma: float = 10.0, grl_min: float = 0.0, **kwargs) -> None:
        loss = DomainAdversarialLoss(net.num_features, hidden=hidden, dropout=dropout, batch_norm=batch_norm,
                                     max_coeff=grl_max, gamma=grl_gamma, min_coeff=grl_min)
        super().__init__(net, loss=loss, **kwargs)
