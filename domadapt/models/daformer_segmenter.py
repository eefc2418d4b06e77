"""The DAFormer network: a Mix Transformer encoder (smp's) with DAFormer's context-aware fusion head.

Hoyer et al., "DAFormer: Improving Network Architectures and Training Strategies for Domain-Adaptive Semantic
Segmentation", CVPR 2022: MiT-B5 + :class:`~domadapt.models.daformer_head.DAFormerHead` ("daformer_sepaspp",
DAFormer@e6f6e04 configs/_base_/models/daformer_sepaspp_mitb5.py:10-21 over daformer_conv1_mitb5.py:12-34), run as
mmseg's ``EncoderDecoder`` runs it: the head on the encoder's four stages, its 1/4-resolution logits resized to the
input bilinearly without ``align_corners`` (mmseg/models/segmentors/encoder_decoder.py:72-82 at test time; the
decode head's ``losses`` resize them to the label the same way in training, decode_head.py:221-229).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from domadapt.models.daformer_head import DAFormerHead
from domadapt.models.groups import backbone_head_groups
from domadapt.models.segmenter import holds_imagenet_encoder, imagenet_shorthand, mit_encoder
from domadapt.models.weights import load_weights
from domadapt.structures import NetOutput, Task


class DAFormerSegmenter(nn.Module):
    """MiT encoder + DAFormer decode head, returning input-size logits and the head's fused features.

    Args:
        encoder_name: smp's Mix Transformer, ``"mit_b0"`` ... ``"mit_b5"`` (DAFormer: ``mit_b5``); the head reads
            its four stages, so other encoders are refused.
        num_classes: output classes ``K``.
        encoder_weights: smp's encoder weights name (``"imagenet"``: the SegFormer authors' ImageNet-1k MiT, as
            DAFormer's ``pretrained/mit_b5.pth``; downloaded by smp) or ``None``.
        weights: ``None``; a local file holding this whole network (this class's key names: ``encoder.*``,
            ``decode_head.*``) or only its encoder (smp's MiT key names); or ``"imagenet"``, shorthand for
            ``encoder_weights="imagenet"``. As :class:`~domadapt.models.segmenter.SmpSegmenter`'s.
        embed_dims: width of each stage's embedding and of the fused features (released 256 for both).
        dilations: ASPP dilation rates of the fusion (released ``(1, 6, 12, 18)``; 1 is a 1x1 branch, the others
            depthwise-separable 3x3).
        dropout: ``Dropout2d`` probability before the classifier (released 0.1).

    Attributes:
        encoder: smp's MiT encoder (1x learning rate).
        decode_head: :class:`~domadapt.models.daformer_head.DAFormerHead` (``lr_mult_head``: DAFormer's ``head``
            custom key covers the whole decode head).
        imagenet_encoder: whether the encoder holds ImageNet weights as built (smp ``imagenet`` weights, no local
            file); DAFormer's ImageNet feature distance needs it.
        input_multiple: 1. MiT's overlapping patch embeddings take any size (stage sizes ``ceil(H / 4)``, then
            halved rounding up) and the logits are resized to the input, as in the released code.

    Shape:
        - Input: ``(N, 3, H, W)``.
        - Output: ``NetOutput(logits (N, K, H, W), features (N, embed_dims, ceil(H/4), ceil(W/4)))``; the features
          are the fused head map before dropout and classifier.
    """

    task: Task = "segmentation"

    def __init__(
        self,
        encoder_name: str = "mit_b5",
        num_classes: int = 19,
        encoder_weights: str | None = "imagenet",
        weights: str | None = None,
        embed_dims: int = 256,
        dilations: tuple[int, ...] = (1, 6, 12, 18),
        dropout: float = 0.1,
    ) -> None:
        super().__init__()
        encoder_weights, weights = imagenet_shorthand(encoder_weights, weights)
        self.encoder = mit_encoder(encoder_name, encoder_weights, f"DAFormerSegmenter({encoder_name})")
        stages = tuple(self.encoder.out_channels[-4:])  # smp's list: input, an empty placeholder, MiT's 4 stages
        self.decode_head = DAFormerHead(stages, num_classes, embed_dims=embed_dims, channels=embed_dims,
                                        dilations=dilations, dropout=dropout)
        self.num_classes = num_classes
        self.num_features = embed_dims
        self.input_multiple = 1
        self.imagenet_encoder = holds_imagenet_encoder(encoder_weights, weights)
        load_weights(self, weights, kind=f"DAFormer-{encoder_name}", backbone_prefix="encoder.",
                     head_prefixes=("decode_head.conv_seg.",))

    def forward_with_encoder(self, x: torch.Tensor) -> tuple[NetOutput, torch.Tensor]:
        """The network's output and MiT's stage 4 from one encoder pass: DAFormer's feature distance compares the
        supervised source forward's last stage (DAFormer@e6f6e04 mmseg/models/uda/dacs.py:233-251)."""
        stages = self.encoder(x)[-4:]  # (N, C_i, H/s, W/s) for s = 4, 8, 16, 32
        logits, features = self.decode_head(stages)  # (N, K, H/4, W/4), (N, E, H/4, W/4)
        logits = F.interpolate(logits, size=x.shape[-2:], mode="bilinear", align_corners=False)
        return NetOutput(logits, features), stages[-1]

    def forward(self, x: torch.Tensor) -> NetOutput:
        """Logits at the input size and the fused head features (shapes in the class docstring)."""
        out, _ = self.forward_with_encoder(x)
        return out

    def encoder_features(self, x: torch.Tensor) -> torch.Tensor:
        """MiT's stage 4, what DAFormer's ImageNet feature distance compares.

        Shape:
            ``(N, 3, H, W)`` -> ``(N, C_4, H/32, W/32)`` (``C_4`` 512 for b1-b5, 256 for b0; sizes rounded up).
        """
        return self.encoder(x)[-1]

    def param_groups(self, lr_mult_head: float = 10.0) -> list[dict]:
        """Encoder at 1x, the whole decode head (embeddings, fusion, classifier) at ``lr_mult_head`` x."""
        return backbone_head_groups([self.encoder], [self.decode_head], lr_mult_head)
