"""The one matplotlib set-up of the project: headless, and figures closed once saved."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from pathlib import Path


def pyplot() -> Any:
    """matplotlib.pyplot on the Agg backend (no display on CI machines or in DVC stages)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def save(figure: Any, path: Path) -> Path:
    """Write `figure` as PNG at `path` and free it; returns the path."""
    figure.tight_layout()
    figure.savefig(path, dpi=80)
    pyplot().close(figure)
    return path
