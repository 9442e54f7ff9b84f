"""A request row's image as the model takes it: an encoded file decoded exactly as ingest
decoded the training images, or decoded pixels checked against the model's input."""

from __future__ import annotations

import base64
from typing import Any

import numpy as np

from imgpipe.ingest.decoding import DEFAULT_MAX_PIXELS, DecodeSettings, decode_bytes
from imgpipe.models.spec import ModelSpec
from imgpipe.serving.schema import IMAGE, PIXELS


def decode_settings(spec: ModelSpec) -> DecodeSettings:
    """How ingest decoded the training images (specs older than that record: squash)."""
    if spec.preprocessing:
        return DecodeSettings(**spec.preprocessing)
    return DecodeSettings(spec.image_size, spec.channels, "squash", DEFAULT_MAX_PIXELS)


def row_pixels(image: Any, pixels: Any, settings: DecodeSettings) -> tuple[np.ndarray | None, str]:
    """One request row's pixels, or why there are none."""
    if given(image):
        if isinstance(image, str):  # base64 text, from a client that did not declare it binary
            try:
                image = base64.b64decode(image, validate=False)
            except ValueError as exc:
                return None, f"image is text but not base64 ({exc})"
        decoded = decode_bytes(bytes(image), settings)
        return decoded.pixels, decoded.reason or ""
    if given(pixels):
        return check_pixels(pixels, settings)
    return None, f"the row has neither {IMAGE} (an encoded file) nor {PIXELS} (decoded uint8 pixels)"


def given(value: Any) -> bool:
    return value is not None and not (isinstance(value, float) and value != value)  # NaN: a column left empty


def check_pixels(pixels: Any, settings: DecodeSettings) -> tuple[np.ndarray | None, str]:
    """Decoded pixels as the model takes them, or why they are not."""
    array = np.asarray(pixels)
    want = (settings.image_size, settings.image_size, settings.channels)
    if array.shape == want[:2] and settings.channels == 1:
        array = array[..., None]
    if array.shape != want or array.dtype.kind not in "ui" or array.min() < 0 or array.max() > 255:
        return None, f"pixels must be uint8 values of shape {want}, got {array.dtype} values of shape {array.shape}"
    return array.astype(np.uint8), ""
