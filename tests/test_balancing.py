import numpy as np
import pytest

from imgpipe.balance.resampling import class_weights, make_sampler, resample
from imgpipe.errors import ParamsError
from imgpipe.params.balance import BalanceConfig

CLASSES = ["zero", "one", "two"]


def cfg(**kw) -> BalanceConfig:
    base = {"method": "random_over", "sampling_strategy": "auto", "k_neighbors": 3, "max_images": 100_000, "seed": 0}
    return BalanceConfig(**{**base, **kw})


@pytest.fixture
def imbalanced(digits_small):
    images, labels = digits_small
    keep = np.concatenate([np.flatnonzero(labels == c)[:n] for c, n in [(0, 30), (1, 12), (2, 6)]])
    return images[keep], labels[keep]


@pytest.mark.parametrize(
    "method, expected",
    [
        ("random_over", [30, 30, 30]),
        ("random_under", [6, 6, 6]),
        ("smote", [30, 30, 30]),
        ("none", [30, 12, 6]),
        ("class_weight", [30, 12, 6]),
        ("weighted_sampler", [30, 12, 6]),
    ],
)
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


@pytest.mark.parametrize("method", ["borderline_smote", "adasyn", "smote_tomek", "smote_enn"])
def test_other_smote_family_methods_even_out_and_trace_their_rows(digits_small, method):
    # Labels drawn at random over real scans: classes overlap, as these methods assume.
    images, _ = digits_small
    images = images[:48]
    labels = np.random.default_rng(0).permutation(np.repeat([0, 1, 2], [30, 12, 6]))
    out = resample(images, labels, make_sampler(cfg(method=method), CLASSES, labels))
    counts = np.bincount(out.labels, minlength=3)
    # These only synthesise where the data calls for it (borderline, hard or noisy
    # points), so the counts need not even out exactly; the rarest class must grow.
    assert counts[2] > 6
    kept = out.source_index >= 0
    assert np.array_equal(out.images[kept], images[out.source_index[kept]])  # copies are traced exactly
    assert (~kept).sum() > 0 and out.images.dtype == np.uint8


def test_class_weights_are_sklearns_balanced_weights(imbalanced):
    _, labels = imbalanced
    weights = class_weights(labels, CLASSES)
    assert weights == pytest.approx({"zero": 48 / 90, "one": 48 / 36, "two": 48 / 18}, rel=1e-5)


def test_adasyn_on_separable_classes_falls_back_to_smote_and_says_so(imbalanced):
    images, labels = imbalanced  # real digits 0/1/2: no minority scan has a majority neighbour
    out = resample(images, labels, make_sampler(cfg(method="adasyn"), CLASSES, labels))
    assert "SMOTE" in out.note
    assert np.bincount(out.labels).tolist() == [30, 30, 30]


def test_a_resampling_that_would_write_too_many_images_is_refused_first(imbalanced):
    from imgpipe.balance.resampling import check_size, planned_total

    images, labels = imbalanced
    classes = CLASSES
    huge = cfg(method="random_over", sampling_strategy={classes[0]: 1_000_000})
    assert planned_total(huge, classes, labels) >= 1_000_000
    with pytest.raises(ParamsError, match="balance.max_images"):
        check_size(huge, planned_total(huge, classes, labels))
    auto = cfg(method="random_over")
    assert planned_total(auto, classes, labels) == len(
        resample(images, labels, make_sampler(auto, classes, labels)).labels
    )
    assert planned_total(cfg(method="random_under"), classes, labels) == len(labels)
    check_size(cfg(method="none", max_images=10), len(labels))  # a large source kept as it is is fine
