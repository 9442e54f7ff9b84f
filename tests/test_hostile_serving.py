"""The served model under hostile requests (issue #28): misnamed columns, bad rows among
good ones, every JSON form MLflow accepts, images that decode to gigabytes, and
`imgpipe predict` against a tracking server that does not answer.

A tiny real model (untrained weights: these tests are about the answers' shape, not their
accuracy) is logged with the very ``log_model`` train uses, once per module; one scoring
server serves it to every HTTP case.
"""

from __future__ import annotations

import base64
import io
import json
import os
import signal
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from helpers import free_port, run, wait_for_server
from imgpipe.models.saved import save_model

BIN = Path(sys.executable).parent
SIZE = 16


def png(pixels: np.ndarray, mode: str | None = None) -> bytes:
    from PIL import Image

    buffer = io.BytesIO()
    image = Image.frombytes(mode, pixels.shape[::-1], pixels.tobytes()) if mode else Image.fromarray(pixels)
    image.save(buffer, format="PNG")
    return buffer.getvalue()


def scan16(side: int) -> bytes:
    """A 16-bit greyscale PNG of side x side: a few hundred KB that decode to many MB."""
    return png(np.zeros((side, side), np.uint16), "I;16")


DIGIT = png(np.tile(np.arange(SIZE, dtype=np.uint8) * 15, (SIZE, 1)))
PIXELS = np.zeros((SIZE, SIZE, 1), np.uint8)
RAGGED = [[1, 2], [3]]


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    """(project folder, the logged model's URI): a 3-class greyscale model at 16 x 16."""
    import mlflow

    from imgpipe.models.factory import create_model
    from imgpipe.models.spec import ModelSpec
    from imgpipe.serving.logged_model import log_model

    root = tmp_path_factory.mktemp("served")
    spec = ModelSpec(
        name="simple_cnn",
        options={"filters": 4, "kernel_size": 3, "dense_units": 8},
        classes=["zero", "one", "two"],
        image_size=SIZE,
        channels=1,
    )
    torch.manual_seed(0)
    save_model(root / "models", create_model(spec), spec, {"run_id": "none"})
    mlflow.set_tracking_uri(f"sqlite:///{root}/mlflow.db")
    mlflow.set_experiment("served")  # not whichever experiment an earlier test left active
    try:
        with mlflow.start_run():
            info = log_model(root / "models", np.zeros((1, SIZE, SIZE, 1), np.uint8), spec.to_dict())
        local = mlflow.artifacts.download_artifacts(info.model_uri, dst_path=str(root / "served"))
    finally:
        mlflow.set_tracking_uri(None)
    return root, local


def load(local: str, monkeypatch, **limits_mb):
    """The served model as MLflow loads it, with the given bounds (IMGPIPE_SERVE_MAX_<NAME>_MB)."""
    import mlflow

    for name, value in limits_mb.items():
        monkeypatch.setenv(f"IMGPIPE_SERVE_MAX_{name.upper()}_MB", str(value))
    return mlflow.pyfunc.load_model(local)


@pytest.mark.parametrize("request_rows", [{"img": [DIGIT]}, [{}], {"photo": [DIGIT]}], ids=["img", "empty", "photo"])
def test_a_request_without_an_image_column_is_refused_naming_the_columns(served, monkeypatch, request_rows):
    from mlflow.exceptions import MlflowException

    model = load(served[1], monkeypatch)
    with pytest.raises(MlflowException, match="no image column .* and no pixels column") as refused:
        model.predict(pd.DataFrame(request_rows))
    assert refused.value.get_http_status_code() == 400


def test_each_row_is_answered_on_its_own_in_process(served, monkeypatch):
    model = load(served[1], monkeypatch)
    rows = pd.DataFrame(
        {
            "image": [DIGIT, b"not an image", None, None, "not base64!", base64.b64encode(DIGIT).decode(), 7],
            "pixels": [None, None, RAGGED, PIXELS, None, None, None],
        }
    )
    answer = model.predict(rows)
    assert len(answer) == 7
    assert [bool(e) for e in answer["error"]] == [False, True, True, False, True, False, True]
    assert (
        "uneven lengths" in answer["error"][2]
        and "not base64" in answer["error"][4]
        and "not int" in answer["error"][6]
    )
    assert answer["class"][0] == answer["class"][5]  # the same file, as bytes and as base64 text
    assert (answer["class"] == "").tolist() == [bool(e) for e in answer["error"]]


def test_an_image_that_would_decode_over_the_image_bound_is_refused_in_its_row(served, monkeypatch):
    model = load(served[1], monkeypatch, image=100)
    # 4000 x 4000 16-bit: 16 M pixels, about 450 MB to decode from 300 KB of PNG.
    answer = model.predict(pd.DataFrame({"image": [scan16(4000), DIGIT]}))
    assert "IMGPIPE_SERVE_MAX_IMAGE_MB (100)" in answer["error"][0] and answer["class"][0] == ""
    assert answer["error"][1] == "" and answer["class"][1] in {"zero", "one", "two"}


def test_a_request_that_would_decode_over_the_request_bound_is_refused(served, monkeypatch):
    from mlflow.exceptions import MlflowException

    model = load(served[1], monkeypatch, image=100, request=150)
    scan = scan16(1600)  # 2.6 M pixels, about 70 MB to decode: two fit the image bound, not the request's
    with pytest.raises(MlflowException, match=r"IMGPIPE_SERVE_MAX_REQUEST_MB \(150\)"):
        model.predict(pd.DataFrame({"image": [scan, scan, scan]}))
    assert model.predict(pd.DataFrame({"image": [scan, scan]}))["error"].eq("").all()


def test_concurrent_requests_decode_within_the_process_bound(served, monkeypatch):
    model = load(served[1], monkeypatch, image=100, decoding=100)
    budget = model.unwrap_python_model().budget
    scan = scan16(1600)  # about 70 MB each: two at once would be 140
    answers = []
    threads = [
        threading.Thread(target=lambda: answers.append(model.predict(pd.DataFrame({"image": [scan]}))))
        for _ in range(3)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert len(answers) == 3 and all(a["error"][0] == "" for a in answers)
    assert 0 < budget.peak <= 100 * 2**20 and budget.in_flight == 0


def test_the_byte_budget_makes_a_second_holder_wait_for_the_first():
    from imgpipe.serving.budget import ByteBudget

    budget, second_in = ByteBudget(100), threading.Event()

    def second():
        with budget.hold(60):
            second_in.set()

    with budget.hold(60):
        waiter = threading.Thread(target=second)
        waiter.start()
        assert not second_in.wait(0.3)  # 120 of 100 bytes: it waits
    assert second_in.wait(5)
    waiter.join(5)
    assert budget.peak == 60 and budget.in_flight == 0


def test_a_bound_that_is_not_a_number_is_refused_naming_the_variable(monkeypatch):
    from imgpipe.errors import ImgpipeError
    from imgpipe.serving.budget import Limits

    monkeypatch.setenv("IMGPIPE_SERVE_MAX_DECODING_MB", "1GB")
    with pytest.raises(ImgpipeError, match="IMGPIPE_SERVE_MAX_DECODING_MB='1GB' is not a whole number"):
        Limits.from_env()


@pytest.fixture(scope="module")
def server(served):
    """``mlflow models serve`` on the logged model, with a 100 MB image bound."""
    root, local = served
    port = free_port()
    # mlflow starts uvicorn from PATH: the venv's, even when the venv is not activated.
    env = {**os.environ, "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}", "IMGPIPE_SERVE_MAX_IMAGE_MB": "100"}
    # Its own process group: uvicorn, mlflow's child, is stopped with it.
    process = subprocess.Popen(
        [
            str(BIN / "mlflow"),
            "models",
            "serve",
            "-m",
            local,
            "--env-manager",
            "local",
            "-h",
            "127.0.0.1",
            "-p",
            str(port),
        ],
        cwd=root,
        env=env,
        start_new_session=True,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        wait_for_server(process, port)
        yield f"http://127.0.0.1:{port}/invocations"
    finally:
        os.killpg(process.pid, signal.SIGTERM)
        process.wait(timeout=30)


def post(url: str, body: dict) -> tuple[int, dict]:
    request = urllib.request.Request(url, data=json.dumps(body).encode(), headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=60) as answer:
            return answer.status, json.loads(answer.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read())


@pytest.mark.slow
def test_http_every_json_form_is_answered_row_by_row(server):
    text, pixels = base64.b64encode(DIGIT).decode(), PIXELS.tolist()
    bomb = base64.b64encode(scan16(4000)).decode()
    records = [{"image": text}, {"image": "not base64!"}, {"image": bomb}, {"pixels": pixels}, {"pixels": RAGGED}]
    bad = [False, True, True, False, True]
    forms = {
        "dataframe_records": {"dataframe_records": records},
        "dataframe_split": {
            "dataframe_split": {
                "columns": ["image", "pixels"],
                "data": [[r.get("image"), r.get("pixels")] for r in records],
            }
        },
        "inputs": {"inputs": records},
        # MLflow makes one numpy array of each column of instances: files and pixels apart.
        "instances": {"instances": records[:3]},
    }
    for form, body in forms.items():
        status, answer = post(server, body)
        assert status == 200, (form, answer)
        rows = answer["predictions"]
        assert [bool(row["error"]) for row in rows] == bad[: len(rows)], (form, rows)
        assert "IMGPIPE_SERVE_MAX_IMAGE_MB (100)" in rows[2]["error"], form
    # ... and refuses (README) instances that mix them, or pixels of uneven shapes, before the model runs.
    for mixed in (records[:4], records[3:]):
        status, answer = post(server, {"instances": mixed})
        assert status == 400 and "stack_trace" not in answer, answer
    # The column form of inputs and instances: MLflow makes it one row; each file is answered.
    for key in ("inputs", "instances"):
        status, answer = post(server, {key: {"image": [text, text, "not base64!"]}})
        assert status == 200 and [bool(row["error"]) for row in answer["predictions"]] == [False, False, True], answer


@pytest.mark.slow
def test_http_a_request_without_an_image_column_is_a_400_naming_the_columns(server):
    for body in (
        {"dataframe_records": [{"img": "aGk="}]},
        {"dataframe_records": [{}]},
        {"inputs": [{"photo": "aGk="}]},
        {"dataframe_split": {"columns": ["photo"], "data": [["aGk="]]}},
    ):
        status, answer = post(server, body)
        assert status == 400, (body, answer)
        assert "no image column" in answer["message"] and "no pixels column" in answer["message"]
        assert "stack_trace" not in answer


@pytest.mark.slow
def test_predict_with_a_registered_model_fails_in_seconds_when_the_tracking_server_does_not_answer(tmp_path):
    photo = tmp_path / "photo.png"
    photo.write_bytes(DIGIT)
    uri = f"http://127.0.0.1:{free_port()}"
    start = time.time()
    # Before: MLflow's client retried for 254 s, silent; the timeout turns that into a failure here.
    failed = run(
        [str(BIN / "imgpipe"), "predict", "--model", "models:/pets/1", str(photo)],
        tmp_path,
        check=False,
        env={"MLFLOW_TRACKING_URI": uri},
        timeout=60,
    )
    assert failed.returncode == 2 and f"the MLflow tracking server at {uri} does not answer" in failed.stderr
    assert "Traceback" not in failed.stderr and time.time() - start < 30
