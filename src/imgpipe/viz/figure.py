"""matplotlib figures for reports: made off-screen, saved with stable bytes.

matplotlib is imported inside the functions, so importing this module costs nothing.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from imgpipe.store.atomic import atomic_path


def new_figure(*subplots: int, figsize: tuple[float, float], dpi: int = 100) -> tuple[Any, Any]:
    """``plt.subplots`` on the off-screen Agg backend (stages run without a display)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt.subplots(*subplots, figsize=figsize, dpi=dpi)


def save_figure(fig: Any, path: Path) -> None:
    """Lay out, write atomically as PNG and close. No version stamp: the same figure gives
    the same bytes, so DVC does not see a change where there is none."""
    import matplotlib.pyplot as plt

    fig.tight_layout()
    with atomic_path(Path(path)) as tmp:
        fig.savefig(tmp, format="png", metadata={"Software": None})
    plt.close(fig)
