"""Wall time of the default pipeline, stage by stage, and of a no-op `dvc repro`.

Runs in a fresh copy of the project (so your data/ and mlflow.db are untouched):
each stage via `dvc repro --single-item <stage>`, which includes DVC's own overhead as
a user sees it, then `dvc repro` with nothing changed, several times.

    python bench/pipeline.py            # or: make bench
"""

from __future__ import annotations

import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "src"))  # this checkout's imgpipe, so the sandbox copies this checkout
from imgpipe.sandbox import copy_project  # noqa: E402  the same project copy the tests make

STAGES = ["ingest", "balance", "augment", "train", "evaluate"]


def timed(cmd: list[str], cwd: Path, env: dict) -> float:
    start = time.perf_counter()
    subprocess.run(cmd, cwd=cwd, env=env, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return time.perf_counter() - start


def main() -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MLFLOW_", "DVC_"))}
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env['PATH']}"
    with tempfile.TemporaryDirectory() as tmp:
        root = copy_project(Path(tmp) / "imgpipe").root

        rows = [(s, timed(["dvc", "repro", "--single-item", s], root, env)) for s in STAGES]
        noop = [timed(["dvc", "repro"], root, env) for _ in range(5)]

    print(f"machine: {platform.machine()}, {os.cpu_count()} CPUs, Python {platform.python_version()}")
    print("| stage | wall time (s) |\n|---|---:|")
    for stage, seconds in rows:
        print(f"| {stage} | {seconds:.1f} |")
    print(f"| **total** | **{sum(s for _, s in rows):.1f}** |")
    print(
        f"\nno-op `dvc repro`: median {statistics.median(noop):.2f} s over {len(noop)} runs "
        f"(min {min(noop):.2f}, max {max(noop):.2f})"
    )


if __name__ == "__main__":
    main()
