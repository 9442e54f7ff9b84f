"""Using the trained model: `imgpipe predict` on files and folders, and `mlflow models serve`."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from helpers import free_port, make_project, write_digit_folder

pytestmark = pytest.mark.slow
BIN = Path(sys.executable).parent



@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A tiny pipeline run on a folder of digit scans, its model registered as 'digits3'."""
    project = make_project(tmp_path_factory.mktemp("predict") / "proj")
    write_digit_folder(project.root / "raw" / "digits3", per_class=30)
    project.set_params({"ingest": {"source": "raw/digits3", "channels": 1, "image_size": 16},
                        "train": {"epochs": 6}, "mlflow": {"registered_model": "digits3"}})
    project.run("dvc", "repro")
    return project


def test_predict_prints_one_line_per_image_of_a_folder(trained, tmp_path):
    new = write_digit_folder(tmp_path / "new", per_class=3)
    (tmp_path / "new" / "zero" / "broken.jpg").write_bytes(b"not really a jpeg")
    out = trained.run(str(BIN / "imgpipe"), "predict", str(tmp_path / "new"))
    lines = out.stdout.strip().splitlines()
    assert len(lines) == 10  # 9 images and the broken file, one line each
    assert any("broken.jpg" in line and "skipped" in line for line in lines)
    predicted = {line.split("\t")[0].strip(): line.split("\t")[1] for line in lines if "skipped" not in line}
    right = sum(predicted[str(p)] == cls for cls, paths in new.items() for p in paths)
    assert right >= 6  # trained on real scans of these digits; chance is 3 of 9

    csv = trained.run(str(BIN / "imgpipe"), "predict", "--csv", *[str(p) for p in new["one"]])
    table = pd.read_csv(__import__("io").StringIO(csv.stdout))
    assert list(table.columns) == ["file", "class", "probability", "error"] and len(table) == 3
    assert table["probability"].between(0, 1).all()

    # The registered model gives the same answers as models/.
    registry = trained.run(str(BIN / "imgpipe"), "predict", "--csv", "--model", "models:/digits3/1", *[str(p) for p in new["one"]])
    assert pd.read_csv(__import__("io").StringIO(registry.stdout))["class"].tolist() == table["class"].tolist()

    missing = trained.run(str(BIN / "imgpipe"), "predict", str(tmp_path / "nowhere"), check=False)
    assert missing.returncode == 2 and "nowhere: no such file or folder" in missing.stderr


def test_mlflow_models_serve_answers(trained):
    port = free_port()
    # mlflow starts uvicorn from PATH: the venv's, even when the venv is not activated.
    env = {**os.environ, "MLFLOW_TRACKING_URI": f"sqlite:///{trained.root}/mlflow.db",
           "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}"}
    server = subprocess.Popen([str(BIN / "mlflow"), "models", "serve", "-m", "models:/digits3/1", "--env-manager", "local",
                               "-h", "127.0.0.1", "-p", str(port)], cwd=trained.root, env=env,
                              stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        deadline = time.time() + 120
        while True:
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{port}/ping", timeout=2)
                break
            except OSError:
                if time.time() > deadline or server.poll() is not None:
                    pytest.fail(f"mlflow models serve did not start: {server.stderr.read().decode()[-2000:]}")
                time.sleep(1)
        images = np.load(trained.root / "data" / "ingest" / "test.npy")[:5]
        request = urllib.request.Request(f"http://127.0.0.1:{port}/invocations", data=json.dumps({"inputs": images.tolist()}).encode(),
                                         headers={"Content-Type": "application/json"})
        answer = json.loads(urllib.request.urlopen(request, timeout=30).read())
        logits = np.asarray(answer["predictions"])
        assert logits.shape == (5, 3)
    finally:
        server.terminate()
        server.wait(timeout=30)
