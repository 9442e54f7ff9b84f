"""Sources: folders, pre-split folders, CSV manifests, torchvision datasets, and shared real data."""

from __future__ import annotations

import logging

import numpy as np
import pytest
import yaml
from PIL import Image

from helpers import REPO, SHARED, write_digit_folder
from imgpipe.errors import ImgpipeError
from imgpipe.ingest.sources import load_source, read_manifest_csv, scan_folder
from imgpipe.params.ingest import IngestConfig


def ingest_config(**changes) -> IngestConfig:
    raw = yaml.safe_load((REPO / "params.yaml").read_text())["ingest"]
    raw.update(changes)
    return IngestConfig.model_validate(raw)


def test_folder_layout_nested_and_case_insensitive(tmp_path):
    written = write_digit_folder(tmp_path / "imgs", per_class=8)
    (tmp_path / "imgs" / "notes.txt").write_text("not an image, not in a class")
    (tmp_path / "imgs" / "zero" / ".hidden.jpg").write_bytes(b"junk")
    (tmp_path / "imgs" / "zero" / "readme.md").write_text("ignored: not an image extension")
    found = scan_folder(tmp_path / "imgs")
    assert len(found) == sum(len(v) for v in written.values())
    assert {c.class_name for c in found} == {"zero", "one", "two"}
    assert any(c.id.endswith(".BMP") for c in found) and any("/more/" in c.id for c in found)
    assert all(c.split == "" for c in found)
    assert [c.id for c in found] == sorted(c.id for c in found)


def test_folder_source_decodes_every_readable_file(tmp_path):
    write_digit_folder(tmp_path / "imgs", per_class=8)
    source = load_source(ingest_config(source=str(tmp_path / "imgs"), channels=3, image_size=24, workers=2), tmp_path)
    assert source.scanned == 24 and len(source.ids) == 24 and not source.skipped
    assert source.images.shape == (24, 24, 24, 3) and source.classes == ["one", "two", "zero"]
    assert not source.builtin


def test_presplit_folder_keeps_its_splits(tmp_path):
    for split in ("Train", "val"):
        write_digit_folder(tmp_path / "imgs" / split, per_class=6)
    found = scan_folder(tmp_path / "imgs")
    assert {c.split for c in found} == {"train", "val"}
    assert all(c.id.lower().startswith(c.split + "/") for c in found)
    assert {c.class_name for c in found} == {"zero", "one", "two"}


def test_csv_manifest_paths_are_relative_to_it(tmp_path):
    written = write_digit_folder(tmp_path / "data" / "images", per_class=4)
    rows = ["path,label,split"]
    for name, paths in written.items():
        for k, path in enumerate(paths):
            rows.append(f"{path.relative_to(tmp_path / 'data').as_posix()},{name},{'test' if k == 0 else ''}")
    (tmp_path / "data" / "labels.csv").write_text("\n".join(rows) + "\n")
    found = read_manifest_csv(tmp_path / "data" / "labels.csv")
    assert len(found) == 12 and sum(c.split == "test" for c in found) == 3
    source = load_source(ingest_config(source="data/labels.csv"), tmp_path)
    assert len(source.ids) == 12 and list(source.splits).count("test") == 3


@pytest.mark.parametrize("bad_path", ["../outside.png", "/etc/passwd", "images/../../x.png"])
def test_csv_manifest_refuses_paths_that_escape_its_folder(tmp_path, bad_path):
    (tmp_path / "m").mkdir()
    (tmp_path / "m" / "labels.csv").write_text(f"path,label\n{bad_path},cat\n")
    with pytest.raises(ImgpipeError, match="escapes the manifest's folder"):
        read_manifest_csv(tmp_path / "m" / "labels.csv")


def test_csv_manifest_needs_path_and_label_columns(tmp_path):
    (tmp_path / "labels.csv").write_text("file,class\na.png,cat\n")
    with pytest.raises(ImgpipeError, match=r"labels.csv: missing column\(s\) label, path"):
        read_manifest_csv(tmp_path / "labels.csv")


def test_unknown_source_names_the_key(tmp_path):
    with pytest.raises(ImgpipeError, match="ingest.source"):
        load_source(ingest_config(source="no/such/folder"), tmp_path)


def write_idx(path, array: np.ndarray) -> None:
    """The MNIST idx format: magic (type 0x08 = uint8, ndim), big-endian dims, raw bytes."""
    header = bytes([0, 0, 0x08, array.ndim]) + b"".join(int(d).to_bytes(4, "big") for d in array.shape)
    path.write_bytes(header + array.astype(np.uint8).tobytes())


def test_torchvision_mnist_read_from_a_local_root(tmp_path, digits_small):
    images, labels = digits_small
    raw = tmp_path / "tv" / "MNIST" / "raw"
    raw.mkdir(parents=True)
    big = np.stack([np.asarray(Image.fromarray(i[:, :, 0]).resize((28, 28))) for i in images])
    write_idx(raw / "train-images-idx3-ubyte", big[:200])
    write_idx(raw / "train-labels-idx1-ubyte", labels[:200])
    write_idx(raw / "t10k-images-idx3-ubyte", big[200:])
    write_idx(raw / "t10k-labels-idx1-ubyte", labels[200:])
    source = load_source(
        ingest_config(source="torchvision:MNIST", torchvision_root="tv", download=False, image_size=16), tmp_path
    )
    assert source.builtin and len(source.ids) == 300
    assert list(source.splits).count("test") == 100 and source.images.shape[1:] == (16, 16, 1)
    assert source.classes[0].startswith("0")


def test_torchvision_offline_says_where_to_put_the_files(tmp_path):
    with pytest.raises(ImgpipeError) as err:
        load_source(ingest_config(source="torchvision:CIFAR10", torchvision_root="tv", download=False), tmp_path)
    message = str(err.value)
    assert "cifar-10-python.tar.gz" in message and str(tmp_path / "tv" / "cifar-10-batches-py") in message


def test_unknown_torchvision_name_is_a_params_error():
    with pytest.raises(ValueError, match="torchvision:CIFAR10"):
        ingest_config(source="torchvision:ImageNet")


@pytest.mark.skipif(not (SHARED / "brain-mri").is_dir(), reason="../shared/datasets/brain-mri is not on this machine")
def test_brain_mri_every_readable_file_is_decoded(tmp_path):
    """Mixed formats, modes and sizes, and PNGs named .jpg: nothing readable is lost."""
    source = load_source(ingest_config(source=str(SHARED / "brain-mri"), channels=3, image_size=32), tmp_path)
    files = [p for p in (SHARED / "brain-mri").rglob("*") if p.is_file()]
    assert source.scanned == len(files) and not source.skipped
    assert source.classes == ["no", "yes"]
    assert np.bincount(source.labels).tolist() == [
        len(list((SHARED / "brain-mri" / c).rglob("*.*"))) for c in ("no", "yes")
    ]


def test_a_one_class_source_is_refused_before_decoding(tmp_path):
    write_digit_folder(tmp_path / "raw", per_class=3, classes=("only",))
    with pytest.raises(ImgpipeError, match="holds one class \\(only\\).*at least two"):
        load_source(ingest_config(source="raw"), tmp_path)


def test_a_symlinked_class_folder_is_followed_and_a_loop_is_not(tmp_path):
    write_digit_folder(tmp_path / "elsewhere", per_class=3, classes=("zero", "one"))
    (tmp_path / "raw").mkdir()
    (tmp_path / "raw" / "zero").symlink_to(tmp_path / "elsewhere" / "zero", target_is_directory=True)
    (tmp_path / "raw" / "one").symlink_to(tmp_path / "elsewhere" / "one", target_is_directory=True)
    (tmp_path / "elsewhere" / "one" / "loop").symlink_to(tmp_path / "raw", target_is_directory=True)  # a loop
    found = scan_folder(tmp_path / "raw")
    assert sorted({c.class_name for c in found}) == ["one", "zero"] and len(found) == 6


def test_a_huge_non_image_is_judged_by_its_first_bytes(tmp_path, monkeypatch):
    from pathlib import Path

    from imgpipe.ingest.decoding import DecodeSettings, decode_file

    big = tmp_path / "movie.jpg"
    with open(big, "wb") as f:  # sparse: 3 GB on paper, nothing on disk
        f.write(b"not a picture at all")
        f.truncate(3 * 2**30)
    read_whole = Path.read_bytes
    monkeypatch.setattr(
        Path,
        "read_bytes",
        lambda p: (_ for _ in ()).throw(AssertionError(f"read {p} whole")) if p == big else read_whole(p),
    )
    result = decode_file(big, DecodeSettings(16, 1, "squash", 10_000))
    assert result.pixels is None and "not an image" in result.reason


def test_more_decoding_workers_than_cores_are_capped(caplog):
    from imgpipe.ingest.decoding import available_cores, worker_count

    assert worker_count(300) == available_cores()
    assert [r.levelname for r in caplog.records] == ["WARNING"] and "ingest.workers is 300" in caplog.text
    assert worker_count(0) == available_cores() and worker_count(1) == 1


def test_a_link_to_a_sibling_folder_is_read_once_as_the_real_folder(tmp_path, caplog):
    caplog.set_level(logging.INFO, logger="imgpipe")
    write_digit_folder(tmp_path / "raw", per_class=2, classes=("a", "b"))
    (tmp_path / "raw" / "a" / "link").symlink_to(tmp_path / "raw" / "b", target_is_directory=True)
    ids = sorted(c.id for c in scan_folder(tmp_path / "raw"))
    assert len([i for i in ids if i.startswith("b/")]) == 2  # the real folder, still class b
    assert not [i for i in ids if i.startswith("a/link/")]  # not a second time, as class a
    assert f"{tmp_path / 'raw' / 'a' / 'link'} leads to {tmp_path / 'raw' / 'b'}" in caplog.text
