"""Models and the training loop, on real digits: architectures, transfer, freezing, the loop's options."""

import numpy as np
import pytest
import torch
import yaml

from conftest import REPO
from imgpipe.checkpoints import Checkpoint
from imgpipe.config import TrainConfig
from imgpipe.errors import ImgpipeError
from imgpipe.models import (
    BACKBONES, ModelSpec, apply_freeze, build_model, load_backbone_state, load_pretrained, load_weights_file,
    parameter_groups, predict_proba,
)
from imgpipe.training import Balancing, augment_batch, epoch_order, fit
from imgpipe.config import DeviceAugmentConfig

CPU = torch.device("cpu")


def spec(name: str, options: dict, channels: int = 1, size: int = 32, classes: int = 3) -> ModelSpec:
    return ModelSpec(name=name, options=options, classes=[f"c{i}" for i in range(classes)], image_size=size, channels=channels)


def train_cfg(**changes) -> TrainConfig:
    """The shipped params.yaml train section, with test-sized changes."""
    base = yaml.safe_load((REPO / "params.yaml").read_text())["train"]
    base.update(simple_cnn={"filters": 8, "kernel_size": 3, "dense_units": 32}, base_cnn={"filters": [4, 8], "kernel_size": 3, "padding": "same"},
                lr=0.003, epochs=4, batch_size=32, seed=0, device="cpu", workers=0)
    return TrainConfig(**{**base, **changes})


def seeded_model(model_spec: ModelSpec):
    """Built after seeding, as the train stage does, so repeated runs start from the same weights."""
    torch.manual_seed(0)
    return build_model(model_spec)


def digits_spec(name="simple_cnn", options=None) -> ModelSpec:
    options = options or {"filters": 8, "kernel_size": 3, "dense_units": 32}
    return ModelSpec(name=name, options=options, classes=[str(i) for i in range(10)], image_size=8, channels=1)


@pytest.mark.parametrize("name, options", [
    ("simple_cnn", {"filters": 32, "kernel_size": 3, "dense_units": 128, "dropout": 0.2}),
    ("base_cnn", {"filters": [4, 8, 16], "kernel_size": 7, "padding": "same"}),
    ("base_cnn", {"filters": [8, 16], "kernel_size": 3, "padding": "valid", "dense_units": 64, "dropout": 0.5}),
    ("base_cnn", {"filters": [8, 16], "kernel_size": 3, "padding": "same", "batch_norm": True}),
    *[(name, {}) for name in BACKBONES],
])
@pytest.mark.parametrize("channels", [1, 3])
def test_models_take_stored_uint8_images(name, options, channels):
    model = build_model(spec(name, options, channels)).eval()
    images = torch.randint(0, 256, (2, 32, 32, channels), dtype=torch.uint8)
    assert model(images).shape == (2, 3)


def test_simple_cnn_is_the_classic_layout():
    net = build_model(spec("simple_cnn", {"filters": 32, "kernel_size": 3, "dense_units": 128})).net
    convs = [m for m in net.modules() if isinstance(m, torch.nn.Conv2d)]
    linears = [m for m in net.modules() if isinstance(m, torch.nn.Linear)]
    assert [(c.out_channels, c.kernel_size) for c in convs] == [(32, (3, 3))]
    assert [l.out_features for l in linears] == [128, 3]


def test_too_many_poolings_for_the_image_size_is_a_clear_error():
    with pytest.raises(ImgpipeError, match="shrink"):
        build_model(spec("base_cnn", {"filters": [4] * 6, "kernel_size": 3, "padding": "same"}, size=16))


def test_unfreeze_last_trains_only_the_head_and_the_last_block():
    model = build_model(spec("resnet18", {}, channels=3))
    apply_freeze(model, 1)
    trainable = {name.split(".")[2] if name.startswith("net.blocks") else "head" for name, p in model.named_parameters() if p.requires_grad}
    assert trainable == {"4", "head"}  # blocks: stem, layer1..layer4 -> only layer4 (block 4)
    assert not any(p.requires_grad for p in model.net.blocks[3].parameters())
    apply_freeze(model, "backbone")
    assert not any(p.requires_grad for p in model.net.blocks.parameters())
    with pytest.raises(ImgpipeError, match="unfreeze_last: 9"):
        apply_freeze(model, 9)


def test_backbone_learns_slower_than_the_head():
    model = build_model(spec("mobilenet_v3_small", {}, channels=3))
    apply_freeze(model, 2)
    groups = {g["name"]: g for g in parameter_groups(model, lr=0.01, backbone_lr_mult=0.1)}
    assert groups["head"]["lr"] == 0.01 and groups["backbone"]["lr"] == pytest.approx(0.001)
    n_trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    assert sum(p.numel() for g in groups.values() for p in g["params"]) == n_trainable


def test_transfer_from_a_backbone_we_trained_ourselves(digits_small, tmp_path):
    """Train a base CNN on digits 0-9, save it, then start a 3-class model from its weights."""
    images, labels = digits_small
    source = build_model(digits_spec("base_cnn", {"filters": [8, 16], "kernel_size": 3, "padding": "same"}))
    fit(source, (images[:240], labels[:240]), (images[240:], labels[240:]), train_cfg(model="base_cnn", base_cnn={"filters": [8, 16], "kernel_size": 3, "padding": "same"}), CPU)
    torch.save(source.state_dict(), tmp_path / "backbone.pt")

    target = build_model(ModelSpec("base_cnn", {"filters": [8, 16], "kernel_size": 3, "padding": "same"}, ["a", "b", "c"], 8, 1))
    load_weights_file(target, tmp_path / "backbone.pt")
    for key, value in target.state_dict().items():
        if key.startswith("net.blocks."):
            assert torch.equal(value, source.state_dict()[key])
    assert target.net.head[-1].out_features == 3  # a new head for the new classes

    # Freezing, then a step: only the unfrozen block and the head move.
    apply_freeze(target, 1)
    before = {k: v.clone() for k, v in target.state_dict().items()}
    three = np.isin(labels, [0, 1, 2])
    fit(target, (images[three][:60], labels[three][:60]), (images[three][60:], labels[three][60:]),
        train_cfg(model="base_cnn", base_cnn={"filters": [8, 16], "kernel_size": 3, "padding": "same"}, epochs=1, freeze={"unfreeze_last": 1}), CPU)
    changed = {k.split(".")[1] + "." + k.split(".")[2] for k, v in target.state_dict().items() if k.startswith("net.") and not torch.equal(v, before[k])}
    assert changed == {"blocks.1", "head.2"}


def test_a_torchvision_checkpoint_loads_by_position_and_a_wrong_one_is_named(tmp_path):
    import torchvision

    reference = torchvision.models.resnet18(num_classes=1000)
    torch.save(reference.state_dict(), tmp_path / "resnet18.pth")
    model = build_model(spec("resnet18", {}, channels=3))
    load_weights_file(model, tmp_path / "resnet18.pth")
    assert torch.equal(model.net.blocks[4][1].conv2.weight, reference.layer4[1].conv2.weight)

    torch.save(torchvision.models.mobilenet_v3_small().state_dict(), tmp_path / "mobilenet.pth")
    with pytest.raises(ImgpipeError, match="mobilenet.pth does not fit"):
        load_weights_file(model, tmp_path / "mobilenet.pth")
    with pytest.raises(ImgpipeError, match="train.weights_path: .*missing.pt does not exist"):
        load_weights_file(model, tmp_path / "missing.pt")


def test_offline_torchvision_weights_error_names_the_file_and_folder(monkeypatch, tmp_path):
    import urllib.error

    import torchvision.models._api as api

    def offline(*args, **kwargs):
        raise urllib.error.URLError("no network")

    monkeypatch.setattr(api, "load_state_dict_from_url", offline)
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    model = build_model(spec("resnet18", {}, channels=3))
    with pytest.raises(ImgpipeError) as err:
        load_pretrained(model, "resnet18", True)
    message = str(err.value)
    assert "resnet18-f37072fd.pth" in message and str(tmp_path / "torch" / "hub" / "checkpoints") in message
    assert "train.weights_path" in message
    with pytest.raises(ImgpipeError, match="IMAGENET1K_V1"):
        load_pretrained(model, "resnet18", "IMAGENET9K")


def test_efficientnet_lite0_imagenet_weights_recognise_a_temple():
    """The packaged weights, mapped by position into timm's model, see a temple as a church-like building."""
    from PIL import Image
    from sklearn.datasets import load_sample_image
    from timm.data import ImageNetInfo

    info = ImageNetInfo()
    names = [info.index_to_description(i) for i in range(1000)]
    model = build_model(ModelSpec("efficientnet_lite0", {}, names, 224, 3, [0.485, 0.456, 0.406], [0.229, 0.224, 0.225]))
    load_pretrained(model, "efficientnet_lite0", True)
    image = np.asarray(Image.fromarray(load_sample_image("china.jpg")).resize((224, 224), Image.Resampling.BILINEAR))
    proba = predict_proba(model, image[None], 1, CPU)[0]
    top3 = [names[i].split(",")[0] for i in np.argsort(-proba)[:3]]
    assert {"church", "bell cote", "palace"} & set(top3), top3
    assert proba.max() > 0.2  # confident: random weights give about 0.001


@pytest.mark.parametrize("optimizer", ["adam", "adamw", "sgd", "rmsprop"])
def test_training_learns_real_digits(digits_small, optimizer):
    images, labels = digits_small
    lr = 0.05 if optimizer == "sgd" else 0.003
    model = build_model(digits_spec())
    result = fit(model, (images[:240], labels[:240]), (images[240:], labels[240:]),
                 train_cfg(optimizer=optimizer, lr=lr, epochs=6, nesterov=optimizer == "sgd"), CPU)
    assert result.history[-1].train_loss < result.history[0].train_loss
    assert max(r.val_accuracy for r in result.history) > 0.5  # chance is 0.1
    probs = predict_proba(model, images[240:], 16, CPU)
    assert probs.shape == (60, 10) and np.allclose(probs.sum(1), 1, atol=1e-5)


@pytest.mark.parametrize("scheduler", [
    {"name": "cosine", "warmup_epochs": 1}, {"name": "step", "step_size": 1, "gamma": 0.5},
    {"name": "onecycle"}, {"name": "plateau", "patience": 0, "gamma": 0.5},
])
def test_schedulers_move_the_learning_rate(digits_small, scheduler):
    images, labels = digits_small
    result = fit(build_model(digits_spec()), (images[:200], labels[:200]), (images[200:], labels[200:]),
                 train_cfg(epochs=3, scheduler=scheduler, label_smoothing=0.1, grad_clip_norm=1.0), CPU)
    lrs = [r.lr for r in result.history]
    assert len(set(lrs)) > 1 or scheduler["name"] == "plateau"
    if scheduler["name"] == "step":
        assert lrs == pytest.approx([0.003, 0.0015, 0.00075])  # the rate each epoch trained at
    if scheduler["name"] == "cosine":
        assert lrs[-1] < 1e-6  # decayed to zero at the last step


def test_early_stopping_stops_and_restores_the_best_epoch(digits_small):
    images, labels = digits_small
    model = build_model(digits_spec())
    # A huge learning rate makes val loss worse after the first epochs.
    cfg = train_cfg(epochs=12, lr=0.05, optimizer="sgd", early_stopping={"metric": "val_loss", "patience": 2, "restore_best": True})
    result = fit(model, (images[:200], labels[:200]), (images[200:], labels[200:]), cfg, CPU)
    losses = [r.val_loss for r in result.history]
    assert result.best_epoch == int(np.argmin(losses)) + 1
    if result.stopped_early:
        assert len(losses) == result.best_epoch + 2
    best = predict_proba(model, images[200:], 64, CPU)
    loss = -np.log(best[np.arange(len(best)), labels[200:]] + 1e-12).mean()
    assert loss == pytest.approx(min(losses), rel=1e-3)  # the restored weights are the best epoch's


def test_same_seed_same_history(digits_small):
    images, labels = digits_small
    opts = {"filters": [4, 8], "kernel_size": 3, "padding": "same"}
    runs = [fit(seeded_model(digits_spec("base_cnn", opts)), (images[:200], labels[:200]), (images[200:], labels[200:]),
                train_cfg(model="base_cnn", epochs=2, dropout=0.3, device_augment={"hflip": True, "crop_padding": 1}), CPU).history
            for _ in range(2)]
    assert [r.as_dict() for r in runs[0]] == [r.as_dict() for r in runs[1]]


@pytest.mark.parametrize("online", [False, True])
def test_resuming_from_a_checkpoint_ends_where_an_uninterrupted_run_ends(digits_small, tmp_path, online):
    from imgpipe.augmentation import build_pipeline

    images, labels = digits_small
    cfg = train_cfg(epochs=4, dropout=0.3, scheduler={"name": "cosine", "warmup_epochs": 1},
                    device_augment={"hflip": True, "crop_padding": 1})
    data = dict(train=(images[:200], labels[:200]), val=(images[200:], labels[200:]), cfg=cfg, device=CPU)
    pipeline = lambda: build_pipeline([{"Affine": {"rotate": [-10, 10], "p": 1.0}}], seed=0) if online else None  # noqa: E731

    whole = seeded_model(digits_spec())
    expected = fit(whole, **data, augment=pipeline()).history

    # Interrupted: only two epochs ran (the checkpoint says so), then a fresh process resumes.
    checkpoint = Checkpoint(tmp_path, "fp")
    partial = seeded_model(digits_spec())
    try:
        fit(partial, **data, augment=pipeline(), checkpoint=checkpoint, on_epoch=lambda r, s: _stop_after(r, 2))
    except _Killed:
        pass
    state = checkpoint.load()
    assert state is not None and len(state["history"]) == 2 and not state["complete"]
    resumed_model = build_model(digits_spec())  # any weights: the checkpoint replaces them
    resumed = fit(resumed_model, **data, augment=pipeline(), checkpoint=checkpoint, resume=state)
    assert resumed.resumed_from == 2
    assert [r.as_dict() for r in resumed.history] == [r.as_dict() for r in expected]
    for key, value in whole.state_dict().items():
        assert torch.equal(value, resumed_model.state_dict()[key]), key
    assert checkpoint.load() is None  # complete: a forced rerun starts afresh
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
    from imgpipe.augmentation import build_pipeline

    images, labels = digits_small
    balancing = Balancing(loss_weights=[1.0] * 9 + [3.0])
    runs = []
    for _ in range(2):
        pipeline = build_pipeline([{"Affine": {"rotate": [-10, 10], "p": 1.0}}], seed=0)
        runs.append(fit(seeded_model(digits_spec()), (images[:200], labels[:200]), (images[200:], labels[200:]),
                        train_cfg(epochs=2, workers=workers), CPU, balancing=balancing, augment=pipeline).history)
    assert [r.as_dict() for r in runs[0]] == [r.as_dict() for r in runs[1]]
    assert runs[0][-1].train_loss < runs[0][0].train_loss


def test_test_time_augmentation_averages_an_image_and_its_mirror():
    model = build_model(spec("simple_cnn", {"filters": 4, "kernel_size": 3, "dense_units": 8}, size=16)).eval()
    images = np.random.default_rng(0).integers(0, 256, (5, 16, 16, 1), dtype=np.uint8)
    plain = predict_proba(model, images, 4, CPU)
    mirrored = predict_proba(model, images[:, :, ::-1].copy(), 4, CPU)
    assert np.allclose(predict_proba(model, images, 4, CPU, tta=True), (plain + mirrored) / 2, atol=1e-6)
