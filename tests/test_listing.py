"""Listings built from classes (`domadapt.listing.package_subclasses`): every public subclass defined in the package,
at any depth, by class name; classes defined elsewhere, private ones and rejected ones left out."""

from __future__ import annotations

import importlib
import pkgutil

import pytorch_lightning as pl
from torch import nn

import domadapt.methods
from domadapt.listing import package_subclasses
from domadapt.methods import METHODS, TRANSLATORS, DomainAdaptationModule, SourceOnly, Translation
from domadapt.models import MODELS, DigitsNet, DynamicDigitsNet


class OutsideMethod(SourceOnly):  # defined in tests: a user's method is not one of the package's
    pass


def test_subclasses_at_any_depth_by_name_and_only_the_packages_own():
    listed = package_subclasses(DomainAdaptationModule, "domadapt.methods")
    assert listed == METHODS and "OutsideMethod" not in listed and "DANN" in listed and "CDAN" in listed
    assert list(listed) == sorted(listed)


def test_every_public_lightning_module_of_the_methods_package_is_listed():
    """Also those of a module the package's ``__init__`` forgets to import (the listings would miss them)."""
    for info in pkgutil.iter_modules(domadapt.methods.__path__, "domadapt.methods."):
        importlib.import_module(info.name)
    modules = package_subclasses(pl.LightningModule, "domadapt.methods", lambda cls: cls is not DomainAdaptationModule)
    assert modules == {**METHODS, **TRANSLATORS}
    assert TRANSLATORS == {"Translation": Translation} and not set(METHODS) & set(TRANSLATORS)


def test_models_are_the_modules_that_declare_a_task():
    assert MODELS["DigitsNet"] is DigitsNet and MODELS["DynamicDigitsNet"] is DynamicDigitsNet  # a subclass of one
    assert "ASPPV2" not in MODELS and "ResnetGenerator" not in MODELS  # layers and translation nets declare none
    assert package_subclasses(nn.Module, "domadapt.models", lambda cls: False) == {}
