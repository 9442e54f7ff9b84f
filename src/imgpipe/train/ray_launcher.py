"""``train.launcher: ray``: the train stage's own loop under Ray Train's ``TorchTrainer``.

Ray starts ``train.nproc`` workers on the cluster (one GPU each where the cluster has
GPUs and ``train.device`` allows), sets up their process group and the usual ``RANK`` and
``WORLD_SIZE`` environment, and each worker runs the train stage as torchrun would have
run it: rank 0 records the MLflow run and writes the outputs DVC expects. So the workers
must see the project at the same path (shared storage; on one machine, trivially).

The stage stays a blocking DVC command: it returns when the training ends, and a stage
that is stopped (Ctrl-C, a kill) takes its Ray workers with it, since they belong to its
driver.
"""

from __future__ import annotations

import logging
import os
import re
from collections.abc import Callable
from pathlib import Path

from imgpipe.cluster import connect
from imgpipe.errors import ImgpipeError
from imgpipe.logs import configure
from imgpipe.params.train import TrainConfig

log = logging.getLogger(__name__)


FORWARDED = ("MLFLOW_", "DVC_", "IMGPIPE_")


def run_on_ray(root: Path, cfg: TrainConfig, stage: Callable[[], None]) -> None:
    """Run ``stage`` (the train stage's ``main``) on ``cfg.nproc`` Ray workers, and wait for it."""
    ray = connect("train.launcher")
    from ray.train import RunConfig, ScalingConfig
    from ray.train.torch import TorchTrainer

    gpus = ray.cluster_resources().get("GPU", 0)
    use_gpu = cfg.device == "cuda" or (cfg.device == "auto" and gpus > 0)
    log.info(
        f"train: on Ray, {cfg.nproc} worker(s), {'one GPU each' if use_gpu else 'CPU'}; cluster "
        f"{ray.cluster_resources().get('CPU', 0):.0f} CPUs, {gpus:.0f} GPUs"
    )
    # The workers get this process's tracking and DVC settings (MLFLOW_TRACKING_URI,
    # DVC_ROOT, DVC_EXP_NAME...), not whatever the cluster was started with.
    env = {k: v for k, v in os.environ.items() if k.startswith(FORWARDED)}
    trainer = TorchTrainer(
        _worker,
        train_loop_config={"root": str(root), "env": env, "stage": stage},
        scaling_config=ScalingConfig(num_workers=cfg.nproc, use_gpu=use_gpu),
        run_config=RunConfig(name=f"imgpipe-train-{os.getpid()}"),
    )
    try:
        trainer.fit()
    except Exception as exc:  # Ray wraps a worker's error; a user's error stays one sentence
        raise ImgpipeError(_worker_error(exc)) from None


def _worker(config: dict) -> None:
    """One Ray worker: the train stage, in the project folder, in the process group Ray set up.

    ``stage`` travels by reference (Ray pickles a module-level function as its module and
    name), so the worker imports it from the library, as the driver did.
    """
    root = config["root"]
    for name in [k for k in os.environ if k.startswith(FORWARDED)]:
        del os.environ[name]
    os.environ.update(config["env"])
    os.chdir(root)
    os.environ["IMGPIPE_ROOT"] = root
    configure()  # the stage's log lines, as run_stage shows them to a stage run without Ray
    config["stage"]()


def _worker_error(exc: BaseException) -> str:
    seen, current = [], exc
    while current is not None and current not in seen:
        if isinstance(current, ImgpipeError):
            return str(current)
        seen.append(current)
        current = current.__cause__ or current.__context__
    text = str(exc)
    found = re.findall(r"(?:ImgpipeError|ParamsError): (.+)", text)
    if found:
        return found[-1].strip()
    return f"the Ray training failed: {text.strip().splitlines()[-1] if text.strip() else type(exc).__name__}"
