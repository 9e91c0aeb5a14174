"""Print the project's import graph: which top-level package imports which, and lines per package.

Run: ``python bench/import_graph.py [ROOT]`` (ROOT defaults to the repository). It reads the
source with ``ast`` (every import, including those inside functions) and imports nothing, so it
also runs on an old checkout for a before/after comparison. ``tests/unit/repository/test_layering.py``
asserts the rules this graph must follow.
"""

from __future__ import annotations

import ast
import sys
from collections import defaultdict
from pathlib import Path

PACKAGES = ("api_schemas", "lipspline_client", "lipspline", "lipspline_platform", "migrations", "service", "worker")


def modules(root: Path) -> dict[str, Path]:
    """Dotted module name -> file, for every module of the project's packages."""
    found = {}
    for package in PACKAGES:
        for path in sorted((root / package).rglob("*.py")) if (root / package).is_dir() else []:
            parts = list(path.relative_to(root).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts = parts[:-1]
            found[".".join(parts)] = path
    return found


def imports_of(name: str, path: Path) -> list[tuple[str, list[str], int]]:
    """(imported module, imported names, line) for every import statement of a module."""
    tree = ast.parse(path.read_text(), filename=str(path))
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    out = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out.extend((alias.name, [], node.lineno) for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")
                anchor = anchor[: len(anchor) - (node.level - 1)]
                base = ".".join([*anchor, base] if base else anchor)
            out.append((base, [alias.name for alias in node.names], node.lineno))
    return out


def package_graph(root: Path) -> dict[str, set[str]]:
    graph: dict[str, set[str]] = defaultdict(set)
    for name, path in modules(root).items():
        source = name.split(".")[0]
        graph[source]
        for target, _, _ in imports_of(name, path):
            top = target.split(".")[0]
            if top in PACKAGES and top != source:
                graph[source].add(top)
    return graph


def module_graph(root: Path) -> dict[str, set[str]]:
    """Module -> the project modules it imports (anywhere in its body: function-level imports count).

    ``from package import name`` counts as importing ``package.name`` when that is a module,
    and ``package`` (its ``__init__``) otherwise.
    """
    found = modules(root)
    graph: dict[str, set[str]] = {name: set() for name in found}
    for name, path in found.items():
        for target, names, _ in imports_of(name, path):
            submodules = [f"{target}.{n}" for n in names if f"{target}.{n}" in found]
            hits = submodules or ([target] if target in found else [])
            if not hits and target.split(".")[0] in PACKAGES:  # a name re-exported by a package
                parent = target
                while parent and parent not in found:
                    parent = parent.rpartition(".")[0]
                hits = [parent] if parent else []
            graph[name].update(h for h in hits if h != name)
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components of more than one module (Tarjan), each sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []
    counter = [0]

    def visit(node: str) -> None:
        index[node] = low[node] = counter[0]
        counter[0] += 1
        stack.append(node)
        on_stack.add(node)
        for nxt in graph.get(node, ()):
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            component = []
            while True:
                top = stack.pop()
                on_stack.discard(top)
                component.append(top)
                if top == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    sys.setrecursionlimit(10_000)
    for node in sorted(graph):
        if node not in index:
            visit(node)
    return sorted(found)


def main() -> None:
    root = Path(sys.argv[1]) if len(sys.argv) > 1 else Path(__file__).resolve().parent.parent
    graph = package_graph(root)
    lines: dict[str, int] = defaultdict(int)
    for name, path in modules(root).items():
        lines[name.split(".")[0]] += len(path.read_text().splitlines())
    print("| package | imports | lines |")
    print("| --- | --- | ---: |")
    for package in PACKAGES:
        if package in graph or lines.get(package):
            print(f"| {package} | {', '.join(sorted(graph.get(package, ()))) or '-'} | {lines.get(package, 0)} |")
    found = cycles(module_graph(root))
    print(f"\nimport cycles between modules (function-level imports included): {len(found)}")
    for component in found:
        print("- " + " <-> ".join(component))


if __name__ == "__main__":
    main()
