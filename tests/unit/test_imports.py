"""The house's import rules, read from the source: no cycles, and no reaching into privates.

Every ``import`` and ``from ... import`` in ``fedlab/`` counts, including those inside
functions and under ``if TYPE_CHECKING:``, so a cycle cannot hide behind a lazy import.
A module is private when a part of its dotted name starts with an underscore; it may be
imported only from inside the first-level package that holds it (``fedlab.deploy``,
``fedlab.datasets``, ...), and a private top-level module only by top-level modules.
"""

from __future__ import annotations

import ast
from pathlib import Path

import fedlab

ROOT = Path(fedlab.__file__).resolve().parent


def _modules() -> dict[str, Path]:
    found = {}
    for path in ROOT.rglob("*.py"):
        parts = list(path.relative_to(ROOT.parent).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        found[".".join(parts)] = path
    return found


MODULES = _modules()


def _owner(name: str) -> str:
    """The module ``name`` refers to: itself, or the package it is an attribute of."""
    while name not in MODULES:
        name = name.rpartition(".")[0]
    return name


def _imports(module: str) -> set[str]:
    path = MODULES[module]
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    targets: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            targets.update(_owner(a.name) for a in node.names if a.name.split(".")[0] == "fedlab")
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                source = ".".join(base + ([node.module] if node.module else []))
            else:
                source = node.module or ""
            if source.split(".")[0] != "fedlab":
                continue
            for alias in node.names:
                name = f"{source}.{alias.name}"
                targets.add(name if name in MODULES else _owner(source))
    targets.discard(module)
    return targets


GRAPH = {module: _imports(module) for module in MODULES}


def _cycles() -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan, iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []
    counter = 0
    for start in sorted(GRAPH):
        if start in index:
            continue
        work = [(start, iter(sorted(GRAPH[start])))]
        index[start] = low[start] = counter
        counter += 1
        stack.append(start)
        on_stack.add(start)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = counter
                    counter += 1
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(GRAPH[child]))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                parent = work[-1][0]
                low[parent] = min(low[parent], low[node])
            if low[node] == index[node]:
                component = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.append(member)
                    if member == node:
                        break
                if len(component) > 1:
                    found.append(sorted(component))
    return found


def test_no_module_of_fedlab_takes_part_in_an_import_cycle() -> None:
    assert _cycles() == []


def test_no_module_imports_a_private_module_of_another_package() -> None:
    trespass = []
    for module, targets in GRAPH.items():
        for target in targets:
            parts = target.split(".")
            private = [k for k, part in enumerate(parts) if part.startswith("_")]
            if not private:
                continue
            # A private module belongs to the first-level package that holds it
            # (fedlab.datasets for fedlab.datasets.partitioner._checks); one at the top
            # (fedlab._x) belongs to the top-level modules.
            owner = ".".join(parts[:2]) if private[0] >= 2 else "fedlab"
            inside = (
                module.count(".") == 1 if owner == "fedlab" else module == owner or module.startswith(owner + ".")
            )
            if not inside:
                trespass.append(f"{module} -> {target}")
    assert sorted(trespass) == []


def test_no_module_of_fedlab_is_over_400_lines_and_the_front_door_under_300() -> None:
    long = {
        name: n
        for name, path in MODULES.items()
        if (n := len(path.read_text(encoding="utf-8").splitlines())) > 400
    }
    assert long == {}
    assert len(MODULES["fedlab.federation"].read_text(encoding="utf-8").splitlines()) < 300
