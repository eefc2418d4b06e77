"""Alignment losses: ``loss(source, target) -> scalar``, minimised by the feature extractor.

:data:`LOSSES` maps class names to every :class:`AlignmentLoss` subclass defined in this package
(built by listing the subclasses, so a new loss file only needs importing here). User losses need
no registration: subclass :class:`AlignmentLoss` and name it by ``class_path`` in a recipe.
"""

from domadapt.listing import package_subclasses
from domadapt.losses import functional
from domadapt.losses.adversarial import DomainAdversarialLoss
from domadapt.losses.base import AlignmentLoss, InputKind
from domadapt.losses.conditional import ConditionalAdversarialLoss
from domadapt.losses.coral import CORALLoss
from domadapt.losses.discrepancy import ClassifierDiscrepancyLoss
from domadapt.losses.entropy import EntropyLoss, MinimumClassConfusionLoss
from domadapt.losses.mmd import MMDLoss
from domadapt.losses.output_space import EntropyAdversarialLoss, OutputSpaceAdversarialLoss


LOSSES: dict[str, type[AlignmentLoss]] = package_subclasses(AlignmentLoss, __name__)

__all__ = [
    "LOSSES",
    "AlignmentLoss",
    "CORALLoss",
    "ClassifierDiscrepancyLoss",
    "ConditionalAdversarialLoss",
    "DomainAdversarialLoss",
    "EntropyAdversarialLoss",
    "EntropyLoss",
    "InputKind",
    "MMDLoss",
    "MinimumClassConfusionLoss",
    "OutputSpaceAdversarialLoss",
    "functional",
]
