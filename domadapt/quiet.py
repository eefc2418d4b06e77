"""Keep the command's output about the user's run: drop third-party notices that say nothing about it.

Only exact, known-harmless messages are filtered (a Lightning advertisement and a deprecation inside
Lightning's own pytree helper); every other warning is shown.
"""

from __future__ import annotations

import logging
import warnings

_DROP = ("litlogger",)


class _DropNotices(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return not any(s in record.getMessage() for s in _DROP)


def quiet_third_party() -> None:
    """Install the filters (idempotent)."""
    warnings.filterwarnings("ignore", message=r".*isinstance\(treespec, LeafSpec\).*")
    warnings.filterwarnings("ignore", message=r".*LightningCLI's args parameter is intended to run from within Python.*")
    for name in ("pytorch_lightning.utilities.rank_zero", "lightning.pytorch.utilities.rank_zero"):
        logger = logging.getLogger(name)
        if not any(isinstance(f, _DropNotices) for f in logger.filters):
            logger.addFilter(_DropNotices())
