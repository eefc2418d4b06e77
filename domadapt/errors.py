"""How a failure reaches the user: one line naming what is wrong (the traceback on request).

A recipe whose components cannot be built (weights that cannot be downloaded, a dataset root that does not exist, a
typo in a path) fails inside jsonargparse or Lightning, which wrap the cause in pages of context. :func:`one_line`
digs out the message that domadapt itself raised, and :class:`RecipeError` carries it to the command's exit.
``--verbose`` on any ``domadapt`` command, or ``DOMADAPT_TRACEBACK=1``, shows the full traceback instead.
"""

from __future__ import annotations

import os
import traceback
from pathlib import Path

PACKAGE = str(Path(__file__).resolve().parent)
TRACEBACK_VARIABLE = "DOMADAPT_TRACEBACK"


class RecipeError(ValueError):
    """A recipe's components could not be built; the message is one line naming the cause."""


def show_tracebacks() -> bool:
    """``True`` when ``$DOMADAPT_TRACEBACK`` asks for full tracebacks."""
    return os.environ.get(TRACEBACK_VARIABLE, "0") not in ("", "0", "false", "no")


def one_line(exc: BaseException, limit: int = 500) -> str:
    """The most specific message of ``exc``'s chain: the first exception (outermost first) raised by domadapt's own
    code, else the innermost one, as one line of at most ``limit`` characters."""
    chain = []
    seen = set()
    while exc is not None and id(exc) not in seen:
        seen.add(id(exc))
        chain.append(exc)
        exc = exc.__cause__ or exc.__context__
    ours = [e for e in chain if _raised_by_domadapt(e)]
    picked = ours[0] if ours else chain[-1]
    text = " ".join(str(picked).split()) or type(picked).__name__
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _raised_by_domadapt(exc: BaseException) -> bool:
    frames = traceback.extract_tb(exc.__traceback__)
    return bool(frames) and frames[-1].filename.startswith(PACKAGE)
