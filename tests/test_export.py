"""imgpipe export: ONNX (run by onnxruntime) and TorchScript give PyTorch's outputs on the test
split, at any batch size, with the spec a client needs beside them."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from imgpipe.cli import main
from imgpipe.errors import ImgpipeError
from imgpipe.models.decision import DecidedClassifier, Decision
from imgpipe.models.saved import save_model
from imgpipe.serving.export import FILES, SPEC_FILE, export_model, runner
from imgpipe.store import ingested
from imgpipe.store.dataset import Split, make_manifest, pixel_hash
from model_helpers import seeded_model, spec

CLASSES = ["c0", "c1", "c2"]


def write_project(root, digits_small, name: str, options: dict) -> tuple:
    """data/ingest with a 100-image test split of real digits, and an (untrained) model."""
    images, labels = digits_small
    images, labels = images[:100], labels[:100] % 3
    manifest = make_manifest(
        ids=[f"d{i}" for i in range(100)],
        labels=labels,
        classes=CLASSES,
        split="test",
        sha256=[pixel_hash(im) for im in images],
        origin="original",
    )
    ingested.write(
        root / "data" / "ingest",
        CLASSES,
        {"test": Split(images, manifest)},
        preprocessing={"image_size": 8, "channels": 1, "resize": "squash"},
    )
    model_spec = spec(name, options, channels=1, size=8, classes=3)
    model = seeded_model(model_spec).eval()
    save_model(root / "models", model, model_spec, {"run_id": "r1"})
    (root / "dvc.yaml").write_text("stages: {}\n")
    return model, images


SMALL = {"filters": 8, "kernel_size": 3, "dense_units": 16}


@pytest.mark.parametrize(
    "fmt, name, options",
    [
        ("onnx", "simple_cnn", SMALL),
        ("torchscript", "simple_cnn", SMALL),
        pytest.param("onnx", "resnet18", {}, marks=pytest.mark.slow),
    ],
)
def test_export_matches_pytorch_on_the_test_split_at_any_batch_size(tmp_path, digits_small, fmt, name, options):
    model, images = write_project(tmp_path, digits_small, name, options)
    done = export_model(tmp_path, None, fmt, tmp_path / "out")
    assert done.checked_images == 100 and done.max_difference <= 1e-4
    run = runner(tmp_path / "out" / FILES[fmt], fmt)
    decided = DecidedClassifier(model, Decision(), 3).eval()
    for batch in (images[:1], images[:64], images[:7]):  # the batch size is free
        with torch.no_grad():
            expected = decided(torch.from_numpy(np.ascontiguousarray(batch))).numpy()
        np.testing.assert_allclose(run(np.ascontiguousarray(batch)), expected, atol=1e-4)
    spec_file = json.loads((tmp_path / "out" / SPEC_FILE).read_text())
    assert spec_file["classes"] == CLASSES and spec_file["image_size"] == 8 and spec_file["format"] == fmt


def test_the_decision_evaluate_fitted_is_inside(tmp_path, digits_small):
    model, images = write_project(tmp_path, digits_small, "simple_cnn", SMALL)
    decision = Decision(temperature=2.0, logit_bias=[0.5, 0.0, -0.5], run_id="r1")
    (tmp_path / "reports").mkdir()
    (tmp_path / "reports" / "decision.json").write_text(json.dumps(decision.to_dict()))
    export_model(tmp_path, None, "onnx", tmp_path / "out")
    with torch.no_grad():
        expected = DecidedClassifier(model, decision, 3)(torch.from_numpy(images[:5])).numpy()
    np.testing.assert_allclose(runner(tmp_path / "out" / "model.onnx", "onnx")(images[:5]), expected, atol=1e-4)


def test_cli_writes_the_default_folder_and_a_missing_model_is_one_sentence(tmp_path, digits_small, monkeypatch, capsys):
    _, images = write_project(tmp_path, digits_small, "simple_cnn", SMALL)
    monkeypatch.chdir(tmp_path)
    assert main(["export", "--format", "torchscript"]) == 0
    log_proba = runner(tmp_path / "exports" / "torchscript" / FILES["torchscript"], "torchscript")(images[:4])
    assert log_proba.shape == (4, len(CLASSES)) and np.allclose(np.exp(log_proba).sum(axis=1), 1, atol=1e-5)
    assert "matches PyTorch" in capsys.readouterr().out
    with pytest.raises(ImgpipeError, match="run `dvc repro` first"):
        export_model(tmp_path, "elsewhere", "onnx", tmp_path / "x")
