"""``imgpipe embed`` and ``imgpipe inspect``: run the steps, say what was written where."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from imgpipe.inspection.embed import write_embeddings
from imgpipe.inspection.outputs import EmbeddingFiles, InspectFiles, shown
from imgpipe.inspection.project import Project, load_project


def run_embed(root: Path, out: Path | None, model_dir: Path | None, seed: int) -> list[str]:
    """Write the trained model's embeddings of every image to ``out`` (default: <root>/embeddings);
    return what was written where, as the lines the command prints."""
    project = load_project(root, model_dir)
    files = EmbeddingFiles(Path(out)) if out is not None else InspectFiles(root).embeddings
    embedded = write_embeddings(project, files, seed)
    n, d = embedded.features.shape
    return [
        f"embed: wrote {shown(files.features, root)} ({n} images x {d} features), {shown(files.index, root)} "
        f"and {shown(files.map, root)}"
    ]


def run_inspect(root: Path, model_dir: Path | None, top: int, folds: int, features: str, seed: int) -> list[str]:
    """Embeddings, likely label errors and Grad-CAM for the current data and model; return the
    summary of what was found and written where, as the lines the command prints."""
    from imgpipe.inspection.figures import write_gradcam_png, write_label_issues_png
    from imgpipe.inspection.label_issues import check_folds, find_issues, per_split_counts
    from imgpipe.store.atomic import write_csv

    files = InspectFiles(root)
    project = load_project(root, model_dir)
    check_folds(project.labels, project.classes, folds)  # before minutes of work, not after
    embedded = write_embeddings(project, files.embeddings, seed)
    vectors = embedded.features if features == "model" else imagenet_features(project)
    table = find_issues(vectors, embedded.index, project.classes, folds, seed)
    write_csv(files.label_issues_csv, table)
    write_label_issues_png(project, table, top, files.label_issues_png)
    cams = write_gradcam_png(project, top, seed, files.gradcam_png)

    n, d = embedded.features.shape
    counts = ", ".join(f"{name} {count}" for name, count in per_split_counts(table, list(project.splits)).items())
    lines = [
        f"inspect: embeddings of {n} images x {d} features: {shown(files.embeddings.features, root)}, "
        f"{shown(files.embeddings.index, root)}, {shown(files.embeddings.map, root)}",
        f"inspect: {len(table)} likely label errors ({counts}) from {features} features and {folds}-fold "
        f"logistic regression: {shown(files.label_issues_csv, root)}, {shown(files.label_issues_png, root)}",
    ]
    if cams.skipped:
        lines.append(f"inspect: no Grad-CAM ({cams.skipped}); {shown(files.gradcam_png, root)} says so")
    else:
        lines.append(
            f"inspect: Grad-CAM at {cams.layer} of {cams.mistakes} confident mistakes and {cams.samples} "
            f"class samples: {shown(files.gradcam_png, root)}"
        )
    if line := near_duplicates_line(files, root):
        lines.append(line)
    return lines


def imagenet_features(project: Project) -> np.ndarray:
    """Features of every image from the ImageNet backbone (see ``imagenet`` for why)."""
    from imgpipe.inspection.features import split_features
    from imgpipe.inspection.imagenet import imagenet_model

    model, layer = imagenet_model(project.spec.channels, project.spec.image_size)
    return split_features(model.to(project.device), layer, project.splits, project.device, desc="imagenet")


def near_duplicates_line(files: InspectFiles, root: Path) -> str:
    """What ingest found about near-duplicate pairs across splits, when it wrote it."""
    csv, png = files.near_duplicates_csv, files.near_duplicates_png
    if not csv.is_file() and not png.is_file():
        return ""
    parts = []
    if csv.is_file():
        try:
            rows = len(pd.read_csv(csv))
        except (pd.errors.EmptyDataError, pd.errors.ParserError):
            rows = 0
        parts.append(f"{rows} near-duplicate pairs across splits in {shown(csv, root)}")
    if png.is_file():
        parts.append(f"{'see' if parts else 'near-duplicate pairs across splits:'} {shown(png, root)}")
    return "inspect: " + "; ".join(parts) + " (from ingest)"
