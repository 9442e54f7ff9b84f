"""Test helpers in one place: throwaway project copies (from imgpipe.sandbox) with tiny params, real image folders."""

from __future__ import annotations

from pathlib import Path

import numpy as np

# The project copies and commands are the library's, shared with the benchmarks; the
# tests' names for them stay importable from here.
from imgpipe.sandbox import Project, copy_project, free_port, run  # noqa: F401

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared" / "datasets"

# Small but real: every stage does its actual work, only on fewer and smaller images.
TINY = {
    "ingest": {"image_size": 16, "imbalance_ratio": 5},
    "augment": {"copies": 1},
    "train": {"epochs": 2, "batch_size": 32, "simple_cnn": {"filters": 8, "kernel_size": 3, "dense_units": 32}},
}


def make_project(root: Path) -> Project:
    """A project copy (see ``copy_project``) with TINY params."""
    proj = copy_project(root)
    proj.set_params(TINY)
    return proj


def decoded_png(path: Path) -> tuple[int, int]:
    """The width and height of the PNG at ``path`` once every pixel has decoded. Fails on
    a truncated file, another format, or one colour throughout (a canvas nothing was drawn on)."""
    from PIL import Image

    with Image.open(path) as image:
        image.load()
        assert image.format == "PNG", f"{path} is {image.format}, not a PNG"
        colours = image.convert("RGB").getcolors(maxcolors=image.width * image.height)
        assert len(colours) > 1, f"{path} is one colour throughout: nothing was drawn"
        return image.size


def write_digit_folder(
    root: Path, per_class: int = 12, classes: tuple[str, ...] = ("zero", "one", "two")
) -> dict[str, list[Path]]:
    """An ImageFolder tree of real digit scans in mixed formats, modes and sizes.

    Class ``k`` holds scans of digit ``k``, upscaled, so a model can learn them. Formats
    rotate through JPEG, PNG (some named .jpg), BMP, WebP, GIF and TIFF, with upper-case
    extensions and a nested subfolder, as real collections have.
    """
    from PIL import Image
    from sklearn.datasets import load_digits

    bunch = load_digits()
    written: dict[str, list[Path]] = {}
    kinds = [
        ("JPEG", ".jpg", "RGB"),
        ("PNG", ".png", "L"),
        ("PNG", ".jpg", "RGBA"),
        ("BMP", ".BMP", "RGB"),
        ("WEBP", ".webp", "RGB"),
        ("GIF", ".gif", "P"),
        ("TIFF", ".tif", "RGB"),
        ("JPEG", ".JPEG", "L"),
    ]
    for label, name in enumerate(classes):
        scans = bunch.images[bunch.target == label][:per_class]
        for i, scan in enumerate(scans):
            fmt, ext, mode = kinds[i % len(kinds)]
            pixels = np.clip(scan * 16, 0, 255).astype(np.uint8)
            size = 40 + 7 * (i % 5)
            image = (
                Image.fromarray(pixels, "L").resize((size, size + 3 * (i % 3)), Image.Resampling.BICUBIC).convert(mode)
            )
            folder = root / name / ("more" if i % 4 == 3 else "")
            folder.mkdir(parents=True, exist_ok=True)
            path = folder / f"{name}_{i:03d}{ext}"
            image.save(path, format=fmt)
            written.setdefault(name, []).append(path)
    return written


def wait_for_server(process, port: int) -> None:
    """Wait until ``mlflow models serve`` (``process``) answers /ping on ``port``; fail the
    test with its last output if it ends or has not answered within two minutes."""
    import time
    import urllib.request

    import pytest

    deadline = time.time() + 120
    while True:
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{port}/ping", timeout=2)
            return
        except OSError:
            if time.time() > deadline or process.poll() is not None:
                pytest.fail(f"mlflow models serve did not start: {process.stderr.read().decode()[-2000:]}")
            time.sleep(0.5)
