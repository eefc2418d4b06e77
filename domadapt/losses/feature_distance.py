"""Thing-class ImageNet feature distance (FD), DAFormer's regulariser (Hoyer et al., CVPR 2022, Sec. 3.3).

A frozen copy ``f_0`` of the network, taken while its encoder still holds its ImageNet weights, keeps the student's
last encoder stage ``f`` close to the ImageNet features on the source pixels of *thing* classes::

    d_j   = ‖f(x_s)_j − f_0(x_s)_j‖₂                      (over channels, per feature pixel j)
    L_FD  = λ_FD · mean_{j : ỹ_j ∈ C_things} d_j             (λ_FD = 0.005)

where ``ỹ`` is the source label map downscaled to the feature resolution by :func:`downscale_labels` (a feature pixel
takes the majority class of the ``s x s`` label pixels it covers when that class holds at least ``min_ratio`` of them,
else it is ignored). DAFormer@e6f6e04 mmseg/models/uda/dacs.py:153-189 (``masked_feat_dist``, ``calc_feat_dist``: the
last backbone stage, ``feat[-1]``, the ImageNet model in eval mode) and mmseg/utils/utils.py:18-39
(``downscale_label_ratio``). Not an :class:`~domadapt.losses.AlignmentLoss`: it reads the source labels and the
network's encoder, not a pair of outputs.

The network must offer ``encoder_features(x) -> (N, D, h, w)`` (its last encoder stage), as
:class:`~domadapt.models.SmpSegmenter` and :class:`~domadapt.models.DeepLabV2` do.
"""

from __future__ import annotations

import copy
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from domadapt.structures import IGNORE_INDEX

#: Cityscapes' thing classes in the 19-class order (pole … bicycle), DAFormer's ``imnet_feature_dist_classes``
#: (DAFormer@e6f6e04 configs/daformer/gta2cs_uda_warm_fdthings_rcs_croppl_a999_daformer_mitb5_s0.py:27).
CITYSCAPES_THINGS: tuple[int, ...] = (6, 7, 11, 12, 13, 14, 15, 16, 17, 18)


def downscale_labels(labels: torch.Tensor, factor: int, min_ratio: float, num_classes: int,
                     ignore_index: int = IGNORE_INDEX) -> torch.Tensor:
    """Label map at ``1/factor`` resolution: per ``factor x factor`` cell the most frequent value (ignore counting as a
    value of its own), replaced by ``ignore_index`` when it is the ignore value or holds less than ``min_ratio`` of the
    cell.

    Args:
        labels: ``(N, H, W)`` int labels in ``[0, num_classes)`` or ``ignore_index``.
        factor: the integer downscale ``s >= 1``; ``H`` and ``W`` are cropped to multiples of ``s``.
        min_ratio: the share a cell's majority needs to be kept (DAFormer: 0.75).
        num_classes: ``K``.
        ignore_index: the ignore value.

    Returns:
        ``(N, H // s, W // s)`` int64 labels.
    """
    if factor < 1:
        raise ValueError(f"downscale_labels.factor: expected an integer >= 1, got {factor}")
    y = labels.long().clone()
    y[(y == ignore_index) | (y < 0) | (y >= num_classes)] = num_classes  # ignore as class K
    counts = F.avg_pool2d(F.one_hot(y, num_classes + 1).permute(0, 3, 1, 2).float(), kernel_size=factor)
    share, out = counts.max(1)  # ties: the lowest index, as torch.max
    out[(out == num_classes) | (share < min_ratio)] = ignore_index
    return out


def masked_feature_distance(features: torch.Tensor, reference: torch.Tensor,
                            mask: torch.Tensor | None = None) -> torch.Tensor:
    """``mean_{j : mask_j} ‖features_j − reference_j‖₂`` (L2 over channels per pixel ``j``).

    Args:
        features, reference: ``(N, D, h, w)``.
        mask: ``(N, h, w)`` bool; ``None`` = every pixel. No pixel selected gives NaN, as ``mean`` of nothing.

    Returns:
        ``()`` the mean distance.
    """
    dist = torch.linalg.vector_norm(features - reference, ord=2, dim=1)  # (N, h, w)
    return (dist[mask] if mask is not None else dist).mean()


class ImageNetFeatureDistance(nn.Module):
    """``L_FD`` of the module docstring, with its frozen ImageNet copy of the network.

    Args:
        net: the network, at construction still holding its ImageNet encoder weights; offers ``encoder_features``.
        classes: the classes whose pixels count (``None`` = every pixel, DAFormer's ``fdist_classes=None``).
        scale_min_ratio: ``min_ratio`` of :func:`downscale_labels` (DAFormer: 0.75).
        weight: ``λ_FD`` (DAFormer: 0.005).

    Shape:
        ``forward(features (N, D, h, w), image (N, 3, H, W), labels (N, H, W)) -> ()``. ``H / h`` must be an integer.
    """

    def __init__(self, net: nn.Module, classes: Sequence[int] | None = CITYSCAPES_THINGS,
                 scale_min_ratio: float = 0.75, weight: float = 0.005) -> None:
        super().__init__()
        if not callable(getattr(net, "encoder_features", None)):
            raise TypeError(f"ImageNetFeatureDistance.net: {type(net).__name__} has no encoder_features(x); expected "
                            "DAFormerSegmenter, SmpSegmenter, DeepLabV2 or a network offering its last encoder stage")
        self.reference = copy.deepcopy(net)
        for p in self.reference.parameters():
            p.requires_grad_(False)
        self.classes = tuple(int(c) for c in classes) if classes is not None else None
        self.scale_min_ratio, self.weight = float(scale_min_ratio), float(weight)
        self.num_classes = int(net.num_classes)

    def reference_features(self, image: torch.Tensor) -> torch.Tensor:
        """The frozen copy's last encoder stage, computed in eval mode (DAFormer's ``imnet_model.eval()``) without
        gradient; the copy's ``training`` flag follows its owner's otherwise (Lightning sees no module left in eval)."""
        was = self.reference.training
        self.reference.eval()
        try:
            with torch.no_grad():
                return self.reference.encoder_features(image)
        finally:
            self.reference.train(was)

    def mask(self, labels: torch.Tensor, feature_size: tuple[int, int]) -> torch.Tensor | None:
        """``(N, h, w)`` bool: feature pixels whose downscaled label is one of :attr:`classes` (``None``: all)."""
        if self.classes is None:
            return None
        factor = labels.shape[-1] // feature_size[-1]
        small = downscale_labels(labels, factor, self.scale_min_ratio, self.num_classes)
        return torch.isin(small, torch.tensor(self.classes, device=small.device))

    def forward(self, features: torch.Tensor, image: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        reference = self.reference_features(image)
        mask = self.mask(labels, tuple(features.shape[-2:]))
        if mask is not None and mask.shape[-2:] != features.shape[-2:]:
            raise ValueError(f"ImageNetFeatureDistance: labels {tuple(labels.shape[-2:])} downscale to "
                             f"{tuple(mask.shape[-2:])}, features are {tuple(features.shape[-2:])}")
        if mask is not None and not bool(mask.any()):
            return features.sum() * 0.0  # no thing pixel in the batch: no term (DAFormer's mean would be NaN)
        return self.weight * masked_feature_distance(features, reference.to(features.dtype), mask)


__all__ = ["CITYSCAPES_THINGS", "ImageNetFeatureDistance", "downscale_labels", "masked_feature_distance"]
