"""imgpipe tune: the search space, the study's storage, pruning from the train stage, and a
real 3-trial study whose trials are DVC experiments nested under one MLflow run."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from helpers import make_project
from imgpipe.errors import ImgpipeError, ParamsError
from imgpipe.tracking.store import hide_password
from imgpipe.train import tune_trial
from imgpipe.tune.config import check_space, load_tune_config, read_metric
from imgpipe.tune.space import apply, overrides
from imgpipe.tune.storage import study_storage

SPACE = {"train.lr": {"log_uniform": [1.0e-3, 1.0e-2]}, "train.optimizer": ["adam", "sgd"]}


def write_params(tmp_path: Path, tune: dict) -> Path:
    from helpers import REPO

    params = yaml.safe_load((REPO / "params.yaml").read_text())
    params["tune"] = tune
    path = tmp_path / "params.yaml"
    path.write_text(yaml.safe_dump(params, sort_keys=False))
    return path


def test_overrides_set_a_mapping_where_params_hold_a_string():
    params = {"train": {"lr": 0.1, "freeze": "none", "simple_cnn": {"filters": 8}}}
    values = {
        "train.lr": 0.002,
        "train.freeze.unfreeze_last": 2,
        "train.simple_cnn.filters": 16,
        "train.optimizer": "sgd",
    }
    assert overrides(params, values) == [
        "train.lr=0.002",
        "train.freeze={unfreeze_last: 2}",
        "train.simple_cnn.filters=16",
        "train.optimizer='sgd'",
    ]
    assert apply(params, values)["train"]["freeze"] == {"unfreeze_last": 2}
    assert params["train"]["freeze"] == "none"  # the caller's params are left alone


def test_space_the_pipeline_would_refuse_is_named_before_any_trial(tmp_path):
    path = write_params(tmp_path, {"space": {"train.optimizer": ["adam", "lion"]}})
    with pytest.raises(
        ParamsError,
        match=r"tune.space: a trial with train.optimizer='lion' would be refused: "
        r"train.optimizer",
    ):
        check_space(path, load_tune_config(path))
    path = write_params(tmp_path, {"space": {"train.freeze.unfreeze_last": {"int": [0, 4]}}})
    check_space(path, load_tune_config(path))  # 0 = the head only


@pytest.mark.parametrize(
    "tune, key",
    [
        ({"metric": "test.accuracy", "space": SPACE}, "tune.metric"),
        ({"space": {"mlflow.experiment_name": ["a"]}}, "tune.space.mlflow.experiment_name"),
        ({"space": {"train.lr": {"log_uniform": [0, 1]}}}, "tune.space.train.lr"),
        ({"space": {"train.lr": {"uniform": [0.1, 0.01]}}}, "tune.space.train.lr"),
        ({"space": {}}, "tune.space"),
    ],
)
def test_bad_study_names_the_key(tmp_path, tune, key):
    with pytest.raises(ParamsError, match=key.replace(".", r"\.")):
        load_tune_config(write_params(tmp_path, tune))


def test_tune_yaml_beside_params(tmp_path):
    path = write_params(tmp_path, {"space": SPACE})
    (tmp_path / "tune.yaml").write_text(yaml.safe_dump({"space": SPACE}))
    with pytest.raises(ParamsError, match="keep one"):
        load_tune_config(path)
    params = yaml.safe_load(path.read_text())
    del params["tune"]
    path.write_text(yaml.safe_dump(params))
    assert load_tune_config(path).space["train.optimizer"] == ["adam", "sgd"]
    (tmp_path / "tune.yaml").unlink()
    with pytest.raises(ParamsError, match="no search space"):
        load_tune_config(path)


def test_metric_is_read_by_its_dotted_key():
    metrics = {"val": {"balanced_accuracy": 0.5}, "test": {"accuracy": 0.4}}
    assert read_metric(metrics, "val.balanced_accuracy") == 0.5
    with pytest.raises(ParamsError, match="val.f1_macro is not in metrics.json.*val.balanced_accuracy"):
        read_metric(metrics, "val.f1_macro")


def test_storage_is_beside_the_mlflow_store(tmp_path, monkeypatch):
    monkeypatch.delenv(tune_trial.ENV_STORAGE, raising=False)
    monkeypatch.delenv("DVC_ROOT", raising=False)
    assert study_storage(tmp_path) == f"sqlite:///{(tmp_path / 'optuna.db').resolve().as_posix()}"
    monkeypatch.setenv("DVC_ROOT", str(tmp_path / "parent"))  # a queued experiment's copy
    assert study_storage(tmp_path).endswith("/parent/optuna.db")
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://127.0.0.1:5000")
    with pytest.raises(ImgpipeError, match="set IMGPIPE_TUNE_STORAGE"):
        study_storage(tmp_path)
    monkeypatch.setenv(tune_trial.ENV_STORAGE, "postgresql+psycopg://mlflow:secret@db:5432/mlflow_optuna")
    assert "secret" not in hide_password(study_storage(tmp_path))


def prunable_study(storage: str, warmup: int = 0) -> tuple[object, object]:
    """A study with one finished trial at 0.9 every epoch and a running second trial."""
    import optuna

    optuna.logging.set_verbosity(optuna.logging.ERROR)
    study = optuna.create_study(study_name="s", storage=storage, direction="maximize")
    study.set_user_attr(tune_trial.PRUNER_ATTR, {"name": "median", "startup_trials": 1, "warmup_epochs": warmup})
    first = study.ask()
    for epoch in (1, 2, 3):
        first.report(0.9, epoch)
    study.tell(first, 0.9)
    return study, study.ask()


def trial_env(storage: str, trial) -> dict[str, str]:
    return {
        tune_trial.ENV_STORAGE: storage,
        tune_trial.ENV_STUDY: "s",
        tune_trial.ENV_TRIAL_ID: str(trial._trial_id),
        tune_trial.ENV_TRIAL_NUMBER: str(trial.number),
        tune_trial.ENV_REPORT: "val_balanced_accuracy",
    }


def test_a_trial_behind_the_median_is_pruned(tmp_path, monkeypatch):
    storage = f"sqlite:///{tmp_path / 'optuna.db'}"
    _, trial = prunable_study(storage, warmup=1)
    for name, value in trial_env(storage, trial).items():
        monkeypatch.setenv(name, value)
    reporter = tune_trial.TrialReporter.from_env()
    reporter.report({"epoch": 1, "val_balanced_accuracy": 0.1})  # behind, but within the warmup: goes on
    with pytest.raises(tune_trial.TrialPruned, match="after epoch 2"):
        reporter.report({"epoch": 2, "val_balanced_accuracy": 0.1})
    import optuna

    assert optuna.storages.RDBStorage(storage).get_trial_user_attrs(trial._trial_id)[tune_trial.PRUNED_AT_ATTR] == 2
    for name in trial_env(storage, trial):
        monkeypatch.delenv(name)
    assert tune_trial.TrialReporter.from_env() is None  # outside a study: nothing to report to


@pytest.fixture(scope="module")
def studied(tmp_path_factory):
    """A committed project after `dvc repro`, then `imgpipe tune --trials 3`."""
    proj = make_project(tmp_path_factory.mktemp("tune") / "proj")
    proj.set_params({"train": {"epochs": 1}, "evaluate": {"bootstrap_resamples": 0}})  # each trial as short as it gets
    proj.set_params({"tune": {"space": None}})  # replace the shipped space, not merge with it
    proj.set_params({"tune": {"trials": 3, "space": SPACE, "pruner": {"name": "median", "startup_trials": 3}}})
    proj.run("dvc", "repro")
    proj.commit("baseline")
    tuned = proj.run("imgpipe", "tune", timeout=1200)
    return proj, tuned.stdout


def experiments(proj) -> dict[str, dict]:
    shown = json.loads(proj.run("dvc", "exp", "show", "--json").stdout)
    return {e["name"]: e["revs"][0]["data"] for e in shown[1]["experiments"] or []}


@pytest.mark.slow
def test_every_trial_is_a_dvc_experiment_that_reruns_only_what_changed(studied):
    import optuna

    proj, out = studied
    study = optuna.load_study(study_name="default", storage=f"sqlite:///{proj.root / 'optuna.db'}")
    assert [t.state.name for t in study.trials] == ["COMPLETE"] * 3, out
    exps = experiments(proj)
    for trial in study.trials:
        data = exps[f"tune-default-{trial.number}"]
        train = data["params"]["params.yaml"]["data"]["train"]
        assert (train["lr"], train["optimizer"]) == (trial.params["train.lr"], trial.params["train.optimizer"])
        assert data["metrics"]["metrics.json"]["data"]["val"]["balanced_accuracy"] == pytest.approx(trial.value)
        log = (proj.root / "logs" / "tune" / "default" / f"tune-default-{trial.number}.log").read_text()
        ran = [line.split("'")[1] for line in log.splitlines() if line.startswith("Running stage '")]
        assert ran == ["check_params", "train", "evaluate"], ran  # the data stages come from DVC's cache
    assert f"dvc exp apply tune-default-{study.best_trial.number}" in out
    proj.run("dvc", "exp", "apply", f"tune-default-{study.best_trial.number}")
    assert proj.params["train"]["lr"] == study.best_trial.params["train.lr"]
    assert proj.run("git", "status", "--porcelain", "--untracked-files=no").stdout.strip()  # applied to the workspace
    proj.run("git", "checkout", "--", ".")


@pytest.mark.slow
def test_trials_are_nested_under_the_study_run(studied):
    import mlflow

    proj, _ = studied
    mlflow.set_tracking_uri(f"sqlite:///{proj.root / 'mlflow.db'}")
    runs = mlflow.search_runs(search_all_experiments=True, output_format="list")
    parent = next(r for r in runs if r.info.run_name == "tune-default")
    children = [r for r in runs if r.data.tags.get("mlflow.parentRunId") == parent.info.run_id]
    assert sorted(r.info.run_name for r in children) == [f"tune-default-{n}" for n in range(3)]
    assert all("val.balanced_accuracy" in r.data.metrics for r in children)  # evaluate logged there too
    assert parent.data.tags["best.experiment"].startswith("tune-default-")
    assert "best.train.lr" in parent.data.tags
    artifacts = {a.path for a in mlflow.MlflowClient().list_artifacts(parent.info.run_id, "tune")}
    assert {"tune/optimization_history.png", "tune/param_importances.png", "tune/trials.csv"} <= artifacts


@pytest.mark.slow
def test_resume_continues_the_study_and_a_second_start_is_refused(studied):
    import optuna

    proj, _ = studied
    again = proj.run("imgpipe", "tune", "--trials", "1", check=False)
    assert again.returncode == 2 and "--resume" in again.stderr
    proj.run("imgpipe", "tune", "--resume", "--trials", "1", timeout=600)
    study = optuna.load_study(study_name="default", storage=f"sqlite:///{proj.root / 'optuna.db'}")
    assert len(study.trials) == 4 and "tune-default-3" in experiments(proj)


@pytest.mark.slow
def test_the_train_stage_stops_when_its_trial_is_pruned(studied, tmp_path):
    """The stage, run for a trial clearly behind an earlier one, stops after the first epoch
    the pruner may judge (startup 1, warmup 0), and says so; its MLflow run says when."""
    import mlflow

    proj, _ = studied
    storage = f"sqlite:///{tmp_path / 'prune.db'}"
    study, trial = prunable_study(storage)  # the earlier trial scored 0.9 at every epoch
    proj.set_params({"train": {"lr": 1.0e-7}})  # learns nothing: far behind
    env = {**trial_env(storage, trial), tune_trial.ENV_PARENT_RUN: "0" * 32}
    out = proj.run(sys_python(), "-m", "stages.train", check=False, env=env)
    proj.run("git", "checkout", "--", "params.yaml")
    assert out.returncode == 2 and "pruned this trial after epoch 1" in out.stderr, out.stderr
    mlflow.set_tracking_uri(f"sqlite:///{proj.root / 'mlflow.db'}")
    run = mlflow.search_runs(
        search_all_experiments=True, output_format="list", filter_string="tags.`imgpipe.tune.pruned_at_epoch` = '1'"
    )
    assert len(run) == 1 and run[0].data.tags["imgpipe.tune.trial"] == str(trial.number)


def sys_python() -> str:
    import sys

    return sys.executable
