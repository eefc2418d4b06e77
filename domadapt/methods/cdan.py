"""CDAN / CDAN+E (Long et al., NeurIPS 2018, https://arxiv.org/abs/1705.10667).

The discriminator sees the multilinear map ``f ⊗ softmax(g)`` (randomised when ``D·K`` is large);
with ``entropy_conditioning`` each sample is weighted by ``1 + e^{-H(g)}`` so that confident
predictions dominate the alignment. Gradient reversal as in DANN.
"""

from __future__ import annotations

from torch import nn

from domadapt.losses.conditional import ConditionalAdversarialLoss
from domadapt.methods.alignment import FeatureAlignment


class CDAN(FeatureAlignment):
    """Conditional domain-adversarial training.

    Args:
        net: classification network with ``num_features`` and ``num_classes``.
        entropy_conditioning: CDAN+E sample weighting.
        randomized: use the randomised multilinear map (``None``: when ``D·K > 4096``).
        randomized_dim: output width of the randomised map.
        hidden: discriminator width.
        dropout: discriminator dropout.
        batch_norm: BatchNorm1d in the discriminator instead of dropout.
        grl_max: final gradient-reversal coefficient.
        grl_gamma: steepness of the ramp.
        grl_min: floor of the coefficient.
        **kwargs: :class:`DomainAdaptationModule` arguments.
    """

    def __init__(self, net: nn.Module, entropy_conditioning: bool = True, randomized: bool | None = None,
                 randomized_dim: int = 1024, hidden: int = 1024, dropout: float = 0.5, batch_norm: bool = False,
                 grl_max: float = 1.0, grl_gamma: float = 10.0, grl_min: float = 0.0, **kwargs) -> None:
        loss = ConditionalAdversarialLoss(net.num_features, net.num_classes, hidden=hidden, dropout=dropout,
                                          batch_norm=batch_norm, randomized=randomized, randomized_dim=randomized_dim,
                                          entropy_conditioning=entropy_conditioning, max_coeff=grl_max,
                                          gamma=grl_gamma, min_coeff=grl_min)
        super().__init__(net, loss=loss, **kwargs)
