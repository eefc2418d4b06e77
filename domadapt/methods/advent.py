"""AdvEnt (Vu et al., CVPR 2019, https://arxiv.org/abs/1811.12833): output-space adversarial
adaptation where the discriminator sees the weighted self-information map ``-p log p / log C``
instead of the softmax map. Everything else as :class:`OutputSpaceAdversarial`.
"""

from __future__ import annotations

from domadapt.losses.base import AlignmentLoss
from domadapt.losses.output_space import EntropyAdversarialLoss
from domadapt.methods.output_adversarial import OutputSpaceAdversarial


class AdvEnt(OutputSpaceAdversarial):
    """Adversarial entropy minimisation for segmentation."""

    @staticmethod
    def default_loss(num_classes: int) -> AlignmentLoss:
        return EntropyAdversarialLoss(num_classes)
