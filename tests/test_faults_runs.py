"""Runs a killed process leaves RUNNING: ended KILLED by the next run that can tell its owner
is gone, never one whose owner lives (issue #28: a killed `imgpipe tune`, an abandoned
pipeline run after a params change)."""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import socket
import sqlite3
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from helpers import make_project
from imgpipe.tracking.abandoned import end_abandoned_pipelines
from imgpipe.tracking.owner import OWNER_TAG, is_dead, this_process
from imgpipe.tracking.pipeline import KEY_TAG
from imgpipe.tune import records, stale


def dead_owner() -> str:
    """The owner string of a real process on this machine that has ended."""
    out = subprocess.run(
        [sys.executable, "-c", "from imgpipe.tracking.owner import this_process; print(this_process())"],
        capture_output=True,
        text=True,
        check=True,
    )
    return out.stdout.strip()


def test_an_owner_is_dead_only_when_its_process_on_this_machine_has_ended():
    me = this_process()
    host, pid, started = me.rsplit(":", 2)
    assert not is_dead(me)
    assert is_dead(dead_owner())
    assert is_dead(f"{host}:{pid}:{float(started) - 100:.2f}")  # the pid reused by another process
    assert not is_dead(f"another-{host}:1:1.00")  # cannot be judged from here
    assert not is_dead(None) and not is_dead("garbage")


@pytest.fixture
def client(tmp_path):
    import mlflow

    mlflow.set_tracking_uri(f"sqlite:///{tmp_path / 'mlflow.db'}")
    return mlflow.MlflowClient()


def pipeline(client, experiment: str, owner: str | None, child_owner: str | None = None) -> tuple[str, str, str]:
    """A RUNNING pipeline run owned by ``owner``, with a FINISHED stage run and a RUNNING one
    (owned by ``child_owner``, else ``owner``): (parent, finished child, running child)."""
    tags = {KEY_TAG: f"repro:{owner}", **({OWNER_TAG: owner} if owner else {})}
    parent = client.create_run(experiment, tags=tags).info.run_id
    done = client.create_run(experiment, tags={"mlflow.parentRunId": parent}).info.run_id
    client.set_terminated(done, "FINISHED")
    child_tags = {"mlflow.parentRunId": parent, OWNER_TAG: child_owner or owner or ""}
    running = client.create_run(experiment, tags=child_tags).info.run_id
    return parent, done, running


def statuses(client, *run_ids: str) -> list[str]:
    return [client.get_run(r).info.status for r in run_ids]


def test_only_pipeline_runs_whose_owner_died_here_are_killed(client):
    experiment = client.create_experiment("e")
    gone = dead_owner()
    abandoned = pipeline(client, experiment, gone)
    live = pipeline(client, experiment, this_process())  # a parallel queued experiment at work
    elsewhere = pipeline(client, experiment, f"another-{socket.gethostname()}:1:1.00")
    unowned = pipeline(client, experiment, None)  # from before owners were recorded
    resumed = pipeline(client, experiment, gone, child_owner=this_process())  # its train reopened by a live stage
    current = pipeline(client, experiment, gone)  # the one being opened now
    assert end_abandoned_pipelines(client, [experiment], keep=current[0]) == [abandoned[0]]
    assert statuses(client, *abandoned) == ["KILLED", "FINISHED", "KILLED"]
    for kept in (live, elsewhere, unowned, resumed, current):
        assert statuses(client, *kept) == ["RUNNING", "FINISHED", "RUNNING"]


def trial_runs(client, experiment: str, study_run: str, exp_name: str) -> tuple[str, str]:
    """The MLflow runs a trial's stages leave RUNNING when killed: its pipeline run and train's."""
    tags = {KEY_TAG: f"exp:{exp_name}", "mlflow.parentRunId": study_run, "dvc.exp_name": exp_name}
    parent = client.create_run(experiment, tags=tags).info.run_id
    return parent, client.create_run(experiment, tags={"mlflow.parentRunId": parent}).info.run_id


def test_trials_of_a_dead_tune_are_failed_retried_once_and_their_runs_killed(tmp_path, client, caplog):
    caplog.set_level(logging.INFO, logger="imgpipe")
    import optuna
    from optuna.trial import TrialState

    experiment = client.create_experiment("e")
    study_run = client.create_run(experiment).info.run_id
    rdb = stale.heartbeat_storage(f"sqlite:///{tmp_path / 'optuna.db'}")
    study = optuna.create_study(study_name="s", storage=rdb)
    study.set_user_attr(records.RUN_ATTR, study_run)
    owners = {
        "killed here": dead_owner(),
        "alive elsewhere": "another-host:1:1.00",
        "silent elsewhere": "another-host:2:1.00",
    }
    trials = {}
    for n, (case, owner) in enumerate(owners.items()):
        trial = study.ask()
        trial.suggest_float("x", 0, 1)
        trial.set_user_attr(stale.EXP_ATTR, f"tune-s-{n}")
        trial.set_user_attr(stale.OWNER_ATTR, owner)
        rdb.record_heartbeat(trial._trial_id)
        trials[case] = (trial, trial_runs(client, experiment, study_run, f"tune-s-{n}"))
    # The machine of the third one went away two minutes ago: its heartbeat stopped then.
    with contextlib.closing(sqlite3.connect(tmp_path / "optuna.db")) as db, db:
        db.execute(
            "UPDATE trial_heartbeats SET heartbeat = datetime('now', '-120 seconds') WHERE trial_id = ?",
            (trials["silent elsewhere"][0]._trial_id,),
        )
    stale.fail_dead(study, rdb)
    state = {t.number: t.state for t in study.get_trials()}
    assert [state[trials[case][0].number] for case in owners] == [TrialState.FAIL, TrialState.RUNNING, TrialState.FAIL]
    assert statuses(client, *trials["killed here"][1], *trials["silent elsewhere"][1]) == ["KILLED"] * 4
    assert statuses(client, *trials["alive elsewhere"][1]) == ["RUNNING"] * 2
    waiting = study.get_trials(states=(TrialState.WAITING,))
    assert sorted(t.params["x"] for t in waiting) == sorted(
        trials[c][0].params["x"] for c in ("killed here", "silent elsewhere")
    )
    assert "trial 0 (tune-s-0) was left running by a tune process that is gone" in caplog.text
    # A retried trial killed in turn is not retried again.
    retry = study.ask()
    assert retry.number == waiting[0].number and retry.params["x"] == waiting[0].params["x"]
    retry.set_user_attr(stale.OWNER_ATTR, dead_owner())
    stale.fail_dead(study, rdb)
    assert len(study.get_trials(states=(TrialState.WAITING,))) == 1


def test_the_study_run_ends_killed_on_ctrl_c_and_finished_otherwise(tmp_path, client):
    import mlflow
    import optuna

    study = optuna.create_study()
    experiment = client.create_experiment("e", artifact_location=(tmp_path / "artifacts").as_uri())
    for stop, status in ((None, "FINISHED"), (KeyboardInterrupt, "KILLED"), (RuntimeError, "FAILED")):
        run = mlflow.start_run(experiment_id=experiment)
        with contextlib.suppress(KeyboardInterrupt, RuntimeError), records.study_run_ended(study):
            if stop:
                raise stop
        assert statuses(client, run.info.run_id) == [status]


# --- The real thing: processes killed mid-training on a tiny project.


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    """A committed tiny project after `dvc repro`, with a one-key search space."""
    proj = make_project(tmp_path_factory.mktemp("runs") / "proj")
    # An epoch here takes a tenth of a second: enough of them (10 s) that a kill sent after
    # the first lands mid-training even when the poll and the signal take seconds on a loaded machine.
    proj.set_params({"evaluate": {"bootstrap_resamples": 0}, "train": {"epochs": 100}, "tune": {"space": None}})
    proj.set_params({"tune": {"space": {"train.lr": {"log_uniform": [1.0e-3, 1.0e-2]}}, "pruner": {"name": "none"}}})
    proj.run("dvc", "repro")
    proj.commit("tiny project")
    return proj


def start(proj, *cmd: str) -> subprocess.Popen:
    """``cmd`` in its own process group, as a terminal starts a command."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MLFLOW_", "DVC_", "IMGPIPE_"))}
    env.update(PYTHONUNBUFFERED="1", PATH=f"{os.path.dirname(sys.executable)}{os.pathsep}{env['PATH']}")
    return subprocess.Popen(
        list(cmd),
        cwd=proj.root,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )


def stop_when(proc: subprocess.Popen, log: Path | None, line, stop) -> str:
    """Call ``stop()`` once ``line`` starts a line of ``log`` (or of ``proc``'s output when
    None), or once ``line()`` is true when it is a function, then wait until the group has
    ended; return what ``proc`` printed."""
    deadline = threading.Timer(300, lambda: os.killpg(proc.pid, signal.SIGKILL))  # a hang fails, never hangs
    deadline.start()
    printed: list[str] = []
    reader = threading.Thread(target=lambda: printed.extend(proc.stdout), daemon=True)
    reader.start()
    try:
        while not (
            line()
            if callable(line)
            else any(
                text.startswith(line)
                for text in (log.read_text().splitlines() if log and log.exists() else "".join(printed).splitlines())
            )
        ):
            assert proc.poll() is None, f"ended before {line!r}:\n{''.join(printed)}"
            time.sleep(0.05)
        stop()
        proc.wait()
        reader.join(60)
        assert deadline.is_alive(), "".join(printed)
    finally:
        deadline.cancel()
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
    return "".join(printed)


def training_logged_an_epoch(proj) -> bool:
    """A train run is RUNNING in MLflow with an epoch's metrics: it is mid-training. (A
    trial's log file is no such sign: DVC writes it through a buffer, so "epoch 1:" can
    land there after training has ended.)"""
    if not (proj.root / "mlflow.db").exists():
        return False
    return any(r.info.run_name == "train" and r.data.metrics for r in runs_by_status(proj).get("RUNNING", []))


def runs_by_status(proj) -> dict[str, list]:
    import mlflow

    client = mlflow.MlflowClient(tracking_uri=f"sqlite:///{proj.root / 'mlflow.db'}")
    found: dict[str, list] = {}
    for run in client.search_runs([e.experiment_id for e in client.search_experiments()]):
        found.setdefault(run.info.status, []).append(run)
    return found


def trial_pipeline(runs: dict[str, list], exp_name: str) -> dict[str, str]:
    """``{run name: status}`` of the trial's pipeline run and its stage runs."""
    every = [r for group in runs.values() for r in group]
    parent = next(r for r in every if r.data.tags.get("dvc.exp_name") == exp_name and KEY_TAG in r.data.tags)
    return {
        "pipeline": parent.info.status,
        **{
            r.info.run_name: r.info.status for r in every if r.data.tags.get("mlflow.parentRunId") == parent.info.run_id
        },
    }


@pytest.mark.slow
def test_a_stopped_or_killed_tune_leaves_no_run_running_and_resumes(tiny):
    import optuna

    # SIGTERM (kill, a scheduler's limit) mid-training: tune passes it on as Ctrl-C and stops.
    proc = start(tiny, "imgpipe", "tune", "--trials", "1")
    out = stop_when(proc, None, lambda: training_logged_an_epoch(tiny), lambda: os.kill(proc.pid, signal.SIGTERM))
    assert proc.returncode == 130, out
    runs = runs_by_status(tiny)
    seen = {status: sorted(r.info.run_name for r in group) for status, group in runs.items()}
    assert "RUNNING" not in runs, (seen, out)
    assert {r.info.run_name for r in runs["KILLED"]} >= {"tune-default", "tune-default-0", "train"}, (seen, out)
    assert trial_pipeline(runs, "tune-default-0") == {"pipeline": "KILLED", "train": "KILLED"}
    # SIGKILL of the whole group mid-training (the OOM killer, a lost machine): nothing ends a run.
    proc = start(tiny, "imgpipe", "tune", "--resume", "--trials", "1")
    stop_when(proc, None, lambda: training_logged_an_epoch(tiny), lambda: os.killpg(proc.pid, signal.SIGKILL))
    assert trial_pipeline(runs_by_status(tiny), "tune-default-1") == {"pipeline": "RUNNING", "train": "RUNNING"}
    resumed = tiny.run("imgpipe", "tune", "--resume", "--trials", "1", timeout=600).stdout
    assert "trial 1 (tune-default-1) was left running by a tune process that is gone" in resumed, resumed
    study = optuna.load_study(study_name="default", storage=f"sqlite:///{tiny.root / 'optuna.db'}")
    assert [t.state.name for t in study.trials] == ["FAIL", "FAIL", "COMPLETE"]
    assert study.trials[2].params == study.trials[1].params  # the killed trial, run again
    runs = runs_by_status(tiny)
    assert "RUNNING" not in runs, resumed
    assert trial_pipeline(runs, "tune-default-1") == {"pipeline": "KILLED", "train": "KILLED"}
    assert [r.info.run_name for r in runs["FINISHED"] if r.info.run_name == "tune-default"] == ["tune-default"]


@pytest.mark.slow
def test_a_pipeline_run_killed_before_a_params_change_ends_killed(tiny):
    import shutil

    shutil.rmtree(tiny.root / "checkpoints")  # so that train trains afresh, and is killed at it
    proc = start(tiny, "dvc", "repro", "--force", "--single-item", "train")
    stop_when(proc, None, "epoch 1:", lambda: os.killpg(proc.pid, signal.SIGKILL))
    killed = [r for r in runs_by_status(tiny)["RUNNING"] if KEY_TAG in r.data.tags]
    assert len(killed) == 1
    tiny.set_params({"evaluate": {"bootstrap_resamples": 10}})  # a new pipeline key
    tiny.run("dvc", "repro", "train")
    runs = runs_by_status(tiny)
    assert "RUNNING" not in runs
    assert killed[0].info.run_id in {r.info.run_id for r in runs["KILLED"]}
    newest = max(
        (r for group in runs.values() for r in group if KEY_TAG in r.data.tags), key=lambda r: r.info.start_time
    )
    assert newest.info.run_id != killed[0].info.run_id and newest.info.status == "FINISHED"
