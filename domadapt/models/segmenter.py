"""Any segmentation-models-pytorch architecture/encoder as a domadapt network.

smp models are ``encoder -> decoder -> segmentation_head``. :class:`SmpSegmenter` builds one with
:func:`segmentation_models_pytorch.create_model` and keeps the three parts as its own children
(so its state dict has exactly smp's key names) and runs them itself, because alignment needs the
decoder output that ``smp``'s ``forward`` does not return.

This module is the only one that imports smp: networks that put their own head on an smp encoder
(:class:`~domadapt.models.daformer_segmenter.DAFormerSegmenter`) build it with :func:`mit_encoder`, and share
:func:`imagenet_shorthand`, :func:`holds_imagenet_encoder` and :func:`build_smp` (one-line errors) with
:class:`SmpSegmenter`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

import segmentation_models_pytorch as smp
import torch
import torch.nn.functional as F
from torch import nn

from domadapt.models.groups import backbone_head_groups
from domadapt.models.weights import NO_WEIGHTS, download_failed, load_weights
from domadapt.structures import NetOutput, Task

_T = TypeVar("_T")


def smp_architectures() -> list[str]:
    """Architecture names accepted by :class:`SmpSegmenter` (smp class names, case-insensitive)."""
    return sorted(cls.__name__ for cls in smp.MODEL_ARCHITECTURES_MAPPING.values())


def smp_encoders() -> list[str]:
    """smp's own encoder names; any timm model also works as ``"tu-<timm name>"``."""
    return sorted(smp.encoders.get_encoder_names())


def _check_names(arch: str, encoder_name: str) -> None:
    if arch.lower() not in smp.MODEL_ARCHITECTURES_MAPPING:
        raise ValueError(f"unknown smp arch {arch!r}; expected one of {smp_architectures()}")
    if encoder_name.startswith("tu-"):
        import timm

        if not timm.is_model(encoder_name[3:]):
            raise ValueError(f"encoder_name={encoder_name!r}: timm has no model {encoder_name[3:]!r}")
    elif encoder_name not in smp.encoders.get_encoder_names() and not encoder_name.startswith("timm-"):
        raise ValueError(
            f"unknown smp encoder_name {encoder_name!r}; expected 'tu-<timm model>' or one of {smp_encoders()}"
        )


def imagenet_shorthand(encoder_weights: str | None, weights: str | None) -> tuple[str | None, str | None]:
    """``(encoder_weights, weights)`` with ``weights="imagenet"`` read as ``encoder_weights="imagenet"`` (no file),
    and ``encoder_weights`` spelled ``"None"`` / ``"null"`` (jsonargparse may hand a nested ``null`` over so) as
    ``None``."""
    if encoder_weights is not None and str(encoder_weights).strip().lower() in NO_WEIGHTS:
        encoder_weights = None
    if weights == "imagenet":
        return encoder_weights or "imagenet", None
    return encoder_weights, weights


def holds_imagenet_encoder(encoder_weights: str | None, weights: str | None) -> bool:
    """Whether an encoder built with these arguments holds ImageNet weights: smp's ``imagenet*`` encoder weights and
    no local ``weights`` file (a file may hold anything). DAFormer's ImageNet feature distance needs it."""
    return bool(encoder_weights) and str(encoder_weights).startswith("imagenet") and weights is None


def build_smp(make: Callable[[], _T], who: str, encoder_name: str, encoder_weights: str | None) -> _T:
    """``make()`` (an smp constructor call) with smp's errors turned into one-line ones.

    Raises:
        ValueError: smp's "wrong pretrained weights" ``KeyError``, prefixed with ``who``.
        RuntimeError: the encoder weights could not be downloaded (:func:`~domadapt.models.weights.download_failed`).
    """
    try:
        return make()
    except KeyError as exc:  # smp's "wrong pretrained weights" error
        raise ValueError(f"{who}: {exc.args[0]}") from None
    except (OSError, RuntimeError) as exc:
        if encoder_weights is None:
            raise
        raise download_failed(f"{encoder_weights} weights for smp encoder {encoder_name}", exc) from exc


def mit_encoder(encoder_name: str, encoder_weights: str | None, who: str) -> nn.Module:
    """smp's Mix Transformer encoder ``encoder_name`` (``"mit_b0"`` ... ``"mit_b5"``), for networks that put their own
    head on it (:class:`~domadapt.models.daformer_segmenter.DAFormerSegmenter`).

    Its forward returns 6 maps: the input, an empty ``(N, 0, H/2, W/2)`` placeholder (smp's stage count), then MiT's
    4 stages ``(N, C_i, H/s_i, W/s_i)`` at strides ``s_i`` 4, 8, 16, 32 with ``C_i = out_channels[2:]``
    (32, 64, 160, 256 for b0; 64, 128, 320, 512 for b1-b5).

    Raises:
        ValueError: ``encoder_name`` is not a MiT encoder (one line, listing them), or unknown weights name.
        RuntimeError: the encoder weights could not be downloaded.
    """
    mits = [name for name in smp_encoders() if name.startswith("mit_")]
    if encoder_name not in mits:
        raise ValueError(f"{who}: encoder_name={encoder_name!r} is not a Mix Transformer; expected one of {mits}")
    return build_smp(lambda: smp.encoders.get_encoder(encoder_name, weights=encoder_weights), who, encoder_name,
                     encoder_weights)


class SmpSegmenter(nn.Module):
    """An smp encoder-decoder returning full-resolution logits and the decoder features.

    Args:
        arch: smp architecture (``"Unet"``, ``"FPN"``, ``"DeepLabV3Plus"``, ...; see
            :func:`smp_architectures`).
        encoder_name: smp encoder (``"resnet18"``, ``"mit_b0"``, ``"tu-<timm model>"``, ...).
        num_classes: output classes ``K``.
        encoder_weights: smp's encoder weights name (``"imagenet"``, ...; downloaded by smp) or
            ``None``.
        weights: ``None``; a local file holding this whole network (smp key names) or only
            its encoder; or ``"imagenet"``, shorthand for ``encoder_weights="imagenet"``.
        decoder_channels: widths of the decoder stages (Unet-style architectures; one per encoder stage,
            e.g. ``(64, 32, 16, 16, 16)`` for a light CPU model); ``None`` = smp's default. Named here so
            YAML recipes can set it (LightningCLI does not parse ``**kwargs``).
        **smp_kwargs: passed to the smp architecture (``decoder_channels``, ``encoder_depth``,
            ``in_channels``, ...). ``classes``, ``activation`` and ``aux_params`` are refused:
            the class count is ``num_classes``, logits stay raw and the output is one map.

    Shape:
        - Input: ``(N, C, H, W)``; most architectures need ``H, W`` divisible by the encoder's
          output stride (32 by default), Unet does not.
        - Output: ``NetOutput(logits (N, K, H, W), features (N, D, h, w))`` where ``D`` is the
          decoder's output width and ``(h, w)`` its resolution: the input's for Unet, Unet++,
          MAnet and Linknet, ``H/4`` for FPN, PAN, DeepLabV3Plus, UPerNet and Segformer, ``H/8``
          for DeepLabV3 and PSPNet.
    """

    task: Task = "segmentation"

    def __init__(
        self,
        arch: str = "Unet",
        encoder_name: str = "resnet18",
        num_classes: int = 19,
        encoder_weights: str | None = None,
        weights: str | None = None,
        decoder_channels: tuple[int, ...] | None = None,
        **smp_kwargs: Any,
    ) -> None:
        super().__init__()
        if decoder_channels is not None:
            smp_kwargs["decoder_channels"] = tuple(int(c) for c in decoder_channels)
        for key in ("classes", "activation", "aux_params"):
            if smp_kwargs.get(key) is not None:
                raise ValueError(f"SmpSegmenter: {key}= is not supported (use num_classes; logits stay raw)")
            smp_kwargs.pop(key, None)
        _check_names(arch, encoder_name)
        encoder_weights, weights = imagenet_shorthand(encoder_weights, weights)
        model = build_smp(
            lambda: smp.create_model(
                arch, encoder_name=encoder_name, encoder_weights=encoder_weights, classes=num_classes, **smp_kwargs
            ),
            f"SmpSegmenter({arch}, {encoder_name})",
            encoder_name,
            encoder_weights,
        )
        self.encoder = model.encoder
        self.decoder = model.decoder
        self.segmentation_head = model.segmentation_head
        # A stride check like smp's own, with the size that would pass.
        self.input_multiple = model.encoder.output_stride if model.requires_divisible_input_shape else 1
        head_conv = next(m for m in self.segmentation_head.modules() if isinstance(m, nn.Conv2d))
        self.num_features = head_conv.in_channels
        self.num_classes = num_classes
        self.arch = type(model).__name__
        #: whether the encoder holds ImageNet weights as built: smp's ``imagenet`` encoder weights and no local
        #: ``weights`` file (a file may hold anything); DAFormer's ImageNet feature distance needs it.
        self.imagenet_encoder = holds_imagenet_encoder(encoder_weights, weights)
        load_weights(
            self,
            weights,
            kind=f"{self.arch}-{encoder_name}",
            backbone_prefix="encoder.",
            head_prefixes=("segmentation_head.",),
        )

    def forward(self, x: torch.Tensor) -> NetOutput:
        """Segment ``x``; see the class docstring for shapes."""
        return self.forward_with_encoder(x)[0]

    def forward_with_encoder(self, x: torch.Tensor) -> tuple[NetOutput, torch.Tensor]:
        """:meth:`forward` and, from the same pass, :meth:`encoder_features` (DAFormer's feature distance reads the
        source forward's encoder, DAFormer@e6f6e04 mmseg/models/uda/dacs.py:233-251)."""
        h, w = x.shape[-2:]
        m = self.input_multiple
        if h % m or w % m:
            raise ValueError(
                f"{self.arch}: input {h}x{w} must be divisible by {m}; pad to {-(-h // m) * m}x{-(-w // m) * m}"
            )
        encoded = self.encoder(x)  # list of (N, C_i, H/2^i, W/2^i); DPT: (features, prefix_tokens)
        features = self.decoder(*encoded) if isinstance(encoded, tuple) else self.decoder(encoded)  # (N, D, h, w)
        logits = self.segmentation_head(features)  # (N, K, H, W) for every smp head with a divisible input
        if logits.shape[-2:] != (h, w):
            logits = F.interpolate(logits, size=(h, w), mode="bilinear", align_corners=False)
        last = (encoded[0] if isinstance(encoded, tuple) else encoded)[-1]
        return NetOutput(logits, features), last

    def encoder_features(self, x: torch.Tensor) -> torch.Tensor:
        """The encoder's last (deepest) stage, what DAFormer's ImageNet feature distance compares.

        Shape:
            ``(N, C, H, W)`` -> ``(N, C_last, H / s, W / s)`` (``s`` the encoder's output stride, 32 for MiT).
        """
        encoded = self.encoder(x)
        encoded = encoded[0] if isinstance(encoded, tuple) else encoded  # DPT: (features, prefix_tokens)
        return encoded[-1]

    def param_groups(self, lr_mult_head: float = 10.0) -> list[dict]:
        """Encoder at 1x, decoder and segmentation head at ``lr_mult_head`` x."""
        return backbone_head_groups([self.encoder], [self.decoder, self.segmentation_head], lr_mult_head)
