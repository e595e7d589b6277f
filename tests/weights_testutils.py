"""Helpers shared by the tests of weights files (bundles, models)."""

from __future__ import annotations

import pickle
from pathlib import Path


def make_marker_pickle(path: Path, marker: Path) -> None:
    """A pickle whose unpickling would create ``marker``: proof that it was never unpickled."""

    class Trap:
        def __reduce__(self):
            return (open, (str(marker), "w"))

    path.write_bytes(pickle.dumps({"weight": Trap()}))
