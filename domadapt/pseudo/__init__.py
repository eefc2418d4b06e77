"""Pseudo-labelling: streaming confidence statistics, threshold strategies, the label writer/reader
and generation over a target split (BDL SSL, CDSSL-style rounds).

Names are imported lazily so ``import domadapt.pseudo.stats`` stays light.
"""

from domadapt.lazy import lazy_attributes

_NAMES = {
    "ConfidenceHistogram": "stats", "exact_percentile": "stats",
    "ThresholdStrategy": "thresholds", "GlobalThreshold": "thresholds", "ClassPercentile": "thresholds",
    "ProgressiveThreshold": "thresholds", "STRATEGIES": "thresholds", "build_strategy": "thresholds",
    "PseudoLabelled": "dataset", "generate_pseudo_labels": "generate", "summary_table": "generate",
    "LabelOptions": "options",
    "read_manifest": "writer",
}
__all__ = sorted(_NAMES)

__getattr__, __dir__ = lazy_attributes(__name__, _NAMES)
