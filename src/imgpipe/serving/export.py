"""``imgpipe export``: the trained model as ONNX or TorchScript, with what a client needs to feed it.

The exported graph is the model as ``imgpipe predict`` runs it: uint8 images (N, H, W, C)
in, normalisation inside, and evaluate's decision (temperature, logit adjustment,
threshold) applied, so softmax of its output is what predict prints. Beside it,
``spec.json`` holds the spec: classes, input size and channels, and how ingest decoded
the training images (``preprocessing``: size, channels, resize mode), which a client must
repeat. The batch size is free. Each export is checked against PyTorch on the test split
before it is kept.
"""

from __future__ import annotations

import json
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from imgpipe.errors import ImgpipeError
from imgpipe.models.decision import DecidedClassifier
from imgpipe.paths import Paths
from imgpipe.store.atomic import atomic_path, refuse_enclosing, refuse_occupied, write_json

FILES = {"onnx": "model.onnx", "torchscript": "model.torchscript.pt"}
SPEC_FILE = "spec.json"
TOLERANCE = 1e-4  # largest difference from PyTorch's output accepted, in log-probability units


@dataclass
class Exported:
    folder: Path
    file: Path
    checked_images: int
    max_difference: float


def export_model(root: Path, model_ref: str | None, fmt: str, out: Path) -> Exported:
    """Write ``out/`` (the model file and spec.json) for the model in ``model_ref`` (default models/)."""
    from imgpipe.models.saved import load_model as load
    from imgpipe.serving.predict import project_decision

    folder = root / (model_ref or Paths(root).model_dir)
    out = Path(out)
    check_output(out, fmt, {"the project root": root, "the current folder": Path.cwd(), "the model folder": folder})
    spec, model = load(folder)
    decided = DecidedClassifier(model, project_decision(root, folder, len(spec.classes)), len(spec.classes)).eval()
    example = torch.zeros((2, spec.image_size, spec.image_size, spec.channels), dtype=torch.uint8)
    images = check_images(root, example)
    with atomic_path(out, replaces=lambda path: is_export(path, fmt)) as tmp:
        tmp.mkdir()
        (_export_onnx if fmt == "onnx" else _export_torchscript)(decided, example, tmp / FILES[fmt])
        write_json(
            tmp / SPEC_FILE,
            {
                **spec.to_dict(),
                "format": fmt,
                "input": "uint8 images (N, H, W, C)",
                "output": "decided logits: softmax gives the class probabilities, in the order of classes",
            },
        )
        difference = compare(decided, runner(tmp / FILES[fmt], fmt), images)
        if difference > TOLERANCE:
            raise ImgpipeError(
                f"the {fmt} export differs from PyTorch by {difference:.2g} on the test split "
                f"(more than {TOLERANCE}); it was not written. Report this with the model's spec."
            )
    return Exported(out, out / FILES[fmt], len(images), difference)


def check_output(out: Path, fmt: str, kept: dict[str, Path]) -> None:
    """Refuse, before any work, an ``-o`` that would replace what export did not write."""
    refuse_enclosing(out, kept)
    if out.is_symlink() or out.exists() and not out.is_dir():
        raise ImgpipeError(
            f"{out} is a file, and export writes a folder (the model file and {SPEC_FILE}): give -o "
            "a folder that is new, empty or a previous export."
        )
    refuse_occupied(out, lambda path: is_export(path, fmt))


def is_export(folder: Path, fmt: str) -> bool:
    """Whether ``folder`` holds a previous export in ``fmt`` and nothing else: only that
    is replaced, never a folder with the user's files (``-o models``, ``-o .``)."""
    names = {p.name for p in folder.iterdir()}
    if SPEC_FILE not in names or not names <= {FILES[fmt], SPEC_FILE}:
        return False
    try:
        return json.loads((folder / SPEC_FILE).read_text()).get("format") == fmt
    except (OSError, ValueError, AttributeError):
        return False


def _export_onnx(model: torch.nn.Module, example: torch.Tensor, path: Path) -> None:
    batch = torch.export.Dim("batch", min=1)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(
            model,
            (example,),
            str(path),
            input_names=["images"],
            output_names=["logits"],
            dynamic_shapes={"images": {0: batch}},
            external_data=False,
            verbose=False,
        )


def _export_torchscript(model: torch.nn.Module, example: torch.Tensor, path: Path) -> None:
    # Traced: the channel check in ImageClassifier becomes a constant, right for this
    # model's input. PyTorch deprecates TorchScript in favour of torch.export; it is kept
    # here for the C++ and mobile runtimes that still load it.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        traced = torch.jit.trace(model, example)
        torch.jit.script(Uint8Images(traced, tuple(example.shape[1:]))).save(str(path))


class Uint8Images(torch.nn.Module):
    """The traced model behind a check of its input. A trace keeps no Python checks, and
    takes float images silently (wrong answers: the normalisation inside expects 0-255
    integers); ONNX refuses them by its typed input, and so does this, scripted."""

    def __init__(self, traced: torch.nn.Module, shape: tuple[int, int, int]):
        super().__init__()
        self.model = traced
        self.shape = list(shape)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        if images.dtype != torch.uint8:
            raise ValueError(
                "the images must be uint8 (N, H, W, C), 0-255, as spec.json says; convert them "
                "to uint8 instead of scaling them to floats"
            )
        if images.dim() != 4 or list(images.shape[1:]) != self.shape:
            raise ValueError(
                "the images must be (N, H, W, C) with H, W, C = spec.json's image_size, image_size, channels"
            )
        return self.model(images)


def runner(path: Path, fmt: str) -> Callable[[np.ndarray], np.ndarray]:
    """A function from a uint8 batch to the exported model's output."""
    if fmt == "onnx":
        import onnxruntime

        session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
        return lambda images: session.run(None, {"images": images})[0]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        loaded = torch.jit.load(str(path), map_location="cpu")
    return lambda images: loaded(torch.from_numpy(images)).detach().numpy()


def check_images(root: Path, example: torch.Tensor) -> Any:
    """The test split's images (uint8 NHWC, read a batch at a time) when this project has
    them, else random ones of the model's input shape."""
    from imgpipe.store.ingested import read_split

    try:
        test = read_split(Paths(root).ingested, "test").images
    except Exception:  # no data/ingest (a model brought from elsewhere): noise of the right shape
        test = []
    if len(test) and np.asarray(test[:1]).shape[1:] == tuple(example.shape[1:]):
        return test
    return np.random.default_rng(0).integers(0, 256, (64, *example.shape[1:]), dtype=np.uint8)


@torch.no_grad()
def compare(
    model: torch.nn.Module, exported: Callable[[np.ndarray], np.ndarray], images: Any, batch: int = 64
) -> float:
    """The largest absolute difference between PyTorch's and the export's outputs, by batches."""
    worst = 0.0
    for start in range(0, len(images), batch):
        block = np.ascontiguousarray(images[start : start + batch])
        expected = model(torch.from_numpy(block)).numpy()
        worst = max(worst, float(np.abs(exported(block) - expected).max()))
    return worst
