"""The layers of wascc import only downwards, and nothing imports in a cycle.

The table below is the README's layout section as code: each module belongs
to one layer; a module may import its own layer and those below it, never one
above.  Every import counts, also those inside functions and under
``TYPE_CHECKING`` (a type-only import of a higher layer is still a
dependency upwards).  Only ``wascc.engine`` touches cffi and wasmtime.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent

#: (layer, module prefixes), lowest first.
LAYERS: list[tuple[str, tuple[str, ...]]] = [
    ("foundation", ("wascc.errors", "wascc.logs", "wascc.sdk", "wascc._")),
    ("wire", ("wascc.wire", "wascc.hookspecs")),
    ("engine", ("wascc.engine",)),
    ("providers", ("wascc.providers", "wascc_capabilities")),
    ("core", ("wascc.host", "wascc.actor", "wascc.bindings", "wascc.plugins", "wascc.health")),
    ("lattice", ("wascc.lattice",)),
    ("observe", ("wascc.observe",)),
    ("standalone", ("wascc.standalone",)),
    ("cli", ("wascc.cli", "wascc.__main__")),
]
#: The package's own __init__ re-exports the public API from every layer.
PUBLIC = "wascc"
ENGINE_ONLY = ("cffi", "wasmtime", "wascc.engine._wascc_ffi")


def _layer(module: str) -> int:
    best, rank = -1, -1
    for i, (_, prefixes) in enumerate(LAYERS):
        for prefix in prefixes:
            hit = (
                module == prefix
                or module.startswith(prefix + ".")
                or (prefix.endswith("_") and module.startswith(prefix))
            )
            if hit and len(prefix) > best:
                best, rank = len(prefix), i
    if rank < 0:
        raise AssertionError(f"{module} is in no layer: add it to LAYERS and the README")
    return rank


def _modules() -> dict[str, Path]:
    found: dict[str, Path] = {}
    for top, package in ((ROOT / "wascc", "wascc"), (ROOT / "capabilities", "wascc_capabilities")):
        for path in sorted(top.rglob("*.py")):
            parts = list(path.relative_to(top).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts.pop()
            found[".".join([package, *parts])] = path
    return found


MODULES = _modules()


def _imports(module: str, path: Path) -> set[str]:
    """Every module ``module`` imports (resolved to a module, not a name in one)."""
    tree = ast.parse(path.read_text())
    is_package = path.name == "__init__.py"
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = module.split(".")
                base = base[: len(base) - node.level + (1 if is_package else 0)]
                target = ".".join([*base, *([node.module] if node.module else [])])
            else:
                target = node.module or ""
            for alias in node.names:
                sub = f"{target}.{alias.name}"
                found.add(sub if sub in MODULES else target)
    return found


GRAPH = {
    m: {i for i in _imports(m, p) if i in MODULES or i.startswith(ENGINE_ONLY)}
    for m, p in MODULES.items()
}


@pytest.mark.parametrize("module", sorted(MODULES))
def test_imports_go_only_downwards(module: str) -> None:
    if module == PUBLIC:
        return
    mine = _layer(module)
    for imported in sorted(GRAPH[module]):
        if imported.startswith(ENGINE_ONLY):
            assert LAYERS[mine][0] == "engine", f"{module} imports {imported}: only engine/ may"
            continue
        if imported == PUBLIC:
            assert LAYERS[mine][0] == "cli", f"{module} imports the package wascc itself"
            continue
        theirs = _layer(imported)
        assert theirs <= mine, (
            f"{module} ({LAYERS[mine][0]}) imports {imported} ({LAYERS[theirs][0]}), a higher layer"
        )


def test_no_import_cycle() -> None:
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(module: str) -> None:
        state[module] = 1
        stack.append(module)
        for nxt in sorted(GRAPH.get(module, ())):
            if nxt not in MODULES or nxt == PUBLIC:
                continue
            if state.get(nxt) == 1:
                cycle = [*stack[stack.index(nxt) :], nxt]
                raise AssertionError("import cycle: " + " -> ".join(cycle))
            if nxt not in state:
                visit(nxt)
        stack.pop()
        state[module] = 2

    for module in sorted(MODULES):
        if module not in state and module != PUBLIC:
            visit(module)


def test_the_checker_sees_an_upward_import() -> None:
    assert _layer("wascc.wire.codec") < _layer("wascc.host") < _layer("wascc.cli.up")
    assert _layer("wascc.wire.wasm") < _layer("wascc.engine.runtime")
