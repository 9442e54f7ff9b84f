"""The ``imgpipe`` command: one module per subcommand in this package.

Each command module has ``add_parser(commands)``, which adds its subparser and returns it,
and ``run(args)``, which does the work and returns the exit status. The commands are found
by listing this package, so adding a command is adding a module: there is no table to edit.
Modules whose names start with ``_``, and ``flags`` (argument types), are not commands.
"""

from __future__ import annotations

import argparse
import importlib
import pkgutil
import sys
from types import ModuleType

from imgpipe.errors import ImgpipeError
from imgpipe.logs import configure

NOT_COMMANDS = {"flags"}


def command_modules() -> list[ModuleType]:
    """Every command's module, in the order ``imgpipe --help`` lists them (by name)."""
    names = sorted(m.name for m in pkgutil.iter_modules(__path__) if not m.name.startswith("_"))
    return [importlib.import_module(f"{__name__}.{name}") for name in names if name not in NOT_COMMANDS]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="imgpipe", description="A reproducible image-classification pipeline.")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for module in command_modules():
        # Not ``run``: report and promote have a --run flag, whose value would replace it.
        module.add_parser(commands).set_defaults(run_command=module.run)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    configure()  # the library's log lines, as the command's own output (imgpipe.logs)
    try:
        return args.run_command(args)
    except ImgpipeError as exc:
        print(f"imgpipe: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("imgpipe: stopped (Ctrl-C)", file=sys.stderr)
        return 130
