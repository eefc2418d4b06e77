"""Adaptation methods: one LightningModule per file, built on :class:`DomainAdaptationModule`, and the image
translation stage of BDL (:class:`Translation`, a LightningModule of its own: generators, no task network).

:data:`METHODS` lists every method by class name, built from the :class:`DomainAdaptationModule` subclasses defined
in this package; :data:`TRANSLATORS` lists the package's other LightningModules, the image translators
(:func:`domadapt.listing.package_subclasses`). The shared method tests parametrize over both.
"""

import pytorch_lightning as pl

from domadapt.listing import package_subclasses
from domadapt.methods.advent import AdvEnt
from domadapt.methods.alignment import FeatureAlignment
from domadapt.methods.base import DomainAdaptationModule
from domadapt.methods.cdan import CDAN
from domadapt.methods.cdssl import CDSSL
from domadapt.methods.dacs import DACS
from domadapt.methods.daformer import DAFormer
from domadapt.methods.dann import DANN
from domadapt.methods.drt import DRT
from domadapt.methods.mcd import MCD
from domadapt.methods.output_adversarial import OutputSpaceAdversarial
from domadapt.methods.source_only import SourceOnly
from domadapt.methods.translation import Translation

METHODS: dict[str, type[DomainAdaptationModule]] = package_subclasses(DomainAdaptationModule, __name__)
TRANSLATORS: dict[str, type[pl.LightningModule]] = package_subclasses(
    pl.LightningModule, __name__, lambda cls: not issubclass(cls, DomainAdaptationModule))

__all__ = ["METHODS", "TRANSLATORS", "AdvEnt", "CDAN", "CDSSL", "DACS", "DAFormer", "DANN", "DRT", "DomainAdaptationModule",
           "FeatureAlignment", "MCD", "OutputSpaceAdversarial", "SourceOnly", "Translation"]
