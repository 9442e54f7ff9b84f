"""Reading ``params.yaml`` into frozen, validated section objects.

Each stage validates its own slice of ``params.yaml`` before doing any work; an unknown
key, a wrong type or an out-of-range value stops it with a message that names the key.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, ClassVar, TypeVar

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from imgpipe.errors import ParamsError

# The top-level sections params.yaml may hold; each has a schema in this package.
# tune (imgpipe tune's search) is optional: no stage reads it.
SECTION_NAMES = ("ingest", "balance", "augment", "train", "evaluate", "mlflow", "tune")

Fraction = Field(gt=0.0, lt=1.0)
# The deepest nesting a params file may have: params.yaml needs 5 levels (augment's
# transform arguments); far deeper ones exhaust the stack of the YAML parser, pydantic
# or MLflow's params logging, in a traceback.
MAX_DEPTH = 32


class KeyedError(ValueError):
    """A cross-field check's failure, pinned to the key the user should change.

    ``model_validator(mode="after")`` errors belong to the whole section; this carries
    the key, so the message still names ``section.key``.
    """

    def __init__(self, key: str, message: str):
        super().__init__(message)
        self.key = key


class Strict(BaseModel):
    # allow_inf_nan: a .inf or .nan (YAML's spellings) passes every range check pydantic
    # makes of a float, and trains a NaN model; no param or spec value means either.
    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)


class SectionConfig(Strict):
    """One top-level section of params.yaml; ``section`` names it."""

    section: ClassVar[str]

    @classmethod
    def load(cls: type[_C], params_path: Path) -> _C:
        raw = read_params(params_path)
        if cls.section not in raw:
            raise ParamsError(
                f"{params_path.name}: section '{cls.section}' is missing; add it (the docs' params reference lists its keys)."
            )
        try:
            return cls.model_validate(raw[cls.section] or {})
        except ValidationError as exc:
            raise ParamsError(format_validation_error(exc, cls.section, params_path)) from None


_C = TypeVar("_C", bound=SectionConfig)


def read_params(path: Path) -> dict[str, Any]:
    """params.yaml as a dict, with unknown top-level sections refused."""
    if not path.is_file():
        raise ParamsError(f"{path} not found: run from the project root, where params.yaml lives.")
    raw = load_yaml(path) or {}
    if not isinstance(raw, dict):
        raise ParamsError(f"{path.name} must be a mapping of sections (ingest, balance, ...).")
    unknown = sorted(set(raw) - set(SECTION_NAMES))
    if unknown:
        raise ParamsError(
            f"{path.name}: unknown section(s) {', '.join(unknown)}; expected only {', '.join(SECTION_NAMES)}."
        )
    return raw


def load_yaml(path: Path) -> Any:
    """A YAML file's data, refused in one sentence when it is not YAML or nested too deep."""
    too_deep = ParamsError(
        f"{path.name} is nested more than {MAX_DEPTH} levels deep, which no setting needs; "
        "fix its indentation or brackets."
    )
    try:
        data = yaml.safe_load(path.read_text())
    except yaml.YAMLError as exc:
        raise ParamsError(f"{path.name} is not valid YAML: {exc}") from None
    except RecursionError:  # PyYAML composes nested nodes recursively
        raise too_deep from None
    stack = [(data, 1)]
    while stack:  # a loop: recursion would fail on the very input it looks for
        node, depth = stack.pop()
        if isinstance(node, (dict, list)):
            if depth > MAX_DEPTH:
                raise too_deep
            stack.extend((child, depth + 1) for child in (node.values() if isinstance(node, dict) else node))
    return data


def format_validation_error(exc: ValidationError, section: str, path: Path) -> str:
    lines = []
    for err in exc.errors():
        cause = (err.get("ctx") or {}).get("error")
        loc = [str(p) for p in err["loc"]]
        if isinstance(cause, KeyedError):
            loc, message, given = [*loc, cause.key], str(cause), ""
        else:
            message = err["msg"]
            given = f" (got {err['input']!r})" if err["type"] != "missing" else ""
        key = ".".join([section, *loc])
        lines.append(f"{path.name}: {key}: {message}{given}")
    return "\n".join(lines)
