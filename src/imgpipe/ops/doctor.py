"""`imgpipe doctor`: is this machine and project ready to run the pipeline, and if not, what to do."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from imgpipe.errors import ImgpipeError


@dataclass
class Check:
    name: str
    ok: bool
    detail: str
    fix: str = ""


def run_checks(root: Path) -> list[Check]:
    return [check_params(root), check_device(), check_dvc(root), check_mlflow(root), check_source(root)]


def check_params(root: Path) -> Check:
    from imgpipe.params.sections import check_all

    path = root / "params.yaml"
    try:
        check_all(path)
    except ImgpipeError as exc:
        return Check(
            "params",
            False,
            str(exc),
            "edit params.yaml as the message says (the docs' params reference lists every key: make docs)",
        )
    return Check("params", True, f"{path} is valid")


def check_device() -> Check:
    import torch

    from imgpipe.device import describe, select_device

    device = select_device("auto")  # what train.device: auto would pick
    if device.type != "cpu":
        return Check("device", True, f"{describe(device)} (torch {torch.__version__})")
    return Check(
        "device",
        True,
        f"CPU, {torch.get_num_threads()} threads (no CUDA or MPS device found; torch {torch.__version__})",
        "fine for small data; with an NVIDIA GPU, check the driver (nvidia-smi) and CUDA_VISIBLE_DEVICES"
        if torch.version.cuda
        else "",
    )


def check_dvc(root: Path) -> Check:
    beside = Path(sys.executable).parent / "dvc"  # the same environment as imgpipe, activated or not
    dvc = str(beside) if beside.is_file() else shutil.which("dvc")
    if not dvc:
        return Check("dvc", False, "the dvc command is not on PATH", "source .venv/bin/activate (or run `make setup`)")
    if not (root / ".dvc").is_dir():
        return Check(
            "dvc", False, f"{root} is not a DVC repository", "run from the imgpipe project root, or `dvc init`"
        )
    out = subprocess.run([dvc, "status", "--json"], cwd=root, capture_output=True, text=True, timeout=120)
    if out.returncode != 0:
        return Check(
            "dvc", False, f"dvc status failed: {out.stderr.strip()[-300:]}", "fix the error above, then rerun doctor"
        )
    changed = sorted(json.loads(out.stdout or "{}"))
    if changed:
        return Check(
            "dvc", True, f"pipeline out of date: {', '.join(changed)} would rerun", "`dvc repro` brings it up to date"
        )
    return Check("dvc", True, "pipeline up to date (dvc status: nothing to reproduce)")


def check_mlflow(root: Path) -> Check:
    from imgpipe.tracking.store import check_reachable, tracking_uri

    uri = tracking_uri(root)
    try:
        check_reachable(uri)
    except ImgpipeError as exc:
        return Check("mlflow", False, str(exc), "start the server or fix MLFLOW_TRACKING_URI")
    if uri.startswith("sqlite:///"):
        db = Path(uri.removeprefix("sqlite:///"))
        folder = db.parent
        if not folder.is_dir() or not (db.exists() or os.access(folder, os.W_OK)):
            return Check(
                "mlflow", False, f"{uri}: {folder} is not writable", "fix the permissions or set MLFLOW_TRACKING_URI"
            )
        state = "exists" if db.exists() else "will be created by the first run"
        return Check("mlflow", True, f"{uri} ({state}); browse with `make mlflow-ui`")
    return Check("mlflow", True, f"{uri} answers")


def check_source(root: Path) -> Check:
    from imgpipe.params.ingest import IngestConfig

    try:
        cfg = IngestConfig.load(root / "params.yaml")
    except ImgpipeError as exc:
        return Check("source", False, str(exc), "fix ingest in params.yaml")
    from imgpipe.ingest.sources import scan_folder, source_kind, source_path

    try:
        kind = source_kind(cfg, root)
    except ImgpipeError as exc:
        return Check(
            "source",
            False,
            str(exc),
            "point ingest.source at a folder of class folders, shards, a .tar or a .csv manifest",
        )
    path = source_path(cfg, root)
    if kind == "digits":
        return Check("source", True, "digits: scikit-learn's handwritten digits, shipped with scikit-learn")
    if kind == "torchvision":
        folder = root / cfg.torchvision_root
        if folder.is_dir() and any(folder.iterdir()):
            return Check("source", True, f"{cfg.source}: files in {folder}")
        if cfg.download:
            return Check("source", True, f"{cfg.source}: not in {folder} yet; ingest will download it (needs internet)")
        return Check(
            "source",
            False,
            f"{cfg.source}: not in {folder} and ingest.download is false",
            f"copy the dataset into {folder} or set ingest.download: true",
        )
    if kind != "folder":
        return Check(
            "source",
            True,
            {"csv": "CSV manifest", "tar": "tar archive", "shards": "WebDataset shards in"}[kind] + f" {path}",
        )
    try:
        files = scan_folder(path)
    except ImgpipeError as exc:
        return Check("source", False, str(exc), f"put images in {path}/<class>/")
    classes = sorted({c.class_name for c in files})
    return Check(
        "source",
        True,
        f"{path}: {len(files)} image files in {len(classes)} classes ({', '.join(classes[:8])}"
        f"{', ...' if len(classes) > 8 else ''})",
    )
