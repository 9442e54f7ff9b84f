"""``imgpipe init``: profile the folder, choose, print each choice with its reason, write."""

from __future__ import annotations

from pathlib import Path

import yaml

from imgpipe.errors import ImgpipeError
from imgpipe.params.base import read_params
from imgpipe.tools.init.params_file import updated_params, write_params
from imgpipe.tools.init.profile import profile_folder
from imgpipe.tools.init.recipe import Choice, choose, leftovers

# How much of the backbone to retrain: the rule's choice first, then the alternative tried.
FREEZING = {"the last 4 blocks": {"unfreeze_last": 4}, "every block": "none"}


def init_params(folder: Path, params: Path, image_size: int | None = None, dry_run: bool = False,
                trial: bool = True) -> list[Choice]:
    """Choose params for ``folder`` and write them into ``params`` (unless ``dry_run``)."""
    if image_size is not None and not 8 <= image_size <= 1024:
        raise ImgpipeError(f"imgpipe init: --image-size {image_size} is out of range; give 8 to 1024 pixels.")
    profile = profile_folder(folder)
    print(f"init: {profile.describe()}")
    root = params.resolve().parent
    choices = choose(profile, source_name(folder, root), image_size) + leftovers(read_params(params))
    if trial and any(c.key == "train.pretrained" and c.value for c in choices):
        choices = try_freezing(choices, params, root)
    width = max(len(c.key) for c in choices)
    for choice in choices:
        print(f"  {choice.key:<{width}}  {_show(choice.value):<22}  {choice.reason}")
    if dry_run:
        print(f"init: nothing written (--dry-run); without it, these go into {params}")
        return choices
    write_params(params, params, choices)
    print(f"init: wrote {params} (`git diff {params}` to review); next: dvc repro")
    return choices


def try_freezing(choices: list[Choice], params: Path, root: Path) -> list[Choice]:
    """Retrain the last blocks or every block? Try both briefly; keep the better by val."""
    from imgpipe.tools.init.trial import MARGIN, TRIAL_EPOCHS, pick, score, trial_data

    full = yaml.safe_load(updated_params(params, choices))
    data = trial_data(full, root)
    print(f"init: trying {' and '.join(FREEZING)} unfrozen, {TRIAL_EPOCHS} epochs each on {len(data.train[1])} "
          f"of ingest's training images, scored on {len(data.val[1])} val images (--no-trial skips this)")
    scores = {name: score({**full["train"], "freeze": freeze}, data, root) for name, freeze in FREEZING.items()}
    tried = ", ".join(f"{name} {value:.3f}" for name, value in scores.items())
    print(f"init: val balanced accuracy: {tried}")
    chosen = pick(scores)
    why = (f"tried briefly (val balanced accuracy: {tried}); {chosen} unfrozen "
           + ("kept, the images are close enough to ImageNet's" if chosen == next(iter(FREEZING))
              else f"learns better here, by {MARGIN} or more: these images are further from ImageNet's photos"))
    return [Choice(c.key, FREEZING[chosen], why) if c.key == "train.freeze" else c for c in choices]


def source_name(folder: Path, root: Path) -> str:
    """How params.yaml names ``folder``: relative to the project when inside it, else absolute."""
    folder = folder.resolve()
    if folder.is_relative_to(root):
        return folder.relative_to(root).as_posix()
    print(f"init: note: {folder} is outside the project, so DVC will not version it; copy or move it "
          f"under raw/ and `dvc add` it (README, \"Versioning your images with DVC\").")
    return str(folder)


def _show(value: object) -> str:
    if isinstance(value, dict):
        return "{" + ", ".join(f"{k}: {_show(v)}" for k, v in value.items()) + "}"
    if isinstance(value, bool):
        return str(value).lower()
    return str(value) if not isinstance(value, str) or value else "''"
