"""Everything a training run carries from one epoch to the next, saved and restored as one.

``TrainState.state_dict()`` is what a checkpoint holds; ``load_state_dict`` puts a run back
exactly where it was: weights, optimiser, schedule, loss scaler, every random generator,
the history and early stopping. A resumed run therefore ends with the same weights as
an uninterrupted one.
"""

from __future__ import annotations

import random
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn

from imgpipe.models.freeze import parameter_groups
from imgpipe.params.train import TrainConfig
from imgpipe.train.early_stopping import EarlyStopping
from imgpipe.train.optim import create_optimizer
from imgpipe.train.schedule import Schedule


def seed_everything(seed: int) -> torch.Generator:
    """Seed Python, numpy and torch; return the generator that orders and augments batches."""
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    return torch.Generator().manual_seed(seed)


@dataclass
class EpochResult:
    epoch: int
    train_loss: float
    train_accuracy: float
    val_loss: float
    val_accuracy: float
    val_balanced_accuracy: float
    lr: float

    def as_dict(self) -> dict[str, float]:
        return asdict(self)


@dataclass
class TrainState:
    model: nn.Module
    optimizer: torch.optim.Optimizer
    schedule: Schedule
    scaler: torch.amp.GradScaler
    generator: torch.Generator
    stopper: EarlyStopping
    device: torch.device
    history: list[EpochResult] = field(default_factory=list)
    stopped_early: bool = False  # early stopping ended the run: resuming trains no further
    ema: AveragedModel | None = None  # train.ema: the averaged weights, validated and kept

    @property
    def eval_model(self) -> nn.Module:
        """The weights that are validated, kept as the best and saved: the average when on."""
        return self.ema.module if self.ema is not None else self.model

    @classmethod
    def create(
        cls, model: nn.Module, cfg: TrainConfig, device: torch.device, steps_per_epoch: int, generator: torch.Generator
    ) -> TrainState:
        optimizer = create_optimizer(parameter_groups(model, cfg.lr, cfg.backbone_lr_mult), cfg)
        # A loss scaler only for fp16, whose gradients underflow; bf16 and fp32 need none.
        fp16 = device.type == "cuda" and cfg.precision == "fp16"
        # torch's own EMA; use_buffers: batch-norm statistics are averaged too, not left stale.
        ema = (
            AveragedModel(model, multi_avg_fn=get_ema_multi_avg_fn(cfg.ema.decay), use_buffers=True)
            if cfg.ema.decay
            else None
        )
        return cls(
            model,
            optimizer,
            Schedule(optimizer, cfg, steps_per_epoch),
            torch.amp.GradScaler("cuda", enabled=fp16),
            generator,
            EarlyStopping(cfg.early_stopping),
            device,
            ema=ema,
        )

    @property
    def epoch(self) -> int:
        """The last finished epoch (0 before the first)."""
        return len(self.history)

    def end_epoch(self, result: EpochResult) -> bool:
        """Record a finished epoch; True when early stopping says to stop."""
        self.history.append(result)
        value = getattr(result, self.stopper.cfg.metric)
        self.schedule.after_epoch(value)
        self.stopped_early = self.stopper.step(result.epoch, value, self.eval_model)
        return self.stopped_early

    def state_dict(self) -> dict[str, Any]:
        cuda = self.device.type == "cuda"
        return {
            "model": self.model.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "scheduler": self.schedule.state_dict(),
            "scaler": self.scaler.state_dict(),
            "generator": self.generator.get_state(),
            "torch_rng": torch.get_rng_state(),
            "cuda_rng": torch.cuda.get_rng_state(self.device) if cuda else None,
            "history": [r.as_dict() for r in self.history],
            "stopped_early": self.stopped_early,
            "ema": self.ema.state_dict() if self.ema is not None else None,
            **self.stopper.state_dict(),
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.model.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.schedule.load_state_dict(state["scheduler"])
        self.scaler.load_state_dict(state["scaler"])
        self.generator.set_state(state["generator"])
        torch.set_rng_state(state["torch_rng"])
        if self.device.type == "cuda" and state.get("cuda_rng") is not None:
            torch.cuda.set_rng_state(state["cuda_rng"], self.device)
        self.history = [EpochResult(**r) for r in state["history"]]
        self.stopped_early = bool(state.get("stopped_early", False))
        if self.ema is not None:
            self.ema.load_state_dict(state["ema"])
        self.stopper.load_state_dict(state)
