"""What the modules ``make native`` compiles share: a warning when a build is older than its source.

``gnn/features.py`` and ``gnn/sums.py`` are plain Python that Cython compiles in place; a build
left behind by an edit would run yesterday's code, so each warns on import when its source is
newer than the build it runs from.
"""

from __future__ import annotations

import warnings
from pathlib import Path


def warn_if_stale(built: str) -> None:
    """Warn (RuntimeWarning) when the ``.py`` beside the compiled module ``built`` is newer."""
    path = Path(built)
    source = path.with_name(path.name.split(".", 1)[0] + ".py")
    if source.exists() and source.stat().st_mtime > path.stat().st_mtime:
        warnings.warn(
            f"{path.name} is older than {source.name}: run `make native`",
            RuntimeWarning,
            stacklevel=2,
        )
