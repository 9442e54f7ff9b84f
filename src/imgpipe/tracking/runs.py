"""What the stages' MLflow runs share: safe keys, the git commit, and train's epochs.

Each stage's run is a child of its pipeline's run (``stage_run.py``). Train leaves its
run id in the model folder, so evaluate's run names the training run it scored.
"""

from __future__ import annotations

import hashlib
import re
import subprocess
from pathlib import Path
from typing import Any

# On evaluate's run: the training run whose model it scored.
MODEL_RUN_TAG = "imgpipe.model_run_id"


# What MLflow accepts in a param or metric key, besides the dots flatten() joins with:
# letters, digits, _ - and spaces. A slash could make a key read as another path.
_UNSAFE_IN_KEY = re.compile(r"[^\w\- ]")
# MLflow refuses a metric, param or tag key over 250 characters (MAX_ENTITY_KEY_LENGTH in
# mlflow.utils.validation). A class folder's name may be 255 bytes, so one name inside a key
# is held to 100, leaving room for what surrounds it (count.train.<class>, test.class.<class>.f1).
MAX_KEY = 250
MAX_KEY_PART = 100
_HASH = 8  # hex digits of the original name's hash that keep shortened names apart


def key_part(name: Any) -> str:
    """``name`` (a class name, say) made safe inside an MLflow key: anything else becomes _,
    and a name over ``MAX_KEY_PART`` characters is cut, ending in a hash of the whole name."""
    return _bounded(_UNSAFE_IN_KEY.sub("_", str(name)) or "_", MAX_KEY_PART, str(name))


def _bounded(key: str, limit: int, whole: str) -> str:
    if len(key) <= limit:
        return key
    digest = hashlib.sha256(whole.encode("utf-8", errors="surrogatepass")).hexdigest()[:_HASH]
    return f"{key[: limit - _HASH - 1]}-{digest}"


def flatten(params: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """``{"train": {"lr": 0.1}}`` -> ``{"train.lr": 0.1}``; lists stay whole values.

    Each key is made safe for MLflow (``tabby, cat`` -> ``tabby_ cat``) and at most
    ``MAX_KEY`` characters long; keys that become equal get trailing underscores, so no
    value overwrites another.
    """
    flat: dict[str, Any] = {}
    used: set[str] = set()
    for key, value in params.items():
        part = key_part(key)
        while part in used:
            part += "_"
        used.add(part)
        name = f"{prefix}{part}"
        if isinstance(value, dict) and value:
            flat.update(flatten(value, f"{name}."))
        else:
            flat[_bounded(name, MAX_KEY, name)] = value  # a deep nest of long parts: cut the whole key
    return flat


def git_commit(root: Path) -> str | None:
    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], cwd=root, capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return out.stdout.strip() or None if out.returncode == 0 else None


def log_epoch(row: dict[str, float], **extra: float) -> None:
    """One epoch's metrics (an EpochResult as a dict), at step = epoch."""
    import mlflow

    mlflow.log_metrics({**{k: v for k, v in row.items() if k != "epoch"}, **extra}, step=int(row["epoch"]))


def mark_killed(run_id: str) -> None:
    """End a run whose training was killed and will not resume, so it stops showing RUNNING."""
    import mlflow

    client = mlflow.MlflowClient()
    try:
        if client.get_run(run_id).info.status == "RUNNING":
            client.set_terminated(run_id, status="KILLED")
    except Exception:  # the store was reset since: nothing left to mark
        pass


def log_missing_epochs(run_id: str, history: list[dict[str, float]]) -> None:
    """Log the epochs a resumed checkpoint holds that the run lacks (killed between the two)."""
    import mlflow

    logged = {m.step for m in mlflow.MlflowClient().get_metric_history(run_id, "val_loss")}
    for row in history:
        if row["epoch"] not in logged:
            log_epoch(row)
