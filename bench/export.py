"""Inference speed of an exported model on the CPU: PyTorch eager, TorchScript and onnxruntime,
side by side in one run, at batch 1 and 64 (issue #17).

Two models: the shipped pipeline's ``simple_cnn`` (32 px gray, from models/ after
``dvc repro``, else untrained) and EfficientNet-Lite0 at 224 px RGB with its ImageNet
weights (a typical transfer-learning export). Each row runs the same uint8 images after
a warm-up; images/s is the median of five timed passes.

    python bench/export.py
"""

from __future__ import annotations

import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "src"))
from imgpipe.models.decision import DecidedClassifier, Decision  # noqa: E402
from imgpipe.models.factory import create_model  # noqa: E402
from imgpipe.models.pretrained import initialise  # noqa: E402
from imgpipe.models.saved import load_model  # noqa: E402
from imgpipe.models.spec import ModelSpec  # noqa: E402
from imgpipe.serving.export import _export_onnx, _export_torchscript, runner  # noqa: E402


def models() -> dict[str, tuple[torch.nn.Module, ModelSpec]]:

    out = {}
    if (REPO / "models" / "model.json").is_file():
        spec, model = load_model(REPO / "models")
    else:
        spec = ModelSpec(
            "simple_cnn", {"filters": 32, "kernel_size": 3, "dense_units": 128}, [str(i) for i in range(10)], 32, 1
        )
        model = create_model(spec)
    out["simple_cnn, 32 px gray"] = (model, spec)
    lite = ModelSpec("efficientnet_lite0", {}, ["a", "b"], 224, 3)
    backbone = create_model(lite)
    initialise(backbone, "efficientnet_lite0", True, None)
    out["EfficientNet-Lite0, 224 px RGB"] = (backbone, lite)
    return out


def images_per_second(run, images: np.ndarray, batch: int, passes: int = 5) -> float:
    blocks = [np.ascontiguousarray(images[i : i + batch]) for i in range(0, len(images), batch)]
    run(blocks[0])  # warm-up
    times = []
    for _ in range(passes):
        began = time.perf_counter()
        for block in blocks:
            run(block)
        times.append(time.perf_counter() - began)
    return len(images) / statistics.median(times)


def main() -> None:
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads")
    print("\n| model | runtime | batch 1, images/s | batch 64, images/s |\n|---|---|---:|---:|")
    for name, (model, spec) in models().items():
        decided = DecidedClassifier(model.eval(), Decision(), len(spec.classes)).eval()
        shape = (spec.image_size, spec.image_size, spec.channels)
        images = np.random.default_rng(0).integers(
            0, 256, (128 if spec.image_size < 100 else 64, *shape), dtype=np.uint8
        )
        example = torch.from_numpy(images[:2])
        with tempfile.TemporaryDirectory() as tmp:
            _export_onnx(decided, example, Path(tmp) / "m.onnx")
            _export_torchscript(decided, example, Path(tmp) / "m.pt")
            runs = {
                "PyTorch eager": lambda b: decided(torch.from_numpy(b)).numpy(),
                "TorchScript": runner(Path(tmp) / "m.pt", "torchscript"),
                "onnxruntime": runner(Path(tmp) / "m.onnx", "onnx"),
            }
            with torch.no_grad():
                for runtime, run in runs.items():
                    one = images_per_second(run, images[:16], 1)
                    many = images_per_second(run, images, 64)
                    print(f"| {name} | {runtime} | {one:,.0f} | {many:,.0f} |", flush=True)


if __name__ == "__main__":
    main()
