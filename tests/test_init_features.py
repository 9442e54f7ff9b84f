"""init's trial trains a candidate with frozen early blocks on their cached output: the
same logits as the whole model, a view per image and epoch, and nothing cached where
nothing is frozen."""

from __future__ import annotations

import contextlib
from pathlib import Path

import numpy as np
import torch
import yaml

from imgpipe.init.features import VIEWS, FeatureBatches, Suffix, cache_features, frozen_blocks
from imgpipe.models.factory import create_model
from imgpipe.models.freeze import apply_freeze
from imgpipe.models.spec import ModelSpec
from imgpipe.params.train import DeviceAugmentConfig, TrainConfig

PARAMS = yaml.safe_load((Path(__file__).parents[1] / "params.yaml").read_text())


def lite0(freeze) -> tuple[torch.nn.Module, TrainConfig]:
    cfg = TrainConfig.model_validate(
        {**PARAMS["train"], "model": "efficientnet_lite0", "pretrained": False, "freeze": freeze}
    )
    spec = ModelSpec(
        "efficientnet_lite0",
        cfg.model_options(),
        ["a", "b", "c"],
        32,
        3,
        [0.5, 0.4, 0.3],
        [0.2, 0.2, 0.2],
        class_prior=[0.5, 0.3, 0.2],
    )
    model = create_model(spec)
    apply_freeze(model, cfg.unfrozen_blocks)
    return model, cfg


def test_only_frozen_leading_blocks_are_cached():
    assert frozen_blocks(*reversed(lite0("backbone"))) == 9  # a linear probe: every block
    assert frozen_blocks(*reversed(lite0({"unfreeze_last": 2}))) == 7
    assert frozen_blocks(*reversed(lite0("none"))) == 0
    model, cfg = lite0("backbone")
    mixed = cfg.model_copy(update={"mix": cfg.mix.model_copy(update={"mixup_alpha": 0.2})})
    assert frozen_blocks(mixed, model) == 0  # Mixup mixes images, not features: the whole model trains


def test_the_frozen_blocks_output_and_the_rest_give_the_whole_models_logits():
    torch.manual_seed(0)
    model, _ = lite0({"unfreeze_last": 2})
    images = np.random.default_rng(0).integers(0, 256, (10, 32, 32, 3), dtype=np.uint8)
    augment = DeviceAugmentConfig(hflip=True, crop_padding=4)
    cache = cache_features(
        model, 7, images, augment, torch.device("cpu"), torch.Generator().manual_seed(0), contextlib.nullcontext
    )
    assert cache.views.shape[:2] == (VIEWS, 10) and cache.frozen == 7 and cache.seconds > 0
    suffix = Suffix(model, 7).eval()
    with torch.no_grad():
        whole = model.eval()(torch.from_numpy(images))
        assert torch.allclose(suffix(cache.views[0]), whole, atol=1e-5)
        assert not torch.allclose(suffix(cache.views[1]), whole, atol=1e-3)  # mirrored and shifted
    assert {id(p) for p in suffix.parameters()} <= {id(p) for p in model.parameters()}  # shared, not copied


def test_an_epoch_of_cached_batches_draws_each_row_once_in_some_view():
    views = torch.arange(VIEWS * 6, dtype=torch.float32).view(VIEWS, 6, 1)  # row r, view v: v * 6 + r
    cache = type("Cache", (), {"views": views, "frozen": 1, "seconds": 0.0})()
    rows, labels = np.array([1, 3, 4, 5]), np.array([0, 1, 1, 0])
    batches = FeatureBatches(cache, rows, labels, batch_size=3)
    epoch, steps = batches.epoch(torch.Generator().manual_seed(0))
    drawn = [(x.view(-1), y) for x, y in epoch]
    assert steps == len(drawn) == 2
    values = torch.cat([x for x, _ in drawn])
    assert sorted((values % 6).long().tolist()) == [1, 3, 4, 5]
    assert dict(zip((values % 6).long().tolist(), torch.cat([y for _, y in drawn]).tolist())) == {
        1: 0,
        3: 1,
        4: 1,
        5: 0,
    }
    balanced = FeatureBatches(cache, rows, labels, batch_size=4, sampler_weights=[1.0, 1.0])
    assert balanced.sample_weights is not None and balanced.steps_per_epoch == 1
