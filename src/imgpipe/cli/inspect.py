"""``imgpipe inspect``: likely label errors, and where the model looks (Grad-CAM)."""

from __future__ import annotations

import argparse

from imgpipe.cli._project import project_root
from imgpipe.cli.embed import add_model_and_seed
from imgpipe.errors import ImgpipeError


def add_parser(commands) -> argparse.ArgumentParser:
    inspect = commands.add_parser(
        "inspect",
        help="find likely label errors and show where the model looks",
        description="Write embeddings/ (as `imgpipe embed`), reports/label_issues.csv and "
        ".png (cleanlab on out-of-fold logistic-regression probabilities from the "
        "features) and reports/gradcam.png (Grad-CAM of the test split's most confident "
        "mistakes and of each class), then print a summary.",
    )
    inspect.add_argument("--top", type=int, default=16, help="images in each grid (default: 16)")
    inspect.add_argument("--folds", type=int, default=5, help="folds of the stratified cross-validation (default: 5)")
    inspect.add_argument(
        "--features",
        choices=["model", "imagenet"],
        default="model",
        help="what to find label errors with: the trained model's embeddings (default), or an "
        "ImageNet EfficientNet-Lite0 that never saw these labels. The trained model has fitted the "
        "training images' given labels, wrong ones included, which hides their errors; imagenet "
        "does not, at the cost of features less tuned to these classes.",
    )
    add_model_and_seed(inspect)
    return inspect


def run(args: argparse.Namespace) -> int:
    from imgpipe.inspection.command import run_inspect

    if args.top < 1:
        raise ImgpipeError(f"--top must be 1 or more (got {args.top})")
    for line in run_inspect(project_root(), args.model, args.top, args.folds, args.features, args.seed):
        print(line)
    return 0
