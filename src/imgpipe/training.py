"""The training loop: explicit, in the style of torchvision's reference scripts.

Images stay uint8 until they reach the device; the model normalises them there. Each
epoch reshuffles with a seeded generator, so two runs with the same params see the same
batches in the same order.
"""

from __future__ import annotations

import random
from dataclasses import asdict, dataclass
from typing import Callable

import numpy as np
import torch
from torch import nn
from tqdm import tqdm

from imgpipe.config import TrainConfig
from imgpipe.errors import ImgpipeError


def select_device(preference: str) -> torch.device:
    """``auto`` picks CUDA, then Apple's MPS, then the CPU; a named device must exist."""
    cuda, mps = torch.cuda.is_available(), torch.backends.mps.is_available()
    if preference == "auto":
        return torch.device("cuda" if cuda else "mps" if mps else "cpu")
    if (preference == "cuda" and not cuda) or (preference == "mps" and not mps):
        raise ImgpipeError(f"params.yaml: train.device: '{preference}' is not available here; use 'auto' or 'cpu'.")
    return torch.device(preference)


def seed_everything(seed: int) -> torch.Generator:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    return torch.Generator().manual_seed(seed)


def channel_stats(images: np.ndarray) -> tuple[list[float], list[float]]:
    """Per-channel mean and std of uint8 images, on the 0..1 scale the model uses."""
    pixels = np.asarray(images, dtype=np.float64).reshape(-1, images.shape[-1]) / 255.0
    std = pixels.std(axis=0)
    return pixels.mean(axis=0).round(6).tolist(), np.where(std > 1e-6, std, 1.0).round(6).tolist()


def make_optimizer(params, cfg: TrainConfig) -> torch.optim.Optimizer:
    if cfg.optimizer == "adam":
        return torch.optim.Adam(params, lr=cfg.lr, weight_decay=cfg.weight_decay)
    if cfg.optimizer == "adamw":
        return torch.optim.AdamW(params, lr=cfg.lr, weight_decay=cfg.weight_decay)
    if cfg.optimizer == "sgd":
        return torch.optim.SGD(params, lr=cfg.lr, momentum=cfg.momentum, weight_decay=cfg.weight_decay)
    return torch.optim.RMSprop(params, lr=cfg.lr, momentum=cfg.momentum, weight_decay=cfg.weight_decay)


@dataclass
class EpochResult:
    epoch: int
    train_loss: float
    train_accuracy: float
    val_loss: float
    val_accuracy: float

    def as_dict(self) -> dict[str, float]:
        return asdict(self)


@torch.no_grad()
def evaluate_loss(model: nn.Module, images: torch.Tensor, labels: torch.Tensor, batch_size: int) -> tuple[float, float]:
    """Mean cross-entropy and accuracy over a uint8 image tensor already on the device."""
    model.eval()
    loss_sum, correct = 0.0, 0
    for start in range(0, len(images), batch_size):
        x, y = images[start : start + batch_size], labels[start : start + batch_size]
        logits = model(x)
        loss_sum += nn.functional.cross_entropy(logits, y, reduction="sum").item()
        correct += (logits.argmax(1) == y).sum().item()
    n = max(len(images), 1)
    return loss_sum / n, correct / n


def fit(
    model: nn.Module,
    train: tuple[np.ndarray, np.ndarray],
    val: tuple[np.ndarray, np.ndarray],
    cfg: TrainConfig,
    device: torch.device,
    on_epoch: Callable[[EpochResult], None] = lambda r: None,
) -> list[EpochResult]:
    """Train ``model`` for ``cfg.epochs`` epochs; return per-epoch train and val metrics."""
    generator = seed_everything(cfg.seed)
    x_train = torch.from_numpy(np.ascontiguousarray(train[0])).to(device)
    y_train = torch.from_numpy(np.array(train[1], dtype=np.int64)).to(device)
    x_val = torch.from_numpy(np.ascontiguousarray(val[0])).to(device)
    y_val = torch.from_numpy(np.array(val[1], dtype=np.int64)).to(device)

    model.to(device)
    optimizer = make_optimizer(model.parameters(), cfg)
    criterion = nn.CrossEntropyLoss()
    history = []
    for epoch in range(1, cfg.epochs + 1):
        model.train()
        order = torch.randperm(len(x_train), generator=generator).to(device)
        loss_sum, correct, seen = 0.0, 0, 0
        bar = tqdm(range(0, len(order), cfg.batch_size), desc=f"epoch {epoch}/{cfg.epochs}", unit="batch", leave=True, mininterval=1.0)
        for start in bar:
            idx = order[start : start + cfg.batch_size]
            x, y = x_train[idx], y_train[idx]
            logits = model(x)
            loss = criterion(logits, y)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()

            loss_sum += loss.item() * len(idx)
            correct += (logits.argmax(1) == y).sum().item()
            seen += len(idx)
            bar.set_postfix(loss=f"{loss_sum / seen:.4f}", acc=f"{correct / seen:.3f}", refresh=False)  # the bar redraws on its own clock
        val_loss, val_acc = evaluate_loss(model, x_val, y_val, cfg.batch_size * 4)
        result = EpochResult(epoch, loss_sum / seen, correct / seen, val_loss, val_acc)
        bar.write(f"epoch {epoch}: train loss {result.train_loss:.4f} acc {result.train_accuracy:.3f} | val loss {val_loss:.4f} acc {val_acc:.3f}")
        history.append(result)
        on_epoch(result)
    return history
