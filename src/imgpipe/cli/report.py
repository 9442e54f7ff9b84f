"""``imgpipe report``: a Markdown or HTML summary of an MLflow run, plots included."""

from __future__ import annotations

import argparse
from pathlib import Path

from imgpipe.cli._project import project_root


def add_parser(commands) -> argparse.ArgumentParser:
    report = commands.add_parser(
        "report",
        help="write a Markdown or HTML summary of an MLflow run, plots included",
        description="Summarise the latest run of the experiment in params.yaml (or --run): "
        "params, metrics, the data it saw, and its plots.",
    )
    report.add_argument(
        "-o",
        "--output",
        type=Path,
        default=Path("report.html"),
        help="report.html (self-contained) or report.md (images in report_files/); default report.html",
    )
    report.add_argument("--run", help="an MLflow run id (default: the latest run of the experiment)")
    return report


def run(args: argparse.Namespace) -> int:
    from imgpipe.reporting.report import write_report

    path = write_report(project_root(), args.output, args.run)
    print(f"report: wrote {path}")
    return 0
