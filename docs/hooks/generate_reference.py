"""Print the generated reference pages as JSON ({path in docs/: Markdown}).

The MkDocs hook runs this in a fresh interpreter of its own, with this checkout's src/ first
on the path, so the pages describe the code beside them, and ``mkdocs serve`` rebuilds them
from edited code instead of modules it imported before. Usage: generate_reference.py ROOT
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

root = Path(sys.argv[1])
sys.path[:0] = [str(root / "src"), str(Path(__file__).parent)]
os.environ["COLUMNS"] = "100"  # argparse wraps usage lines to the terminal; the page wants one width

from cli_reference import cli_page  # noqa: E402  (after the path is set)
from params_reference import params_page  # noqa: E402

json.dump({"reference/cli.md": cli_page(), "reference/params.md": params_page(root)}, sys.stdout)
