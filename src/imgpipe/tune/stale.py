"""Trials left RUNNING by an ``imgpipe tune`` that was killed: failed, their runs KILLED, run again.

A killed driver cannot end its trial, so the study storage and MLflow would show it
RUNNING for ever. Optuna's heartbeat finds such trials: the driver beats every
``HEARTBEAT_S`` seconds while a trial runs, and a trial silent for ``GRACE_S`` is
failed by the next trial to start, on any machine sharing the study. A driver killed on
this machine is known dead at once (tracking/owner.py), so ``--resume`` right after a
kill fails its trial without waiting out the grace period. Each such trial's MLflow
runs are ended KILLED, and it is retried once with its settings (Optuna's
RetryHeartbeatStaleTrialCallback), since it never got a value.
"""

from __future__ import annotations

import logging
import warnings
from typing import Any

from imgpipe.tracking.owner import is_dead
from imgpipe.tune import records

log = logging.getLogger(__name__)

HEARTBEAT_S = 20
GRACE_S = 60
OWNER_ATTR = "imgpipe_owner"  # trial user attribute: the driver process running it
EXP_ATTR = "dvc_exp"  # trial user attribute: its DVC experiment's name


def heartbeat_storage(url: str) -> Any:
    """The study storage at ``url``, with the heartbeat that finds trials of a dead driver."""
    import optuna

    with warnings.catch_warnings():  # Optuna calls its heartbeat experimental
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        return optuna.storages.RDBStorage(
            url, heartbeat_interval=HEARTBEAT_S, grace_period=GRACE_S, heartbeat_stale_trial_callback=on_stale
        )


def on_stale(study: Any, trial: Any) -> None:
    """Optuna's callback for a trial failed as stale: its runs KILLED, retried once."""
    import optuna

    exp_name = trial.user_attrs.get(EXP_ATTR)
    if exp_name and (parent := study.user_attrs.get(records.RUN_ATTR)):
        records.end_trial_runs(parent, exp_name)
    retries = len(trial.system_attrs.get("retry_history", []))
    again = "it runs again with its settings" if retries == 0 else "it was retried once already: not again"
    log.info(
        f"tune: trial {trial.number} ({exp_name or 'no experiment yet'}) was left running by a tune process "
        f"that is gone: marked failed, its MLflow runs KILLED; {again}"
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        optuna.storages.RetryHeartbeatStaleTrialCallback(max_retry=1)(study, trial)


def fail_dead(study: Any, storage: Any) -> None:
    """Fail the study's RUNNING trials whose driver has died, before new trials start: at
    once those of a driver on this machine, the others once their heartbeat is stale."""
    import optuna
    from optuna.trial import TrialState

    for trial in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
        if not is_dead(trial.user_attrs.get(OWNER_ATTR)):
            continue
        try:
            failed = storage.set_trial_state_values(trial._trial_id, TrialState.FAIL)
        except optuna.exceptions.UpdateFinishedTrialError:  # another process ended it just now
            continue
        if failed:
            on_stale(study, storage.get_trial(trial._trial_id))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        optuna.storages.fail_stale_trials(study)
