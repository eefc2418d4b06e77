"""Adaptation methods: one LightningModule per file, all built on :class:`DomainAdaptationModule`.

:data:`METHODS` lists every method by class name, built from the :class:`DomainAdaptationModule` subclasses defined
in this package (:func:`domadapt.listing.package_subclasses`); tests parametrize over it.
"""

from domadapt.listing import package_subclasses
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

METHODS: dict[str, type[DomainAdaptationModule]] = package_subclasses(DomainAdaptationModule, __name__)

__all__ = ["METHODS", "AdvEnt", "CDAN", "CDSSL", "DANN", "DRT", "DomainAdaptationModule", "FeatureAlignment", "MCD",
           "OutputSpaceAdversarial", "SourceOnly"]
