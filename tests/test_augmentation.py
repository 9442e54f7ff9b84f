import numpy as np
import pytest

from imgpipe.augment.pipeline import augment_variants, build_pipeline, pipeline_dict, variants_per_image
from imgpipe.errors import ParamsError
from imgpipe.store import augmented

SPEC = [
    {"Affine": {"rotate": [-15, 15], "translate_percent": [-0.1, 0.1], "p": 1.0}},
    {"RandomBrightnessContrast": {"p": 0.5}},
]


@pytest.fixture
def images(digits_small):
    import cv2

    small, _ = digits_small
    return np.stack([cv2.resize(im, (32, 32), interpolation=cv2.INTER_CUBIC)[..., None] for im in small[:40]])


def test_unknown_transform_is_named():
    with pytest.raises(ParamsError, match=r"augment.transforms\[1\] \(HorizontalFlipp\)"):
        build_pipeline([{"Affine": {}}, {"HorizontalFlipp": {"p": 0.5}}], seed=0)


def test_non_transform_attribute_is_refused():
    with pytest.raises(ParamsError, match="not an albumentations transform"):
        build_pipeline([{"Compose": {"transforms": []}}], seed=0)


@pytest.mark.parametrize("args, hint", [({"rotate": "abc"}, "rotate"), ({"p": 5}, "p"), ({"spin": 3}, "spin")])
def test_bad_argument_is_named(args, hint):
    with pytest.raises(ParamsError, match=r"augment.transforms\[0\] \(Affine\)") as err:
        build_pipeline([{"Affine": args}], seed=0)
    assert hint in str(err.value)


def test_copies_are_seeded_and_really_augmented(images):
    two = variants_per_image(np.zeros(len(images), dtype=int), 2, "copies")
    a, b, c = (np.stack(list(augment_variants(images, build_pipeline(SPEC, seed=seed), two))) for seed in (3, 3, 4))
    assert a.shape == (80, 32, 32, 1) and a.dtype == np.uint8
    assert a.tobytes() == b.tobytes()
    assert a.tobytes() != c.tobytes()
    # Every variant differs from its original: the stage does not pass data through.
    originals = np.repeat(images, 2, axis=0)
    assert all(not np.array_equal(x, y) for x, y in zip(a, originals))


def test_pipeline_serialises_with_albumentations(images):
    import albumentations as A

    d = pipeline_dict(build_pipeline(SPEC, seed=0))
    assert [t["__class_fullname__"] for t in d["transform"]["transforms"]] == ["Affine", "RandomBrightnessContrast"]
    assert isinstance(A.from_dict(d), A.Compose)


def test_balance_mode_tops_rare_classes_up_with_variants():
    labels = np.array([0] * 10 + [1] * 4 + [2] * 1)
    per_image = variants_per_image(labels, copies=1, mode="balance")
    totals = [int((labels == c).sum() + per_image[labels == c].sum()) for c in range(3)]
    assert totals == [20, 20, 20]  # (1 + copies) x the largest class
    assert per_image[labels == 1].tolist() == [4, 4, 4, 4] and per_image[labels == 2].tolist() == [19]
    assert variants_per_image(labels, copies=0, mode="balance")[labels == 0].sum() == 0


def test_saved_pipeline_loads_back_seeded(images, tmp_path):
    import json

    augmented.pipeline_path(tmp_path).write_text(json.dumps(pipeline_dict(build_pipeline(SPEC, seed=0))))
    first, second = augmented.load_pipeline(tmp_path, seed=5), augmented.load_pipeline(tmp_path, seed=5)
    a = [first(image=images[0])["image"] for _ in range(2)]
    b = [second(image=images[0])["image"] for _ in range(2)]
    assert all(np.array_equal(x, y) for x, y in zip(a, b)) and not np.array_equal(a[0], a[1])


@pytest.mark.parametrize(
    "entry, hint",
    [
        ({"Resize": {"height": 20, "width": 20}}, "must keep the size"),
        ({"BasicTransform": {}}, "abstract base"),
        ({"Lambda": {}}, "cannot be saved"),
    ],
)
def test_a_transform_that_would_fail_later_is_named_before_any_work(images, entry, hint):
    from imgpipe.augment.pipeline import check_pipeline

    entries = [{"HorizontalFlip": {"p": 0.5}}, entry]
    with pytest.raises(
        ParamsError, match=rf"augment\.transforms\[1\] \({next(iter(entry))}\)|augment\.transforms: "
    ) as err:
        check_pipeline(build_pipeline(entries, seed=0), entries, images[0])  # build or check: before any work
    assert hint in str(err.value)
    check_pipeline(build_pipeline(SPEC, seed=0), SPEC, images[0])  # the shipped kind passes
    h, w = images[0].shape[:2]
    pad_crop = [{"PadIfNeeded": {"min_height": h + 8, "min_width": w + 8}}, {"RandomCrop": {"height": h, "width": w}}]
    check_pipeline(build_pipeline(pad_crop, seed=0), pad_crop, images[0])  # sizes change inside, not in the end
