import numpy as np
import pytest

from imgpipe.balancing import make_sampler, resample
from imgpipe.config import BalanceConfig
from imgpipe.errors import ParamsError

CLASSES = ["zero", "one", "two"]


def cfg(**kw) -> BalanceConfig:
    base = {"method": "random_over", "sampling_strategy": "auto", "k_neighbors": 3, "seed": 0}
    return BalanceConfig(**{**base, **kw})


@pytest.fixture
def imbalanced(digits_small):
    images, labels = digits_small
    keep = np.concatenate([np.flatnonzero(labels == c)[:n] for c, n in [(0, 30), (1, 12), (2, 6)]])
    return images[keep], labels[keep]


@pytest.mark.parametrize("method, expected", [("random_over", [30, 30, 30]), ("random_under", [6, 6, 6]),
                                              ("smote", [30, 30, 30]), ("none", [30, 12, 6])])
def test_methods_reach_their_counts(imbalanced, method, expected):
    images, labels = imbalanced
    out = resample(images, labels, make_sampler(cfg(method=method), CLASSES, labels))
    assert np.bincount(out.labels).tolist() == expected
    assert out.images.shape == (sum(expected), *images.shape[1:]) and out.images.dtype == np.uint8


def test_random_oversampling_copies_real_images(imbalanced):
    images, labels = imbalanced
    out = resample(images, labels, make_sampler(cfg(), CLASSES, labels))
    assert (out.source_index >= 0).all()
    assert np.array_equal(out.images, images[out.source_index])


def test_smote_makes_new_blended_images(imbalanced):
    images, labels = imbalanced
    out = resample(images, labels, make_sampler(cfg(method="smote"), CLASSES, labels))
    synthetic = out.images[out.source_index < 0]
    assert len(synthetic) == (30 - 12) + (30 - 6)
    originals = {im.tobytes() for im in images}
    assert sum(im.tobytes() not in originals for im in synthetic) > len(synthetic) // 2


def test_sampling_strategy_by_class_name(imbalanced):
    images, labels = imbalanced
    sampler = make_sampler(cfg(sampling_strategy={"two": 20}), CLASSES, labels)
    assert np.bincount(resample(images, labels, sampler).labels).tolist() == [30, 12, 20]


def test_unknown_class_name_in_strategy_is_named(imbalanced):
    _, labels = imbalanced
    with pytest.raises(ParamsError, match="balance.sampling_strategy.*three"):
        make_sampler(cfg(sampling_strategy={"three": 20}), CLASSES, labels)


def test_smote_neighbours_must_fit_the_smallest_class(imbalanced):
    _, labels = imbalanced
    with pytest.raises(ParamsError, match="balance.k_neighbors"):
        make_sampler(cfg(method="smote", k_neighbors=6), CLASSES, labels)
