"""A study's search space: Optuna suggestions for it, and the ``dvc exp run -S`` that set them."""

from __future__ import annotations

import copy
from typing import Any

from imgpipe.errors import ParamsError
from imgpipe.params.tune import Dimension


def suggest(trial: Any, space: dict[str, Dimension]) -> dict[str, Any]:
    """One value per key of ``space``, drawn by the Optuna ``trial``."""
    values = {}
    for key, dim in space.items():
        if isinstance(dim, list):
            values[key] = trial.suggest_categorical(key, dim)
            continue
        (low, high), step = dim.bounds, dim.step
        if dim.kind in ("int", "log_int"):
            values[key] = trial.suggest_int(key, low, high, step=int(step or 1), log=dim.kind == "log_int")
        else:
            values[key] = trial.suggest_float(key, low, high, step=step, log=dim.kind == "log_uniform")
    return values


def corners(space: dict[str, Dimension]) -> list[dict[str, Any]]:
    """Settings that between them hold every choice and both ends of every range, to check
    against the params schema before any trial runs."""
    columns = {key: (dim if isinstance(dim, list) else list(dim.bounds)) for key, dim in space.items()}
    longest = max(len(c) for c in columns.values())
    return [{key: values[i % len(values)] for key, values in columns.items()} for i in range(longest)]


def apply(params: dict[str, Any], values: dict[str, Any]) -> dict[str, Any]:
    """A copy of ``params`` with each dotted key set, making mappings where a key needs one."""
    out = copy.deepcopy(params)
    for key, value in values.items():
        node, parts = out, key.split(".")
        for part in parts[:-1]:
            if not isinstance(node.get(part), dict):
                node[part] = {}  # e.g. train.freeze: none, tuned as train.freeze.unfreeze_last
            node = node[part]
        node[parts[-1]] = value
    return out


def overrides(params: dict[str, Any], values: dict[str, Any]) -> list[str]:
    """``dvc exp run -S`` arguments that set ``values`` in ``params``.

    DVC (Hydra's override grammar) cannot set ``train.freeze.unfreeze_last`` while
    ``train.freeze`` is a string, so such a key sets its parent to a mapping instead:
    ``train.freeze={unfreeze_last: 2}``.
    """
    out = []
    for key, value in values.items():
        parts, node, depth = key.split("."), params, 0
        while depth < len(parts) - 1 and isinstance(node.get(parts[depth]), dict):
            node, depth = node[parts[depth]], depth + 1
        if depth == len(parts) - 1 or parts[depth] not in node:
            out.append(f"{key}={_hydra(value)}")
            continue
        nested: Any = value
        for part in reversed(parts[depth + 1 :]):
            nested = {part: nested}
        out.append(f"{'.'.join(parts[: depth + 1])}={_hydra(nested)}")
    return out


def _hydra(value: Any) -> str:
    """``value`` in Hydra's override grammar, typed as YAML would read it."""
    if isinstance(value, dict):
        return "{" + ", ".join(f"{k}: {_hydra(v)}" for k, v in value.items()) + "}"
    if isinstance(value, bool):
        return "true" if value else "false"
    if value is None:
        return "null"
    if isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, str):
        return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"
    raise ParamsError(
        f"tune.space: cannot pass {value!r} ({type(value).__name__}) to dvc exp run -S; "
        "use numbers, strings, true/false or null"
    )


def describe(values: dict[str, Any]) -> str:
    return " ".join(f"{k}={v:.3g}" if isinstance(v, float) else f"{k}={v}" for k, v in values.items())
