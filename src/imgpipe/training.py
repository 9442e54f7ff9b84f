"""The training loop: explicit, in the style of torchvision's reference scripts.

Images stay uint8 until they reach the device; the model normalises them there, and
flips and crops happen there too, batched. Every source of randomness (the epoch order,
dropout, the augmentations) draws from seeded generators whose state goes into each
epoch's checkpoint, so two runs with the same params, or a killed run resumed from its
checkpoint, end with the same weights on CPU.
"""

from __future__ import annotations

import contextlib
import math
import random
import time
from dataclasses import asdict, dataclass, field
from typing import Any, Callable

import numpy as np
import torch
from torch import nn
from tqdm import tqdm

from imgpipe.checkpoints import Checkpoint
from imgpipe.config import DeviceAugmentConfig, TrainConfig
from imgpipe.distributed import Dist
from imgpipe.errors import ImgpipeError
from imgpipe.models import frozen_batchnorm_eval, parameter_groups


def select_device(preference: str, local_rank: int = 0) -> torch.device:
    """``auto`` picks CUDA, then Apple's MPS, then the CPU; a named device must exist."""
    cuda, mps = torch.cuda.is_available(), torch.backends.mps.is_available()
    if preference == "auto":
        preference = "cuda" if cuda else "mps" if mps else "cpu"
    elif (preference == "cuda" and not cuda) or (preference == "mps" and not mps):
        raise ImgpipeError(f"params.yaml: train.device: '{preference}' is not available here; use 'auto' or 'cpu'.")
    return torch.device(f"cuda:{local_rank}") if preference == "cuda" else torch.device(preference)


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


def make_optimizer(groups: list[dict[str, Any]], cfg: TrainConfig) -> torch.optim.Optimizer:
    if cfg.optimizer == "adam":
        return torch.optim.Adam(groups, lr=cfg.lr, weight_decay=cfg.weight_decay)
    if cfg.optimizer == "adamw":
        return torch.optim.AdamW(groups, lr=cfg.lr, weight_decay=cfg.weight_decay)
    if cfg.optimizer == "sgd":
        return torch.optim.SGD(groups, lr=cfg.lr, momentum=cfg.momentum, nesterov=cfg.nesterov, weight_decay=cfg.weight_decay)
    return torch.optim.RMSprop(groups, lr=cfg.lr, momentum=cfg.momentum, weight_decay=cfg.weight_decay)


class Schedule:
    """The learning-rate schedule, and whether it steps per batch or per epoch."""

    def __init__(self, optimizer: torch.optim.Optimizer, cfg: TrainConfig, steps_per_epoch: int):
        s, total = cfg.scheduler, cfg.epochs * steps_per_epoch
        self.per_batch = s.name in ("cosine", "onecycle")
        self.on_metric = s.name == "plateau"
        if s.name == "cosine":
            warmup = min(int(s.warmup_epochs * steps_per_epoch), total - 1)

            def factor(step: int) -> float:
                if step < warmup:
                    return (step + 1) / warmup
                return 0.5 * (1 + math.cos(math.pi * (step - warmup) / max(total - warmup, 1)))

            self.scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, factor)
        elif s.name == "onecycle":
            peaks = [g["lr"] for g in optimizer.param_groups]
            self.scheduler = torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=peaks, total_steps=total)
        elif s.name == "step":
            self.scheduler = torch.optim.lr_scheduler.StepLR(optimizer, step_size=s.step_size, gamma=s.gamma)
        elif s.name == "plateau":
            mode = "min" if cfg.early_stopping.metric == "val_loss" else "max"
            self.scheduler = torch.optim.lr_scheduler.ReduceLROnPlateau(optimizer, mode=mode, factor=s.gamma, patience=s.patience)
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
class FitResult:
    history: list[EpochResult]
    best_epoch: int
    stopped_early: bool
    resumed_from: int = 0  # the epoch a checkpoint brought back, 0 for a fresh start
    epoch_seconds: list[float] = field(default_factory=list)


@torch.no_grad()
def evaluate_loss(model: nn.Module, images: torch.Tensor, labels: torch.Tensor, batch_size: int,
                  num_classes: int, autocast: Callable = contextlib.nullcontext) -> tuple[float, float, float]:
    """Mean cross-entropy, accuracy and balanced accuracy over uint8 images on the device."""
    model.eval()
    loss_sum, confusion = 0.0, torch.zeros(num_classes, num_classes, dtype=torch.int64)
    for start in range(0, len(images), batch_size):
        x, y = images[start : start + batch_size], labels[start : start + batch_size]
        with autocast():
            logits = model(x).float()
        loss_sum += nn.functional.cross_entropy(logits, y, reduction="sum").item()
        confusion += torch.bincount((y * num_classes + logits.argmax(1)).cpu(), minlength=num_classes**2).view(num_classes, num_classes)
    n = max(len(images), 1)
    support = confusion.sum(1)
    recalls = confusion.diag()[support > 0] / support[support > 0]
    balanced = recalls.mean().item() if len(recalls) else 0.0
    return loss_sum / n, confusion.diag().sum().item() / n, balanced


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


def augment_batch(x: torch.Tensor, cfg: DeviceAugmentConfig, generator: torch.Generator) -> torch.Tensor:
    """Random horizontal flips and padded random crops of a uint8 NHWC batch, on its device.

    The random draws come from the CPU generator, so they repeat run to run and resume
    with the checkpoint, whatever the device.
    """
    n, h, w, _ = x.shape
    if cfg.crop_padding:
        p = cfg.crop_padding
        padded = nn.functional.pad(x, (0, 0, p, p, p, p))  # zero padding, as torchvision's RandomCrop
        dy, dx = torch.randint(0, 2 * p + 1, (2, n), generator=generator).to(x.device)
        rows = (dy[:, None] + torch.arange(h, device=x.device))[:, :, None]
        cols = (dx[:, None] + torch.arange(w, device=x.device))[:, None, :]
        x = padded[torch.arange(n, device=x.device)[:, None, None], rows, cols]
    if cfg.hflip:
        flip = (torch.rand(n, generator=generator) < 0.5).to(x.device)
        x = torch.where(flip[:, None, None, None], x.flip(2), x)
    return x


def _improved(metric: str, value: float, best: float | None) -> bool:
    if best is None:
        return True
    return value < best if metric == "val_loss" else value > best


def fit(
    model: nn.Module,
    train: tuple[np.ndarray, np.ndarray],
    val: tuple[np.ndarray, np.ndarray],
    cfg: TrainConfig,
    device: torch.device,
    on_epoch: Callable[[EpochResult, float], None] = lambda r, seconds: None,
    balancing: Balancing = Balancing(),
    augment=None,
    checkpoint: Checkpoint | None = None,
    resume: dict[str, Any] | None = None,
    dist: Dist = Dist(),
) -> FitResult:
    """Train ``model`` for up to ``cfg.epochs`` epochs; return per-epoch metrics.

    Without ``augment`` the whole train split sits on the device as uint8 and batches are
    index slices of it, the fastest path for small images. With an albumentations
    pipeline, batches come from a DataLoader whose ``cfg.workers`` processes augment each
    image afresh every epoch. Under DDP every process walks the same global batches and
    takes its own share of each, so the result matches a single process.
    ``resume``, a state ``checkpoint`` saved, continues an interrupted run.
    """
    generator = seed_everything(cfg.seed)
    num_classes = int(model.net.head[-1].out_features)
    images, labels = train[0], np.array(train[1], dtype=np.int64)  # a writable copy for torch
    x_val = torch.from_numpy(np.ascontiguousarray(val[0])).to(device)
    y_val = torch.from_numpy(np.array(val[1], dtype=np.int64)).to(device)
    if augment is None:
        x_train = torch.from_numpy(np.ascontiguousarray(images)).to(device)
        y_train = torch.from_numpy(labels).to(device)
    else:
        dataset = AugmentedImages(images, labels, augment)
    sample_weights = None
    if balancing.sampler_weights is not None:
        sample_weights = torch.tensor(balancing.sampler_weights, dtype=torch.float64)[torch.from_numpy(labels)]

    cuda = device.type == "cuda"
    model.to(device)
    if cuda and cfg.channels_last:
        model.to(memory_format=torch.channels_last)  # uint8 NHWC input is channels_last already
    net = dist.wrap(model, device)
    optimizer = make_optimizer(parameter_groups(model, cfg.lr, cfg.backbone_lr_mult), cfg)
    steps_per_epoch = -(-len(labels) // cfg.batch_size)
    schedule = Schedule(optimizer, cfg, steps_per_epoch)
    amp_dtype = {"bf16": torch.bfloat16, "fp16": torch.float16}.get(cfg.precision) if cuda else None
    autocast = (lambda: torch.autocast("cuda", dtype=amp_dtype)) if amp_dtype else contextlib.nullcontext
    scaler = torch.amp.GradScaler("cuda", enabled=amp_dtype is torch.float16)
    loss_weights = torch.tensor(balancing.loss_weights, dtype=torch.float32, device=device) if balancing.loss_weights else None
    criterion = nn.CrossEntropyLoss(weight=loss_weights, label_smoothing=cfg.label_smoothing)

    stop = cfg.early_stopping
    history: list[EpochResult] = []
    best_value, best_epoch, best_state, stale, start = None, 0, None, 0, 1
    if resume is not None:
        model.load_state_dict(resume["model"])
        optimizer.load_state_dict(resume["optimizer"])
        schedule.load_state_dict(resume["scheduler"])
        scaler.load_state_dict(resume["scaler"])
        generator.set_state(resume["generator"])
        torch.set_rng_state(resume["torch_rng"])
        if cuda and resume.get("cuda_rng") is not None:
            torch.cuda.set_rng_state(resume["cuda_rng"], device)
        history = [EpochResult(**r) for r in resume["history"]]
        best_value, best_epoch, best_state, stale = resume["best_value"], resume["best_epoch"], resume["best_state"], resume["stale"]
        start = len(history) + 1
    seconds: list[float] = []
    stopped_early = False

    for epoch in range(start, cfg.epochs + 1):
        began = time.perf_counter()
        net.train()
        frozen_batchnorm_eval(model)
        order = epoch_order(len(labels), generator, sample_weights)
        # Under DDP a trailing batch too small to give every process a row is dropped.
        batches_of_rows = [b[dist.rank :: dist.world] for b in order.split(cfg.batch_size) if len(b) >= dist.world]
        if augment is None:
            batches = ((x_train[idx.to(device)], y_train[idx.to(device)]) for idx in batches_of_rows)
        else:
            # Reseeded from the generator each epoch, so a resumed run sees the same variants.
            augment.set_random_seed(int(torch.randint(0, 2**31, (1,), generator=generator)))
            batches = torch.utils.data.DataLoader(
                dataset, batch_sampler=[b.tolist() for b in batches_of_rows], num_workers=cfg.workers,
                worker_init_fn=_seed_worker_pipeline, generator=generator, pin_memory=cuda,
            )
        totals = torch.zeros(3, dtype=torch.float64)  # loss sum, correct, seen
        bar = tqdm(batches, total=len(batches_of_rows), desc=f"epoch {epoch}/{cfg.epochs}", unit="batch",
                   mininterval=1.0, disable=not dist.is_main)
        for x, y in bar:
            x, y = x.to(device, non_blocking=True), y.to(device, non_blocking=True)
            x = augment_batch(x, cfg.device_augment, generator)
            with autocast():
                logits = net(x)
                loss = criterion(logits.float(), y)
            optimizer.zero_grad(set_to_none=True)
            scaler.scale(loss).backward()
            if cfg.grad_clip_norm:
                scaler.unscale_(optimizer)
                nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip_norm)
            scaler.step(optimizer)
            scaler.update()
            schedule.after_batch()

            totals += torch.tensor([loss.item() * len(y), (logits.argmax(1) == y).sum().item(), len(y)], dtype=torch.float64)
            bar.set_postfix(loss=f"{totals[0] / totals[2]:.4f}", acc=f"{totals[1] / totals[2]:.3f}", refresh=False)
        totals = dist.sum(totals)
        # Every process scores the whole val split, so all agree on early stopping unasked.
        val_loss, val_acc, val_bal = evaluate_loss(model, x_val, y_val, cfg.batch_size * 4, num_classes, autocast)
        lr = optimizer.param_groups[0]["lr"]
        result = EpochResult(epoch, float(totals[0] / totals[2]), float(totals[1] / totals[2]), val_loss, val_acc, val_bal, lr)
        history.append(result)
        value = getattr(result, stop.metric)
        schedule.after_epoch(value)
        if _improved(stop.metric, value, best_value):
            best_value, best_epoch, stale = value, epoch, 0
            if stop.restore_best:
                best_state = {k: v.detach().to("cpu", copy=True) for k, v in model.state_dict().items()}
        else:
            stale += 1
        stopped_early = bool(stop.patience) and stale >= stop.patience
        seconds.append(time.perf_counter() - began)
        if dist.is_main:
            if checkpoint is not None:
                checkpoint.save({
                    "model": model.state_dict(), "optimizer": optimizer.state_dict(), "scheduler": schedule.state_dict(),
                    "scaler": scaler.state_dict(), "generator": generator.get_state(), "torch_rng": torch.get_rng_state(),
                    "cuda_rng": torch.cuda.get_rng_state(device) if cuda else None,
                    "history": [r.as_dict() for r in history], "best_value": best_value, "best_epoch": best_epoch,
                    "best_state": best_state, "stale": stale,
                }, complete=stopped_early or epoch == cfg.epochs)
            on_epoch(result, seconds[-1])
            bar.write(f"epoch {epoch}: train loss {result.train_loss:.4f} acc {result.train_accuracy:.3f} | "
                      f"val loss {val_loss:.4f} acc {val_acc:.3f} balanced {val_bal:.3f} | lr {lr:.2e}")
        if stopped_early:
            if dist.is_main:
                print(f"train: early stop after epoch {epoch}: {stop.metric} has not improved for {stale} epochs")
            break
    if stop.restore_best and best_state is not None and best_epoch != history[-1].epoch:
        model.load_state_dict(best_state)
        if dist.is_main:
            print(f"train: restored the weights of epoch {best_epoch}, the best by {stop.metric} ({best_value:.4f})")
    return FitResult(history, best_epoch, stopped_early, start - 1, seconds)
