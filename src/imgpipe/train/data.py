"""The training data as batches, and the augmentation done to them on the device.

Without online augmentation the whole train split sits on the device as uint8 and a batch
is an index into it (airbench's way: no per-image Python in the hot loop). A split too big
for that (``train.resident_max_gb``) stays on disk: each batch's rows are read in one
sorted pass while the previous batch trains, and come out the same as from memory. With an
albumentations pipeline, a DataLoader's worker processes augment each image afresh every
epoch. Every random draw comes from the run's seeded generator, so batches repeat run to
run and resume with the checkpoint.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import torch
from torch import nn

from imgpipe.params.train import DeviceAugmentConfig
from imgpipe.train.distributed import Dist


def channel_stats(images: np.ndarray, chunk: int | None = None) -> tuple[list[float], list[float]]:
    """Per-channel mean and std of uint8 images (N, H, W, C), on the 0..1 scale the model uses.

    Two passes over chunks of ``chunk`` images (by default 32 MB of float64), as ``np.mean``
    then ``np.std`` would do on the whole: memory stays one chunk, not a float64 copy of
    the split (8x it).
    """
    chunk = chunk or max(1, 2**22 // max(1, int(np.prod(images.shape[1:]))))
    channels = images.shape[-1]
    count = int(np.prod(images.shape[:-1]))
    total = np.zeros(channels, dtype=np.float64)
    for start in range(0, len(images), chunk):
        total += np.asarray(images[start : start + chunk], dtype=np.float64).reshape(-1, channels).sum(axis=0)
    mean = total / 255.0 / max(count, 1)
    squares = np.zeros(channels, dtype=np.float64)
    for start in range(0, len(images), chunk):
        pixels = np.asarray(images[start : start + chunk], dtype=np.float64).reshape(-1, channels) / 255.0
        squares += ((pixels - mean) ** 2).sum(axis=0)
    std = np.sqrt(squares / max(count, 1))
    return mean.round(6).tolist(), np.where(std > 1e-6, std, 1.0).round(6).tolist()


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
    sampler = torch.utils.data.WeightedRandomSampler(
        sample_weights, num_samples=n, replacement=True, generator=generator
    )
    return torch.tensor(list(sampler), dtype=torch.int64)


def resident(images) -> bool:
    """Whether a split is held in memory (an array) rather than read from disk as needed."""
    return isinstance(images, np.ndarray)


def prefetched(load: Callable, keys: Iterable) -> Iterator:
    """``load(key)`` for each key, in order, the next one loading in a thread meanwhile.

    Reads release the GIL, so the disk works while the model trains.
    """
    with ThreadPoolExecutor(1) as pool:
        pending = None
        for key in keys:
            upcoming = pool.submit(load, key)
            if pending is not None:
                yield pending.result()
            pending = upcoming
        if pending is not None:
            yield pending.result()


class TrainBatches:
    """The train split, served as one epoch of batches at a time: from memory when
    ``images`` is an array, else read from disk (a ``Stacked`` split) batch by batch."""

    def __init__(
        self,
        images,
        labels: np.ndarray,
        device: torch.device,
        batch_size: int,
        sampler_weights: list[float] | None = None,
        augment=None,
        workers: int = 0,
    ):
        self.labels = np.array(labels, dtype=np.int64)  # a writable copy for torch
        self.device, self.batch_size, self.augment, self.workers = device, batch_size, augment, workers
        self.images, self.y = images, torch.from_numpy(self.labels).to(device)
        if augment is None and resident(images):
            self.x = torch.from_numpy(np.ascontiguousarray(images)).to(device)
        elif augment is not None:
            self.dataset = AugmentedImages(images, self.labels, augment)
        self.sample_weights = None
        if sampler_weights is not None:
            self.sample_weights = torch.tensor(sampler_weights, dtype=torch.float64)[torch.from_numpy(self.labels)]

    def __len__(self) -> int:
        return len(self.labels)

    @property
    def steps_per_epoch(self) -> int:
        return -(-len(self.labels) // self.batch_size)

    def epoch(self, generator: torch.Generator, dist: Dist) -> tuple[Iterable, int]:
        """This epoch's batches and their number. Under DDP every process walks the same
        global batches and takes its own share of each, so the result matches one process."""
        order = epoch_order(len(self.labels), generator, self.sample_weights)
        # A trailing batch too small to give every process a row is dropped.
        rows = [b[dist.rank :: dist.world] for b in order.split(self.batch_size) if len(b) >= dist.world]
        if self.augment is None and resident(self.images):
            return ((self.x[idx.to(self.device)], self.y[idx.to(self.device)]) for idx in rows), len(rows)
        if self.augment is None:
            return prefetched(self._read_batch, rows), len(rows)
        # Reseeded from the generator each epoch, so a resumed run sees the same variants.
        self.augment.set_random_seed(int(torch.randint(0, 2**31, (1,), generator=generator)))
        loader = torch.utils.data.DataLoader(
            self.dataset,
            batch_sampler=[b.tolist() for b in rows],
            num_workers=self.workers,
            worker_init_fn=_seed_worker_pipeline,
            generator=generator,
            pin_memory=self.device.type == "cuda",
        )
        return loader, len(rows)

    def _read_batch(self, idx: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        x = torch.from_numpy(self.images[idx.numpy()])
        return x.to(self.device, non_blocking=x.is_pinned()), self.y[idx.to(self.device)]


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
