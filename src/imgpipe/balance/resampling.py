"""Rebalancing the training split with imbalanced-learn.

Only the train split ever passes through here; val and test keep their natural class
profile so that the metrics measure the world the model will meet.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from imgpipe.errors import ParamsError
from imgpipe.params.balance import RESAMPLERS, BalanceConfig
from imgpipe.store.dataset import pixel_hash
from imgpipe.store.stacked import Stacked


@dataclass
class Resampled:
    images: Stacked  # picked rows as references to the input; synthetic rows as new pixels
    labels: np.ndarray
    # For each output row: the input row it copies, or -1 for a synthetic image.
    source_index: np.ndarray
    note: str | None = None  # anything the user should know about how it was done


def _strategy(cfg: BalanceConfig, classes: list[str]) -> Any:
    if not isinstance(cfg.sampling_strategy, dict):
        return cfg.sampling_strategy
    unknown = sorted(set(cfg.sampling_strategy) - set(classes))
    if unknown:
        raise ParamsError(
            f"params.yaml: balance.sampling_strategy: unknown class name(s) {unknown}; the classes are {classes}"
        )
    return {classes.index(name): count for name, count in cfg.sampling_strategy.items()}


def make_sampler(cfg: BalanceConfig, classes: list[str], labels: np.ndarray) -> Any:
    """The imbalanced-learn sampler that ``balance.method`` names, or None when there is none."""
    if cfg.method not in RESAMPLERS:
        return None
    strategy = _strategy(cfg, classes)
    seed = cfg.seed
    if cfg.method == "random_over":
        from imblearn.over_sampling import RandomOverSampler

        return RandomOverSampler(sampling_strategy=strategy, random_state=seed)
    if cfg.method == "random_under":
        from imblearn.under_sampling import RandomUnderSampler

        return RandomUnderSampler(sampling_strategy=strategy, random_state=seed)

    from imblearn import combine, over_sampling

    counts = np.bincount(labels)
    smallest = int(counts[counts > 0].min())
    if cfg.k_neighbors >= smallest:
        raise ParamsError(
            f"params.yaml: balance.k_neighbors: {cfg.method} needs k_neighbors below the smallest "
            f"class size ({smallest}); set it to at most {smallest - 1}."
        )
    k = cfg.k_neighbors
    if cfg.method == "smote":
        return over_sampling.SMOTE(sampling_strategy=strategy, k_neighbors=k, random_state=seed)
    if cfg.method == "borderline_smote":
        return over_sampling.BorderlineSMOTE(sampling_strategy=strategy, k_neighbors=k, random_state=seed)
    if cfg.method == "adasyn":
        return over_sampling.ADASYN(sampling_strategy=strategy, n_neighbors=k, random_state=seed)
    smote = over_sampling.SMOTE(k_neighbors=k, random_state=seed)
    if cfg.method == "smote_tomek":
        return combine.SMOTETomek(sampling_strategy=strategy, smote=smote, random_state=seed)
    return combine.SMOTEENN(sampling_strategy=strategy, smote=smote, random_state=seed)


def planned_total(cfg: BalanceConfig, classes: list[str], labels: np.ndarray) -> int:
    """At most how many training images ``balance.method`` will write, known before any work.

    Over-samplers top classes up to the largest (or to the counts given by name);
    under-samplers and the weighting methods never add any.
    """
    counts = np.bincount(np.asarray(labels), minlength=len(classes))
    if cfg.method not in RESAMPLERS or cfg.method == "random_under":
        return int(counts.sum())
    if isinstance(cfg.sampling_strategy, dict):
        targets = {classes.index(name): n for name, n in cfg.sampling_strategy.items() if name in classes}
        return int(sum(max(targets.get(i, 0), int(c)) for i, c in enumerate(counts)))
    return int(len(classes) * counts.max())


def check_size(cfg: BalanceConfig, total: int) -> None:
    """Refuse an over-sampling plan above ``balance.max_images``; keeping or dropping
    images is never refused, however large the source."""
    adds = cfg.method in RESAMPLERS and cfg.method != "random_under"
    if adds and total > cfg.max_images:
        raise ParamsError(
            f"params.yaml: balance.sampling_strategy: {cfg.method} would write up to {total:,} training images, "
            f"more than balance.max_images ({cfg.max_images:,}); lower the counts, or raise balance.max_images."
        )


def class_weights(labels: np.ndarray, classes: list[str]) -> dict[str, float]:
    """scikit-learn's 'balanced' weights, n / (k * n_c), by class name; 0 for an absent class."""
    from sklearn.utils.class_weight import compute_class_weight

    present = np.unique(labels)
    weights = compute_class_weight("balanced", classes=present, y=labels)
    by_label = dict(zip(present.tolist(), weights.tolist()))
    return {name: round(by_label.get(i, 0.0), 6) for i, name in enumerate(classes)}


def resample(images: np.ndarray, labels: np.ndarray, sampler: Any) -> Resampled:
    """Apply ``sampler`` to a train split.

    Random samplers pick rows, so they resample indices and the result refers to the
    input's rows: no pixel is copied. The SMOTE family interpolates between neighbours, so
    it works on flattened pixels: its new rows are blends of two images. Its cleaning
    variants (Tomek links, ENN) also drop rows, so each output row is traced back to its
    input by its exact pixel values; only the synthetic rows are new pixels.
    """
    base = Stacked.of(images)
    if sampler is None:
        return Resampled(base, np.asarray(labels), np.arange(len(labels)))
    try:
        if not _is_random(sampler):
            flat = np.asarray(images, dtype=np.float32).reshape(len(images), -1)
            note = None
            try:
                new_flat, new_labels = sampler.fit_resample(flat, labels)
            except RuntimeError as exc:
                if type(sampler).__name__ != "ADASYN":
                    raise
                # ADASYN weights minority images by how many majority neighbours they
                # have; with cleanly separated classes there are none, and imbalanced-learn
                # itself advises SMOTE, which is ADASYN with uniform weights.
                from imblearn.over_sampling import SMOTE

                note = f"ADASYN could not run ({exc}); used SMOTE with the same settings instead"
                smote = SMOTE(
                    sampling_strategy=sampler.sampling_strategy,
                    k_neighbors=sampler.n_neighbors,
                    random_state=sampler.random_state,
                )
                new_flat, new_labels = smote.fit_resample(flat, labels)
            new_flat = np.asarray(new_flat, dtype=np.float32)
            where = {row.tobytes(): i for i, row in enumerate(flat)}
            source = np.array([where.get(row.tobytes(), -1) for row in new_flat], dtype=np.int64)
            synthetic = np.clip(np.rint(new_flat[source < 0]), 0, 255).astype(np.uint8).reshape(-1, *images.shape[1:])
            return Resampled(Stacked.assemble(source, base, synthetic), np.asarray(new_labels), source, note)
        rows, new_labels = sampler.fit_resample(np.arange(len(labels)).reshape(-1, 1), labels)
    except (ValueError, RuntimeError) as exc:
        raise ParamsError(f"params.yaml: balance: imbalanced-learn refused the settings: {exc}") from None
    rows = rows.ravel()
    return Resampled(base.take(rows), np.asarray(new_labels), rows)


def _is_random(sampler: Any) -> bool:
    return type(sampler).__name__ in ("RandomOverSampler", "RandomUnderSampler")


def provenance(
    out: Resampled, ids: list[str], hashes: list[str], method: str
) -> tuple[list[str], list[str], list[str]]:
    """Ids, content hashes and origins for the resampled rows.

    A copied row keeps its source's id and hash, with a suffix that keeps ids unique; a
    synthetic row gets a new id and the hash of its own pixels.
    """
    new_ids, new_hashes, origin, seen = [], [], [], {}
    for row, src in enumerate(out.source_index):
        if src < 0:
            new_ids.append(f"synthetic/{method}/{row:06d}")
            new_hashes.append(pixel_hash(out.images[row]))
            origin.append(method)
            continue
        base = ids[int(src)]
        n = seen[base] = seen.get(base, -1) + 1
        new_ids.append(base if n == 0 else f"{base}#copy{n}")
        new_hashes.append(hashes[int(src)])
        origin.append("original" if n == 0 else f"{method}_copy")
    return new_ids, new_hashes, origin
