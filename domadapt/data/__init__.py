"""Data layer: dataset adapters (official on-disk formats), embedded datasets, transforms, DataModule.

Names are imported lazily so that ``import domadapt.data.base`` stays light (no OpenCV /
albumentations import until a name that needs it is used).
"""

from importlib import import_module

_NAMES = {
    "ArrayDataset": "base", "ClassificationDataset": "base", "DomainDataset": "base", "SegmentationDataset": "base",
    "Cityscapes": "cityscapes", "GTA5": "gta5", "Synthia": "synthia",
    "DomainNet": "domainnet", "domainnet_leave_one_out": "domainnet",
    "EmbeddedDigits": "embedded", "ToyCity": "embedded",
    "DomainAdaptationDataModule": "datamodule", "Augment": "transforms", "TranslatedDataset": "translated",
}
__all__ = sorted(_NAMES)


def __getattr__(name: str):
    if name in _NAMES:
        return getattr(import_module(f"domadapt.data.{_NAMES[name]}"), name)
    raise AttributeError(f"module 'domadapt.data' has no attribute {name!r}")


def __dir__():
    return __all__
