"""Data lineage: which version of which data a run saw, as MLflow dataset inputs.

Each stage logs its inputs and outputs (a dataset per DVC path, digested by its md5);
train also logs each split it reads, with its DVC hash (from ``dvc.lock``) as the digest and
a ``dvc`` source naming the path, the git commit and ``ingest.source``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from imgpipe.tracking.runs import git_commit


def dvc_hashes(lock_path: Path, paths: list[str]) -> dict[str, str]:
    """The md5 that dvc.lock records for each output path (as written in dvc.yaml).

    Upstream stages have finished and been locked by the time train runs, so these are
    exactly the versions of the data this run reads.
    """
    from imgpipe.tracking.dvc_files import locked_outs

    return {path: md5 for path, md5 in locked_outs(lock_path).items() if path in paths}


def _dvc_source_class() -> type:
    # Built on first use: subclassing at import time would import mlflow (seconds) at the
    # start of every stage that imports this module, most of which never log a dataset.
    from mlflow.data.dataset_source import DatasetSource

    class DvcDatasetSource(DatasetSource):
        """Where a DVC-tracked dataset came from: its path in the repo, commit and origin.

        ``load`` gives the path; ``dvc checkout`` at the commit restores the exact bytes.
        """

        def __init__(self, path: str, md5: str, commit: str | None, origin: str):
            self.path, self.md5, self.commit, self.origin = path, md5, commit, origin

        @staticmethod
        def _get_source_type() -> str:
            return "dvc"

        def load(self, dst_path: str | None = None) -> str:
            return self.path

        @staticmethod
        def _can_resolve(raw_source: Any) -> bool:
            return False

        @classmethod
        def _resolve(cls, raw_source: Any) -> DvcDatasetSource:
            raise NotImplementedError("DVC dataset sources are built from dvc.lock, not resolved from strings")

        def to_dict(self) -> dict[str, Any]:
            return {"path": self.path, "md5": self.md5, "git_commit": self.commit, "origin": self.origin}

        @classmethod
        def from_dict(cls, source_dict: dict[str, Any]) -> DvcDatasetSource:
            return cls(source_dict["path"], source_dict["md5"], source_dict.get("git_commit"), source_dict["origin"])

    return DvcDatasetSource


def log_data_inputs(root: Path, hashes: dict[str, str], splits: dict[str, tuple[str, Any]], origin: str) -> None:
    """Record each split a run used as an MLflow dataset input, digested by its DVC hash.

    ``splits`` maps a context (training, validation) to (DVC path, a ``Split``). The
    MLflow UI then shows, per run, which version of which data it saw, and runs that saw
    the same data share a digest.
    """
    import mlflow

    source_cls = _dvc_source_class()
    commit = git_commit(root)
    for context, (path, split) in splits.items():
        md5 = hashes.get(path)
        if md5 is None:  # a stage run by hand, outside dvc repro: no locked version to name
            continue
        source = source_cls(path, md5, commit, origin)
        # MLflow reads only the shape and dtype (the digest is DVC's): a split on disk stands
        # in as one row broadcast to its shape, not read whole.
        images = (
            split.images
            if isinstance(split.images, np.ndarray)
            else np.broadcast_to(np.asarray(split.images[:1]), split.images.shape)
        )
        dataset = mlflow.data.from_numpy(
            images, targets=split.labels, source=source, name=path, digest=md5.removesuffix(".dir")
        )
        mlflow.log_input(dataset, context=context, tags={"dvc.md5": md5, "dvc.path": path})


def log_dvc_dataset(path: str, md5: str, context: str, origin: str, commit: str | None) -> None:
    """Record a DVC-tracked path as a dataset of the active run, with no look inside it:
    its name is the path and its digest DVC's md5, the same as train's split datasets'.

    MLflow keeps one dataset per name and digest, made by the first run that logs it; so
    the source says the same here as in train's (``origin``: ``ingest.source``).
    """
    import mlflow
    from mlflow.data.meta_dataset import MetaDataset

    source = _dvc_source_class()(path, md5, commit, origin)
    dataset = MetaDataset(source, name=path, digest=md5.removesuffix(".dir"))
    mlflow.log_input(dataset, context=context, tags={"dvc.md5": md5, "dvc.path": path})
