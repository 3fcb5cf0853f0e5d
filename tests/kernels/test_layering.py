"""kernels/ imports nothing from core/ (DESIGN.md: core/ may import kernels/, not the reverse)."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

KERNELS = Path(__file__).resolve().parents[2] / "kernels"


def _imported_modules(path: Path) -> list[str]:
    names = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names += [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.append(node.module)
    return names


@pytest.mark.parametrize("path", sorted(KERNELS.glob("*.py")), ids=lambda p: p.name)
def test_kernels_import_nothing_from_core(path):
    bad = [m for m in _imported_modules(path) if m.split(".")[0] in {"core", "app", "pages", "bench"}]
    assert not bad, f"{path.name} imports {bad}"


def test_the_walk_sees_function_level_imports(tmp_path):
    src = tmp_path / "x.py"
    src.write_text("def f():\n    from core.validation import check_int\n    import core\n")
    assert _imported_modules(src) == ["core.validation", "core"]


def test_kernel_errors_module_has_no_dependencies():
    assert _imported_modules(KERNELS / "errors.py") == ["__future__"]
