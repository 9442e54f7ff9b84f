"""imgpipe.sandbox: the project copies that tests and benchmarks share, and who may import it."""

from __future__ import annotations

import ast
import re

import pytest
import yaml

from imgpipe import sandbox
from imgpipe.errors import ImgpipeError
from imports import REPO, files_run


def test_a_copy_holds_this_checkouts_pipeline_under_git(tmp_path):
    project = sandbox.copy_project(tmp_path / "proj")
    assert (project.root / "dvc.yaml").read_text() == (REPO / "dvc.yaml").read_text()
    assert project.params == yaml.safe_load((REPO / "params.yaml").read_text())
    assert (project.root / "src" / "imgpipe" / "sandbox.py").is_file() and not list(project.root.rglob("__pycache__"))
    project.set_params({"train": {"epochs": 1}})
    assert (
        project.params["train"]["epochs"] == 1
        and project.params["train"]["lr"] == yaml.safe_load((REPO / "params.yaml").read_text())["train"]["lr"]
    )  # merged into its section, not replacing it
    project.commit("copy")
    assert project.run("git", "status", "--porcelain").stdout == ""


def test_outside_a_checkout_the_error_says_where_it_looked(tmp_path, monkeypatch):
    monkeypatch.setattr(sandbox, "__file__", str(tmp_path / "site-packages" / "imgpipe" / "sandbox.py"))
    with pytest.raises(ImgpipeError, match=re.escape(f"{tmp_path} has no dvc.yaml")):
        sandbox.copy_project(tmp_path / "proj")
    assert not (tmp_path / "proj").exists()


def test_a_failed_command_fails_with_its_output():
    with pytest.raises(AssertionError, match="exited 3\nstdout:\nsaid this"):
        sandbox.run(["sh", "-c", "echo said this; exit 3"], REPO)


def imported(path) -> set[str]:
    names = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
    return names


@pytest.mark.parametrize("script", sorted(p.name for p in (REPO / "bench").glob("*.py")))
def test_benchmarks_import_the_library_not_the_tests_helpers(script):
    # Imports go one way: tests and benches use the library, and neither uses the other.
    path = REPO / "bench" / script
    assert not imported(path) & {"helpers", "model_helpers", "imports", "conftest"}, script
    assert '"tests"' not in path.read_text(), f"{script} puts tests/ on sys.path"


@pytest.mark.parametrize("stage", sorted(p.stem for p in (REPO / "stages").glob("*.py") if p.stem != "__init__"))
def test_no_stage_runs_the_sandbox(stage):
    # A stage that imported it would rerun whenever the test harness changed.
    assert REPO / "src" / "imgpipe" / "sandbox.py" not in files_run(REPO / "stages" / f"{stage}.py")
