"""The files ``imgpipe embed`` and ``imgpipe inspect`` write, and the ingest ones inspect mentions.

Named here once, so that the commands, ``imgpipe report`` and the tests agree. None of them
is a DVC output: they describe the current data and model, and are rewritten on demand.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from imgpipe.paths import Paths

EMBEDDINGS_FOLDER = "embeddings"


@dataclass(frozen=True)
class EmbeddingFiles:
    """What ``imgpipe embed`` writes into its folder."""

    folder: Path

    @property
    def features(self) -> Path:
        return self.folder / "features.npy"

    @property
    def index(self) -> Path:
        return self.folder / "index.csv"

    @property
    def map(self) -> Path:
        return self.folder / "map.png"


@dataclass(frozen=True)
class InspectFiles:
    """What ``imgpipe inspect`` writes under the project's root, and what it looks for."""

    root: Path

    @property
    def embeddings(self) -> EmbeddingFiles:
        return EmbeddingFiles(self.root / EMBEDDINGS_FOLDER)

    @property
    def label_issues_csv(self) -> Path:
        return Paths(self.root).reports / "label_issues.csv"

    @property
    def label_issues_png(self) -> Path:
        return Paths(self.root).reports / "label_issues.png"

    @property
    def gradcam_png(self) -> Path:
        return Paths(self.root).reports / "gradcam.png"

    # Written by the ingest stage (near-duplicate pairs across splits); inspect only reads them.
    @property
    def near_duplicates_csv(self) -> Path:
        return Paths(self.root).near_duplicates_table

    @property
    def near_duplicates_png(self) -> Path:
        return Paths(self.root).near_duplicates_picture


def shown(path: Path, root: Path) -> str:
    """``path`` as the user would type it from the project's root (absolute when outside it)."""
    try:
        return Path(path).resolve().relative_to(Path(root).resolve()).as_posix()
    except ValueError:
        return str(path)
