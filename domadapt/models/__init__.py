"""Networks: every one returns :class:`~domadapt.structures.NetOutput` and offers ``param_groups``.

Contract (DESIGN.md §3): an ``nn.Module`` with ``task`` (``"classification"`` |
``"segmentation"``), ``num_features``, ``num_classes``, ``forward(x) -> NetOutput(logits,
features)`` and ``param_groups(lr_mult_head=10.0)`` returning the pretrained backbone at
``lr_mult`` 1 and the new layers at ``lr_mult_head``. :data:`MODELS` lists them; the tests
parametrize over it, so a network added here is tested the day it is added.
"""

from domadapt.models.classifier import ResNetClassifier
from domadapt.models.deeplabv2 import ASPPV2, DeepLabV2
from domadapt.models.digits import DigitsNet
from domadapt.models.dynamic_resnet import DynamicDigitsNet, DynamicResNet
from domadapt.models.lenet import LeNet
from domadapt.models.segmenter import SmpSegmenter, smp_architectures, smp_encoders
from domadapt.models.weights import load_weights

MODELS: dict[str, type] = {
    "resnet_classifier": ResNetClassifier,
    "digits": DigitsNet,
    "lenet": LeNet,
    "smp_segmenter": SmpSegmenter,
    "deeplabv2": DeepLabV2,
    "dynamic_resnet": DynamicResNet,
    "dynamic_digits": DynamicDigitsNet,
}
"""Every network shipped, by short name."""

__all__ = [
    "ASPPV2",
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
