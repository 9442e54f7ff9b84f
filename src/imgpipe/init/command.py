"""``imgpipe init``: profile the folder, choose, print each choice with its reason, write."""

from __future__ import annotations

import logging
from pathlib import Path

import yaml

from imgpipe.errors import ImgpipeError
from imgpipe.init.params_file import updated_params, write_params
from imgpipe.init.profile import profile_folder
from imgpipe.init.recipe import Choice, choose, leftovers, scratch_recipe, transfer_recipe
from imgpipe.params.base import read_params

log = logging.getLogger(__name__)

DEFAULT_BUDGET_MINUTES = 20.0  # the trial and the full training, on 2 CPUs without a GPU


def init_params(
    folder: Path,
    params: Path,
    image_size: int | None = None,
    dry_run: bool = False,
    trial: bool = True,
    budget_minutes: float = DEFAULT_BUDGET_MINUTES,
) -> list[Choice]:
    """Choose params for ``folder`` and write them into ``params`` (unless ``dry_run``)."""
    if image_size is not None and not 8 <= image_size <= 1024:
        raise ImgpipeError(f"imgpipe init: --image-size {image_size} is out of range; give 8 to 1024 pixels.")
    if not 1 <= budget_minutes <= 10_000:
        raise ImgpipeError(f"imgpipe init: --budget-minutes {budget_minutes:g} is out of range; give 1 to 10000.")
    profile = profile_folder(folder)
    log.info(f"init: {profile.describe()}")
    root = params.resolve().parent
    choices = choose(profile, source_name(folder, root), image_size) + leftovers(read_params(params))
    if trial:
        choices = chosen_by_trial(choices, profile, params, root, budget_minutes, image_size, record=not dry_run)
    else:
        log.info(
            "init: --no-trial: a rule-of-thumb guess from the images' size and colour alone (a pretrained "
            "backbone from 64 px up, a CNN from scratch below), nothing measured on your images; without "
            "--no-trial, init tries the alternatives on the folder and keeps the best"
        )
    width = max(len(c.key) for c in choices)
    for choice in choices:
        log.info(f"  {choice.key:<{width}}  {_show(choice.value):<22}  {choice.reason}")
    if dry_run:
        log.info(f"init: nothing written (--dry-run); without it, these go into {params}")
        return choices
    write_params(params, params, choices)
    log.info(f"init: wrote {params} (`git diff {params}` to review); next: dvc repro")
    return choices


def chosen_by_trial(
    choices: list[Choice],
    profile,
    params: Path,
    root: Path,
    budget_minutes: float,
    image_size: int | None,
    record: bool = True,
) -> list[Choice]:
    """The rule's ``choices`` with the measured best candidate's in place of its own; with
    ``record``, what was measured is saved under reports/."""
    from imgpipe.init.measure import full_epochs, measure, table
    from imgpipe.init.trial_record import save_trial

    full = yaml.safe_load(updated_params(params, choices))
    results, best, seconds = measure(profile, full, root, budget_minutes, image_size)
    for line in table(results, best):
        log.info(line)
    why = f"measured: {best.why}"
    log.info(f"init: chose {best.candidate.name}: {why[len('measured: ') :]}, in {seconds / 60:.1f} minutes")
    if record:
        saved = save_trial(root, results, best)
        log.info(f"init: the trial's table and picture: {', '.join(str(p.relative_to(root)) for p in saved)}")
    measured = [*best.candidate.choices, full_epochs(best, profile, budget_minutes * 60 - seconds)]
    measured = [Choice(c.key, c.value, f"{why}; {c.reason}") if c.key == "train.model" else c for c in measured]
    # The rule's recipe keys that the chosen one leaves unset (base_cnn's layers for a
    # backbone, the backbone's rate for a CNN from scratch) would only puzzle a reader.
    unused = {c.key for c in transfer_recipe(224, 1) + scratch_recipe(32, 1)} - {c.key for c in measured}
    return merged([c for c in choices if c.key not in unused], measured)


def merged(choices: list[Choice], replacing: list[Choice]) -> list[Choice]:
    """``choices`` with each of ``replacing`` in place of the one of its key (or added)."""
    new = {c.key: c for c in replacing}
    kept = [new.pop(c.key, c) for c in choices]
    return kept + list(new.values())


def source_name(folder: Path, root: Path) -> str:
    """How params.yaml names ``folder``: relative to the project when inside it, else absolute."""
    folder = folder.resolve()
    if folder.is_relative_to(root):
        return folder.relative_to(root).as_posix()
    log.warning(
        f"init: note: {folder} is outside the project, so DVC will not version it; copy or move it "
        f"under raw/ and `dvc add` it (docs/how-to/versioning.md)."
    )
    return str(folder)


def _show(value: object) -> str:
    if isinstance(value, dict):
        return "{" + ", ".join(f"{k}: {_show(v)}" for k, v in value.items()) + "}"
    if isinstance(value, bool):
        return str(value).lower()
    return str(value) if not isinstance(value, str) or value else "''"
