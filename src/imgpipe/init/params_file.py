"""Writing ``init``'s choices into params.yaml with its comments kept (ruamel.yaml round trip)."""

from __future__ import annotations

import io
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from ruamel.yaml import YAML
from ruamel.yaml.comments import CommentedMap, CommentedSeq

from imgpipe.errors import ImgpipeError
from imgpipe.init.recipe import Choice
from imgpipe.params.sections import check_all
from imgpipe.store.atomic import atomic_path


def _yaml() -> YAML:
    yaml = YAML()  # round trip: comments, key order and flow style survive
    yaml.preserve_quotes = True
    yaml.width = 4096  # never fold a long line the user wrote on one
    yaml.indent(mapping=2, sequence=4, offset=2)
    # null, as params.yaml spells it, not ruamel's empty value
    yaml.representer.add_representer(type(None), lambda r, _: r.represent_scalar("tag:yaml.org,2002:null", "null"))
    return yaml


def updated_params(template: Path, choices: Iterable[Choice]) -> str:
    """The text of ``template`` (a params.yaml) with each choice's key set to its value."""
    try:
        data = _yaml().load(template.read_text())
    except FileNotFoundError:
        raise ImgpipeError(
            f"imgpipe init: {template} not found; run it in the project root, where params.yaml "
            "lives (or pass --params)."
        ) from None
    for choice in choices:
        *parents, last = choice.key.split(".")
        node = data
        for name in parents:
            node = node[name]
        _set(node, last, choice.value)
    out = io.StringIO()
    _yaml().dump(data, out)
    return out.getvalue()


def _set(node: CommentedMap, key: str, value: Any) -> None:
    """Set ``node[key]``; a mapping already there is updated in place, keeping its style,
    comments and the keys not chosen."""
    old = node.get(key)
    if isinstance(value, dict) and isinstance(old, CommentedMap):
        for name, item in value.items():
            _set(old, name, item)
    elif isinstance(value, dict):
        node[key] = _flow(CommentedMap(value))
    elif isinstance(value, list):
        node[key] = _flow(CommentedSeq(value))
    else:
        node[key] = value


def _flow(node: CommentedMap | CommentedSeq) -> CommentedMap | CommentedSeq:
    node.fa.set_flow_style()
    return node


def write_params(template: Path, output: Path, choices: Iterable[Choice]) -> None:
    """Write the updated params to ``output`` atomically, only once every section validates."""
    text = updated_params(template, choices)
    with atomic_path(output) as tmp:
        tmp.write_text(text)
        check_all(tmp)  # a choice the schema refuses is init's bug: stop before replacing the file
