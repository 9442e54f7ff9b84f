"""ingest.device: the batched JPEG path (run here on the CPU, the same code as on CUDA) keeps
decode_bytes' contract, falls back to Pillow for what it cannot take, stays within a level
or so of Pillow, and the default path is untouched."""

from __future__ import annotations

import io
import logging
import subprocess
import sys

import numpy as np
import pytest
import torch
import yaml
from PIL import Image

import imgpipe.device
from helpers import REPO, write_digit_folder
from imgpipe.errors import ImgpipeError, ParamsError
from imgpipe.ingest import device_decoding, sources
from imgpipe.ingest.decoding import DecodeSettings, decode_bytes
from imgpipe.ingest.device_decoding import decode_batch, plan_jpeg
from imgpipe.ingest.resampling import pillow_resizes_vertically_first, resample_matrix
from imgpipe.params.ingest import IngestConfig

CPU = torch.device("cpu")
MODES = ["squash", "center_crop", "letterbox"]


def encode(image: Image.Image, fmt: str = "JPEG", **kwargs) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format=fmt, **({"quality": 92} if fmt == "JPEG" else {}) | kwargs)
    return buffer.getvalue()


def scene(width: int, height: int, seed: int = 0, mode: str = "RGB") -> Image.Image:
    """Smooth colour blobs with a few hard edges, like a photo, not like noise."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:height, 0:width] / max(width, height)
    channels = [np.sin(x * rng.uniform(2, 9) + rng.uniform(0, 6)) * np.cos(y * rng.uniform(2, 9)) for _ in range(3)]
    pixels = (np.stack(channels, -1) * 100 + 128).astype(np.uint8)
    pixels[height // 3 : height // 2, width // 4 : width // 2] = rng.integers(0, 255, 3)  # a sharp-edged block
    return Image.fromarray(pixels).convert(mode)


def jpegs() -> list[bytes]:
    """Small JPEGs of every shape the resize modes treat differently, RGB and grey, one
    smaller than the targets below."""
    return [
        encode(scene(40, 30, 1)),
        encode(scene(24, 44, 2)),
        encode(scene(31, 31, 3)),
        encode(scene(50, 20, 4, "L")),
        encode(scene(30, 40, 5), progressive=True),
        encode(scene(10, 13, 6)),
    ]


def others() -> list[bytes]:
    """Files the device never takes: they must come back from the CPU path unchanged."""
    cmyk = Image.new("CMYK", (24, 24), (0, 255, 255, 0))
    good = encode(scene(200, 150, 6))
    return [
        encode(scene(30, 20, 7), "PNG"),
        encode(scene(20, 30, 8).convert("P"), "GIF"),
        encode(cmyk),
        good[: len(good) // 2],
        b"",
        b"not an image at all\n" * 4,
        encode(scene(18, 18, 9, "RGBA"), "PNG"),
    ]


def differences(batched, reference) -> list[tuple[float, int]]:
    """(mean, max) absolute difference per image, after checking the contract holds."""
    found = []
    for got, want in zip(batched, reference, strict=True):
        assert (got.sha256, got.reason) == (want.sha256, want.reason)
        if want.pixels is None:
            assert got.pixels is None
            continue
        assert got.pixels.shape == want.pixels.shape and got.pixels.dtype == np.uint8
        diff = np.abs(got.pixels.astype(int) - want.pixels.astype(int))
        found.append((float(diff.mean()), int(diff.max())))
    return found


@pytest.mark.parametrize("channels", [1, 3])
@pytest.mark.parametrize("mode", MODES)
def test_batched_path_keeps_the_contract_and_matches_pillow_below_draft_size(mode, channels):
    # Targets over half the image: no DCT draft, so only float vs fixed-point rounding differs.
    settings = DecodeSettings(16, channels, mode, 10**7)
    datas = jpegs()
    assert all(plan_jpeg(data, settings) is not None for data in datas)  # these really ran batched
    found = differences(decode_batch(datas, settings, CPU), [decode_bytes(d, settings) for d in datas])
    assert len(found) == len(datas) and max(worst for _, worst in found) <= 1


@pytest.mark.parametrize("mode", MODES)
def test_files_the_device_cannot_take_fall_back_to_identical_pixels_and_reasons(mode):
    settings = DecodeSettings(16, 3, mode, 10**7)
    datas = [*others(), *jpegs()]
    assert all(plan_jpeg(data, settings) is None for data in others())
    batched = decode_batch(datas, settings, CPU)
    reference = [decode_bytes(d, settings) for d in datas]
    differences(batched, reference)
    for got, want in zip(batched[: len(others())], reference):
        assert got.pixels is None and want.pixels is None or np.array_equal(got.pixels, want.pixels)
    assert [r.reason is None for r in batched] == [True, True, True, False, False, False, True, *[True] * 6]


def test_a_jpeg_the_decoder_refuses_is_judged_by_pillow(monkeypatch):
    settings = DecodeSettings(16, 3, "squash", 10**7)
    monkeypatch.setattr(device_decoding, "_decode_jpegs", lambda datas, channels, device: [None] * len(datas))
    datas = jpegs()
    for got, want in zip(decode_batch(datas, settings, CPU), [decode_bytes(d, settings) for d in datas]):
        assert got.sha256 == want.sha256 and np.array_equal(got.pixels, want.pixels)


@pytest.mark.parametrize("orientation", range(1, 9))
@pytest.mark.parametrize("mode", MODES)
def test_exif_orientation_is_honoured_on_the_device(orientation, mode):
    exif = Image.Exif()
    exif[0x0112] = orientation
    data = encode(scene(44, 28, orientation), exif=exif.tobytes())
    settings = DecodeSettings(16, 3, mode, 10**7)  # no draft: 28 < 2 * 16
    assert plan_jpeg(data, settings).orientation == orientation
    ((_, worst),) = differences(decode_batch([data], settings, CPU), [decode_bytes(data, settings)])
    assert worst <= 1


@pytest.mark.parametrize("channels", [1, 3])
@pytest.mark.parametrize("mode", MODES)
def test_draft_sized_jpegs_stay_close_to_pillow(mode, channels):
    # Pillow decodes these at 1/2 to 1/8 scale in the DCT domain; the batch box-averages a full decode.
    settings = DecodeSettings(24, channels, mode, 10**8)
    datas = [encode(scene(w, h, seed)) for seed, (w, h) in enumerate([(200, 150), (130, 260), (400, 100), (96, 96)])]
    found = differences(decode_batch(datas, settings, CPU), [decode_bytes(d, settings) for d in datas])
    assert max(mean for mean, _ in found) < 1.5  # a level and a half on average, per image
    assert np.mean([mean for mean, _ in found]) < 0.8


def test_resize_groups_split_big_batches_without_changing_results(monkeypatch):
    settings = DecodeSettings(16, 3, "letterbox", 10**7)
    datas = jpegs()
    whole = decode_batch(datas, settings, CPU)
    monkeypatch.setattr(device_decoding, "RESIZE_BUDGET", 1)  # one image per matmul
    for a, b in zip(whole, decode_batch(datas, settings, CPU)):
        assert np.abs(a.pixels.astype(int) - b.pixels.astype(int)).max() <= 1


@pytest.mark.parametrize(
    "shape", [(50, 33, 22, 22), (33, 50, 22, 22), (30, 41, 20, 20), (30, 40, 20, 20), (20, 70, 24, 24)]
)
def test_the_pass_order_is_the_one_this_pillow_picks(shape):
    # The order shows in the rounding between the passes; a Pillow that changes its rule fails here first.
    width, height, out_w, out_h = shape
    image = np.random.default_rng(0).integers(0, 256, (height, width), dtype=np.uint8)
    rows, cols = resample_matrix(height, 0, height, out_h), resample_matrix(width, 0, width, out_w)
    level = lambda x: np.clip(np.floor(x + 0.5), 0, 255)  # noqa: E731
    vertical, horizontal = level(level(rows @ image) @ cols.T), level(rows @ level(image @ cols.T))
    want = np.asarray(Image.fromarray(image).resize((out_w, out_h), Image.Resampling.BICUBIC))
    ours = vertical if pillow_resizes_vertically_first(width, height, out_w, out_h) else horizontal
    assert np.abs(ours - want).max() <= 1 and np.abs(ours - want).mean() < 0.01


def ingest_config(**changes) -> IngestConfig:
    raw = yaml.safe_load((REPO / "params.yaml").read_text())["ingest"]
    return IngestConfig.model_validate({**raw, **changes})


@pytest.mark.parametrize("changes", [{"device": "gpu"}, {"device": "cuda", "engine": "ray"}])
def test_a_bad_device_names_the_key(tmp_path, changes):
    params = yaml.safe_load((REPO / "params.yaml").read_text())
    params["ingest"].update(changes)
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params))
    with pytest.raises(ParamsError, match=r"ingest\.device"):
        IngestConfig.load(tmp_path / "params.yaml")


def test_cuda_without_a_gpu_is_refused_and_auto_falls_back(monkeypatch, caplog):
    caplog.set_level(logging.INFO, logger="imgpipe")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(
        ImgpipeError, match=r"ingest\.device: cuda, but torch finds no CUDA GPU.*ingest\.device: auto"
    ) as err:
        sources.decode_device(ingest_config(device="cuda"))
    assert str(err.value).count(". ") == 0  # one sentence
    assert sources.decode_device(ingest_config(device="auto")) is None
    assert sources.decode_device(ingest_config(device="cpu")) is None
    lines = caplog.messages
    assert len(lines) == 1 and "auto" in lines[0] and "CPU" in lines[0]


def test_a_folder_through_the_batched_path_matches_the_cpu_path(tmp_path, monkeypatch):
    write_digit_folder(tmp_path / "imgs", per_class=8)  # JPEG, PNG, BMP, WebP, GIF, TIFF, grey and colour
    (tmp_path / "imgs" / "one" / "cut.jpg").write_bytes(encode(scene(60, 60))[:300])
    cpu = sources.load_source(ingest_config(source="imgs", channels=3, image_size=16, workers=2), tmp_path)
    monkeypatch.setattr(
        imgpipe.device, "batch_accelerator", lambda setting, key: CPU
    )  # "cuda" with the CPU standing in
    batched = sources.load_source(ingest_config(source="imgs", channels=3, image_size=16, device="cuda"), tmp_path)
    assert batched.ids == cpu.ids and batched.sha256 == cpu.sha256 and batched.skipped == cpu.skipped
    assert len(cpu.skipped) == 1 and "truncated" in cpu.skipped[0]["reason"]
    diff = np.abs(batched.images.astype(int) - cpu.images.astype(int))
    is_jpeg = np.array([Image.open(tmp_path / "imgs" / name).format == "JPEG" for name in cpu.ids])
    assert 0 < is_jpeg.sum() < len(is_jpeg) and diff[~is_jpeg].max() == 0  # the rest went through Pillow
    assert diff[is_jpeg].max() <= 3 and diff[is_jpeg].mean() < 0.2  # these JPEGs are drafted at 1/2


def test_the_default_device_is_pillow_and_never_loads_torch(tmp_path):
    write_digit_folder(tmp_path / "imgs", per_class=4)
    script = (
        "import sys, yaml\n"
        "from pathlib import Path\n"
        "from imgpipe.params.ingest import IngestConfig\n"
        "from imgpipe.ingest import sources\n"
        "from imgpipe.ingest.decoding import decode_file\n"
        f"raw = yaml.safe_load(open({str(REPO / 'params.yaml')!r}))['ingest']\n"
        "cfg = IngestConfig.model_validate({**raw, 'source': 'imgs', 'channels': 3, 'image_size': 16})\n"
        "assert cfg.device == 'cpu'\n"
        "source = sources.load_source(cfg, Path('.'))\n"
        "files = [c.path for c in sources.scan_folder(Path('imgs'))]\n"
        "expected = [decode_file(p, sources.decode_settings(cfg)).pixels for p in files]\n"
        "assert all((a == b).all() for a, b in zip(source.images, expected)) and len(files) == len(source.ids)\n"
        "assert 'torch' not in sys.modules, 'the cpu path imported torch'\n"
    )
    out = subprocess.run([sys.executable, "-c", script], cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    assert "ingest.device" not in out.stdout  # no device line on the default path
