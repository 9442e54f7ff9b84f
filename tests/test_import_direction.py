"""Imports go one way: stages -> library, tests and benches -> library, and inside the
library no package imports one that imports it back (read with ``ast``; nothing runs).

A circle makes a rerun boundary meaningless (a change anywhere in it reruns everything
that touches any of it) and lets a stage script become library code by accident, as
``train/ray_launcher.py`` once imported ``stages/train.py``.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from imports import SRC, imported_modules

PACKAGE = SRC / "imgpipe"
REPO = SRC.parent


def unit(module: str) -> str:
    """The top-level piece of imgpipe a module belongs to: ``imgpipe.train.loop`` -> ``train``."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "imgpipe"


def package_graph() -> dict[str, set[str]]:
    graph: dict[str, set[str]] = {}
    for path in PACKAGE.rglob("*.py"):
        me = path.relative_to(PACKAGE).parts[0].removesuffix(".py")
        if me == "__init__":
            continue
        others = {unit(name) for name in imported_modules(path)} - {me, "imgpipe"}
        graph.setdefault(me, set()).update(others)
    return graph


def find_circle(graph: dict[str, set[str]]) -> list[str] | None:
    """One import circle of ``graph`` (a depth-first search), or None."""
    state: dict[str, str] = {}

    def visit(node: str, trail: list[str]) -> list[str] | None:
        state[node] = "open"
        for other in sorted(graph.get(node, ())):
            if state.get(other) == "open":
                return trail[trail.index(other) :] + [other] if other in trail else [node, other]
            if other not in state and (found := visit(other, trail + [other])):
                return found
        state[node] = "done"
        return None

    for node in sorted(graph):
        if node not in state and (found := visit(node, [node])):
            return found
    return None


def test_no_package_of_the_library_imports_one_that_imports_it_back():
    circle = find_circle(package_graph())
    assert circle is None, f"import circle among imgpipe's packages: {' -> '.join(circle)}"


def test_the_circle_finder_finds_one():
    assert find_circle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_circle({"a": {"b"}, "b": set()}) is None


def top_level_names(path: Path) -> set[str]:
    names = set()
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            names.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            names.add(node.module.split(".")[0])
    return names


@pytest.mark.parametrize("path", sorted(PACKAGE.rglob("*.py")), ids=lambda p: str(p.relative_to(SRC)))
def test_the_library_imports_no_stage_script_and_no_test_helper(path):
    wrong = top_level_names(path) & {"stages", "tests", "helpers", "conftest", "model_helpers", "bench"}
    assert not wrong, f"{path.relative_to(REPO)} imports {sorted(wrong)}: move what it needs into the library"


@pytest.mark.parametrize("path", sorted((REPO / "stages").glob("*.py")), ids=lambda p: p.name)
def test_a_stage_script_imports_the_library_not_another_stage(path):
    assert "stages" not in top_level_names(path), f"{path.name} imports another stage: share it through imgpipe"
