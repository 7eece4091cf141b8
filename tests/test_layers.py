"""The layout's rules, checked on the source: layers, no import circles, small modules and functions.

The layer list is read from ARCHITECTURE.md (the ```layers block), the one place it is written.
Every import counts, also those inside functions and under `if TYPE_CHECKING:`: an import that
only runs later still ties the two modules together. Each test names every offender at once.
"""

from __future__ import annotations

import ast
import re
from functools import lru_cache
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = ROOT / "ptmcli"
MAX_MODULE_LINES = 450
MAX_FUNCTION_LINES = 60


@lru_cache(maxsize=1)
def layers() -> list[tuple[int, str, tuple[str, ...]]]:
    """(number, name, module prefixes) per layer, bottom first, from ARCHITECTURE.md."""
    text = (ROOT / "ARCHITECTURE.md").read_text(encoding="utf-8")
    block = re.search(r"```layers\n(.*?)```", text, re.S)
    assert block, "ARCHITECTURE.md has no ```layers block"
    found = []
    for line in block.group(1).splitlines():
        match = re.fullmatch(r"\s*(\d+)\s+(\w+):\s*(.+)", line)
        if match:
            found.append((int(match.group(1)), match.group(2), tuple(match.group(3).split())))
    assert found, "the ```layers block of ARCHITECTURE.md lists no layers"
    return found


@lru_cache(maxsize=1)
def modules() -> dict[str, Path]:
    """Dotted module name -> file, for every module of the package."""
    found = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = list(path.relative_to(ROOT).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        found[".".join(parts)] = path
    return found


def layer_of(module: str) -> tuple[int, str]:
    """The layer that names `module`: exactly (`ptmcli.errors`), or as a package (`ptmcli.sinks.*`:
    the package and everything in it); the longest name that matches wins."""
    best = None
    for number, name, entries in layers():
        for entry in entries:
            package = entry[:-2] if entry.endswith(".*") else None
            if module == entry or (package and (module == package or module.startswith(package + "."))):
                if best is None or len(entry) > best[0]:
                    best = (len(entry), number, name)
    assert best is not None, f"{module} is in no layer of ARCHITECTURE.md's ```layers block"
    return best[1], best[2]


def _resolve(module: str, node: ast.ImportFrom) -> str:
    if not node.level:
        return node.module or ""
    package = module.split(".")
    if not modules()[module].name == "__init__.py":
        package = package[:-1]
    base = package[:len(package) - node.level + 1]
    return ".".join(base + ([node.module] if node.module else []))


def imports_of(module: str) -> set[str]:
    """The package's modules that `module` imports, wherever in the file the import is."""
    tree = ast.parse(modules()[module].read_text(encoding="utf-8"))
    known = modules()
    targets: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = _resolve(module, node)
            # `from a.b import c` imports module a.b.c when there is one, else a name from a.b.
            names = [f"{base}.{alias.name}" if f"{base}.{alias.name}" in known else base for alias in node.names]
        else:
            continue
        for name in names:
            while name and name not in known:
                name = name.rpartition(".")[0]
            if name and name != module:
                targets.add(name)
    return targets


def graph() -> dict[str, set[str]]:
    return {module: imports_of(module) for module in modules()}


def circles(edges: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan, iteratively)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []
    counter = 0
    for start in sorted(edges):
        if start in index:
            continue
        work = [(start, iter(sorted(edges[start])))]
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
                    work.append((child, iter(sorted(edges.get(child, ())))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
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


def test_the_layers_block_covers_every_module():
    unplaced = []
    for module in modules():
        try:
            layer_of(module)
        except AssertionError:
            unplaced.append(module)
    assert not unplaced, "modules in no layer of ARCHITECTURE.md:\n  " + "\n  ".join(unplaced)


def test_no_import_circles():
    found = circles(graph())
    assert not found, "import circles:\n  " + "\n  ".join(" <-> ".join(c) for c in found)


def test_no_module_imports_a_layer_above_its_own():
    upward = []
    for module, targets in graph().items():
        number, name = layer_of(module)
        for target in sorted(targets):
            their_number, their_name = layer_of(target)
            if their_number > number:
                upward.append(f"{module} ({number} {name}) imports {target} ({their_number} {their_name})")
    assert not upward, "imports that run up the layers:\n  " + "\n  ".join(upward)


def test_no_module_over_the_line_limit():
    long = [f"{module}: {n} lines" for module, path in modules().items()
            if (n := len(path.read_text(encoding="utf-8").splitlines())) > MAX_MODULE_LINES]
    assert not long, f"modules over {MAX_MODULE_LINES} lines:\n  " + "\n  ".join(long)


def test_no_function_over_the_line_limit():
    long = []
    for module, path in modules().items():
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                lines = node.end_lineno - node.lineno + 1
                if lines > MAX_FUNCTION_LINES:
                    long.append(f"{module}.{node.name} (line {node.lineno}): {lines} lines")
    assert not long, f"functions over {MAX_FUNCTION_LINES} lines:\n  " + "\n  ".join(long)


def test_the_checker_finds_circles_and_resolves_relative_imports():
    # The rules above pass only if the checker can fail: a known circle, a known relative import.
    assert circles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert circles({"a": {"b"}, "b": set()}) == []
    node = ast.parse("from .signals import StopOnSignal").body[0]
    assert _resolve("ptmcli.pipeline.run", node) == "ptmcli.pipeline.signals"
    assert layer_of("ptmcli.pipeline.run") > layer_of("ptmcli.sinks.console")
