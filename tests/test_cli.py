"""The `imgpipe` console script's housekeeping commands."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow  # each test starts the imgpipe command in a project copy

IMGPIPE = str(Path(sys.executable).parent / "imgpipe")


def test_doctor_passes_on_a_fresh_project_and_says_what_would_rerun(project):
    out = project.run(IMGPIPE, "doctor")
    assert "doctor: all checks passed" in out.stdout
    for name in ("params", "device", "dvc", "mlflow", "source"):
        assert f"[  ok] {name}" in out.stdout
    assert "ingest" in out.stdout and "dvc repro" in out.stdout  # nothing has run yet


def test_doctor_names_a_missing_source_and_the_fix(project):
    project.set_params({"ingest": {"source": "raw/nowhere"}})
    out = project.run(IMGPIPE, "doctor", check=False)
    assert out.returncode == 1
    assert "[FAIL] source" in out.stdout and "raw/nowhere does not exist" in out.stdout
    assert "point ingest.source at a folder" in out.stdout


def test_report_needs_a_run_and_a_known_format(project):
    out = project.run(IMGPIPE, "report", "-o", "summary.pdf", check=False)
    assert out.returncode == 2 and "name it .html or .md" in out.stderr
    out = project.run(IMGPIPE, "report", check=False)  # nothing has been trained yet
    assert out.returncode == 2 and "no runs in MLflow experiment 'imgpipe'" in out.stderr and "dvc repro" in out.stderr
    assert not (project.root / "report.html").exists()


def test_server_without_postgresql_says_how_to_install_it(project, tmp_path):
    bare = tmp_path / "bin"  # a PATH with python but no PostgreSQL tools
    bare.mkdir()
    out = project.run(IMGPIPE, "server", check=False, env={"PATH": str(bare)})
    assert out.returncode == 2
    assert "apt-get install postgresql" in out.stderr and "MLFLOW_TRACKING_URI" in out.stderr


def test_predict_without_a_trained_model_names_both_ways_out(project, tmp_path):
    from PIL import Image

    Image.new("L", (8, 8)).save(tmp_path / "digit.png")
    out = project.run(IMGPIPE, "predict", "--model", "models", str(tmp_path / "digit.png"), check=False)
    assert out.returncode == 2 and "Traceback" not in out.stderr
    assert (
        "holds no trained model" in out.stderr
        and "dvc repro" in out.stderr
        and "models:/<name>/<version>" in out.stderr
    )
