"""The CLI reference page, written from the ``imgpipe`` command's own argparse parser.

``imgpipe.cli.build_parser()`` finds every command by listing the ``imgpipe.cli`` package,
so a new command or flag appears here on the next build, with the help its parser gives.
"""

from __future__ import annotations

import argparse
from typing import Any

from md_text import escape

from imgpipe.cli import build_parser


def cli_page() -> str:
    parser = build_parser()
    commands = subcommands(parser)
    summaries = {choice.dest: choice.help for choice in commands._choices_actions}
    lines = [
        "# CLI reference",
        "",
        "Every `imgpipe` command with its arguments, generated from `imgpipe.cli.build_parser()` each time "
        "the site is built, so it cannot drift from the parser. `imgpipe COMMAND --help` prints the same "
        "from the command line; `python -m imgpipe.cli` runs the command where its script is not on `PATH`. "
        "A bad flag, or an error the command can name (a one-sentence `imgpipe: error: ...`), exits 2; Ctrl-C "
        "exits 130.",
        "",
        "| command | what it does |",
        "|---|---|",
        *(f"| [`imgpipe {name}`](#{name}) | {escape(summaries.get(name) or '')} |" for name in commands.choices),
        "",
    ]
    for name, command in commands.choices.items():
        lines += command_lines(name, command, summaries.get(name) or "")
    return "\n".join(lines) + "\n"


def subcommands(parser: argparse.ArgumentParser) -> argparse._SubParsersAction:
    return next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))


def command_lines(name: str, command: argparse.ArgumentParser, summary: str) -> list[str]:
    lines = [f"## imgpipe {name} {{#{name}}}", "", escape(f"{summary[:1].upper()}{summary[1:]}.", table_cell=False)]
    if command.description:
        lines += ["", escape(command.description, table_cell=False)]
    lines += ["", "```text", command.format_usage().strip(), "```", ""]
    actions = [a for a in command._actions if not isinstance(a, argparse._HelpAction)]
    if not actions:
        return [*lines, "No arguments.", ""]
    lines += ["| argument | default | help |", "|---|---|---|"]
    for action in actions:
        lines.append(f"| {invocation(action)} | {default_text(action)} | {escape(help_text(action, command.prog))} |")
    return [*lines, ""]


def invocation(action: argparse.Action) -> str:
    """``--output OUTPUT`` for an option, ``paths ...`` for a positional, as ``--help`` writes them."""
    metavar = action.metavar or (action.dest.upper() if action.option_strings else action.dest)
    if action.nargs == 0:
        return ", ".join(f"`{option}`" for option in action.option_strings)
    if not action.option_strings:
        return f"`{metavar}`" + (" (one or more)" if action.nargs == "+" else "")
    return ", ".join(f"`{option} {metavar}`" for option in action.option_strings)


def default_text(action: argparse.Action) -> str:
    if action.nargs == 0:
        return "off"
    if not action.option_strings:
        return "*required*"
    # A callable is no user's value: build_parser's set_defaults(run=<handler>) lands on any
    # flag whose dest is also "run" (--run), and its repr would change with every build.
    if action.default is None or action.default is argparse.SUPPRESS or callable(action.default):
        return ""
    return f"`{action.default}`"


def help_text(action: argparse.Action, prog: str) -> str:
    """The help with argparse's own ``%(default)s`` and ``%%`` expanded, and the choices."""
    params: dict[str, Any] = {**vars(action), "prog": prog}
    text = (action.help or "") % params if action.help else ""
    if action.choices:
        text = f"one of {', '.join(f'`{c}`' for c in action.choices)}" + (f"; {text}" if text else "")
    return text
