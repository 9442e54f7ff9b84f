"""Check params: validate every section of params.yaml whenever the file changes.

No outputs. DVC reruns this stage whenever params.yaml changes at all, so a typo (a
top-level ``trian:``, or ``ingest.imgae_size``) fails ``dvc repro`` naming the key even
when no other stage would rerun for it. Each stage still checks its own section too.
"""

from __future__ import annotations

from imgpipe.errors import run_stage
from imgpipe.params.sections import check_all
from imgpipe.paths import Paths


def main() -> None:
    paths = Paths.discover()
    check_all(paths.params)
    print(f"check_params: {paths.params.name} is valid")


if __name__ == "__main__":
    run_stage(main)
