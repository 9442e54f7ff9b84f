"""``imgpipe embed``: the trained model's penultimate features of every image, and a 2-D map of them."""

from __future__ import annotations

import argparse
from pathlib import Path

from imgpipe.cli import flags
from imgpipe.cli._project import project_root


def add_parser(commands) -> argparse.ArgumentParser:
    embed = commands.add_parser(
        "embed",
        help="write the trained model's penultimate features of every image, and a 2-D map of them",
        description="Write <out>/features.npy (N x D float32), "
        "<out>/index.csv (split, row, label, class, id of each row) and <out>/map.png (t-SNE, "
        "coloured by class, a marker per split) for every image of data/ingest.",
    )
    embed.add_argument(
        "-o", "--output", type=Path, help="the folder to write into (default: embeddings/ of the project)"
    )
    add_model_and_seed(embed)
    return embed


def add_model_and_seed(command: argparse.ArgumentParser) -> None:
    """The flags `embed` and `inspect` share."""
    command.add_argument("--model", type=Path, help="a model folder (default: models/ of this project)")
    command.add_argument(
        "--seed", type=flags.seed, default=0, help="seed of the map, the folds and the samples (default: 0)"
    )


def run(args: argparse.Namespace) -> int:
    from imgpipe.inspection.command import run_embed

    for line in run_embed(project_root(), args.output, args.model, args.seed):
        print(line)
    return 0
