"""Mixup, CutMix and the weight average (train.mix, train.ema) on batches and real digits."""

import pytest
import torch

from imgpipe.models.factory import create_model
from imgpipe.params.train import MixConfig
from imgpipe.train.mixing import mix_batch
from model_helpers import digits_spec, train, train_cfg


def digits_batch(n: int = 16) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(1)
    return torch.randint(0, 256, (n, 8, 8, 1), generator=g, dtype=torch.uint8), torch.arange(n)  # unique labels


def test_mixup_blends_each_image_with_its_partners_and_repeats_with_the_seed():
    x, y = digits_batch()
    mixed, partner, lam = mix_batch(x, y, MixConfig(mixup_alpha=0.4), torch.Generator().manual_seed(0))
    assert 0.0 < lam < 1.0 and mixed.dtype == torch.float32
    index = [int((y == p).nonzero()[0]) for p in partner]  # labels are unique in the batch
    assert torch.allclose(mixed, lam * x.float() + (1 - lam) * x[index].float())
    again = mix_batch(x, y, MixConfig(mixup_alpha=0.4), torch.Generator().manual_seed(0))
    assert torch.equal(again[0], mixed) and torch.equal(again[1], partner) and again[2] == lam


def test_cutmix_pastes_a_box_and_lam_is_the_share_left_as_it_was():
    x, y = digits_batch()
    for seed in range(20):
        mixed, partner, lam = mix_batch(x, y, MixConfig(cutmix_alpha=1.0), torch.Generator().manual_seed(seed))
        index = [int((y == p).nonzero()[0]) for p in partner]
        changed = (mixed != x).any(-1)  # (n, h, w): pixels that came from another image
        assert mixed.dtype == torch.uint8 and torch.equal(mixed[changed], x[index][changed])
        box = changed.any(0)  # one box, the same for every image
        rows, cols = box.any(1).nonzero().flatten(), box.any(0).nonzero().flatten()
        if len(rows):
            assert box[rows.min() : rows.max() + 1, cols.min() : cols.max() + 1].all()
        # lam is the share outside the box (a pixel equal in both images may hide inside it).
        assert (1.0 - changed.float().mean(dim=(1, 2)) >= lam - 1e-6).all()


def test_no_mixing_when_off_or_for_the_share_of_batches_left_alone():
    x, y = digits_batch()
    assert mix_batch(x, y, MixConfig(), torch.Generator().manual_seed(0))[2] == 1.0
    assert mix_batch(x, y, MixConfig(mixup_alpha=1.0, p=0.0), torch.Generator().manual_seed(0))[2] == 1.0
    g = torch.Generator().manual_seed(0)
    share = sum(mix_batch(x, y, MixConfig(mixup_alpha=1.0, p=0.3), g)[2] < 1.0 for _ in range(400)) / 400
    assert share == pytest.approx(0.3, abs=0.07)


def test_mixing_and_the_weight_average_learn_real_digits(digits_small):
    images, labels = digits_small
    model = create_model(digits_spec())
    cfg = train_cfg(epochs=5, lr=0.01, mix={"mixup_alpha": 0.2, "cutmix_alpha": 1.0, "p": 0.5}, ema={"decay": 0.9})
    result = train(model, (images[:240], labels[:240]), (images[240:], labels[240:]), cfg)
    assert max(r.val_accuracy for r in result.history) > 0.5  # chance is 0.1
    # The model ends with the average's weights, the ones validated.
    from imgpipe.train.loop import evaluate

    x, y = torch.from_numpy(images[240:]), torch.from_numpy(labels[240:]).long()
    assert evaluate(model, x, y, 64)[1] == pytest.approx(result.history[-1].val_accuracy)
