"""The house rules of DESIGN.md, checked on the source: who may import whom, and no cycles.

Data flows one way: pages -> app (cache, ui) -> core (-> kernels). core/ never imports
streamlit, app/, pages/ or bench/; kernels/ imports nothing of the project; app/ never
imports bench/ and bench/ never app/ (readers of recorded results live in core/runtime);
a page never imports another page. Module-level imports form no cycle. An import inside a
function in core/, bench/ or kernels/ says why it is not at the file head (an optional package,
a start-up cost, the Triton backend order) in a comment on its line or the line above.
"""

from __future__ import annotations

import ast
import io
import re
import tokenize
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


def import_nodes(path: Path, scope: str = "all") -> list[ast.Import | ast.ImportFrom]:
    """The import statements of a file: "all", "module" (the file head's) or "function" (inside
    a function body, nested ones too), in line order."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    if scope == "module":
        nodes = tree.body
    elif scope == "function":
        funcs = [f for f in ast.walk(tree) if isinstance(f, (ast.FunctionDef, ast.AsyncFunctionDef))]
        nodes = {id(n): n for f in funcs for n in ast.walk(f)}.values()
    else:
        nodes = ast.walk(tree)
    found = [n for n in nodes if isinstance(n, (ast.Import, ast.ImportFrom))]
    return sorted(found, key=lambda n: n.lineno)


def imports(path: Path, *, top_level_only: bool = False) -> Iterator[tuple[str, int]]:
    """(imported module, line) of every import in the file (or only the module-level ones).
    ``from x import y`` also yields ``x.y``, which is a module when y is a submodule."""
    for node in import_nodes(path, "module" if top_level_only else "all"):
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


# ---------------------------------------------------------------- imports inside functions say why
PRAGMA = re.compile(r"noqa(:\s*[A-Z]+[0-9]+(,\s*[A-Z]+[0-9]+)*)?|isort:\s*\w+|type:\s*ignore(\[[\w,-]+\])?"
                    r"|pragma:\s*no cover")


def comments(path: Path) -> dict[int, tuple[str, bool]]:
    """Line -> (comment text without lint pragmas, whether the comment is the whole line)."""
    source = path.read_text(encoding="utf-8")
    lines = source.splitlines()
    found = {}
    for tok in tokenize.generate_tokens(io.StringIO(source).readline):
        if tok.type == tokenize.COMMENT:
            text = PRAGMA.sub("", tok.string.lstrip("#")).strip(" ()-")
            found[tok.start[0]] = (text, lines[tok.start[0] - 1].lstrip().startswith("#"))
    return found


def unexplained_local_imports(path: Path) -> list[int]:
    """Lines of imports inside functions with no reason: no comment on the statement's lines,
    no comment line right above, and not one of a run of imports (one a line) under one."""
    notes = comments(path)
    lines = path.read_text(encoding="utf-8").splitlines()
    explained: set[int] = set()          # end lines of the explained statements
    missing = []
    for node in import_nodes(path, "function"):
        own = any(notes.get(line, ("", False))[0] for line in range(node.lineno, node.end_lineno + 1))
        above, whole_line = notes.get(node.lineno - 1, ("", False))
        first_on_line = not lines[node.lineno - 1][: node.col_offset].strip()
        if own or first_on_line and (above and whole_line or node.lineno - 1 in explained):
            explained.add(node.end_lineno)
        else:
            missing.append(node.lineno)
    return missing


@pytest.mark.parametrize("top", ["core", "bench", "kernels"])
def test_imports_inside_functions_say_why(top):
    """Imports sit at the file heads unless there is a reason, written beside them (issue 17)."""
    assert [f"{p.relative_to(ROOT)}:{line}" for p in sources(top) for line in unexplained_local_imports(p)] == []


def test_an_import_without_a_reason_is_found(tmp_path):
    src = tmp_path / "x.py"
    src.write_text(
        "import os\n"
        "def f():\n"
        "    import json\n"                                        # 3: no reason
        "    import gensim  # start-up cost: ~0.9 s\n"
        "    # optional: the GPU machine has no umap\n"
        "    import umap\n"
        "    from umap import UMAP\n"                              # 7: under the comment above
        "\n"
        "    import csv  # noqa: F401\n"                           # 9: a pragma is no reason
        "    x = 1  # a note on x\n"
        "    import glob\n"                                        # 11: the comment is x's
        "    def g():\n"
        "        from triton import (\n"
        "            jit,  # after ensure_triton_backend()\n"
        "        )\n"
        "        import re\n"                                      # 16: follows an explained one
        "    s = '# not a comment'; import io\n")                  # 17: a string is no comment
    assert unexplained_local_imports(src) == [3, 9, 11, 17]
