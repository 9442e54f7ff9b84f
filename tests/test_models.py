"""Models and the training loop, on real digits: architectures, transfer, freezing, the loop's options."""

import numpy as np
import pytest
import torch

from imgpipe.errors import ImgpipeError
from imgpipe.models.factory import create_model
from imgpipe.models.freeze import apply_freeze, parameter_groups
from imgpipe.models.inference import predict_proba
from imgpipe.models.pretrained import load_pretrained, load_weights_file
from imgpipe.models.spec import ModelSpec
from imgpipe.params.model_names import BACKBONES
from model_helpers import CPU, digits_spec, spec, train, train_cfg


@pytest.mark.parametrize(
    "name, options",
    [
        ("simple_cnn", {"filters": 32, "kernel_size": 3, "dense_units": 128, "dropout": 0.2}),
        ("base_cnn", {"filters": [4, 8, 16], "kernel_size": 7, "padding": "same"}),
        ("base_cnn", {"filters": [8, 16], "kernel_size": 3, "padding": "valid", "dense_units": 64, "dropout": 0.5}),
        ("base_cnn", {"filters": [8, 16], "kernel_size": 3, "padding": "same", "batch_norm": True}),
        *[(name, {}) for name in BACKBONES],
    ],
)
@pytest.mark.parametrize("channels", [1, 3])
def test_models_take_stored_uint8_images(name, options, channels):
    model = create_model(spec(name, options, channels)).eval()
    images = torch.randint(0, 256, (2, 32, 32, channels), dtype=torch.uint8)
    assert model(images).shape == (2, 3)


def test_simple_cnn_is_the_classic_layout():
    net = create_model(spec("simple_cnn", {"filters": 32, "kernel_size": 3, "dense_units": 128})).net
    convs = [m for m in net.modules() if isinstance(m, torch.nn.Conv2d)]
    linears = [m for m in net.modules() if isinstance(m, torch.nn.Linear)]
    assert [(c.out_channels, c.kernel_size) for c in convs] == [(32, (3, 3))]
    assert [layer.out_features for layer in linears] == [128, 3]


def test_too_many_poolings_for_the_image_size_is_a_clear_error():
    with pytest.raises(ImgpipeError, match="shrink"):
        create_model(spec("base_cnn", {"filters": [4] * 6, "kernel_size": 3, "padding": "same"}, size=16))


def test_unfreeze_last_trains_only_the_head_and_the_last_block():
    model = create_model(spec("resnet18", {}, channels=3))
    apply_freeze(model, 1)
    trainable = {
        name.split(".")[2] if name.startswith("net.blocks") else "head"
        for name, p in model.named_parameters()
        if p.requires_grad
    }
    assert trainable == {"4", "head"}  # blocks: stem, layer1..layer4 -> only layer4 (block 4)
    assert not any(p.requires_grad for p in model.net.blocks[3].parameters())
    apply_freeze(model, "backbone")
    assert not any(p.requires_grad for p in model.net.blocks.parameters())
    with pytest.raises(ImgpipeError, match="unfreeze_last: 9"):
        apply_freeze(model, 9)


def test_backbone_learns_slower_than_the_head():
    model = create_model(spec("mobilenet_v3_small", {}, channels=3))
    apply_freeze(model, 2)
    groups = {g["name"]: g for g in parameter_groups(model, lr=0.01, backbone_lr_mult=0.1)}
    assert groups["head"]["lr"] == 0.01 and groups["backbone"]["lr"] == pytest.approx(0.001)
    n_trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    assert sum(p.numel() for g in groups.values() for p in g["params"]) == n_trainable


def test_transfer_from_a_backbone_we_trained_ourselves(digits_small, tmp_path):
    """Train a base CNN on digits 0-9, save it, then start a 3-class model from its weights."""
    images, labels = digits_small
    source = create_model(digits_spec("base_cnn", {"filters": [8, 16], "kernel_size": 3, "padding": "same"}))
    train(
        source,
        (images[:240], labels[:240]),
        (images[240:], labels[240:]),
        train_cfg(model="base_cnn", base_cnn={"filters": [8, 16], "kernel_size": 3, "padding": "same"}),
    )
    torch.save(source.state_dict(), tmp_path / "backbone.pt")

    target = create_model(
        ModelSpec("base_cnn", {"filters": [8, 16], "kernel_size": 3, "padding": "same"}, ["a", "b", "c"], 8, 1)
    )
    load_weights_file(target, tmp_path / "backbone.pt")
    for key, value in target.state_dict().items():
        if key.startswith("net.blocks."):
            assert torch.equal(value, source.state_dict()[key])
    assert target.net.head[-1].out_features == 3  # a new head for the new classes

    # Freezing, then a step: only the unfrozen block and the head move.
    apply_freeze(target, 1)
    before = {k: v.clone() for k, v in target.state_dict().items()}
    three = np.isin(labels, [0, 1, 2])
    train(
        target,
        (images[three][:60], labels[three][:60]),
        (images[three][60:], labels[three][60:]),
        train_cfg(
            model="base_cnn",
            base_cnn={"filters": [8, 16], "kernel_size": 3, "padding": "same"},
            epochs=1,
            freeze={"unfreeze_last": 1},
        ),
    )
    changed = {
        k.split(".")[1] + "." + k.split(".")[2]
        for k, v in target.state_dict().items()
        if k.startswith("net.") and not torch.equal(v, before[k])
    }
    assert changed == {"blocks.1", "head.2"}


def test_a_torchvision_checkpoint_loads_by_position_and_a_wrong_one_is_named(tmp_path):
    import torchvision

    reference = torchvision.models.resnet18(num_classes=1000)
    torch.save(reference.state_dict(), tmp_path / "resnet18.pth")
    model = create_model(spec("resnet18", {}, channels=3))
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
    model = create_model(spec("resnet18", {}, channels=3))
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
    model = create_model(
        ModelSpec("efficientnet_lite0", {}, names, 224, 3, [0.485, 0.456, 0.406], [0.229, 0.224, 0.225])
    )
    load_pretrained(model, "efficientnet_lite0", True)
    image = np.asarray(Image.fromarray(load_sample_image("china.jpg")).resize((224, 224), Image.Resampling.BILINEAR))
    proba = predict_proba(model, image[None], 1, CPU)[0]
    top3 = [names[i].split(",")[0] for i in np.argsort(-proba)[:3]]
    assert {"church", "bell cote", "palace"} & set(top3), top3
    assert proba.max() > 0.2  # confident: random weights give about 0.001
