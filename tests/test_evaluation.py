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
    assert m["per_class"]["rare"] == {"precision": 0.0, "recall": 0.0, "f1": 0.0, "support": 10}
    assert m["per_class"]["common"]["recall"] == 1.0
    assert m["roc_auc_ovr"] == 0.5  # constant scores rank nothing
    assert m["log_loss"] == pytest.approx(-(0.9 * np.log(0.8) + 0.1 * np.log(0.2)), abs=1e-6)
    assert m["ece"] == pytest.approx(0.1, abs=1e-6)  # 80% confident, 90% right


def test_every_metric_is_reported_and_perfect_scores_are_perfect():
    y_true = np.array([0, 1, 2, 2, 1, 0])
    proba = np.eye(3)[y_true] * 0.97 + 0.01
    m = classification_metrics(y_true, proba, ["a", "b", "c"])
    assert set(m) == {"accuracy", "balanced_accuracy", "f1_macro", "f1_weighted", "roc_auc_ovr", "log_loss", "ece", "per_class"}
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
