"""``imgpipe tune``: an Optuna study whose trials are DVC experiments, recorded in MLflow.

Optuna suggests the settings; each trial is ``dvc exp run --temp -n tune-<study>-<n> -S
...`` (see trial_run.py), its value is read from the metrics.json that experiment
committed, and its training reports every epoch to the trial so that the study's pruner
can stop it early (imgpipe.train.tune_trial). The study is kept beside the MLflow store
(storage.py), so ``--resume`` continues it and several machines can share it.
"""

from __future__ import annotations

import logging
import re
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from imgpipe.errors import ImgpipeError
from imgpipe.params.base import read_params
from imgpipe.params.tracking import MlflowConfig
from imgpipe.params.tune import TuneConfig
from imgpipe.paths import Paths
from imgpipe.tracking.owner import this_process
from imgpipe.tracking.store import hide_password
from imgpipe.train import tune_trial as env
from imgpipe.tune import interrupts, records, stale
from imgpipe.tune.config import check_space, load_tune_config, read_metric
from imgpipe.tune.space import describe, overrides, suggest
from imgpipe.tune.storage import study_storage
from imgpipe.tune.trial_run import check_repo, experiment_metrics, run_trial

log = logging.getLogger(__name__)

# metrics.json keys whose per-epoch value train_history.csv holds, for the pruner.
HISTORY_COLUMNS = {
    "val.balanced_accuracy": "val_balanced_accuracy",
    "val.accuracy": "val_accuracy",
    "val.log_loss": "val_loss",
}


STUDY_NAME = re.compile(TuneConfig.model_fields["study"].metadata[0].pattern)


class TrialFailed(ImgpipeError):
    """A trial's ``dvc exp run`` failed: recorded as FAIL, and the study goes on."""


@dataclass
class TuneRequest:
    trials: int | None = None  # None: tune.trials
    timeout: float | None = None  # seconds; None: tune.timeout
    resume: bool = False
    storage: str | None = None
    study: str | None = None  # None: tune.study


def tune(root: Path, request: TuneRequest) -> Any:
    """Run the study; return the Optuna study."""
    import optuna

    paths = Paths(root)
    cfg, mlflow_cfg = load_tune_config(paths.params), MlflowConfig.load(paths.params)
    check_space(paths.params, cfg)
    check_repo(root)
    name, storage = request.study or cfg.study, study_storage(root, request.storage)
    if not STUDY_NAME.match(name):
        raise ImgpipeError(
            f"--study {name!r}: trials are git refs named tune-<study>-<n>, so use letters, digits, "
            "'.', '_' and '-', starting with a letter or digit."
        )
    optuna.logging.set_verbosity(optuna.logging.ERROR)  # a failed trial: our line, not a traceback
    study, rdb = open_study(name, storage, cfg, request.resume)
    parent = records.open_study_run(root, mlflow_cfg.experiment_name, study, storage, settings(cfg))
    trials = request.trials or cfg.trials
    log.info(
        f"tune: study {name} in {hide_password(storage)}: {trials} trial(s) maximising {cfg.metric}"
        if cfg.direction == "maximize"
        else f"tune: study {name}: {trials} trial(s) minimising {cfg.metric}"
    )
    objective = Objective(root, cfg, study, parent, storage, read_params(paths.params))
    with interrupts.sigterm_as_ctrl_c(), records.study_run_ended(study):
        stale.fail_dead(study, rdb)  # a killed run's trial, before this run's first
        study.optimize(
            objective,
            n_trials=trials,
            timeout=request.timeout or cfg.timeout,
            catch=(TrialFailed,),
            callbacks=[records.record_best],
        )
    summarise(study, cfg, parent)
    return study


def open_study(name: str, storage: str, cfg: TuneConfig, resume: bool) -> tuple[Any, Any]:
    """Create the study, or with ``resume`` load it; refuse to mix two studies under one name.
    Return it and its storage, which keeps the heartbeat of the trials it runs (stale.py)."""
    import optuna

    try:
        rdb = stale.heartbeat_storage(storage)
        names = {s.study_name for s in optuna.get_all_study_summaries(rdb, include_best_trial=False)}
    except Exception as exc:
        raise ImgpipeError(
            f"cannot open the study storage {hide_password(storage)}: {str(exc).splitlines()[0]}"
        ) from None
    if name in names and not resume:
        raise ImgpipeError(
            f"study {name} already exists in {hide_password(storage)}: continue it with --resume, or "
            "start another with --study NAME (or tune.study)."
        )
    if name not in names and resume:
        raise ImgpipeError(
            f"there is no study {name} in {hide_password(storage)} to resume; drop --resume to start it."
        )
    # Seeded by the trials already run, so a resumed study does not draw its first trials again.
    done = len(optuna.load_study(study_name=name, storage=rdb).trials) if resume else 0
    study = optuna.create_study(
        study_name=name,
        storage=rdb,
        direction=cfg.direction,
        load_if_exists=True,
        sampler=optuna.samplers.TPESampler(seed=cfg.seed + done),
        pruner=env.make_pruner(cfg.pruner.model_dump()),
    )
    stored = study.user_attrs.get("metric")
    if resume and stored and stored != cfg.metric:
        raise ImgpipeError(
            f"study {name} maximises {stored}, not tune.metric {cfg.metric}: resume it with the "
            "same metric, or start another study (--study NAME)."
        )
    study.set_user_attr("metric", cfg.metric)
    study.set_user_attr(env.PRUNER_ATTR, cfg.pruner.model_dump())
    return study, rdb


def settings(cfg: TuneConfig) -> dict[str, Any]:
    data = cfg.model_dump(mode="json", by_alias=True, exclude_none=True)
    data["pruner"] = f"{cfg.pruner.name} (after {cfg.pruner.startup_trials} trials, {cfg.pruner.warmup_epochs} epochs)"
    return data


class Objective:
    """Optuna's objective: run one trial as a DVC experiment and return its metric."""

    def __init__(self, root: Path, cfg: TuneConfig, study: Any, parent: str, storage: str, params: dict[str, Any]):
        self.root, self.cfg, self.study, self.parent, self.storage = root, cfg, study, parent, storage
        self.params, self.count = params, 0

    def __call__(self, trial: Any) -> float:
        import optuna

        values, name = suggest(trial, self.cfg.space), f"tune-{self.study.study_name}-{trial.number}"
        trial.set_user_attr(stale.EXP_ATTR, name)
        trial.set_user_attr(stale.OWNER_ATTR, this_process())  # if this process is killed, --resume can tell
        self.count += 1
        log.info(f"tune: trial {trial.number} ({self.count} of this run): {describe(values)}")
        started = time.monotonic()
        try:
            run = run_trial(
                self.root,
                name,
                overrides(self.params, values),
                self.trial_env(trial),
                self.root / "logs" / "tune" / self.study.study_name / f"{name}.log",
            )
        except KeyboardInterrupt:  # Ctrl-C or SIGTERM: the trial's runs end KILLED, not FAILED or RUNNING
            records.end_trial_runs(self.parent, name)
            raise
        took = f"{time.monotonic() - started:.0f} s"
        if not run.ok:
            if (epoch := self.pruned_at(trial)) is not None:
                log.info(f"tune: trial {trial.number} pruned after epoch {epoch} ({took})")
                records.mark_pruned(self.study.study_name, trial.number)
                raise optuna.TrialPruned()
            log.warning(f"tune: trial {trial.number} failed ({took}); the end of {run.log}:\n{run.failure()}")
            raise TrialFailed(f"dvc exp run failed for {name}")
        value = read_metric(experiment_metrics(self.root, name), self.cfg.metric)
        ran = run.stages_run()
        records.record_trial(self.parent, self.study, trial, name, value, trained="train" in ran)
        log.info(
            f"tune: trial {trial.number}: {self.cfg.metric} {value:.4f} in {took} "
            f"(ran {', '.join(ran) or 'nothing: all cached'}); experiment {name}"
        )
        return value

    def pruned_at(self, trial: Any) -> int | None:
        """The epoch the trial's train stage was pruned after, read afresh: the study's own
        storage caches the trial as this process last saw it."""
        import optuna

        return optuna.storages.RDBStorage(self.storage).get_trial_user_attrs(trial._trial_id).get(env.PRUNED_AT_ATTR)

    def trial_env(self, trial: Any) -> dict[str, str]:
        """What the trial's train stage needs to report to this trial and file its MLflow run."""
        out = {
            env.ENV_STORAGE: self.storage,
            env.ENV_STUDY: self.study.study_name,
            env.ENV_TRIAL_ID: str(trial._trial_id),
            env.ENV_TRIAL_NUMBER: str(trial.number),
            env.ENV_PARENT_RUN: self.parent,
        }
        if column := HISTORY_COLUMNS.get(self.cfg.metric):
            out[env.ENV_REPORT] = column  # else no per-epoch value to prune on: trials run whole
        return out


def summarise(study: Any, cfg: TuneConfig, parent: str) -> None:
    states = [t.state.name.lower() for t in study.trials]
    counts = ", ".join(f"{states.count(s)} {s}" for s in sorted(set(states)))
    log.info(f"tune: study {study.study_name}: {len(states)} trials ({counts}); MLflow run {parent}")
    if not any(t.state.name == "COMPLETE" for t in study.trials):
        raise ImgpipeError(
            f"no trial of study {study.study_name} finished; see the logs in logs/tune/"
            f"{study.study_name}/ and fix what they report."
        )
    best = study.best_trial
    log.info(f"tune: best: trial {best.number}, {cfg.metric} {best.value:.4f}: {describe(best.params)}")
    log.info(
        f"tune: keep it with  dvc exp apply {best.user_attrs['dvc_exp']}  (then dvc repro restores its outputs "
        "from the cache; commit as usual)"
    )
