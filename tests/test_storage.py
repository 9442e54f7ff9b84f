import numpy as np
import pytest

from imgpipe.store.atomic import atomic_path
from imgpipe.store.dataset import Split, make_manifest, read_split, write_dataset


def _split(n: int, split: str, seed: int = 0) -> Split:
    images = np.random.default_rng(seed).integers(0, 256, (n, 4, 4, 1), dtype=np.uint8)
    manifest = make_manifest(
        ids=[f"img{i}" for i in range(n)],
        labels=np.arange(n) % 2,
        classes=["a", "b"],
        split=split,
        sha256=["x"] * n,
        origin="original",
    )
    return Split(images, manifest)


def test_dataset_round_trip_and_identical_bytes(tmp_path):
    splits = {"train": _split(6, "train"), "test": _split(3, "test", seed=1)}
    write_dataset(tmp_path / "a", ["a", "b"], splits)
    write_dataset(tmp_path / "b", ["a", "b"], splits)
    for name in ("train.npy", "test.npy", "manifest.csv", "classes.json"):
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes()
    back = read_split(tmp_path / "a", "test")
    assert np.array_equal(back.images, splits["test"].images)
    assert back.manifest["id"].tolist() == ["img0", "img1", "img2"]
    assert back.labels.tolist() == [0, 1, 0]


def test_picked_rows_are_stored_as_references_and_only_new_pixels_are_written(tmp_path):
    import pandas as pd

    from imgpipe.errors import ImgpipeError
    from imgpipe.store.stacked import Stacked

    data = tmp_path / "data"
    source = _split(6, "train")
    write_dataset(data / "ingest", ["a", "b"], {"train": source})
    train = read_split(data / "ingest", "train")
    # Balance: rows picked with repeats, nothing copied.
    picked = [5, 0, 0, 3, 5, 5]
    write_dataset(
        data / "balance", ["a", "b"], {"train": Split(train.images.take(picked), train.manifest.iloc[picked])}
    )
    assert np.load(data / "balance" / "train.npy").shape == (0, 4, 4, 1)
    balanced = read_split(data / "balance", "train")
    assert np.array_equal(balanced.images, source.images[picked])
    # Augment: the balanced rows stay references to ingest; only the two variants are written.
    variants = np.full((2, 4, 4, 1), 7, dtype=np.uint8)
    rows = pd.concat([balanced.manifest, _split(2, "train").manifest], ignore_index=True)
    write_dataset(data / "augment", ["a", "b"], {"train": Split(Stacked.concat([balanced.images, variants]), rows)})
    assert np.array_equal(np.load(data / "augment" / "train.npy"), variants)
    back = read_split(data / "augment", "train")
    assert np.array_equal(back.images, np.concatenate([source.images[picked], variants]))
    assert np.array_equal(read_split(data / "augment", "train", mmap=False).images, np.asarray(back.images))
    assert np.array_equal(back.images[[7, 0, 6]], np.stack([variants[1], source.images[5], variants[0]]))
    assert set(pd.read_csv(data / "augment" / "manifest.csv")["pixels"]) == {"../ingest/train.npy", "train.npy"}
    # A referenced file gone: one sentence naming it and what to do.
    (data / "ingest" / "train.npy").unlink()
    with pytest.raises(
        ImgpipeError, match=r"ingest/train\.npy, which .*augment/manifest\.csv takes pixels from, is missing"
    ):
        read_split(data / "augment", "train")


def test_failed_write_leaves_previous_output_and_no_temporaries(tmp_path):
    target = tmp_path / "out.txt"
    target.write_text("good")
    with pytest.raises(RuntimeError):
        with atomic_path(target) as tmp:
            tmp.write_text("half")
            raise RuntimeError("interrupted")
    assert target.read_text() == "good"
    assert [p.name for p in tmp_path.iterdir()] == ["out.txt"]


def test_a_killed_writers_temporary_is_cleared_by_the_next_write(tmp_path):
    # What SIGKILL leaves: the finally clause that would remove it never ran.
    stale = tmp_path / ".ingest.k1ll3d_0.tmp"  # as tempfile.mkdtemp names it: 8 random characters
    (stale / "ingest").mkdir(parents=True)
    (stale / "ingest" / "train.npy").write_bytes(b"\0" * 1000)
    other = tmp_path / ".balance.x.tmp"  # another target's: not this write's to clear
    other.mkdir()
    write_dataset(tmp_path / "ingest", ["a", "b"], {"train": _split(2, "train")})
    assert not stale.exists() and other.exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == [".balance.x.tmp", "ingest"]
