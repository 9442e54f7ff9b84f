"""Early stopping: watch one validation metric, stop when it stalls, keep the best weights."""

from __future__ import annotations

from typing import Any

from torch import nn

from imgpipe.params.train import EarlyStoppingConfig


class EarlyStopping:
    def __init__(self, cfg: EarlyStoppingConfig):
        self.cfg = cfg
        self.best_value: float | None = None
        self.best_epoch = 0
        self.best_state: dict[str, Any] | None = None  # on the CPU, only with restore_best
        self.stale = 0  # epochs since the last improvement

    def improved(self, value: float) -> bool:
        if self.best_value is None:
            return True
        return value < self.best_value if self.cfg.metric == "val_loss" else value > self.best_value

    def step(self, epoch: int, value: float, model: nn.Module) -> bool:
        """Record this epoch's metric; True when training should stop here."""
        if self.improved(value):
            self.best_value, self.best_epoch, self.stale = value, epoch, 0
            if self.cfg.restore_best:
                self.best_state = {k: v.detach().to("cpu", copy=True) for k, v in model.state_dict().items()}
        else:
            self.stale += 1
        return self.should_stop

    @property
    def should_stop(self) -> bool:
        return bool(self.cfg.patience) and self.stale >= self.cfg.patience

    def restore_best(self, model: nn.Module, last_epoch: int) -> bool:
        """Load the best epoch's weights when asked for and not the last; True if it did."""
        if not self.cfg.restore_best or self.best_state is None or self.best_epoch == last_epoch:
            return False
        model.load_state_dict(self.best_state)
        return True

    def state_dict(self) -> dict[str, Any]:
        return {
            "best_value": self.best_value,
            "best_epoch": self.best_epoch,
            "best_state": self.best_state,
            "stale": self.stale,
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.best_value, self.best_epoch = state["best_value"], state["best_epoch"]
        self.best_state, self.stale = state["best_state"], state["stale"]
