"""The model registry, with aliases instead of stages (MLflow deprecated stages in 2.9).

Evaluate registers each model it scores, its card as the description, and points the
``challenger`` alias at it. ``imgpipe promote`` moves ``champion`` to a version only when its
val balanced accuracy beats the champion's on the same val data: a score on other images,
or on other labels, is not a comparison. Serve ``models:/<name>@champion``.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from imgpipe.errors import ImgpipeError
from imgpipe.evaluate.promotion_lock import promotion_lock

CHAMPION, CHALLENGER = "champion", "challenger"
VAL_SCORE_TAG = "imgpipe.val_balanced_accuracy"
VAL_DATA_TAG = "imgpipe.val_data_hash"  # store.dataset.split_digest of the val split
TRAINING_RUN_TAG = "imgpipe.training_run_id"


class NotPromoted(Exception):
    """The candidate does not beat the champion, or cannot be compared with it."""


def register(model_id: str, name: str, card: Path, tags: dict[str, str]) -> str:
    """Register logged model ``model_id`` as a new version of ``name``, with ``card`` inside
    it and as its description, and make it the challenger. Returns the version."""
    import mlflow

    client = mlflow.MlflowClient()
    client.log_model_artifact(model_id, str(card))  # before registering: the version copies the model
    version = mlflow.register_model(f"models:/{model_id}", name, tags=tags).version
    client.update_model_version(name, version, description=card.read_text())
    client.set_registered_model_alias(name, CHALLENGER, version)
    return str(version)


@dataclass
class Promotion:
    name: str
    version: str
    score: float
    replaced: Any  # the former champion's ModelVersion (itself, when it was the champion already), or None

    @property
    def changed(self) -> bool:
        return self.replaced is None or str(self.replaced.version) != self.version


def promote(name: str, version: str | None, training_run: str | None, force: bool = False) -> Promotion:
    """Point ``champion`` at the candidate (a version, else the one trained in
    ``training_run``) if it beats the champion; raise NotPromoted if not."""
    import mlflow

    client = mlflow.MlflowClient()
    candidate = _candidate(client, name, version, training_run)
    score = _score(candidate, name)
    # The champion read, the comparison and the move, with no other promote in between:
    # otherwise two promotes both beat the same old champion and the later move wins.
    with promotion_lock(mlflow.get_tracking_uri(), name):
        champion = alias_version(client, name, CHAMPION)
        if champion is not None and str(champion.version) == str(candidate.version):
            return Promotion(name, str(candidate.version), score, champion)  # nothing to do
        if champion is not None and not force:
            _must_beat(candidate, champion, name)
        client.set_registered_model_alias(name, CHAMPION, candidate.version)
        challenger = alias_version(client, name, CHALLENGER)
        if challenger is not None and str(challenger.version) == str(candidate.version):
            client.delete_registered_model_alias(name, CHALLENGER)  # it won: no longer a challenger
    return Promotion(name, str(candidate.version), score, champion)


def _must_beat(candidate: Any, champion: Any, name: str) -> None:
    ours, theirs = candidate.tags.get(VAL_DATA_TAG), champion.tags.get(VAL_DATA_TAG)
    if ours != theirs:
        raise NotPromoted(
            f"{name} version {candidate.version} was validated on other val data than the champion, "
            f"version {champion.version} (val hash {str(ours)[:12]} against {str(theirs)[:12]}), so their "
            "scores do not compare; evaluate both on the same data, or pass --force to replace the "
            "champion anyway."
        )
    ours_score, theirs_score = _score(candidate, name), _score(champion, name)
    if not ours_score > theirs_score:
        raise NotPromoted(
            f"{name} version {candidate.version} has val balanced accuracy {ours_score:.4f}, which does "
            f"not beat the champion, version {champion.version}, at {theirs_score:.4f} on the same val "
            "data; the champion stays."
        )


def _candidate(client: Any, name: str, version: str | None, training_run: str | None) -> Any:
    try:
        if version is not None:
            return client.get_model_version(name, version)
        found = [
            v
            for v in client.search_model_versions(f"name = '{name}'")
            if v.tags.get(TRAINING_RUN_TAG) == training_run or v.run_id == training_run
        ]
    except Exception as exc:  # no such model or version
        raise ImgpipeError(
            f"cannot find {name}{f' version {version}' if version else ''} in the registry: {str(exc).splitlines()[0]}"
        ) from None
    if not found:
        raise ImgpipeError(
            f"no version of {name} comes from run {training_run}, which trained models/; set "
            "mlflow.registered_model in params.yaml and run `dvc repro` (evaluate registers the "
            "model), or pass --version."
        )
    return max(found, key=lambda v: int(v.version))


def _score(version: Any, name: str) -> float:
    try:
        return float(version.tags[VAL_SCORE_TAG])
    except (KeyError, ValueError):
        raise ImgpipeError(
            f"{name} version {version.version} has no {VAL_SCORE_TAG} tag: it was not registered by "
            "imgpipe's evaluate stage, so its val score is unknown."
        ) from None


def alias_version(client: Any, name: str, alias: str) -> Any:
    """The version ``alias`` points at, or None."""
    try:
        return client.get_model_version_by_alias(name, alias)
    except Exception:  # no such alias (or model) yet
        return None
