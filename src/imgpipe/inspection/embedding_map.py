"""The embeddings' 2-D map: t-SNE (after PCA when the features are wide), coloured by class."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from imgpipe.viz.figure import new_figure, save_figure

# t-SNE's time grows faster than linearly: beyond this many images the map shows a
# seeded sample, which shows the clusters as well.
MAX_POINTS = 5000
# PCA to this many dimensions first: the usual t-SNE recipe, faster and less noisy.
PCA_DIMS = 50
MARKERS = {"train": "o", "val": "^", "test": "s"}
MAX_LEGEND_CLASSES = 30


def project_2d(features: np.ndarray, seed: int) -> np.ndarray:
    """(N, 2) coordinates; seeded, so the same features give the same map."""
    from sklearn.decomposition import PCA
    from sklearn.manifold import TSNE

    n, dims = features.shape
    if n < 5 or dims < 2:  # too few points for t-SNE's neighbourhoods: a plain projection
        xy = PCA(n_components=min(2, n, dims), random_state=seed).fit_transform(features) if n > 1 else np.zeros((n, 0))
        return np.pad(xy, ((0, 0), (0, 2 - xy.shape[1])))
    x = features.astype(np.float64)
    if dims > PCA_DIMS:
        x = PCA(n_components=min(PCA_DIMS, n), random_state=seed).fit_transform(x)
    perplexity = float(min(30.0, (n - 1) / 3))  # must stay below the number of points
    return TSNE(
        n_components=2, perplexity=perplexity, init="pca", learning_rate="auto", random_state=seed
    ).fit_transform(x)


def draw_map(features: np.ndarray, index: pd.DataFrame, classes: list[str], path: Path, seed: int) -> None:
    """Write the map to ``path``: a colour per class, a marker shape per split."""
    import matplotlib

    pick = np.arange(len(features))
    if len(pick) > MAX_POINTS:
        pick = np.sort(np.random.default_rng(seed).choice(len(pick), MAX_POINTS, replace=False))
    xy = project_2d(features[pick], seed)
    shown = index.iloc[pick]
    cmap = matplotlib.colormaps["tab10" if len(classes) <= 10 else "tab20" if len(classes) <= 20 else "turbo"]
    colours = [cmap(i / max(1, len(classes) - 1)) if len(classes) > 20 else cmap(i) for i in range(len(classes))]
    size = 18 if len(pick) <= 2000 else 8  # small points when many, or the clusters turn to blots
    fig, ax = new_figure(figsize=(8, 7))
    for split, marker in MARKERS.items():
        for label in range(len(classes)):
            at = ((shown["split"] == split) & (shown["label"] == label)).to_numpy()
            if at.any():
                ax.scatter(xy[at, 0], xy[at, 1], s=size, marker=marker, color=colours[label], alpha=0.7, linewidths=0)
    _legends(ax, classes, colours, sorted(set(shown["split"]), key=list(MARKERS).index))
    method = "t-SNE" if len(pick) >= 5 and features.shape[1] >= 2 else "PCA"
    sample = f", a sample of {len(pick)} of {len(features)} images" if len(pick) < len(features) else ""
    ax.set_title(f"Embeddings ({features.shape[1]} features) by {method}{sample}")
    ax.set_xticks([])
    ax.set_yticks([])
    save_figure(fig, path)


def _legends(ax, classes: list[str], colours: list, splits: list[str]) -> None:
    """One legend for the classes (colours), one for the splits (shapes)."""
    from matplotlib.lines import Line2D

    shown = classes[:MAX_LEGEND_CLASSES]
    handles = [Line2D([], [], marker="o", linestyle="", color=colours[i], label=name) for i, name in enumerate(shown)]
    if len(classes) > len(shown):
        handles.append(Line2D([], [], linestyle="", label=f"... {len(classes) - len(shown)} more"))
    first = ax.legend(handles=handles, title="class", fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1))
    ax.add_artist(first)
    marks = [Line2D([], [], marker=MARKERS[s], linestyle="", color="grey", label=s) for s in splits]
    ax.legend(handles=marks, title="split", fontsize=7, loc="lower left", bbox_to_anchor=(1.01, 0))
