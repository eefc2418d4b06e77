"""A private cache directory for the embedded datasets, shared by the tests of this folder."""

from __future__ import annotations

import pytest


@pytest.fixture(scope="package", autouse=True)
def embedded_cache(tmp_path_factory):
    """Point ``$DOMADAPT_CACHE`` at a fresh folder so tests never read or fill the user's cache."""
    root = tmp_path_factory.mktemp("domadapt-cache")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("DOMADAPT_CACHE", str(root))
        yield root
