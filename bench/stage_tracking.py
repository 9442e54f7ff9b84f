"""What a stage's MLflow run costs: seconds per stage process, by part, on a local SQLite store.

Each data stage (ingest, balance, augment) now opens a child run of its pipeline's run.
This runs, in a fresh process each time as DVC runs a stage, the parts that adds: importing
MLflow, opening the store (SQLAlchemy, schema check), and the run itself (find or make the
parent, the child with params, input links, output md5s, the parent's stage table), with
an empty body, in a copy of this project's dvc.yaml and dvc.lock beside a store that
already holds runs. Repeats are interleaved; the median is shown.

    .venv/bin/python bench/stage_tracking.py
    .venv/bin/python bench/stage_tracking.py --repeats 3
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]

# One stage process's MLflow work, timed by part; printed as JSON.
CHILD = r"""
import json, sys, time
sys.path.insert(0, sys.argv[1])
started = time.perf_counter()
import mlflow
imported = time.perf_counter()
from pathlib import Path
from imgpipe.tracking.stage_run import stage_run
from imgpipe.tracking.store import connect
connect(Path("."), "bench")
connected = time.perf_counter()
params = {"balance": {"method": "random_over"}, "ingest": {"source": "digits"}}
with stage_run(Path("."), sys.argv[2], params, "bench"):
    pass
done = time.perf_counter()
print(json.dumps({"import mlflow": imported - started, "open the store": connected - imported,
                  "the stage's run": done - connected, "total": done - started}))
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        for name in ("dvc.yaml", "dvc.lock"):
            shutil.copy(REPO / name, Path(tmp) / name)
        times: dict[str, dict[str, list[float]]] = {}
        for _ in range(args.repeats + 1):  # the first makes the store: not counted
            for stage in ("ingest", "balance", "augment"):
                out = subprocess.run(
                    [sys.executable, "-c", CHILD, str(REPO / "src"), stage],
                    cwd=tmp,
                    capture_output=True,
                    text=True,
                    check=True,
                )
                for part, seconds in json.loads(out.stdout.splitlines()[-1]).items():
                    times.setdefault(stage, {}).setdefault(part, []).append(seconds)
    parts = list(next(iter(times.values())))
    print("| stage | " + " | ".join(parts) + " |")
    print("|---|" + "---:|" * len(parts))
    for stage, by_part in times.items():
        print(f"| {stage} | " + " | ".join(f"{statistics.median(v[1:]):.2f} s" for v in by_part.values()) + " |")


if __name__ == "__main__":
    main()
