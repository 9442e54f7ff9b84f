"""Bytes of data/ and of the DVC cache after `dvc repro augment`, at two revisions side by side.

Balance and augment used to write a pixel copy of every training image they kept or
picked; they now store references (see ``imgpipe.store.stacked``) and write only new
pixels: synthetic and augmented images. For each revision and each dataset this runs
ingest, balance and augment in a fresh git+DVC project made from that revision's files
(its own ``src/`` first on the path), then counts the bytes of each ``data/`` folder and
of ``.dvc/cache``. Balance and augment run as params.yaml ships them: random
over-sampling, then 2 augmented variants of each image.

    python bench/storage.py --before 3276276 --after HEAD               # digits and CIFAR-10-LT
    python bench/storage.py --before 3276276 --after HEAD --cifar /tmp/cifar
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "bench"))
from shared_data import cifar_folder  # noqa: E402

DATASETS = {
    "digits (shipped params)": {},
    "CIFAR-10-LT (ratio 100)": {"channels": 3, "image_size": 32, "long_tail": "all", "imbalance_ratio": 100},
}


def folder_bytes(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


def project_at(rev: str, root: Path) -> Path:
    """The revision's tracked files in ``root``, as a fresh git repository."""
    root.mkdir(parents=True)
    archive = subprocess.run(["git", "archive", rev], cwd=REPO, check=True, capture_output=True).stdout
    subprocess.run(["tar", "-x", "-C", str(root)], input=archive, check=True)
    for cmd in (
        ["git", "init", "-q"],
        ["git", "add", "-A"],
        ["git", "-c", "user.name=bench", "-c", "user.email=bench@example.com", "commit", "-qm", rev],
    ):
        subprocess.run(cmd, cwd=root, check=True, capture_output=True)
    return root


def measure(rev: str, ingest: dict, scratch: Path) -> dict[str, int]:
    root = project_at(rev, scratch)
    params = yaml.safe_load((root / "params.yaml").read_text())
    params["ingest"].update(ingest)
    (root / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    env = {
        **os.environ,
        "PYTHONPATH": str(root / "src"),
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
    }
    done = subprocess.run(["dvc", "repro", "augment"], cwd=root, env=env, capture_output=True, text=True)
    if done.returncode != 0:
        raise SystemExit(f"{rev}: dvc repro failed:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}")
    sizes = {f"data/{name}": folder_bytes(root / "data" / name) for name in ("ingest", "balance", "augment")}
    sizes["data/ total"] = folder_bytes(root / "data")
    sizes["DVC cache"] = folder_bytes(root / ".dvc" / "cache")
    return sizes


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--before", required=True, help="a git revision that stored pixel copies")
    parser.add_argument("--after", default="HEAD")
    parser.add_argument("--cifar", help="CIFAR-10's JPEGs unpacked (default: ../shared's archive)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="imgpipe-storage-") as tmp:
        cifar = cifar_folder(args.cifar, Path(tmp))
        for name, ingest in DATASETS.items():
            if ingest:
                ingest = {**ingest, "source": str(cifar)}
            rows = {rev: measure(rev, ingest, Path(tmp) / f"{len(ingest)}-{rev}") for rev in (args.before, args.after)}
            print(f"\n{name}\n\n| MiB | {args.before} | {args.after} | ratio |\n|---|---:|---:|---:|")
            for key in rows[args.before]:
                a, b = rows[args.before][key], rows[args.after][key]
                print(f"| {key} | {a / 2**20:.1f} | {b / 2**20:.1f} | {a / max(b, 1):.1f}x |", flush=True)


if __name__ == "__main__":
    main()
