"""Fitting the decision on val (``evaluate.logit_adjustment``, ``calibrate``, ``threshold``).

The order is the literature's: first undo the training prior (logit adjustment), then
calibrate what is left (one temperature, fitted by val log loss), then, for two classes,
move the boundary to the threshold asked for. See ``imgpipe.models.decision`` for how the
result is applied.
"""

from __future__ import annotations

import numpy as np
from scipy.optimize import minimize_scalar
from scipy.special import log_softmax, softmax

from imgpipe.errors import ParamsError
from imgpipe.models.decision import Decision
from imgpipe.params.evaluate import EvaluateConfig, ThresholdConfig


def fit_decision(
    cfg: EvaluateConfig, y_val: np.ndarray, proba_val: np.ndarray, classes: list[str], prior: list[float], run_id: str
) -> Decision:
    """The decision ``cfg`` asks for, fitted on the val split's labels and probabilities."""
    log_p = np.log(np.clip(np.asarray(proba_val, dtype=np.float64), 1e-12, None))
    shift = np.zeros(len(classes))
    if cfg.logit_adjustment:
        if len(prior) != len(classes):
            raise ParamsError(
                "params.yaml: evaluate.logit_adjustment: this model records no class prior (it was "
                "trained before imgpipe kept one); retrain it (dvc repro --force train) or use 0."
            )
        shift = -cfg.logit_adjustment * np.log(np.clip(prior, 1e-12, None))
    temperature = fit_temperature(np.asarray(y_val), log_p + shift) if cfg.calibrate else 1.0
    bias = shift / temperature
    fitted = {"logit_adjustment": cfg.logit_adjustment, "temperature": round(temperature, 6)}
    if cfg.threshold.optimize != "none":
        k = threshold_class(cfg.threshold, classes)
        scores = softmax((log_p + shift) / temperature, axis=1)[:, k]
        t = choose_threshold(np.asarray(y_val) == k, scores, cfg.threshold)
        bias[k] += np.log((1.0 - t) / t)  # class k wins exactly when its probability reaches t
        fitted.update(threshold=round(t, 6), threshold_class=classes[k], threshold_optimize=cfg.threshold.optimize)
    return Decision(round(temperature, 6), [round(float(b), 6) for b in bias], run_id, fitted)


def fit_temperature(y: np.ndarray, logits: np.ndarray) -> float:
    """The temperature that minimises the log loss of ``softmax(logits / T)`` on ``y``."""

    def log_loss(t: float) -> float:
        return float(-log_softmax(logits / t, axis=1)[np.arange(len(y)), y].mean())

    return float(minimize_scalar(log_loss, bounds=(0.05, 20.0), method="bounded").x)


def threshold_class(cfg: ThresholdConfig, classes: list[str]) -> int:
    if len(classes) != 2:
        raise ParamsError(
            f"params.yaml: evaluate.threshold: a decision threshold needs two classes, and this model "
            f"has {len(classes)}; set evaluate.threshold.optimize: none."
        )
    name = cfg.class_name or classes[1]
    if name not in classes:
        raise ParamsError(f"params.yaml: evaluate.threshold.class: {name!r} is not one of the classes {classes}.")
    return classes.index(name)


def choose_threshold(positive: np.ndarray, scores: np.ndarray, cfg: ThresholdConfig) -> float:
    """The probability of the named class from which it is predicted, chosen on val: the best
    balanced accuracy, or the highest threshold whose recall reaches ``cfg.at``."""
    ordered = np.unique(scores)
    # Midway between neighbouring val scores, so no val image sits exactly on the boundary.
    candidates = np.clip(np.concatenate([[0.5], (ordered[1:] + ordered[:-1]) / 2]), 1e-6, 1 - 1e-6)
    recall = np.array([(scores[positive] >= t).mean() if positive.any() else 0.0 for t in candidates])
    specificity = np.array([(scores[~positive] < t).mean() if (~positive).any() else 0.0 for t in candidates])
    if cfg.optimize == "recall":
        reaching = candidates[recall >= cfg.at]
        return float(reaching.max()) if len(reaching) else float(candidates.min())
    balanced = (recall + specificity) / 2
    best = candidates[balanced == balanced.max()]
    return float(best[np.argmin(np.abs(best - 0.5))])  # among equals, the one nearest 0.5
