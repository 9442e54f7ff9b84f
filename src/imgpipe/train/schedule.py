"""The learning-rate schedule, and whether it steps per batch or per epoch."""

from __future__ import annotations

from typing import Any

import torch

from imgpipe.params.train import TrainConfig


class Schedule:
    """torch's schedulers behind one interface, so the loop need not know which one runs."""

    def __init__(self, optimizer: torch.optim.Optimizer, cfg: TrainConfig, steps_per_epoch: int):
        s, total = cfg.scheduler, cfg.epochs * steps_per_epoch
        self.per_batch = s.name in ("cosine", "onecycle")
        self.on_metric = s.name == "plateau"
        if s.name == "cosine":
            self.scheduler = _warmup_cosine(optimizer, min(int(s.warmup_epochs * steps_per_epoch), total - 1), total)
        elif s.name == "onecycle":
            peaks = [g["lr"] for g in optimizer.param_groups]
            self.scheduler = torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=peaks, total_steps=total)
        elif s.name == "step":
            self.scheduler = torch.optim.lr_scheduler.StepLR(optimizer, step_size=s.step_size, gamma=s.gamma)
        elif s.name == "plateau":
            mode = "min" if cfg.early_stopping.metric == "val_loss" else "max"
            self.scheduler = torch.optim.lr_scheduler.ReduceLROnPlateau(
                optimizer, mode=mode, factor=s.gamma, patience=s.patience
            )
        else:
            self.scheduler = None

    def after_batch(self) -> None:
        if self.scheduler is not None and self.per_batch:
            self.scheduler.step()

    def after_epoch(self, metric: float) -> None:
        if self.scheduler is None or self.per_batch:
            return
        self.scheduler.step(metric) if self.on_metric else self.scheduler.step()

    def state_dict(self) -> dict[str, Any]:
        return self.scheduler.state_dict() if self.scheduler is not None else {}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        if self.scheduler is not None:
            self.scheduler.load_state_dict(state)


def _warmup_cosine(optimizer: torch.optim.Optimizer, warmup: int, total: int) -> torch.optim.lr_scheduler.LRScheduler:
    """Per batch: a linear rise over ``warmup`` steps to the full rate, then a cosine to 0."""
    cosine = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=max(total - warmup, 1))
    if warmup == 0:
        return cosine
    # Step t of the warmup trains at (t + 1) / warmup of the rate, so the first batch
    # already learns and the last one reaches the full rate.
    rise = torch.optim.lr_scheduler.LinearLR(
        optimizer, start_factor=1 / warmup, end_factor=1.0, total_iters=max(warmup - 1, 1)
    )
    return torch.optim.lr_scheduler.SequentialLR(optimizer, [rise, cosine], milestones=[warmup])
