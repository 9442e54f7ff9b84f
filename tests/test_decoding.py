"""Decoding one file: every mode and format a real collection throws at it, and bad files."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

from imgpipe.ingest.decoding import DecodeSettings, decode_bytes, decode_file, decode_files

RGB16 = DecodeSettings(image_size=16, channels=3, resize="squash", max_pixels=10_000_000)
GRAY16 = DecodeSettings(image_size=16, channels=1, resize="squash", max_pixels=10_000_000)


def encode(image: Image.Image, fmt: str, **kwargs) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format=fmt, **kwargs)
    return buffer.getvalue()


def halves(width: int = 40, height: int = 40, mode: str = "L") -> Image.Image:
    """Left half black, right half white."""
    array = np.zeros((height, width), dtype=np.uint8)
    array[:, width // 2 :] = 255
    return Image.fromarray(array, "L").convert(mode)


def test_png_named_jpg_is_sniffed_from_content(tmp_path):
    path = tmp_path / "scan.jpg"
    path.write_bytes(encode(halves(), "PNG"))
    out = decode_file(path, GRAY16)
    assert out.reason is None and out.pixels.shape == (16, 16, 1) and out.pixels.dtype == np.uint8
    assert out.pixels[:, :6].max() == 0 and out.pixels[:, -6:].min() == 255


def test_rgba_and_palette_transparency_composite_on_white():
    rgba = Image.new("RGBA", (20, 20), (255, 0, 0, 0))  # fully transparent red
    assert decode_bytes(encode(rgba, "PNG"), RGB16).pixels.min() == 255
    palette = Image.new("P", (20, 20), 0)
    palette.putpalette([0, 0, 0] * 256)
    assert decode_bytes(encode(palette, "PNG", transparency=0), RGB16).pixels.min() == 255
    opaque = Image.new("RGBA", (20, 20), (0, 0, 255, 255))
    assert tuple(decode_bytes(encode(opaque, "PNG"), RGB16).pixels[8, 8]) == (0, 0, 255)


def test_16_bit_grayscale_is_rescaled_not_clipped():
    array = np.full((20, 20), 32896, dtype=np.uint16)  # 50% grey in 16 bits
    image = Image.fromarray(array)
    out = decode_bytes(encode(image, "PNG"), GRAY16)
    assert out.reason is None
    assert abs(int(out.pixels.mean()) - 128) <= 1


def test_cmyk_jpeg_becomes_rgb():
    cmyk = Image.new("CMYK", (24, 24), (0, 255, 255, 0))  # pure red in CMYK
    out = decode_bytes(encode(cmyk, "JPEG", quality=95), RGB16)
    red, green, blue = out.pixels[8, 8].astype(int)
    assert red > 200 and green < 60 and blue < 60


def test_exif_orientation_is_applied():
    exif = Image.Exif()
    exif[0x0112] = 3  # rotate 180 degrees on display
    data = encode(halves(mode="RGB"), "JPEG", quality=95, exif=exif.tobytes())
    out = decode_bytes(data, GRAY16)
    assert out.pixels[:, :5].mean() > 200 and out.pixels[:, -5:].mean() < 50  # white now on the left


def test_animated_gif_uses_first_frame():
    frames = [Image.new("L", (20, 20), 0).convert("P"), Image.new("L", (20, 20), 255).convert("P")]
    buffer = io.BytesIO()
    frames[0].save(buffer, format="GIF", save_all=True, append_images=frames[1:], duration=100, loop=0)
    assert decode_bytes(buffer.getvalue(), GRAY16).pixels.max() == 0


@pytest.mark.parametrize(
    "data, reason",
    [
        (b"", "empty file"),
        (b"this is a text file, not a photo\n" * 3, "not an image"),
        (encode(halves(200, 200, "RGB"), "JPEG")[:400], "truncated"),
    ],
)
def test_bad_files_come_back_with_a_reason(data, reason):
    out = decode_bytes(data, RGB16)
    assert out.pixels is None and reason in out.reason


def test_pixel_limit_skips_decompression_bombs():
    big = encode(Image.new("L", (3000, 3000), 0), "PNG")  # compresses to a few KB
    out = decode_bytes(big, DecodeSettings(16, 1, "squash", max_pixels=1_000_000))
    assert out.pixels is None and "ingest.max_pixels" in out.reason and "3000x3000" in out.reason


def test_resize_modes_keep_or_drop_the_aspect_ratio():
    wide = encode(halves(80, 40), "PNG")  # 2:1, left half black
    squash = decode_bytes(wide, DecodeSettings(16, 1, "squash", 10**7)).pixels[:, :, 0]
    crop = decode_bytes(wide, DecodeSettings(16, 1, "center_crop", 10**7)).pixels[:, :, 0]
    box = decode_bytes(wide, DecodeSettings(16, 1, "letterbox", 10**7)).pixels[:, :, 0]
    assert squash[:, :6].max() == 0 and squash[:, -6:].min() == 255
    assert crop[:, :6].max() == 0 and crop[:, -6:].min() == 255  # the centre still straddles the edge
    assert box[:3].max() == 0 and box[-3:].max() == 0  # bars above and below
    assert box[8, -3:].min() == 255


def test_draft_decoding_of_big_jpegs_matches_a_full_decode():
    rng = np.random.default_rng(0)
    smooth = np.kron(rng.integers(0, 255, (12, 16, 3), dtype=np.uint8), np.ones((100, 100, 1), dtype=np.uint8))
    data = encode(Image.fromarray(smooth), "JPEG", quality=95)  # 1600x1200
    fast = decode_bytes(data, DecodeSettings(32, 3, "squash", 10**8)).pixels.astype(int)
    full = np.asarray(Image.open(io.BytesIO(data)).convert("RGB").resize((32, 32), Image.Resampling.BICUBIC)).astype(
        int
    )
    assert np.abs(fast - full).mean() < 6


def test_parallel_decoding_keeps_order_and_results(tmp_path):
    paths = []
    for i in range(80):
        path = tmp_path / f"{i:03d}.png"
        path.write_bytes(encode(Image.new("L", (10 + i, 10), i * 3), "PNG"))
        paths.append(path)
    serial = list(decode_files(paths, GRAY16, workers=1))
    parallel = list(decode_files(paths, GRAY16, workers=2))
    assert [r.sha256 for r in serial] == [r.sha256 for r in parallel]
    assert all(np.array_equal(a.pixels, b.pixels) for a, b in zip(serial, parallel))
    assert [int(r.pixels[0, 0, 0]) for r in parallel] == [i * 3 for i in range(80)]
