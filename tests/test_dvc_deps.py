"""dvc.yaml's code deps are exactly the files each stage runs: no more, no fewer.

A module boundary is a rerun boundary. A file a stage imports but does not list would
let an edit there go unnoticed by `dvc repro`; a file it lists but never imports would
rerun the stage (and everything after it) for nothing.
"""

from pathlib import Path

import pytest
import yaml

from imports import REPO, files_run, python_files

STAGES = yaml.safe_load((REPO / "dvc.yaml").read_text())["stages"]
CODE = ("stages/", "src/")


def code_deps(stage: str) -> dict[Path, str]:
    """Each .py file the stage's code deps cover, mapped to the dep that covers it."""
    covered = {}
    for dep in STAGES[stage]["deps"]:
        if dep.startswith(CODE):
            assert (REPO / dep).exists(), f"dvc.yaml: stage {stage} depends on {dep}, which does not exist"
            covered.update({path: dep for path in python_files(REPO / dep)})
    return covered


@pytest.mark.parametrize("stage", list(STAGES))
def test_every_file_a_stage_runs_is_a_dependency(stage):
    script = REPO / STAGES[stage]["cmd"].split("-m ")[1].replace(".", "/")
    missing = sorted(str(p.relative_to(REPO)) for p in files_run(script.with_suffix(".py")) - set(code_deps(stage)))
    assert not missing, f"dvc.yaml: stage {stage} runs {', '.join(missing)} but does not list it in deps"


@pytest.mark.parametrize("stage", list(STAGES))
def test_a_stage_lists_no_code_it_does_not_run(stage):
    script = (REPO / STAGES[stage]["cmd"].split("-m ")[1].replace(".", "/")).with_suffix(".py")
    ran = files_run(script)  # once: walking the imports for every dep took a minute
    unused = sorted(f"{p.relative_to(REPO)} (via {dep})" for p, dep in code_deps(stage).items() if p not in ran)
    assert not unused, f"dvc.yaml: stage {stage} depends on {', '.join(unused)}, which it never imports"


def test_the_import_walk_sees_imports_inside_functions(tmp_path):
    # The walk must be conservative: a lazy import in a function still runs in the stage.
    from imports import imported_modules

    script = tmp_path / "s.py"
    script.write_text("def main():\n    from imgpipe.store import ingested\n    import imgpipe.viz.grids\n")
    assert imported_modules(script) >= {"imgpipe.store", "imgpipe.store.ingested", "imgpipe.viz.grids"}


@pytest.mark.parametrize("stage", list(STAGES))
def test_the_committed_dvc_lock_matches_each_stages_code(stage):
    """An edit to a stage's code without `dvc repro` leaves dvc.lock stale: every clone's
    `dvc status` then says the pipeline changed, and metrics.json is not what the code makes."""
    import hashlib

    lock = yaml.safe_load((REPO / "dvc.lock").read_text())["stages"]
    stale = [
        dep["path"]
        for dep in lock[stage]["deps"]
        if dep["path"].startswith(CODE)
        and (REPO / dep["path"]).is_file()
        and hashlib.md5((REPO / dep["path"]).read_bytes()).hexdigest() != dep["md5"]
    ]
    assert not stale, (
        f"dvc.lock: stage {stage}'s {', '.join(stale)} changed since it ran; run `dvc repro` and commit dvc.lock"
    )
