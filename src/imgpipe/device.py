"""The one device resolver: which torch device a ``<stage>.device`` setting means on this machine.

Training and scoring run on CUDA, then Apple's MPS, then the CPU, on one code path. The
batched ingest and augment paths are written for CUDA only (``accelerators=("cuda",)``): on
a machine without it they fall back to their CPU paths. A named device this machine lacks
is refused in one sentence that names the key. torch is imported only when a device is
asked for, so the CPU-only paths of ingest and augment never load it.
"""

from __future__ import annotations

from typing import Any

from imgpipe.errors import ParamsError

NAMES = {"cuda": "CUDA GPU", "mps": "Apple MPS device"}


def available(accelerators: tuple[str, ...] = ("cuda", "mps")) -> list[str]:
    """The accelerators of ``accelerators`` that torch finds here, in order of preference."""
    import torch

    found = {"cuda": torch.cuda.is_available(), "mps": torch.backends.mps.is_available()}
    return [name for name in accelerators if found[name]]


def select_device(
    setting: str, key: str = "train.device", accelerators: tuple[str, ...] = ("cuda", "mps"), local_rank: int = 0
) -> Any:
    """``setting`` (auto, cpu, or one of ``accelerators``) as a ``torch.device``.

    ``auto`` is the first accelerator found, else the CPU; ``local_rank`` picks the GPU of a
    torchrun worker.
    """
    import torch

    if setting == "cpu":
        return torch.device("cpu")
    found = available(accelerators)
    if setting == "auto":
        setting = found[0] if found else "cpu"
    elif setting not in found:
        what = NAMES.get(setting, setting)
        raise ParamsError(
            f"params.yaml: {key}: {setting}, but torch finds no {what} on this machine; set {key}: "
            f"auto (the {what} where there is one, else the CPU) or cpu."
        )
    return torch.device(f"cuda:{local_rank}") if setting == "cuda" else torch.device(setting)


def describe(device: Any) -> str:
    """``device`` for people: the GPU's name, Apple MPS, or the CPU."""
    import torch

    if device.type == "cuda":
        return f"{device} ({torch.cuda.get_device_name(device)})"
    return "Apple MPS" if device.type == "mps" else "the CPU"


def batch_accelerator(setting: str, key: str) -> Any:
    """For the batched ingest and augment paths: the CUDA device ``setting`` means, or None
    for their CPU paths (``cpu``, or ``auto`` without a GPU)."""
    if setting == "cpu":
        return None
    device = select_device(setting, key, accelerators=("cuda",))
    return None if device.type == "cpu" else device
