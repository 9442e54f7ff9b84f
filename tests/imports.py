"""Which files of the project a stage runs: its script and, transitively, every imgpipe
module it imports (read with ``ast``, so nothing is executed)."""

from __future__ import annotations

import ast
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SRC = REPO / "src"


def module_file(name: str) -> Path | None:
    """The file that ``import name`` executes, if ``name`` is an imgpipe module or package."""
    base = SRC.joinpath(*name.split("."))
    for candidate in (base.with_suffix(".py"), base / "__init__.py"):
        if candidate.is_file():
            return candidate
    return None


def imported_modules(path: Path) -> set[str]:
    """imgpipe modules that ``path`` imports anywhere in its body, functions included."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            if node.level:
                raise AssertionError(f"{path}: relative import of {node.module}; imgpipe uses absolute imports")
            found.add(node.module)
            # `from imgpipe.store import ingested` imports the submodule too.
            found.update(f"{node.module}.{alias.name}" for alias in node.names)
    return {name for name in found if name == "imgpipe" or name.startswith("imgpipe.")}


def files_run(script: Path) -> set[Path]:
    """``script`` and every imgpipe file that importing it executes, parent packages too."""
    seen: set[Path] = set()
    todo = [script]
    while todo:
        path = todo.pop()
        if path in seen:
            continue
        seen.add(path)
        for name in imported_modules(path):
            parts = name.split(".")
            for depth in range(1, len(parts) + 1):  # importing a.b.c runs a, a.b and a.b.c
                target = module_file(".".join(parts[:depth]))
                if target is not None and target not in seen:
                    todo.append(target)
    return seen


def python_files(dep: Path) -> set[Path]:
    """The .py files a dvc.yaml dependency covers: the file itself, or all under a folder."""
    if dep.is_dir():
        return {p for p in dep.rglob("*.py") if "__pycache__" not in p.parts}
    return {dep} if dep.suffix == ".py" else set()
