"""`imgpipe init FOLDER`: a profile of the folder, choices with reasons, params.yaml kept readable."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest
import yaml
from PIL import Image

from helpers import copy_project, write_digit_folder
from imgpipe.errors import ImgpipeError
from imgpipe.tools.init.profile import profile_folder
from imgpipe.tools.init.recipe import choose
from imgpipe.tools.init.trial import pick

IMGPIPE = str(Path(sys.executable).parent / "imgpipe")


def write_photos(root: Path, counts: dict[str, int], size: tuple[int, int] = (96, 80), gray: bool = False) -> None:
    """Smooth random colour (or gray) images, a different tint per class."""
    rng = np.random.default_rng(0)
    for c, (name, n) in enumerate(counts.items()):
        (root / name).mkdir(parents=True, exist_ok=True)
        for i in range(n):
            base = rng.integers(0, 256, (size[1] // 8, size[0] // 8, 3), dtype=np.uint8)
            base[..., c % 3] = 255 - 40 * c
            image = Image.fromarray(base).resize(size, Image.Resampling.BILINEAR)
            (image.convert("L") if gray else image).save(root / name / f"{i:03d}.png")


def values(choices) -> dict:
    return {c.key: c.value for c in choices}


def test_profile_counts_classes_and_sees_gray_and_colour(tmp_path):
    write_digit_folder(tmp_path / "digits", per_class=8)  # L, RGB and palette files, all gray
    digits = profile_folder(tmp_path / "digits")
    assert digits.counts == {"one": 8, "two": 8, "zero": 8} and digits.gray and digits.short_side < 64
    write_photos(tmp_path / "photos", {"a": 10, "b": 30})
    photos = profile_folder(tmp_path / "photos")
    assert not photos.gray and (photos.long_side, photos.short_side) == (96, 80) and photos.imbalance == 3.0


def test_profile_of_a_pre_split_folder_counts_only_train(tmp_path):
    write_photos(tmp_path / "set" / "train", {"a": 6, "b": 4})
    write_photos(tmp_path / "set" / "val", {"a": 5, "b": 5})
    profile = profile_folder(tmp_path / "set")
    assert profile.presplit and profile.counts == {"a": 6, "b": 4} and profile.files == 20


def test_profile_refuses_what_is_not_a_folder_of_classes(tmp_path):
    with pytest.raises(ImgpipeError, match="is not a folder"):
        profile_folder(tmp_path / "missing")
    write_photos(tmp_path / "one", {"only": 3})
    with pytest.raises(ImgpipeError, match="needs at least two"):
        profile_folder(tmp_path / "one")
    (tmp_path / "bad" / "a").mkdir(parents=True)
    (tmp_path / "bad" / "b").mkdir()
    for name in ("a", "b"):
        (tmp_path / "bad" / name / "x.jpg").write_bytes(b"not an image")
    with pytest.raises(ImgpipeError, match="could be read as an image"):
        profile_folder(tmp_path / "bad")


def test_photos_get_a_pretrained_backbone_and_small_images_a_cnn_from_scratch(tmp_path):
    write_photos(tmp_path / "photos", {"a": 40, "b": 40}, size=(400, 300))
    photos = values(choose(profile_folder(tmp_path / "photos"), "raw/photos"))
    assert photos["train.model"] == "efficientnet_lite0" and photos["train.pretrained"] is True
    assert photos["ingest.image_size"] == 224 and photos["ingest.channels"] == 3
    assert photos["train.freeze"] == {"unfreeze_last": 4} and photos["train.device_augment"]["hflip"]
    assert values(choose(profile_folder(tmp_path / "photos"), "raw/photos", image_size=160))["ingest.image_size"] == 160
    write_digit_folder(tmp_path / "digits", per_class=8)
    small = values(choose(profile_folder(tmp_path / "digits"), "raw/digits"))
    assert small["train.model"] == "base_cnn" and small["train.pretrained"] is False
    assert small["ingest.channels"] == 1 and small["ingest.image_size"] < 64
    assert not small["train.device_augment"]["hflip"]  # a mirrored digit is another symbol


def test_imbalance_picks_the_loss_and_size_picks_the_epochs(tmp_path):
    write_photos(tmp_path / "even", {"a": 20, "b": 20})
    write_photos(tmp_path / "skewed", {"a": 60, "b": 10})
    even = values(choose(profile_folder(tmp_path / "even"), "x"))
    skewed = values(choose(profile_folder(tmp_path / "skewed"), "x"))
    assert even["train.loss"] == "cross_entropy" and skewed["train.loss"] == "balanced_softmax"
    assert even["balance.method"] == skewed["balance.method"] == "none"
    assert skewed["train.early_stopping"]["metric"] == "val_balanced_accuracy"
    assert 10 <= even["train.epochs"] <= 30


def test_a_tried_candidate_replaces_the_rule_s_only_when_clearly_better():
    assert pick({"rule": 0.80, "other": 0.81}) == "rule"  # within the margin: noise on a small val split
    assert pick({"rule": 0.80, "other": 0.90}) == "other"
    assert pick({"rule": 0.90, "other": 0.70}) == "rule"


def test_init_keeps_every_comment_and_writes_params_that_validate(tmp_path):
    project = copy_project(tmp_path / "proj")
    write_photos(project.root / "raw" / "pets", {"cat": 30, "dog": 8}, gray=True)
    before = (project.root / "params.yaml").read_text()
    out = project.run(IMGPIPE, "init", "raw/pets", "--no-trial")
    after = (project.root / "params.yaml").read_text()
    comments = [line.split("#", 1)[1].strip() for line in before.splitlines() if "#" in line]
    assert all(comment in after for comment in comments)
    params = yaml.safe_load(after)
    assert params["ingest"]["source"] == "raw/pets" and params["ingest"]["channels"] == 1
    assert params["train"]["weights_path"] is None and "weights_path: null" in after
    assert params["train"]["scheduler"]["step_size"] == 10  # keys init does not choose stay
    for line in ("train.model", "efficientnet_lite0", "balanced_softmax", "largest/smallest class 3.8"):
        assert line in out.stdout
    project.run(sys.executable, "-m", "stages.check_params")  # what dvc repro checks first


def test_init_turns_off_what_an_earlier_experiment_left_on(tmp_path):
    project = copy_project(tmp_path / "proj")
    write_photos(project.root / "raw" / "pets", {"cat": 30, "dog": 8})
    project.set_params({"ingest": {"long_tail": "all"}, "train": {"loss": "ldam", "drw_epoch": 3, "ema": {"decay": 0.9}},
                        "evaluate": {"logit_adjustment": 1.0}})
    out = project.run(IMGPIPE, "init", "raw/pets", "--no-trial")
    params = yaml.safe_load((project.root / "params.yaml").read_text())
    assert params["ingest"]["long_tail"] == "builtin" and params["train"]["drw_epoch"] == 0
    assert params["train"]["ema"]["decay"] == 0.0 and params["train"]["loss"] == "balanced_softmax"
    assert params["evaluate"]["logit_adjustment"] == 0.0  # balanced softmax corrects the prior already
    assert "not part of this recipe; was 1.0" in out.stdout and "train.mix" not in out.stdout  # only what changes


def test_init_dry_run_writes_nothing_and_errors_are_one_sentence(tmp_path):
    project = copy_project(tmp_path / "proj")
    write_photos(project.root / "raw" / "pets", {"cat": 5, "dog": 5})
    before = (project.root / "params.yaml").read_text()
    out = project.run(IMGPIPE, "init", "raw/pets", "--dry-run", "--no-trial")
    assert "nothing written" in out.stdout and (project.root / "params.yaml").read_text() == before
    out = project.run(IMGPIPE, "init", "raw/nothing", check=False)
    assert out.returncode == 2 and "raw/nothing is not a folder" in out.stderr and "Traceback" not in out.stderr
    out = project.run(IMGPIPE, "init", "raw/pets", "--image-size", "4", check=False)
    assert out.returncode == 2 and "--image-size 4" in out.stderr
    assert (project.root / "params.yaml").read_text() == before


@pytest.mark.slow
def test_dvc_repro_after_init_learns_small_gray_images_with_a_cnn_from_scratch(tmp_path):
    project = copy_project(tmp_path / "proj")
    write_digit_folder(project.root / "raw" / "digits", per_class=12)
    project.run(IMGPIPE, "init", "raw/digits")
    project.run("dvc", "repro")
    spec = json.loads((project.root / "models" / "model.json").read_text())
    assert spec["name"] == "base_cnn" and spec["channels"] == 1
    metrics = json.loads((project.root / "metrics.json").read_text())
    assert metrics["test"]["balanced_accuracy"] >= 0.6  # chance is 0.33


@pytest.mark.slow
def test_dvc_repro_after_init_fine_tunes_efficientnet_on_photos(tmp_path):
    project = copy_project(tmp_path / "proj")
    write_photos(project.root / "raw" / "tints", {"red": 48, "green": 24})
    out = project.run(IMGPIPE, "init", "raw/tints", "--image-size", "64")
    # Both ways to fine-tune were tried on ingest's train split, and the reason says so.
    assert "init: val balanced accuracy: the last 4 blocks" in out.stdout and "every block" in out.stdout
    freeze = yaml.safe_load((project.root / "params.yaml").read_text())["train"]["freeze"]
    assert freeze in ({"unfreeze_last": 4}, "none")
    project.run("dvc", "repro")
    spec = json.loads((project.root / "models" / "model.json").read_text())
    assert spec["name"] == "efficientnet_lite0" and spec["image_size"] == 64
    assert json.loads((project.root / "metrics.json").read_text())["test"]["balanced_accuracy"] >= 0.8
