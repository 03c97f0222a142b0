"""Code dependencies of a stage: its CLI module plus every ``nat2`` module it imports, transitively.

Snakemake's rules list these as inputs (its "code" trigger sees only the rule body) and dvc.yaml lists the same
files as ``deps``; ``tests/test_parity.py`` checks that both tools see the list computed here. The import graph
is read statically (``ast``), so nothing is imported and the answer does not depend on run-time state.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

__all__ = ["module_file", "stage_code_deps", "stage_settings", "sync_dvc_yaml"]

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


_CMD = re.compile(r"python -m nat2\.stages\.(\w+)")


def sync_dvc_yaml(path: str | Path = "dvc.yaml", write: bool = False, root: Path = _ROOT) -> list[str]:
    """Make the ``nat2/`` entries of every stage's ``deps`` equal :func:`stage_code_deps` of its command.

    dvc.yaml cannot compute lists, so the code dependencies are written out; this keeps them true after an
    import changes (``nat2 deps --write``). Other deps, comments and layout are kept. Returns the names of the
    stages whose list was (or, without ``write``, would be) changed.
    """
    p = Path(path)
    lines = p.read_text(encoding="utf-8").splitlines()
    out: list[str] = []
    changed: list[str] = []
    stage: str | None = None
    i = 0
    while i < len(lines):
        line = lines[i]
        m = _CMD.search(line)
        if m:
            stage = m.group(1)
        if line.strip() == "deps:" and stage is not None:
            out.append(line)
            i += 1
            block = []
            while i < len(lines) and lines[i].lstrip().startswith("- "):
                block.append(lines[i])
                i += 1
            indent = (block[0][: len(block[0]) - len(block[0].lstrip())] if block
                      else " " * (len(line) - len(line.lstrip()) + 2))
            others = [b for b in block if not b.strip()[2:].startswith("nat2/")]
            code = [f"{indent}- {d}" for d in stage_code_deps(stage, root)]
            new = others + code
            if new != block:
                changed.append(stage)
            out.extend(new)
            continue
        out.append(line)
        i += 1
    if write and changed:
        from nat2.io import write_text

        write_text(p, "\n".join(out) + "\n")
    return changed


def stage_settings(stage: str, config: dict, dvc_yaml: str | Path = "dvc.yaml") -> dict:
    """The params.yaml values a stage reads: the keys its dvc.yaml ``params:`` list names, looked up in ``config``.

    Snakemake only reruns a job for a changed setting when the setting is one of the rule's ``params``; the rules
    pass this dict, so both tools rerun a stage for exactly the same keys, listed once (in dvc.yaml).
    """
    import yaml

    stages = yaml.safe_load(Path(dvc_yaml).read_text(encoding="utf-8"))["stages"]
    body = stages[stage].get("do", stages[stage])
    out: dict = {}
    for key in body.get("params", []):
        node = config
        for part in str(key).split("."):
            node = node[part]
        out[str(key)] = node
    return out
