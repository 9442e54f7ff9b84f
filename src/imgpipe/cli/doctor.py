"""``imgpipe doctor``: can this machine and project run the pipeline, and how to fix what cannot."""

from __future__ import annotations

import argparse

from imgpipe.cli._project import project_root


def add_parser(commands) -> argparse.ArgumentParser:
    return commands.add_parser(
        "doctor",
        help="check the device, DVC, MLflow and the data source, with fixes",
        description="Check that this machine and project can run the pipeline; say how to fix what cannot.",
    )


def run(args: argparse.Namespace) -> int:
    from imgpipe.ops.doctor import run_checks

    checks = run_checks(project_root())
    for check in checks:
        print(f"[{'ok' if check.ok else 'FAIL':>4}] {check.name:<7} {check.detail}")
        if check.fix:
            print(f"{'':15}-> {check.fix}")
    failed = [c.name for c in checks if not c.ok]
    print("doctor: all checks passed" if not failed else f"doctor: {len(failed)} problem(s): {', '.join(failed)}")
    return 1 if failed else 0
