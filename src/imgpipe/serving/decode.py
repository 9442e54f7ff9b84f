"""A request row's image as the model takes it: an encoded file decoded exactly as ingest
decoded the training images, within the memory bounds of ``budget``, or decoded pixels
checked against the model's input."""

from __future__ import annotations

import base64
import binascii
import io
import warnings
from typing import Any

import numpy as np

from imgpipe.ingest.decoding import DEFAULT_MAX_PIXELS, DecodeSettings, decode_bytes
from imgpipe.models.spec import ModelSpec
from imgpipe.serving.budget import MB, ByteBudget, Limits
from imgpipe.serving.schema import IMAGE, PIXELS

# What decoding an image of a Pillow mode takes at its peak, in bytes per pixel of the size
# it is decoded at (measured by bench/serving_memory.py, rounded up): the image, and the
# copies that turning it into L or RGB makes (transparency composited on white, 16-bit
# and float images rescaled through float64). Modes not named cost the most.
PEAK_BYTES_PER_PIXEL = {
    "1": 5,
    "L": 5,
    "RGB": 5,
    "CMYK": 5,
    "YCbCr": 5,
    "LAB": 5,
    "HSV": 5,
    "P": 17,
    "PA": 17,
    "LA": 17,
    "La": 17,
    "RGBA": 17,
    "RGBa": 17,
    "F": 17,
    "I;16": 29,
    "I;16L": 29,
    "I;16B": 29,
    "I;16N": 29,
    "I": 33,
}
WORST_BYTES_PER_PIXEL = 33


def decode_settings(spec: ModelSpec) -> DecodeSettings:
    """How ingest decoded the training images (specs older than that record: squash)."""
    if spec.preprocessing:
        return DecodeSettings(**spec.preprocessing)
    return DecodeSettings(spec.image_size, spec.channels, "squash", DEFAULT_MAX_PIXELS)


def row_source(image: Any, pixels: Any, settings: DecodeSettings) -> tuple[bytes | np.ndarray | None, str]:
    """One request row's encoded file (bytes) or checked pixels (an array), or why there is neither."""
    if given(image):
        if isinstance(image, str):  # base64 text: JSON, whichever of MLflow's request forms
            try:
                return base64.b64decode(image, validate=False), ""
            except (binascii.Error, ValueError) as exc:
                return None, f"{IMAGE} is text but not base64 ({exc})"
        if isinstance(image, (bytes, bytearray, memoryview)):
            return bytes(image), ""
        return None, f"{IMAGE} must be an encoded file (bytes, or base64 text in JSON), not {type(image).__name__}"
    if given(pixels):
        return check_pixels(pixels, settings)
    return None, f"the row has neither {IMAGE} (an encoded file) nor {PIXELS} (decoded uint8 pixels)"


def given(value: Any) -> bool:
    # None, NaN or pandas' NA: a column this row left empty
    return value is not None and not (isinstance(value, float) and value != value) and type(value).__name__ != "NAType"


def check_pixels(pixels: Any, settings: DecodeSettings) -> tuple[np.ndarray | None, str]:
    """Decoded pixels as the model takes them, or why they are not."""
    want = (settings.image_size, settings.image_size, settings.channels)
    try:
        array = np.asarray(pixels)
    except (ValueError, TypeError):  # ragged nested lists: rows of different lengths
        return None, f"{PIXELS} must be uint8 values of shape {want}, got nested lists of uneven lengths"
    if array.shape == want[:2] and settings.channels == 1:
        array = array[..., None]
    if array.shape != want or array.dtype.kind not in "ui" or array.min() < 0 or array.max() > 255:
        return None, f"{PIXELS} must be uint8 values of shape {want}, got {array.dtype} values of shape {array.shape}"
    return array.astype(np.uint8), ""


def decoding_cost(data: bytes, settings: DecodeSettings) -> int:
    """The bytes decoding ``data`` would take at its peak, from its header alone (0 when
    decoding refuses it at the header anyway: not an image, over ``max_pixels``)."""
    from PIL import Image

    try:
        with warnings.catch_warnings(), Image.open(io.BytesIO(data)) as image:
            warnings.simplefilter("ignore")
            width, height = image.size
            if width * height > settings.max_pixels:
                return 0
            if image.format == "JPEG":  # decoded downscaled, as ingest's decoding does it
                image.draft(
                    "L" if settings.channels == 1 and image.mode == "RGB" else None,
                    (settings.image_size, settings.image_size),
                )
            width, height = image.size
            return width * height * PEAK_BYTES_PER_PIXEL.get(image.mode, WORST_BYTES_PER_PIXEL)
    except Exception:  # no header Pillow reads: decoding says why, before it allocates anything
        return 0


def decode_row(
    source: bytes | np.ndarray | None, cost: int, settings: DecodeSettings, limits: Limits, budget: ByteBudget
) -> tuple[np.ndarray | None, str]:
    """A row's pixels: an encoded file decoded once its cost fits the budget, or why not."""
    if not isinstance(source, bytes):
        return source, ""
    if cost > limits.image:
        return None, (
            f"decoding this image would take about {cost // MB} MB, over IMGPIPE_SERVE_MAX_IMAGE_MB "
            f"({limits.image // MB}): send it smaller, or raise that bound where the model is served"
        )
    with budget.hold(cost):
        decoded = decode_bytes(source, settings)
    return decoded.pixels, decoded.reason or ""
