"""Rebalancing the training split with imbalanced-learn.

Only the train split ever passes through here; val and test keep their natural class
profile so that the metrics measure the world the model will meet.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from imgpipe.config import BalanceConfig
from imgpipe.errors import ImgpipeError, ParamsError


@dataclass
class Resampled:
    images: np.ndarray
    labels: np.ndarray
    # For each output row: the input row it copies, or -1 for a synthetic image.
    source_index: np.ndarray


def _strategy(cfg: BalanceConfig, classes: list[str]) -> Any:
    if not isinstance(cfg.sampling_strategy, dict):
        return cfg.sampling_strategy
    unknown = sorted(set(cfg.sampling_strategy) - set(classes))
    if unknown:
        raise ParamsError(
            f"params.yaml: balance.sampling_strategy: unknown class name(s) {unknown}; "
            f"the classes are {classes}"
        )
    return {classes.index(name): count for name, count in cfg.sampling_strategy.items()}


def make_sampler(cfg: BalanceConfig, classes: list[str], labels: np.ndarray) -> Any:
    """The imbalanced-learn sampler that ``balance.method`` names, or None for ``none``."""
    if cfg.method == "none":
        return None
    strategy = _strategy(cfg, classes)
    if cfg.method == "random_over":
        from imblearn.over_sampling import RandomOverSampler

        return RandomOverSampler(sampling_strategy=strategy, random_state=cfg.seed)
    if cfg.method == "random_under":
        from imblearn.under_sampling import RandomUnderSampler

        return RandomUnderSampler(sampling_strategy=strategy, random_state=cfg.seed)
    if cfg.method == "smote":
        from imblearn.over_sampling import SMOTE

        smallest = int(np.bincount(labels)[np.bincount(labels) > 0].min())
        if cfg.k_neighbors >= smallest:
            raise ParamsError(
                f"params.yaml: balance.k_neighbors: SMOTE needs k_neighbors below the smallest "
                f"class size ({smallest}); set it to at most {smallest - 1}."
            )
        return SMOTE(sampling_strategy=strategy, k_neighbors=cfg.k_neighbors, random_state=cfg.seed)
    raise ParamsError(f"params.yaml: balance.method: unknown method {cfg.method!r}")


def resample(images: np.ndarray, labels: np.ndarray, sampler: Any) -> Resampled:
    """Apply ``sampler`` to a train split.

    Random samplers pick rows, so they resample indices and copy pixels once at the end.
    SMOTE interpolates between neighbours, so it works on flattened pixels and its new rows
    are blends of two images.
    """
    if sampler is None:
        return Resampled(np.asarray(images), labels, np.arange(len(labels)))
    try:
        if hasattr(sampler, "k_neighbors"):
            flat = np.asarray(images, dtype=np.float32).reshape(len(images), -1)
            new_flat, new_labels = sampler.fit_resample(flat, labels)
            new_images = np.clip(np.rint(new_flat), 0, 255).astype(np.uint8).reshape(-1, *images.shape[1:])
            # imbalanced-learn returns the originals first, then the synthetic rows.
            source = np.concatenate([np.arange(len(labels)), np.full(len(new_labels) - len(labels), -1)])
            return Resampled(new_images, np.asarray(new_labels), source)
        rows, new_labels = sampler.fit_resample(np.arange(len(labels)).reshape(-1, 1), labels)
    except ValueError as exc:
        raise ParamsError(f"params.yaml: balance: imbalanced-learn refused the settings: {exc}") from None
    rows = rows.ravel()
    return Resampled(np.asarray(images)[rows], np.asarray(new_labels), rows)
