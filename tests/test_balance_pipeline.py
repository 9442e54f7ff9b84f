"""Every balance method and augment mode through the real pipeline (dvc), on tiny settings."""

from __future__ import annotations

import hashlib
import json

import numpy as np
import pandas as pd
import pytest

from helpers import decoded_png

# Each kind of method the stage handles differently; the rest of the SMOTE family is
# covered in test_balancing.py. The weighting methods act in training, so they run the
# whole pipeline; the others stop after augment, the last stage that reads their output.
# One method of each kind through DVC: picked references, synthetic pixels, and weights
# train reads (through evaluate). tests/test_balancing.py checks every method's counts.
METHODS = {"smote": "augment", "random_over": "augment", "class_weight": "evaluate"}  # each unlike the one before


def digest(path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.mark.slow
def test_every_balance_method_runs_through_dvc_and_leaves_val_and_test_alone(project):
    root = project.root
    project.set_params({"balance": {"k_neighbors": 2}, "train": {"epochs": 1}})
    project.run("dvc", "repro", "augment")  # the class_weight experiment below trains: no need here
    project.commit("baseline")
    frozen = {name: digest(root / "data" / "ingest" / f"{name}.npy") for name in ("val", "test")}
    eval_hashes = set(pd.read_csv(root / "data" / "ingest" / "manifest.csv").query("split != 'train'")["sha256"])
    ingest_counts = json.loads((root / "reports" / "ingest.json").read_text())["counts"]["train"]

    for method, last_stage in METHODS.items():
        out = project.run("dvc", "exp", "run", "-S", f"balance.method={method}", last_stage)
        assert "Running stage 'ingest'" not in out.stdout, method
        assert f"balance: {method}:" in out.stdout  # before -> after counts are printed
        report = json.loads((root / "reports" / "balance.json").read_text())
        assert report["method"] == method and report["before"] == ingest_counts
        after = list(report["after"].values())
        if method == "class_weight":
            assert report["after"] == report["before"]
        elif method in ("random_over", "random_under", "smote"):
            assert len(set(after)) == 1, (method, after)  # evened out exactly
        else:
            assert report["after"] != report["before"], method
        # Picked and kept rows are references: only synthetic and augmented pixels are stored.
        assert len(np.load(root / "data" / "balance" / "train.npy", mmap_mode="r")) == report["synthetic"], method
        augmented_rows = (pd.read_csv(root / "data" / "augment" / "manifest.csv")["origin"] == "augmented").sum()
        assert len(np.load(root / "data" / "augment" / "train.npy", mmap_mode="r")) == augmented_rows, method
        training = json.loads((root / "data" / "balance" / "training.json").read_text())
        assert (training["loss_weights"] is not None) == (method == "class_weight")
        assert (training["sampler_weights"] is not None) == (method == "weighted_sampler")
        # val and test are the ingest stage's, byte for byte, and nothing synthetic reached them.
        assert {n: digest(root / "data" / "ingest" / f"{n}.npy") for n in frozen} == frozen
        train_manifest = pd.read_csv(root / "data" / "augment" / "manifest.csv")
        assert set(train_manifest["split"]) == {"train"}
        assert not set(train_manifest["sha256"]) & eval_hashes
        assert decoded_png(root / "reports" / "balance_counts.png") == (800, 360), method  # 8 inches: ten classes
        if last_stage == "evaluate":
            assert "Running stage 'train'" in out.stdout and "Running stage 'evaluate'" in out.stdout, method


@pytest.mark.slow
def test_augment_modes_online_augmentation_and_byte_identical_reruns(project):
    root = project.root
    project.set_params(
        {
            "balance": {"method": "none"},
            "augment": {"mode": "balance", "copies": 1},
            "train": {"epochs": 1, "augment_online": True, "workers": 2},
        }
    )
    out = project.run("dvc", "repro")
    assert "epoch 1:" in out.stdout
    labels = pd.read_csv(root / "data" / "augment" / "manifest.csv")["label"]
    counts = np.bincount(labels)
    assert len(set(counts)) == 1  # every class topped up to the same size
    ingest_counts = json.loads((root / "reports" / "ingest.json").read_text())["counts"]["train"]
    assert counts[0] == 2 * max(ingest_counts.values())
    before = {p.name: digest(p) for p in (root / "data" / "augment").iterdir()}

    forced = project.run("dvc", "repro", "--force", "augment").stdout
    assert "Running stage 'augment'" in forced
    assert {p.name: digest(p) for p in (root / "data" / "augment").iterdir()} == before
    again = project.run("dvc", "repro").stdout
    assert "Running stage" not in again, again
