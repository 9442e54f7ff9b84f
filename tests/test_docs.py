"""The docs site: it builds with no warning (a broken link or anchor fails ``--strict``), its
generated reference pages cover every command, flag and params key, the README stays short
with links that resolve, and the headline benchmarks agree with their topic pages."""

from __future__ import annotations

import argparse
import html
import inspect
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any, get_args, get_origin

import pytest
from pydantic import BaseModel
from pydantic_core import PydanticUndefined

from imgpipe.cli import build_parser
from imgpipe.params.base import read_params
from imgpipe.params.sections import OPTIONAL, SECTIONS

ROOT = Path(__file__).resolve().parent.parent
SCHEMAS = {**SECTIONS, **OPTIONAL}
README_MAX_LINES = 150


def subcommands() -> dict[str, argparse.ArgumentParser]:
    parser = build_parser()
    return next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction)).choices


@pytest.fixture(scope="module")
def site(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("site")
    done = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "-d", str(out)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=600,
        env={**os.environ, "NO_MKDOCS_2_WARNING": "1"},
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "WARNING" not in done.stderr, done.stderr
    return out


def page_text(site: Path, page: str) -> str:
    """A built page's visible text (tags dropped, entities decoded), whitespace collapsed."""
    raw = (site / page / "index.html").read_text()
    return " ".join(html.unescape(re.sub(r"<[^>]+>", " ", raw)).split())


def section_html(site: Path, page: str, anchor: str) -> str:
    """The HTML of one h2 section of a built page, from its heading to the next h2."""
    raw = (site / page / "index.html").read_text()
    start = raw.index(f'id="{anchor}"')
    end = raw.find("<h2", start)
    return raw[start : end if end != -1 else len(raw)]


def visible(fragment: str) -> str:
    return " ".join(html.unescape(re.sub(r"<[^>]+>", " ", fragment)).split())


@pytest.mark.parametrize("name", sorted(subcommands()))
def test_the_cli_reference_shows_every_command_with_its_arguments(site, name):
    command = subcommands()[name]
    text = visible(section_html(site, "reference/cli", name))
    assert f"imgpipe {name}" in text
    for action in command._actions:
        if isinstance(action, argparse._HelpAction):
            continue
        for shown in action.option_strings or [action.metavar or action.dest]:
            assert shown in text, f"imgpipe {name}: {shown} is not on the CLI reference page"
        if action.choices:
            assert all(str(choice) in text for choice in action.choices), (name, action.dest)


def schema_keys(model: type[BaseModel], prefix: str):
    """(dotted key, field) of every field, nested models included; a dict's own keys are <key>."""
    for name, field in model.model_fields.items():
        key = f"{prefix}.{field.alias or name}"
        yield key, field
        dict_values = get_args(field.annotation)[1] if get_origin(field.annotation) is dict else None
        for inner in models_within(dict_values if dict_values is not None else field.annotation):
            yield from schema_keys(inner, f"{key}.<key>" if dict_values is not None else key)


def models_within(annotation: Any) -> list[type[BaseModel]]:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return [annotation]
    return [m for arg in get_args(annotation) for m in models_within(arg)]


def params_rows(site: Path) -> dict[str, str]:
    """The params page's table rows, by the key in their first cell, as visible text."""
    raw = (site / "reference/params/index.html").read_text()
    rows = {}
    for row in re.findall(r"<tr>(.*?)</tr>", raw, re.S):
        cells = [visible(c) for c in re.findall(r"<td[^>]*>(.*?)</td>", row, re.S)]
        if cells:
            rows[cells[0]] = " | ".join(cells)
    return rows


def test_the_params_reference_has_every_key_of_every_section(site):
    rows = params_rows(site)
    for section, schema in SCHEMAS.items():
        for key, _ in schema_keys(schema, section):
            assert key in rows, f"{key} is not on the params reference page"
    shipped = read_params(ROOT / "params.yaml")
    for section, values in shipped.items():
        for key in values:
            assert f"{section}.{key}" in rows, f"params.yaml's {section}.{key} is not on the params reference page"


def test_the_params_reference_shows_each_keys_default_and_its_comment(site):
    rows = params_rows(site)
    spelled = {True: "true", False: "false", None: "null"}
    for section, schema in SCHEMAS.items():
        for key, field in schema_keys(schema, section):
            cells = rows[key].split(" | ")
            if field.default is PydanticUndefined and field.default_factory is None:
                assert cells[2] == "required", (key, cells)
            elif isinstance(field.default, (bool, type(None))):
                assert cells[2] == spelled[field.default], (key, cells)
            elif isinstance(field.default, (int, float, str)):
                assert cells[2] == str(field.default), (key, cells)
        for key, comment in trailing_comments(schema, section).items():
            assert comment in rows[key], f"{key}: its schema comment {comment!r} is not on the params page"


def trailing_comments(model: type[BaseModel], prefix: str) -> dict[str, str]:
    """The comment on a one-line field's own line (``lr: float = ...  # why``), by dotted key,
    for the model and the models nested in it."""
    found = {}
    for line in inspect.getsource(model).splitlines():
        match = re.match(r"\s+(\w+): [^#]*#\s*(.+)$", line)
        field = model.model_fields.get(match.group(1)) if match else None
        if field is not None and not match.group(2).startswith("type:"):
            found[f"{prefix}.{field.alias or match.group(1)}"] = " ".join(match.group(2).replace("`", "").split())
    for key, field in schema_keys(model, prefix):
        if key.count(".") == prefix.count(".") + 1:  # the model's own fields: recurse one level at a time
            dict_values = get_args(field.annotation)[1] if get_origin(field.annotation) is dict else None
            for inner in models_within(dict_values if dict_values is not None else field.annotation):
                found.update(trailing_comments(inner, f"{key}.<key>" if dict_values is not None else key))
    return found


def test_the_readme_is_short_and_its_relative_links_resolve():
    readme = (ROOT / "README.md").read_text()
    assert len(readme.splitlines()) <= README_MAX_LINES
    links = re.findall(r"\]\(([^)\s]+)\)", readme)
    relative = [link.split("#")[0] for link in links if not re.match(r"[a-z]+:", link) and not link.startswith("#")]
    assert relative, "the README links into the docs"
    missing = [link for link in relative if not (ROOT / link).exists()]
    assert not missing, f"README.md links to {missing}, which do not exist"


def test_every_headline_number_is_on_the_benchmark_page_it_links_to():
    """BENCHMARKS.md's headline table repeats results from the topic pages: it must not drift."""
    rows = [line for line in (ROOT / "BENCHMARKS.md").read_text().splitlines() if "](docs/benchmarks/" in line]
    assert rows
    for row in rows:
        cells = [c.strip() for c in row.strip("|").split("|")]
        if len(cells) != 3:  # the index of topics: no numbers to check
            continue
        page = ROOT / re.search(r"\]\((docs/benchmarks/[\w-]+\.md)", cells[2]).group(1)
        text = page.read_text()
        for number in re.findall(r"\d[\d,.]*\d|\d", cells[1]):
            assert number in text, f"{number} ({cells[0]}) is not on {page.name}"
