"""Which path makes the augment stage's variants, by ``augment.device``.

``cpu`` (the default) is albumentations, one image at a time: ``augment_variants``,
untouched. ``cuda``, or ``auto`` when torch sees a GPU, runs the same transforms in
batches on it (``batched``, imported only then: the CPU path never loads torch).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np

from imgpipe.augment.pipeline import augment_variants

log = logging.getLogger(__name__)

VariantMaker = Callable[[Any, np.ndarray], Iterator[np.ndarray]]


def variant_maker(setting: str, pipeline: Any, entries: list[dict[str, Any]], seed: int) -> VariantMaker:
    """``make(images, per_image)`` for ``augment.device: setting``: it yields what
    ``augment_variants`` yields, per image and image-major, on the chosen path.

    Checks everything before any work: a transform or argument the batched path cannot
    run (for ``auto`` too, so the params work with a GPU and without), and ``cuda``
    where torch finds none.
    """
    if setting == "cpu":
        return lambda images, per_image: augment_variants(images, pipeline, per_image)
    from imgpipe.augment.batched import batched_steps, batched_variants
    from imgpipe.device import batch_accelerator, describe

    steps = batched_steps(pipeline, entries)
    device = batch_accelerator(setting, "augment.device")
    if device is None:
        log.info("augment: augment.device auto: no CUDA GPU here, so albumentations on the CPU, as augment.device: cpu")
        return lambda images, per_image: augment_variants(images, pipeline, per_image)
    log.info(f"augment: augment.device {setting}: batches on {describe(device)}")
    return lambda images, per_image: batched_variants(images, steps, per_image, seed, device)
