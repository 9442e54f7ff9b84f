import numpy as np
import pytest

from imgpipe.evaluate.metrics import classification_metrics, confusion_table, curves, most_confident_mistakes
from imgpipe.evaluate.plots import plot_confusion_matrix


def test_metrics_weigh_rare_classes():
    y_true = np.array([0] * 90 + [1] * 10)
    proba = np.tile([0.8, 0.2], (100, 1))  # always the majority class
    m = classification_metrics(y_true, proba, ["common", "rare"])
    assert m["accuracy"] == 0.9
    assert m["balanced_accuracy"] == 0.5
    rare = m["per_class"]["rare"]
    assert {k: rare[k] for k in ("precision", "recall", "f1", "support")} == {
        "precision": 0.0,
        "recall": 0.0,
        "f1": 0.0,
        "support": 10,
    }
    # 0 of 10: Wilson's interval reaches up to about 0.28, not a certain 0.
    assert rare["recall_ci95_low"] == 0.0 and rare["recall_ci95_high"] == pytest.approx(0.2775, abs=1e-3)
    assert m["per_class"]["common"]["recall"] == 1.0
    assert m["roc_auc_ovr"] == 0.5  # constant scores rank nothing
    assert m["log_loss"] == pytest.approx(-(0.9 * np.log(0.8) + 0.1 * np.log(0.2)), abs=1e-6)
    assert m["ece"] == pytest.approx(0.1, abs=1e-6)  # 80% confident, 90% right


def test_every_metric_is_reported_and_perfect_scores_are_perfect():
    y_true = np.array([0, 1, 2, 2, 1, 0])
    proba = np.eye(3)[y_true] * 0.97 + 0.01
    m = classification_metrics(y_true, proba, ["a", "b", "c"])
    assert set(m) == {
        "accuracy",
        "balanced_accuracy",
        "f1_macro",
        "f1_weighted",
        "roc_auc_ovr",
        "log_loss",
        "ece",
        "per_class",
    }
    assert m["accuracy"] == m["f1_macro"] == m["f1_weighted"] == m["roc_auc_ovr"] == 1.0
    assert m["ece"] == pytest.approx(0.02, abs=1e-6)


def test_roc_and_pr_curves_are_per_class_on_a_fixed_grid():
    rng = np.random.default_rng(0)
    y_true = rng.integers(0, 3, 300)
    proba = rng.dirichlet([1, 1, 1], 300)
    proba[np.arange(300), y_true] += 1.0  # informative
    proba /= proba.sum(1, keepdims=True)
    roc, pr = curves(y_true, proba, ["a", "b", "c"])
    assert roc.groupby("class").size().to_dict() == {"a": 101, "b": 101, "c": 101}
    assert roc["tpr"].between(0, 1).all() and (roc.groupby("class")["tpr"].diff().dropna() >= 0).all()
    assert list(pr.columns) == ["class", "recall", "precision"]
    assert pr.groupby("class")["precision"].first().gt(0.5).all()  # informative scores: precise at low recall


def test_most_confident_mistakes_come_first():
    y_true = np.array([0, 0, 1, 1])
    proba = np.array([[0.9, 0.1], [0.2, 0.8], [0.6, 0.4], [0.1, 0.9]])
    assert most_confident_mistakes(y_true, proba).tolist() == [1, 2]


def test_confusion_outputs(tmp_path):
    y_true, y_pred = np.array([0, 1, 1, 2]), np.array([0, 1, 2, 2])
    table = confusion_table(y_true, y_pred, ["a", "b", "c"])
    assert table.values.tolist() == [["a", "a"], ["b", "b"], ["b", "c"], ["c", "c"]]
    png = tmp_path / "cm.png"
    plot_confusion_matrix(y_true, y_pred, ["a", "b", "c"], png, title="t")
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_bootstrap_intervals_are_seeded_and_widen_as_the_test_split_shrinks():
    from imgpipe.evaluate.intervals import bootstrap_intervals

    rng = np.random.default_rng(0)
    y_true = rng.integers(0, 4, 2000)
    y_pred = np.where(rng.random(2000) < 0.75, y_true, (y_true + 1) % 4)
    big = bootstrap_intervals(y_true, y_pred, 1000, seed=0)
    small = bootstrap_intervals(y_true[:40], y_pred[:40], 1000, seed=0)
    assert bootstrap_intervals(y_true, y_pred, 1000, seed=0) == big  # seeded: the same numbers again
    for name in ("accuracy", "balanced_accuracy"):
        assert big[f"{name}_ci95_low"] < 0.75 < big[f"{name}_ci95_high"]
        width = lambda m: m[f"{name}_ci95_high"] - m[f"{name}_ci95_low"]  # noqa: E731
        assert width(big) < 0.06 < 0.2 < width(small)
    assert bootstrap_intervals(y_true, y_pred, 0, seed=0) == {}  # evaluate.bootstrap_resamples: 0
