"""The ``imgpipe`` command line."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from imgpipe.paths import find_project_root
from imgpipe.errors import ImgpipeError
from imgpipe.tools import flags
from imgpipe.tools.build_docker import add_build_docker_command, run_build_docker


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    run = {"init": _init, "server": _server, "report": _report, "pack": _pack, "doctor": _doctor, "predict": _predict,
           "tune": _tune, "embed": _embed, "inspect": _inspect, "export": _export, "promote": _promote,
           "build-docker": run_build_docker}
    try:
        return run[args.command](args)
    except ImgpipeError as exc:
        print(f"imgpipe: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("imgpipe: stopped (Ctrl-C)", file=sys.stderr)
        return 130


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="imgpipe", description="A reproducible image-classification pipeline.")
    commands = parser.add_subparsers(dest="command", required=True)
    predict = commands.add_parser("predict", help="classify image files or folders with a trained model",
                                  description="Print the predicted class and its probability for each image.")
    predict.add_argument("paths", nargs="+", help="image files and/or folders (searched recursively)")
    predict.add_argument("--model", help="a model folder (default: models/ of this project) or an MLflow URI "
                         "such as models:/<name>@champion, models:/<name>/<version> or runs:/<run_id>/model")
    predict.add_argument("--csv", action="store_true", help="write CSV (file,class,probability,error) instead of text")
    commands.add_parser("doctor", help="check the device, DVC, MLflow and the data source, with fixes",
                        description="Check that this machine and project can run the pipeline; say how to fix what cannot.")
    server = commands.add_parser("server", help="run a team MLflow tracking server (PostgreSQL, artifacts on disk)",
                                 description="Start Debian's PostgreSQL if it is down, create the MLflow database "
                                 "if missing, and run `mlflow server` in the foreground.")
    server.add_argument("--host", default="127.0.0.1")
    server.add_argument("--port", type=int, default=5000)
    server.add_argument("--database", default="mlflow", help="PostgreSQL database (created if missing)")
    server.add_argument("--user", default="mlflow", help="PostgreSQL role that owns it (created if missing); "
                        "its password is $IMGPIPE_MLFLOW_DB_PASSWORD, else a random one kept in "
                        "~/.config/imgpipe/mlflow-db-password")
    server.add_argument("--artifacts", type=Path, default=Path("mlflow-server/artifacts"),
                        help="folder the server stores artifacts in (default: mlflow-server/artifacts)")
    server.add_argument("--workers", type=int, default=4)
    report = commands.add_parser("report", help="write a Markdown or HTML summary of an MLflow run, plots included",
                                 description="Summarise the latest run of the experiment in params.yaml (or --run): "
                                 "params, metrics, the data it saw, and its plots.")
    report.add_argument("-o", "--output", type=Path, default=Path("report.html"),
                        help="report.html (self-contained) or report.md (images in report_files/); default report.html")
    report.add_argument("--run", help="an MLflow run id (default: the latest run of the experiment)")
    _add_data_commands(commands)
    _add_inspect_commands(commands)
    _add_tune_command(commands)
    export = commands.add_parser("export", help="write the trained model as ONNX or TorchScript, with its spec",
                                 description="Write the trained model (uint8 NHWC images in, evaluate's decision "
                                 "inside) as ONNX or TorchScript, and spec.json beside it: classes, input size, "
                                 "and how ingest decoded the training images. The export is checked against "
                                 "PyTorch on the test split first.")
    export.add_argument("--format", choices=["onnx", "torchscript"], default="onnx")
    export.add_argument("-o", "--output", type=Path, help="the folder to write (default: exports/<format>)")
    export.add_argument("--model", help="a model folder (default: models/ of this project)")
    _add_registry_commands(commands)
    return parser


def _add_registry_commands(commands) -> None:
    promote = commands.add_parser("promote", help="make a registered model the champion, if it beats the champion",
                                  description="Point the registered model's `champion` alias at a version (default: "
                                  "the one evaluate registered for models/ of this project) only when its val "
                                  "balanced accuracy beats the champion's on the same val data. Serve "
                                  "models:/<name>@champion. Exits 1, changing nothing, when it does not beat it.")
    promote.add_argument("--version", help="the version to promote (default: the one trained in the run of models/)")
    promote.add_argument("--run", help="the MLflow run that trained the model to promote (default: models/'s)")
    promote.add_argument("--name", help="the registered model (default: params.yaml's mlflow.registered_model)")
    promote.add_argument("--force", action="store_true", help="replace the champion even when it is not beaten or "
                         "was validated on other data")
    add_build_docker_command(commands)


def _add_tune_command(commands) -> None:
    tune = commands.add_parser("tune", help="search settings with Optuna; every trial is a DVC experiment",
                               description="Run an Optuna study over the search space in params.yaml's tune "
                               "section (or tune.yaml): each trial is `dvc exp run --temp -n tune-<study>-<n> -S ...`, "
                               "scored by tune.metric from its metrics.json, logged to MLflow under one parent run "
                               "for the study, and stopped early when clearly behind. Keep the best with "
                               "`dvc exp apply`.")
    tune.add_argument("--trials", type=int, help="trials to run now (default: tune.trials)")
    tune.add_argument("--timeout", type=float, help="seconds after which no new trial starts (default: tune.timeout)")
    tune.add_argument("--resume", action="store_true", help="continue the study (it must exist)")
    tune.add_argument("--study", help="the study's name (default: tune.study); trials are named tune-<study>-<n>")
    tune.add_argument("--storage", help="an Optuna storage URL (default: $IMGPIPE_TUNE_STORAGE, else optuna.db "
                      "beside mlflow.db)")


def _add_data_commands(commands) -> None:
    init = commands.add_parser("init", help="write params.yaml for a folder of class folders, with reasons",
                               description="Profile FOLDER (classes, image sizes, colour) and set params.yaml's "
                               "ingest, balance, augment and train keys for it, keeping the file's comments; each "
                               "choice is printed with its reason. Then run `dvc repro`.")
    init.add_argument("folder", type=Path, help="images in class folders (<folder>/<class>/...), or pre-split "
                      "(<folder>/train/<class>/...); best under raw/, versioned with `dvc add`")
    init.add_argument("--params", type=Path, default=Path("params.yaml"), help="the file to update (default: params.yaml)")
    init.add_argument("--image-size", type=int, help="use this size instead of the one chosen from the images")
    init.add_argument("--dry-run", action="store_true", help="print the choices; write nothing")
    init.add_argument("--no-trial", action="store_true", help="guess by a rule of thumb from the images' size and "
                      "colour, in seconds, instead of briefly training the alternatives on the folder")
    init.add_argument("--budget-minutes", type=float, default=20.0, metavar="MINUTES",
                      help="time for the trial and the full training together (default: 20, sized for 2 CPUs "
                      "without a GPU); the trial takes at most 40%% and sets train.epochs to fit the rest")
    pack = commands.add_parser("pack", help="write a folder of class folders as WebDataset .tar shards",
                               description="Write the images under SRC as tar shards in DST (shard-000000.tar, ...), "
                               "shuffled with --seed, --shard-size samples each. Point ingest.source at DST and "
                               "`dvc add` it: DVC tracks a few files instead of one per image, and ingest gives the "
                               "same output as from SRC.")
    pack.add_argument("src", type=Path, help="images in class folders (<src>/<class>/...), or pre-split")
    pack.add_argument("dst", type=Path, help="the folder to create for the shards (must not exist or be empty)")
    pack.add_argument("--shard-size", type=int, default=5000, help="samples per shard (default: 5000)")
    pack.add_argument("--seed", type=flags.seed, default=0, help="seed of the sample order (default: 0)")


def _doctor(args: argparse.Namespace) -> int:
    from imgpipe.tools.doctor import run_checks

    checks = run_checks(find_project_root(Path.cwd()))
    for check in checks:
        print(f"[{'ok' if check.ok else 'FAIL':>4}] {check.name:<7} {check.detail}")
        if check.fix:
            print(f"{'':15}-> {check.fix}")
    failed = [c.name for c in checks if not c.ok]
    print("doctor: all checks passed" if not failed else f"doctor: {len(failed)} problem(s): {', '.join(failed)}")
    return 1 if failed else 0


def _init(args: argparse.Namespace) -> int:
    from imgpipe.tools.init.command import init_params

    init_params(args.folder, args.params, args.image_size, args.dry_run, trial=not args.no_trial,
                budget_minutes=args.budget_minutes)
    return 0


def _server(args: argparse.Namespace) -> int:
    from imgpipe.tools.server import ServerSettings, serve

    return serve(ServerSettings(host=args.host, port=args.port, database=args.database, user=args.user,
                                artifacts=args.artifacts, workers=args.workers))


def _report(args: argparse.Namespace) -> int:
    from imgpipe.tools.report import write_report

    path = write_report(find_project_root(Path.cwd()), args.output, args.run)
    print(f"report: wrote {path}")
    return 0


def _pack(args: argparse.Namespace) -> int:
    from imgpipe.tools.pack import pack

    shards = pack(args.src, args.dst, args.shard_size, args.seed)
    size = sum(s.stat().st_size for s in shards)
    print(f"pack: wrote {len(shards)} shards ({size / 2**20:.1f} MiB) to {args.dst}; "
          f"set ingest.source to it and `dvc add {args.dst}`")
    return 0


def _tune(args: argparse.Namespace) -> int:
    from imgpipe.tools.tune.study import TuneRequest, tune

    for flag, value in (("--trials", args.trials), ("--timeout", args.timeout)):
        if value is not None and value <= 0:
            raise ImgpipeError(f"{flag} must be above 0 (got {value})")
    tune(find_project_root(Path.cwd()), TuneRequest(args.trials, args.timeout, args.resume, args.storage, args.study))
    return 0


def _export(args: argparse.Namespace) -> int:
    from imgpipe.tools.export import export_model

    root = find_project_root(Path.cwd())
    done = export_model(root, args.model, args.format, args.output or root / "exports" / args.format)
    print(f"export: wrote {done.file} and spec.json; on {done.checked_images} test images it matches PyTorch "
          f"within {done.max_difference:.1e}")
    return 0


def _promote(args: argparse.Namespace) -> int:
    from imgpipe.tools.promote import run_promote

    return run_promote(find_project_root(Path.cwd()), args.name, args.version, args.run, args.force)


def _predict(args: argparse.Namespace) -> int:
    from imgpipe.tools.predict import image_paths, load_predictor, predict_files

    files = image_paths(args.paths)
    if not files:
        raise ImgpipeError(f"no image files in {', '.join(args.paths)}")
    predictor = load_predictor(args.model, find_project_root(Path.cwd()))
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


def _add_inspect_commands(commands) -> None:
    embed = commands.add_parser("embed", help="write the trained model's penultimate features of every image, "
                                "and a 2-D map of them", description="Write <out>/features.npy (N x D float32), "
                                "<out>/index.csv (split, row, label, class, id of each row) and <out>/map.png (t-SNE, "
                                "coloured by class, a marker per split) for every image of data/ingest.")
    embed.add_argument("-o", "--output", type=Path,
                       help="the folder to write into (default: embeddings/ of the project)")
    inspect = commands.add_parser("inspect", help="find likely label errors and show where the model looks",
                                  description="Write embeddings/ (as `imgpipe embed`), reports/label_issues.csv and "
                                  ".png (cleanlab on out-of-fold logistic-regression probabilities from the "
                                  "features) and reports/gradcam.png (Grad-CAM of the test split's most confident "
                                  "mistakes and of each class), then print a summary.")
    inspect.add_argument("--top", type=int, default=16, help="images in each grid (default: 16)")
    inspect.add_argument("--folds", type=int, default=5, help="folds of the stratified cross-validation (default: 5)")
    inspect.add_argument("--features", choices=["model", "imagenet"], default="model",
                         help="what to find label errors with: the trained model's embeddings (default), or an "
                         "ImageNet EfficientNet-Lite0 that never saw these labels. The trained model has fitted the "
                         "training images' given labels, wrong ones included, which hides their errors; imagenet "
                         "does not, at the cost of features less tuned to these classes.")
    for command in (embed, inspect):
        command.add_argument("--model", type=Path, help="a model folder (default: models/ of this project)")
        command.add_argument("--seed", type=flags.seed, default=0,
                             help="seed of the map, the folds and the samples (default: 0)")


def _embed(args: argparse.Namespace) -> int:
    from imgpipe.tools.inspection.command import run_embed

    run_embed(find_project_root(Path.cwd()), args.output, args.model, args.seed)
    return 0


def _inspect(args: argparse.Namespace) -> int:
    from imgpipe.tools.inspection.command import run_inspect

    if args.top < 1:
        raise ImgpipeError(f"--top must be 1 or more (got {args.top})")
    run_inspect(find_project_root(Path.cwd()), args.model, args.top, args.folds, args.features, args.seed)
    return 0


if __name__ == "__main__":
    sys.exit(main())
