import numpy as np
import pytest
import torch

from imgpipe.config import TrainConfig
from imgpipe.models import ModelSpec, build_model, predict_proba
from imgpipe.training import Balancing, epoch_order, fit


def spec(name: str, options: dict, channels: int = 1, size: int = 32) -> ModelSpec:
    return ModelSpec(name=name, options=options, classes=list("abc"), image_size=size, channels=channels)


@pytest.mark.parametrize("name, options", [
    ("simple_cnn", {"filters": 32, "kernel_size": 3, "dense_units": 128}),
    ("base_cnn", {"filters": [4, 8, 16], "kernel_size": 7, "padding": "same"}),
    ("base_cnn", {"filters": [8, 16], "kernel_size": 3, "padding": "valid"}),
])
@pytest.mark.parametrize("channels", [1, 3])
def test_models_take_stored_uint8_images(name, options, channels):
    model = build_model(spec(name, options, channels))
    images = torch.randint(0, 256, (5, 32, 32, channels), dtype=torch.uint8)
    assert model(images).shape == (5, 3)


def test_simple_cnn_is_the_classic_layout():
    net = build_model(spec("simple_cnn", {"filters": 32, "kernel_size": 3, "dense_units": 128})).net
    convs = [m for m in net.modules() if isinstance(m, torch.nn.Conv2d)]
    linears = [m for m in net.modules() if isinstance(m, torch.nn.Linear)]
    assert [(c.out_channels, c.kernel_size) for c in convs] == [(32, (3, 3))]
    assert [l.out_features for l in linears] == [128, 3]


def test_too_many_poolings_for_the_image_size_is_a_clear_error():
    with pytest.raises(ValueError, match="shrink"):
        build_model(spec("base_cnn", {"filters": [4] * 6, "kernel_size": 3, "padding": "same"}, size=16))


def _train_cfg(**kw) -> TrainConfig:
    base = dict(model="simple_cnn", simple_cnn={"filters": 8, "kernel_size": 3, "dense_units": 32},
                base_cnn={"filters": [4, 8], "kernel_size": 3, "padding": "same"}, optimizer="adam", lr=0.003,
                weight_decay=0.0, momentum=0.9, epochs=4, batch_size=32, seed=0, device="cpu",
                augment_online=False, workers=0)
    return TrainConfig(**{**base, **kw})


@pytest.mark.parametrize("optimizer", ["adam", "adamw", "sgd", "rmsprop"])
def test_training_learns_real_digits(digits_small, optimizer):
    images, labels = digits_small
    s = ModelSpec(name="simple_cnn", options={"filters": 8, "kernel_size": 3, "dense_units": 32},
                  classes=[str(i) for i in range(10)], image_size=8, channels=1)
    lr = 0.05 if optimizer == "sgd" else 0.003
    model = build_model(s)
    history = fit(model, (images[:240], labels[:240]), (images[240:], labels[240:]),
                  _train_cfg(optimizer=optimizer, lr=lr, epochs=6), torch.device("cpu"))
    assert history[-1].train_loss < history[0].train_loss
    assert history[-1].val_accuracy > 0.5  # chance is 0.1
    probs = predict_proba(model, images[240:], 16, torch.device("cpu"))
    assert probs.shape == (60, 10) and np.allclose(probs.sum(1), 1, atol=1e-5)


def test_same_seed_same_history(digits_small):
    images, labels = digits_small
    s = ModelSpec(name="base_cnn", options={"filters": [4, 8], "kernel_size": 3, "padding": "same"},
                  classes=[str(i) for i in range(10)], image_size=8, channels=1)
    runs = []
    for _ in range(2):
        torch.manual_seed(0)
        runs.append(fit(build_model(s), (images[:200], labels[:200]), (images[200:], labels[200:]),
                        _train_cfg(model="base_cnn", epochs=2), torch.device("cpu")))
    assert [r.as_dict() for r in runs[0]] == [r.as_dict() for r in runs[1]]


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
    s = ModelSpec(name="simple_cnn", options={"filters": 8, "kernel_size": 3, "dense_units": 32},
                  classes=[str(i) for i in range(10)], image_size=8, channels=1)
    balancing = Balancing(loss_weights=[1.0] * 9 + [3.0])
    runs = []
    for _ in range(2):
        pipeline = build_pipeline([{"Affine": {"rotate": [-10, 10], "p": 1.0}}], seed=0)
        runs.append(fit(build_model(s), (images[:200], labels[:200]), (images[200:], labels[200:]),
                        _train_cfg(epochs=2, workers=workers), torch.device("cpu"), balancing=balancing, augment=pipeline))
    assert [r.as_dict() for r in runs[0]] == [r.as_dict() for r in runs[1]]
    assert runs[0][-1].train_loss < runs[0][0].train_loss
