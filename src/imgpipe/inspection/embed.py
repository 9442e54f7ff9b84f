"""``imgpipe embed``: the trained model's penultimate features of every image, and their map.

``features.npy`` (float32, N x D) and ``index.csv`` (one row per image, in the same order:
split, row in that split, label, class name, id) travel together; ``map.png`` is a 2-D
t-SNE map of them. Each file is written atomically, one by one: the folder may hold other
things (``-o .``), so it is never replaced as a whole.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from imgpipe.inspection.embedding_map import draw_map
from imgpipe.inspection.features import logits_layer, split_features
from imgpipe.inspection.outputs import EmbeddingFiles
from imgpipe.inspection.project import Project
from imgpipe.store.atomic import atomic_path, write_csv


@dataclass
class Embeddings:
    features: np.ndarray  # (N, D) float32, rows in index order
    index: pd.DataFrame  # split, row, label, class_name[, id]
    files: EmbeddingFiles


def model_features(project: Project) -> np.ndarray:
    """The trained model's features of every image of every split, in ``project.index()`` order."""
    layer = logits_layer(project.model.net.head)
    return split_features(project.model, layer, project.splits, project.device, desc="embed")


def write_embeddings(project: Project, files: EmbeddingFiles, seed: int) -> Embeddings:
    """Compute the model's features and write features.npy, index.csv and map.png."""
    features = model_features(project)
    index = project.index()
    write_features(files.features, features)
    write_csv(files.index, index)
    draw_map(features, index, project.classes, files.map, seed)
    return Embeddings(features, index, files)


def write_features(path, features: np.ndarray) -> None:
    with atomic_path(path) as staged:
        with open(staged, "wb") as f:  # a file object: np.save would add .npy to a bare name
            np.save(f, np.ascontiguousarray(features, dtype=np.float32))
