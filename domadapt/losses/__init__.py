"""Alignment losses: ``loss(source, target) -> scalar``, minimised by the feature extractor.

:data:`LOSSES` maps class names to every :class:`AlignmentLoss` subclass defined in this package
(built by listing the subclasses, so a new loss file only needs importing here). User losses need
no registration: subclass :class:`AlignmentLoss` and name it by ``class_path`` in a recipe.
"""

from domadapt.losses import functional
from domadapt.losses.adversarial import DomainAdversarialLoss
from domadapt.losses.base import AlignmentLoss, InputKind
from domadapt.losses.conditional import ConditionalAdversarialLoss
from domadapt.losses.coral import CORALLoss
from domadapt.losses.discrepancy import ClassifierDiscrepancyLoss
from domadapt.losses.entropy import EntropyLoss, MinimumClassConfusionLoss
from domadapt.losses.mmd import MMDLoss
from domadapt.losses.output_space import EntropyAdversarialLoss, OutputSpaceAdversarialLoss


def _package_losses() -> dict[str, type[AlignmentLoss]]:
    """Public AlignmentLoss subclasses defined under ``domadapt.losses``, by class name."""
    found: dict[str, type[AlignmentLoss]] = {}
    stack = list(AlignmentLoss.__subclasses__())
    while stack:
        cls = stack.pop()
        stack.extend(cls.__subclasses__())
        if cls.__module__.startswith(__name__ + ".") and not cls.__name__.startswith("_"):
            found[cls.__name__] = cls
    return dict(sorted(found.items()))


LOSSES: dict[str, type[AlignmentLoss]] = _package_losses()

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
