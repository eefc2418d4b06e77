"""Output-space adversarial alignment for segmentation (AdaptSegNet / BDL) and AdvEnt."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from domadapt.layers.discriminators import FCDiscriminator
from domadapt.losses.base import AlignmentLoss, call_frozen
from domadapt.losses.functional import self_information

SOURCE_LABEL = 0.0
TARGET_LABEL = 1.0


class OutputSpaceAdversarialLoss(AlignmentLoss):
    """Adversarial alignment of segmentation softmax maps with a fully-convolutional discriminator.

    Tsai et al., "Learning to Adapt Structured Output Space for Semantic Segmentation", CVPR 2018,
    https://arxiv.org/abs/1802.10349; as used by Li et al., BDL, CVPR 2019,
    https://arxiv.org/abs/1904.10620 (METHODS.md §1.2-1.3).

    Label convention: **source = 0, target = 1**. With ``P = softmax(logits)`` over classes:

    * generator term (this ``forward``): ``L_G = BCE(D(P_t), 0)`` -- make target maps look like
      source maps. ``D`` is applied with detached parameters, so ``L_G`` never leaves gradients in
      the discriminator (the method need not freeze it, though BDL's code does);
    * :meth:`discriminator_loss`: ``L_D = 0.5 BCE(D(P_s.detach()), 0) + 0.5 BCE(D(P_t.detach()), 1)``.

    ``alternating = True``: the method backpropagates ``lambda_adv * L_G`` into the segmenter,
    then ``L_D`` into :attr:`discriminator` and steps a separate discriminator optimiser (BDL: Adam
    1e-4, betas (0.9, 0.99)). Both BCEs average over the discriminator's patch logits. Feed
    full-resolution logits (upsampled to the input size, as BDL does).

    Args:
        num_classes: number of classes ``C`` (discriminator input channels).
        ndf: discriminator base width (64).
        negative_slope: LeakyReLU slope (0.2).

    Shape:
        source ``(N, C, H, W)``, target ``(M, C, H', W')`` logits with sides ``>= 32`` -> ``()``.
    """

    input_kind = "logits"
    supports = frozenset({"segmentation"})
    alternating = True
    uses_source = False  # the generator term only looks at the target; discriminator_loss uses both

    def __init__(self, num_classes: int, ndf: int = 64, negative_slope: float = 0.2) -> None:
        super().__init__()
        self.num_classes = num_classes
        self.discriminator = FCDiscriminator(num_classes, ndf, negative_slope)
        self._logs: dict[str, Tensor] = {}

    def discriminator_input(self, logits: Tensor) -> Tensor:
        """Map the segmenter's logits to what the discriminator sees: the softmax map."""
        return F.softmax(logits, dim=1)

    def _check(self, source: Tensor, target: Tensor) -> None:
        self.check_inputs(source, target)
        if source.shape[1] != self.num_classes:
            raise ValueError(
                f"{type(self).__name__}: inputs have {source.shape[1]} classes; expected num_classes={self.num_classes}"
            )

    def forward(self, source: Tensor, target: Tensor) -> Tensor:
        self._check(source, target)
        d_t = call_frozen(self.discriminator, self.discriminator_input(target))  # (M, 1, h, w)
        with torch.no_grad():  # share of target patches the discriminator takes for source
            self._logs["fooling_rate"] = (d_t < 0).float().mean()
        return F.binary_cross_entropy_with_logits(d_t, torch.full_like(d_t, SOURCE_LABEL))

    def discriminator_loss(self, source: Tensor, target: Tensor) -> Tensor:
        """``0.5 BCE(D(P_s), 0) + 0.5 BCE(D(P_t), 1)`` on detached inputs; trains the discriminator only.

        Shape:
            source ``(N, C, H, W)``, target ``(M, C, H', W')`` logits -> ``()``.
        """
        self._check(source, target)
        d_s = self.discriminator(self.discriminator_input(source.detach()))
        d_t = self.discriminator(self.discriminator_input(target.detach()))
        loss = 0.5 * F.binary_cross_entropy_with_logits(d_s, torch.full_like(d_s, SOURCE_LABEL))
        loss = loss + 0.5 * F.binary_cross_entropy_with_logits(d_t, torch.full_like(d_t, TARGET_LABEL))
        with torch.no_grad():
            self._logs["discriminator_accuracy"] = 0.5 * ((d_s < 0).float().mean() + (d_t > 0).float().mean())
            self._logs["loss_discriminator"] = loss.detach()
        return loss

    def extra_logs(self) -> dict[str, Tensor]:
        """``fooling_rate`` (last ``forward``), ``discriminator_accuracy`` and ``loss_discriminator``
        (last :meth:`discriminator_loss`)."""
        return dict(self._logs)


class EntropyAdversarialLoss(OutputSpaceAdversarialLoss):
    """AdvEnt: output-space adversarial alignment of weighted self-information maps.

    Vu et al., "ADVENT: Adversarial Entropy Minimization for Domain Adaptation in Semantic
    Segmentation", CVPR 2019, https://arxiv.org/abs/1811.12833.

    Identical to :class:`OutputSpaceAdversarialLoss` (label convention source = 0, target = 1;
    ``alternating = True``; :meth:`discriminator_loss`) except that the discriminator sees
    ``I = -P log P / log C`` per class channel (summing ``I`` over channels gives the normalised
    entropy map), so aligning ``I`` pushes target predictions towards source-like low entropy.

    Shape:
        source ``(N, C, H, W)``, target ``(M, C, H', W')`` logits with sides ``>= 32`` -> ``()``.
    """

    def discriminator_input(self, logits: Tensor) -> Tensor:
        """The weighted self-information map ``-P log P / log C`` of ``P = softmax(logits)``."""
        return self_information(F.softmax(logits, dim=1), dim=1)


__all__ = ["EntropyAdversarialLoss", "OutputSpaceAdversarialLoss"]
