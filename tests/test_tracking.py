from pathlib import Path

import numpy as np
import pytest
import torch

from helpers import free_port
from imgpipe.models.factory import create_model
from imgpipe.models.saved import save_model
from imgpipe.models.spec import ModelSpec
from imgpipe.serving.logged_model import log_model
from imgpipe.tracking.lineage import dvc_hashes
from imgpipe.tracking.runs import flatten
from imgpipe.tracking.stage_run import stage_run
from imgpipe.tracking.store import connect, tracking_uri


def test_flatten_params():
    assert flatten({"train": {"lr": 0.1, "cnn": {"filters": [4, 8]}}, "x": {}}) == {
        "train.lr": 0.1,
        "train.cnn.filters": [4, 8],
        "x": {},
    }


def test_dvc_hashes_read_from_lock(tmp_path):
    lock = tmp_path / "dvc.lock"
    lock.write_text(
        "schema: '2.0'\nstages:\n  ingest:\n    outs:\n    - path: data/ingest\n      md5: abc.dir\n"
        "    - path: reports/ingest.json\n      md5: def\n"
    )
    assert dvc_hashes(lock, ["data/ingest", "data/augment"]) == {"data/ingest": "abc.dir"}
    assert dvc_hashes(tmp_path / "missing.lock", ["data/ingest"]) == {}


def test_tracking_uri_defaults_to_sqlite_at_root(tmp_path, monkeypatch):
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    assert tracking_uri(tmp_path) == f"sqlite:///{tmp_path.as_posix()}/mlflow.db"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://127.0.0.1:5000")
    assert tracking_uri(tmp_path) == "http://127.0.0.1:5000"


@pytest.mark.slow
def test_logged_model_takes_image_files_and_pixels_in_batches_of_any_size(tmp_path, monkeypatch):
    import io

    import mlflow
    import pandas as pd
    from PIL import Image

    from imgpipe.models.decision import Decision

    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    spec = ModelSpec(
        name="base_cnn",
        options={"filters": [4, 8], "kernel_size": 3, "padding": "same"},
        classes=list("abc"),
        image_size=16,
        channels=1,
        preprocessing={"image_size": 16, "channels": 1, "resize": "squash", "max_pixels": 10**6},
    )
    torch.manual_seed(0)
    model = create_model(spec).eval()
    save_model(tmp_path / "models", model, spec, {"run_id": "r"})
    images = np.random.default_rng(0).integers(0, 256, (7, 16, 16, 1), dtype=np.uint8)
    decision = Decision(temperature=2.0, logit_bias=[0.5, 0.0, -0.5], run_id="r")
    # As under `dvc exp run`, which names the experiment in the stage's environment.
    monkeypatch.setenv("DVC_EXP_NAME", "brisk-lark")
    monkeypatch.setenv("DVC_EXP_BASELINE_REV", "a" * 40)
    with stage_run(tmp_path, "train", {"train": {"lr": 0.1}}, "test-exp") as record:
        run = record.run
        info = log_model(tmp_path / "models", images, spec.to_dict(), decision=decision.to_dict())
    loaded = mlflow.pyfunc.load_model(info.model_uri)
    assert loaded.metadata.metadata["imgpipe_spec"]["classes"] == ["a", "b", "c"]
    assert loaded.metadata.signature.inputs.input_names() == ["image", "pixels"]
    with torch.no_grad():
        want = decision.apply(torch.softmax(model(torch.from_numpy(images)), 1).numpy())

    pixels = loaded.predict(pd.DataFrame({"pixels": list(images[:5])}))  # not the example's batch of 1
    assert np.allclose(np.array([[p[c] for c in "abc"] for p in pixels["probabilities"]]), want[:5], atol=1e-5)
    assert pixels["class"].tolist() == [spec.classes[i] for i in want[:5].argmax(1)]

    def png(image: np.ndarray) -> bytes:
        out = io.BytesIO()
        Image.fromarray(image[..., 0]).save(out, format="PNG")
        return out.getvalue()

    files = loaded.predict(pd.DataFrame({"image": [png(i) for i in images] + [b"no image"]}))
    assert np.allclose(files["probability"][:7], want.max(1), atol=1e-5)  # PNG is lossless: the same pixels
    assert files["class"][7] == "" and "not an image" in files["error"][7]
    wrong = loaded.predict(pd.DataFrame({"pixels": [np.zeros((8, 8, 3), np.uint8)]}))
    assert "shape (16, 16, 1)" in wrong["error"][0]
    stored = mlflow.get_run(run.info.run_id)
    assert stored.data.params["train.lr"] == "0.1" and stored.info.run_name == "train"
    assert stored.data.tags["dvc.exp_name"] == "brisk-lark" and stored.data.tags["dvc.exp_baseline_rev"] == "a" * 40
    pipeline = mlflow.get_run(stored.data.tags["mlflow.parentRunId"])  # the experiment's pipeline run
    assert pipeline.info.run_name == "brisk-lark" and pipeline.data.params["train.lr"] == "0.1"


def test_unusable_tracking_store_is_a_clear_error(tmp_path, monkeypatch):
    from imgpipe.errors import ImgpipeError

    (tmp_path / "blocker").write_text("a file where a folder should be")
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path}/blocker/mlflow.db")
    with pytest.raises(ImgpipeError, match="blocker/mlflow.db"):
        connect(tmp_path, "x")


def test_unreachable_tracking_server_fails_fast_naming_the_uri(tmp_path, monkeypatch):
    import time

    from imgpipe.errors import ImgpipeError

    uri = f"http://127.0.0.1:{free_port()}"  # nobody listens there
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    start = time.perf_counter()
    with pytest.raises(ImgpipeError, match=f"tracking server at {uri} does not answer"):
        with stage_run(tmp_path, "train", {}, "x"):
            pass
    assert time.perf_counter() - start < 30


def test_class_names_mlflow_refuses_become_safe_unique_keys(tmp_path, monkeypatch):
    import mlflow

    names = ["tabby, cat", "tabby; cat", "../x", "日本", "😀", "a/b", "."]
    flat = flatten({"val": {"class": {name: {"recall": float(i)} for i, name in enumerate(names)}}})
    assert len(flat) == len(names) and sorted(flat.values()) == [float(i) for i in range(len(names))]
    assert "val.class.tabby_ cat.recall" in flat and "val.class.tabby_ cat_.recall" in flat
    assert "val.class.日本.recall" in flat  # letters of any script are fine
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    mlflow.set_tracking_uri(f"sqlite:///{tmp_path}/mlflow.db")
    mlflow.set_experiment("keys")  # not whichever experiment an earlier test left active
    with mlflow.start_run():
        mlflow.log_metrics(flat)  # MLflow takes every key
        mlflow.log_params({k: 1 for k in flat})


def _connect_when_all_ready(root: str, barrier) -> None:
    barrier.wait()
    connect(Path(root), "parallel")


@pytest.mark.slow  # three spawned processes, each importing MLflow
def test_parallel_first_runs_create_a_fresh_store_once(tmp_path, monkeypatch):
    # As `dvc queue start -j 2` on a project without mlflow.db: several processes at once.
    import multiprocessing

    import mlflow

    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    context = multiprocessing.get_context("spawn")
    barrier = context.Barrier(3)
    workers = [context.Process(target=_connect_when_all_ready, args=(str(tmp_path), barrier)) for _ in range(3)]
    for w in workers:
        w.start()
    for w in workers:
        w.join(timeout=300)
    assert [w.exitcode for w in workers] == [0, 0, 0]
    client = mlflow.MlflowClient(tracking_uri=f"sqlite:///{tmp_path}/mlflow.db")
    assert [e.name for e in client.search_experiments()].count("parallel") == 1


def test_a_pipeline_is_keyed_by_its_experiment_else_by_commit_and_params_less_mlflow(tmp_path, monkeypatch):
    from imgpipe.tracking.pipeline import pipeline_key

    params = {"train": {"lr": 0.1}, "mlflow": {"experiment_name": "a"}}
    monkeypatch.delenv("DVC_EXP_NAME", raising=False)
    key, name = pipeline_key(None, params)  # no git commit
    assert name == "repro" and key == pipeline_key(None, {**params, "mlflow": {"experiment_name": "b"}})[0]
    assert key != pipeline_key(None, {**params, "train": {"lr": 0.2}})[0]
    commit_key, name = pipeline_key("ab12cd3" + "0" * 33, params)
    assert name == "repro@ab12cd3" and commit_key != key
    monkeypatch.setenv("DVC_EXP_NAME", "fast-lr")
    monkeypatch.setenv("DVC_EXP_BASELINE_REV", "c" * 40)
    exp_key, name = pipeline_key(None, params)
    assert name == "fast-lr" and exp_key == pipeline_key(None, {**params, "train": {"lr": 0.2}})[0]  # -S changes it
    monkeypatch.setenv("DVC_EXP_NAME", "sgd")  # a queued neighbour: a pipeline of its own
    assert pipeline_key(None, params)[0] != exp_key


def test_stages_of_one_execution_share_a_parent_and_a_killed_stage_run_is_ended(tmp_path, monkeypatch):
    import mlflow

    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.setenv("DVC_EXP_NAME", "brisk-lark")
    params = {"ingest": {"source": "digits"}, "balance": {"method": "none"}}
    with stage_run(tmp_path, "ingest", params, "exp") as first:
        killed = mlflow.MlflowClient().create_run(
            first.parent.info.experiment_id,
            tags={"mlflow.parentRunId": first.parent.info.run_id, "imgpipe.stage": "balance"},
        )  # left RUNNING, as by SIGKILL
    with stage_run(tmp_path, "balance", params, "exp") as second:
        second.metrics({"after": {"a/b": 3}, "note": "not a number"})
    client = mlflow.MlflowClient()
    assert first.parent.info.run_id == second.parent.info.run_id
    parent = client.get_run(first.parent.info.run_id)
    assert parent.info.status == "FINISHED" and parent.info.run_name == "brisk-lark"
    assert parent.data.tags["imgpipe.stage_run.balance"] == second.run_id
    assert client.get_run(killed.info.run_id).info.status == "KILLED"
    assert client.get_run(second.run_id).data.metrics == {"after.a_b": 3.0}
    assert client.get_run(second.run_id).data.params == {"balance.method": "none"}
