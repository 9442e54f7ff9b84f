import numpy as np

from imgpipe.evaluation import classification_metrics, confusion_table, plot_confusion_matrix


def test_metrics_weigh_rare_classes():
    y_true = np.array([0] * 90 + [1] * 10)
    y_pred = np.zeros(100, dtype=int)  # always the majority class
    m = classification_metrics(y_true, y_pred, ["common", "rare"])
    assert m["accuracy"] == 0.9
    assert m["balanced_accuracy"] == 0.5
    assert m["per_class"]["rare"] == {"precision": 0.0, "recall": 0.0, "support": 10}
    assert m["per_class"]["common"]["recall"] == 1.0


def test_confusion_outputs(tmp_path):
    y_true, y_pred = np.array([0, 1, 1, 2]), np.array([0, 1, 2, 2])
    table = confusion_table(y_true, y_pred, ["a", "b", "c"])
    assert table.values.tolist() == [["a", "a"], ["b", "b"], ["b", "c"], ["c", "c"]]
    png = tmp_path / "cm.png"
    plot_confusion_matrix(y_true, y_pred, ["a", "b", "c"], png, title="t")
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
