import numpy as np
import pytest

from imgpipe.errors import ImgpipeError
from imgpipe.ingest.splitting import imbalance_ratio, long_tail_indices, stratified_split


def test_long_tail_follows_an_exponential_profile():
    labels = np.repeat(np.arange(10), 100)
    keep = long_tail_indices(labels, ratio=10, seed=0)
    counts = np.bincount(labels[keep])
    assert counts[0] == 100 and counts[-1] == 10
    assert all(a >= b for a, b in zip(counts, counts[1:]))
    assert np.allclose(counts, 100 * 10 ** (-np.arange(10) / 9), atol=1)


def test_ratio_one_keeps_everything():
    labels = np.array([0, 0, 1, 1, 1])
    assert long_tail_indices(labels, 1, seed=0).tolist() == [0, 1, 2, 3, 4]


def test_split_is_stratified_disjoint_and_seeded():
    labels = np.repeat(np.arange(4), [40, 30, 20, 10])
    a = stratified_split(labels, 0.2, 0.2, seed=7, classes=list("abcd"))
    b = stratified_split(labels, 0.2, 0.2, seed=7, classes=list("abcd"))
    assert all(np.array_equal(a[k], b[k]) for k in a)
    together = np.concatenate(list(a.values()))
    assert len(together) == len(labels) == len(np.unique(together))
    for part in a.values():
        assert set(labels[part]) == {0, 1, 2, 3}


def test_split_refuses_a_class_too_small_to_split():
    labels = np.array([0] * 20 + [1] * 2)
    with pytest.raises(ImgpipeError, match="b \\(2\\)"):
        stratified_split(labels, 0.2, 0.2, seed=0, classes=["a", "b"])


def test_imbalance_ratio():
    assert imbalance_ratio({"a": 100, "b": 10}) == 10
