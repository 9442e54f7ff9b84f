"""Long-tail losses (train.loss), the class prior and deferred re-weighting, against their
definitions and on real digits."""

import numpy as np
import pytest
import torch
from torch.nn import functional as F

from imgpipe.errors import ParamsError
from imgpipe.models.factory import create_model
from imgpipe.models.heads import COSINE_SCALE, CosineLinear
from imgpipe.train.losses import TrainLoss, class_balanced_weights, class_prior
from model_helpers import digits_spec, train, train_cfg

PRIOR = [0.7, 0.2, 0.1]


def batch(seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return torch.randn(64, 3, generator=g) * 3, torch.randint(0, 3, (64,), generator=g)


@pytest.mark.parametrize("weights", [None, [1.0, 2.0, 5.0]])
def test_each_loss_is_its_definition(weights):
    logits, y = batch()
    w = torch.tensor(weights) if weights else None
    loss = lambda name, **cfg: TrainLoss(train_cfg(loss=name, **cfg), PRIOR, weights, 1000)(logits, y)  # noqa: E731
    plain = F.cross_entropy(logits, y, weight=w)
    assert loss("cross_entropy") == pytest.approx(plain.item(), abs=1e-6)
    assert loss("focal", focal_gamma=0.0) == pytest.approx(plain.item(), abs=1e-6)  # gamma 0 is cross-entropy
    assert loss("focal", focal_gamma=2.0) < plain.item()  # confident right answers count for less
    log_prior = torch.log(torch.tensor(PRIOR))
    assert loss("balanced_softmax") == pytest.approx(F.cross_entropy(logits + log_prior, y, weight=w).item(), abs=1e-6)
    assert loss("logit_adjusted", logit_tau=0.5) == pytest.approx(
        F.cross_entropy(logits + 0.5 * log_prior, y, weight=w).item(), abs=1e-6
    )
    # LDAM: the true class's logit minus its margin; margins grow as classes get rarer (n^-1/4).
    margins = torch.tensor(PRIOR) ** -0.25
    margins = 0.5 * margins / margins.max() * COSINE_SCALE
    shifted = logits - F.one_hot(y, 3) * margins[y, None]
    assert loss("ldam", ldam_max_margin=0.5) == pytest.approx(F.cross_entropy(shifted, y, weight=w).item(), abs=1e-5)


def test_a_uniform_prior_leaves_logit_adjustment_as_cross_entropy():
    logits, y = batch(1)
    uniform = TrainLoss(train_cfg(loss="logit_adjusted", logit_tau=1.0), [1 / 3] * 3, None, 300)
    # A constant shift of every logit changes no softmax.
    assert uniform(logits, y).item() == pytest.approx(F.cross_entropy(logits, y).item(), abs=1e-6)


def test_deferred_reweighting_switches_to_class_balanced_weights_at_its_epoch():
    logits, y = batch(2)
    loss = TrainLoss(train_cfg(loss="ldam", drw_epoch=3, epochs=4), PRIOR, None, 1000)
    before = loss(logits, y).item()
    loss.start_epoch(2)
    assert loss(logits, y).item() == before
    loss.start_epoch(3)
    weights = class_balanced_weights(PRIOR, 1000)
    assert loss.weight.tolist() == pytest.approx(weights) and weights[2] > weights[1] > weights[0]
    assert np.mean(weights) == pytest.approx(1.0)
    assert loss(logits, y).item() != before


def test_the_prior_is_what_training_draws():
    labels = np.array([0] * 70 + [1] * 20 + [2] * 10)
    assert class_prior(labels, 3) == pytest.approx(PRIOR)
    assert class_prior(labels, 4) == pytest.approx(PRIOR + [0.0])  # a class with no training image
    # A weighted sampler with inverse-frequency weights draws the classes evenly.
    assert class_prior(labels, 3, [1 / 70, 1 / 20, 1 / 10]) == pytest.approx([1 / 3] * 3)


def test_ldam_trains_a_cosine_head_whose_logits_stay_bounded(digits_small):
    images, labels = digits_small
    cfg = train_cfg(loss="ldam", epochs=4, drw_epoch=3, lr=0.01)
    spec = digits_spec(options={**digits_spec().options, **cfg.model_options()})
    assert spec.options["cosine_head"] is True
    model = create_model(spec)
    assert isinstance(model.net.head[-1], CosineLinear)
    result = train(model, (images[:240], labels[:240]), (images[240:], labels[240:]), cfg)
    assert max(r.val_accuracy for r in result.history) > 0.5  # chance is 0.1
    with torch.no_grad():
        logits = model(torch.from_numpy(images[240:]))
    assert logits.abs().max() <= COSINE_SCALE + 1e-4


@pytest.mark.parametrize("loss", ["focal", "balanced_softmax", "logit_adjusted"])
def test_each_long_tail_loss_learns_real_digits(digits_small, loss):
    images, labels = digits_small
    result = train(
        create_model(digits_spec()),
        (images[:240], labels[:240]),
        (images[240:], labels[240:]),
        train_cfg(loss=loss, epochs=4),
    )
    assert result.history[-1].train_loss < result.history[0].train_loss
    assert max(r.val_accuracy for r in result.history) > 0.5


@pytest.mark.parametrize(
    "changes, key",
    [
        ({"loss": "ldam_drw"}, "train.loss"),
        ({"drw_epoch": 9, "epochs": 8}, "train.drw_epoch"),
        ({"focal_gamma": -1}, "train.focal_gamma"),
    ],
)
def test_bad_loss_params_name_the_key(tmp_path, changes, key):
    import yaml

    from helpers import REPO
    from imgpipe.params.train import TrainConfig

    params = yaml.safe_load((REPO / "params.yaml").read_text())
    params["train"].update(changes)
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params))
    with pytest.raises(ParamsError, match=rf"{key}\b"):
        TrainConfig.load(tmp_path / "params.yaml")
