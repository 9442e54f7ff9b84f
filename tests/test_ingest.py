"""The ingest stage on real folders: bad files, duplicates, leakage, determinism, versioned raw data."""

from __future__ import annotations

import hashlib
import io
import json
import shutil

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from helpers import decoded_png, write_digit_folder

pytestmark = pytest.mark.slow  # every test runs the ingest stage, or the pipeline, in a project copy


def seed_bad_files(folder) -> dict[str, str]:
    """The bad files users really have, with the reason each must be reported under."""
    good_jpeg = io.BytesIO()
    Image.new("RGB", (300, 300), (120, 30, 60)).save(good_jpeg, format="JPEG")
    (folder / "zero" / "truncated.jpg").write_bytes(good_jpeg.getvalue()[:500])
    (folder / "zero" / "empty.jpg").write_bytes(b"")
    (folder / "one" / "notes.jpg").write_text("shopping list: milk, eggs\n")
    Image.new("L", (4000, 3000), 0).save(folder / "two" / "huge.png")
    # The same bytes under two labels: a conflict, so both copies go.
    shutil.copy(folder / "one" / "one_000.jpg", folder / "two" / "one_000_copy.jpg")
    return {
        "zero/truncated.jpg": "truncated",
        "zero/empty.jpg": "empty file",
        "one/notes.jpg": "not an image",
        "two/huge.png": "ingest.max_pixels",
    }


@pytest.fixture
def folder_project(project):
    write_digit_folder(project.root / "raw" / "digits3", per_class=16)
    project.set_params({"ingest": {"source": "raw/digits3", "channels": 3, "image_size": 16, "max_pixels": 10_000_000}})
    return project


def file_hashes(folder) -> dict[str, str]:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(folder.iterdir())}


def test_bad_files_are_skipped_with_reasons_and_duplicates_reported(folder_project):
    root = folder_project.root
    expected = seed_bad_files(root / "raw" / "digits3")
    shutil.copy(root / "raw" / "digits3" / "zero" / "zero_001.png", root / "raw" / "digits3" / "zero" / "zz_dup.png")
    out = folder_project.run("python", "-m", "stages.ingest")
    report = json.loads((root / "reports" / "ingest.json").read_text())

    skipped = {s["file"]: s["reason"] for s in report["skipped"]}
    assert set(skipped) == set(expected)
    for name, reason in expected.items():
        assert reason in skipped[name]
        assert name in out.stdout  # also said on the console
    assert report["conflicts"][0]["files"] == [
        {"file": "one/one_000.jpg", "class": "one"},
        {"file": "two/one_000_copy.jpg", "class": "two"},
    ]
    assert report["duplicates"] == [
        {"sha256": report["duplicates"][0]["sha256"], "kept": "zero/zero_001.png", "removed": ["zero/zz_dup.png"]}
    ]
    summary = report["summary"]
    assert summary["scanned"] == 48 + 6 and summary["skipped"] == 4 and summary["kept"] == 47
    assert sum(sum(c.values()) for c in report["counts"].values()) == 47
    assert decoded_png(root / "reports" / "ingest_samples.png") == (618, 226)  # 3 classes by 8 samples, 64 px each

    manifest = pd.read_csv(root / "data" / "ingest" / "manifest.csv")
    assert manifest["sha256"].is_unique  # no image in two splits, or twice in one
    assert not manifest["id"].isin(["one/one_000.jpg", "two/one_000_copy.jpg", "zero/zz_dup.png"]).any()
    train = np.load(root / "data" / "ingest" / "train.npy", mmap_mode="r")
    assert train.dtype == np.uint8 and train.shape[1:] == (16, 16, 3)
    assert sorted(p.name for p in (root / "data" / "ingest").iterdir()) == [
        "classes.json",
        "manifest.csv",
        "preprocessing.json",
        "test.npy",
        "train.npy",
        "val.npy",
    ]


def test_identical_inputs_give_byte_identical_outputs(folder_project):
    root = folder_project.root
    folder_project.set_params({"ingest": {"workers": 1}})
    folder_project.run("python", "-m", "stages.ingest")
    first = file_hashes(root / "data" / "ingest")
    folder_project.set_params({"ingest": {"workers": 2}})
    folder_project.run("python", "-m", "stages.ingest")
    assert file_hashes(root / "data" / "ingest") == first


def test_own_folder_is_taken_as_it_is_unless_long_tail_all(folder_project):
    root = folder_project.root
    folder_project.set_params({"ingest": {"imbalance_ratio": 2}})  # long_tail: builtin
    folder_project.run("python", "-m", "stages.ingest")
    report = json.loads((root / "reports" / "ingest.json").read_text())
    assert report["summary"]["dropped_for_long_tail"] == 0 and report["summary"]["kept"] == 48

    folder_project.set_params({"ingest": {"long_tail": "all"}})
    folder_project.run("python", "-m", "stages.ingest")
    report = json.loads((root / "reports" / "ingest.json").read_text())
    per_class = {c: sum(report["counts"][s][c] for s in ("train", "val", "test")) for c in report["classes"]}
    assert sorted(per_class.values(), reverse=True) == [16, 11, 8]  # 16 * 2 ** (-i / 2)
    assert report["summary"]["dropped_for_long_tail"] == 48 - 35


def test_too_many_bad_files_stop_the_stage_and_keep_old_outputs(folder_project):
    root = folder_project.root
    folder_project.run("python", "-m", "stages.ingest")
    before = file_hashes(root / "data" / "ingest")
    for path in (root / "raw" / "digits3" / "two").rglob("*.*"):
        path.write_bytes(b"")
    folder_project.set_params({"ingest": {"max_bad_fraction": 0.1}})
    out = folder_project.run("python", "-m", "stages.ingest", check=False)
    assert out.returncode != 0 and "ingest.max_bad_fraction" in out.stderr
    assert file_hashes(root / "data" / "ingest") == before

    folder_project.set_params({"ingest": {"max_bad_fraction": 0.9}})
    out = folder_project.run("python", "-m", "stages.ingest", check=False)
    assert out.returncode != 0 and "two" in out.stderr and "no usable training images" in out.stderr


def test_raw_data_versioned_with_dvc_push_pull_and_precise_reruns(folder_project, tmp_path):
    """The README walk-through: dvc add the images, repro, push, lose everything, pull.

    Up to augment, the last stage that versions data; training adds nothing here and
    test_pipeline.py covers it."""
    proj, root = folder_project, folder_project.root
    remote = tmp_path / "remote"
    proj.run("dvc", "init", "-q", "-f")
    proj.run("dvc", "remote", "add", "-f", "-d", "local", str(remote))
    proj.run("dvc", "add", "raw/digits3")
    proj.commit("raw images under DVC")
    assert "digits3" in (root / "raw" / ".gitignore").read_text()
    assert "raw/digits3/zero" not in proj.run("git", "ls-files").stdout  # git holds only the .dvc file

    proj.run("dvc", "repro", "augment")
    again = proj.run("dvc", "repro", "augment").stdout
    assert "didn't change" in again and "Running stage" not in again
    proj.commit("first run")

    # One new image: ingest and everything after it rerun.
    extra = Image.fromarray(np.full((30, 30), 200, dtype=np.uint8))
    extra.save(root / "raw" / "digits3" / "one" / "new.png")
    status = proj.run("dvc", "status", "--with-deps", "augment").stdout
    assert "ingest" in status and "modified" in status
    out = proj.run("dvc", "repro", "augment").stdout
    assert all(f"Running stage '{s}'" in out for s in ("ingest", "balance", "augment"))
    proj.run("dvc", "add", "raw/digits3")
    proj.commit("one more image")

    proj.run("dvc", "push")
    lock = (root / "dvc.lock").read_text()
    train = hashlib.sha256((root / "data" / "ingest" / "train.npy").read_bytes()).hexdigest()
    shutil.rmtree(root / "raw" / "digits3")
    shutil.rmtree(root / "data")
    shutil.rmtree(root / ".dvc" / "cache")
    proj.run("dvc", "pull", "--with-deps", "augment")
    assert np.array_equal(np.asarray(Image.open(root / "raw" / "digits3" / "one" / "new.png")), np.asarray(extra))
    assert hashlib.sha256((root / "data" / "ingest" / "train.npy").read_bytes()).hexdigest() == train
    assert (root / "dvc.lock").read_text() == lock
    assert "up to date" in proj.run("dvc", "status", "--with-deps", "augment").stdout
    assert "Running stage" not in proj.run("dvc", "repro", "augment").stdout


def test_pipeline_completes_on_a_folder_with_bad_files_and_hostile_class_names(folder_project):
    raw = folder_project.root / "raw" / "digits3"
    seed_bad_files(raw)
    # Class names MLflow would refuse as metric keys; tables and pictures keep them as they are.
    (raw / "one").rename(raw / "tabby, cat")
    (raw / "two").rename(raw / "😀 ..")
    folder_project.run("dvc", "repro")
    metrics = json.loads((folder_project.root / "metrics.json").read_text())
    assert 0.0 <= metrics["test"]["accuracy"] <= 1.0
    assert set(pd.read_csv(folder_project.root / "reports/per_class.csv")["class"]) == {"zero", "tabby, cat", "😀 .."}
