"""Turning one image file into uint8 pixels of a fixed size, or a reason it was skipped.

Real collections are messy: PNGs named .jpg, palette and RGBA images, 16-bit scans,
CMYK JPEGs, phone photos that rely on EXIF orientation, animated GIFs, truncated
downloads and the odd text file. ``decode_bytes`` copes with all of them and never raises
on a bad file; it returns a ``Decoded`` whose ``reason`` says why it was skipped.
"""

from __future__ import annotations

import hashlib
import io
import logging
import multiprocessing
import os
import sys
import warnings
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Literal

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

log = logging.getLogger(__name__)

# Pillow's own bomb guard warns, then raises at twice its limit; imgpipe checks the
# header size against ``ingest.max_pixels`` itself before decoding anything, with
# Pillow's limit as the default.
DEFAULT_MAX_PIXELS = 89_478_485
Image.MAX_IMAGE_PIXELS = None

ResizeMode = Literal["squash", "center_crop", "letterbox"]
IMAGE_EXTENSIONS = frozenset({".jpg", ".jpeg", ".png", ".bmp", ".gif", ".webp", ".tif", ".tiff"})
# Bicubic for quality; reducing_gap lets Pillow shrink by whole factors first, which is
# much faster on big photos and looks the same.
_RESAMPLE = Image.Resampling.BICUBIC
_REDUCING_GAP = 3.0


@dataclass(frozen=True)
class DecodeSettings:
    image_size: int
    channels: Literal[1, 3]
    resize: ResizeMode
    max_pixels: int


@dataclass
class Decoded:
    sha256: str | None  # of the file's bytes; None when it could not be read
    pixels: np.ndarray | None  # (size, size, channels) uint8, or None when skipped
    reason: str | None = None  # why it was skipped


def is_image_name(path: Path) -> bool:
    return path.suffix.lower() in IMAGE_EXTENSIONS


def decode_file(path, settings: DecodeSettings) -> Decoded:
    """Read and decode one file, or a tar member (``shards.Member``: ``size`` and
    ``read_bytes(limit)``). Unreadable or bad files come back with a reason."""
    data = read_file(path)
    return data if isinstance(data, Decoded) else decode_bytes(data, settings)


def read_file(path) -> bytes | Decoded:
    """The bytes of a file or tar member, or a ``Decoded`` saying why there are none."""
    try:
        size = path.size if hasattr(path, "size") else Path(path).stat().st_size
        if size > SNIFF_ABOVE and not _looks_like_an_image(path):
            # A big file is judged by its first bytes: a 3 GB non-image named .jpg is never
            # read whole. Ordinary images are read once, without this second open.
            return Decoded(None, None, NOT_AN_IMAGE)
        return path.read_bytes() if hasattr(path, "size") else Path(path).read_bytes()
    except OSError as exc:
        return Decoded(None, None, f"unreadable: {exc.strerror or exc}")


def decode_bytes(data: bytes, settings: DecodeSettings) -> Decoded:
    digest = hashlib.sha256(data).hexdigest()
    if not data:
        return Decoded(digest, None, "empty file (0 bytes)")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # e.g. Pillow's "palette with transparency" note
            pixels = _decode(data, settings)
    except _Skip as skip:
        return Decoded(digest, None, str(skip))
    except UnidentifiedImageError:
        return Decoded(digest, None, NOT_AN_IMAGE)
    except (OSError, SyntaxError, ValueError, EOFError) as exc:
        # Pillow reports truncated and corrupt data as OSError ("image file is truncated").
        return Decoded(digest, None, f"corrupt or truncated image: {exc}")
    return Decoded(digest, pixels, None)


class _Skip(Exception):
    pass


NOT_AN_IMAGE = "not an image: the content is no format Pillow can read"
SNIFF_ABOVE = 64 * 2**20  # bytes; files above this have their header checked before a full read


def _looks_like_an_image(path) -> bool:
    """Whether Pillow recognises the file's header; it reads only the first bytes."""
    try:
        header = io.BytesIO(path.read_bytes(2**20)) if hasattr(path, "size") else path
        with warnings.catch_warnings(), Image.open(header):
            warnings.simplefilter("ignore")  # header notes (TIFF EXIF and the like) are not news here
            return True
    except UnidentifiedImageError:
        return False
    except Exception:  # truncated headers and the like: let the full decode say what is wrong
        return True


def _decode(data: bytes, s: DecodeSettings) -> np.ndarray:
    image = Image.open(io.BytesIO(data))  # format sniffed from the bytes, not the name
    width, height = image.size
    if width * height > s.max_pixels:
        raise _Skip(
            f"decompression bomb guard: {width}x{height} = {width * height} pixels is over "
            f"ingest.max_pixels ({s.max_pixels}); raise it to keep this image"
        )
    if image.format == "JPEG":
        # DCT-domain downscaling: decode at 1/2, 1/4 or 1/8 size, never below the target.
        # It must see the size before EXIF rotation, which only swaps the two sides.
        image.draft("L" if s.channels == 1 and image.mode == "RGB" else None, (s.image_size, s.image_size))
    image.seek(0)  # animated GIF/WebP/TIFF: the first frame
    image.load()
    image = ImageOps.exif_transpose(image)
    image = _to_mode(image, s.channels)
    return _as_array(_fit(image, s.image_size, s.resize))


def fit_pixels(pixels: np.ndarray, settings: DecodeSettings) -> np.ndarray:
    """Already-decoded uint8 pixels, (H, W), (H, W, 1) or (H, W, 3), to the target size and channels."""
    if pixels.ndim == 3 and pixels.shape[-1] == 1:
        pixels = pixels[:, :, 0]
    image = _to_mode(Image.fromarray(np.ascontiguousarray(pixels, dtype=np.uint8)), settings.channels)
    return _as_array(_fit(image, settings.image_size, settings.resize))


def _to_mode(image: Image.Image, channels: int) -> Image.Image:
    """Any Pillow mode to 'L' or 'RGB', compositing transparency on white."""
    if image.mode in ("I", "I;16", "I;16B", "I;16L", "I;16N", "F"):
        image = _high_depth_to_l(image)
    if image.mode == "P" or (image.mode in ("L", "RGB") and "transparency" in image.info):
        image = image.convert("RGBA")
    if image.mode in ("RGBA", "LA", "PA", "La", "RGBa"):
        rgba = image.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        image = Image.alpha_composite(background, rgba)
    target = "L" if channels == 1 else "RGB"
    return image if image.mode == target else image.convert(target)  # CMYK, YCbCr, 1, ...


def _high_depth_to_l(image: Image.Image) -> Image.Image:
    """16-bit and float images: Pillow's convert('L') clips them, so rescale instead."""
    array = np.asarray(image)
    if array.dtype.kind == "f":
        low, high = float(np.nanmin(array)), float(np.nanmax(array))
        scaled = (array - low) * (255.0 / (high - low)) if high > low else np.zeros_like(array)
    else:
        scaled = array.astype(np.float64) / 257.0  # 65535 -> 255
    return Image.fromarray(np.clip(np.rint(scaled), 0, 255).astype(np.uint8), mode="L")


def _fit(image: Image.Image, size: int, mode: ResizeMode) -> Image.Image:
    box = (size, size)
    if mode == "squash":
        return image.resize(box, _RESAMPLE, reducing_gap=_REDUCING_GAP)
    if mode == "center_crop":
        return ImageOps.fit(image, box, _RESAMPLE)
    return ImageOps.pad(image, box, _RESAMPLE, color=0)  # letterbox on black


def _as_array(image: Image.Image) -> np.ndarray:
    array = np.asarray(image, dtype=np.uint8)
    return array[:, :, None] if array.ndim == 2 else array


def available_cores() -> int:
    try:
        return len(os.sched_getaffinity(0))  # respects taskset and container CPU sets
    except AttributeError:  # macOS, Windows
        return os.cpu_count() or 1


def worker_count(asked: int) -> int:
    """``asked`` decoding processes, 0 meaning every core, and never more than there are cores."""
    cores = available_cores()
    if asked > cores:
        log.warning(f"ingest: note: ingest.workers is {asked} but this machine has {cores} cores; using {cores}")
    return min(asked, cores) if asked else cores


def decode_files(
    paths: Sequence[Path], settings: DecodeSettings, workers: int, desc: str = "decode"
) -> Iterator[Decoded]:
    """Decode files in order, across ``workers`` processes (0 = every core), with a progress bar.

    Results come back in input order whatever the number of workers, so the output of
    ingest does not depend on it.
    """
    from tqdm import tqdm

    workers = worker_count(workers)
    work = partial(decode_file, settings=settings)
    bar = tqdm(total=len(paths), desc=desc, unit="img", mininterval=1.0, dynamic_ncols=True)
    with bar:
        if workers == 1 or len(paths) < 64:
            for result in map(work, paths):
                bar.update()
                yield result
            return
        # Chunks amortise inter-process traffic; small enough to keep the bar moving.
        chunksize = max(1, min(64, len(paths) // (workers * 8)))
        with multiprocessing.get_context(_start_method()).Pool(workers) as pool:
            for result in pool.imap(work, paths, chunksize=chunksize):
                bar.update()
                yield result


def _start_method() -> str:
    # fork is cheapest where it is safe (Linux); elsewhere use the platform default.
    return "fork" if sys.platform.startswith("linux") else multiprocessing.get_start_method()
