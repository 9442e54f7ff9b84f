"""Near duplicates across splits: imagehash's pHash, copies that are resized, recompressed or
cropped a little are found, distinct pictures are not, and ingest keeps them out of val/test."""

from __future__ import annotations

import io
import json

import imagehash
import numpy as np
import pandas as pd
import pytest
from PIL import Image
from scipy.ndimage import gaussian_filter

from imgpipe.ingest.near_duplicates import find_leaks, nearest, perceptual_hashes


def scenes(n: int, size: int = 160, seed: int = 0) -> list[Image.Image]:
    """Distinct smooth random RGB pictures: blobs and edges at several scales, as photos have."""
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(n):
        field = sum(gaussian_filter(rng.normal(size=(size, size, 3)), sigma=(s, s, 0)) * s for s in (3, 8, 20))
        field = (field - field.min()) / np.ptp(field) * 255
        out.append(Image.fromarray(field.astype(np.uint8)))
    return out


def decoded(images: list[Image.Image], size: int = 64) -> np.ndarray:
    """As ingest stores them: squashed to ``size``, uint8 (N, H, W, 3)."""
    return np.stack([np.asarray(im.convert("RGB").resize((size, size), Image.Resampling.LANCZOS)) for im in images])


def copies(image: Image.Image) -> dict[str, Image.Image]:
    w, h = image.size
    jpeg = io.BytesIO()
    image.resize((w // 2, h // 2)).save(jpeg, format="JPEG", quality=40)
    return {
        "resized and recompressed": Image.open(jpeg),
        "cropped 5% off each side": image.crop((w // 20, h // 20, w - w // 20, h - h // 20)),
        "cropped 10% off each side": image.crop((w // 10, h // 10, w - w // 10, h - h // 10)),
    }


def test_the_whole_image_hash_is_imagehash_phash():
    images = decoded(scenes(12), size=48)
    expected = [int(str(imagehash.phash(Image.fromarray(image))), 16) for image in images]
    assert perceptual_hashes(images)[:, 0].tolist() == expected
    gray = images[:, :, :, :1]  # one channel, as ingest stores grayscale
    assert perceptual_hashes(gray)[0, 0] == int(str(imagehash.phash(Image.fromarray(gray[0, :, :, 0]))), 16)


@pytest.mark.parametrize("kind", ["resized and recompressed", "cropped 5% off each side", "cropped 10% off each side"])
def test_altered_copies_are_found_and_distinct_pictures_are_not(kind):
    originals = scenes(30)
    hashes = perceptual_hashes(decoded(originals))
    altered = perceptual_hashes(decoded([copies(im)[kind] for im in originals]))
    where, dist = nearest(altered, hashes)
    assert (where == np.arange(30)).all() and (dist <= 4).all(), dist
    others = perceptual_hashes(decoded(scenes(30, seed=1)))
    assert (nearest(others, hashes)[1] > 4).all()


def test_digits_that_differ_are_not_near_duplicates(digits_small):
    images, _ = digits_small
    big = np.stack(
        [np.asarray(Image.fromarray(im[:, :, 0]).resize((32, 32), Image.Resampling.BICUBIC)) for im in images]
    )[..., None]
    hashes = perceptual_hashes(big)
    dist = nearest(hashes[:100], hashes[100:])[1]
    assert (dist > 0).mean() > 0.97  # a handful of scans are near copies at 8x8; most are far


def test_leaks_leave_val_and_test_and_are_recorded():
    a, b, c = 0, 2**64 - 1, int("aa" * 8, 16)  # 64 and 32 bits apart
    hashes = np.array([[a] * 3, [b] * 3, [a + 1] * 3, [b - 3] * 3, [c] * 3], dtype=np.uint64)
    ids = ["a", "b", "a-copy", "b-copy", "c"]
    parts = {"train": np.array([0]), "val": np.array([1, 2]), "test": np.array([3, 4])}
    kept, leaks = find_leaks(parts, hashes, ids, max_distance=4, drop=True)
    assert kept["val"].tolist() == [1] and kept["test"].tolist() == [4] and kept["train"].tolist() == [0]
    assert [(x["file"], x["split"], x["copy_of"], x["copy_of_split"], x["distance"]) for x in leaks] == [
        ("a-copy", "val", "a", "train", 1),
        ("b-copy", "test", "b", "val", 2),
    ]
    same, noted = find_leaks(parts, hashes, ids, max_distance=4, drop=False)
    assert {k: v.tolist() for k, v in same.items()} == {k: v.tolist() for k, v in parts.items()}
    assert [x["action"] for x in noted] == ["kept", "kept"]


@pytest.mark.slow
def test_ingest_drops_near_copies_from_test_and_says_so(project):
    raw = project.root / "raw" / "scenes"
    for split, images in (("train", scenes(24)), ("test", scenes(8, seed=1))):
        for i, image in enumerate(images):
            (raw / split / ("a" if i % 2 else "b")).mkdir(parents=True, exist_ok=True)
            image.save(raw / split / ("a" if i % 2 else "b") / f"{i}.png")
    for i in (0, 1, 2):  # three train pictures also in test, resized and recompressed
        copy = copies(Image.open(raw / "train" / ("a" if i % 2 else "b") / f"{i}.png"))["resized and recompressed"]
        copy.save(raw / "test" / ("a" if i % 2 else "b") / f"copy{i}.jpg")
    project.set_params({"ingest": {"source": "raw/scenes", "channels": 3, "image_size": 32, "val_fraction": 0.2}})
    out = project.run("python", "-m", "stages.ingest")
    report = json.loads((project.root / "reports" / "ingest.json").read_text())
    table = pd.read_csv(project.root / "reports" / "near_duplicates.csv")
    assert sorted(table["file"]) == ["test/a/copy1.jpg", "test/b/copy0.jpg", "test/b/copy2.jpg"]
    assert set(table["copy_of_split"]) <= {"train", "val"} and set(table["action"]) == {"dropped"}
    assert report["summary"]["near_duplicates_dropped"] == 3 and report["total"]["test"] == 8
    assert "3 val/test images nearly copy" in out.stdout
    assert Image.open(project.root / "reports" / "near_duplicates.png").width > 400

    project.set_params({"ingest": {"near_duplicates": "keep"}})
    project.run("python", "-m", "stages.ingest")
    report = json.loads((project.root / "reports" / "ingest.json").read_text())
    assert report["total"]["test"] == 11 and report["summary"]["near_duplicates_found"] == 3
