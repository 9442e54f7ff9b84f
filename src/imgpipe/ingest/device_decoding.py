"""``ingest.device: cuda | auto``: JPEGs decoded in batches by nvJPEG and resized on the GPU.

``decode_batch`` turns a batch of file contents into the same ``Decoded`` results as
``decoding.decode_bytes`` (the file's sha256, uint8 (size, size, channels) pixels, or a
reason), on any torch device: ``torchvision.io.decode_jpeg`` decodes the baseline and
progressive 8-bit JPEGs (nvJPEG on CUDA, libjpeg-turbo on the CPU, which is how the tests
run it), EXIF orientation is applied with flips and transposes, and ``resampling``'s
matrices resize the whole batch in two matmuls. Everything else takes the CPU path, file
by file: PNG, GIF and other formats, CMYK JPEGs, files that do not end in a JPEG end
marker (truncated ones, so they keep Pillow's "truncated" reason), images over
``ingest.max_pixels``, and any JPEG the device decoder refuses. Skip reasons therefore
stay exactly as on the CPU.

How close to Pillow (``ingest.device: cpu``), measured with this code on the CPU, where
libjpeg-turbo decodes a JPEG at full size bit for bit as Pillow does, so only resizing
can differ. Per image, the mean |difference| in uint8 levels, averaged over the images
(and the worst image's), and the largest single difference:

- images with a side under twice the target (Pillow decodes them at full size too):
  identical but for a rare 1-level tie between float and Pillow's fixed point (mean
  0.000, max 1; 351 of hymenoptera's 397 JPEGs at 224 px);
- larger ones, which Pillow decodes at 1/2, 1/4 or 1/8 scale in the DCT domain
  (``draft``) and this path approximates by box-averaging a full decode. All 397
  hymenoptera JPEGs (~500x375): 224 squash RGB 0.43 (worst 0.58), max 19 (the 46
  drafted ones); 224 center_crop RGB 0.44 (0.71), 28; 64 center_crop RGB 0.34 (2.08),
  105; 64 letterbox RGB 0.20 (1.46), 97; 32 squash grey 0.22 (1.18), 48; 32 center_crop
  RGB 0.34 (1.38), 51. Smooth generated JPEGs: 0.16 to 0.32, max 34 at most.

The large single differences sit on sharp edges and on the last row or column of a
drafted image, where the scaled decode averages the encoder's fill of the last DCT
block. nvJPEG's IDCT and chroma upsampling are not libjpeg-turbo's, so on CUDA the
pixels differ from Pillow's by somewhat more; how much was not measured (no GPU here).
Results are reproducible on one device for the same files in the same order.
"""

from __future__ import annotations

import hashlib
import io
import logging
import warnings
from collections.abc import Iterator, Sequence
from concurrent.futures import Executor, ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np
import torch
from PIL import Image

from imgpipe.ingest.decoding import Decoded, DecodeSettings, decode_bytes, read_file, worker_count
from imgpipe.ingest.resampling import fit_matrices

log = logging.getLogger(__name__)

BATCH = 64  # files per decode call: nvJPEG's batched decoder wants many at once
RESIZE_BUDGET = 256 * 2**20  # bytes of float32 input per resize matmul; big photos go fewer at a time
JPEG_END = b"\xff\xd9"
ORIENTATION = 0x0112  # the EXIF tag exif_transpose reads
# EXIF orientation as a transpose followed by flips of the (then) vertical and horizontal axis.
TRANSPOSED, FLIP_Y, FLIP_X = (5, 6, 7, 8), (3, 4, 7, 8), (2, 3, 6, 7)


def decode_files_on_device(
    paths: Sequence, settings: DecodeSettings, device: torch.device, workers: int, desc: str = "decode"
) -> Iterator[Decoded]:
    """Decode files in order, ``BATCH`` at a time on ``device``, with a progress bar.

    ``workers`` threads read the files and decode those the device cannot (Pillow lets
    go of the GIL while it decodes).
    """
    from tqdm import tqdm

    with (
        ThreadPoolExecutor(worker_count(workers)) as pool,
        tqdm(total=len(paths), desc=f"{desc} ({device.type})", unit="img", mininterval=1.0, dynamic_ncols=True) as bar,
    ):
        for start in range(0, len(paths), BATCH):
            read = list(pool.map(read_file, paths[start : start + BATCH]))
            decoded = iter(decode_batch([r for r in read if isinstance(r, bytes)], settings, device, pool))
            # Unreadable files already carry their reason.
            results = [r if isinstance(r, Decoded) else next(decoded) for r in read]
            bar.update(len(results))
            yield from results


@dataclass(frozen=True)
class _Plan:
    """A JPEG the device can take, with the resize matrices for it (display orientation)."""

    height: int
    width: int
    orientation: int
    rows: np.ndarray  # (size, height) float32
    cols: np.ndarray  # (size, width) float32
    vertical_first: bool  # the pass order Pillow picks, which shows in the rounding


def decode_batch(
    datas: Sequence[bytes], settings: DecodeSettings, device: torch.device, pool: Executor | None = None
) -> list[Decoded]:
    """``decoding.decode_bytes`` for each of ``datas``, the JPEGs decoded and resized on
    ``device`` in one batch, the rest (and JPEGs the device refuses) on the CPU path.
    ``pool`` runs the per-file work (headers, CPU fallbacks) in threads."""
    # Not the builtin map: it would end quietly, results missing, if a call raised StopIteration.
    run = pool.map if pool is not None else (lambda work, items: [work(item) for item in items])
    plans = list(run(lambda data: plan_jpeg(data, settings), datas))
    on_device = [i for i, plan in enumerate(plans) if plan is not None]
    on_cpu = [i for i, plan in enumerate(plans) if plan is None]
    cpu_results = run(lambda i: decode_bytes(datas[i], settings), on_cpu)  # a pool runs them meanwhile
    results: list[Decoded | None] = [None] * len(datas)
    pixels = _device_pixels([datas[i] for i in on_device], [plans[i] for i in on_device], settings, device)
    for i, image in zip(on_device, pixels):
        ok = image is not None
        results[i] = Decoded(hashlib.sha256(datas[i]).hexdigest(), image) if ok else decode_bytes(datas[i], settings)
    for i, result in zip(on_cpu, cpu_results):
        results[i] = result
    return results


def plan_jpeg(data: bytes, settings: DecodeSettings) -> _Plan | None:
    """How the device should take ``data``, or None when it belongs on the CPU path.

    Only the header is read. Files that do not end in the JPEG end marker go to the CPU:
    Pillow calls a truncated file truncated, while device decoders fill in the rest.
    """
    if not data.endswith(JPEG_END):
        return None
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            image = Image.open(io.BytesIO(data))
            orientation = image.getexif().get(ORIENTATION, 1)
    except Exception:  # whatever Pillow makes of it, the CPU path reports it as today
        return None
    width, height = image.size
    if image.format != "JPEG" or image.mode not in ("L", "RGB") or width * height > settings.max_pixels:
        return None  # MPO, CMYK, bombs: the CPU path handles or reports them
    if not isinstance(orientation, int):
        return None
    if orientation in TRANSPOSED:
        width, height = height, width
    rows, cols, vertical_first = fit_matrices(height, width, orientation in FLIP_Y, orientation in FLIP_X, settings)
    return _Plan(height, width, orientation, rows.astype(np.float32), cols.astype(np.float32), vertical_first)


def _device_pixels(
    datas: list[bytes], plans: list[_Plan], s: DecodeSettings, device: torch.device
) -> list[np.ndarray | None]:
    """Pixels of each JPEG, or None where the device's decoder refused it."""
    if not datas:
        return []
    images = _decode_jpegs(datas, s.channels, device)
    done = []
    for image, plan in zip(images, plans):
        if image is not None:
            image = _orient(image, plan.orientation)
            if tuple(image.shape) != (s.channels, plan.height, plan.width):
                image = None  # not what the header promised: let Pillow judge the file
        done.append(image)
    kept = [i for i, image in enumerate(done) if image is not None]
    resized = _resize([done[i] for i in kept], [plans[i] for i in kept], s.image_size, device)
    out: list[np.ndarray | None] = [None] * len(datas)
    for i, pixels in zip(kept, resized):
        out[i] = pixels
    return out


def _decode_jpegs(datas: list[bytes], channels: int, device: torch.device) -> list[torch.Tensor | None]:
    """(C, H, W) uint8 tensors on ``device``; None for a file the decoder refuses."""
    from torchvision.io import ImageReadMode, decode_jpeg

    # GRAY is the JPEG's luma channel, as Pillow's draft("L") gives; RGB replicates a grey JPEG.
    mode = ImageReadMode.GRAY if channels == 1 else ImageReadMode.RGB
    encoded = [torch.frombuffer(bytearray(data), dtype=torch.uint8) for data in datas]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # torchvision's note that its decoders move to torchcodec
        try:
            return list(decode_jpeg(encoded, mode=mode, device=device))
        except RuntimeError:
            pass  # one refused file fails the whole batched call: retry one by one to find it
        images = []
        for one in encoded:
            try:
                images.append(decode_jpeg(one, mode=mode, device=device))
            except RuntimeError:
                images.append(None)
        return images


def _orient(image: torch.Tensor, orientation: int) -> torch.Tensor:
    """``ImageOps.exif_transpose`` on a (C, H, W) tensor."""
    if orientation in TRANSPOSED:
        image = image.transpose(-1, -2)
    dims = [dim for dim, flips in ((-2, FLIP_Y), (-1, FLIP_X)) if orientation in flips]
    return image.flip(dims) if dims else image


def _resize(images: list[torch.Tensor], plans: list[_Plan], size: int, device: torch.device) -> list[np.ndarray]:
    """Each (C, H, W) image to (size, size, C) uint8, in groups of one pass order padded
    to their largest image."""
    # By area, so one big photo does not pad a whole group of small ones up to its size.
    order = sorted(
        range(len(images)), key=lambda i: (plans[i].vertical_first, images[i].shape[-2] * images[i].shape[-1])
    )
    out: list[np.ndarray | None] = [None] * len(images)
    start = 0
    while start < len(order):
        end, height, width = start, 0, 0
        while end < len(order):
            h, w = max(height, images[order[end]].shape[-2]), max(width, images[order[end]].shape[-1])
            too_big = (end - start + 1) * images[order[end]].shape[0] * h * w * 4 > RESIZE_BUDGET
            if end > start and (too_big or plans[order[end]].vertical_first != plans[order[start]].vertical_first):
                break
            end, height, width = end + 1, h, w
        group = order[start:end]
        resized = _resize_group([images[i] for i in group], [plans[i] for i in group], size, (height, width), device)
        for i, pixels in zip(group, resized):
            out[i] = pixels
        start = end
    return out


def _resize_group(images, plans, size: int, shape: tuple[int, int], device: torch.device) -> list[np.ndarray]:
    """One zero-padded batch through both passes; padding meets zero weights, so it adds nothing."""
    height, width = shape
    batch = torch.zeros((len(images), images[0].shape[0], height, width), dtype=torch.float32, device=device)
    rows = np.zeros((len(images), size, height), dtype=np.float32)
    cols = np.zeros((len(images), size, width), dtype=np.float32)
    for k, (image, plan) in enumerate(zip(images, plans)):
        batch[k, :, : plan.height, : plan.width] = image
        rows[k, :, : plan.height], cols[k, :, : plan.width] = plan.rows, plan.cols
    rows_t, cols_t = torch.from_numpy(rows).to(device)[:, None], torch.from_numpy(cols).to(device)[:, None]
    # Rounded to uint8 between the passes, in the order Pillow picks, as Pillow does.
    if plans[0].vertical_first:
        done = _to_uint8_levels(_to_uint8_levels(rows_t @ batch) @ cols_t.transpose(-1, -2))
    else:
        done = _to_uint8_levels(rows_t @ _to_uint8_levels(batch @ cols_t.transpose(-1, -2)))  # (B, C, size, size)
    pixels = done.to(torch.uint8).permute(0, 2, 3, 1).contiguous().cpu().numpy()
    return list(pixels)


def _to_uint8_levels(values: torch.Tensor) -> torch.Tensor:
    # Pillow rounds half up (fixed point plus one half, then a shift) and clips.
    return torch.clamp(torch.floor(values + 0.5), 0, 255)
