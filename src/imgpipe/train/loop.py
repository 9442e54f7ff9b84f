"""The training loop, in the shape of torchvision's reference scripts: ``train_one_epoch``,
``evaluate`` and ``fit``, which runs them and checkpoints each epoch in one place.

Images stay uint8 until they reach the device; the model normalises them there, and
flips and crops happen there too, batched. Every source of randomness (the epoch order,
dropout, the augmentations) draws from seeded generators whose state goes into each
epoch's checkpoint, so two runs with the same params, or a killed run resumed from its
checkpoint, end with the same weights on CPU.
"""

from __future__ import annotations

import contextlib
import logging
import time
import warnings
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from sklearn.metrics import accuracy_score, balanced_accuracy_score
from torch import nn
from tqdm import tqdm

from imgpipe.models.freeze import frozen_batchnorm_eval
from imgpipe.params.train import TrainConfig
from imgpipe.train.checkpoint import Checkpoint
from imgpipe.train.data import TrainBatches, augment_batch, resident
from imgpipe.train.distributed import Dist
from imgpipe.train.losses import TrainLoss, class_prior
from imgpipe.train.mixing import mix_batch
from imgpipe.train.state import EpochResult, TrainState, seed_everything

log = logging.getLogger(__name__)


@dataclass
class FitResult:
    history: list[EpochResult]
    best_epoch: int
    stopped_early: bool
    resumed_from: int = 0  # the epoch a checkpoint brought back, 0 for a fresh start
    epoch_seconds: list[float] = field(default_factory=list)


def autocast_for(cfg: TrainConfig, device: torch.device) -> Callable[[], Any]:
    """Mixed precision on CUDA as ``train.precision`` asks; plain fp32 on CPU and MPS."""
    dtype = {"bf16": torch.bfloat16, "fp16": torch.float16}.get(cfg.precision) if device.type == "cuda" else None
    return (lambda: torch.autocast("cuda", dtype=dtype)) if dtype else contextlib.nullcontext


def train_one_epoch(
    state: TrainState,
    net: nn.Module,
    criterion: nn.Module,
    batches: Iterable,
    steps: int,
    cfg: TrainConfig,
    autocast: Callable[[], Any],
    desc: str,
    show: bool,
) -> torch.Tensor:
    """One pass over ``batches``; returns (loss sum, correct, seen) on this process."""
    net.train()
    frozen_batchnorm_eval(state.model)
    totals = torch.zeros(3, dtype=torch.float64)
    bar = tqdm(batches, total=steps, desc=desc, unit="batch", mininterval=1.0, disable=not show)
    for x, y in bar:
        x, y = x.to(state.device, non_blocking=True), y.to(state.device, non_blocking=True)
        x = augment_batch(x, cfg.device_augment, state.generator)
        x, partner, lam = mix_batch(x, y, cfg.mix, state.generator)
        with autocast():
            logits = net(x)
            loss = criterion(logits.float(), y)
            if lam < 1.0:  # mixed: each image's loss shared between its two labels
                loss = lam * loss + (1.0 - lam) * criterion(logits.float(), partner)
        state.optimizer.zero_grad(set_to_none=True)
        state.scaler.scale(loss).backward()
        if cfg.grad_clip_norm:
            state.scaler.unscale_(state.optimizer)
            nn.utils.clip_grad_norm_(state.model.parameters(), cfg.grad_clip_norm)
        state.scaler.step(state.optimizer)
        state.scaler.update()
        if state.ema is not None:
            state.ema.update_parameters(state.model)
        state.schedule.after_batch()
        totals += torch.tensor(
            [loss.item() * len(y), (logits.argmax(1) == y).sum().item(), len(y)], dtype=torch.float64
        )
        bar.set_postfix(loss=f"{totals[0] / totals[2]:.4f}", acc=f"{totals[1] / totals[2]:.3f}", refresh=False)
    return totals


@torch.no_grad()
def evaluate(
    model: nn.Module,
    images,
    labels: torch.Tensor,
    batch_size: int,
    autocast: Callable[[], Any] = contextlib.nullcontext,
) -> tuple[float, float, float]:
    """Mean cross-entropy, accuracy and balanced accuracy over uint8 images: a tensor on
    the device, or a split on disk read batch by batch (onto the labels' device)."""
    model.eval()
    # One array for the predictions (see inference.predict_proba: small tensors kept per
    # batch made CPU memory grow with the split).
    loss_sum, y_pred = 0.0, np.empty(len(images), dtype=np.int64)
    for start in range(0, len(images), batch_size):
        x, y = images[start : start + batch_size], labels[start : start + batch_size]
        x = x if torch.is_tensor(x) else torch.from_numpy(x).to(labels.device)
        with autocast():
            logits = model(x).float()
        loss_sum += nn.functional.cross_entropy(logits, y, reduction="sum").item()
        y_pred[start : start + len(y)] = logits.argmax(1).cpu().numpy()
    if not len(y_pred):
        return 0.0, 0.0, 0.0
    y_true = labels.cpu().numpy()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # "y_pred contains classes not in y_true": those are ignored, as wanted
        balanced = balanced_accuracy_score(y_true, y_pred)
    return loss_sum / len(images), float(accuracy_score(y_true, y_pred)), float(balanced)


def prepare(model: nn.Module, cfg: TrainConfig, device: torch.device, dist: Dist) -> nn.Module:
    """Move the model to the device (channels-last on CUDA) and wrap it for DDP."""
    model.to(device)
    if device.type == "cuda" and cfg.channels_last:
        model.to(memory_format=torch.channels_last)  # uint8 NHWC input is channels_last already
    return dist.wrap(model, device)


def fit(
    model: nn.Module,
    train: TrainBatches,
    val: tuple[np.ndarray, np.ndarray],
    cfg: TrainConfig,
    loss_weights: list[float] | None = None,
    checkpoint: Checkpoint | None = None,
    resume: dict[str, Any] | None = None,
    dist: Dist = Dist(),
    on_epoch: Callable[[EpochResult, float], None] = lambda result, seconds: None,
    prior: list[float] | None = None,
    stage: str = "epoch",
) -> FitResult:
    """Train for up to ``cfg.epochs`` epochs, validating and checkpointing each; ``resume``,
    a state that ``checkpoint`` saved, continues an interrupted run. ``prior`` (how often
    training draws each class; by default the train labels' shares) shapes the loss;
    ``stage`` names the epochs on the console ("head epoch" for the head stage)."""
    device = train.device
    generator = seed_everything(cfg.seed)
    x_val, y_val = val_tensors(val, device)
    net = prepare(model, cfg, device, dist)
    state = TrainState.create(model, cfg, device, train.steps_per_epoch, generator)
    if resume is not None:
        state.load_state_dict(resume)
    autocast = autocast_for(cfg, device)
    if prior is None:
        prior = class_prior(train.labels, int(max(train.labels.max(), np.max(val[1]))) + 1)
    criterion = TrainLoss(cfg, prior, loss_weights, len(train)).to(device)
    resumed_from, seconds, stop = state.epoch, [], state.stopped_early
    last = state.epoch if state.stopped_early else cfg.epochs  # an early-stopped run trains no further
    for epoch in range(state.epoch + 1, last + 1):
        began = time.perf_counter()
        criterion.start_epoch(epoch)
        batches, steps = train.epoch(state.generator, dist)
        totals = dist.sum(
            train_one_epoch(
                state, net, criterion, batches, steps, cfg, autocast, f"{stage} {epoch}/{cfg.epochs}", dist.is_main
            )
        )
        # Every process scores the whole val split, so all agree on early stopping unasked.
        scores = evaluate(state.eval_model, x_val, y_val, cfg.batch_size * 4, autocast)
        lr = state.optimizer.param_groups[0]["lr"]
        result = EpochResult(epoch, float(totals[0] / totals[2]), float(totals[1] / totals[2]), *scores, lr)
        stop = state.end_epoch(result)
        seconds.append(time.perf_counter() - began)
        if dist.is_main:
            if checkpoint is not None:
                checkpoint.save(state.state_dict())  # complete only once the model is saved
            on_epoch(result, seconds[-1])
            announce(
                result,
                stage,
                f"{cfg.early_stopping.metric} has not improved for {state.stopper.stale} epochs" if stop else "",
            )
        if stop:
            break
    _restore_best(state, dist)
    return FitResult(state.history, state.stopper.best_epoch, stop, resumed_from, seconds)


def val_tensors(val: tuple[np.ndarray, np.ndarray], device: torch.device) -> tuple[Any, torch.Tensor]:
    """The val split held on the device like train, or read from disk batch by batch when train is."""
    x_val = torch.from_numpy(np.ascontiguousarray(val[0])).to(device) if resident(val[0]) else val[0]
    return x_val, torch.from_numpy(np.array(val[1], dtype=np.int64)).to(device)


def announce(result: EpochResult, stage: str, stopped_because: str) -> None:
    """The epoch's line on the console (between progress bars), and why training stops, if it does."""
    tqdm.write(
        f"{stage} {result.epoch}: train loss {result.train_loss:.4f} acc {result.train_accuracy:.3f} | "
        f"val loss {result.val_loss:.4f} acc {result.val_accuracy:.3f} "
        f"balanced {result.val_balanced_accuracy:.3f} | lr {result.lr:.2e}"
    )
    if stopped_because:
        log.info(f"train: early stop after epoch {result.epoch}: {stopped_because}")


def _restore_best(state: TrainState, dist: Dist) -> None:
    if state.ema is not None:  # the averaged weights are the ones kept
        state.model.load_state_dict(state.ema.module.state_dict())
    stopper = state.stopper
    if stopper.restore_best(state.model, state.history[-1].epoch) and dist.is_main:
        log.info(
            f"train: restored the weights of epoch {stopper.best_epoch}, the best by {stopper.cfg.metric} "
            f"({stopper.best_value:.4f})"
        )
