"""Networks: every one returns :class:`~domadapt.structures.NetOutput` and offers ``param_groups``.

Contract (DESIGN.md §3): an ``nn.Module`` with ``task`` (``"classification"`` |
``"segmentation"``), ``num_features``, ``num_classes``, ``forward(x) -> NetOutput(logits,
features)`` and ``param_groups(lr_mult_head=10.0)`` returning the pretrained backbone at
``lr_mult`` 1 and the new layers at ``lr_mult_head``. :data:`MODELS` lists them by class name, built from the
``nn.Module`` classes of this package that declare ``task`` (:func:`domadapt.listing.package_subclasses`); the tests
parametrize over it, so a network added here is tested the day it is added.
"""

from torch import nn

from domadapt.listing import package_subclasses
from domadapt.models.classifier import ResNetClassifier
from domadapt.models.daformer_head import DAFormerHead
from domadapt.models.daformer_segmenter import DAFormerSegmenter
from domadapt.models.deeplabv2 import ASPPV2, DeepLabV2
from domadapt.models.digits import DigitsNet
from domadapt.models.dynamic_resnet import DynamicDigitsNet, DynamicResNet
from domadapt.models.lenet import LeNet
from domadapt.models.segmenter import SmpSegmenter, smp_architectures, smp_encoders
from domadapt.models.weights import load_weights

MODELS: dict[str, type] = package_subclasses(
    nn.Module, __name__, lambda cls: getattr(cls, "task", None) in ("classification", "segmentation"))
"""Every network shipped, by class name."""

__all__ = [
    "ASPPV2",
    "DAFormerHead",
    "DAFormerSegmenter",
    "MODELS",
    "DeepLabV2",
    "DigitsNet",
    "DynamicDigitsNet",
    "DynamicResNet",
    "LeNet",
    "ResNetClassifier",
    "SmpSegmenter",
    "load_weights",
    "smp_architectures",
    "smp_encoders",
]
