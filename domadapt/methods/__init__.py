"""Adaptation methods: one LightningModule per file, all built on :class:`DomainAdaptationModule`.

:data:`METHODS` lists every concrete method by class name; tests parametrize over it.
"""

from domadapt.methods.advent import AdvEnt
from domadapt.methods.alignment import FeatureAlignment
from domadapt.methods.base import DomainAdaptationModule
from domadapt.methods.cdan import CDAN
from domadapt.methods.cdssl import CDSSL
from domadapt.methods.dann import DANN
from domadapt.methods.drt import DRT
from domadapt.methods.mcd import MCD
from domadapt.methods.output_adversarial import OutputSpaceAdversarial
from domadapt.methods.source_only import SourceOnly

METHODS: dict[str, type[DomainAdaptationModule]] = {
    cls.__name__: cls
    for cls in (SourceOnly, FeatureAlignment, DANN, CDAN, MCD, OutputSpaceAdversarial, AdvEnt, DRT, CDSSL)
}

__all__ = ["METHODS", *METHODS, "DomainAdaptationModule"]
