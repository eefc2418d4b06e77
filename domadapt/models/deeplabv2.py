"""DeepLab-V2 (dilated ResNet + ASPP-V2 classifier), the segmentation network of BDL / AdaptSegNet.

Chen et al., "DeepLab: Semantic Image Segmentation with Deep Convolutional Nets, Atrous
Convolution, and Fully Connected CRFs", TPAMI 2017 (arXiv 1606.00915), as used by BDL
(METHODS.md §1.2).

The backbone is torchvision's ResNet with ``replace_stride_with_dilation=[False, True, True]``
(output stride 8: layer3 and layer4 have stride 1 and dilation 2 and 4). It differs from the
Caffe-converted ResNet of the original code in three details, all of which leave the weight
shapes unchanged:

* **stride placement** — torchvision puts the stride of a downsampling bottleneck on its 3x3
  ``conv2`` ("ResNet v1.5"); Caffe puts it on the first 1x1 ``conv1``. Only layer2's first block
  downsamples here; ``caffe_style=True`` moves its stride to ``conv1``;
* **max-pool rounding** — Caffe's stem max-pool rounds up (``ceil_mode=True``), which makes the
  feature map one pixel larger for even sizes (1280 -> 161 instead of 160 columns);
  ``caffe_style=True`` restores it;
* **first dilated block** — torchvision gives the first block of a dilated stage the previous
  stage's dilation (1 in layer3, 2 in layer4); DeepLab-V2 dilates every block of the stage. We
  always follow DeepLab-V2 here (every 3x3 conv of layer3 has dilation 2, of layer4 dilation 4).

Use ``caffe_style=True, input_channels="bgr"`` with weights converted from the Caffe model (BDL's /
AdaptSegNet's ``DeepLab_resnet_pretrained_init`` file, whose ``Scale.`` key prefix is stripped on load) and
the data normalised as that code does (``image[:, :, ::-1] - IMG_MEAN`` on 0-255 values: ``Augment(mean=
CAFFE_MEAN, std=CAFFE_STD)``), and the defaults with torchvision's ImageNet weights. Module names follow the
original code (``conv1`` ... ``layer4``, classifier ``layer5`` with ``conv2d_list``), so released BDL
checkpoints load as they are.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

import torch
import torch.nn.functional as F
import torchvision
from torch import nn

from domadapt.models.grad_checkpoint import run_blocks
from domadapt.models.groups import backbone_head_groups
from domadapt.models.weights import WRAPPER_PREFIXES, load_weights
from domadapt.released_sgd import released_repeats
from domadapt.structures import NetOutput, Task

FreezeBN = Literal["none", "affine", "stats"]


class ASPPV2(nn.Module):
    """DeepLab-V2 classifier: parallel dilated 3x3 convolutions to class scores, **summed**.

    ``logits = sum_d conv3x3_d(x)`` with dilation = padding = ``d`` for ``d`` in ``dilations``; no
    normalisation or activation. Weights are initialised ``N(0, 0.01)`` as in the original;
    biases keep PyTorch's default initialisation.

    Args:
        in_channels: input channels (2048 after ResNet layer4, 1024 after layer3).
        num_classes: output classes ``K``.
        dilations: dilation rates of the branches.

    Shape:
        - Input: ``(N, in_channels, h, w)``.
        - Output: ``(N, K, h, w)``.
    """

    def __init__(self, in_channels: int, num_classes: int, dilations: Sequence[int] = (6, 12, 18, 24)) -> None:
        super().__init__()
        # The name ``conv2d_list`` matches the original code so its checkpoints load unchanged.
        self.conv2d_list = nn.ModuleList(
            nn.Conv2d(in_channels, num_classes, kernel_size=3, padding=d, dilation=d, bias=True) for d in dilations
        )
        for conv in self.conv2d_list:
            nn.init.normal_(conv.weight, 0.0, 0.01)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Sum of the branch outputs; see the class docstring for shapes."""
        out = self.conv2d_list[0](x)
        for conv in self.conv2d_list[1:]:
            out = out + conv(x)
        return out


class DeepLabV2(nn.Module):
    """DeepLab-V2 with a ResNet-101/50 backbone at output stride 8 and the ASPP-V2 classifier.

    Args:
        backbone: torchvision ResNet depth.
        num_classes: output classes ``K`` (19 for the Cityscapes protocols).
        weights: ``None``; ``"imagenet"`` (torchvision ``IMAGENET1K_V1`` backbone); or a local
            file holding the backbone (e.g. the DeepLab init BDL starts from; a classifier of a
            different class count in it is re-initialised) or the whole network.
        freeze_bn: backbone BatchNorm handling. ``"affine"`` (BDL, the default): scale and shift
            frozen, but the layers follow the module's train/eval mode, so in training they
            normalise with batch statistics and update the running ones. ``"stats"``: fully
            frozen — affine frozen and the layers stay in eval mode (running statistics used,
            never updated) even after ``train()``; a documented deviation for small batches.
            ``"none"``: ordinary trainable BatchNorm.
        multi_level: add the AdaptSegNet auxiliary ASPP classifier on layer3 (see
            :meth:`forward_levels`). Then, as in that code, the auxiliary classifier is
            ``layer5`` and the main one ``layer6``; otherwise the main one is ``layer5`` (BDL).
        caffe_style: stride on layer2's first 1x1 conv and a ceil-mode stem max-pool, as in the
            Caffe model (see the module docstring).
        input_channels: ``"bgr"`` reverses the channels of the input first, for Caffe weights (the DeepLab
            ImageNet+COCO file of BDL / AdaptSegNet), which expect BGR images. Inside the network, so
            training, evaluation, pseudo-labelling, the translation stage's perceptual loss and export all
            feed it the same way; the data keep RGB order, normalised with the Caffe mean in 0-255 units
            (:data:`~domadapt.data.transforms.CAFFE_MEAN`, ``std`` :data:`~domadapt.data.transforms.CAFFE_STD`).
        upsample_logits: return logits bilinearly upsampled (``align_corners=True``, as BDL) to
            the input size; ``False`` returns them at 1/8 resolution. Also a plain attribute.
        gradient_checkpointing: recompute each residual block's activations in backward instead of
            keeping them (:mod:`domadapt.models.grad_checkpoint`; same gradients, less memory, about
            one more forward per step). Also a plain attribute.

    Shape:
        - Input: ``(N, 3, H, W)``.
        - Output: ``NetOutput(logits (N, K, H, W), features (N, 2048, ceil(H/8), ceil(W/8)))``;
          features are the layer4 output. Logits are ``(N, K, ceil(H/8), ceil(W/8))`` when
          ``upsample_logits`` is off. (With ``caffe_style`` sizes may be one pixel larger.)
    """

    task: Task = "segmentation"

    def __init__(
        self,
        backbone: Literal["resnet101", "resnet50"] = "resnet101",
        num_classes: int = 19,
        weights: str | None = None,
        freeze_bn: FreezeBN = "affine",
        multi_level: bool = False,
        caffe_style: bool = False,
        input_channels: Literal["rgb", "bgr"] = "rgb",
        upsample_logits: bool = True,
        gradient_checkpointing: bool = False,
    ) -> None:
        super().__init__()
        self.gradient_checkpointing = gradient_checkpointing
        if backbone not in ("resnet101", "resnet50"):
            raise ValueError(f"backbone={backbone!r}: expected 'resnet101' or 'resnet50'")
        if freeze_bn not in ("none", "affine", "stats"):
            raise ValueError(f"freeze_bn={freeze_bn!r}: expected 'none', 'affine' or 'stats'")
        if input_channels not in ("rgb", "bgr"):
            raise ValueError(f"input_channels={input_channels!r}: expected 'rgb' or 'bgr'")
        self.input_channels = input_channels
        net = getattr(torchvision.models, backbone)(weights=None, replace_stride_with_dilation=[False, True, True])
        for layer, dilation in ((net.layer3, 2), (net.layer4, 4)):
            layer[0].conv2.dilation = layer[0].conv2.padding = (dilation, dilation)  # dilate every block
        if caffe_style:
            net.maxpool.ceil_mode = True
            net.layer2[0].conv1.stride, net.layer2[0].conv2.stride = (2, 2), (1, 1)
        self.conv1, self.bn1, self.relu, self.maxpool = net.conv1, net.bn1, net.relu, net.maxpool
        self.layer1, self.layer2, self.layer3, self.layer4 = net.layer1, net.layer2, net.layer3, net.layer4
        if multi_level:
            self.layer5 = ASPPV2(1024, num_classes)  # auxiliary, on layer3
            self.layer6 = ASPPV2(2048, num_classes)
        else:
            self.layer5 = ASPPV2(2048, num_classes)
        self.num_features = 2048
        self.num_classes = num_classes
        self.multi_level = multi_level
        self.upsample_logits = upsample_logits
        #: whether the backbone holds ImageNet weights as built (``weights="imagenet"``; a local file may hold anything)
        self.imagenet_encoder = weights == "imagenet"
        self.freeze_bn = freeze_bn
        if freeze_bn != "none":
            for bn in self._backbone_bns():
                bn.weight.requires_grad_(False)
                bn.bias.requires_grad_(False)
        load_weights(
            self,
            weights,
            kind=backbone,
            ignore_prefixes=("fc.",),
            strip_prefixes=(*WRAPPER_PREFIXES, "Scale."),
            head_prefixes=("layer5.", "layer6."),
        )
        self.train()  # applies freeze_bn="stats"

    @property
    def classifier(self) -> ASPPV2:
        """The main ASPP classifier (on layer4)."""
        return self.layer6 if self.multi_level else self.layer5

    @property
    def aux_classifier(self) -> ASPPV2 | None:
        """The auxiliary ASPP classifier on layer3 (``multi_level`` only)."""
        return self.layer5 if self.multi_level else None

    def _backbone(self) -> list[nn.Module]:
        return [self.conv1, self.bn1, self.layer1, self.layer2, self.layer3, self.layer4]

    def _backbone_bns(self) -> list[nn.BatchNorm2d]:
        return [m for part in self._backbone() for m in part.modules() if isinstance(m, nn.BatchNorm2d)]

    def train(self, mode: bool = True) -> DeepLabV2:
        """Set train/eval mode; with ``freeze_bn="stats"`` the backbone BatchNorms stay in eval."""
        super().train(mode)
        if self.freeze_bn == "stats":
            for bn in self._backbone_bns():
                bn.eval()
        return self

    def _resize(self, logits: torch.Tensor, size: torch.Size) -> torch.Tensor:
        if not self.upsample_logits:
            return logits
        return F.interpolate(logits, size=size, mode="bilinear", align_corners=True)

    def forward_levels(self, x: torch.Tensor) -> list[NetOutput]:
        """Outputs of every level: ``[main]``, or ``[main, aux]`` with ``multi_level``.

        The auxiliary output is ``NetOutput(aux logits (N, K, H, W), layer3 features
        (N, 1024, H/8, W/8))``; AdaptSegNet weights its segmentation loss by 0.1.
        """
        size = x.shape[-2:]
        if self.input_channels == "bgr":
            x = x.flip(1)  # RGB -> BGR, what Caffe-converted weights were trained on
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))  # (N, 64, H/4, W/4)
        ckpt = self.gradient_checkpointing
        x = run_blocks([*self.layer1, *self.layer2], x, ckpt)  # (N, 512, H/8, W/8)
        mid = run_blocks(self.layer3, x, ckpt)  # (N, 1024, H/8, W/8), dilation 2
        features = run_blocks(self.layer4, mid, ckpt)  # (N, 2048, H/8, W/8), dilation 4
        outputs = [NetOutput(self._resize(self.classifier(features), size), features)]
        if self.multi_level:
            outputs.append(NetOutput(self._resize(self.aux_classifier(mid), size), mid))
        return outputs

    def encoder_features(self, x: torch.Tensor) -> torch.Tensor:
        """The backbone's last stage (layer4), what DAFormer's ImageNet feature distance compares.

        Shape:
            ``(N, 3, H, W)`` -> ``(N, 2048, H/8, W/8)``.
        """
        if self.input_channels == "bgr":
            x = x.flip(1)
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        ckpt = self.gradient_checkpointing
        return run_blocks([*self.layer1, *self.layer2, *self.layer3, *self.layer4], x, ckpt)

    def forward(self, x: torch.Tensor) -> NetOutput:
        """Main output only; see the class docstring for shapes."""
        return self.forward_levels(x)[0]

    def forward_with_encoder(self, x: torch.Tensor) -> tuple[NetOutput, torch.Tensor]:
        """:meth:`forward` and its layer4 features, :meth:`encoder_features` from the same pass."""
        out = self.forward_levels(x)[0]
        return out, out.features

    def param_groups(self, lr_mult_head: float = 10.0) -> list[dict]:
        """Backbone (trainable parameters only) at 1x, ASPP classifier(s) at ``lr_mult_head`` x (10 in BDL)."""
        heads = [self.layer5, self.layer6] if self.multi_level else [self.layer5]
        return backbone_head_groups(self._backbone(), heads, lr_mult_head)

    def released_lr_repeats(self) -> dict[int, int]:
        """Times the released code's optimiser lists each parameter, by ``id`` (backbone 3-4, head 1): what
        ``optimizer: sgd_released`` replays (:mod:`domadapt.released_sgd`)."""
        return released_repeats(self._backbone())
