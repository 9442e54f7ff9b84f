"""The whole pipeline through DVC, on tiny settings, as a user drives it."""

import json

import pandas as pd
import yaml

import pytest

pytestmark = pytest.mark.slow

STAGES = ["ingest", "balance", "augment", "train", "evaluate"]


def ran(output: str) -> list[str]:
    return [s for s in STAGES if f"Running stage '{s}'" in output]


def test_dvc_repro_end_to_end(project):
    project.commit("tiny project")
    first = project.run("dvc", "repro")
    assert ran(first.stdout) == STAGES

    metrics = json.loads((project.root / "metrics.json").read_text())
    for split in ("val", "test"):
        assert set(metrics[split]) == {"accuracy", "balanced_accuracy", "f1_macro", "f1_weighted", "roc_auc_ovr",
                                       "log_loss", "ece"}
        assert 0.0 <= metrics[split]["accuracy"] <= 1.0
    per_class = pd.read_csv(project.root / "reports/per_class.csv", dtype={"class": str})
    assert list(per_class["class"]) == [str(d) for d in range(10)]
    assert list(per_class.columns) == ["class", "precision", "recall", "f1", "support"]
    assert per_class["support"].sum() == json.loads((project.root / "reports/ingest.json").read_text())["total"]["test"]
    ingest = json.loads((project.root / "reports/ingest.json").read_text())
    balance = json.loads((project.root / "reports/balance.json").read_text())
    assert balance["before"] == ingest["counts"]["train"]
    assert len(set(balance["after"].values())) == 1  # random_over evens the classes
    for name in ("augment_preview.png", "confusion_matrix.png", "train_history.csv", "confusion.csv", "roc.csv",
                 "precision_recall.csv", "misclassified.png", "training_curves.png"):
        assert (project.root / "reports" / name).stat().st_size > 0

    # dvc plots show renders the confusion matrix, the ROC curves and the training curves.
    shown = json.loads(project.run("dvc", "plots", "show", "--json").stdout)["data"]
    for plot_id in ("Confusion matrix (test)", "Recall by class (test)", "ROC, one-vs-rest (test)", "Precision-recall (test)", "Loss", "Accuracy",
                    "reports/training_curves.png", "reports/misclassified.png"):
        assert shown.get(plot_id), plot_id
    roc = json.dumps(shown["ROC, one-vs-rest (test)"])
    assert '"class": "3"' in roc and '"fpr"' in roc

    # MLflow: one run with every param, per-epoch metrics, the model and the confusion matrix.
    import mlflow

    client = mlflow.MlflowClient(tracking_uri=f"sqlite:///{project.root}/mlflow.db")
    (run,) = client.search_runs([client.get_experiment_by_name("imgpipe").experiment_id])
    assert run.data.params["train.lr"] == "0.001" and run.data.params["ingest.image_size"] == "16"
    assert run.info.run_name == f"repro@{run.data.tags['mlflow.source.git.commit'][:7]}"
    assert len(client.get_metric_history(run.info.run_id, "val_accuracy")) == 2
    assert run.data.metrics["test.accuracy"] == metrics["test"]["accuracy"]
    # The data it saw: each split as a dataset input, digested by its DVC hash, with its source.
    lock = yaml.safe_load((project.root / "dvc.lock").read_text())["stages"]
    inputs = {i.dataset.name: i for i in run.inputs.dataset_inputs}
    assert set(inputs) == {"data/augment", "data/ingest"}
    augment_md5 = next(o["md5"] for o in lock["augment"]["outs"] if o["path"] == "data/augment")
    assert {t.key: t.value for t in inputs["data/augment"].tags}["dvc.md5"] == augment_md5
    assert inputs["data/augment"].dataset.digest == augment_md5.removesuffix(".dir")
    source = json.loads(inputs["data/augment"].dataset.source)
    assert source["origin"] == "digits" and source["git_commit"] == run.data.tags["mlflow.source.git.commit"]
    # The upstream reports, attached once each.
    reports = [a.path for a in client.list_artifacts(run.info.run_id, "reports")]
    assert {"reports/ingest.json", "reports/balance.json", "reports/augment_preview.png"} <= set(reports)
    assert len(reports) == len(set(reports))
    artifacts = {a.path for a in client.list_artifacts(run.info.run_id, "evaluation")}
    assert {"evaluation/confusion_matrix.png", "evaluation/misclassified.png", "evaluation/roc.csv"} <= artifacts
    assert "reports/training_curves.png" in {a.path for a in client.list_artifacts(run.info.run_id, "reports")}
    assert client.search_logged_models([run.info.experiment_id])  # the model, logged with the run

    # Nothing changed: nothing runs.
    again = project.run("dvc", "repro")
    assert ran(again.stdout) == []

    # A training param reruns training and evaluation only, and metrics diff sees it.
    project.commit("baseline with lock")
    exp = project.run("dvc", "exp", "run", "-S", "train.lr=0.003")
    assert ran(exp.stdout) == ["train", "evaluate"]
    diff = project.run("dvc", "metrics", "diff", "--json")
    assert "metrics.json" in json.loads(diff.stdout)

    # An evaluate param scores the same model again: a run of its own, nested under the
    # training run, whose record stays as it was.
    trained_id = json.loads((project.root / "models/run.json").read_text())["run_id"]
    tta = project.run("dvc", "exp", "run", "-S", "evaluate.tta=true")
    assert ran(tta.stdout) == ["evaluate"]
    assert len(client.get_metric_history(trained_id, "test.accuracy")) == 1
    assert client.get_run(trained_id).data.params["evaluate.tta"] == "False"
    (nested,) = client.search_runs([run.info.experiment_id], filter_string=f"tags.mlflow.parentRunId = '{trained_id}'")
    assert nested.data.params["evaluate.tta"] == "True" and nested.data.tags["imgpipe.model_run_id"] == trained_id
    assert nested.data.tags["dvc.exp_name"] == nested.info.run_name
    assert nested.data.metrics["test.accuracy"] == json.loads((project.root / "metrics.json").read_text())["test"]["accuracy"]
    assert "evaluation/confusion_matrix.png" in {a.path for a in client.list_artifacts(nested.info.run_id, "evaluation")}
    # Its report borrows the training pictures from the model's run.
    project.run("imgpipe", "report", "-o", "tta.md")
    page = (project.root / "tta.md").read_text()
    assert f"trained in run {trained_id}" in page and "## Training curves" in page and "## Confusion matrix (test)" in page


@pytest.mark.parametrize("section, value, key", [("train", {"lr": -1}, "train.lr"),
                                                 ("balance", {"method": "magic"}, "balance.method")])
def test_bad_params_stop_the_stage_with_the_key(project, section, value, key):
    project.set_params({section: value})
    proc = project.run("python", "-m", f"stages.{section}", check=False)
    assert proc.returncode != 0
    assert key in proc.stderr and "Traceback" not in proc.stderr
