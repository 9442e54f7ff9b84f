"""``ingest.resize`` as two matrices per image, so a batch resizes in two matmuls on any device.

Pillow resizes an 8-bit image in two passes, horizontal then vertical; each output pixel
is a weighted sum of source pixels along one axis, rounded to uint8. One pass over an
axis of ``n`` pixels to ``size`` is therefore a (size, n) matrix. This module builds the
matrices ``decoding._decode`` effectively applies to a JPEG, by Pillow's own rules:

- the weights of Resample.c's ``precompute_coeffs`` (bicubic, a = -0.5, the kernel
  widened by the scale when shrinking, which is what antialiases);
- the crop box of ``ImageOps.fit`` (center_crop) and the size and placement of
  ``ImageOps.pad`` (letterbox; rows of zeros are the black bars);
- the DCT downscaling of ``JpegImageFile.draft`` (approximated: a box average over the
  same blocks) and, for squash, ``Image.resize``'s ``reducing_gap`` (a box average, as
  ``Image.reduce`` does), both folded into the same matrix, so they cost nothing extra;
- the order of the two passes, which Pillow 13 picks by the image's shape.
"""

from __future__ import annotations

import numpy as np

from imgpipe.ingest.decoding import _REDUCING_GAP, DecodeSettings, ResizeMode

BICUBIC_SUPPORT = 2.0
# (in0, in1, out, offset): the source span [in0, in1) is resampled to ``out`` pixels,
# placed from ``offset`` in the output axis.
Span = tuple[float, float, int, int]


def _bicubic(x: np.ndarray) -> np.ndarray:
    a, x = -0.5, np.abs(x)
    near = ((a + 2.0) * x - (a + 3.0)) * x * x + 1
    far = (((x - 5) * x + 8) * x - 4) * a
    return np.where(x < 1.0, near, np.where(x < 2.0, far, 0.0))


def resample_matrix(in_size: int, in0: float, in1: float, out_size: int) -> np.ndarray:
    """Pillow's bicubic weights from the span [in0, in1) of an axis of ``in_size`` pixels
    to ``out_size`` pixels, as a (out_size, in_size) matrix whose rows sum to 1."""
    if out_size == 0:
        return np.zeros((0, in_size))
    # Pillow hands the box to C as single-precision floats.
    in0, in1 = float(np.float32(in0)), float(np.float32(in1))
    scale = (in1 - in0) / out_size
    filterscale = max(scale, 1.0)
    support = BICUBIC_SUPPORT * filterscale
    center = in0 + (np.arange(out_size) + 0.5) * scale
    # Each output pixel's window of source pixels, rounded as Pillow's C casts round (toward zero).
    low = np.maximum(np.trunc(center - support + 0.5), 0).astype(int)
    high = np.minimum(np.trunc(center + support + 0.5), in_size).astype(int)
    x = low[:, None] + np.arange(int(np.ceil(support)) * 2 + 1)[None, :]  # Pillow's ksize taps at most
    inside = x < high[:, None]
    weights = np.where(inside, _bicubic((x - center[:, None] + 0.5) / filterscale), 0.0)
    total = weights.sum(axis=1, keepdims=True)
    weights = np.divide(weights, total, out=weights, where=total != 0.0)
    matrix = np.zeros((out_size, in_size))
    rows = np.broadcast_to(np.arange(out_size)[:, None], x.shape)
    matrix[rows[inside], x[inside]] = weights[inside]
    return matrix


def box_reduce_matrix(n: int, factor: int, edge_padded: bool = False) -> np.ndarray:
    """Averages of ``factor`` neighbours, (ceil(n / factor), n). A short last block is
    averaged as it is (``Image.reduce``), or ``edge_padded`` with copies of the last pixel:
    JPEG encoders fill the last DCT block so, and a scaled decode averages that fill in."""
    blocks = -(-n // factor)
    matrix = np.zeros((blocks, n))
    block = np.arange(n) // factor
    last = n - (blocks - 1) * factor  # pixels in the last block
    matrix[block, np.arange(n)] = np.where(block < blocks - 1, 1.0 / factor, 1.0 / (factor if edge_padded else last))
    if edge_padded:
        matrix[-1, -1] += (factor - last) / factor
    return matrix


def draft_scale(width: int, height: int, size: int) -> int:
    """The DCT scale ``JpegImageFile.draft`` decodes at for a (size, size) request: the
    largest of 8, 4, 2 and 1 that keeps both sides at least ``size``; 1 for smaller images."""
    fits = min(width // size, height // size)
    return next((scale for scale in (8, 4, 2) if fits >= scale), 1)


def fit_spans(width: int, height: int, size: int, mode: ResizeMode) -> tuple[Span, Span]:
    """(x, y) spans of ``decoding._fit``: squash, ImageOps.fit's centred crop box, or
    ImageOps.pad's aspect-preserving size centred on black."""
    full_x, full_y = (0.0, float(width), size, 0), (0.0, float(height), size, 0)
    ratio = width / height
    if mode == "squash" or ratio == 1.0:
        return full_x, full_y
    if mode == "center_crop":
        if ratio > 1.0:
            left = (width - height) * 0.5
            return (left, left + height, size, 0), full_y
        top = (height - width) * 0.5
        return full_x, (top, top + width, size, 0)
    if ratio > 1.0:
        inner = round(height / width * size)
        return full_x, (0.0, float(height), inner, round((size - inner) * 0.5))
    inner = round(width / height * size)
    return (0.0, float(width), inner, round((size - inner) * 0.5)), full_y


def axis_matrix(full: int, draft: int, reverse: bool, span: Span, size: int, gap: int = 1) -> np.ndarray:
    """The (size, full) matrix for one axis of a decoded, oriented image.

    ``draft``: the DCT scale Pillow would have decoded at, a box average here; it applies
    before EXIF orientation, so on an axis the orientation flips (``reverse``) its short
    last block comes first. ``gap``: squash's reducing_gap factor, after orientation.
    """
    in0, in1, out, offset = span
    drafted = -(-full // draft)
    matrix = np.zeros((size, -(-drafted // gap)))
    matrix[offset : offset + out] = resample_matrix(matrix.shape[1], in0 / gap, in1 / gap, out)
    if gap > 1:
        matrix = matrix @ box_reduce_matrix(drafted, gap)
    if draft > 1:
        reduce = box_reduce_matrix(full, draft, edge_padded=True)
        matrix = matrix @ (reduce[::-1, ::-1] if reverse else reduce)
    return matrix


def fit_matrices(
    height: int, width: int, flip_y: bool, flip_x: bool, s: DecodeSettings
) -> tuple[np.ndarray, np.ndarray, bool]:
    """(Wy, Wx, vertical_first) for a JPEG decoded at full size and oriented (``height`` x
    ``width`` after orientation; ``flip_*``: whether orientation reversed that axis).

    Rounding to uint8 after each pass, ``Wy @ image @ Wx.T`` in the order given is what
    ``decoding._decode`` makes of it, up to the draft approximation.
    """
    size = s.image_size
    draft = draft_scale(width, height, size)  # symmetric, so the orientation does not matter
    w, h = -(-width // draft), -(-height // draft)
    span_x, span_y = fit_spans(w, h, size, s.resize)
    gap_x = gap_y = 1
    if s.resize == "squash":  # only _fit's squash passes reducing_gap
        gap_x, gap_y = int(w / size / _REDUCING_GAP) or 1, int(h / size / _REDUCING_GAP) or 1
    vertical_first = pillow_resizes_vertically_first(-(-w // gap_x), -(-h // gap_y), span_x[2], span_y[2])
    return (
        axis_matrix(height, draft, flip_y, span_y, size, gap_y),
        axis_matrix(width, draft, flip_x, span_x, size, gap_x),
        vertical_first,
    )


def pillow_resizes_vertically_first(in_width: int, in_height: int, out_width: int, out_height: int) -> bool:
    """Pillow 13 runs the vertical pass first when the height shrinks by more than twice
    what the width does (whole image sizes, whatever the box); the rounding in between
    makes the order show in the last bit. Found by testing Pillow 13.0 on random images."""
    return in_height > out_height and in_height - out_height > 2 * (in_width - out_width)
