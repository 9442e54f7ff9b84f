"""Classifier re-training (train.retrain_head, cRT): frozen features, a new head, balanced
batches, and a kill in either stage resuming to the same end."""

import dataclasses

import numpy as np
import pandas as pd
import pytest
import torch

from imgpipe.models.factory import create_model
from imgpipe.store.dataset import Split
from imgpipe.train.checkpoint import Checkpoint
from imgpipe.train.data import TrainBatches
from imgpipe.train.distributed import Dist
from imgpipe.train.job import TrainingJob
from imgpipe.train.losses import class_prior
from imgpipe.train.retrain_head import CHECKPOINT_FILE, head_config, head_sampler_weights, prepare_head
from model_helpers import CPU, digits_spec, train_cfg


def split(images, labels) -> Split:
    return Split(images, pd.DataFrame({"label": labels}))


def job(digits_small, folder, **changes) -> TrainingJob:
    """A training job on 240 digits with a long tail, built as the stage builds one."""
    images, labels = digits_small
    keep = np.concatenate([np.flatnonzero(labels[:240] == c)[: 24 - 2 * c] for c in range(10)])
    cfg = train_cfg(epochs=3, retrain_head={"epochs": 2, "sampler": "class_balanced"}, **changes)
    train, val = split(images[keep], labels[keep]), split(images[240:], labels[240:])
    torch.manual_seed(0)
    spec = digits_spec()
    spec.class_prior = class_prior(train.labels, 10, head_sampler_weights(train.labels, 10, "class_balanced"))
    batches = TrainBatches(train.images, train.labels, CPU, cfg.batch_size)
    first, head = Checkpoint(folder, "fp"), Checkpoint(folder, "fp", CHECKPOINT_FILE)
    head.extra = first.extra
    return TrainingJob(
        cfg,
        Dist(),
        CPU,
        train,
        val,
        spec,
        create_model(spec),
        "random",
        batches,
        None,
        {},
        {},
        first,
        first.load(),
        class_prior(train.labels, 10),
        head,
        head.load(),
    )


def test_the_head_stage_trains_only_a_reset_head_on_balanced_batches(digits_small, tmp_path):
    weights = head_sampler_weights(np.array([0] * 8 + [1] * 2 + [2] * 0), 3, "class_balanced")
    assert weights == [1 / 8, 1 / 2, 0.0]  # each class drawn equally; an empty one never
    assert head_sampler_weights(np.array([0] * 16 + [1] * 4), 2, "square_root") == [0.25, 0.5]
    cfg = head_config(
        train_cfg(
            epochs=9, loss="ldam", drw_epoch=5, mix={"mixup_alpha": 0.2}, ema={"decay": 0.9}, retrain_head={"epochs": 2}
        )
    )
    assert (cfg.epochs, cfg.loss, cfg.drw_epoch, cfg.mix.mixup_alpha, cfg.ema.decay, cfg.retrain_head.epochs) == (
        2,
        "cross_entropy",
        0,
        0.0,
        0.0,
        0,
    )

    trained = job(digits_small, tmp_path)
    result = trained.fit()
    assert [r.epoch for r in result.history] == [1, 2, 3, 4, 5]  # the head's epochs continue the numbering
    before = {k: v.clone() for k, v in trained.model.state_dict().items()}
    prepare_head(trained.model, seed=0)
    blocks = trained.model.net.blocks
    assert not any(p.requires_grad for p in blocks.parameters())
    assert all(p.requires_grad for p in trained.model.net.head.parameters())
    head_key = next(
        k
        for k in before
        if k.startswith("net.head.")
        and k.endswith("weight")
        and before[k].shape == trained.model.net.head[-1].weight.shape
    )
    assert not torch.equal(before[head_key], trained.model.state_dict()[head_key])  # re-initialised


class _Killed(Exception):
    pass


@pytest.mark.parametrize("kill_at", [2, 4])  # in the first stage; in the head stage
def test_a_kill_in_either_stage_resumes_to_the_same_weights(digits_small, tmp_path, kill_at):
    whole = job(digits_small, tmp_path / "whole")
    expected = whole.fit()

    def stop(result, seconds):
        if result.epoch == kill_at:
            raise _Killed

    killed = job(digits_small, tmp_path / "killed")
    with pytest.raises(_Killed):
        killed.fit(on_epoch=stop)
    resumed = job(digits_small, tmp_path / "killed")
    assert len(resumed.resumed_history()) == kill_at
    result = resumed.fit()
    assert [dataclasses.asdict(r) for r in result.history] == [dataclasses.asdict(r) for r in expected.history]
    for key, value in whole.model.state_dict().items():
        assert torch.equal(value, resumed.model.state_dict()[key]), key
