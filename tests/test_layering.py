"""The package's layering, read from its source (docs/design.md §9).

The import graph between ``flowvq_cli``'s subpackages (``flow``, ``vq``, ``face``, …) and top-level modules
(``api``, ``cli``, ``checkpoint``, …) is built with ``ast`` from every ``import`` statement, at module level and
inside functions alike, so an import hidden in a function still counts. It must have no cycle, no model package
(flow, vq, vqig, render) may be imported by ``data/``, and ``data/`` must not import ``api``.

``python tests/test_layering.py`` prints the graph, its cycles and the count of function-level imports.
"""

from __future__ import annotations

import ast
import sys
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

PACKAGE = "flowvq_cli"
ROOT = Path(__file__).resolve().parents[1] / PACKAGE
MODEL_PACKAGES = ("flow", "vq", "vqig", "render")


@dataclass(frozen=True)
class Import:
    """One import of one flowvq_cli module by another."""

    source: str  # importing module, dotted
    target: str  # imported module, dotted
    path: str  # file, relative to the repository
    line: int
    in_function: bool

    @property
    def where(self) -> str:
        return f"{self.path}:{self.line}{' (in a function)' if self.in_function else ''}"


def module_name(path: Path, root: Path = ROOT) -> str:
    parts = path.relative_to(root.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def unit(module: str) -> str:
    """The layer a module belongs to: its subpackage, or itself for a top-level module."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else PACKAGE


def _is_module(dotted: str, root: Path) -> bool:
    rel = root.parent / Path(*dotted.split("."))
    return rel.with_suffix(".py").is_file() or (rel / "__init__.py").is_file()


def _targets(node: ast.Import | ast.ImportFrom, module: str, is_package: bool, root: Path) -> list[str]:
    if isinstance(node, ast.Import):
        return [alias.name for alias in node.names if alias.name.split(".")[0] == PACKAGE]
    if node.level:
        base = module.split(".") if is_package else module.split(".")[:-1]
        base = base[: len(base) - (node.level - 1)]
        prefix = ".".join(base + ([node.module] if node.module else []))
    else:
        prefix = node.module or ""
    if prefix.split(".")[0] != PACKAGE:
        return []
    # `from pkg import sub` imports the submodule `pkg.sub` where one exists
    subs = [f"{prefix}.{alias.name}" for alias in node.names if _is_module(f"{prefix}.{alias.name}", root)]
    return subs if len(subs) == len(node.names) else [prefix, *subs]


class _Visitor(ast.NodeVisitor):
    def __init__(self, module: str, is_package: bool, path: str, root: Path) -> None:
        self.module, self.is_package, self.path, self.root = module, is_package, path, root
        self.depth = 0
        self.imports: list[Import] = []
        self.external_in_function = 0

    def _function(self, node: ast.AST) -> None:
        self.depth += 1
        self.generic_visit(node)
        self.depth -= 1

    visit_FunctionDef = visit_AsyncFunctionDef = visit_Lambda = _function

    def _import(self, node: ast.Import | ast.ImportFrom) -> None:
        targets = _targets(node, self.module, self.is_package, self.root)
        for target in targets:
            self.imports.append(Import(self.module, target, self.path, node.lineno, self.depth > 0))
        if self.depth > 0 and not targets:
            self.external_in_function += 1

    visit_Import = visit_ImportFrom = _import


def scan(root: Path = ROOT) -> tuple[list[Import], int]:
    """Every flowvq_cli → flowvq_cli import, and the number of function-level imports of other packages."""
    imports: list[Import] = []
    external = 0
    for path in sorted(root.rglob("*.py")):
        rel = str(path.relative_to(root.parent))
        visitor = _Visitor(module_name(path, root), path.name == "__init__.py", rel, root)
        visitor.visit(ast.parse(path.read_text(encoding="utf-8"), str(path)))
        imports += visitor.imports
        external += visitor.external_in_function
    return imports, external


def unit_graph(imports: list[Import]) -> dict[tuple[str, str], list[Import]]:
    """(importing unit, imported unit) → the imports that make the edge; the package root is left out."""
    edges: dict[tuple[str, str], list[Import]] = defaultdict(list)
    for imp in imports:
        a, b = unit(imp.source), unit(imp.target)
        if a != b and PACKAGE not in (a, b):
            edges[(a, b)].append(imp)
    return dict(edges)


def cycles(edges: dict[tuple[str, str], list[Import]]) -> list[list[str]]:
    """The strongly connected components with more than one unit (Tarjan), each sorted."""
    graph: dict[str, set[str]] = defaultdict(set)
    for a, b in edges:
        graph[a].add(b)
        graph[b]
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph[v]):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return found


def forbidden(edges: dict[tuple[str, str], list[Import]]) -> list[str]:
    """Imports that break the named rules: data/ → a model package, data/ → api."""
    bad = []
    for (a, b), imps in sorted(edges.items()):
        if a == "data" and (b in MODEL_PACKAGES or b == "api"):
            bad += [f"data → {b}: {imp.where} imports {imp.target}" for imp in imps]
    return bad


def describe(edges: dict[tuple[str, str], list[Import]]) -> str:
    lines = []
    for (a, b), imps in sorted(edges.items()):
        sites = ", ".join(sorted({imp.where for imp in imps}))
        lines.append(f"  {a} → {b}  [{sites}]")
    return "\n".join(lines)


def cycle_edges(edges: dict[tuple[str, str], list[Import]], component: list[str]) -> str:
    members = set(component)
    return describe({k: v for k, v in edges.items() if k[0] in members and k[1] in members})


def test_no_import_cycle_between_subpackages() -> None:
    edges = unit_graph(scan()[0])
    found = cycles(edges)
    report = "\n".join(f"cycle {' ↔ '.join(c)}:\n{cycle_edges(edges, c)}" for c in found)
    assert not found, f"import cycles between flowvq_cli's layers:\n{report}\n\nthe whole graph:\n{describe(edges)}"


def test_data_imports_no_model_package_and_not_the_api() -> None:
    edges = unit_graph(scan()[0])
    bad = forbidden(edges)
    assert not bad, "data/ sits below the models and the API:\n" + "\n".join(bad) + f"\n\ngraph:\n{describe(edges)}"


def test_the_graph_finds_function_level_imports_and_cycles(tmp_path: Path) -> None:
    pkg = tmp_path / PACKAGE
    for sub, text in {
        "a": "def f():\n    from flowvq_cli.b import x\n",
        "b": "from ..a import y\n",
    }.items():
        (pkg / sub).mkdir(parents=True)
        (pkg / sub / "__init__.py").write_text(text)
    (pkg / "__init__.py").write_text("")
    imports, _ = scan(pkg)
    assert {(i.source, i.target, i.in_function) for i in imports} == {
        ("flowvq_cli.a", "flowvq_cli.b", True),
        ("flowvq_cli.b", "flowvq_cli.a", False),
    }
    assert cycles(unit_graph(imports)) == [["a", "b"]]


def main() -> int:
    imports, external = scan()
    edges = unit_graph(imports)
    print(f"import graph between {PACKAGE}'s layers (importer → imported [sites]):")
    print(describe(edges))
    found = cycles(edges)
    print(f"\ncycles: {len(found)}")
    for c in found:
        print(f"  {' ↔ '.join(c)}")
    bad = forbidden(edges)
    print(f"forbidden imports: {len(bad)}")
    for line in bad:
        print(f"  {line}")
    internal = sum(imp.in_function for imp in imports)
    print(
        f"function-level imports: {internal} of {PACKAGE} modules, {external} of other packages"
        f" ({internal + external} in all)"
    )
    for imp in imports:
        if imp.in_function:
            print(f"  {imp.where}: {imp.target}")
    return 1 if found or bad else 0


if __name__ == "__main__":
    sys.exit(main())


def test_safetensors_is_read_and_written_in_one_place() -> None:
    """Every weights file goes through ``modeling.load_safetensors`` (one set of checks, one error type)."""
    readers = []
    for path in sorted(ROOT.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            names = ([a.name for a in node.names] if isinstance(node, ast.Import)
                     else [node.module or ""] if isinstance(node, ast.ImportFrom) else [])
            if any(n.split(".")[0] == "safetensors" for n in names):
                readers.append(f"{path.relative_to(ROOT.parent)}:{node.lineno}")
    assert readers and all(r.startswith(f"{PACKAGE}/modeling.py:") for r in readers), \
        f"safetensors imported outside modeling.py: {readers}; use modeling.load_safetensors / save_safetensors"
