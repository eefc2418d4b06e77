"""domadapt: domain adaptation for PyTorch (BDL, DRT, CDSSL-style pseudo-labelling, classic baselines)."""

__version__ = "0.1.0"


def list_methods() -> list[str]:
    """Names of every adaptation method (LightningModule) shipped in :mod:`domadapt.methods`."""
    from domadapt.methods import METHODS

    return sorted(METHODS)


def list_translators() -> list[str]:
    """Names of every image-translation LightningModule (e.g. BDL's CycleGAN stage) in :mod:`domadapt.methods`."""
    from domadapt.methods import TRANSLATORS

    return sorted(TRANSLATORS)


def list_losses() -> list[str]:
    """Names of every alignment loss shipped in :mod:`domadapt.losses`."""
    from domadapt.losses import LOSSES

    return sorted(LOSSES)
