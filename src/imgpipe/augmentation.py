"""Augmentation: an albumentations pipeline declared in params.yaml.

Transform names are looked up among albumentations' own transform classes (no eval, no
import by arbitrary string), and arguments are checked against each transform's
signature and its pydantic schema before any image is touched.
"""

from __future__ import annotations

import inspect
import json
import warnings
from pathlib import Path
from typing import Any

import numpy as np
from tqdm import tqdm

from imgpipe.errors import ParamsError


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
            raise ParamsError(
                f"params.yaml: {where}: unknown argument(s) {unknown}; {name} accepts {sorted(accepted)}"
            )
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                transforms.append(cls(**args))
        except (ValueError, TypeError) as exc:
            detail = " ".join(str(exc).split())
            raise ParamsError(f"params.yaml: {where}: bad argument: {detail}") from None
    return A.Compose(transforms, seed=seed)


def pipeline_dict(pipeline: Any) -> dict[str, Any]:
    """The exact pipeline, serialised by albumentations itself."""
    import albumentations as A

    return A.to_dict(pipeline)


def load_pipeline(path: Path, seed: int) -> Any:
    """The augment stage's exact pipeline, from its albumentations ``to_dict`` output."""
    import albumentations as A

    pipeline = A.from_dict(json.loads(Path(path).read_text()))
    pipeline.set_random_seed(seed)
    return pipeline


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


def augment_variants(images: np.ndarray, pipeline: Any, per_image: np.ndarray) -> np.ndarray:
    """``per_image[i]`` augmented variants of image ``i``, image-major.

    The pipeline's seed fixes the whole sequence, so the same images and params give the
    same bytes on every run.
    """
    n, total = len(images), int(np.sum(per_image))
    out = np.empty((total, *images.shape[1:]), dtype=np.uint8)
    row = 0
    for i in tqdm(range(n), desc="augment", unit="img", mininterval=1.0, disable=total == 0):
        image = np.asarray(images[i])
        for _ in range(int(per_image[i])):
            out[row] = pipeline(image=image)["image"].reshape(image.shape)
            row += 1
    return out
