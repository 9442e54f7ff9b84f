"""DistributedDataParallel across processes started by torchrun, or one plain process.

The train stage runs unchanged under ``torchrun``: it reads the usual environment
(``RANK``, ``WORLD_SIZE``, ``LOCAL_RANK``, ``MASTER_ADDR``...). With ``train.nproc`` above
1, or torchrun's own ``PET_NNODES`` above 1 (several machines), and no such environment, it
starts torchrun on itself (see :func:`relaunch_command`).
"""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass

import torch
from torch import nn


@dataclass(frozen=True)
class Dist:
    rank: int = 0
    world: int = 1
    local_rank: int = 0

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    def wrap(self, model: nn.Module, device: torch.device) -> nn.Module:
        """The model DDP-wrapped when there are several processes; itself otherwise."""
        if self.world == 1:
            return model
        ids = [device.index] if device.type == "cuda" else None
        return nn.parallel.DistributedDataParallel(model, device_ids=ids)

    def sum(self, tensor: torch.Tensor) -> torch.Tensor:
        """Sum over all processes (gloo reduces on the CPU, nccl on the GPU)."""
        if self.world == 1:
            return tensor
        backend = torch.distributed.get_backend()
        moved = tensor.cuda(self.local_rank) if backend == "nccl" else tensor.clone()
        torch.distributed.all_reduce(moved)
        return moved.cpu()

    def close(self) -> None:
        if self.world > 1 and torch.distributed.is_initialized():
            # Every rank waits for rank 0 to finish writing: on several machines sharing the
            # project, the one running `dvc` must not look for outputs before they exist.
            torch.distributed.barrier()
            torch.distributed.destroy_process_group()


def under_torchrun() -> bool:
    return "WORLD_SIZE" in os.environ and "RANK" in os.environ


def init_from_env() -> Dist:
    """Join the process group torchrun describes: nccl on CUDA, gloo otherwise. Under Ray
    Train the group exists already."""
    if not under_torchrun() or int(os.environ["WORLD_SIZE"]) == 1:
        return Dist()
    if not torch.distributed.is_initialized():
        torch.distributed.init_process_group(backend="nccl" if torch.cuda.is_available() else "gloo")
    return Dist(torch.distributed.get_rank(), torch.distributed.get_world_size(), int(os.environ.get("LOCAL_RANK", 0)))


def nodes_from_env() -> int:
    """Machines taking part, from torchrun's own ``PET_NNODES`` (``2`` or ``1:4``); 1 without it."""
    nnodes = os.environ.get("PET_NNODES", "1").strip()
    try:
        return int(nnodes.split(":")[-1])
    except ValueError:
        return 1  # torchrun itself will say what is wrong with it


def needs_relaunch(nproc: int) -> bool:
    return (nproc > 1 or nodes_from_env() > 1) and not under_torchrun()


def relaunch_command(nproc: int, module: str) -> list[str]:
    """torchrun with ``nproc`` processes here, running ``python -m module``.

    On one machine, ``--standalone``. With ``PET_NNODES`` above 1 torchrun takes the
    rendezvous (``PET_RDZV_BACKEND``, ``PET_RDZV_ENDPOINT``, ``PET_RDZV_ID``) from the
    environment as it documents, so `dvc repro` needs no other command on several machines.
    """
    where = [] if nodes_from_env() > 1 else ["--standalone"]
    return [sys.executable, "-m", "torch.distributed.run", *where, f"--nproc_per_node={nproc}", "-m", module]
