"""Text from code (comments, argparse help) made safe to put into Markdown."""

from __future__ import annotations

import html


def escape(text: str, table_cell: bool = True) -> str:
    """Plain text as Markdown that shows it as written.

    Outside code spans, ``<folder>`` would be read as an HTML tag and vanish, and in a table
    cell a pipe would end the cell; inside a code span both are shown as they are."""
    pieces = text.replace("\n", " ").split("`")
    if len(pieces) % 2 == 0:  # an unmatched backtick: no code spans to respect
        pieces = ["`".join(pieces)]
    return "`".join(piece if i % 2 else plain(piece, table_cell) for i, piece in enumerate(pieces))


def plain(text: str, table_cell: bool) -> str:
    text = html.escape(text, quote=False)
    return text.replace("|", "\\|") if table_cell else text
