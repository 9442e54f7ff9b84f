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
        val, test = train_test_split(rest, test_size=test_fraction / holdout, stratify=labels[rest], random_state=seed)
    except ValueError as exc:
        raise ImgpipeError(
            f"cannot split {len(labels)} images into stratified train/val/test: {exc}. "
            "Raise ingest.val_fraction/test_fraction or add images to the smallest classes."
        ) from None
    return {"train": np.sort(train), "val": np.sort(val), "test": np.sort(test)}


def imbalance_ratio(counts: dict[str, int]) -> float:
    sizes = [n for n in counts.values() if n > 0]
    return round(max(sizes) / min(sizes), 3) if sizes else 0.0


def assign_splits(
    labels: np.ndarray, given: np.ndarray, val_fraction: float, test_fraction: float, seed: int, classes: list[str]
) -> dict[str, np.ndarray]:
    """Train/val/test indices that respect any split the source already chose.

    With no split given, it is a stratified three-way split. When the source is
    pre-split, its splits are kept, images without one join train, and a missing val or
    test split is carved from train (``val_fraction``/``test_fraction`` of train).
    """
    labels, given = np.asarray(labels), np.asarray(given, dtype=object)
    if not (given != "").any():
        return stratified_split(labels, val_fraction, test_fraction, seed, classes)
    parts = {name: np.flatnonzero(given == name) for name in ("val", "test")}
    train = np.flatnonzero((given == "train") | (given == ""))
    missing = {name: frac for name, frac in (("val", val_fraction), ("test", test_fraction)) if len(parts[name]) == 0}
    if len(missing) == 2:
        carved = stratified_split(labels[train], val_fraction, test_fraction, seed, classes)
        return {name: train[idx] for name, idx in carved.items()}
    for name, fraction in missing.items():
        train, parts[name] = _carve(train, labels, fraction, seed, name, classes)
    return {"train": np.sort(train), "val": parts["val"], "test": parts["test"]}


def _carve(
    pool: np.ndarray, labels: np.ndarray, fraction: float, seed: int, name: str, classes: list[str]
) -> tuple[np.ndarray, np.ndarray]:
    counts = np.bincount(labels[pool], minlength=len(classes))
    too_small = [f"{classes[c]} ({n})" for c, n in enumerate(counts) if 0 < n < 2]
    if too_small:
        raise ImgpipeError(
            f"cannot carve a {name} split from train: these classes have fewer than 2 training images: "
            + ", ".join(too_small)
            + f". Add images or provide a {name}/ folder."
        )
    try:
        keep, carved = train_test_split(pool, test_size=fraction, stratify=labels[pool], random_state=seed)
    except ValueError as exc:
        raise ImgpipeError(
            f"cannot carve a stratified {name} split from train: {exc}. Raise ingest.{name}_fraction or add images."
        ) from None
    return np.sort(keep), np.sort(carved)


def check_classes(counts: dict[str, dict[str, int]]) -> None:
    """Stop when a class has no training images: a model cannot learn it."""
    empty = [name for name, n in counts["train"].items() if n == 0]
    if empty:
        raise ImgpipeError(
            f"class(es) {', '.join(empty)} have no usable training images (every file was skipped, "
            "a duplicate or missing); see reports/ingest.json, then fix or remove those class folders."
        )


def absent_classes(counts: dict[str, dict[str, int]]) -> list[str]:
    """A sentence for each class a val or test split lacks while train has it: evaluate
    cannot score that class there (a pre-split source whose test/ folder misses a class)."""
    return [
        f"the {split} split has no images of class {name!r}, so evaluate cannot measure that class on {split}; "
        f"add {name} images to the source's {split} folder to measure it"
        for split in ("val", "test")
        if split in counts
        for name, n in counts[split].items()
        if n == 0 and counts["train"].get(name, 0) > 0
    ]


def long_tail_pool(labels: np.ndarray, given: np.ndarray, ratio: float, seed: int) -> np.ndarray:
    """Sorted indices left after thinning the trainable pool to a long tail.

    Images the source already placed in val or test are all kept, so the evaluation
    splits stay balanced, as in CIFAR-10-LT.
    """
    given = np.asarray(given, dtype=object)
    fixed_eval = np.flatnonzero((given == "val") | (given == "test"))
    pool = np.flatnonzero((given != "val") & (given != "test"))
    thinned = pool[long_tail_indices(np.asarray(labels)[pool], ratio, seed)]
    return np.sort(np.concatenate([thinned, fixed_eval]))
