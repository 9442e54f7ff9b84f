"""Training speed: imgpipe's loop against the PyTorch-tutorial loop and against pure compute.

Three ways to train the same network (``base_cnn`` and ``resnet18``, same batch size) on
the same CIFAR-10 training images, one pass each, measured side by side and repeated:

- tutorial: torchvision ``ImageFolder`` over the JPEG files with PIL transforms
  (RandomHorizontalFlip, ToTensor, Normalize) and a ``DataLoader`` with 2 workers, the
  loop of the PyTorch CIFAR-10 tutorial;
- imgpipe: ``imgpipe.train.loop.fit`` on the uint8 array ingest writes, with the flip done
  batched on the device (``train.device_augment.hflip``), one epoch;
- compute: forward, backward and optimizer step of the same model on one synthetic uint8
  batch already in memory, the ceiling any data path can reach.

    python bench/train.py --cifar /tmp/cifar --images 10000

Decoding into the uint8 array is ingest's job and is not timed here (see bench/ingest.py).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "bench"))
from shared_data import cifar_folder  # noqa: E402

sys.path.insert(0, str(REPO / "src"))

from imgpipe.device import select_device  # noqa: E402
from imgpipe.models.factory import create_model  # noqa: E402
from imgpipe.models.spec import ModelSpec  # noqa: E402
from imgpipe.params.train import TrainConfig  # noqa: E402
from imgpipe.train.data import TrainBatches, channel_stats  # noqa: E402
from imgpipe.train.loop import fit  # noqa: E402

OPTIONS = {"base_cnn": {"filters": [4, 8, 16], "kernel_size": 7, "padding": "same"}, "resnet18": {}}


def subset(folder: Path, n: int) -> tuple[list[Path], np.ndarray, list[str]]:
    """The first n/10 files of each class, in ImageFolder's order."""
    classes = sorted(d.name for d in (folder / "train").iterdir() if d.is_dir())
    files, labels = [], []
    for label, name in enumerate(classes):
        chosen = sorted((folder / "train" / name).iterdir())[: n // len(classes)]
        files += chosen
        labels += [label] * len(chosen)
    return files, np.array(labels), classes


def make_model(name: str, classes: list[str], mean: list[float], std: list[float]):
    torch.manual_seed(0)
    return create_model(ModelSpec(name, {**OPTIONS[name], "dropout": 0.0}, classes, 32, 3, mean, std))


def train_cfg(name: str, batch_size: int) -> TrainConfig:
    import yaml

    base = yaml.safe_load((REPO / "params.yaml").read_text())["train"]
    return TrainConfig(
        **{
            **base,
            "model": name,
            "base_cnn": OPTIONS["base_cnn"],
            "epochs": 1,
            "batch_size": batch_size,
            "device_augment": {"hflip": True, "crop_padding": 0},
            "early_stopping": {"metric": "val_loss", "patience": 0, "restore_best": False},
        }
    )


def tutorial(name, files, labels, classes, mean, std, batch_size, device) -> float:
    from torchvision import datasets, transforms

    transform = transforms.Compose(
        [transforms.RandomHorizontalFlip(), transforms.ToTensor(), transforms.Normalize(mean, std)]
    )
    dataset = datasets.ImageFolder(str(files[0].parents[1]), transform=transform)
    keep = {str(f) for f in files}
    indices = [i for i, (path, _) in enumerate(dataset.samples) if path in keep]
    loader = torch.utils.data.DataLoader(
        torch.utils.data.Subset(dataset, indices),
        batch_size=batch_size,
        shuffle=True,
        num_workers=2,
        pin_memory=device.type == "cuda",
        persistent_workers=False,
    )
    net = make_model(name, classes, mean, std).net.to(device)
    optimizer = torch.optim.Adam(net.parameters(), lr=1e-3)
    criterion = torch.nn.CrossEntropyLoss()
    seen, start = 0, time.perf_counter()
    for x, y in loader:
        x, y = x.to(device, non_blocking=True), y.to(device, non_blocking=True)
        optimizer.zero_grad()
        loss = criterion(net(x), y)
        loss.backward()
        optimizer.step()
        seen += len(y)
    _sync(device)
    return seen / (time.perf_counter() - start)


def imgpipe_loop(name, images, labels, classes, mean, std, batch_size, device) -> float:
    model = make_model(name, classes, mean, std)
    val = (images[:batch_size], labels[:batch_size])
    cfg = train_cfg(name, batch_size)
    result = fit(model, TrainBatches(images, labels, device, cfg.batch_size), val, cfg)
    return len(images) / result.epoch_seconds[0]


def compute_only(name, n, classes, mean, std, batch_size, device) -> float:
    """The same model and step on one uint8 batch already on the device: no data path at all."""
    model = make_model(name, classes, mean, std).to(device)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    criterion = torch.nn.CrossEntropyLoss()
    x = torch.randint(0, 256, (batch_size, 32, 32, 3), dtype=torch.uint8, device=device)
    y = torch.randint(0, len(classes), (batch_size,), device=device)
    steps = n // batch_size
    for step in range(steps + 1):
        if step == 1:  # the first step warms up allocators and kernels, untimed
            _sync(device)
            start = time.perf_counter()
        optimizer.zero_grad()
        loss = criterion(model(x), y)
        loss.backward()
        optimizer.step()
    loss.item()
    _sync(device)
    return steps * batch_size / (time.perf_counter() - start)


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument(
        "--cifar", help="an unpacked CIFAR-10 JPEG folder (train/<class>/...); default: unpack ../shared"
    )
    parser.add_argument("--images", type=int, default=10000, help="training images per pass (default 10000)")
    parser.add_argument("--resnet-images", type=int, default=1280, help="images per pass for resnet18 (slow on CPU)")
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--models", nargs="+", default=["base_cnn", "resnet18"])
    args = parser.parse_args()

    from imgpipe.ingest.decoding import DEFAULT_MAX_PIXELS, DecodeSettings, decode_files

    device = select_device("auto")
    folder = cifar_folder(args.cifar, Path(tempfile.mkdtemp(prefix="cifar-")))
    print(f"device {device}, torch {torch.__version__}, {torch.get_num_threads()} threads")
    rows = []
    for name in args.models:
        n = args.images if name == "base_cnn" or device.type == "cuda" else args.resnet_images
        files, labels, classes = subset(folder, n)
        images = np.stack(
            [d.pixels for d in decode_files(files, DecodeSettings(32, 3, "squash", DEFAULT_MAX_PIXELS), workers=0)]
        )
        mean, std = channel_stats(images)
        results = {"tutorial": [], "imgpipe": [], "compute": []}
        for _ in range(args.repeats):  # interleaved, so drifts in machine speed hit all three
            results["tutorial"].append(tutorial(name, files, labels, classes, mean, std, args.batch_size, device))
            results["imgpipe"].append(imgpipe_loop(name, images, labels, classes, mean, std, args.batch_size, device))
            results["compute"].append(compute_only(name, len(files), classes, mean, std, args.batch_size, device))
        best = {k: max(v) for k, v in results.items()}
        rows.append((name, len(files), best))
        print(name, {k: [round(x) for x in v] for k, v in results.items()})

    print(
        "\n| model | images | tutorial (img/s) | imgpipe (img/s) | compute only (img/s) | imgpipe / tutorial | imgpipe / compute |"
    )
    print("|---|---:|---:|---:|---:|---:|---:|")
    for name, n, b in rows:
        print(
            f"| {name} | {n} | {b['tutorial']:,.0f} | {b['imgpipe']:,.0f} | {b['compute']:,.0f} | "
            f"{b['imgpipe'] / b['tutorial']:.2f}x | {b['imgpipe'] / b['compute']:.2f} |"
        )


if __name__ == "__main__":
    main()
