"""``imgpipe report``: one page that says what a training run did and how well it did it.

The page is built from the MLflow run, not the workspace, so it describes exactly what
was recorded: a queued experiment's run or a colleague's run on the team server, as well
as the last ``dvc repro``. HTML is self-contained (images inlined); Markdown links its
images from a ``<name>_files/`` folder beside it.
"""

from __future__ import annotations

import base64
import html
import re
import shutil
import tempfile
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from imgpipe.errors import ImgpipeError
from imgpipe.paths import Paths
from imgpipe.store.atomic import atomic_path
from imgpipe.tools.inspection.outputs import InspectFiles
from imgpipe.tracking.artifacts import EVALUATION, REPORTS, artifact_path

HEADLINE = ["accuracy", "balanced_accuracy", "f1_macro", "f1_weighted", "roc_auc_ovr", "log_loss", "ece"]
# The run's pictures and their captions, in reading order: how it learned, how it
# scores, what it saw. Named by the report file each stage logs, and the folders of the
# run to look in (older runs kept the training curves in reports/).
_PICTURES = [
    ("training_curves", (EVALUATION, REPORTS), "Training curves"),
    ("confusion_png", (EVALUATION,), "Confusion matrix (test)"),
    ("misclassified_png", (EVALUATION,), "The most confident mistakes (true>predicted)"),
    ("balance_counts", (REPORTS,), "Class counts before and after balancing"),
    ("augment_preview", (REPORTS,), "Augmentation preview"),
    ("ingest_samples", (REPORTS,), "Training images by class"),
]
# What `imgpipe inspect` (and ingest's near-duplicate check) left in this workspace, in
# reading order. Not from the run: they describe the data and model checked out here.
_INSPECTION = [
    ("label_issues_png", "Likely label errors (given / suggested), from imgpipe inspect"),
    ("gradcam_png", "Where the model looks (Grad-CAM): confident test mistakes and a sample of each class"),
    ("embeddings_map", "The model's embeddings of every image (t-SNE; colour: class, shape: split)"),
    ("near_duplicates_png", "Near-duplicate images across splits, from ingest"),
]
INSPECTION_NOTE = "From this workspace's reports/ and embeddings/ (imgpipe inspect), not from the MLflow run."
LABEL_ISSUE_ROWS = 10
KEY_PARAMS = ["ingest.source", "ingest.image_size", "balance.method", "augment.mode", "augment.copies", "train.model",
              "train.pretrained", "train.freeze", "train.optimizer", "train.lr", "train.scheduler.name", "train.epochs",
              "train.batch_size"]


@dataclass
class RunSummary:
    run: Any
    experiment_name: str
    pictures: list[tuple[str, Path]]  # (caption, local file)
    trained_in: Any = None  # for a re-evaluation: the training run of the model it scored
    inspection: list[tuple[str, Path]] = field(default_factory=list)  # (caption, file in this workspace)
    label_issues: list[list[str]] = field(default_factory=list)  # the top rows of label_issues.csv, header first

    @property
    def title(self) -> str:
        return f"imgpipe run {self.run.info.run_name or self.run.info.run_id}"

    def facts(self) -> list[tuple[str, str]]:
        info, tags = self.run.info, self.run.data.tags
        started = datetime.fromtimestamp(info.start_time / 1000, tz=timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
        facts = [("MLflow run", f"{info.run_id} in experiment {self.experiment_name}"), ("Status", info.status),
                 ("Started", started)]
        for tag, label in (("dvc.exp_name", "DVC experiment"), ("dvc.exp_baseline_rev", "Baseline commit"),
                           ("mlflow.source.git.commit", "Git commit")):
            if tag in tags:
                facts.append((label, tags[tag]))
        if self.trained_in is not None:
            facts.append(("Model", f"trained in run {self.trained_in.info.run_id} ({self.trained_in.info.run_name}), "
                                   "evaluated again here"))
        for data in (self.trained_in or self.run).inputs.dataset_inputs:
            context = {t.key: t.value for t in data.tags}.get("mlflow.data.context", "data")
            facts.append((f"Data ({context})", f"{data.dataset.name}, DVC md5 {data.dataset.digest}"))
        return facts

    def metrics(self) -> list[list[str]]:
        """Rows of metric, val, test."""
        values = self.run.data.metrics
        rows = [[name, *(f"{values[f'{split}.{name}']:.4f}" if f"{split}.{name}" in values else "" for split in ("val", "test"))]
                for name in HEADLINE]
        return [row for row in rows if any(row[1:])]

    def params(self) -> list[list[str]]:
        params = self.run.data.params
        return [[key, params[key]] for key in KEY_PARAMS if key in params]


def latest_run(client: Any, experiment_name: str) -> Any:
    experiment = client.get_experiment_by_name(experiment_name)
    runs = client.search_runs([experiment.experiment_id], order_by=["attributes.start_time DESC"], max_results=1) if experiment else []
    if not runs:
        raise ImgpipeError(f"no runs in MLflow experiment {experiment_name!r}: run the pipeline first (dvc repro)")
    return runs[0]


def collect(root: Path, run_id: str | None, folder: Path) -> RunSummary:
    """Find the run (latest of the experiment in params.yaml unless given) and fetch its pictures."""
    import os

    import mlflow

    from imgpipe.params.tracking import MlflowConfig
    from imgpipe.tracking.runs import MODEL_RUN_TAG
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
    experiment_name = client.get_experiment(run.info.experiment_id).name
    model_run = run.data.tags.get(MODEL_RUN_TAG)
    trained_in = client.get_run(model_run) if model_run else None
    pictures = []
    for name, folders, caption in _PICTURES:
        # A re-evaluation's run holds the evaluation pictures; the rest are its model's.
        places = [(source, artifact_path(getattr(paths, name), f)) for f in folders for source in filter(None, (run, trained_in))]
        local = _first_artifact(places, folder, uri)
        if local is not None:
            pictures.append((caption, local))
    return RunSummary(run, experiment_name, pictures, trained_in, *inspection_section(root))


def inspection_section(root: Path) -> tuple[list[tuple[str, Path]], list[list[str]]]:
    """The inspection pictures that exist in ``root``, and the top rows of the label-issue table."""
    import pandas as pd

    files = InspectFiles(root)
    places = {"label_issues_png": files.label_issues_png, "gradcam_png": files.gradcam_png,
              "embeddings_map": files.embeddings.map, "near_duplicates_png": files.near_duplicates_png}
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
            return Path(mlflow.artifacts.download_artifacts(run_id=source.info.run_id, artifact_path=artifact,
                                                            dst_path=str(folder / source.info.run_id), tracking_uri=uri))
        except Exception:  # a run that stopped early lacks the later pictures: report what exists
            continue
    return None


def _md(text: str) -> str:
    """Text from a run (names, params, tags) as Markdown shows it, never as HTML or markup.

    Markdown renders inline HTML, so an experiment named ``<script>`` must arrive escaped,
    as the HTML report already does; a backslash before each markup character keeps the
    rest literal.
    """
    return re.sub(r"([\\`*_{}\[\]()#+!|~])", r"\\\1", html.escape(str(text), quote=False))


def _markdown_table(header: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(_md(cell) for cell in row) + " |" for row in rows]
    return "\n".join(lines)


def render_markdown(summary: RunSummary, image_dir: str) -> str:
    parts = [f"# {_md(summary.title)}", "", *(f"- **{k}**: {_md(v)}" for k, v in summary.facts()), "", "## Metrics", "",
             _markdown_table(["metric", "val", "test"], summary.metrics()), "", "## Settings", "",
             _markdown_table(["param", "value"], summary.params()), ""]
    for caption, path in summary.pictures:
        parts += [f"## {caption}", "", f"![{caption}]({image_dir}/{path.name})", ""]
    return "\n".join(parts + _inspection_markdown(summary, image_dir))


def _inspection_markdown(summary: RunSummary, image_dir: str) -> list[str]:
    if not summary.inspection and not summary.label_issues:
        return []
    parts = ["## Inspection", "", f"_{_md(INSPECTION_NOTE)}_", ""]
    if summary.label_issues:
        parts += ["### The likeliest label errors (reports/label\\_issues.csv)", "",
                  _markdown_table(summary.label_issues[0], summary.label_issues[1:]), ""]
    for caption, path in summary.inspection:
        parts += [f"### {caption}", "", f"![{caption}]({image_dir}/{path.name})", ""]
    return parts


def _html_table(header: list[str], rows: list[list[str]]) -> str:
    head = "".join(f"<th>{html.escape(h)}</th>" for h in header)
    body = "".join("<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in row) + "</tr>" for row in rows)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def render_html(summary: RunSummary) -> str:
    facts = "".join(f"<dt>{html.escape(k)}</dt><dd>{html.escape(v)}</dd>" for k, v in summary.facts())
    figures = "".join(_figure_html(caption, path) for caption, path in summary.pictures)
    style = ("body{font-family:system-ui,sans-serif;max-width:1100px;margin:2em auto;padding:0 1em;color:#222}"
             "dl{display:grid;grid-template-columns:max-content auto;gap:.2em 1em}dt{font-weight:600}"
             "table{border-collapse:collapse;margin:1em 0}td,th{border:1px solid #ccc;padding:.3em .7em;text-align:left}"
             "figure{margin:2em 0}img{max-width:100%;border:1px solid #eee}figcaption{color:#555}")
    return (f"<!doctype html><html><head><meta charset='utf-8'><title>{html.escape(summary.title)}</title>"
            f"<style>{style}</style></head><body><h1>{html.escape(summary.title)}</h1><dl>{facts}</dl>"
            f"<h2>Metrics</h2>{_html_table(['metric', 'val', 'test'], summary.metrics())}"
            f"<h2>Settings</h2>{_html_table(['param', 'value'], summary.params())}{figures}"
            f"{_inspection_html(summary)}</body></html>\n")


def _figure_html(caption: str, path: Path) -> str:
    return (f"<figure><img alt='{html.escape(caption)}' src='data:image/png;base64,"
            f"{base64.b64encode(path.read_bytes()).decode()}'><figcaption>{html.escape(caption)}</figcaption></figure>")


def _inspection_html(summary: RunSummary) -> str:
    if not summary.inspection and not summary.label_issues:
        return ""
    table = ""
    if summary.label_issues:
        table = (f"<h3>The likeliest label errors (reports/label_issues.csv)</h3>"
                 f"{_html_table(summary.label_issues[0], summary.label_issues[1:])}")
    figures = "".join(_figure_html(caption, path) for caption, path in summary.inspection)
    return f"<h2>Inspection</h2><p><em>{html.escape(INSPECTION_NOTE)}</em></p>{table}{figures}"


def write_report(root: Path, output: Path, run_id: str | None = None) -> Path:
    """Write the report for ``run_id`` (default: the latest run) to ``output`` (.html or .md)."""
    output = Path(output)
    if output.suffix.lower() not in (".html", ".htm", ".md", ".markdown"):
        raise ImgpipeError(f"cannot tell the report format from {output}: name it .html or .md")
    with tempfile.TemporaryDirectory() as tmp:
        summary = collect(root, run_id, Path(tmp))
        if output.suffix.lower() in (".html", ".htm"):
            with atomic_path(output) as staged:
                staged.write_text(render_html(summary))
            return output
        files = output.with_name(f"{output.stem}_files")
        with atomic_path(files) as staged:
            staged.mkdir()
            for _, path in summary.pictures + summary.inspection:
                shutil.copy2(path, staged / path.name)
        with atomic_path(output) as staged:
            staged.write_text(render_markdown(summary, files.name))
    return output
