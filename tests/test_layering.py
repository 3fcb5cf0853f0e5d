"""The house rules of DESIGN.md, checked on the source: who may import whom, and no cycles.

Data flows one way: pages -> app (cache, ui) -> core (-> kernels). core/ never imports
streamlit, app/, pages/ or bench/; kernels/ imports nothing of the project; app/ never
imports bench/ and bench/ never app/ (readers of recorded results live in core/runtime);
a page never imports another page. Module-level imports form no cycle.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
LAYERS = ("core", "kernels", "app", "pages", "bench")


def sources(top: str) -> list[Path]:
    return sorted(p for p in (ROOT / top).rglob("*.py") if "__pycache__" not in p.parts)


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports(path: Path, *, top_level_only: bool = False) -> Iterator[tuple[str, int]]:
    """(imported module, line) of every import in the file (or only the module-level ones).
    ``from x import y`` also yields ``x.y``, which is a module when y is a submodule."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    nodes = tree.body if top_level_only else ast.walk(tree)
    for node in nodes:
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield alias.name, node.lineno
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            yield node.module, node.lineno
            for alias in node.names:
                yield f"{node.module}.{alias.name}", node.lineno


def forbidden(top: str, banned: set[str]) -> list[str]:
    return [f"{p.relative_to(ROOT)}:{line} imports {name}" for p in sources(top)
            for name, line in imports(p) if name.split(".")[0] in banned]


@pytest.mark.parametrize("top, banned", [
    ("core", {"streamlit", "app", "pages", "bench"}),
    ("kernels", {"core", "app", "pages", "bench", "streamlit"}),
    ("app", {"bench", "pages"}),
    ("bench", {"app", "pages", "streamlit"}),
    ("pages", {"pages", "bench"}),
])
def test_imports_flow_one_way(top, banned):
    assert not forbidden(top, banned)


def test_kernel_errors_module_has_no_dependencies():
    names = {name for name, _ in imports(ROOT / "kernels" / "errors.py")}
    assert names <= {"__future__", "__future__.annotations"}


def _graph() -> dict[str, set[str]]:
    known = {module_name(p) for top in LAYERS for p in sources(top)}
    graph: dict[str, set[str]] = {}
    for top in LAYERS:
        for p in sources(top):
            graph[module_name(p)] = {n for n, _ in imports(p, top_level_only=True) if n in known}
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan), or a self-import."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on: set[str] = set()
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on.add(v)
        for w in graph.get(v, ()):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1 or v in graph.get(v, ()):
                found.append(sorted(comp))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return found


def test_no_import_cycles():
    assert cycles(_graph()) == []


def test_cycle_finder_finds_a_cycle():
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert cycles({"a": {"a"}}) == [["a"]]
    assert cycles({"a": {"b"}, "b": set()}) == []


def test_the_walk_sees_function_level_imports(tmp_path):
    src = tmp_path / "x.py"
    src.write_text("def f():\n    from core.runtime.validation import check_int\n    import core\n")
    assert [n for n, _ in imports(src)] == ["core.runtime.validation", "core.runtime.validation.check_int", "core"]
    assert list(imports(src, top_level_only=True)) == []
