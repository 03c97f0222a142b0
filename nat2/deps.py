"""Code dependencies of a stage: its CLI module plus every ``nat2`` module it imports, transitively.

Snakemake's rules list these as inputs (its "code" trigger sees only the rule body) and the generated dvc.yaml
lists the same files as ``deps`` (both through :mod:`nat2.workflow`). The import graph
is read statically (``ast``), so nothing is imported and the answer does not depend on run-time state.
"""

from __future__ import annotations

import ast
from pathlib import Path

__all__ = ["module_file", "stage_code_deps"]

_ROOT = Path(__file__).resolve().parent.parent


def module_file(module: str, root: Path = _ROOT) -> Path | None:
    """The source file of a dotted ``nat2`` module name (package ``__init__`` for packages), if it exists."""
    base = root.joinpath(*module.split("."))
    for candidate in (base.with_suffix(".py"), base / "__init__.py"):
        if candidate.is_file():
            return candidate
    return None


def _imports(path: Path, module: str) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    found: set[str] = set()
    # a package's lazy ``__getattr__`` imports run only when that attribute is asked for, and code that needs it
    # imports the module itself, so they are not dependencies of every importer of the package
    lazy = {id(n) for f in tree.body if isinstance(f, ast.FunctionDef) and f.name == "__getattr__"
            for n in ast.walk(f)}
    for node in ast.walk(tree):
        if id(node) in lazy:
            continue
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                parts = package.split(".")
                base = ".".join(parts[: len(parts) - node.level + 1])
                mod = f"{base}.{node.module}" if node.module else base
            else:
                mod = node.module or ""
            found.add(mod)
            found.update(f"{mod}.{alias.name}" for alias in node.names)
    return {m for m in found if m == "nat2" or m.startswith("nat2.")}


def stage_code_deps(stage: str, root: Path = _ROOT) -> list[str]:
    """Repository-relative paths of the files ``python -m nat2.stages.<stage>`` can execute, sorted."""
    start = f"nat2.stages.{stage}"
    if module_file(start, root) is None:
        raise KeyError(f"no stage module {start}")
    seen: set[str] = set()
    files: set[Path] = set()
    todo = [start]
    while todo:
        mod = todo.pop()
        if mod in seen:
            continue
        seen.add(mod)
        path = module_file(mod, root)
        if path is None:
            continue  # an attribute imported from a module, not a module itself
        files.add(path)
        # importing a.b.c runs a/__init__.py and a/b/__init__.py as well
        parts = mod.split(".")
        todo.extend(".".join(parts[:i]) for i in range(1, len(parts)))
        todo.extend(_imports(path, mod))
    return sorted(str(p.relative_to(root)) for p in files)
