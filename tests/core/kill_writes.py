"""``python -m tests.core.kill_writes ARGS``: ``domadapt ARGS`` that SIGKILLs itself inside a file-writing stage.

For the pipeline stages that are not Lightning loops (``translate``, ``pseudo_label``), where a
:class:`~tests.core.resume_toys.KillAt` callback cannot reach: with
``$DOMADAPT_TEST_KILL_WRITES=<stage>:<N>`` the process kills itself with SIGKILL right after that stage
has written its ``N``-th PNG file — mid-stage, with some outputs finished and the rest not started.
"""

from __future__ import annotations

import importlib
import os
import signal
import sys

WRITES_ENV = "DOMADAPT_TEST_KILL_WRITES"
WRITERS = {"translate": "domadapt.pipeline.translate", "pseudo_label": "domadapt.pseudo.generate"}


def install(spec: str) -> None:
    """Wrap the ``write_png`` the stage's module calls so that its ``N``-th call ends the process."""
    stage, n = spec.split(":")
    module = importlib.import_module(WRITERS[stage])
    original, count = module.write_png, 0

    def write_png(*args, **kwargs):
        nonlocal count
        result = original(*args, **kwargs)
        count += 1
        if count >= int(n):
            os.kill(os.getpid(), signal.SIGKILL)
        return result

    module.write_png = write_png


if __name__ == "__main__":
    if os.environ.get(WRITES_ENV):
        install(os.environ[WRITES_ENV])
    from domadapt.cli import main

    sys.exit(main(sys.argv[1:]))
