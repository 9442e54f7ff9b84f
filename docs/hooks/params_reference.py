"""The params reference page, written from the pydantic schemas of params.yaml's sections.

Each key's type and bounds come from its annotation, its default from the schema, the value
shipped from params.yaml, and its description from the schema's own comments (else the comment
beside the key in params.yaml): the schemas document their keys in ``#`` comments, not in
``Field(description=...)``, so the comments are read from the source with ``tokenize``.
"""

from __future__ import annotations

import ast
import inspect
import json
import sys
import textwrap
import tokenize
import types
from io import StringIO
from pathlib import Path
from typing import Annotated, Any, Literal, Union, get_args, get_origin

from md_text import escape
from pydantic import BaseModel
from pydantic.fields import FieldInfo
from pydantic_core import PydanticUndefined

from imgpipe.params.base import read_params
from imgpipe.params.sections import OPTIONAL, SECTIONS

# Comments that talk to tools, not to people.
TOOL_COMMENTS = ("type:", "noqa", "pragma")
# A dict's keys are the user's own (tune.space's params keys); the reference names them so.
ANY_KEY = "<key>"
# A shipped value longer than this is summarised: a table cell is no place for a whole list.
LONGEST_VALUE = 60
MISSING = object()


def params_page(root: Path) -> str:
    shipped = read_params(root / "params.yaml")
    beside = yaml_comments(root / "params.yaml")
    lines = [
        "# Params reference",
        "",
        "Every key of `params.yaml`, generated from the pydantic schemas in `src/imgpipe/params/` "
        "each time the site is built, so it cannot drift from what the stages accept. "
        "*required* keys have no default: `params.yaml` must set them. The last column is the value "
        "`params.yaml` ships with. A description is the schema's comment on the key, else the comment beside "
        "it in `params.yaml`. Each stage validates its own section before it works, and the "
        "`check_params` stage the whole file; a wrong key or value stops with a message naming it.",
        "",
    ]
    for name, schema in [*SECTIONS.items(), *OPTIONAL.items()]:
        lines += section_lines(name, schema, shipped.get(name, MISSING), beside, optional=name in OPTIONAL)
    return "\n".join(lines) + "\n"


def section_lines(
    name: str, schema: type[BaseModel], shipped: Any, beside: dict[str, str], optional: bool
) -> list[str]:
    module_doc = inspect.getdoc(sys.modules[schema.__module__]) or ""
    about = module_doc.split("\n\n")[0].replace("\n", " ")
    lines = [f"## {name} {{#{name}}}", "", escape(about, table_cell=False), ""]
    if optional:
        lines += ["The section is optional.", ""]
    lines += ["| key | type | default | description | in params.yaml |", "|---|---|---|---|---|"]
    for key, annotation, info, description in walk(schema, name):
        cells = [
            f"`{key}`",
            escape(type_text(annotation, info)),
            escape(default_text(info)),
            escape(description or beside.get(key, "")),
            escape(code(value_text(lookup(shipped, key.split(".")[1:])))),
        ]
        lines.append("| " + " | ".join(cells) + " |")
    return [*lines, ""]


def walk(model: type[BaseModel], prefix: str):
    """(dotted key, annotation, FieldInfo, description) of every field, nested models included."""
    comments = field_comments(model)
    for name, info in model.model_fields.items():
        key = f"{prefix}.{info.alias or name}"
        own = " ".join(filter(None, [info.description, comments.get(name)]))
        if get_origin(info.annotation) is dict:  # the user names the keys: one row stands for them all
            yield key, info.annotation, info, own
            yield from walk_values(f"{key}.{ANY_KEY}", get_args(info.annotation)[1])
            continue
        nested = models_in(info.annotation)
        yield key, info.annotation, info, own or " ".join(class_description(m) for m in nested)
        for inner in nested:
            yield from walk(inner, key)


def walk_values(key: str, annotation: Any):
    """The row of a dict's values, and the keys of the models they may be."""
    nested = models_in(annotation)
    yield key, annotation, None, " ".join(class_description(m) for m in nested)
    for inner in nested:
        yield from walk(inner, key)


def models_in(annotation: Any) -> list[type[BaseModel]]:
    """The pydantic models an annotation can hold (directly, in a union, or as a dict's values)."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return [annotation]
    found = []
    for arg in get_args(annotation):
        found += [m for m in models_in(arg) if m not in found]
    return found


def field_comments(model: type[BaseModel]) -> dict[str, str]:
    """Each field's comments: the block of comment lines just above it and the ones on its lines.

    The block above a class's first statement describes the class (``class_description``)."""
    source = textwrap.dedent(inspect.getsource(model))
    comments = comment_lines(source)
    body = ast.parse(source).body[0].body
    found: dict[str, str] = {}
    previous_end = body[0].lineno - 1 if body else 0
    for i, node in enumerate(body):
        above = [] if i == 0 else block_above(comments, node.lineno, previous_end)
        trailing = [comments[n] for n in range(node.lineno, node.end_lineno + 1) if n in comments]
        if isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
            found[node.target.id] = " ".join(above + trailing)
        previous_end = node.end_lineno
    return {name: text for name, text in found.items() if text}


def class_description(model: type[BaseModel]) -> str:
    if model.__doc__ and model.__doc__ is not BaseModel.__doc__:
        return " ".join(inspect.cleandoc(model.__doc__).split())
    source = textwrap.dedent(inspect.getsource(model))
    body = ast.parse(source).body[0].body
    return " ".join(block_above(comment_lines(source), body[0].lineno, 1)) if body else ""


def block_above(comments: dict[int, str], line: int, floor: int) -> list[str]:
    """The comment-only lines directly above ``line`` (no blank line between), down to ``floor``."""
    block = []
    n = line - 1
    while n > floor and n in comments:
        block.insert(0, comments[n])
        n -= 1
    return block


def comment_lines(source: str) -> dict[int, str]:
    """Comment text by line number, tools' comments left out."""
    comments = {}
    for token in tokenize.generate_tokens(StringIO(source).readline):
        if token.type == tokenize.COMMENT:
            text = token.string.lstrip("#").strip()
            if text and not text.startswith(TOOL_COMMENTS):
                comments[token.start[0]] = text
    return comments


def type_text(annotation: Any, info: FieldInfo | None = None) -> str:
    """A type as a reader of params.yaml sees it, with its bounds: ``int in [1, 10000]``."""
    args = get_args(annotation)
    optional = get_origin(annotation) in (Union, types.UnionType) and type(None) in args
    if optional:  # the bounds are the value's, so they go before "or null"
        rest = [a for a in args if a is not type(None)]
        annotation = rest[0] if len(rest) == 1 else Union[tuple(rest)]
    text = with_bounds(plain_type(annotation), bounds_text(info.metadata) if info is not None else "")
    return f"{text} or `null`" if optional else text


def with_bounds(text: str, bounds: str) -> str:
    """``int in [1, 64]``, but ``str, length ≥ 1``: an interval reads as part of the type."""
    if not bounds:
        return text
    return f"{text}, {bounds}" if bounds.startswith(("length", "matching")) else f"{text} {bounds}"


def plain_type(annotation: Any) -> str:
    origin, args = get_origin(annotation), get_args(annotation)
    if origin is Annotated:
        return with_bounds(plain_type(args[0]), bounds_text(args[1:]))
    if origin is Literal:
        return "one of " + ", ".join(f"`{value_text(a)}`" for a in args)
    if origin in (Union, types.UnionType):
        parts = [plain_type(a) for a in args if a is not type(None)]
        return " or ".join(parts + (["`null`"] if type(None) in args else []))
    if origin in (list, tuple):
        return f"{origin.__name__} of {' and '.join(dict.fromkeys(plain_type(a) for a in args if a is not ...))}"
    if origin is dict:
        return f"mapping of {plain_type(args[0])} to {plain_type(args[1])}"
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return "mapping (keys below)"
    if annotation is Any:
        return "any"
    return getattr(annotation, "__name__", str(annotation))


def bounds_text(metadata: Any) -> str:
    """Interval notation for ge/gt/le/lt (``in [0, 1)``, ``≥ 0``), then length and pattern."""
    found: dict[str, Any] = {}
    for item in metadata:
        for constraint in item.metadata if isinstance(item, FieldInfo) else [item]:
            for attr in ("ge", "gt", "le", "lt", "min_length", "max_length", "pattern"):
                if getattr(constraint, attr, None) is not None:
                    found[attr] = getattr(constraint, attr)
    parts = [interval(found)]
    if "max_length" in found:
        parts.append(f"length {found.get('min_length', 0)} to {found['max_length']}")
    elif "min_length" in found:
        parts.append(f"length ≥ {found['min_length']}")
    if "pattern" in found:
        parts.append(f"matching `{found['pattern']}`")
    return ", ".join(p for p in parts if p)


def interval(found: dict[str, Any]) -> str:
    low = ("[", found["ge"]) if "ge" in found else ("(", found["gt"]) if "gt" in found else None
    high = (found["le"], "]") if "le" in found else (found["lt"], ")") if "lt" in found else None
    if low and high:
        return f"in {low[0]}{low[1]}, {high[0]}{high[1]}"
    if low:
        return f"{'≥' if low[0] == '[' else '>'} {low[1]}"
    if high:
        return f"{'≤' if high[1] == ']' else '<'} {high[0]}"
    return ""


def default_text(info: FieldInfo | None) -> str:
    if info is None:  # a dict's values: the user's keys have no default
        return ""
    if info.default is PydanticUndefined and info.default_factory is None:
        return "*required*"
    value = info.default if info.default_factory is None else info.default_factory()
    return "its keys' defaults" if isinstance(value, BaseModel) else f"`{value_text(value)}`"


def yaml_comments(path: Path) -> dict[str, str]:
    """The comment beside each key of a YAML file, by dotted key (what ruamel.yaml keeps of it)."""
    from ruamel.yaml import YAML

    found: dict[str, str] = {}
    stack = [("", YAML().load(path.read_text()))]
    while stack:
        prefix, node = stack.pop()
        for key, value in node.items():
            dotted = f"{prefix}.{key}" if prefix else str(key)
            token = (node.ca.items.get(key) or [None] * 3)[2]
            if token is not None:
                found[dotted] = comment_text(token.value, token.column)
            if isinstance(value, dict):
                stack.append((dotted, value))
    return found


def comment_text(value: str, column: int) -> str:
    """A key's comment and the lines that continue it at the same column; ruamel.yaml hands over
    the comment lines above the next key in the same token, indented less."""
    first, *rest = value.split("\n")
    lines = [first]
    for line in rest:
        if not line.startswith(" " * column + "#"):
            break
        lines.append(line)
    return " ".join(line.strip().lstrip("#").strip() for line in lines)


def lookup(value: Any, path: list[str]) -> Any:
    for part in path:
        if not isinstance(value, dict) or part not in value:
            return MISSING
        value = value[part]
    return value


def value_text(value: Any) -> str:
    """A value as YAML spells it; a long one summarised."""
    if value is MISSING:
        return ""
    text = flow(value)
    if isinstance(value, str) or len(text) <= LONGEST_VALUE:
        return text
    return f"a list of {len(value)}" if isinstance(value, list) else f"a mapping of {len(value)} keys"


def flow(value: Any) -> str:
    """YAML's flow style, as params.yaml writes short mappings: {name: none, step_size: 10}."""
    if isinstance(value, dict):
        return "{" + ", ".join(f"{k}: {flow(v)}" for k, v in value.items()) + "}"
    if isinstance(value, list):
        return "[" + ", ".join(flow(v) for v in value) + "]"
    return value if isinstance(value, str) else json.dumps(value)


def code(text: str) -> str:
    return f"`{text}`" if text else ""
