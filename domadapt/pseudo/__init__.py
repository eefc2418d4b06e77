"""Pseudo-labelling: streaming confidence statistics, threshold strategies, the label writer/reader
and generation over a target split (BDL SSL, CDSSL-style rounds).

Names are imported lazily so ``import domadapt.pseudo.stats`` stays light.
"""

from importlib import import_module

_NAMES = {
    "ConfidenceHistogram": "stats", "exact_percentile": "stats",
    "ThresholdStrategy": "thresholds", "GlobalThreshold": "thresholds", "ClassPercentile": "thresholds",
    "ProgressiveThreshold": "thresholds", "STRATEGIES": "thresholds", "build_strategy": "thresholds",
    "PseudoLabelled": "dataset", "generate_pseudo_labels": "generate", "summary_table": "generate",
    "LabelOptions": "generate",
    "read_manifest": "writer",
}
__all__ = sorted(_NAMES)


def __getattr__(name: str):
    if name in _NAMES:
        return getattr(import_module(f"domadapt.pseudo.{_NAMES[name]}"), name)
    raise AttributeError(f"module 'domadapt.pseudo' has no attribute {name!r}")


def __dir__():
    return __all__
