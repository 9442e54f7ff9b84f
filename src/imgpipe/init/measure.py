"""``init``'s trial: measure the candidates within the time budget, print the table, choose.

The budget (``--budget-minutes``) covers the trial and the full training that follows.
The trial takes at most ``TRIAL_SHARE`` of it. Every candidate gets the same time on each
fold (equal compute: a small CNN from scratch sees many more images in it than a backbone
at 224 px, as it would in the full run), turned into whole epochs by its throughput,
timed here over a few batches; at least 2 epochs, at most ``MAX_EPOCHS``, so that a fast
machine does not spend the whole share. A candidate whose early blocks are frozen computes
them once per image (``features``), charged to its own time, and trains at the speed of
what is left of it. The full training gets the epochs that fit in the
rest of the budget at the chosen candidate's measured speed.
"""

from __future__ import annotations

import logging
import math
import statistics
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from tqdm import tqdm

from imgpipe.init.candidates import LOSS_TRIAL_RATIO, Candidate, architectures, losses
from imgpipe.init.features import FeatureCache
from imgpipe.init.profile import FolderProfile
from imgpipe.init.recipe import SCRATCH_EPOCHS, TRANSFER_EPOCHS, Choice, train_share
from imgpipe.init.trial import TrialData, feature_cache, images_per_second, train_fold, trial_config, trial_data

log = logging.getLogger(__name__)

TRIAL_SHARE = 0.4  # of the budget, at most, for the trial; the full training gets the rest
MIN_EPOCHS, MAX_EPOCHS = 2, 30  # a candidate's epochs on each fold
OVERHEAD = 1.3  # validation, building models and loading weights, over the timed training
FULL_RUN_SHARE = 0.75  # of the time left, for train's epochs: ingest, evaluate and MLflow take the rest


@dataclass(frozen=True)
class Measured:
    candidate: Candidate
    folds: tuple[float, ...]  # val balanced accuracy on each fold
    rate: float  # training images per second here
    epochs: int  # on each fold
    fold_train: int  # images in a fold's train part
    why: str = ""  # set on the chosen one by ``pick``: why it won, for the console and params.yaml

    @property
    def mean(self) -> float:
        return statistics.fmean(self.folds)

    @property
    def sd(self) -> float:
        return statistics.stdev(self.folds) if len(self.folds) > 1 else 0.0

    @property
    def standard_error(self) -> float:
        """Of the mean over the folds."""
        return self.sd / math.sqrt(len(self.folds))


class Trial:
    """The candidates' shared data (one sample per image size) and the budget's clock."""

    def __init__(self, params: dict[str, Any], root: Path, budget_s: float):
        self.params, self.root, self.budget_s = params, root, budget_s
        self.started = time.monotonic()
        self._data: dict[int, TrialData] = {}
        self._caches: dict[tuple, FeatureCache | None] = {}

    def data(self, candidate: Candidate) -> TrialData:
        size = candidate.image_size
        if size not in self._data:
            self._data[size] = trial_data({**self.params["ingest"], "image_size": size}, self.root)
        return self._data[size]

    def config(self, candidate: Candidate, epochs: int = 1):
        return trial_config(candidate.train_params(self.params["train"]), epochs)

    def cache(self, candidate: Candidate) -> FeatureCache | None:
        """The candidate's frozen blocks' output, shared with the loss trial's variants of it."""
        cfg = self.config(candidate)
        key = (candidate.image_size, cfg.model, str(cfg.unfrozen_blocks))
        if key not in self._caches:
            self._caches[key] = feature_cache(cfg, self.data(candidate), self.root)
        return self._caches[key]

    def rate(self, candidate: Candidate, cache: FeatureCache | None = None) -> float:
        """Training images per second: of the whole model, or of what trains on ``cache``."""
        return images_per_second(
            self.config(candidate), self.data(candidate), self.root, candidate.balanced_batches, cache=cache
        )

    def trial_epochs(self, candidate: Candidate, rate: float, seconds: float) -> int:
        """Epochs on each fold in ``seconds`` a fold, the cache (if any) paid out of them."""
        cache = self.cache(candidate)
        if cache is None:
            return self.epochs(candidate, rate, seconds / OVERHEAD)
        left = seconds / OVERHEAD - cache.seconds / len(self.data(candidate).folds)
        return self.epochs(candidate, self.rate(candidate, cache), left)

    def epochs(self, candidate: Candidate, rate: float, seconds: float) -> int:
        """Epochs over a fold's train part that take about ``seconds`` at ``rate``."""
        return min(MAX_EPOCHS, max(MIN_EPOCHS, round(seconds * rate / self.data(candidate).fold_train)))

    @property
    def elapsed(self) -> float:
        return time.monotonic() - self.started

    def run(self, candidate: Candidate, rate: float, epochs: int, bar: tqdm) -> Measured:
        data = self.data(candidate)
        cfg = self.config(candidate, epochs)
        scores = [
            train_fold(
                cfg,
                data,
                fold,
                self.root,
                candidate.balanced_batches,
                candidate.posthoc_tau,
                bar.update,
                self.cache(candidate),
            )[0]
            for fold in range(len(data.folds))
        ]
        return Measured(candidate, tuple(scores), rate, epochs, data.fold_train)


def measure(
    profile: FolderProfile, params: dict[str, Any], root: Path, budget_minutes: float, image_size: int | None = None
) -> tuple[list[Measured], Measured, float]:
    """Every candidate measured, the chosen one, and the seconds the trial took."""
    trial = Trial(params, root, budget_minutes * 60)
    candidates = architectures(profile, image_size)
    rates = {c.name: trial.rate(c) for c in candidates}
    loss_runs = 2 if profile.imbalance > LOSS_TRIAL_RATIO else 0
    first = trial.data(candidates[0])
    # The same seconds for each run on each fold: what the trial's share leaves, shared out.
    seconds = (trial.budget_s * TRIAL_SHARE - trial.elapsed) / (len(first.folds) * (len(candidates) + loss_runs))
    log.info(
        f"init: trying {len(candidates)} ways of learning{' and 3 ways to meet the imbalance' if loss_runs else ''}"
        f", each for about {seconds:.0f} s on each of {len(first.folds)} folds of {len(first.labels)} images from "
        f"ingest's train and val splits (the trial and the full training within {budget_minutes:g} minutes; "
        "--no-trial skips this); frozen blocks run once per image, so those candidates get more epochs"
    )
    epochs = {c.name: trial.trial_epochs(c, rates[c.name], seconds) for c in candidates}
    total = sum(epochs[c.name] * len(trial.data(c).folds) * trial.data(c).fold_train for c in candidates)
    with tqdm(total=total, desc="init: trial", unit="img", mininterval=1.0) as bar:
        results = [trial.run(c, rates[c.name], epochs[c.name], bar) for c in candidates]
        best = pick(results)
        if loss_runs:
            own, *others = losses(best.candidate, profile)
            bar.total += loss_runs * best.epochs * len(best.folds) * best.fold_train
            tried = [trial.run(c, best.rate, best.epochs, bar) for c in others]
            results += tried
            best = pick([Measured(own, best.folds, best.rate, best.epochs, best.fold_train), *tried])
    return results, best, trial.elapsed


def pick(pool: list[Measured]) -> Measured:
    """The best mean over the folds, unless its lead over the first (the default: the rule
    of thumb's own way of learning, or balanced softmax) is within one standard error: the
    one-standard-error rule of cross-validation (Hastie et al., The Elements of Statistical
    Learning, 7.10), with the error of the lead itself, fold by fold, since every candidate
    is scored on the same folds. A lead the folds cannot tell from noise does not overturn
    the default. On brain-mri seed 0, a probe 0.004 ahead of the last 2 blocks was chosen
    and scored 0.856 on test, where the last 2 blocks score 0.928 (BENCHMARKS.md, #29).
    The one returned carries the reason in ``why``."""
    top, default = max(pool, key=lambda m: m.mean), pool[0]
    folds = f"over {len(top.folds)} folds"
    lead, error = top.mean - default.mean, lead_standard_error(top, default)
    if top is not default and lead <= error:
        return replace(
            default,
            why=(
                f"{default.candidate.name}, the default, is kept: its mean val balanced accuracy {folds}, "
                f"{default.mean:.3f}, is {lead:.3f} behind the best, {top.candidate.name}, within one standard error "
                f"of that lead ({error:.3f}): the folds cannot tell it from noise"
            ),
        )
    why = f"{top.candidate.name} had the best mean val balanced accuracy {folds}, {top.mean:.3f} +/- {top.sd:.3f}"
    runner_up = max((m for m in pool if m is not top), key=lambda m: m.mean, default=None)
    return replace(top, why=why + (f" (next: {runner_up.candidate.name}, {runner_up.mean:.3f})" if runner_up else ""))


def lead_standard_error(a: Measured, b: Measured) -> float:
    """The standard error of ``a``'s mean lead over ``b``: how hard each fold is cancels out."""
    if len(a.folds) != len(b.folds) or len(a.folds) < 2:
        return a.standard_error
    return statistics.stdev([x - y for x, y in zip(a.folds, b.folds)]) / math.sqrt(len(a.folds))


def full_epochs(best: Measured, profile: FolderProfile, seconds_left: float) -> Choice:
    """``train.epochs`` for the full run: what fits in ``seconds_left`` at the measured speed."""
    n_train = train_share(profile)
    low, high = TRANSFER_EPOCHS if best.candidate.kind == "transfer" else SCRATCH_EPOCHS
    fits = math.floor(max(0.0, seconds_left) * FULL_RUN_SHARE * best.rate / n_train)
    epochs = min(high, max(low, fits))
    minutes = epochs * n_train / best.rate / 60 / FULL_RUN_SHARE
    return Choice(
        "train.epochs",
        epochs,
        f"about {n_train} training images at the {best.rate:.0f} images/s measured "
        f"here: {epochs} epochs (within {low} to {high}) take about {minutes:.0f} minutes, "
        "the rest of --budget-minutes",
    )


def table(results: list[Measured], best: Measured) -> list[str]:
    """The lines printed for the trial: each candidate's folds, mean and speed, best marked."""
    width = max(len(m.candidate.name) for m in results)
    lines = [f"  {'candidate':<{width}}  val balanced accuracy  each fold            images/s  epochs"]
    for m in results:
        folds = " ".join(f"{s:.3f}" for s in m.folds)
        mark = "  <- chosen" if m.candidate.name == best.candidate.name else ""
        lines.append(
            f"  {m.candidate.name:<{width}}  {m.mean:.3f} +/- {m.sd:.3f}        {folds:<21} "
            f"{m.rate:8.0f}  {m.epochs:6d}{mark}"
        )
    return lines
