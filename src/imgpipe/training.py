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


@dataclass
class Balancing:
    """How training evens out classes when the balance stage left the data as it is."""

    loss_weights: list[float] | None = None  # per class index: a weighted cross-entropy
    sampler_weights: list[float] | None = None  # per class index: a WeightedRandomSampler

    @classmethod
    def from_json(cls, data: dict, classes: list[str]) -> "Balancing":
        pick = lambda key: [float(data[key][c]) for c in classes] if data.get(key) else None  # noqa: E731
        return cls(pick("loss_weights"), pick("sampler_weights"))


class AugmentedImages(torch.utils.data.Dataset):
    """Training images passed through an albumentations pipeline each time they are drawn."""

    def __init__(self, images: np.ndarray, labels: np.ndarray, pipeline):
        self.images, self.labels, self.pipeline = images, labels, pipeline

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, int]:
        image = np.asarray(self.images[i])
        out = self.pipeline(image=image)["image"].reshape(image.shape)
        return torch.from_numpy(np.ascontiguousarray(out)), int(self.labels[i])


def _seed_worker_pipeline(worker_id: int) -> None:
    # torch gives each worker of each epoch its own seed, drawn from the loader's seeded
    # generator: augmentations differ across workers and epochs, yet repeat run to run.
    info = torch.utils.data.get_worker_info()
    info.dataset.pipeline.set_random_seed(info.seed % 2**32)


def epoch_order(n: int, generator: torch.Generator, sample_weights: torch.Tensor | None) -> torch.Tensor:
    """This epoch's row order: a seeded shuffle, or a weighted draw with replacement."""
    if sample_weights is None:
        return torch.randperm(n, generator=generator)
    sampler = torch.utils.data.WeightedRandomSampler(sample_weights, num_samples=n, replacement=True, generator=generator)
    return torch.tensor(list(sampler), dtype=torch.int64)


def fit(
    model: nn.Module,
    train: tuple[np.ndarray, np.ndarray],
    val: tuple[np.ndarray, np.ndarray],
    cfg: TrainConfig,
    device: torch.device,
    on_epoch: Callable[[EpochResult], None] = lambda r: None,
    balancing: Balancing = Balancing(),
    augment=None,
) -> list[EpochResult]:
    """Train ``model`` for ``cfg.epochs`` epochs; return per-epoch train and val metrics.

    Without ``augment`` the whole train split sits on the device as uint8 and batches are
    index slices of it, the fastest path for small images. With an albumentations
    pipeline, batches come from a DataLoader whose ``cfg.workers`` processes augment each
    image afresh every epoch.
    """
    generator = seed_everything(cfg.seed)
    images, labels = train[0], np.array(train[1], dtype=np.int64)  # a writable copy for torch
    x_val = torch.from_numpy(np.ascontiguousarray(val[0])).to(device)
    y_val = torch.from_numpy(np.array(val[1], dtype=np.int64)).to(device)
    if augment is None:
        x_train = torch.from_numpy(np.ascontiguousarray(images)).to(device)
        y_train = torch.from_numpy(labels).to(device)
    else:
        augment.set_random_seed(cfg.seed)  # used as is when cfg.workers == 0
        dataset = AugmentedImages(images, labels, augment)
    sample_weights = None
    if balancing.sampler_weights is not None:
        sample_weights = torch.tensor(balancing.sampler_weights, dtype=torch.float64)[torch.from_numpy(labels)]

    model.to(device)
    optimizer = make_optimizer(model.parameters(), cfg)
    loss_weights = torch.tensor(balancing.loss_weights, dtype=torch.float32, device=device) if balancing.loss_weights else None
    criterion = nn.CrossEntropyLoss(weight=loss_weights)
    history = []
    for epoch in range(1, cfg.epochs + 1):
        model.train()
        order = epoch_order(len(labels), generator, sample_weights)
        if augment is None:
            order = order.to(device)
            batches = ((x_train[idx], y_train[idx]) for idx in order.split(cfg.batch_size))
        else:
            batches = torch.utils.data.DataLoader(
                dataset, batch_size=cfg.batch_size, sampler=order.tolist(), num_workers=cfg.workers,
                worker_init_fn=_seed_worker_pipeline, generator=generator, pin_memory=device.type == "cuda",
            )
        loss_sum, correct, seen = 0.0, 0, 0
        bar = tqdm(batches, total=-(-len(order) // cfg.batch_size), desc=f"epoch {epoch}/{cfg.epochs}", unit="batch", mininterval=1.0)
        for x, y in bar:
            x, y = x.to(device, non_blocking=True), y.to(device, non_blocking=True)
            logits = model(x)
            loss = criterion(logits, y)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()

            loss_sum += loss.item() * len(y)
            correct += (logits.argmax(1) == y).sum().item()
            seen += len(y)
            bar.set_postfix(loss=f"{loss_sum / seen:.4f}", acc=f"{correct / seen:.3f}", refresh=False)  # redrawn on its own clock
        val_loss, val_acc = evaluate_loss(model, x_val, y_val, cfg.batch_size * 4)
        result = EpochResult(epoch, loss_sum / seen, correct / seen, val_loss, val_acc)
        bar.write(f"epoch {epoch}: train loss {result.train_loss:.4f} acc {result.train_accuracy:.3f} | val loss {val_loss:.4f} acc {val_acc:.3f}")
        history.append(result)
        on_epoch(result)
    return history
