"""Where models run: CUDA, then Apple's MPS, then the CPU, on one code path."""

from __future__ import annotations

import torch

from imgpipe.errors import ImgpipeError


def select_device(preference: str, local_rank: int = 0) -> torch.device:
    """``auto`` picks CUDA, then Apple's MPS, then the CPU; a named device must exist."""
    cuda, mps = torch.cuda.is_available(), torch.backends.mps.is_available()
    if preference == "auto":
        preference = "cuda" if cuda else "mps" if mps else "cpu"
    elif (preference == "cuda" and not cuda) or (preference == "mps" and not mps):
        raise ImgpipeError(f"params.yaml: train.device: '{preference}' is not available here; use 'auto' or 'cpu'.")
    return torch.device(f"cuda:{local_rank}") if preference == "cuda" else torch.device(preference)
