"""The two inspection pictures: the likely label errors, and Grad-CAM over test images."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from imgpipe.errors import ImgpipeError
from imgpipe.inspection.gradcam import choose_examples, find_target_layer, heat_maps
from imgpipe.inspection.pictures import CELL, overlay, sections
from imgpipe.inspection.project import Project
from imgpipe.viz.grids import captioned_grid, save_png, text_card


def write_label_issues_png(project: Project, table: pd.DataFrame, top: int, path: Path) -> None:
    """The ``top`` likeliest label errors, each captioned with its given and suggested class."""
    shown = table.head(top)
    if shown.empty:
        save_png(text_card("no likely label errors found"), path)
        return
    images = [project.image(r.split, r.row) for r in shown.itertuples()]
    captions = [
        [f"given {r.given}", f"suggested {r.suggested}", f"{r.split} {r.row} ({r.self_confidence:.2f})"]
        for r in shown.itertuples()
    ]
    save_png(captioned_grid(images, captions, cell=CELL), path)


@dataclass
class GradcamResult:
    layer: str  # the target layer's name in the model, e.g. net.blocks.0
    mistakes: int
    samples: int
    skipped: str = ""  # why there are no heat maps, when there are none


def write_gradcam_png(project: Project, top: int, seed: int, path: Path) -> GradcamResult:
    """Grad-CAM of the test split's most confident mistakes and of a seeded sample of each class.

    Each map explains the *predicted* class: for a mistake, what made the model say it.
    Probabilities are the network's own: the decision evaluate fits (logit adjustment,
    temperature) is left out, since Grad-CAM explains the network's logits.
    """
    from imgpipe.inspection.features import BATCH_SIZE
    from imgpipe.models.inference import predict_proba

    name = "test" if "test" in project.splits else list(project.splits)[-1]
    split = project.splits[name]
    proba = predict_proba(project.model, split.images, BATCH_SIZE, project.device)
    mistakes, samples = choose_examples(split.labels, proba, top, seed)
    chosen = np.concatenate([mistakes, samples])
    images = np.asarray(split.images[chosen])
    try:
        target = find_target_layer(project.model, torch.from_numpy(np.array(split.images[:1])).to(project.device))
    except ImgpipeError as exc:  # images too small for any map: the rest of inspect still stands
        save_png(text_card(f"no Grad-CAM: {exc}", width=900), path)
        return GradcamResult("", 0, 0, skipped=str(exc))
    predicted = proba.argmax(axis=1)
    maps = heat_maps(project.model, target, images, predicted[chosen], project.device)
    cells = [overlay(image, cam) for image, cam in zip(images, maps)]
    captions = [
        [f"true {project.classes[split.labels[i]]}", f"pred {project.classes[predicted[i]]}", f"p={proba[i].max():.2f}"]
        for i in chosen
    ]
    k = len(mistakes)
    parts = [
        (
            f"Most confident mistakes ({name}): where the model looked for its prediction",
            captioned_grid(cells[:k], captions[:k], cell=CELL) if k else text_card(f"no mistakes on {name}"),
        ),
        (f"A seeded sample of each class ({name})", captioned_grid(cells[k:], captions[k:], cell=CELL)),
    ]
    save_png(sections(parts), path)
    names = {module: n for n, module in project.model.named_modules()}
    return GradcamResult(names.get(target, type(target).__name__), k, len(samples))
