"""Hostile input to ingest (issue #28): cut and damaged shards, class names as long as a
file system allows, a class folder reachable twice, and a pre-split source whose test
folder lacks a class. Every case runs in-process on a few tiny images."""

from __future__ import annotations

import json
import logging
import tarfile

import numpy as np
import pytest
import yaml

from helpers import REPO, write_digit_folder
from imgpipe.ingest.sources import load_source
from imgpipe.ops.pack import pack
from imgpipe.params.ingest import IngestConfig
from imgpipe.paths import Paths


def ingest_config(**changes) -> IngestConfig:
    raw = yaml.safe_load((REPO / "params.yaml").read_text())["ingest"]
    raw.update({"image_size": 8, "channels": 1, "workers": 1, **changes})
    return IngestConfig.model_validate(raw)


def run_ingest(root, cfg, monkeypatch) -> dict:
    """The ingest stage's work (not its MLflow run) on ``cfg.source`` under ``root``; its report."""
    monkeypatch.syspath_prepend(str(REPO))
    from stages.ingest import ingest

    paths = Paths(root)
    ingest(cfg, paths, load_source(cfg, root))
    return json.loads(paths.ingest_report.read_text())


def members(shard) -> list[tarfile.TarInfo]:
    with tarfile.open(shard) as archive:
        return archive.getmembers()


# ----------------------------------------------------------------- cut and damaged shards


@pytest.fixture
def shards(tmp_path):
    write_digit_folder(tmp_path / "pets", per_class=12)
    pack(tmp_path / "pets", tmp_path / "raw" / "shards", shard_size=18)  # two shards of 18 images
    return tmp_path / "raw" / "shards"


def test_a_shard_cut_inside_a_member_reports_the_member_and_the_early_end(shards, tmp_path, monkeypatch, capsys):
    last = sorted(shards.iterdir())[-1]
    cut = members(last)[4]
    with open(last, "r+b") as f:  # cut off in the middle of the fifth image
        f.truncate(cut.offset_data + cut.size // 2)
    report = run_ingest(tmp_path, ingest_config(source="raw/shards", max_bad_fraction=0.2), monkeypatch)
    assert [s["file"] for s in report["skipped"]] == [cut.name]
    assert "cut short" in report["skipped"][0]["reason"]
    assert len(report["warnings"]) == 1 and "ends early, inside member" in report["warnings"][0]
    assert str(last) in report["warnings"][0] and report["summary"]["warnings"] == 1
    out = capsys.readouterr().out
    assert f"ingest: skipped {cut.name}: unreadable: cut short" in out and "ingest: warning: " in out
    assert report["summary"]["scanned"] == 18 + 5  # the four members after the cut are gone, and said to be


def test_a_shard_cut_between_members_is_not_silent(shards, tmp_path):
    last = sorted(shards.iterdir())[-1]
    with open(last, "r+b") as f:  # exactly where the sixth member's header starts: every kept image is whole
        f.truncate(members(last)[5].offset)
    source = load_source(ingest_config(source="raw/shards"), tmp_path)
    assert source.scanned == 18 + 5 and not source.skipped
    assert len(source.warnings) == 1 and "no end-of-archive marker" in source.warnings[0]


def test_a_damaged_header_loses_one_member_and_reads_the_rest(shards, tmp_path):
    first = sorted(shards.iterdir())[0]
    inside = members(first)
    broken, after = inside[2], inside[3]
    with open(first, "r+b") as f:  # the third member's header overwritten with junk, its data intact
        f.seek(broken.offset)
        f.write(b"\xff" * 512)
    source = load_source(ingest_config(source="raw/shards"), tmp_path)
    assert broken.name not in source.ids and after.name in source.ids
    assert source.scanned == 35 and len(source.warnings) == 1
    assert f"bytes {broken.offset} to {after.offset}" in source.warnings[0] and "damaged header" in source.warnings[0]


def test_a_corrupt_member_is_skipped_with_its_reason_and_a_whole_shard_is_quiet(shards, tmp_path):
    first = sorted(shards.iterdir())[0]
    hit = next(m for m in members(first) if m.name.endswith(".png"))
    with open(first, "r+b") as f:  # a PNG whose pixel data is overwritten
        f.seek(hit.offset_data + hit.size // 2)
        f.write(b"\x00junk" * 8)
    source = load_source(ingest_config(source="raw/shards"), tmp_path)
    assert [s["file"] for s in source.skipped] == [hit.name] and not source.warnings
    assert source.scanned == 36


# ------------------------------------------------------------- class names near 255 bytes


def test_class_names_as_long_as_a_folder_name_make_valid_distinct_mlflow_keys():
    from mlflow.utils.validation import _validate_metric, _validate_param

    from imgpipe.tracking.runs import flatten

    # Two 250-character names that differ only at the end, one of 254 UTF-8 bytes, one hostile.
    names = ["c" * 249 + "a", "c" * 249 + "b", "é" * 127, "tabby, cat"]
    per_class = {name: i for i, name in enumerate(names)}
    logged = {  # what ingest, balance and evaluate log per class
        "count": {"train": per_class, "test": per_class},
        "before": per_class,
        "after": per_class,
        "test": {"class": {name: {"recall": 0.5, "recall_ci95_high": 0.9} for name in names}},
    }
    flat = flatten(logged)
    assert len(flat) == 2 * 4 + 2 * 4 + 2 * 4
    for key, value in flat.items():
        _validate_metric(key, float(value), 0, 0)  # raises on a key MLflow would refuse
        _validate_param(key, str(value))
    counts = [key for key in flat if key.startswith("count.train.")]
    assert len(set(counts)) == 4 and "count.train.tabby_ cat" in counts
    assert sorted(flat[key] for key in counts) == [0, 1, 2, 3]  # no value overwrote another


# ------------------------------------------------------ a class folder reachable twice


def test_init_and_ingest_read_a_folder_reachable_twice_once(tmp_path, caplog):
    caplog.set_level(logging.INFO, logger="imgpipe")
    from imgpipe.ingest.sources import scan_folder
    from imgpipe.init.profile import profile_folder

    raw = tmp_path / "raw"
    write_digit_folder(raw, per_class=8, classes=("a", "b"))  # b/more/ holds two of b's images
    (raw / "a" / "link").symlink_to(raw / "b", target_is_directory=True)
    (raw / "a" / "also").symlink_to(raw / "b" / "more", target_is_directory=True)  # met before b/more itself
    (tmp_path / "outside").mkdir()
    (raw / "c").symlink_to(tmp_path / "outside", target_is_directory=True)
    write_digit_folder(tmp_path / "outside", per_class=4, classes=("two",))
    (raw / "d").symlink_to(tmp_path / "outside", target_is_directory=True)  # a second link to the same folder

    assert profile_folder(raw, sample=5).counts == {"a": 8, "b": 8, "c": 4}
    found = scan_folder(raw)
    assert sorted(c.id for c in found if c.class_name == "b") == sorted(
        p.relative_to(raw).as_posix() for p in (raw / "b").rglob("*.*")
    )
    assert len(found) == 20 and {c.class_name for c in found} == {"a", "b", "c"}
    out = caplog.text
    assert f"{raw / 'a' / 'also'} leads to {raw / 'b' / 'more'}" in out and f"{raw / 'd'} leads to {raw / 'c'}" in out


# -------------------------------------------- a pre-split source whose test folder lacks a class


def presplit_without(root, missing: str, split: str = "test"):
    """``root/{train,val,test}/<class>/`` of distinct scans, with no ``missing`` images in ``split``."""
    written = write_digit_folder(root / "all", per_class=16)
    for name, files in written.items():
        for i, path in enumerate(sorted(files)):
            to = "test" if i < 4 else "val" if i < 8 else "train"
            if to == split and name == missing:
                to = "train"
            target = root / to / path.relative_to(root / "all")
            target.parent.mkdir(parents=True, exist_ok=True)
            path.rename(target)
    (root / "all").rename(root.parent / "unused")


def test_ingest_warns_when_a_presplit_test_folder_lacks_a_class(tmp_path, monkeypatch, capsys):
    presplit_without(tmp_path / "raw" / "col", "two")
    report = run_ingest(tmp_path, ingest_config(source="raw/col"), monkeypatch)
    assert report["counts"]["test"]["two"] == 0 and report["counts"]["val"]["two"] > 0
    assert len(report["warnings"]) == 1 and report["summary"]["warnings"] == 1
    assert "the test split has no images of class 'two'" in report["warnings"][0]
    assert f"ingest: warning: {report['warnings'][0]}" in capsys.readouterr().out


def test_evaluate_says_which_classes_test_lacks_and_scores_them_as_unmeasured(monkeypatch, capsys):
    from imgpipe.evaluate.metrics import classification_metrics, per_class_table

    y_true = np.array([0, 0, 0, 1, 1, 1])  # no image of class "two"
    proba = np.eye(3)[[0, 0, 2, 1, 1, 0]] * 0.9 + 0.05  # one "zero" predicted as "two"
    metrics = classification_metrics(y_true, proba, ["zero", "one", "two"])
    per_class = metrics.pop("per_class")
    two = per_class["two"]
    assert two["support"] == 0 and two["recall"] is None and two["f1"] is None and two["recall_ci95_low"] is None
    assert two["precision"] == 0.0  # it was predicted once, wrongly: that much is measured
    assert metrics["f1_macro"] == pytest.approx((2 / 3 + 0.8) / 2, abs=1e-5)  # the two classes present, no third 0
    monkeypatch.syspath_prepend(str(REPO))
    from stages.evaluate import note_absent

    note_absent("test", metrics, per_class)
    assert metrics["classes_missing"] == 1 and metrics["classes_missing_names"] == "two"
    assert "evaluate: warning: the test split has no images of class(es) two" in capsys.readouterr().out
    assert per_class_table(per_class).set_index("class").loc["two", "recall"] != 0  # blank in per_class.csv
