"""``imgpipe report``: one page that says what a pipeline run did and how well it did it.

The page is built from the MLflow runs, not the workspace: the pipeline's run, a table of
its stages (each linked to the run that made its output, whether it ran here or DVC
reused an earlier output), the scores, settings and pictures the stages logged. So it
describes exactly what was recorded: a queued experiment's run or a colleague's run on
the team server, as well as the last ``dvc repro``. HTML is self-contained (images inlined); Markdown links its
images from a ``<name>_files/`` folder beside it. Both pages are Jinja templates in ``templates/``; this
module gathers what they show.
"""

from __future__ import annotations

import base64
import functools
import html
import re
import shutil
import tempfile
import urllib.parse
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import jinja2

from imgpipe.errors import ImgpipeError
from imgpipe.evaluate.metrics import HEADLINE
from imgpipe.inspection.outputs import InspectFiles
from imgpipe.paths import Paths
from imgpipe.store.atomic import atomic_path
from imgpipe.tracking.artifacts import EVALUATION, REPORTS, artifact_path
from imgpipe.tracking.pipeline import KEY_TAG, STAGE_RUN_TAG, STAGE_TAG, stage_runs

# The run's pictures and their captions, in reading order: how it learned, how it
# scores, what it saw. Named by the report file a stage logs, the stage whose run holds it,
# and the folders to look in (older runs kept the training curves in reports/).
_PICTURES = [
    ("training_curves", "evaluate", (EVALUATION, REPORTS), "Training curves"),
    ("confusion_png", "evaluate", (EVALUATION,), "Confusion matrix (test)"),
    ("misclassified_png", "evaluate", (EVALUATION,), "The most confident mistakes (true>predicted)"),
    ("balance_counts", "balance", (REPORTS,), "Class counts before and after balancing"),
    ("augment_preview", "augment", (REPORTS,), "Augmentation preview"),
    ("ingest_samples", "ingest", (REPORTS,), "Training images by class"),
]
# What `imgpipe inspect` (and ingest's near-duplicate check) left in this workspace, in
# reading order. Not from the run: they describe the data and model checked out here.
_INSPECTION = [
    ("label_issues_png", "Likely label errors (given / suggested), from imgpipe inspect"),
    ("gradcam_png", "Where the model looks (Grad-CAM): confident test mistakes and a sample of each class"),
    ("embeddings_map", "The model's embeddings of every image (t-SNE; colour: class, shape: split)"),
    ("near_duplicates_png", "Near-duplicate images across splits, from ingest"),
]
# The Jinja templates, package data beside this module (pyproject.toml: tool.setuptools.package-data).
TEMPLATES = "templates"
INSPECTION_NOTE = "From this workspace's reports/ and embeddings/ (imgpipe inspect), not from the MLflow run."
LABEL_ISSUE_ROWS = 10
PIPELINE_HEADER = ["stage", "MLflow run", "status", "what it did"]
KEY_PARAMS = [
    "ingest.source",
    "ingest.image_size",
    "balance.method",
    "augment.mode",
    "augment.copies",
    "train.model",
    "train.pretrained",
    "train.freeze",
    "train.optimizer",
    "train.lr",
    "train.scheduler.name",
    "train.epochs",
    "train.batch_size",
]
# What each stage's row of the pipeline table says: (metric of its run, label).
_STAGE_FACTS = {
    "ingest": [("kept", "kept"), ("skipped", "skipped"), ("imbalance_ratio", "imbalance ratio")],
    "balance": [("total_before", "images in"), ("total_after", "out"), ("synthetic", "synthetic")],
    "augment": [("images_written", "variants"), ("images_per_second", "images/s")],
    "train": [("best_epoch", "best epoch"), ("val_balanced_accuracy", "val balanced accuracy")],
    "evaluate": [("test.accuracy", "test accuracy"), ("test.balanced_accuracy", "balanced")],
}


@dataclass
class StageRow:
    stage: str
    run: Any
    made_in: str | None = None  # None: ran in this pipeline; else the earlier pipeline whose output DVC reused


@dataclass
class RunSummary:
    run: Any  # the pipeline's run (or a lone run, recorded before runs had stages)
    experiment_name: str
    pictures: list[tuple[str, Path]]  # (caption, local file)
    stages: list[StageRow] = field(default_factory=list)
    inspection: list[tuple[str, Path]] = field(default_factory=list)  # (caption, file in this workspace)
    label_issues: list[list[str]] = field(default_factory=list)  # the top rows of label_issues.csv, header first

    @property
    def title(self) -> str:
        return f"imgpipe run {self.run.info.run_name or self.run.info.run_id}"

    def stage_run(self, name: str) -> Any | None:
        return next((row.run for row in self.stages if row.stage == name), None)

    def facts(self) -> list[tuple[str, str]]:
        info, tags = self.run.info, self.run.data.tags
        started = datetime.fromtimestamp(info.start_time / 1000, tz=timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
        facts = [
            ("MLflow run", f"{info.run_id} in experiment {self.experiment_name}"),
            ("Status", info.status),
            ("Started", started),
        ]
        for tag, label in (
            ("dvc.exp_name", "DVC experiment"),
            ("dvc.exp_baseline_rev", "Baseline commit"),
            ("mlflow.source.git.commit", "Git commit"),
        ):
            if tag in tags:
                facts.append((label, tags[tag]))
        trained = self.stage_run("train")
        if trained is not None:
            facts.append(("Model", f"trained in run {trained.info.run_id}"))
        for data in (trained or self.run).inputs.dataset_inputs:
            context = {t.key: t.value for t in data.tags}.get("mlflow.data.context", "data")
            if context == "output":  # the model folder: not data the model saw
                continue
            facts.append((f"Data ({context})", f"{data.dataset.name}, DVC md5 {data.dataset.digest}"))
        return facts

    def pipeline(self) -> list[list[str]]:
        """Rows of stage, run, how (ran here, or reused), and what the stage did."""
        rows = []
        for row in self.stages:
            values = row.run.data.metrics
            did = ", ".join(
                f"{label} {values[key]:.4g}" for key, label in _STAGE_FACTS.get(row.stage, []) if key in values
            )
            how = "ran here" if row.made_in is None else f"cached: reused from pipeline {row.made_in}"
            rows.append([row.stage, row.run.info.run_id, f"{row.run.info.status}, {how}", did])
        return rows

    def metrics(self) -> list[list[str]]:
        """Rows of metric, val, test."""
        values = (self.stage_run("evaluate") or self.run).data.metrics
        rows = [
            [
                name,
                *(
                    f"{values[f'{split}.{name}']:.4f}" if f"{split}.{name}" in values else ""
                    for split in ("val", "test")
                ),
            ]
            for name in HEADLINE
        ]
        return [row for row in rows if any(row[1:])]

    def params(self) -> list[list[str]]:
        params = self.run.data.params
        return [[key, params[key]] for key in KEY_PARAMS if key in params]


def latest_run(client: Any, experiment_name: str) -> Any:
    """The latest pipeline run of the experiment (the latest run of any kind when it holds none)."""
    experiment = client.get_experiment_by_name(experiment_name)
    if experiment is None:
        raise ImgpipeError(f"no runs in MLflow experiment {experiment_name!r}: run the pipeline first (dvc repro)")
    for where in (f"tags.`{KEY_TAG}` != ''", ""):
        runs = client.search_runs(
            [experiment.experiment_id], filter_string=where, order_by=["attributes.start_time DESC"], max_results=1
        )
        if runs:
            return runs[0]
    raise ImgpipeError(f"no runs in MLflow experiment {experiment_name!r}: run the pipeline first (dvc repro)")


def pipeline_of(client: Any, run: Any) -> tuple[Any, list[StageRow]]:
    """The pipeline run that ``run`` is (or is a stage of), and its stages' runs in order."""
    if STAGE_TAG in run.data.tags and run.data.tags.get("mlflow.parentRunId"):
        run = client.get_run(run.data.tags["mlflow.parentRunId"])
    if KEY_TAG not in run.data.tags:
        return run, []
    names = [
        tag.removeprefix(STAGE_RUN_TAG)
        for tag in run.data.tags
        if tag.startswith(STAGE_RUN_TAG) and not tag.endswith(".cached")
    ]
    order = {stage: i for i, stage in enumerate(_STAGE_FACTS)}
    found = stage_runs(client, run, sorted(names, key=lambda s: order.get(s, len(order))))
    return run, [StageRow(stage, r, _made_in(client, r, run)) for stage, r in found.items()]


def _made_in(client: Any, stage_run: Any, pipeline: Any) -> str | None:
    """None when ``stage_run`` ran in ``pipeline``, else the name of the pipeline it ran in."""
    parent_id = stage_run.data.tags.get("mlflow.parentRunId")
    if parent_id == pipeline.info.run_id:
        return None
    try:
        return client.get_run(parent_id).info.run_name or parent_id
    except Exception:  # deleted since, or recorded by hand outside a pipeline
        return parent_id or "another run"


def collect(root: Path, run_id: str | None, folder: Path) -> RunSummary:
    """Find the pipeline run (latest of the experiment in params.yaml unless given) and fetch its pictures."""
    import os

    import mlflow

    from imgpipe.params.tracking import MlflowConfig
    from imgpipe.tracking.store import check_reachable, tracking_uri

    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")  # six tiny files: no bars
    paths = Paths(root)
    experiment_name = MlflowConfig.load(paths.params).experiment_name
    uri = tracking_uri(root)
    check_reachable(uri)
    client = mlflow.MlflowClient(tracking_uri=uri)
    try:
        run = client.get_run(run_id) if run_id else latest_run(client, experiment_name)
    except mlflow.exceptions.MlflowException as exc:
        raise ImgpipeError(f"no MLflow run {run_id} in {uri}: {exc.message}") from None
    run, stages = pipeline_of(client, run)
    experiment_name = client.get_experiment(run.info.experiment_id).name
    summary = RunSummary(run, experiment_name, [], stages, *inspection_section(root))
    for name, stage, folders, caption in _PICTURES:
        source = summary.stage_run(stage) or run
        local = _first_artifact([(source, artifact_path(getattr(paths, name), f)) for f in folders], folder, uri)
        if local is not None:
            summary.pictures.append((caption, local))
    return summary


def inspection_section(root: Path) -> tuple[list[tuple[str, Path]], list[list[str]]]:
    """The inspection pictures that exist in ``root``, and the top rows of the label-issue table."""
    import pandas as pd

    files = InspectFiles(root)
    places = {
        "label_issues_png": files.label_issues_png,
        "gradcam_png": files.gradcam_png,
        "embeddings_map": files.embeddings.map,
        "near_duplicates_png": files.near_duplicates_png,
    }
    pictures = [(caption, places[name]) for name, caption in _INSPECTION if places[name].is_file()]
    rows: list[list[str]] = []
    if files.label_issues_csv.is_file():
        try:
            table = pd.read_csv(files.label_issues_csv, dtype=str, keep_default_na=False).head(LABEL_ISSUE_ROWS)
        except (pd.errors.EmptyDataError, pd.errors.ParserError):  # a damaged table: show the pictures alone
            table = None
        if table is not None and len(table):
            rows = [list(table.columns), *table.values.tolist()]
    return pictures, rows


def _first_artifact(places: list[tuple[Any, str]], folder: Path, uri: str) -> Path | None:
    """The first of (run, artifact path) that exists, downloaded into ``folder``."""
    import mlflow

    for source, artifact in places:
        try:
            return Path(
                mlflow.artifacts.download_artifacts(
                    run_id=source.info.run_id,
                    artifact_path=artifact,
                    dst_path=str(folder / source.info.run_id),
                    tracking_uri=uri,
                )
            )
        except Exception:  # a run that stopped early lacks the later pictures: report what exists
            continue
    return None


def _md(text: Any) -> str:
    """Text from a run (names, params, tags) as Markdown shows it, never as HTML or markup.

    Markdown renders inline HTML, so an experiment named ``<script>`` must arrive escaped,
    as the HTML template's autoescaping does there; a backslash before each markup
    character keeps the rest literal.
    """
    return re.sub(r"([\\`*_{}\[\]()#+!|~])", r"\\\1", html.escape(str(text), quote=False))


def _png_data_uri(path: Path) -> str:
    return f"data:image/png;base64,{base64.b64encode(Path(path).read_bytes()).decode()}"


@functools.cache
def _templates(markdown: bool) -> jinja2.Environment:
    """The templates of one format. HTML autoescapes every value; Markdown cannot (its escaping
    is not HTML's), so its template passes each value from a run through the ``md`` filter.
    ``url`` quotes a picture's link, so a report named with a space or parenthesis still links."""
    env = jinja2.Environment(
        loader=jinja2.PackageLoader("imgpipe.reporting", TEMPLATES),
        autoescape=not markdown,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
    )
    env.filters.update(md=_md, url=urllib.parse.quote, png_data_uri=_png_data_uri)
    return env


def _context(summary: RunSummary) -> dict[str, Any]:
    """What both templates show: the summary's sections as rows of text, and its pictures."""
    return {
        "title": summary.title,
        "facts": summary.facts(),
        "pipeline_header": PIPELINE_HEADER,
        "pipeline": summary.pipeline() if summary.stages else [],
        "metrics": summary.metrics(),
        "params": summary.params(),
        "pictures": summary.pictures,
        "inspection": summary.inspection,
        "label_issues": summary.label_issues,
        "inspection_note": INSPECTION_NOTE,
    }


def render_markdown(summary: RunSummary, image_dir: str) -> str:
    """The page as Markdown, linking each picture as ``<image_dir>/<its file name>``."""
    return _templates(markdown=True).get_template("report.md").render(_context(summary), image_dir=image_dir)


def render_html(summary: RunSummary) -> str:
    """The page as HTML with its pictures inlined."""
    return _templates(markdown=False).get_template("report.html").render(_context(summary))


def only_pictures(folder: Path) -> bool:
    """Whether ``folder`` holds PNG files and nothing else, as a previous Markdown report's files folder does."""
    return all(p.is_file() and p.suffix == ".png" for p in folder.iterdir())


def write_report(root: Path, output: Path, run_id: str | None = None) -> Path:
    """Write the report for ``run_id`` (default: the latest run) to ``output`` (.html or .md)."""
    output = Path(output)
    if output.suffix.lower() not in (".html", ".htm", ".md", ".markdown"):
        raise ImgpipeError(f"cannot tell the report format from {output}: name it .html or .md")
    with tempfile.TemporaryDirectory() as tmp:
        summary = collect(root, run_id, Path(tmp))
        if output.suffix.lower() in (".html", ".htm"):
            with atomic_path(output) as staged:
                staged.write_text(render_html(summary), encoding="utf-8")  # as its <meta charset> says
            return output
        files = output.with_name(f"{output.stem}_files")
        with atomic_path(files, replaces=only_pictures) as staged:  # a previous report's, not a user's folder
            staged.mkdir()
            for _, path in summary.pictures + summary.inspection:
                shutil.copy2(path, staged / path.name)
        with atomic_path(output) as staged:
            staged.write_text(render_markdown(summary, files.name), encoding="utf-8")
    return output
