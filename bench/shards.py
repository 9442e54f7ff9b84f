"""DVC on many small files against the same images as a few tar shards.

Writes N small PNGs (default 100,000, ten classes) into a fresh git+DVC repository, then
times, for the folder and for the shards `imgpipe pack` makes of it:

- ``dvc add``: hashing and caching the data;
- a no-op ``dvc status``: what every ``dvc repro`` and ``dvc exp run`` pays first;
- ``dvc push`` to a local remote.

Each command runs once per layout, side by side in one run; the cache and remote are
fresh for each layout.

    python bench/shards.py                  # 100,000 files, about 15 minutes on 2 CPUs
    python bench/shards.py --files 20000 --shard-size 5000
"""

from __future__ import annotations

import argparse
import io
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]


def write_images(root: Path, n: int, classes: int = 10) -> int:
    """``n`` distinct 32x32 RGB PNGs in ``classes`` folders; returns their total bytes."""
    from PIL import Image

    rng = np.random.default_rng(0)
    total = 0
    for c in range(classes):
        (root / f"class{c}").mkdir(parents=True)
    for i in range(n):
        # Smooth noise: a few KB per file, like small real PNGs, and never two the same.
        small = rng.integers(0, 256, (8, 8, 3), dtype=np.uint8)
        buffer = io.BytesIO()
        Image.fromarray(small).resize((32, 32), Image.Resampling.BILINEAR).save(buffer, format="PNG")
        path = root / f"class{i % classes}" / f"{i:07d}.png"
        path.write_bytes(buffer.getvalue())
        total += len(buffer.getvalue())
    return total


def timed(cmd: list[str], cwd: Path) -> float:
    start = time.perf_counter()
    done = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True)
    seconds = time.perf_counter() - start
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} failed:\n{done.stdout}\n{done.stderr}")
    return seconds


def fresh_repo(path: Path) -> Path:
    path.mkdir(parents=True)
    for cmd in (
        ["git", "init", "-q"],
        ["dvc", "init", "-q"],
        ["dvc", "remote", "add", "-d", "local", str(path / "remote")],
        ["dvc", "config", "core.analytics", "false"],
    ):
        subprocess.run(cmd, cwd=path, check=True, capture_output=True)
    (path / "raw").mkdir()
    return path


def measure(repo: Path, target: str) -> dict:
    row = {"dvc add": timed(["dvc", "add", target], repo)}
    subprocess.run(["git", "add", "-A"], cwd=repo, check=True, capture_output=True)
    row["no-op dvc status"] = timed(["dvc", "status"], repo)
    row["dvc push"] = timed(["dvc", "push", "-q"], repo)
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--files", type=int, default=100_000)
    parser.add_argument("--shard-size", type=int, default=10_000)
    args = parser.parse_args()
    os.environ["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"
    with tempfile.TemporaryDirectory(prefix="imgpipe-shards-") as tmp:
        folder = fresh_repo(Path(tmp) / "folder")
        start = time.perf_counter()
        size = write_images(folder / "raw" / "small", args.files)
        print(f"wrote {args.files} PNGs ({size / 2**20:.0f} MiB) in {time.perf_counter() - start:.0f} s", flush=True)
        shards = fresh_repo(Path(tmp) / "shards")
        from imgpipe.ops.pack import pack

        start = time.perf_counter()
        written = pack(folder / "raw" / "small", shards / "raw" / "small-shards", shard_size=args.shard_size)
        packed = time.perf_counter() - start
        rows = {
            f"{args.files} files": measure(folder, "raw/small"),
            f"{len(written)} shards": measure(shards, "raw/small-shards"),
        }
    print(f"\nimgpipe pack: {packed:.1f} s\n")
    names = list(rows)
    print(f"| command | {' | '.join(names)} | ratio |")
    print(f"|---|{'---:|' * len(names)}---:|")
    for command in rows[names[0]]:
        a, b = (rows[n][command] for n in names)
        print(f"| `{command}` | {a:.1f} s | {b:.1f} s | {a / b:.0f}x |")


if __name__ == "__main__":
    main()
