"""imgpipe report's pages: what a run holds, shown as text, never as markup."""

import base64
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
from PIL import Image

from imgpipe.paths import Paths
from imgpipe.reporting.report import RunSummary, StageRow, render_html, render_markdown

REPO = Path(__file__).resolve().parents[1]
HOSTILE_RUN = "<script>alert(1)</script> & co"


def hostile_summary() -> RunSummary:
    info = SimpleNamespace(run_id="abc123", run_name="<script>alert(1)</script>", start_time=0, status="FINISHED")
    data = SimpleNamespace(
        tags={"dvc.exp_name": "a|b *bold*"},
        metrics={"test.accuracy": 0.5},
        params={"train.model": "<img src=x onerror=alert(1)>"},
    )
    run = SimpleNamespace(info=info, data=data, inputs=SimpleNamespace(dataset_inputs=[]))
    return RunSummary(run, "<b>team</b>", pictures=[])


def with_lineage(summary: RunSummary, name: str) -> RunSummary:
    """``summary`` whose run read the dataset ``name`` (as MLflow records a DVC output's hash)."""
    tags = [SimpleNamespace(key="mlflow.data.context", value="train")]
    summary.run.inputs.dataset_inputs.append(
        SimpleNamespace(dataset=SimpleNamespace(name=name, digest="d41d8c"), tags=tags)
    )
    return summary


def write_png(path: Path, colour: tuple[int, int, int]) -> Path:
    Image.fromarray(np.full((4, 6, 3), colour, dtype=np.uint8)).save(path)
    return path


def test_markdown_report_escapes_names_and_values():
    page = render_markdown(with_lineage(hostile_summary(), "data/<ingest>"), "files")
    assert "<script>" not in page and "<b>" not in page and "<img" not in page and "<ingest>" not in page
    assert "&lt;script&gt;" in page and "&lt;b&gt;team&lt;/b&gt;" in page
    assert "a\\|b \\*bold\\*" in page  # a pipe cannot break the table, stars make no bold
    assert "| accuracy |  | 0.5000 |" in page
    assert "- **Data (train)**: data/&lt;ingest&gt;, DVC md5 d41d8c" in page


def test_html_report_escapes_names_and_values():
    page = render_html(with_lineage(hostile_summary(), "data/<ingest>"))
    assert "<script>alert" not in page and "<img src=x" not in page and "<ingest>" not in page
    assert "<title>imgpipe run &lt;script&gt;alert(1)&lt;/script&gt;</title>" in page
    assert "&lt;b&gt;team&lt;/b&gt;" in page and "<dd>data/&lt;ingest&gt;, DVC md5 d41d8c</dd>" in page
    assert "<td>train.model</td><td>&lt;img src=x onerror=alert(1)&gt;</td>" in page
    assert "<td>accuracy</td><td></td><td>0.5000</td>" in page


def test_html_report_inlines_its_pictures(tmp_path):
    curves = write_png(tmp_path / "training_curves.png", (200, 10, 10))
    summary = hostile_summary()
    summary.pictures = [("Training curves", curves)]
    summary.inspection = [("Grad-CAM <x>", write_png(tmp_path / "gradcam.png", (10, 10, 200)))]
    page = render_html(summary)
    for caption, path in (("Training curves", curves), ("Grad-CAM &lt;x&gt;", tmp_path / "gradcam.png")):
        src = f"data:image/png;base64,{base64.b64encode(path.read_bytes()).decode()}"
        assert f'<figure><img alt="{caption}" src="{src}"><figcaption>{caption}</figcaption></figure>' in page
    assert "<h2>Inspection</h2>" in page and "training_curves.png" not in page  # nothing to fetch beside it


def test_the_pipeline_table_names_each_stage_run_and_what_was_reused():
    def stage_run(run_id, metrics):
        info = SimpleNamespace(run_id=run_id, run_name="x", start_time=0, status="FINISHED")
        return SimpleNamespace(info=info, data=SimpleNamespace(tags={}, metrics=metrics, params={}))

    summary = hostile_summary()
    summary.stages = [
        StageRow("ingest", stage_run("i" * 32, {"kept": 737.0, "imbalance_ratio": 9.5}), "repro@abc1234"),
        StageRow("evaluate", stage_run("e" * 32, {"test.accuracy": 0.75})),
    ]
    page = render_markdown(summary, "files")
    assert "## Pipeline" in page
    assert (
        f"| ingest | {'i' * 32} | FINISHED, cached: reused from pipeline repro@abc1234 | kept 737, imbalance ratio 9.5 |"
        in page
    )
    assert f"| evaluate | {'e' * 32} | FINISHED, ran here | test accuracy 0.75 |" in page
    assert "| accuracy |  | 0.7500 |" in page  # the scores are evaluate's
    assert "<h2>Pipeline</h2>" in render_html(summary)
    assert "## Pipeline" not in render_markdown(hostile_summary(), "files")


def logged_run(root: Path) -> str:
    """A run in the project's MLflow store with a param, scores and evaluate's confusion matrix."""
    import mlflow

    (root / "params.yaml").write_text("mlflow:\n  experiment_name: reports\n")
    mlflow.set_tracking_uri(f"sqlite:///{root.as_posix()}/mlflow.db")
    mlflow.set_experiment("reports")
    picture = write_png(root / Paths(root).confusion_png.name, (0, 128, 255))  # as evaluate names it
    with mlflow.start_run(run_name=HOSTILE_RUN) as run:
        mlflow.log_params({"train.model": "efficientnet_lite0", "train.lr": 0.003})
        mlflow.log_metrics({"val.accuracy": 0.8125, "test.accuracy": 0.796875})
        mlflow.log_artifact(str(picture), "evaluation")
    return run.info.run_id


def test_the_report_of_a_logged_run_holds_its_scores_settings_and_pictures(tmp_path, monkeypatch, capsys):
    from imgpipe.cli import main

    monkeypatch.chdir(tmp_path)  # where MLflow puts a sqlite store's artifacts (./mlruns), and where imgpipe runs
    run_id = logged_run(tmp_path)
    name = Paths(tmp_path).confusion_png.name
    picture = (tmp_path / name).read_bytes()
    assert main(["report", "-o", str(tmp_path / "report.html")]) == 0  # the latest run
    assert f"report: wrote {tmp_path / 'report.html'}" in capsys.readouterr().out
    page = (tmp_path / "report.html").read_text()
    assert "<td>accuracy</td><td>0.8125</td><td>0.7969</td>" in page
    assert "<td>train.model</td><td>efficientnet_lite0</td>" in page and "<td>train.lr</td><td>0.003</td>" in page
    assert f"<dd>{run_id} in experiment reports</dd>" in page and "<script>" not in page
    assert "<h1>imgpipe run &lt;script&gt;alert(1)&lt;/script&gt; &amp; co</h1>" in page
    assert f'base64,{base64.b64encode(picture).decode()}"><figcaption>Confusion matrix (test)' in page

    assert main(["report", "-o", str(tmp_path / "my report.md"), "--run", run_id]) == 0
    page = (tmp_path / "my report.md").read_text()
    assert "| accuracy | 0.8125 | 0.7969 |" in page and "| train.lr | 0.003 |" in page
    assert f"![Confusion matrix (test)](my%20report_files/{name})" in page  # a link despite the space
    assert (tmp_path / "my report_files" / name).read_bytes() == picture


def test_the_templates_ship_in_a_wheel(tmp_path):
    """A non-editable install has the templates: setuptools packs only .py files unless told."""
    pytest.importorskip("setuptools")
    source = tmp_path / "source"
    shutil.copytree(REPO / "src", source / "src", ignore=shutil.ignore_patterns("__pycache__", "*.egg-info"))
    for name in ("pyproject.toml", "README.md"):
        shutil.copy2(REPO / name, source / name)
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--no-deps",
            "--no-build-isolation",
            "-q",
            "-w",
            str(tmp_path / "dist"),
            str(source),
        ],
        check=True,
        capture_output=True,
    )
    (wheel,) = (tmp_path / "dist").glob("imgpipe-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    templates = sorted(p.name for p in (REPO / "src" / "imgpipe" / "reporting" / "templates").iterdir())
    assert templates == ["report.html", "report.md"]
    assert [n for n in names if n.startswith("imgpipe/reporting/templates/")] == [
        f"imgpipe/reporting/templates/{name}" for name in templates
    ]
