"""Choosing which images go where: a long-tailed subset and the stratified split."""

from __future__ import annotations

import numpy as np
from sklearn.model_selection import train_test_split

from imgpipe.errors import ImgpipeError


def long_tail_indices(labels: np.ndarray, ratio: float, seed: int) -> np.ndarray:
    """Indices of a subset whose class sizes fall off exponentially by ``ratio``.

    Class ``i`` of ``C`` keeps ``n_max * ratio ** (-i / (C - 1))`` images, the CIFAR-10-LT
    profile, where ``n_max`` is the largest class. ``ratio == 1`` keeps every image.
    Which images a class keeps is a seeded random choice; the result is sorted.
    """
    labels = np.asarray(labels)
    classes = np.unique(labels)
    if ratio == 1 or len(classes) < 2:
        return np.arange(len(labels))
    rng = np.random.default_rng(seed)
    n_max = np.bincount(labels).max()
    keep = []
    for rank, c in enumerate(classes):
        members = np.flatnonzero(labels == c)
        target = int(round(n_max * ratio ** (-rank / (len(classes) - 1))))
        keep.append(rng.choice(members, size=min(max(target, 1), len(members)), replace=False))
    return np.sort(np.concatenate(keep))


def stratified_split(
    labels: np.ndarray, val_fraction: float, test_fraction: float, seed: int, classes: list[str]
) -> dict[str, np.ndarray]:
    """Seeded, stratified train/val/test indices; every class appears in every split."""
    labels = np.asarray(labels)
    counts = np.bincount(labels, minlength=len(classes))
    too_small = [f"{classes[c]} ({n})" for c, n in enumerate(counts) if 0 < n < 3]
    if too_small:
        raise ImgpipeError(
            "these classes have fewer than 3 images, too few to appear in train, val and test: "
            + ", ".join(too_small)
            + ". Add images or lower ingest.imbalance_ratio."
        )
    everything = np.arange(len(labels))
    holdout = val_fraction + test_fraction
    try:
        train, rest = train_test_split(everything, test_size=holdout, stratify=labels, random_state=seed)
        val, test = train_test_split(
            rest, test_size=test_fraction / holdout, stratify=labels[rest], random_state=seed
        )
    except ValueError as exc:
        raise ImgpipeError(
            f"cannot split {len(labels)} images into stratified train/val/test: {exc}. "
            "Raise ingest.val_fraction/test_fraction or add images to the smallest classes."
        ) from None
    return {"train": np.sort(train), "val": np.sort(val), "test": np.sort(test)}


def imbalance_ratio(counts: dict[str, int]) -> float:
    sizes = [n for n in counts.values() if n > 0]
    return round(max(sizes) / min(sizes), 3) if sizes else 0.0
