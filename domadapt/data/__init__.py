"""Data layer: dataset adapters (official on-disk formats), embedded datasets, transforms, DataModule.

Names are imported lazily so that ``import domadapt.data.base`` stays light (no OpenCV /
albumentations import until a name that needs it is used).
"""

from domadapt.lazy import lazy_attributes

_NAMES = {
    "ArrayDataset": "base", "ClassificationDataset": "base", "DomainDataset": "base", "SegmentationDataset": "base",
    "Cityscapes": "cityscapes", "GTA5": "gta5", "Synthia": "synthia",
    "DomainNet": "domainnet", "domainnet_leave_one_out": "domainnet",
    "EmbeddedDigits": "embedded", "ToyCity": "embedded",
    "DomainAdaptationDataModule": "datamodule", "Augment": "transforms", "TranslatedDataset": "translated",
}
__all__ = sorted(_NAMES)

__getattr__, __dir__ = lazy_attributes(__name__, _NAMES)
