"""Using the trained model: `imgpipe predict` on files and folders, and `mlflow models serve`."""

from __future__ import annotations

import base64
import io
import json
import os
import subprocess
import sys
import urllib.request
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from helpers import SHARED, free_port, make_project, wait_for_server, write_digit_folder

pytestmark = pytest.mark.slow
BIN = Path(sys.executable).parent


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A tiny pipeline run on a folder of digit scans, its model registered as 'digits3'."""
    project = make_project(tmp_path_factory.mktemp("predict") / "proj")
    write_digit_folder(project.root / "raw" / "digits3", per_class=30)
    project.set_params(
        {
            "ingest": {"source": "raw/digits3", "channels": 1, "image_size": 16},
            "train": {"epochs": 6},
            "mlflow": {"registered_model": "digits3"},
        }
    )
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
    table = pd.read_csv(io.StringIO(csv.stdout))
    assert list(table.columns) == ["file", "class", "probability", "error"] and len(table) == 3
    assert table["probability"].between(0, 1).all()

    # The registered model gives the same answers as models/.
    registry = trained.run(
        str(BIN / "imgpipe"), "predict", "--csv", "--model", "models:/digits3/1", *[str(p) for p in new["one"]]
    )
    assert pd.read_csv(io.StringIO(registry.stdout))["class"].tolist() == table["class"].tolist()

    missing = trained.run(str(BIN / "imgpipe"), "predict", str(tmp_path / "nowhere"), check=False)
    assert missing.returncode == 2 and "nowhere: no such file or folder" in missing.stderr


def a_jpeg(tmp_path: Path) -> Path:
    """A photo from hymenoptera when ../shared is there, else a colour JPEG made here."""
    ants = SHARED / "hymenoptera" / "val" / "ants"
    if ants.is_dir():
        return sorted(ants.glob("*.jpg"))[0]
    from PIL import Image

    path = tmp_path / "photo.jpg"
    rng = np.random.default_rng(0)
    Image.fromarray(rng.integers(0, 256, (120, 90, 3), dtype=np.uint8)).save(path, quality=80)
    return path


def test_mlflow_models_serve_answers_a_jpeg_as_imgpipe_predict_does(trained, tmp_path):
    port = free_port()
    # mlflow starts uvicorn from PATH: the venv's, even when the venv is not activated.
    env = {
        **os.environ,
        "MLFLOW_TRACKING_URI": f"sqlite:///{trained.root}/mlflow.db",
        "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}",
    }
    server = subprocess.Popen(
        [
            str(BIN / "mlflow"),
            "models",
            "serve",
            "-m",
            "models:/digits3/1",
            "--env-manager",
            "local",
            "-h",
            "127.0.0.1",
            "-p",
            str(port),
        ],
        cwd=trained.root,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        wait_for_server(server, port)
        photo = a_jpeg(tmp_path)
        body = tmp_path / "request.json"
        body.write_text(json.dumps({"dataframe_records": [{"image": base64.b64encode(photo.read_bytes()).decode()}]}))
        curl = subprocess.run(
            [
                "curl",
                "-sS",
                "--fail",
                f"http://127.0.0.1:{port}/invocations",
                "-H",
                "Content-Type: application/json",
                "--data-binary",
                f"@{body}",
            ],
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert curl.returncode == 0, curl.stderr
        (answer,) = json.loads(curl.stdout)["predictions"]
        local = pd.read_csv(io.StringIO(trained.run(str(BIN / "imgpipe"), "predict", "--csv", str(photo)).stdout))
        assert answer["error"] == "" and answer["class"] == str(local["class"][0])
        assert abs(answer["probability"] - local["probability"][0]) < 2e-6  # predict rounds to 6 places
        assert set(answer["probabilities"]) == {"zero", "one", "two"}

        # Decoded uint8 pixels keep working, a row each.
        images = np.load(trained.root / "data" / "ingest" / "test.npy")[:5]
        rows = json.dumps({"dataframe_split": {"columns": ["pixels"], "data": [[image.tolist()] for image in images]}})
        request = urllib.request.Request(
            f"http://127.0.0.1:{port}/invocations", data=rows.encode(), headers={"Content-Type": "application/json"}
        )
        served = json.loads(urllib.request.urlopen(request, timeout=30).read())["predictions"]
        assert len(served) == 5 and all(row["error"] == "" for row in served)
    finally:
        server.terminate()
        server.wait(timeout=30)


def test_promote_moves_the_champion_only_for_a_better_model_on_the_same_val_data(trained):
    import mlflow

    imgpipe = str(BIN / "imgpipe")
    first = trained.run(imgpipe, "promote")
    assert "digits3 version 1" in first.stdout and "champion (the first)" in first.stdout
    assert "champion already" in trained.run(imgpipe, "promote").stdout
    card = (trained.root / "reports" / "model_card.md").read_text()
    assert "## Recall by class" in card and "95% interval" in card and "zero" in card

    # Evaluate again, calibrated: a new version, the challenger, with the same val balanced accuracy.
    trained.set_params({"evaluate": {"calibrate": True}})
    assert "Running stage 'train'" not in trained.run("dvc", "repro").stdout
    client = mlflow.MlflowClient(f"sqlite:///{trained.root}/mlflow.db")
    assert str(client.get_model_version_by_alias("digits3", "challenger").version) == "2"
    assert "## Calibration" in client.get_model_version("digits3", "2").description
    tie = trained.run(imgpipe, "promote", check=False)
    assert tie.returncode == 1 and "does not beat the champion, version 1" in tie.stderr
    client.set_model_version_tag("digits3", "2", "imgpipe.val_data_hash", "other")
    other = trained.run(imgpipe, "promote", "--version", "2", check=False)
    assert other.returncode == 1 and "other val data" in other.stderr
    assert str(client.get_model_version_by_alias("digits3", "champion").version) == "1"
    forced = trained.run(imgpipe, "promote", "--version", "2", "--force")
    assert "replaces version 1" in forced.stdout
    assert str(client.get_model_version_by_alias("digits3", "champion").version) == "2"

    photo = write_digit_folder(trained.root / "new", per_class=1)["one"]
    by_alias = trained.run(imgpipe, "predict", "--csv", "--model", "models:/digits3@champion", *map(str, photo))
    assert pd.read_csv(io.StringIO(by_alias.stdout))["error"].isna().all()
