"""Faults a user meets (issue #13): each is one sentence or handled, never lost work."""

import pytest

from helpers import REPO
from imgpipe.models.saved import load_model, save_model


def test_a_stage_reports_ctrl_c_and_a_full_disk_in_one_sentence(capsys):
    import errno

    from imgpipe.errors import run_stage

    def interrupted():
        raise KeyboardInterrupt

    def disk_full():
        raise OSError(errno.ENOSPC, "No space left on device", "/tmp/data/ingest/train.npy")

    for main, code, words in ((interrupted, 130, "dvc repro"), (disk_full, 2, "/tmp/data/ingest/train.npy")):
        with pytest.raises(SystemExit) as stop:
            run_stage(main)
        err = capsys.readouterr().err
        assert (
            stop.value.code == code and words in err and "Traceback" not in err and len(err.strip().splitlines()) == 1
        )


def test_a_model_file_that_is_no_plain_state_dict_is_refused_in_a_sentence(tmp_path):
    import pickle

    import torch

    from imgpipe.errors import ImgpipeError
    from imgpipe.models.factory import create_model
    from imgpipe.models.spec import ModelSpec

    spec = ModelSpec("simple_cnn", {"filters": 4, "kernel_size": 3, "dense_units": 8}, ["a", "b"], 16, 1)
    save_model(tmp_path / "models", create_model(spec), spec, {"run_id": "r"})
    assert load_model(tmp_path / "models")[0] == spec
    # A pickle that would call a function when loaded without weights_only.
    (tmp_path / "models" / "model.pt").write_bytes(pickle.dumps(print))
    with pytest.raises(ImgpipeError, match="not the plain state dict"):
        load_model(tmp_path / "models")
    torch.save({"unexpected": torch.zeros(1)}, tmp_path / "models" / "model.pt")
    with pytest.raises(ImgpipeError, match="dvc repro --force train"):
        load_model(tmp_path / "models")


@pytest.mark.parametrize(
    "key, value, named",
    [
        (
            "preprocessing",
            {"image_size": 15000, "channels": 1, "resize": "squash", "max_pixels": 100},
            "preprocessing.image_size",
        ),
        ("name", "os.system", "name"),
        ("classes", ["only"], "classes"),
        ("std", [0.0], "std.0"),
    ],
)
def test_a_tampered_model_spec_is_refused_naming_the_key(tmp_path, key, value, named):
    import json

    from imgpipe.errors import ImgpipeError
    from imgpipe.models.factory import create_model
    from imgpipe.models.spec import ModelSpec

    spec = ModelSpec(
        "simple_cnn",
        {"filters": 4, "kernel_size": 3, "dense_units": 8},
        ["a", "b"],
        16,
        1,
        [0.5],
        [0.5],
        {"image_size": 16, "channels": 1, "resize": "squash", "max_pixels": 1000},
    )
    save_model(tmp_path / "models", create_model(spec), spec, {"run_id": "r"})
    path = tmp_path / "models" / "model.json"
    path.write_text(json.dumps({**json.loads(path.read_text()), key: value}))
    with pytest.raises(ImgpipeError, match=rf"model\.json: {named}: .*dvc checkout models"):
        load_model(tmp_path / "models")


def test_the_database_password_is_random_and_private_unless_given(tmp_path, monkeypatch):
    import stat

    from imgpipe.ops.tracking_server import ServerSettings, password_file

    monkeypatch.delenv("IMGPIPE_MLFLOW_DB_PASSWORD", raising=False)
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path))
    first = ServerSettings().password
    assert len(first) >= 24 and first != "mlflow" and ServerSettings().password == first  # kept
    assert stat.S_IMODE(password_file().stat().st_mode) == 0o600
    monkeypatch.setenv("IMGPIPE_MLFLOW_DB_PASSWORD", "given")
    assert ServerSettings().password == "given"


def test_one_training_at_a_time_on_a_checkpoint(tmp_path):
    from imgpipe.errors import ImgpipeError
    from imgpipe.train.checkpoint import training_lock

    with training_lock(tmp_path / "checkpoints"):
        with pytest.raises(ImgpipeError, match="another training of this project is running"):
            with training_lock(tmp_path / "checkpoints"):
                pass
    with training_lock(tmp_path / "checkpoints"):  # free again once the first has ended
        pass


def test_a_killed_training_that_will_not_resume_is_marked_killed(tmp_path, monkeypatch):
    import mlflow

    from imgpipe.tracking.runs import mark_killed
    from imgpipe.train.checkpoint import Checkpoint

    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    mlflow.set_tracking_uri(f"sqlite:///{tmp_path}/mlflow.db")
    mlflow.set_experiment("killed")  # not whichever experiment an earlier test left active
    run_id = mlflow.start_run().info.run_id  # left RUNNING, as by a SIGKILL
    mlflow.end_run()  # (the client's own bookkeeping; the store is set back to RUNNING below)
    mlflow.MlflowClient().update_run(run_id, status="RUNNING")
    old = Checkpoint(tmp_path / "checkpoints", "old params")
    old.extra["run_id"] = run_id
    old.save({"history": []})
    new = Checkpoint(tmp_path / "checkpoints", "new params")
    assert new.load() is None and new.abandoned_run_id == run_id
    mark_killed(new.abandoned_run_id)
    assert mlflow.MlflowClient().get_run(run_id).info.status == "KILLED"


def test_a_truncated_checkpoint_or_model_file_is_named_not_a_traceback(tmp_path, caplog):
    from imgpipe.errors import ImgpipeError
    from imgpipe.models.factory import create_model
    from imgpipe.models.spec import ModelSpec
    from imgpipe.train.checkpoint import Checkpoint

    checkpoint = Checkpoint(tmp_path / "checkpoints", "fp")
    checkpoint.save({"history": [{"epoch": 1}], "model": {"w": __import__("torch").zeros(1000)}})
    whole = checkpoint.path.read_bytes()
    checkpoint.path.write_bytes(whole[: len(whole) // 2])  # a disk that failed under it
    assert checkpoint.load() is None  # training starts afresh, saying why
    assert f"ignoring unreadable checkpoint {checkpoint.path}" in caplog.text

    spec = ModelSpec("simple_cnn", {"filters": 4, "kernel_size": 3, "dense_units": 8}, ["a", "b"], 16, 1)
    save_model(tmp_path / "models", create_model(spec), spec, {"run_id": "r"})
    weights = tmp_path / "models" / "model.pt"
    weights.write_bytes(weights.read_bytes()[:100])
    with pytest.raises(ImgpipeError, match=r"model\.pt is not the plain state dict .*dvc repro --force train"):
        load_model(tmp_path / "models")


@pytest.mark.parametrize("fault", ["read-only", "deleted"])
def test_a_tracking_store_made_read_only_or_deleted_mid_run_is_one_sentence(tmp_path, monkeypatch, fault):
    import os
    import subprocess

    import mlflow

    from imgpipe.errors import ImgpipeError
    from imgpipe.tracking.store import connect, store_errors

    if fault == "read-only" and os.geteuid() != 0:
        # MLflow's pooled SQLite connection keeps writing to a file chmod'ed under it; only
        # root can take writing away mid-run (chattr +i), as a remount or a disk does.
        pytest.skip("making a file read-only under an open SQLite connection needs root (chattr +i)")
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.delenv("DVC_ROOT", raising=False)
    connect(tmp_path, "faults")
    db = tmp_path / "mlflow.db"
    with pytest.raises(ImgpipeError) as error, store_errors(tmp_path, then="train resumes"), mlflow.start_run():
        mlflow.log_metric("val_loss", 1.0, step=1)
        if fault == "deleted":
            db.unlink()
            mlflow.log_metric("val_loss", 0.5, step=2)
        else:
            if subprocess.run(["chattr", "+i", str(db)], capture_output=True).returncode != 0:
                pytest.skip("chattr +i is not supported on this filesystem")
            try:
                mlflow.log_metric("val_loss", 0.5, step=2)
            finally:
                subprocess.run(["chattr", "-i", str(db)], check=True)
    message = str(error.value)
    assert message.startswith(f"MLflow could not write to {db}") and message.endswith("train resumes.")
    assert "make it writable again" in message and "\n" not in message
    assert ("deleted while in use" in message) == (fault == "deleted")


def test_only_the_store_failing_is_called_so():
    import sqlite3

    from sqlalchemy.exc import OperationalError

    from imgpipe.errors import ImgpipeError
    from imgpipe.tracking.store import store_errors

    def database_error(message: str) -> OperationalError:
        return OperationalError("INSERT ...", {}, sqlite3.OperationalError(message))

    with pytest.raises(ImgpipeError, match="^cannot find MLflow run x$"), store_errors(REPO, then="-"):
        try:
            raise database_error("no such table: runs")
        except OperationalError:
            raise ImgpipeError("cannot find MLflow run x")  # raised while handling: kept as it is
    with pytest.raises(ValueError, match="Changing param values"), store_errors(REPO, then="-"):
        try:
            raise database_error("UNIQUE constraint failed")
        except OperationalError:
            raise ValueError("Changing param values is not allowed")  # MLflow's own, not the store
    with pytest.raises(ImgpipeError, match=r"\(database is locked\): .*let that finish, then run `dvc repro` again; -"):
        with store_errors(REPO, then="-"):
            locked = sqlite3.OperationalError("database is locked")
            locked.sqlite_errorname = "SQLITE_BUSY"
            raise RuntimeError("wrapped") from OperationalError("UPDATE ...", {}, locked)


def test_a_write_the_disk_cannot_hold_is_refused_first_naming_the_space(tmp_path, monkeypatch):
    import shutil
    from collections import namedtuple

    import numpy as np

    from imgpipe.errors import ImgpipeError
    from imgpipe.store.dataset import Split, write_dataset

    usage = namedtuple("usage", "total used free")
    monkeypatch.setattr(shutil, "disk_usage", lambda path: usage(10 * 2**20, 10 * 2**20 - 2**19, 2**19))
    images = np.zeros((16, 256, 256, 1), dtype=np.uint8)  # 1 MiB, with 0.5 MiB free
    split = Split(images, __import__("pandas").DataFrame({"label": [0] * 16, "path": ["x"] * 16}))
    with pytest.raises(ImgpipeError, match=r"no room on the disk holding .*out \(needs 1\.0 MiB, 512 KiB free"):
        write_dataset(tmp_path / "out", ["a"], {"train": split})
    assert not (tmp_path / "out").exists()


def test_a_finished_checkpoint_names_the_run_that_holds_its_model_after_a_store_reset(tmp_path):
    from imgpipe.train.checkpoint import Checkpoint

    checkpoint = Checkpoint(tmp_path, "fp")
    checkpoint.extra["run_id"] = "lost"
    checkpoint.save({"history": []}, complete=True)
    # The store was reset: the stage logged the model to a new run, then marks complete.
    again = Checkpoint(tmp_path, "fp")
    again.extra["run_id"] = "new"
    again.mark_complete()
    state = Checkpoint(tmp_path, "fp").load()
    assert state["complete"] and state["run_id"] == "new"
