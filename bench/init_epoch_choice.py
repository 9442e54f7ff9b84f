"""Which epoch ``imgpipe init``'s full run should keep (issue #29): test balanced accuracy
at the epoch each rule picks, on the same training runs.

Each run is ``imgpipe init --no-trial``'s recipe for the folder (on brain-mri and
hymenoptera, the one the trial chooses too: the last 2 blocks of EfficientNet-Lite0),
trained once with the pipeline's own job and loop; after every epoch the model is scored
on val and, for this study only, on test. A rule sees the val history alone and picks an
epoch; the table gives the test balanced accuracy at that epoch, mean over seeds, and the
best any epoch reached (what no rule can know).

    python bench/init_epoch_choice.py --datasets brain-mri hymenoptera gray-textures cifar10-lt --seeds 0 1 2
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "bench"))
from collections_offline import BUILDERS, build  # noqa: E402
from shared_data import SHARED  # noqa: E402

sys.path.insert(0, str(REPO / "src"))  # this checkout's imgpipe, so the sandbox copies this checkout
from imgpipe.sandbox import copy_project  # noqa: E402  the same project copy the tests make


def first_best(history: list[dict], key: str, sign: float) -> int:
    """The first epoch with the best ``key`` (sign -1 for a loss): as early stopping keeps it."""
    return max(range(len(history)), key=lambda i: (sign * history[i][key], -i))


RULES = {
    "best val balanced accuracy, first of ties (init today)": lambda h: first_best(h, "val_bal", 1),
    "best val balanced accuracy, last of ties": lambda h: max(range(len(h)), key=lambda i: (h[i]["val_bal"], i)),
    "best val balanced accuracy, ties by val loss": lambda h: max(
        range(len(h)), key=lambda i: (h[i]["val_bal"], -h[i]["val_loss"])
    ),
    "best val loss (the README's recipe)": lambda h: first_best(h, "val_loss", -1),
    "the last epoch": lambda h: len(h) - 1,
}


def trajectory(root: Path, folder: Path, seed: int) -> list[dict]:
    """Val and test scores after each epoch of init --no-trial's recipe on ``folder``."""
    import numpy as np
    import torch

    from imgpipe.params.train import TrainConfig
    from imgpipe.paths import Paths
    from imgpipe.store import ingested
    from imgpipe.train.distributed import Dist
    from imgpipe.train.job import TrainingJob
    from imgpipe.train.loop import evaluate

    project = copy_project(root)
    project.set_params({section: {"seed": seed} for section in ("ingest", "balance", "augment", "train")})
    project.run(sys.executable, "-m", "imgpipe.cli", "init", str(folder), "--no-trial")
    project.run("dvc", "repro", "augment", timeout=None)
    paths = Paths(project.root)
    job = TrainingJob.prepare(paths, TrainConfig.load(paths.params), Dist())
    test = ingested.read_split(paths.ingested, "test", mmap=False)
    x, y = torch.from_numpy(np.asarray(test.images)), torch.from_numpy(np.asarray(test.labels, dtype=np.int64))
    rows = []

    def score(result, seconds):
        loss, _, bal = evaluate(job.model, x, y, job.cfg.batch_size * 4)
        rows.append(
            {
                "epoch": result.epoch,
                "val_loss": result.val_loss,
                "val_bal": result.val_balanced_accuracy,
                "test_bal": bal,
                "test_loss": loss,
            }
        )
        print(
            f"  epoch {result.epoch}: val {result.val_balanced_accuracy:.3f} ({result.val_loss:.3f}) test {bal:.3f}",
            flush=True,
        )

    job.fit(on_epoch=score)
    return rows


def report(runs: dict[str, dict[int, list[dict]]]) -> None:
    print("\n| collection | rule | test balanced accuracy, mean | each seed | epoch kept |")
    print("|---|---|---:|---|---|")
    for dataset, by_seed in runs.items():
        for rule, pick in {**RULES, "best test epoch (hindsight, no rule)": None}.items():
            picked = [
                max(range(len(h)), key=lambda i: h[i]["test_bal"]) if pick is None else pick(h)
                for h in by_seed.values()
            ]
            scores = [h[i]["test_bal"] for h, i in zip(by_seed.values(), picked)]
            print(
                f"| {dataset} | {rule} | {statistics.mean(scores):.3f} | "
                f"{', '.join(f'{s:.3f}' for s in scores)} | {', '.join(str(i + 1) for i in picked)} |"
            )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--datasets", nargs="+", default=["brain-mri", "hymenoptera"])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--log", type=Path, default=REPO / "bench" / "results" / "init_epoch_choice.jsonl")
    args = parser.parse_args()
    done = {}
    if args.log.is_file():
        for line in args.log.read_text().splitlines():
            e = json.loads(line)
            done.setdefault(e["dataset"], {})[e["seed"]] = e["history"]
    with tempfile.TemporaryDirectory() as tmp:
        for dataset in args.datasets:
            folder = build(dataset, Path(tmp) / dataset) if dataset in BUILDERS else SHARED / dataset
            for seed in args.seeds:
                if seed in done.get(dataset, {}):
                    continue
                print(f"{dataset}, seed {seed}", flush=True)
                history = trajectory(Path(tmp) / f"{dataset}-{seed}", folder, seed)
                done.setdefault(dataset, {})[seed] = history
                with args.log.open("a") as log:
                    log.write(json.dumps({"dataset": dataset, "seed": seed, "history": history}) + "\n")
    report({d: by_seed for d, by_seed in done.items() if d in args.datasets})


if __name__ == "__main__":
    main()
