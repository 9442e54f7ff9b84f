"""The training loop on real digits: optimisers, schedules, early stopping, resume, sampling."""

import numpy as np
import pytest
import torch

from imgpipe.models.factory import create_model
from imgpipe.models.inference import predict_proba
from imgpipe.params.train import DeviceAugmentConfig
from imgpipe.train.checkpoint import Checkpoint
from imgpipe.train.data import augment_batch, epoch_order
from model_helpers import CPU, digits_spec, seeded_model, spec, train, train_cfg


@pytest.mark.parametrize("optimizer", ["adam", "adamw", "sgd", "rmsprop"])
def test_training_learns_real_digits(digits_small, optimizer):
    images, labels = digits_small
    lr = 0.05 if optimizer == "sgd" else 0.003
    model = create_model(digits_spec())
    result = train(
        model,
        (images[:240], labels[:240]),
        (images[240:], labels[240:]),
        train_cfg(optimizer=optimizer, lr=lr, epochs=6, nesterov=optimizer == "sgd"),
    )
    assert result.history[-1].train_loss < result.history[0].train_loss
    assert max(r.val_accuracy for r in result.history) > 0.5  # chance is 0.1
    probs = predict_proba(model, images[240:], 16, CPU)
    assert probs.shape == (60, 10) and np.allclose(probs.sum(1), 1, atol=1e-5)


@pytest.mark.parametrize(
    "scheduler",
    [
        {"name": "cosine", "warmup_epochs": 1},
        {"name": "step", "step_size": 1, "gamma": 0.5},
        {"name": "onecycle"},
        {"name": "plateau", "patience": 0, "gamma": 0.5},
    ],
)
def test_schedulers_move_the_learning_rate(digits_small, scheduler):
    images, labels = digits_small
    result = train(
        create_model(digits_spec()),
        (images[:200], labels[:200]),
        (images[200:], labels[200:]),
        train_cfg(epochs=3, scheduler=scheduler, label_smoothing=0.1, grad_clip_norm=1.0),
    )
    lrs = [r.lr for r in result.history]
    assert len(set(lrs)) > 1 or scheduler["name"] == "plateau"
    if scheduler["name"] == "step":
        assert lrs == pytest.approx([0.003, 0.0015, 0.00075])  # the rate each epoch trained at
    if scheduler["name"] == "cosine":
        assert lrs[-1] < 1e-6  # decayed to zero at the last step


def test_early_stopping_stops_and_restores_the_best_epoch(digits_small, tmp_path):
    images, labels = digits_small
    data = ((images[:200], labels[:200]), (images[200:], labels[200:]))
    model = seeded_model(digits_spec())
    # A huge learning rate makes val loss worse after the first epochs.
    cfg = train_cfg(
        epochs=12, lr=0.3, optimizer="sgd", early_stopping={"metric": "val_loss", "patience": 2, "restore_best": True}
    )
    result = train(model, *data, cfg, checkpoint=Checkpoint(tmp_path, "fp"))
    losses = [r.val_loss for r in result.history]
    assert result.best_epoch == int(np.argmin(losses)) + 1
    assert result.stopped_early, "this setting should stop early; the test needs a stop to check resuming"
    assert len(losses) == result.best_epoch + 2
    best = predict_proba(model, images[200:], 64, CPU)
    loss = -np.log(best[np.arange(len(best)), labels[200:]] + 1e-12).mean()
    assert loss == pytest.approx(min(losses), rel=1e-3)  # the restored weights are the best epoch's

    # Resumed before its model was saved, an early-stopped run trains no further.
    resumed = train(create_model(digits_spec()), *data, cfg, resume=Checkpoint(tmp_path, "fp").load())
    assert resumed.epoch_seconds == [] and resumed.stopped_early and len(resumed.history) == len(losses)


def test_same_seed_same_history(digits_small):
    images, labels = digits_small
    opts = {"filters": [4, 8], "kernel_size": 3, "padding": "same"}
    runs = [
        train(
            seeded_model(digits_spec("base_cnn", opts)),
            (images[:200], labels[:200]),
            (images[200:], labels[200:]),
            train_cfg(model="base_cnn", epochs=2, dropout=0.3, device_augment={"hflip": True, "crop_padding": 1}),
        ).history
        for _ in range(2)
    ]
    assert [r.as_dict() for r in runs[0]] == [r.as_dict() for r in runs[1]]


@pytest.mark.parametrize("online", [False, True])
def test_training_from_disk_equals_training_from_memory(digits_small, tmp_path, online):
    from imgpipe.store.dataset import Split, make_manifest, read_split, write_dataset

    images, labels = digits_small
    classes = [str(i) for i in range(10)]
    splits = {
        name: Split(
            images[rows],
            make_manifest(
                ids=[str(i) for i in rows],
                labels=labels[rows],
                classes=classes,
                split=name,
                sha256=["-"] * len(rows),
                origin="original",
            ),
        )
        for name, rows in (("train", np.arange(200)), ("val", np.arange(200, 300)))
    }
    write_dataset(tmp_path / "data", classes, splits)
    on_disk = {name: read_split(tmp_path / "data", name) for name in splits}
    assert not isinstance(on_disk["train"].images, np.ndarray)  # read batch by batch, never whole
    cfg = train_cfg(
        model="base_cnn",
        epochs=2,
        mix={"mixup_alpha": 0.4, "p": 0.5},
        workers=0,
        device_augment={"hflip": True, "crop_padding": 1},
    )
    pipeline = None
    if online:
        from imgpipe.augment.pipeline import build_pipeline

        pipeline = build_pipeline([{"HorizontalFlip": {"p": 0.5}}], seed=0)
    opts = {"filters": [4, 8], "kernel_size": 3, "padding": "same"}
    runs = []
    for source in (splits, on_disk):
        model = seeded_model(digits_spec("base_cnn", opts))
        result = train(
            model,
            (source["train"].images, source["train"].labels),
            (source["val"].images, source["val"].labels),
            cfg,
            augment=pipeline,
        )
        runs.append(([r.as_dict() for r in result.history], {k: v.tolist() for k, v in model.state_dict().items()}))
    assert runs[0] == runs[1]


# regularised: Mixup and CutMix, a weight average, focal loss and re-weighting from epoch 3,
# each with state or random draws a resumed run must get back exactly.
REGULARISED = {
    "mix": {"mixup_alpha": 0.4, "cutmix_alpha": 1.0, "p": 0.8},
    "ema": {"decay": 0.9},
    "loss": "focal",
    "drw_epoch": 3,
}


@pytest.mark.parametrize("online, regularised", [(False, False), (True, False), (False, True)])
def test_resuming_from_a_checkpoint_ends_where_an_uninterrupted_run_ends(digits_small, tmp_path, online, regularised):
    from imgpipe.augment.pipeline import build_pipeline

    images, labels = digits_small
    cfg = train_cfg(
        epochs=4,
        dropout=0.3,
        scheduler={"name": "cosine", "warmup_epochs": 1},
        device_augment={"hflip": True, "crop_padding": 1},
        **(REGULARISED if regularised else {}),
    )
    data = dict(train_split=(images[:200], labels[:200]), val_split=(images[200:], labels[200:]), cfg=cfg)
    pipeline = lambda: build_pipeline([{"Affine": {"rotate": [-10, 10], "p": 1.0}}], seed=0) if online else None  # noqa: E731

    whole = seeded_model(digits_spec())
    expected = train(whole, **data, augment=pipeline()).history

    # Interrupted: only two epochs ran (the checkpoint says so), then a fresh process resumes.
    checkpoint = Checkpoint(tmp_path, "fp")
    partial = seeded_model(digits_spec())
    try:
        train(partial, **data, augment=pipeline(), checkpoint=checkpoint, on_epoch=lambda r, s: _stop_after(r, 2))
    except _Killed:
        pass
    state = checkpoint.load()
    assert state is not None and len(state["history"]) == 2 and not state["complete"]
    resumed_model = create_model(digits_spec())  # any weights: the checkpoint replaces them
    resumed = train(resumed_model, **data, augment=pipeline(), checkpoint=checkpoint, resume=state)
    assert resumed.resumed_from == 2
    assert [r.as_dict() for r in resumed.history] == [r.as_dict() for r in expected]
    for key, value in whole.state_dict().items():
        assert torch.equal(value, resumed_model.state_dict()[key]), key
    # Trained to the end but not yet saved: resuming trains nothing more and ends the same.
    finished = checkpoint.load()
    assert finished is not None and len(finished["history"]) == 4
    again_model = create_model(digits_spec())
    again = train(again_model, **data, augment=pipeline(), checkpoint=checkpoint, resume=finished)
    assert again.epoch_seconds == [] and [r.as_dict() for r in again.history] == [r.as_dict() for r in expected]
    assert all(torch.equal(v, again_model.state_dict()[k]) for k, v in whole.state_dict().items())
    checkpoint.mark_complete()  # as the stage does once the model is saved
    saved = checkpoint.load()  # complete: a rerun writes this model out again, it trains nothing
    assert saved["complete"] and saved["history"] == finished["history"]
    kept_model = create_model(digits_spec())
    kept = train(kept_model, **data, augment=pipeline(), checkpoint=checkpoint, resume=saved)
    assert kept.epoch_seconds == [] and all(
        torch.equal(v, kept_model.state_dict()[k]) for k, v in whole.state_dict().items()
    )
    assert Checkpoint(tmp_path, "other params").load() is None


class _Killed(Exception):
    pass


def _stop_after(result, epoch: int) -> None:
    if result.epoch == epoch:
        raise _Killed  # as if killed right after epoch 2's checkpoint was written


def test_device_augment_flips_and_crops_each_image_on_its_own():
    x = torch.arange(2 * 4 * 4, dtype=torch.uint8).view(2, 4, 4, 1).repeat(8, 1, 1, 1)
    out = augment_batch(x, DeviceAugmentConfig(hflip=True, crop_padding=0), torch.Generator().manual_seed(0))
    flipped = [torch.equal(o, i.flip(1)) for o, i in zip(out, x)]
    assert 0 < sum(flipped) < len(x) and all(f or torch.equal(o, i) for f, o, i in zip(flipped, out, x))
    crop = augment_batch(x, DeviceAugmentConfig(hflip=False, crop_padding=2), torch.Generator().manual_seed(0))
    assert crop.shape == x.shape and crop.dtype == torch.uint8 and not torch.equal(crop, x)


def test_weighted_sampler_draws_rare_classes_as_often_as_common_ones():
    labels = torch.tensor([0] * 90 + [1] * 10)
    weights = torch.tensor([100 / 180, 100 / 20], dtype=torch.float64)[labels]
    order = epoch_order(100, torch.Generator().manual_seed(0), weights)
    drawn = torch.bincount(labels[order], minlength=2).tolist()
    assert 30 <= drawn[1] <= 70  # about half, against 10 without weights
    assert sorted(epoch_order(100, torch.Generator().manual_seed(0), None).tolist()) == list(range(100))


@pytest.mark.parametrize("workers", [0, 2])
def test_online_augmentation_and_class_weights_train_reproducibly(digits_small, workers):
    from imgpipe.augment.pipeline import build_pipeline

    images, labels = digits_small
    runs = []
    for _ in range(2):
        pipeline = build_pipeline([{"Affine": {"rotate": [-10, 10], "p": 1.0}}], seed=0)
        runs.append(
            train(
                seeded_model(digits_spec()),
                (images[:200], labels[:200]),
                (images[200:], labels[200:]),
                train_cfg(epochs=2, workers=workers),
                augment=pipeline,
                loss_weights=[1.0] * 9 + [3.0],
            ).history
        )
    assert [r.as_dict() for r in runs[0]] == [r.as_dict() for r in runs[1]]
    assert runs[0][-1].train_loss < runs[0][0].train_loss


def test_test_time_augmentation_averages_an_image_and_its_mirror():
    model = create_model(spec("simple_cnn", {"filters": 4, "kernel_size": 3, "dense_units": 8}, size=16)).eval()
    images = np.random.default_rng(0).integers(0, 256, (5, 16, 16, 1), dtype=np.uint8)
    plain = predict_proba(model, images, 4, CPU)
    mirrored = predict_proba(model, images[:, :, ::-1].copy(), 4, CPU)
    assert np.allclose(predict_proba(model, images, 4, CPU, tta=True), (plain + mirrored) / 2, atol=1e-6)


def test_validation_scores_match_sklearn_even_when_a_class_is_missing():
    from sklearn.metrics import balanced_accuracy_score

    from imgpipe.train.loop import evaluate

    class Fixed(torch.nn.Module):  # "predicts" the logits stored as the image's pixels
        def forward(self, x):
            return x.float().flatten(1)

    logits = torch.tensor([[9, 0, 0], [0, 9, 0], [0, 0, 9], [9, 0, 0], [0, 0, 9]], dtype=torch.uint8)
    labels = torch.tensor([0, 1, 1, 0, 0])  # class 2 is predicted but never true
    loss, accuracy, balanced = evaluate(Fixed(), logits, labels, batch_size=2)
    assert accuracy == pytest.approx(3 / 5)
    assert (
        balanced
        == pytest.approx(balanced_accuracy_score(labels, logits.argmax(1)))
        == pytest.approx((2 / 3 + 1 / 2) / 2)
    )
    assert loss > 0


def test_channel_statistics_in_chunks_equal_the_whole_array_at_once():
    from imgpipe.train.data import channel_stats

    rng = np.random.default_rng(0)
    for n, chunk in ((1, 4), (37, 5), (300, 4096)):
        images = rng.integers(0, 256, (n, 6, 5, 3), dtype=np.uint8)
        pixels = images.reshape(-1, 3) / 255.0
        mean, std = channel_stats(images, chunk=chunk)
        assert mean == pixels.mean(axis=0).round(6).tolist() and std == pixels.std(axis=0).round(6).tolist()
    assert channel_stats(np.full((4, 2, 2, 1), 9, np.uint8))[1] == [1.0]  # no spread: divide by 1, not 0


def test_the_checkpoint_fingerprint_covers_the_train_stages_code_and_nothing_else(tmp_path):
    from imgpipe.train.checkpoint import code_digest

    (tmp_path / "stages").mkdir()
    (tmp_path / "src").mkdir()
    (tmp_path / "dvc.yaml").write_text(
        "stages:\n  train:\n    deps: [stages/train.py, src, data/augment]\n  evaluate:\n    deps: [stages/evaluate.py]\n"
    )
    for name in ("stages/train.py", "stages/evaluate.py", "src/loop.py"):
        (tmp_path / name).write_text("x = 1\n")
    before = code_digest(tmp_path)
    (tmp_path / "stages" / "evaluate.py").write_text("x = 2\n")  # not train's code
    (tmp_path / "src" / "notes.txt").write_text("not code")
    assert code_digest(tmp_path) == before
    (tmp_path / "src" / "loop.py").write_text("x = 2\n")
    assert code_digest(tmp_path) != before
