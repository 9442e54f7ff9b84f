"""Augmentation: an albumentations pipeline declared in params.yaml.

Transform names are looked up among albumentations' own transform classes (no eval, no
import by arbitrary string), and arguments are checked against each transform's
signature and its pydantic schema before any image is touched.
"""

from __future__ import annotations

import inspect
import warnings
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


def augment_copies(images: np.ndarray, pipeline: Any, copies: int) -> np.ndarray:
    """``copies`` augmented variants of each image, image-major: row ``i * copies + k``.

    The pipeline's seed fixes the whole sequence, so the same images and params give the
    same bytes on every run.
    """
    n = len(images)
    out = np.empty((n * copies, *images.shape[1:]), dtype=np.uint8)
    for i in tqdm(range(n), desc="augment", unit="img", mininterval=1.0, disable=n == 0 or copies == 0):
        image = np.asarray(images[i])
        for k in range(copies):
            variant = pipeline(image=image)["image"]
            out[i * copies + k] = variant.reshape(image.shape)
    return out
