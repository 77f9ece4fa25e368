"""The package's shape: stages import only downwards, no import circles, short modules, and a
test folder per package."""

from __future__ import annotations

import ast
from pathlib import Path

from conftest import REPO

SRC = REPO / "src" / "fuselab"
# lower number = lower stage; a module may import its own stage or lower ones
STAGES = {
    "errors": 0,
    "locks": 0,
    "config": 0,
    "data": 1,
    "models": 2,
    "training": 3,
    "runs": 4,
    "reports": 5,
    "cli": 6,
}


def _module(path: Path) -> str:
    parts = path.relative_to(SRC.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {_module(p) for p in SRC.rglob("*.py")}


def _imports(path: Path) -> list[tuple[str, bool]]:
    """(imported fuselab module, imported at module level?) for every import in the file;
    ``from fuselab.data.readers import text`` is an edge to the module ``fuselab.data.readers.text``
    (and to the package, whose ``__init__`` runs first)."""
    tree = ast.parse(path.read_text())
    top = {id(n) for n in tree.body}
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("fuselab"):
            found.append((node.module, id(node) in top))
            found += [
                (f"{node.module}.{a.name}", id(node) in top) for a in node.names if f"{node.module}.{a.name}" in MODULES
            ]
        elif isinstance(node, ast.Import):
            found += [(a.name, id(node) in top) for a in node.names if a.name.startswith("fuselab")]
    return found


def _stage(module: str) -> int | None:
    parts = module.split(".")
    return STAGES.get(parts[1]) if len(parts) > 1 else 0


GRAPH = {_module(p): _imports(p) for p in SRC.rglob("*.py")}


def test_stages_import_only_downwards():
    upward = []
    for module, imports in GRAPH.items():
        for target, _ in imports:
            if target.startswith("fuselab.conf"):
                continue
            s, t = _stage(module), _stage(target)
            assert s is not None and t is not None, f"{module} or {target} is in no stage of STAGES"
            if t > s:
                upward.append(f"{module} -> {target}")
    assert not upward, "lower stages import higher ones: " + ", ".join(upward)


# inside data/: the contract and base (0) <- the readers of raw inputs (1) <- the datasets (2)
DATA_KINDS = {"fuselab.data.readers": 1, "fuselab.data.datasets": 2}


def _data_kind(module: str) -> int:
    return next((k for pkg, k in DATA_KINDS.items() if module == pkg or module.startswith(pkg + ".")), 0)


def test_data_kinds_import_only_downwards():
    upward = [
        f"{module} -> {target}"
        for module, imports in GRAPH.items()
        if module.startswith("fuselab.data")
        for target, _ in imports
        if target.startswith("fuselab.data") and _data_kind(target) > _data_kind(module)
    ]
    assert not upward, "the data base or a reader imports a dataset or reader above it: " + ", ".join(upward)


def test_no_import_circles():
    edges = {m: {t for t, _ in imports if t in GRAPH and t != m} for m, imports in GRAPH.items()}
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(m: str) -> None:
        state[m] = 1
        stack.append(m)
        for t in edges[m]:
            if state.get(t) == 1:
                raise AssertionError("import circle: " + " -> ".join(stack[stack.index(t) :] + [t]))
            if t not in state:
                visit(t)
        stack.pop()
        state[m] = 2

    for m in sorted(edges):
        if m not in state:
            visit(m)


def test_no_module_over_400_lines():
    long = {str(p.relative_to(REPO)): n for p in SRC.rglob("*.py") if (n := len(p.read_text().splitlines())) > 400}
    assert not long, f"split these along a line a reader would expect: {long}"


def test_tests_mirror_the_packages():
    packages = {p.parent.relative_to(SRC).as_posix() for p in SRC.rglob("__init__.py") if p.parent != SRC}
    stages = {p.split("/")[0] for p in packages}
    folders = {p.name for p in (REPO / "tests").iterdir() if p.is_dir() and not p.name.startswith((".", "_"))}
    assert stages <= folders, f"no tests/ folder for {sorted(stages - folders)}"
    assert folders <= stages, f"tests/ folders without a package: {sorted(folders - stages)}"
