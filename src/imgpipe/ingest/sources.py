"""Data sources: where labelled images come from, decoded to uint8 at the target size.

``ingest.source`` names one of:

- ``digits``: scikit-learn's handwritten digits, the embedded default;
- ``torchvision:<Name>``: CIFAR10, CIFAR100, MNIST or FashionMNIST, read from
  ``ingest.torchvision_root`` or downloaded there;
- a folder in ImageFolder layout, ``<root>/<class>/...`` (nested folders allowed), or
  pre-split as ``<root>/train/<class>/...`` plus ``val`` and/or ``test``;
- the same tree in tar archives: a folder of WebDataset shards, or one plain ``.tar``
  (see ``shards``);
- a CSV manifest with columns ``path``, ``label`` and optionally ``split``.

Every source returns a ``SourceImages``, so the ingest stage never cares where pixels
came from.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from imgpipe.errors import ImgpipeError
from imgpipe.ingest.decoding import DecodeSettings, decode_files, fit_pixels, is_image_name
from imgpipe.ingest.shards import Member, is_shard_folder, sample_key, shard_files, tar_members
from imgpipe.params.ingest import IngestConfig
from imgpipe.store.dataset import pixel_hash
from imgpipe.store.npy_file import NpyFile, RowWriter

log = logging.getLogger(__name__)

# Folder names that mark a pre-split collection, and the split each one means.
SPLIT_FOLDERS = {"train": "train", "val": "val", "valid": "val", "validation": "val", "test": "test"}
# What each torchvision dataset needs on disk, for users who must place files by hand.
_TORCHVISION_FILES = {
    "CIFAR10": "cifar-10-python.tar.gz from https://www.cs.toronto.edu/~kriz/ unpacked as {root}/cifar-10-batches-py/",
    "CIFAR100": "cifar-100-python.tar.gz from https://www.cs.toronto.edu/~kriz/ unpacked as {root}/cifar-100-python/",
    "MNIST": "the four idx files (train-images-idx3-ubyte, train-labels-idx1-ubyte, t10k-images-idx3-ubyte, "
    "t10k-labels-idx1-ubyte), uncompressed, in {root}/MNIST/raw/",
    "FashionMNIST": "the four idx files (train-images-idx3-ubyte, train-labels-idx1-ubyte, t10k-images-idx3-ubyte, "
    "t10k-labels-idx1-ubyte), uncompressed, in {root}/FashionMNIST/raw/",
}


@dataclass
class SourceImages:
    images: np.ndarray | NpyFile  # (N, H, W, C) uint8 at the configured size and channels
    labels: np.ndarray  # (N,) int64, indices into ``classes``
    classes: list[str]
    ids: list[str]  # stable identifiers: a path relative to the source
    sha256: list[str]  # content hashes, for duplicate detection and the manifest
    splits: np.ndarray  # (N,) str: the split the source put the image in, or "" for none
    builtin: bool = False  # a built-in benchmark set, which ingest.imbalance_ratio thins by default
    scanned: int = 0  # candidate files looked at (decoded or skipped)
    skipped: list[dict[str, str]] = field(default_factory=list)  # {"file", "reason"}
    warnings: list[str] = field(default_factory=list)  # one sentence each: shards cut short or damaged


@dataclass(frozen=True)
class Candidate:
    path: Path | Member  # a file, or a file inside a tar archive
    id: str
    class_name: str
    split: str  # "" when the source does not say


def decode_settings(cfg: IngestConfig) -> DecodeSettings:
    return DecodeSettings(cfg.image_size, cfg.channels, cfg.resize, cfg.max_pixels)


BUILT_IN = ("digits", "torchvision")  # kinds that are no files of the user's


def source_kind(cfg: IngestConfig, root: Path) -> str:
    """What ``ingest.source`` names: ``digits``, ``torchvision``, ``shards`` (a folder of
    WebDataset shards), ``folder`` (class folders), ``csv`` or ``tar``; anything else is
    refused in one sentence. The one place that decides it (ingest, doctor, the stage)."""
    if cfg.source == "digits":
        return "digits"
    if cfg.source.startswith("torchvision:"):
        return "torchvision"
    path = source_path(cfg, root)
    if path.is_dir():
        return "shards" if is_shard_folder(path) else "folder"
    if path.is_file() and path.suffix.lower() in (".csv", ".tar"):
        return path.suffix.lower()[1:]
    raise ImgpipeError(
        f"params.yaml: ingest.source: {cfg.source!r} is neither 'digits', 'torchvision:<Name>', "
        f"a folder of class folders or of .tar shards, a .tar nor a .csv manifest "
        f"({path} does not exist or is another kind of file)."
    )


def source_path(cfg: IngestConfig, root: Path) -> Path:
    """``ingest.source`` as a path; a relative one is relative to the project ``root``."""
    return (root / cfg.source).expanduser()


def load_source(cfg: IngestConfig, root: Path, scratch: Path | None = None) -> SourceImages:
    """Load ``ingest.source``; relative paths are relative to the project ``root``.

    ``scratch``: a folder where image files are decoded to, row by row, instead of
    memory, so a collection bigger than memory can be ingested.
    """
    # Checked before any work, for every source, so a wrong ingest.device fails fast.
    device = decode_device(cfg)
    kind, path = source_kind(cfg, root), source_path(cfg, root)
    if kind == "digits":
        return load_digits(cfg)
    if kind == "torchvision":
        return load_torchvision(cfg, root)
    damage: list[str] = []  # archives that end early or hold unreadable stretches
    found = {
        "shards": lambda: scan_shards(path, damage),
        "folder": lambda: scan_folder(path),
        "csv": lambda: read_manifest_csv(path),
        "tar": lambda: scan_tar(path, damage),
    }[kind]()
    return load_files(found, cfg, scratch, device, damage)


# ----------------------------------------------------------------------- files


def scan_folder(root: Path) -> list[Candidate]:
    """Image files under ``root`` in ImageFolder layout, sorted by path.

    The class is the first folder below ``root`` (or below ``root/<split>`` when the
    collection is pre-split); deeper folders are just organisation. Hidden files and
    folders are ignored, and so are files without an image extension; whether a file
    really is an image is decided later from its bytes.
    """
    top = [d.name for d in root.iterdir() if d.is_dir() and not d.name.startswith(".")]
    repeats: list[tuple[Path, Path]] = []
    files = {path.relative_to(root).as_posix(): path for path in walk_images(root, repeats)}
    for link, seen in repeats:
        log.info(f"note: {link} leads to {seen}, which is read already; its images are counted once, there")
    return classify(files, top, {}, where=str(root))


def scan_shards(folder: Path, damage: list[str] | None = None) -> list[Candidate]:
    """Images in a folder of WebDataset ``.tar`` shards, as ``scan_folder`` finds them on disk;
    a sentence per shard cut short or damaged goes to ``damage``."""
    images, labels = tar_members(shard_files(folder), damage=damage)
    return classify(images, _top_folders(images), labels, where=f"the shards in {folder}")


def scan_tar(tar: Path, damage: list[str] | None = None) -> list[Candidate]:
    """Images in one plain ``.tar`` of an ImageFolder tree (its one top folder dropped)."""
    images, labels = tar_members([tar], keep_tops=frozenset(SPLIT_FOLDERS), damage=damage)
    return classify(images, _top_folders(images), labels, where=str(tar))


def _top_folders(names) -> list[str]:
    return sorted({name.split("/", 1)[0] for name in names if "/" in name})


def classify(files: dict[str, Path | Member], top: list[str], labels: dict[str, str], where: str) -> list[Candidate]:
    """Candidates from image paths relative to the collection's root, sorted as on disk.

    The class is the first folder (below ``train/``, ``val/`` or ``test/`` when every top
    folder is one of those), or the text of a WebDataset ``.cls`` member in ``labels``;
    deeper folders are just organisation.
    """
    lowered = [name.lower() for name in top]
    presplit = "train" in lowered and all(name in SPLIT_FOLDERS for name in lowered)
    found = []
    # Ordered by path components, as a sorted walk of the folder gives them.
    for rel in sorted(files, key=lambda name: name.split("/")):
        parts, split = rel.split("/"), ""
        if presplit:
            if parts[0].lower() not in SPLIT_FOLDERS:
                continue  # a file beside the split folders belongs to no split
            split, parts = SPLIT_FOLDERS[parts[0].lower()], parts[1:]
        label = labels.get(sample_key(rel))
        if label is None and len(parts) < 2:
            continue  # a file beside the class folders belongs to no class
        found.append(Candidate(files[rel], rel, label or parts[0], split))
    if not found:
        layout = "<root>/<class>/<image>" + (" (inside train/, val/, test/)" if presplit else "")
        raise ImgpipeError(
            f"ingest.source: no image files found in {where}; expected {layout}, "
            "or WebDataset samples with a .cls member."
        )
    return found


def walk_images(base: Path, repeats: list[tuple[Path, Path]] | None = None) -> list[Path]:
    """Image files under ``base`` (by extension), sorted; hidden files and folders skipped.

    Symlinked folders are followed, as a user who links a class folder in expects, but each
    real folder is read once: a link to a folder the walk reaches anyway (a loop, a second
    way to a class folder) is not followed, and goes to ``repeats`` as (link, the path read).
    Otherwise its images would count twice, once under each class, and clash as conflicts.
    """
    files, home = [], os.path.realpath(base)
    first = {home: base}
    for folder, dirs, names in os.walk(base, followlinks=True):
        keep = []
        for name in sorted(d for d in dirs if not d.startswith(".")):
            path = Path(folder) / name
            real = os.path.realpath(path)
            seen = first.get(real) or (_visible_inside(base, home, real) if path.is_symlink() else None)
            if seen is not None:
                if repeats is not None:
                    repeats.append((path, seen))
                continue
            first[real] = path
            keep.append(name)
        dirs[:] = keep
        files.extend(Path(folder) / n for n in names if not n.startswith(".") and is_image_name(Path(n)))
    return sorted(files)


def _visible_inside(base: Path, home: str, real: str) -> Path | None:
    """Where the walk of ``base`` reaches the folder ``real`` through plain folders, if it does:
    a link to such a folder would be a second way in, whichever of the two comes first."""
    rel = Path(os.path.relpath(real, home))
    if rel.parts[:1] == ("..",) or any(part.startswith(".") for part in rel.parts):
        return None
    return base / rel


def read_manifest_csv(manifest: Path) -> list[Candidate]:
    """Rows of a CSV manifest (path, label[, split]); paths are relative to its folder."""
    import pandas as pd

    try:
        table = pd.read_csv(manifest, dtype=str, keep_default_na=False)
    except (OSError, ValueError) as exc:
        raise ImgpipeError(f"{manifest}: cannot read the CSV manifest: {exc}") from None
    missing = {"path", "label"} - set(table.columns)
    if missing:
        raise ImgpipeError(
            f"{manifest}: missing column(s) {', '.join(sorted(missing))}; expected path, label and optionally split."
        )
    base = manifest.parent.resolve()
    found = []
    for row, (rel, label, split) in enumerate(
        zip(table["path"], table["label"], table.get("split", [""] * len(table))), start=2
    ):
        where = f"{manifest}, line {row}"
        if not rel or not label:
            raise ImgpipeError(f"{where}: path and label must both be set.")
        split = split.strip().lower()
        if split and split not in SPLIT_FOLDERS:
            raise ImgpipeError(f"{where}: split {split!r} is not one of train, val, test (or empty).")
        path = (base / rel).resolve()
        if not path.is_relative_to(base):
            raise ImgpipeError(
                f"{where}: path {rel!r} escapes the manifest's folder {base}; refusing it. Move the file under that folder."
            )
        found.append(Candidate(path, path.relative_to(base).as_posix(), label.strip(), SPLIT_FOLDERS.get(split, "")))
    if not found:
        raise ImgpipeError(f"{manifest}: the manifest has no rows.")
    return sorted(found, key=lambda c: c.id)


def load_files(
    candidates: list[Candidate],
    cfg: IngestConfig,
    scratch: Path | None = None,
    device=None,
    warnings: list[str] | None = None,
) -> SourceImages:
    """Decode candidates in parallel straight into one preallocated array, or row by row
    into a file in ``scratch``; JPEGs in batches on ``device`` when it is not None.
    ``warnings``: what the scan found wrong with the source, kept for the report.

    Peak memory is the output array plus a few images in flight, however many files; with
    ``scratch``, a few images in flight.
    """
    classes = sorted({c.class_name for c in candidates})
    if len(classes) < 2:
        raise ImgpipeError(
            f"ingest.source: {cfg.source} holds one class ({', '.join(classes)}); a classifier needs "
            "at least two: put each class's images in a folder of its own (or label them in the CSV)."
        )
    index = {name: i for i, name in enumerate(classes)}
    shape, n = (cfg.image_size, cfg.image_size, cfg.channels), len(candidates)
    out = RowWriter(scratch / "decoded.u8", shape) if scratch is not None else np.empty((n, *shape), dtype=np.uint8)
    keep, sha256, skipped = [], [], []
    paths = [c.path for c in candidates]
    for i, result in enumerate(decoded(paths, cfg, device)):
        if result.pixels is None:
            skipped.append({"file": candidates[i].id, "reason": result.reason or "unknown"})
            continue
        if scratch is not None:
            out.append(result.pixels)
        else:
            out[len(keep)] = result.pixels
        keep.append(i)
        sha256.append(result.sha256)
    kept = [candidates[i] for i in keep]
    return SourceImages(
        images=out.close() if scratch is not None else out[: len(kept)],
        labels=np.array([index[c.class_name] for c in kept], dtype=np.int64),
        classes=classes,
        ids=[c.id for c in kept],
        sha256=sha256,
        splits=np.array([c.split for c in kept], dtype=object),
        scanned=n,
        skipped=skipped,
        warnings=list(warnings or []),
    )


def decoded(paths: list, cfg: IngestConfig, device=None):
    """Decoded files in input order: local processes, Ray tasks (``ingest.engine``), or
    batches on ``device`` (``ingest.device``, resolved by ``decode_device``)."""
    if cfg.engine == "ray":
        from imgpipe.ingest.ray_decoding import decode_files_on_ray

        return decode_files_on_ray(paths, decode_settings(cfg), desc="ingest")
    if device is not None:
        from imgpipe.ingest.device_decoding import decode_files_on_device

        return decode_files_on_device(paths, decode_settings(cfg), device, cfg.workers, desc="ingest")
    return decode_files(paths, decode_settings(cfg), cfg.workers, desc="ingest")


def decode_device(cfg: IngestConfig):
    """The torch device ``ingest.device`` asks for, or None for Pillow on the CPU; a
    ``cuda`` this machine cannot honour is refused."""
    if cfg.device == "cpu":
        return None  # torch is not even imported: the default path is the one it always was
    from imgpipe.device import batch_accelerator, describe

    device = batch_accelerator(cfg.device, "ingest.device")
    if device is None:
        log.info("ingest: ingest.device is auto: no CUDA GPU here, so decoding on the CPU with Pillow")
        return None
    if cfg.device == "auto":
        log.info(f"ingest: ingest.device is auto: decoding JPEGs on {describe(device)}")
    return device


# ------------------------------------------------------------------ built-in sets


def _from_arrays(
    pixels: np.ndarray, labels: np.ndarray, classes: list[str], ids: list[str], splits: list[str], cfg: IngestConfig
) -> SourceImages:
    """Resize already-decoded pixels; cheap enough (tiny images) to do in-process."""
    from tqdm import tqdm

    settings = decode_settings(cfg)
    images = np.empty((len(pixels), cfg.image_size, cfg.image_size, cfg.channels), dtype=np.uint8)
    for i, p in enumerate(tqdm(pixels, desc="ingest", unit="img", mininterval=1.0, disable=len(pixels) < 5000)):
        images[i] = fit_pixels(p, settings)
    return SourceImages(
        images=images,
        labels=np.asarray(labels, dtype=np.int64),
        classes=classes,
        ids=ids,
        sha256=[pixel_hash(p) for p in pixels],
        splits=np.array(splits, dtype=object),
        builtin=True,
        scanned=len(pixels),
    )


def load_digits(cfg: IngestConfig) -> SourceImages:
    """scikit-learn's handwritten digits: 1,797 real 8x8 scans shipped inside the package."""
    from sklearn.datasets import load_digits as sklearn_digits

    bunch = sklearn_digits()
    # Pixel values run 0..16 (ink counts); stretch to the full uint8 range.
    small = np.clip(np.rint(bunch.images * (255.0 / 16.0)), 0, 255).astype(np.uint8)
    n = len(small)
    classes = [str(name) for name in bunch.target_names]
    return _from_arrays(small, bunch.target, classes, [f"digits/{i:04d}" for i in range(n)], [""] * n, cfg)


def load_torchvision(cfg: IngestConfig, root: Path) -> SourceImages:
    """A torchvision dataset with its own train/test split; val is carved from train."""
    name = cfg.source.split(":", 1)[1]
    folder = (root / cfg.torchvision_root).expanduser()
    parts = {split: _torchvision_split(name, folder, split == "train", cfg.download) for split in ("train", "test")}
    pixels = np.concatenate([np.asarray(ds.data) for ds in parts.values()])
    labels = np.concatenate([np.asarray(ds.targets) for ds in parts.values()])
    splits = [s for s, ds in parts.items() for _ in range(len(ds.data))]
    ids = [f"{name}/{s}/{i:05d}" for s, ds in parts.items() for i in range(len(ds.data))]
    return _from_arrays(pixels, labels, list(parts["train"].classes), ids, splits, cfg)


def _torchvision_split(name: str, folder: Path, train: bool, download: bool):
    import torchvision.datasets

    dataset = getattr(torchvision.datasets, name)
    try:
        return dataset(str(folder), train=train, download=False)
    except RuntimeError:
        pass  # not on disk yet
    if download:
        try:
            return dataset(str(folder), train=train, download=True)
        except Exception as exc:  # URLError, timeouts, HTTP errors, bad checksums
            reason = f"downloading it failed ({type(exc).__name__}: {exc})"
    else:
        reason = "ingest.download is false"
    raise ImgpipeError(
        f"ingest.source: torchvision:{name} is not in {folder} and {reason}. "
        "Either allow the download on a machine with internet, or put the files there yourself: "
        + _TORCHVISION_FILES[name].format(root=folder)
    )


def check_bad_files(source: SourceImages, max_bad_fraction: float) -> None:
    """A few bad files are skipped; this many means the wrong folder or a broken copy."""
    if source.scanned and len(source.skipped) / source.scanned > max_bad_fraction:
        examples = "; ".join(f"{s['file']}: {s['reason']}" for s in source.skipped[:5])
        raise ImgpipeError(
            f"{len(source.skipped)} of {source.scanned} files could not be used, more than "
            f"ingest.max_bad_fraction ({max_bad_fraction}). First ones: {examples}. "
            "Check ingest.source, or raise ingest.max_bad_fraction to go on without them."
        )
