"""Augmentation: an albumentations pipeline declared in params.yaml.

Transform names are looked up among albumentations' own transform classes (no eval, no
import by arbitrary string), and arguments are checked against each transform's
signature and its pydantic schema before any image is touched.
"""

from __future__ import annotations

import inspect
import warnings
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from PIL import Image
from tqdm import tqdm

from imgpipe.errors import ParamsError
from imgpipe.store.dataset import Split, pixel_hash
from imgpipe.store.npy_file import NpyFile, RowWriter
from imgpipe.viz.grids import image_grid


def _transform_class(name: str, where: str) -> type:
    import albumentations as A

    cls = getattr(A, name, None)
    if not (isinstance(cls, type) and issubclass(cls, A.BasicTransform)):
        raise ParamsError(
            f"params.yaml: {where}: '{name}' is not an albumentations transform. "
            "Names are case-sensitive, e.g. HorizontalFlip, Affine, RandomBrightnessContrast."
        )
    return cls


def build_pipeline(entries: list[dict[str, Any]], seed: int) -> Any:
    """An ``albumentations.Compose`` from params entries like ``{"Affine": {"rotate": 10}}``."""
    import albumentations as A

    transforms = []
    for i, entry in enumerate(entries):
        ((name, args),) = entry.items()
        where = f"augment.transforms[{i}] ({name})"
        cls = _transform_class(name, where)
        args = dict(args or {})
        accepted = set(inspect.signature(cls.__init__).parameters) - {"self", "args", "kwargs"}
        unknown = sorted(set(args) - accepted)
        if unknown:
            raise ParamsError(f"params.yaml: {where}: unknown argument(s) {unknown}; {name} accepts {sorted(accepted)}")
        transforms.append(_make(cls, args, where))
    return A.Compose(transforms, seed=seed)


def _make(cls: type, args: dict[str, Any], where: str) -> Any:
    """One transform from its params entry, or a ParamsError naming the entry."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return cls(**args)
    except (ValueError, TypeError) as exc:
        detail = " ".join(str(exc).split())
        raise ParamsError(f"params.yaml: {where}: bad argument: {detail}") from None
    except NotImplementedError:  # BasicTransform and the like
        raise ParamsError(
            f"params.yaml: {where}: is an abstract base, not a transform to use; "
            "name a concrete one such as HorizontalFlip or Affine"
        ) from None


def check_pipeline(pipeline: Any, entries: list[dict[str, Any]], image: np.ndarray) -> None:
    """Run every transform once, for certain and in order, on ``image``, then save the
    pipeline: one that would fail later (``Lambda`` cannot be saved, ``BasicTransform``
    does nothing, a ``Resize`` changes the size) stops the stage now, before any work.

    Only the whole pipeline must keep the image's size: pad-then-crop is fine."""
    import copy

    import albumentations as A

    start = out = np.asarray(image)
    for i, (transform, entry) in enumerate(zip(pipeline.transforms, entries)):
        where = f"augment.transforms[{i}] ({next(iter(entry))})"
        sure = copy.deepcopy(transform)
        sure.p = 1.0
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                out = np.asarray(A.Compose([sure], seed=0)(image=out)["image"])
        except Exception as exc:  # whatever the transform raises, the user must hear which one
            raise ParamsError(
                f"params.yaml: {where}: fails on a training image ({type(exc).__name__}: {exc})"
            ) from None
    if out.shape != start.shape or out.dtype != np.uint8:
        raise ParamsError(
            f"params.yaml: augment.transforms: turn a {start.shape} uint8 image into {out.shape} {out.dtype}; "
            "the pipeline must keep the size and type (ingest.image_size sets the size)"
        )
    try:
        pipeline_dict(pipeline)
    except Exception as exc:
        raise ParamsError(
            f"params.yaml: augment.transforms: the pipeline cannot be saved for train and reruns "
            f"({type(exc).__name__}: {exc}); use transforms albumentations can serialise"
        ) from None


def pipeline_dict(pipeline: Any) -> dict[str, Any]:
    """The exact pipeline, serialised by albumentations itself."""
    import albumentations as A

    return A.to_dict(pipeline)


def variants_per_image(labels: np.ndarray, copies: int, mode: str) -> np.ndarray:
    """How many augmented variants each image gets.

    ``copies``: the same number for every image. ``balance``: each class is topped up to
    ``(1 + copies) * n_max`` images, spread as evenly as possible over its members, so
    rare classes grow by new variations rather than duplicates.
    """
    labels = np.asarray(labels)
    if mode == "copies":
        return np.full(len(labels), copies, dtype=np.int64)
    counts = np.bincount(labels)
    target = (1 + copies) * counts.max()
    per_image = np.zeros(len(labels), dtype=np.int64)
    for label, n in enumerate(counts):
        if n == 0:
            continue
        members = np.flatnonzero(labels == label)
        extra = target - n
        per_image[members] = extra // n
        per_image[members[: extra % n]] += 1
    return per_image


def augment_variants(images: np.ndarray, pipeline: Any, per_image: np.ndarray) -> Iterator[np.ndarray]:
    """``per_image[i]`` augmented variants of image ``i``, image-major, one at a time.

    The pipeline's seed fixes the whole sequence, so the same images and params give the
    same bytes on every run.
    """
    total = int(np.sum(per_image))
    for i in tqdm(range(len(images)), desc="augment", unit="img", mininterval=1.0, disable=total == 0):
        if not per_image[i]:
            continue
        image = np.asarray(images[i])
        for _ in range(int(per_image[i])):
            yield pipeline(image=image)["image"].reshape(image.shape)


def save_variants(variants: Iterable[np.ndarray], path: Path, row_shape: tuple[int, ...]) -> tuple[NpyFile, list[str]]:
    """Write variants to ``path`` as they come, and hash each: memory stays at one image."""
    writer, hashes = RowWriter(path, row_shape), []
    for variant in variants:
        writer.append(variant)
        hashes.append(pixel_hash(variant))
    return writer.close(), hashes


def variants_manifest(train: Split, per_image: np.ndarray, hashes: list[str]) -> pd.DataFrame:
    """Manifest rows for the variants: each keeps its original's label, with an id of
    ``<original id>#aug<k>`` and the hash of its own pixels."""
    parent = np.repeat(np.arange(len(train)), per_image)
    copy_no = np.concatenate([np.arange(k) for k in per_image]) if len(per_image) else np.array([], dtype=np.int64)
    rows = train.manifest.iloc[parent].reset_index(drop=True)
    rows["id"] = [f"{i}#aug{k}" for i, k in zip(rows["id"], copy_no)]
    rows["sha256"] = hashes
    rows["origin"] = "augmented"
    return rows


def preview(
    train: Split, classes: list[str], transforms: list[dict[str, Any]], seed: int, copies: int = 4
) -> Image.Image:
    """One row per class: its first original, then fresh variants from the same pipeline."""
    demo = build_pipeline(transforms, seed)
    rows, labels = [], []
    for label, name in enumerate(classes):
        members = np.flatnonzero(train.labels == label)
        if len(members) == 0:
            continue
        original = np.asarray(train.images[members[0]])
        rows.append([original] + [demo(image=original)["image"] for _ in range(copies)])
        labels.append(name)
    return image_grid(rows, labels, ["original"] + [f"augmented {k + 1}" for k in range(copies)])
