"""`imgpipe init FOLDER`: a profile of the folder, choices with reasons, params.yaml kept readable."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from PIL import Image

from helpers import copy_project, write_digit_folder
from imgpipe.errors import ImgpipeError
from imgpipe.init.candidates import architectures, losses
from imgpipe.init.profile import profile_folder
from imgpipe.init.recipe import choose

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
    assert photos["train.freeze"] == {"unfreeze_last": 2} and photos["train.device_augment"]["hflip"]
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
    # The full run keeps the last epoch, the one the trial scores, whatever the recipe.
    write_digit_folder(tmp_path / "digits", per_class=8)
    for chosen in (even, skewed, values(choose(profile_folder(tmp_path / "digits"), "x"))):
        assert chosen["train.early_stopping"]["restore_best"] is False
        assert chosen["train.early_stopping"]["patience"] == 0
    assert 10 <= even["train.epochs"] <= 30


def test_the_trial_compares_four_ways_of_learning_and_three_ways_to_meet_the_imbalance(tmp_path):
    write_photos(tmp_path / "photos", {"a": 60, "b": 8}, size=(120, 100))
    profile = profile_folder(tmp_path / "photos")
    ways = architectures(profile)
    learned = [(c.value("train.pretrained"), c.value("train.freeze"), c.image_size) for c in ways]
    assert learned == [
        (True, {"unfreeze_last": 2}, 224),
        (False, "none", 64),
        (True, "none", 224),
        (True, "backbone", 224),
    ]
    assert [c.kind for c in ways] == ["transfer", "scratch", "transfer", "transfer"]
    assert ways[1].value("train.model") == "base_cnn" and ways[1].value("train.device_augment")["crop_padding"]
    assert architectures(profile_folder(tmp_path / "photos"), image_size=160)[0].image_size == 160
    write_digit_folder(tmp_path / "digits", per_class=8)
    assert architectures(profile_folder(tmp_path / "digits"))[0].kind == "scratch"  # the rule's own first
    imbalance = [(c.value("balance.method"), c.value("train.loss"), c.posthoc_tau) for c in losses(ways[3], profile)]
    assert imbalance == [
        ("none", "balanced_softmax", 0.0),
        ("weighted_sampler", "cross_entropy", 0.0),
        ("none", "cross_entropy", 1.0),
    ]
    assert losses(ways[3], profile)[0].name == ways[3].name


def fake_trial(monkeypatch, tmp_path, counts: dict[str, int], scores: dict[tuple, list[float]]):
    """``measure`` with the training replaced: ``scores`` by (model, freeze, loss, balanced
    batches, post-hoc tau); a CNN from scratch trains 10x faster than a backbone."""
    from imgpipe.init import measure
    from imgpipe.init.params_file import updated_params
    from imgpipe.init.profile import FolderProfile
    from imgpipe.init.trial import TrialData

    labels = np.repeat(np.arange(len(counts)), 30)
    rows = np.arange(len(labels))
    folds = tuple((rows[rows % 3 != k], rows[rows % 3 == k]) for k in range(3))
    data = TrialData(np.zeros((len(labels), 8, 8, 1), np.uint8), labels, list(counts), folds)
    profile = FolderProfile(tmp_path, counts, False, sum(counts.values()), 10, 100, 120, False)
    params = yaml.safe_load(updated_params(Path(__file__).parents[1] / "params.yaml", choose(profile, "x")))
    calls = []

    def train_fold(cfg, data, fold, root, balanced, posthoc_tau, on_epoch, cache):
        calls.append((cfg.model, cfg.epochs))
        return scores[(cfg.model, str(cfg.freeze), cfg.loss, balanced, posthoc_tau)][fold], 1.0

    monkeypatch.setattr(measure, "trial_data", lambda ingest, root: data)
    monkeypatch.setattr(measure, "feature_cache", lambda cfg, data, root: None)  # every candidate on images
    monkeypatch.setattr(measure, "images_per_second", lambda cfg, *_, **__: 200.0 if cfg.model == "base_cnn" else 20.0)
    monkeypatch.setattr(measure, "train_fold", train_fold)
    return measure, profile, params, calls


def test_the_best_mean_over_folds_wins_and_every_candidate_trains_for_the_same_time(monkeypatch, tmp_path):
    lite = "efficientnet_lite0"
    scores = {
        ("base_cnn", "none", "balanced_softmax", False, 0.0): [0.9, 0.6, 0.9],  # best on two folds of three
        (lite, "unfreeze_last=2", "balanced_softmax", False, 0.0): [0.8, 0.8, 0.8],
        (lite, "none", "balanced_softmax", False, 0.0): [0.5, 0.5, 0.5],
        (lite, "backbone", "balanced_softmax", False, 0.0): [0.7, 0.7, 0.7],
        (lite, "unfreeze_last=2", "cross_entropy", True, 0.0): [0.7, 0.7, 0.7],
        (lite, "unfreeze_last=2", "cross_entropy", False, 1.0): [0.85, 0.85, 0.9],
    }
    measure, profile, params, calls = fake_trial(monkeypatch, tmp_path, {"a": 60, "b": 6}, scores)
    results, best, _ = measure.measure(profile, params, tmp_path, budget_minutes=4)
    assert len(results) == 6 and len(calls) == 18  # 4 ways and 2 more losses (ratio 10), on 3 folds each
    assert best.candidate.name.endswith("logits adjusted after training") and best.candidate.posthoc_tau == 1.0
    epochs = {model: {e for m, e in calls if m == model} for model, _ in calls}
    assert len(epochs["base_cnn"]) == len(epochs[lite]) == 1  # the same epochs on every fold
    scratch, transfer = epochs["base_cnn"].pop(), epochs[lite].pop()
    assert transfer >= 2 and 9 * transfer <= scratch <= 11 * transfer  # ten times as fast: ten times the epochs
    table = measure.table(results, best)
    assert len(table) == 7 and table[-1].endswith("<- chosen") and "0.800 +/- 0.000" in table[1]
    assert "0.800 +/- 0.173" in table[2]  # level on the mean with the rule's own, which is kept
    epochs_choice = measure.full_epochs(best, profile, 600)
    assert 10 <= epochs_choice.value <= 30 and "20 images/s measured here" in epochs_choice.reason


def test_a_lead_within_one_standard_error_keeps_the_default(monkeypatch, tmp_path):
    lite, loss = "efficientnet_lite0", ("balanced_softmax", False, 0.0)
    # brain-mri seed 0's folds: the probe 0.004 ahead of the rule's own last 2 blocks, fold sd 0.023.
    scores = {
        (lite, "unfreeze_last=2", *loss): [0.848, 0.887, 0.828],
        (lite, "backbone", *loss): [0.840, 0.884, 0.850],
        ("base_cnn", "none", *loss): [0.768, 0.722, 0.762],
        (lite, "none", *loss): [0.551, 0.603, 0.542],
    }
    measure, profile, params, _ = fake_trial(monkeypatch, tmp_path, {"a": 40, "b": 25}, scores)
    results, best, _ = measure.measure(profile, params, tmp_path, budget_minutes=3)
    assert best.candidate.value("train.freeze") == {"unfreeze_last": 2} and best.folds == results[0].folds
    why = best.why
    assert "0.004 behind the best, linear probe" in why and "within one standard error of that lead (0.009)" in why
    assert measure.table(results, best)[1].endswith("<- chosen")
    scores[(lite, "backbone", *loss)] = [0.880, 0.900, 0.890]  # a lead beyond its standard error wins
    results, best, _ = measure.measure(profile, params, tmp_path, budget_minutes=3)
    assert best.candidate.value("train.freeze") == "backbone"
    assert best.why.startswith(f"{best.candidate.name} had the best mean") and "(next: " in best.why


def test_frozen_blocks_are_paid_for_once_and_buy_their_candidate_more_epochs(monkeypatch, tmp_path):
    from imgpipe.init.features import FeatureCache

    lite = "efficientnet_lite0"
    scores = {
        (m, f, "balanced_softmax", False, 0.0): [0.5, 0.5, 0.5]
        for m, f in [("base_cnn", "none"), (lite, "none"), (lite, "unfreeze_last=2"), (lite, "backbone")]
    }
    measure, profile, params, calls = fake_trial(monkeypatch, tmp_path, {"a": 40, "b": 10}, scores)
    cost = {"backbone": 1.0, "2": 3000.0}  # seconds to cache: the probe's is cheap, the fine-tune's more than its time
    caches = []

    def feature_cache(cfg, data, root):
        if cfg.unfrozen_blocks == "none":
            return None
        caches.append(cfg.unfrozen_blocks)
        return FeatureCache(torch.zeros(2, 90, 4), 9, cost[str(cfg.unfrozen_blocks)])

    monkeypatch.setattr(measure, "feature_cache", feature_cache)
    # On cached features, training is ten times as fast as on images.
    monkeypatch.setattr(
        measure, "images_per_second", lambda cfg, *_, cache=None: 200.0 if cache or cfg.model == "base_cnn" else 20.0
    )
    results, _, _ = measure.measure(profile, params, tmp_path, budget_minutes=3)
    epochs = {str(m.candidate.value("train.freeze")): m.epochs for m in results if m.candidate.kind == "transfer"}
    assert sorted(map(str, caches)) == ["2", "backbone"]  # each once, though used on three folds
    assert epochs["backbone"] >= 9 * epochs["none"] and epochs["none"] >= measure.MIN_EPOCHS
    assert epochs[str({"unfreeze_last": 2})] == measure.MIN_EPOCHS  # its cache took all its time: the floor
    assert {m.rate for m in results if m.candidate.kind == "transfer"} == {20.0}  # the full run's speed, shown


def test_the_trial_is_kept_under_reports_as_a_table_and_a_picture(monkeypatch, tmp_path):
    import pandas as pd

    from imgpipe.init.trial_record import save_trial

    scores = {
        key: score
        for key, score in zip(
            [
                (m, f, "balanced_softmax", False, 0.0)
                for m, f in [
                    ("base_cnn", "none"),
                    ("efficientnet_lite0", "none"),
                    ("efficientnet_lite0", "unfreeze_last=2"),
                    ("efficientnet_lite0", "backbone"),
                ]
            ],
            ([0.4, 0.5, 0.6], [0.9, 0.8, 0.7], [0.5, 0.5, 0.5], [0.6, 0.6, 0.6]),
        )
    }
    measure, profile, params, _ = fake_trial(monkeypatch, tmp_path, {"a": 40, "b": 10}, scores)
    results, best, _ = measure.measure(profile, params, tmp_path, budget_minutes=3)
    csv, png = save_trial(tmp_path, results, best)
    table = pd.read_csv(csv)
    assert len(table) == 4 and table["chosen"].sum() == 1
    chosen = table[table["chosen"]].iloc[0]
    assert chosen["candidate"] == best.candidate.name and chosen["val_balanced_accuracy_mean"] == pytest.approx(0.8)
    assert [chosen[f"fold_{i}"] for i in (1, 2, 3)] == pytest.approx([0.9, 0.8, 0.7])
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and Image.open(png).size[1] > 100


def test_the_loss_is_tried_only_when_the_imbalance_is_large(monkeypatch, tmp_path):
    scores = {
        key: [0.5, 0.5, 0.5]
        for key in [
            (m, f, "balanced_softmax", False, 0.0)
            for m, f in [
                ("base_cnn", "none"),
                ("efficientnet_lite0", "none"),
                ("efficientnet_lite0", "unfreeze_last=2"),
                ("efficientnet_lite0", "backbone"),
            ]
        ]
    }
    measure, profile, params, calls = fake_trial(monkeypatch, tmp_path, {"a": 40, "b": 10}, scores)
    results, best, _ = measure.measure(profile, params, tmp_path, budget_minutes=3)
    assert len(results) == 4 and len(calls) == 12
    assert best.candidate.name == results[0].candidate.name  # a tie keeps the rule's own


@pytest.mark.slow
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


@pytest.mark.slow
def test_init_turns_off_what_an_earlier_experiment_left_on(tmp_path):
    project = copy_project(tmp_path / "proj")
    write_photos(project.root / "raw" / "pets", {"cat": 30, "dog": 8})
    project.set_params(
        {
            "ingest": {"long_tail": "all"},
            "train": {"loss": "ldam", "drw_epoch": 3, "ema": {"decay": 0.9}},
            "evaluate": {"logit_adjustment": 1.0},
        }
    )
    out = project.run(IMGPIPE, "init", "raw/pets", "--no-trial")
    params = yaml.safe_load((project.root / "params.yaml").read_text())
    assert params["ingest"]["long_tail"] == "builtin" and params["train"]["drw_epoch"] == 0
    assert params["train"]["ema"]["decay"] == 0.0 and params["train"]["loss"] == "balanced_softmax"
    assert params["evaluate"]["logit_adjustment"] == 0.0  # balanced softmax corrects the prior already
    assert "not part of this recipe; was 1.0" in out.stdout and "train.mix" not in out.stdout  # only what changes


@pytest.mark.slow
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
    out = project.run(IMGPIPE, "init", "raw/pets", "--budget-minutes", "0", check=False)
    assert out.returncode == 2 and "--budget-minutes 0 is out of range" in out.stderr
    assert (project.root / "params.yaml").read_text() == before


@pytest.mark.slow
def test_dvc_repro_after_init_learns_small_gray_images_with_a_cnn_from_scratch(tmp_path):
    project = copy_project(tmp_path / "proj")
    write_digit_folder(project.root / "raw" / "digits", per_class=12)
    out = project.run(IMGPIPE, "init", "raw/digits", "--no-trial").stdout
    assert "a rule-of-thumb guess" in out and "init: trial" not in out
    project.run("dvc", "repro")
    spec = json.loads((project.root / "models" / "model.json").read_text())
    assert spec["name"] == "base_cnn" and spec["channels"] == 1
    metrics = json.loads((project.root / "metrics.json").read_text())
    assert metrics["test"]["balanced_accuracy"] >= 0.6  # chance is 0.33


@pytest.mark.slow
def test_dvc_repro_after_init_fine_tunes_efficientnet_on_photos(tmp_path):
    project = copy_project(tmp_path / "proj")
    write_photos(project.root / "raw" / "tints", {"red": 48, "green": 24})
    out = project.run(IMGPIPE, "init", "raw/tints", "--image-size", "64", "--budget-minutes", "1").stdout
    # Four ways of learning were tried on folds of ingest's train and val splits, and the table says so.
    rows = [line for line in out.splitlines() if line.endswith(tuple("0123456789")) or line.endswith("<- chosen")]
    assert [row.split(",")[0].strip() for row in rows] == [
        "EfficientNet-Lite0",
        "CNN from scratch",
        "EfficientNet-Lite0",
        "linear probe on EfficientNet-Lite0",
    ], out
    assert sum(row.endswith("<- chosen") for row in rows) == 1 and "init: chose " in out
    params = yaml.safe_load((project.root / "params.yaml").read_text())
    chosen = next(row for row in rows if row.endswith("<- chosen"))
    assert params["train"]["model"] == ("base_cnn" if "scratch" in chosen else "efficientnet_lite0")
    kept = (project.root / "reports" / "init_trial.csv").read_text().splitlines()
    assert len(kept) == 5 and chosen.strip().split("  ")[0] in next(r for r in kept if r.endswith(",True"))
    project.run("dvc", "repro")
    spec = json.loads((project.root / "models" / "model.json").read_text())
    assert spec["name"] == params["train"]["model"] and spec["image_size"] == params["ingest"]["image_size"]
    assert json.loads((project.root / "metrics.json").read_text())["test"]["balanced_accuracy"] >= 0.8
