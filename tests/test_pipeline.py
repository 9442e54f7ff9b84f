"""The whole pipeline through DVC, on tiny settings, as a user drives it.

One `dvc repro` (a module fixture) feeds many small tests, each checking one promise, so
a failure names what broke. The experiment steps build on it in order.
"""

import json
import shutil

import pandas as pd
import pytest
import yaml

from helpers import decoded_png, free_port, make_project
from imgpipe.models.saved import load_model

pytestmark = pytest.mark.slow

STAGES = ["ingest", "balance", "augment", "train", "evaluate"]
HEADLINE = {"accuracy", "balanced_accuracy", "f1_macro", "f1_weighted", "roc_auc_ovr", "log_loss", "ece"}


def ran(output: str) -> list[str]:
    return [s for s in STAGES if f"Running stage '{s}'" in output]


@pytest.fixture(scope="module")
def repro(tmp_path_factory):
    """A tiny project after its first `dvc repro`, that command's output and its training run's id."""
    project = make_project(tmp_path_factory.mktemp("pipeline") / "proj")
    project.commit("tiny project")
    return project, project.run("dvc", "repro"), json.loads((project.root / "models/run.json").read_text())["run_id"]


@pytest.fixture(scope="module")
def project(repro):
    return repro[0]


@pytest.fixture(scope="module")
def client(project):
    import mlflow

    return mlflow.MlflowClient(tracking_uri=f"sqlite:///{project.root}/mlflow.db")


@pytest.fixture(scope="module")
def training_run(repro, client):
    """The MLflow run of the first `dvc repro`: train's, completed by evaluate."""
    return client.get_run(repro[2])


def test_first_repro_runs_every_stage_in_order(repro):
    assert ran(repro[1].stdout) == STAGES


def test_metrics_json_has_every_headline_metric_for_val_and_test(project):
    metrics = json.loads((project.root / "metrics.json").read_text())
    assert set(metrics) == {"val", "test"}
    intervals = {f"{name}_ci95_{end}" for name in ("accuracy", "balanced_accuracy") for end in ("low", "high")}
    for split in ("val", "test"):
        assert set(metrics[split]) == HEADLINE | (intervals if split == "test" else set())
        assert 0.0 <= metrics[split]["accuracy"] <= 1.0
    test = metrics["test"]
    assert test["accuracy_ci95_low"] <= test["accuracy"] <= test["accuracy_ci95_high"]


def test_per_class_table_covers_every_test_image(project):
    per_class = pd.read_csv(project.root / "reports/per_class.csv", dtype={"class": str})
    assert list(per_class["class"]) == [str(d) for d in range(10)]
    assert list(per_class.columns) == [
        "class",
        "precision",
        "recall",
        "f1",
        "support",
        "recall_ci95_low",
        "recall_ci95_high",
    ]
    assert (per_class["recall_ci95_low"] <= per_class["recall"]).all()
    assert (per_class["recall"] <= per_class["recall_ci95_high"]).all()
    ingest = json.loads((project.root / "reports/ingest.json").read_text())
    assert per_class["support"].sum() == ingest["total"]["test"]


def test_balance_report_starts_from_ingests_counts_and_evens_them(project):
    ingest = json.loads((project.root / "reports/ingest.json").read_text())
    balance = json.loads((project.root / "reports/balance.json").read_text())
    assert balance["before"] == ingest["counts"]["train"]
    assert len(set(balance["after"].values())) == 1  # random_over evens the classes


# Sizes that follow from the figure: 7.5 inches square for ten classes, two panels side by side.
PICTURES = {
    "augment_preview.png": None,
    "misclassified.png": None,
    "confusion_matrix.png": (750, 750),
    "training_curves.png": (900, 340),
}


@pytest.mark.parametrize("name", list(PICTURES))
def test_report_picture_is_drawn(project, name):
    size, expected = decoded_png(project.root / "reports" / name), PICTURES[name]
    assert (size == expected) if expected else min(size) >= 64, size  # grids vary with what they show


def test_report_tables_hold_every_epoch_and_test_image(project):
    reports, epochs = project.root / "reports", project.params["train"]["epochs"]
    history = pd.read_csv(reports / "train_history.csv")
    assert list(history.columns) == [
        "epoch",
        "train_loss",
        "train_accuracy",
        "val_loss",
        "val_accuracy",
        "val_balanced_accuracy",
        "lr",
    ]
    assert len(history) == epochs and history["val_accuracy"].between(0, 1).all()
    confusion = pd.read_csv(reports / "confusion.csv", dtype=str)
    ingest = json.loads((reports / "ingest.json").read_text())
    assert list(confusion.columns) == ["actual", "predicted"] and len(confusion) == ingest["total"]["test"]
    assert set(confusion["actual"]) == {str(d) for d in range(10)}
    for name, x, y in (("roc.csv", "fpr", "tpr"), ("precision_recall.csv", "recall", "precision")):
        curve = pd.read_csv(reports / name, dtype={"class": str})
        assert list(curve.columns) == ["class", x, y] and len(curve) == 10 * 101, name  # the fixed grid, per class
        assert curve[y].between(0, 1).all(), name


def test_dvc_plots_show_renders_every_plot(project):
    shown = json.loads(project.run("dvc", "plots", "show", "--json").stdout)["data"]
    for plot_id in (
        "Confusion matrix (test)",
        "Recall by class (test)",
        "ROC, one-vs-rest (test)",
        "Precision-recall (test)",
        "Loss",
        "Accuracy",
        "reports/training_curves.png",
        "reports/misclassified.png",
    ):
        assert shown.get(plot_id), plot_id
    roc = json.dumps(shown["ROC, one-vs-rest (test)"])
    assert '"class": "3"' in roc and '"fpr"' in roc


@pytest.fixture(scope="module")
def pipeline_run(client, training_run):
    """The parent run of the first `dvc repro`."""
    return client.get_run(training_run.data.tags["mlflow.parentRunId"])


@pytest.fixture(scope="module")
def stage_runs(client, pipeline_run):
    """``{stage: run}``: the children of the first `dvc repro`'s pipeline run."""
    return children(client, pipeline_run)


def children(client, parent) -> dict:
    found = client.search_runs(
        [parent.info.experiment_id], filter_string=f"tags.mlflow.parentRunId = '{parent.info.run_id}'"
    )
    return {r.info.run_name: r for r in found}


def test_one_pipeline_run_with_a_child_per_stage(pipeline_run, stage_runs):
    commit = pipeline_run.data.tags["mlflow.source.git.commit"]
    assert pipeline_run.info.run_name == f"repro@{commit[:7]}" and pipeline_run.info.status == "FINISHED"
    assert sorted(stage_runs) == sorted(STAGES) and {r.info.status for r in stage_runs.values()} == {"FINISHED"}
    for stage, run in stage_runs.items():
        assert pipeline_run.data.tags[f"imgpipe.stage_run.{stage}"] == run.info.run_id
        assert f"[{run.info.run_id[:8]}](#/experiments/" in pipeline_run.data.tags["mlflow.note.content"]
    # Every param on the parent, but not where runs go; each data stage's own section on its run.
    assert pipeline_run.data.params["train.lr"] == "0.001" and pipeline_run.data.params["ingest.image_size"] == "16"
    assert not [k for k in pipeline_run.data.params if k.startswith("mlflow.")]
    for stage in ("ingest", "balance", "augment"):
        assert stage_runs[stage].data.params and all(k.startswith(f"{stage}.") for k in stage_runs[stage].data.params)


def test_each_stage_run_holds_its_metrics_and_reports(client, project, stage_runs):
    ingest = json.loads((project.root / "reports/ingest.json").read_text())
    metrics = stage_runs["ingest"].data.metrics
    assert (
        metrics["decoded"] == ingest["summary"]["decoded"] and metrics["imbalance_ratio"] == ingest["imbalance_ratio"]
    )
    assert {"skipped", "duplicates_removed", "images.train", "count.train.0", "count.test.9"} <= set(metrics)
    balance = json.loads((project.root / "reports/balance.json").read_text())
    metrics = stage_runs["balance"].data.metrics
    assert metrics["total_after"] == balance["total_after"] and metrics["after.3"] == balance["after"]["3"]
    assert metrics["synthetic"] == 0 and metrics["before.0"] == balance["before"]["0"]
    metrics = stage_runs["augment"].data.metrics
    assert metrics["images_written"] > 0 and metrics["images_per_second"] > 0
    expected = {
        "ingest": {"reports/ingest.json", "reports/ingest_samples.png", "reports/near_duplicates.csv"},
        "balance": {"reports/balance.json", "reports/balance_counts.png"},
        "augment": {"reports/augment_preview.png", "reports/pipeline.json"},
        "train": {"reports/train_history.csv"},
        "evaluate": {
            "evaluation/confusion_matrix.png",
            "evaluation/misclassified.png",
            "evaluation/roc.csv",
            "evaluation/training_curves.png",
            "evaluation/model_card.md",
        },
    }
    for stage, files in expected.items():
        folder = next(iter(files)).split("/")[0]
        assert files <= {a.path for a in client.list_artifacts(stage_runs[stage].info.run_id, folder)}, stage


def test_each_stage_run_names_its_output_by_dvc_hash_and_links_its_inputs(project, stage_runs):
    lock = yaml.safe_load((project.root / "dvc.lock").read_text())["stages"]
    md5 = {o["path"]: o["md5"] for stage in lock.values() for o in stage.get("outs", [])}
    for stage, out in (
        ("ingest", "data/ingest"),
        ("balance", "data/balance"),
        ("augment", "data/augment"),
        ("train", "models"),
        ("evaluate", "metrics.json"),
    ):
        assert stage_runs[stage].data.tags[f"imgpipe.out.{out}"] == md5[out], stage
    made = {stage: run.info.run_id for stage, run in stage_runs.items()}
    assert stage_runs["balance"].data.tags["imgpipe.in.data/ingest"] == made["ingest"]
    assert stage_runs["augment"].data.tags["imgpipe.in.data/balance"] == made["balance"]
    assert stage_runs["train"].data.tags["imgpipe.in.data/augment"] == made["augment"]
    assert stage_runs["evaluate"].data.tags["imgpipe.in.models"] == made["train"]
    outputs = {
        i.dataset.name: i.dataset.digest
        for i in stage_runs["ingest"].inputs.dataset_inputs
        if {t.key: t.value for t in i.tags}["mlflow.data.context"] == "output"
    }
    assert outputs == {"data/ingest": md5["data/ingest"].removesuffix(".dir")}


def test_mlflow_run_has_params_epochs_metrics_and_model(project, client, training_run, pipeline_run, stage_runs):
    run = training_run
    assert run.info.run_name == "train" and run.data.params["train.lr"] == "0.001"
    assert len(client.get_metric_history(run.info.run_id, "val_accuracy")) == 2
    metrics = json.loads((project.root / "metrics.json").read_text())
    evaluated = stage_runs["evaluate"]
    assert evaluated.data.metrics["test.accuracy"] == metrics["test"]["accuracy"]
    assert evaluated.data.tags["imgpipe.model_run_id"] == run.info.run_id
    assert pipeline_run.data.metrics["test.accuracy"] == metrics["test"]["accuracy"]  # rolled up, to compare runs
    assert client.search_logged_models([run.info.experiment_id])  # the model, logged with the run


def test_mlflow_run_records_the_data_it_saw_by_dvc_hash(project, training_run):
    lock = yaml.safe_load((project.root / "dvc.lock").read_text())["stages"]
    inputs = {
        i.dataset.name: i
        for i in training_run.inputs.dataset_inputs
        if {t.key: t.value for t in i.tags}["mlflow.data.context"] in ("training", "validation")
    }
    assert set(inputs) == {"data/augment", "data/ingest"}
    augment_md5 = next(o["md5"] for o in lock["augment"]["outs"] if o["path"] == "data/augment")
    assert {t.key: t.value for t in inputs["data/augment"].tags}["dvc.md5"] == augment_md5
    assert inputs["data/augment"].dataset.digest == augment_md5.removesuffix(".dir")
    source = json.loads(inputs["data/augment"].dataset.source)
    assert source["origin"] == "digits" and source["git_commit"] == training_run.data.tags["mlflow.source.git.commit"]


def test_a_data_stage_whose_tracking_server_is_down_fails_fast_and_writes_nothing(project):
    """Balance here; ingest and augment open their runs through the same ``recorded``."""
    import time

    stage = "balance"

    uri = f"http://127.0.0.1:{free_port()}"  # nobody listens there
    started = time.monotonic()
    failed = project.run("python", "-m", f"stages.{stage}", check=False, env={"MLFLOW_TRACKING_URI": uri})
    assert failed.returncode != 0 and f"tracking server at {uri} does not answer" in failed.stderr
    assert time.monotonic() - started < 60
    assert json.loads(project.run("dvc", "status", "--json").stdout) == {}  # its outputs are as they were


def test_second_repro_runs_nothing(project):
    assert ran(project.run("dvc", "repro").stdout) == []


# What changes how things look, or where runs are recorded, must not retrain the model.
COSMETIC = {
    "a plotting helper only reports use": ("src/imgpipe/balance/pictures.py", 'color="#2f6fbd"', 'color="#1f5fad"'),
    "the shared figure saver": ("src/imgpipe/viz/figure.py", "dpi: int = 100", "dpi: int = 101"),
    "another stage's schema": (
        "src/imgpipe/params/evaluate.py",
        "how many of the most confident",
        "how many of the surest",
    ),
    "mlflow.experiment_name": ("params.yaml", "experiment_name: imgpipe", "experiment_name: renamed"),
}


@pytest.mark.parametrize("change", list(COSMETIC))
def test_cosmetic_change_does_not_retrain(project, change):
    path, old, new = COSMETIC[change]
    file = project.root / path
    original = file.read_text()
    assert old in original, f"{path} no longer holds {old!r}: update this test"
    file.write_text(original.replace(old, new))
    try:
        status = json.loads(project.run("dvc", "status", "--json").stdout)
        assert "train" not in status, f"editing {change} makes train stale: {status}"
        if path == "params.yaml":  # where runs are recorded reruns no stage (check_params only validates)
            assert set(status) <= {"check_params"}, status
    finally:
        file.write_text(original)  # dvc.lock was not touched: the project is as it was


def test_a_bytecode_cache_in_a_code_folder_reruns_nothing(project):
    # Python writes these on import; .dvcignore keeps them out of the code folders' hashes.
    cache = project.root / "src" / "imgpipe" / "train" / "__pycache__"
    cache.mkdir(exist_ok=True)
    (cache / "loop.cpython-311.pyc").write_bytes(b"\x00bytecode")
    (project.root / "src" / "imgpipe" / "viz" / "stray.pyc").write_bytes(b"\x00")
    try:
        assert json.loads(project.run("dvc", "status", "--json").stdout) == {}
    finally:
        shutil.rmtree(cache)
        (project.root / "src" / "imgpipe" / "viz" / "stray.pyc").unlink()


@pytest.mark.parametrize(
    "typo, named",
    [("\ntrian:\n  lr: 0.1\n", "unknown section(s) trian"), ("\ningest:\n  imgae_size: 32\n", "ingest.imgae_size")],
)
def test_a_params_typo_fails_repro_even_when_nothing_would_rerun(project, typo, named):
    params = project.root / "params.yaml"
    original = params.read_text()
    # An added, misspelt key: ingest's own params are unchanged, so only the check can catch it.
    edited = (
        original + typo
        if "trian" in typo
        else original.replace("  image_size: 16", "  image_size: 16\n  imgae_size: 32")
    )
    params.write_text(edited)
    try:
        failed = project.run("dvc", "repro", check=False)
        assert failed.returncode != 0 and named in failed.stderr + failed.stdout
    finally:
        params.write_text(original)
    assert ran(project.run("dvc", "repro").stdout) == []


@pytest.fixture(scope="module")
def lr_experiment(project):
    project.commit("baseline with lock")
    return project.run("dvc", "exp", "run", "-S", "train.lr=0.003")


def test_a_train_param_reruns_train_and_evaluate_only(lr_experiment):
    assert ran(lr_experiment.stdout) == ["train", "evaluate"]


def test_metrics_diff_sees_the_experiment(project, lr_experiment):
    assert "metrics.json" in json.loads(project.run("dvc", "metrics", "diff", "--json").stdout)


@pytest.fixture(scope="module")
def tta_experiment(project, lr_experiment):
    """`evaluate.tta=true` scores the lr experiment's model again; returns that model's run id too."""
    trained_id = json.loads((project.root / "models/run.json").read_text())["run_id"]
    return project.run("dvc", "exp", "run", "-S", "evaluate.tta=true"), trained_id


def test_an_evaluate_param_reruns_evaluate_only(tta_experiment):
    assert ran(tta_experiment[0].stdout) == ["evaluate"]


def test_a_reevaluation_is_a_pipeline_run_of_one_stage_linking_the_cached_ones(
    project, client, stage_runs, tta_experiment
):
    """Only evaluate ran: the experiment's pipeline run has one child, and names the runs
    that made the outputs DVC reused (the lr experiment's model, the first repro's data)."""
    trained_id = tta_experiment[1]
    (evaluated,) = client.search_runs(
        [stage_runs["train"].info.experiment_id],
        order_by=["attributes.start_time DESC"],
        max_results=1,
        filter_string="tags.`imgpipe.stage` = 'evaluate'",
    )
    parent = client.get_run(evaluated.data.tags["mlflow.parentRunId"])
    assert list(children(client, parent)) == ["evaluate"] and parent.info.run_name == parent.data.tags["dvc.exp_name"]
    tags = parent.data.tags
    assert tags["imgpipe.stage_run.train"] == trained_id and tags["imgpipe.stage_run.train.cached"] == "true"
    for stage in ("ingest", "balance", "augment"):
        assert tags[f"imgpipe.stage_run.{stage}"] == stage_runs[stage].info.run_id
    assert "cached" in tags["mlflow.note.content"] and evaluated.data.tags["imgpipe.model_run_id"] == trained_id
    assert evaluated.data.params["evaluate.tta"] == "True"
    assert (
        evaluated.data.metrics["test.accuracy"]
        == json.loads((project.root / "metrics.json").read_text())["test"]["accuracy"]
    )
    assert "test.accuracy" not in client.get_run(trained_id).data.metrics  # the training run is left as it was


def test_the_report_of_a_reevaluation_borrows_the_training_pictures(project, tta_experiment):
    project.run("imgpipe", "report", "-o", "tta.md")
    page = (project.root / "tta.md").read_text()
    assert f"trained in run {tta_experiment[1]}" in page
    assert "## Training curves" in page and "## Confusion matrix (test)" in page and "## Augmentation preview" in page
    assert "## Pipeline" in page and "| evaluate |" in page and "cached: reused from pipeline" in page


@pytest.fixture(scope="module")
def decision_experiment(project, tta_experiment):
    """Post-hoc logit adjustment and temperature scaling on the same model: evaluate only."""
    return project.run("dvc", "exp", "run", "-S", "evaluate.logit_adjustment=1.0", "-S", "evaluate.calibrate=true")


def test_decisions_are_fitted_on_val_without_retraining(project, decision_experiment):
    assert ran(decision_experiment.stdout) == ["evaluate"]
    metrics = json.loads((project.root / "metrics.json").read_text())
    assert {"ece", "ece_before_calibration"} <= set(metrics["test"])
    decision = json.loads((project.root / "reports/decision.json").read_text())
    assert decision["temperature"] != 1.0 and decision["fitted"]["logit_adjustment"] == 1.0
    assert decision["run_id"] == json.loads((project.root / "models/run.json").read_text())["run_id"]


def test_predict_and_the_model_mlflow_serves_decide_as_evaluate_scored(project, client, decision_experiment):
    import numpy as np
    import torch

    from imgpipe.models.decision import Decision
    from imgpipe.models.inference import predict_proba
    from imgpipe.serving.predict import load_predictor
    from imgpipe.store import ingested

    images = np.array(ingested.read_split(project.root / "data/ingest", "test").images[:64])  # writable, as torch likes
    decision = Decision(**json.loads((project.root / "reports/decision.json").read_text()))
    raw = predict_proba(load_model(project.root / "models")[1], images, 64, torch.device("cpu"))
    decided = decision.apply(raw)  # as evaluate scores (without its test-time mirror images)
    assert not np.allclose(decided, raw, atol=1e-3)  # the decision changes the scores
    assert np.allclose(load_predictor(None, project.root).proba(images), decided, atol=1e-6)  # imgpipe predict
    logged = client.search_logged_models([e.experiment_id for e in client.search_experiments()])
    (served,) = [m for m in logged if m.name == "decided_model"]
    assert np.allclose(load_predictor(f"models:/{served.model_id}", project.root).proba(images), decided, atol=1e-4)


@pytest.mark.parametrize(
    "section, value, key", [("train", {"lr": -1}, "train.lr"), ("balance", {"method": "magic"}, "balance.method")]
)
def test_bad_params_stop_the_stage_with_the_key(tmp_path, section, value, key):
    project = make_project(tmp_path / "proj")
    project.set_params({section: value})
    proc = project.run("python", "-m", f"stages.{section}", check=False)
    assert proc.returncode != 0
    assert key in proc.stderr and "Traceback" not in proc.stderr
