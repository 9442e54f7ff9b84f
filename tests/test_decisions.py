"""Decisions fitted on val (evaluate.logit_adjustment, calibrate, threshold), and the same
decision wherever the model goes: evaluate, imgpipe predict, the model MLflow serves."""

import json

import numpy as np
import pytest
import torch
from scipy.special import softmax

from imgpipe.errors import ImgpipeError, ParamsError
from imgpipe.evaluate.decide import choose_threshold, fit_decision, fit_temperature
from imgpipe.models.decision import DecidedClassifier, Decision
from imgpipe.models.factory import create_model
from imgpipe.models.saved import save_model
from imgpipe.params.evaluate import EvaluateConfig, ThresholdConfig
from model_helpers import digits_spec

RNG = np.random.default_rng(0)


def evaluate_cfg(**changes) -> EvaluateConfig:
    return EvaluateConfig(batch_size=64, tta=False, misclassified=0, **changes)


def test_temperature_scaling_finds_the_temperature_that_made_the_labels():
    logits = RNG.normal(size=(4000, 4)) * 4
    labels = np.array([RNG.choice(4, p=p) for p in softmax(logits / 2.5, axis=1)])
    assert fit_temperature(labels, logits) == pytest.approx(2.5, rel=0.1)


def test_post_hoc_logit_adjustment_undoes_a_long_tailed_prior():
    # A model that learnt the training prior along with the classes: balanced posteriors x prior.
    prior = np.array([0.7, 0.2, 0.08, 0.02])
    labels = np.repeat(np.arange(4), 250)  # val is balanced, as test is
    balanced = softmax(np.eye(4)[labels] * 2.0 + RNG.normal(size=(1000, 4)), axis=1)
    learnt = balanced * prior / (balanced * prior).sum(axis=1, keepdims=True)
    decision = fit_decision(evaluate_cfg(logit_adjustment=1.0), labels, learnt, list("abcd"), prior.tolist(), "r")
    recall = lambda p: np.mean([np.mean(p[labels == c].argmax(1) == c) for c in range(4)])  # noqa: E731
    assert recall(decision.apply(learnt)) == pytest.approx(recall(balanced), abs=1e-9)  # tau 1 undoes it exactly
    assert recall(decision.apply(learnt)) > recall(learnt) + 0.15


def test_a_threshold_reaches_the_recall_asked_for_or_balances_the_two_classes():
    positive = np.r_[np.zeros(900, bool), np.ones(100, bool)]
    scores = np.clip(np.where(positive, 0.35, 0.15) + RNG.normal(scale=0.12, size=1000), 0.001, 0.999)
    t = choose_threshold(positive, scores, ThresholdConfig(optimize="recall", **{"class": "sick"}, at=0.9))
    recall = lambda u: (scores[positive] >= u).mean()  # noqa: E731
    lowest_kept = scores[positive][scores[positive] >= t].min()
    assert recall(t) >= 0.9 > recall(lowest_kept + 1e-9)  # the highest threshold that reaches it
    best = choose_threshold(positive, scores, ThresholdConfig(optimize="balanced_accuracy"))
    balanced = lambda t: ((scores[positive] >= t).mean() + (scores[~positive] < t).mean()) / 2  # noqa: E731
    assert balanced(best) > balanced(0.5) + 0.2
    # As a decision: the named class wins exactly where its probability reaches the threshold.
    proba = np.c_[1 - scores, scores]
    cfg = evaluate_cfg(threshold={"optimize": "recall", "class": "sick", "at": 0.9})
    decision = fit_decision(cfg, positive.astype(int), proba, ["well", "sick"], [], "r")
    assert decision.fitted["threshold"] == pytest.approx(t)
    assert np.array_equal(decision.apply(proba).argmax(1) == 1, scores >= t)


def test_the_model_mlflow_serves_decides_as_evaluate_scored():
    model = create_model(digits_spec()).eval()
    decision = Decision(1.7, [0.3, -0.2, 0, 0, 0.1, 0, 0, 0, 0, -0.4], "r")
    images = torch.from_numpy(RNG.integers(0, 256, (8, 8, 8, 1), dtype=np.uint8))
    with torch.no_grad():
        raw = torch.softmax(model(images), 1).numpy()
        served = torch.softmax(DecidedClassifier(model, decision, 10)(images), 1).numpy()
    assert np.allclose(served, decision.apply(raw), atol=1e-5)


@pytest.mark.parametrize(
    "changes, key",
    [
        ({"threshold": {"optimize": "recall", "class": "nobody"}}, "evaluate.threshold.class"),
        ({"threshold": {"optimize": "balanced_accuracy"}, "classes": list("abc")}, "evaluate.threshold"),
        ({"logit_adjustment": 1.0, "prior": []}, "evaluate.logit_adjustment"),
    ],
)
def test_a_decision_that_cannot_be_fitted_names_the_key(changes, key):
    classes, prior = changes.pop("classes", ["a", "b"]), changes.pop("prior", [0.5, 0.5])
    proba = softmax(RNG.normal(size=(20, len(classes))), axis=1)
    with pytest.raises(ParamsError, match=rf"{key}\b"):
        fit_decision(evaluate_cfg(**changes), np.arange(20) % len(classes), proba, classes, prior, "r")


def test_predict_applies_the_decision_fitted_for_its_model_and_no_other(tmp_path):
    from imgpipe.paths import Paths
    from imgpipe.serving.predict import load_predictor

    spec = digits_spec()
    save_model(tmp_path / "models", create_model(spec), spec, {"run_id": "trained"})
    images = RNG.integers(0, 256, (5, 8, 8, 1), dtype=np.uint8)
    raw = load_predictor(None, tmp_path).proba(images)
    decision = Decision(2.0, [1.0] + [0.0] * 9, "trained")
    Paths(tmp_path).decision.parent.mkdir()
    Paths(tmp_path).decision.write_text(json.dumps(decision.to_dict()))
    assert np.allclose(load_predictor(None, tmp_path).proba(images), decision.apply(raw))
    Paths(tmp_path).decision.write_text(json.dumps({**decision.to_dict(), "run_id": "another model's"}))
    assert np.allclose(load_predictor(None, tmp_path).proba(images), raw)
    Paths(tmp_path).decision.write_text(json.dumps({**decision.to_dict(), "temperature": 0}))
    with pytest.raises(ImgpipeError, match=r"decision\.json: temperature 0\.0 .*dvc repro evaluate"):
        load_predictor(None, tmp_path)
