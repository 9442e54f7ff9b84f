"""``imgpipe init``: params.yaml for a folder of class folders, each choice with its reason."""

from __future__ import annotations

import argparse
from pathlib import Path


def add_parser(commands) -> argparse.ArgumentParser:
    init = commands.add_parser(
        "init",
        help="write params.yaml for a folder of class folders, with reasons",
        description="Profile FOLDER (classes, image sizes, colour) and set params.yaml's "
        "ingest, balance, augment and train keys for it, keeping the file's comments; each "
        "choice is printed with its reason. Then run `dvc repro`.",
    )
    init.add_argument(
        "folder",
        type=Path,
        help="images in class folders (<folder>/<class>/...), or pre-split "
        "(<folder>/train/<class>/...); best under raw/, versioned with `dvc add`",
    )
    init.add_argument(
        "--params", type=Path, default=Path("params.yaml"), help="the file to update (default: params.yaml)"
    )
    init.add_argument("--image-size", type=int, help="use this size instead of the one chosen from the images")
    init.add_argument("--dry-run", action="store_true", help="print the choices; write nothing")
    init.add_argument(
        "--no-trial",
        action="store_true",
        help="guess by a rule of thumb from the images' size and "
        "colour, in seconds, instead of briefly training the alternatives on the folder",
    )
    init.add_argument(
        "--budget-minutes",
        type=float,
        default=20.0,
        metavar="MINUTES",
        help="time for the trial and the full training together (default: 20, sized for 2 CPUs "
        "without a GPU); the trial takes at most 40%% and sets train.epochs to fit the rest",
    )
    return init


def run(args: argparse.Namespace) -> int:
    from imgpipe.init.command import init_params

    init_params(
        args.folder,
        args.params,
        args.image_size,
        args.dry_run,
        trial=not args.no_trial,
        budget_minutes=args.budget_minutes,
    )
    return 0
