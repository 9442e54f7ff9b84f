"""MkDocs hook: the pages made at build time from what they describe, so they cannot drift.

- ``reference/params.md`` from the pydantic schemas of params.yaml's sections and
  ``reference/cli.md`` from ``imgpipe.cli.build_parser()`` (generate_reference.py);
- ``benchmarks/index.md`` from BENCHMARKS.md at the repository's root, whose links are
  written for GitHub (``docs/benchmarks/ingest.md``) and are rewritten for the site.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

from mkdocs.exceptions import PluginError
from mkdocs.structure.files import File, Files

HERE = Path(__file__).parent
# A Markdown link to a path under docs/: ](docs/benchmarks/ingest.md#a) and the like.
DOCS_LINK = re.compile(r"\]\(docs/([^)\s]*)\)")


def on_files(files: Files, config) -> Files:
    root = Path(config.config_file_path).parent
    pages = reference_pages(root)
    pages["benchmarks/index.md"] = benchmarks_index(root)
    for uri, content in pages.items():
        files.append(File.generated(config, uri, content=content))
    return files


def reference_pages(root: Path) -> dict[str, str]:
    done = subprocess.run(
        [sys.executable, str(HERE / "generate_reference.py"), str(root)], capture_output=True, text=True, cwd=root
    )
    if done.returncode != 0:
        raise PluginError(f"generating the reference pages failed:\n{done.stderr}")
    return json.loads(done.stdout)


def benchmarks_index(root: Path) -> str:
    """BENCHMARKS.md with its links made relative to docs/benchmarks/, where the page lives."""
    text = (root / "BENCHMARKS.md").read_text()
    return DOCS_LINK.sub(lambda m: "](" + relative_to_benchmarks(m.group(1)) + ")", text)


def relative_to_benchmarks(target: str) -> str:
    return target.removeprefix("benchmarks/") if target.startswith("benchmarks/") else "../" + target
