"""``imgpipe init``: profile the folder, choose, print each choice with its reason, write."""

from __future__ import annotations

from pathlib import Path

from imgpipe.errors import ImgpipeError
from imgpipe.tools.init.params_file import write_params
from imgpipe.tools.init.profile import profile_folder
from imgpipe.tools.init.recipe import Choice, choose


def init_params(folder: Path, params: Path, image_size: int | None = None, dry_run: bool = False) -> list[Choice]:
    """Choose params for ``folder`` and write them into ``params`` (unless ``dry_run``)."""
    if image_size is not None and not 8 <= image_size <= 1024:
        raise ImgpipeError(f"imgpipe init: --image-size {image_size} is out of range; give 8 to 1024 pixels.")
    profile = profile_folder(folder)
    print(f"init: {profile.describe()}")
    choices = choose(profile, source_name(folder, params.resolve().parent), _has_gpu(), image_size)
    width = max(len(c.key) for c in choices)
    for choice in choices:
        print(f"  {choice.key:<{width}}  {_show(choice.value):<22}  {choice.reason}")
    if dry_run:
        print(f"init: nothing written (--dry-run); without it, these go into {params}")
        return choices
    write_params(params, params, choices)
    print(f"init: wrote {params} (`git diff {params}` to review); next: dvc repro")
    return choices


def source_name(folder: Path, root: Path) -> str:
    """How params.yaml names ``folder``: relative to the project when inside it, else absolute."""
    folder = folder.resolve()
    if folder.is_relative_to(root):
        return folder.relative_to(root).as_posix()
    print(f"init: note: {folder} is outside the project, so DVC will not version it; copy or move it "
          f"under raw/ and `dvc add` it (README, \"Versioning your images with DVC\").")
    return str(folder)


def _has_gpu() -> bool:
    import torch

    return torch.cuda.is_available() or torch.backends.mps.is_available()


def _show(value: object) -> str:
    if isinstance(value, dict):
        return "{" + ", ".join(f"{k}: {_show(v)}" for k, v in value.items()) + "}"
    if isinstance(value, bool):
        return str(value).lower()
    return str(value) if not isinstance(value, str) or value else "''"
