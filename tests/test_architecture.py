"""The package layout: no import cycle in either package (function-level and typing-only imports included),
small modules."""

from __future__ import annotations

import ast
from pathlib import Path

import networkx as nx
import pytest

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("yprov4ml", "yprov4wfs_bridge")
MAX_LINES = 400


def _modules() -> dict[str, Path]:
    found = {}
    for package in PACKAGES:
        for path in (ROOT / package).rglob("*.py"):
            parts = list(path.relative_to(ROOT).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts = parts[:-1]
            found[".".join(parts)] = path
    return found


def _imports(name: str, path: Path, modules: dict[str, Path]) -> set[str]:
    """Every module of ours that ``name`` imports, at any depth of its code."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    tree = ast.parse(path.read_text(encoding="utf-8"))  # every import counts, typing-only ones too
    out = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join(anchor + ([base] if base else []))
            submodules = [f"{base}.{alias.name}" for alias in node.names]
            # `from . import state` imports the submodule; the package itself is only named for it
            targets = submodules if all(m in modules for m in submodules) else [base, *submodules]
        else:
            continue
        out |= {t for t in targets if t in modules and t != name}
    return out


def import_graph() -> nx.DiGraph:
    modules = _modules()
    graph = nx.DiGraph()
    for name, path in modules.items():
        graph.add_node(name)
        graph.add_edges_from((name, target) for target in _imports(name, path, modules))
    return graph


def test_the_import_graph_is_read_right():
    graph = import_graph()  # a checker that saw no edge would pass every layout: make sure it sees them
    assert graph.has_edge("yprov4ml.api", "yprov4ml.run")
    assert graph.has_edge("yprov4ml.run", "yprov4ml.state")
    assert graph.has_edge("yprov4ml.tools.cli", "yprov4ml.prov.reader")  # a function-level import
    assert graph.has_edge("yprov4wfs_bridge.runs", "yprov4ml.prov.decode")


@pytest.mark.parametrize("package", PACKAGES)
def test_no_import_cycle(package):
    graph = import_graph()
    cycles = [c for c in nx.simple_cycles(graph) if any(m.startswith(package) for m in c)]
    assert not cycles, "import cycles: " + "; ".join(" → ".join(c + [c[0]]) for c in cycles[:5])


def test_no_module_is_over_400_lines():
    long = {name: n for name, path in _modules().items()
            if (n := len(path.read_text(encoding="utf-8").splitlines())) > MAX_LINES}
    assert not long, f"modules over {MAX_LINES} lines: {long}"


def test_at_most_about_a_dozen_modules_at_the_top_of_yprov4ml():
    top = sorted(p.name for p in (ROOT / "yprov4ml").glob("*.py") if p.name != "__init__.py")
    assert len(top) <= 13, top


def test_the_writer_side_never_imports_the_reader():
    graph = import_graph()
    writers = ["yprov4ml.run", "yprov4ml.distributed.collection", "yprov4ml.prov.build"]
    for writer in writers:
        assert "yprov4ml.prov.reader" not in nx.descendants(graph, writer), writer


def test_every_package_is_in_the_wheel():
    """pyproject lists its packages (two top-level names, prov4ml and Snakemake's plug-in, live inside the
    tree, mapped by package-dir): none may be left out."""
    import tomllib

    setuptools = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    listed = set(setuptools["packages"])
    mapped = {".".join(Path(d).parts): name for name, d in setuptools["package-dir"].items()}
    found = {".".join(p.parent.relative_to(ROOT).parts) for package in PACKAGES
             for p in (ROOT / package).rglob("__init__.py")}
    expected = {name for name in found if name not in mapped} | set(mapped.values())
    assert expected <= listed <= found | expected, listed ^ expected
