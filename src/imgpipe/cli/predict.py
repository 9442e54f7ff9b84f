"""``imgpipe predict``: the class and its probability for each image file."""

from __future__ import annotations

import argparse
import sys

from imgpipe.cli._project import project_root
from imgpipe.errors import ImgpipeError


def add_parser(commands) -> argparse.ArgumentParser:
    predict = commands.add_parser(
        "predict",
        help="classify image files or folders with a trained model",
        description="Print the predicted class and its probability for each image.",
    )
    predict.add_argument("paths", nargs="+", help="image files and/or folders (searched recursively)")
    predict.add_argument(
        "--model",
        help="a model folder (default: models/ of this project) or an MLflow URI "
        "such as models:/<name>@champion, models:/<name>/<version> or runs:/<run_id>/model",
    )
    predict.add_argument("--csv", action="store_true", help="write CSV (file,class,probability,error) instead of text")
    return predict


def run(args: argparse.Namespace) -> int:
    from imgpipe.serving.predict import image_paths, load_predictor, predict_files

    files = image_paths(args.paths)
    if not files:
        raise ImgpipeError(f"no image files in {', '.join(args.paths)}")
    predictor = load_predictor(args.model, project_root())
    table = predict_files(predictor, files)
    if args.csv:
        table.to_csv(sys.stdout, index=False, lineterminator="\n")
    else:
        width = max(len(f) for f in table["file"])
        for row in table.itertuples():
            verdict = f"{row[2]}\t{row.probability:.4f}" if not row.error else f"skipped: {row.error}"
            print(f"{row.file:<{width}}\t{verdict}")
    skipped = int((table["error"] != "").sum())
    if skipped:
        print(f"imgpipe: {skipped} of {len(table)} files could not be read", file=sys.stderr)
    return 1 if skipped == len(table) else 0
