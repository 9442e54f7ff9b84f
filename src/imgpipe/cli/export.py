"""``imgpipe export``: the trained model as ONNX or TorchScript, checked against PyTorch."""

from __future__ import annotations

import argparse
from pathlib import Path

from imgpipe.cli._project import project_root


def add_parser(commands) -> argparse.ArgumentParser:
    export = commands.add_parser(
        "export",
        help="write the trained model as ONNX or TorchScript, with its spec",
        description="Write the trained model (uint8 NHWC images in, evaluate's decision "
        "inside) as ONNX or TorchScript, and spec.json beside it: classes, input size, "
        "and how ingest decoded the training images. The export is checked against "
        "PyTorch on the test split first.",
    )
    export.add_argument("--format", choices=["onnx", "torchscript"], default="onnx")
    export.add_argument("-o", "--output", type=Path, help="the folder to write (default: exports/<format>)")
    export.add_argument("--model", help="a model folder (default: models/ of this project)")
    return export


def run(args: argparse.Namespace) -> int:
    from imgpipe.serving.export import export_model

    root = project_root()
    done = export_model(root, args.model, args.format, args.output or root / "exports" / args.format)
    print(
        f"export: wrote {done.file} and spec.json; on {done.checked_images} test images it matches PyTorch "
        f"within {done.max_difference:.1e}"
    )
    return 0
