"""Multi-stage runs: an ordered list of stages (fit, test, evaluate, pseudo-label, translate), each
writing under ``run_dir/<stage>/`` and finishing with ``DONE.json``, so a rerun resumes where it stopped.

Names are imported lazily (the runner pulls in Lightning).
"""

from domadapt.lazy import lazy_attributes

_NAMES = {
    "PipelineError": "config", "PipelineSpec": "config", "StageSpec": "config", "STAGE_TYPES": "config",
    "expand": "config", "load_pipeline": "config", "validate": "config",
    "STAGE_RUNNERS": "stages", "run_pipeline": "runner", "check": "runner",
}
__all__ = sorted(_NAMES)

__getattr__, __dir__ = lazy_attributes(__name__, _NAMES)
