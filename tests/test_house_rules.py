"""The code's own rules, checked so they hold: short functions, one owner per file name."""

import ast
from pathlib import Path

import pytest

from imports import REPO

CODE = sorted([*(REPO / "src").rglob("*.py"), *(REPO / "stages").glob("*.py")])
MAX_LINES = 60


def functions(path: Path):
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            yield node


def string_literals(path: Path) -> set[str]:
    """Every string constant in ``path`` that is code, not a docstring."""
    tree = ast.parse(path.read_text())
    docstrings = {
        id(n.body[0].value)
        for n in ast.walk(tree)
        if isinstance(n, (ast.Module, ast.ClassDef, ast.FunctionDef))
        and n.body
        and isinstance(n.body[0], ast.Expr)
        and isinstance(n.body[0].value, ast.Constant)
    }
    return {
        n.value
        for n in ast.walk(tree)
        if isinstance(n, ast.Constant) and isinstance(n.value, str) and id(n) not in docstrings
    }


def test_no_function_is_longer_than_about_a_screen():
    long = [
        f"{path.relative_to(REPO)}:{fn.lineno} {fn.name} ({fn.end_lineno - fn.lineno + 1} lines)"
        for path in CODE
        for fn in functions(path)
        if fn.end_lineno - fn.lineno + 1 > MAX_LINES
    ]
    assert not long, "split these functions: " + "; ".join(long)


def owned_file_names() -> dict[str, Path]:
    """Names of the files inside the stages' output folders, by the store module that owns them."""
    owned = {}
    for path in (REPO / "src/imgpipe/store").glob("*.py"):
        for node in ast.parse(path.read_text()).body:
            names = [t.id for t in getattr(node, "targets", []) if isinstance(t, ast.Name)]
            if any(n.endswith("_FILE") for n in names) and isinstance(node.value, ast.Constant):
                owned[node.value.value] = path
    return owned


def test_the_store_names_the_files_of_every_stage_folder():
    assert {
        "classes.json",
        "manifest.csv",
        "preprocessing.json",
        "training.json",
        "pipeline.json",
        "model.pt",
        "model.json",
        "run.json",
    } <= set(owned_file_names())


@pytest.mark.parametrize("name", sorted(owned_file_names()))
def test_a_stage_folders_file_name_is_spelled_only_by_its_owner(name):
    owner = owned_file_names()[name]
    spelled = [p.relative_to(REPO) for p in CODE if p != owner and any(name in s for s in string_literals(p))]
    assert not spelled, (
        f"{name} belongs to {owner.relative_to(REPO)}; go through it instead of spelling it in {spelled}"
    )


def test_library_code_logs_and_leaves_printing_to_the_stages_and_the_command():
    """Library output goes through ``logging`` (imgpipe.logs shows it), so code that imports
    the library decides what is shown; the stages, ``imgpipe``'s command modules and
    ``run_stage``'s one-sentence errors print."""
    printers = {REPO / "src/imgpipe/errors.py"}
    library = [
        p
        for p in (REPO / "src/imgpipe").rglob("*.py")
        if "cli" not in p.relative_to(REPO / "src/imgpipe").parts and p not in printers
    ]
    prints = [
        f"{path.relative_to(REPO)}:{node.lineno}"
        for path in library
        for node in ast.walk(ast.parse(path.read_text()))
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == "print"
    ]
    assert library and not prints, "log these instead (log = logging.getLogger(__name__)): " + ", ".join(prints)
