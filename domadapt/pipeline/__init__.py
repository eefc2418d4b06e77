"""Multi-stage runs: an ordered list of stages (fit, test, evaluate, pseudo-label, translate), each
writing under ``run_dir/<stage>/`` and finishing with ``DONE.json``, so a rerun resumes where it stopped.

Names are imported lazily (the runner pulls in Lightning).
"""

from importlib import import_module

_NAMES = {
    "PipelineError": "config", "PipelineSpec": "config", "StageSpec": "config", "STAGE_TYPES": "config",
    "expand": "config", "load_pipeline": "config", "validate": "config",
    "STAGE_RUNNERS": "stages", "run_pipeline": "runner", "check": "runner",
}
__all__ = sorted(_NAMES)


def __getattr__(name: str):
    if name in _NAMES:
        return getattr(import_module(f"domadapt.pipeline.{_NAMES[name]}"), name)
    raise AttributeError(f"module 'domadapt.pipeline' has no attribute {name!r}")


def __dir__():
    return __all__
