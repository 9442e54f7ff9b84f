"""Where a study is declared (params.yaml's ``tune:``, or ``tune.yaml`` beside it) and a check
that every setting it may try is one the pipeline accepts, before the first trial runs."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pydantic import ValidationError

from imgpipe.errors import ParamsError
from imgpipe.params.base import format_validation_error, load_yaml, read_params
from imgpipe.params.sections import SECTIONS
from imgpipe.params.tune import TuneConfig
from imgpipe.tune.space import apply, corners


def load_tune_config(params_path: Path) -> TuneConfig:
    """The study's settings: params.yaml's ``tune`` section, or ``tune.yaml`` beside it."""
    raw = read_params(params_path)
    side = params_path.with_name("tune.yaml")
    if side.is_file():
        if TuneConfig.is_defined(raw):
            raise ParamsError(f"both {params_path.name} (section tune) and {side.name} declare a study; keep one.")
        section, where = load_yaml(side) or {}, side
    elif TuneConfig.is_defined(raw):
        section, where = raw["tune"] or {}, params_path
    else:
        raise ParamsError(
            f"no search space: add a tune section to {params_path.name}, or a tune.yaml beside it, "
            "with at least tune.space (docs/how-to/tune.md)."
        )
    try:
        return TuneConfig.model_validate(section)
    except ValidationError as exc:
        raise ParamsError(format_validation_error(exc, "tune", where)) from None


def check_space(params_path: Path, cfg: TuneConfig) -> None:
    """Refuse, naming the key, a space whose choices or range ends the pipeline would reject."""
    params = read_params(params_path)
    for values in corners(cfg.space):
        trial = apply(params, values)
        for section in {key.split(".")[0] for key in values}:
            try:
                SECTIONS[section].model_validate(trial[section])
            except ValidationError as exc:
                detail = format_validation_error(exc, section, params_path).replace(f"{params_path.name}: ", "")
                tried = ", ".join(f"{k}={v!r}" for k, v in values.items() if k.startswith(f"{section}."))
                raise ParamsError(f"tune.space: a trial with {tried} would be refused: {detail}") from None


def read_metric(metrics: dict[str, Any], key: str) -> float:
    """``val.balanced_accuracy`` -> ``metrics["val"]["balanced_accuracy"]``."""
    node: Any = metrics
    for part in key.split("."):
        if not isinstance(node, dict) or part not in node:
            raise ParamsError(
                f"tune.metric: {key} is not in metrics.json (it has {', '.join(_keys(metrics))}); name one of those."
            )
        node = node[part]
    return float(node)


def _keys(metrics: dict[str, Any], prefix: str = "") -> list[str]:
    out = []
    for key, value in metrics.items():
        out += _keys(value, f"{prefix}{key}.") if isinstance(value, dict) else [f"{prefix}{key}"]
    return out
