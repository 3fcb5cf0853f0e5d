"""Suite-wide set-up: offline, a throw-away cache folder, Triton's interpreter without CUDA.

Markers: ``gpu`` tests skip without CUDA; ``browser`` tests skip without
Debian's chromium or the playwright package (the reason is printed).
"""

from __future__ import annotations

import os
import shutil
import tempfile

import pytest

_CACHE = tempfile.mkdtemp(prefix="atlas-test-cache-")
os.environ.setdefault("ATLAS_CACHE_DIR", _CACHE)
os.environ.setdefault("TIKTOKEN_CACHE_DIR", os.path.join(_CACHE, "tiktoken"))
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import torch  # noqa: E402

from app.i18n import compile_catalogs  # noqa: E402

compile_catalogs()   # the .mo files are built, never committed (make test builds them too)

from bench.browser import chromium_path  # noqa: E402

if not torch.cuda.is_available():
    os.environ.setdefault("TRITON_INTERPRET", "1")


def pytest_collection_modifyitems(config, items):
    has_cuda = torch.cuda.is_available()
    try:
        import playwright  # noqa: F401
        has_playwright = True
    except ImportError:
        has_playwright = False
    browser_reason = None
    if not chromium_path():
        browser_reason = "Debian's chromium is not on PATH (make test installs it when root)"
    elif not has_playwright:
        browser_reason = "the playwright package is not installed (make test installs it)"
    for item in items:
        if "gpu" in item.keywords and not has_cuda:
            item.add_marker(pytest.mark.skip(reason="needs CUDA"))
        if "browser" in item.keywords and browser_reason:
            item.add_marker(pytest.mark.skip(reason=browser_reason))


def pytest_sessionfinish(session, exitstatus):
    shutil.rmtree(_CACHE, ignore_errors=True)


# ---------------------------------------------------------------- the real LLM, once per session
@pytest.fixture(scope="session")
def smollm():
    """SmolLM2-135M-Instruct on our blocks, float32 on the CPU (core.llm memoises it per process)."""
    from core.llm import load_pretrained

    return load_pretrained(device="cpu", dtype=torch.float32)


@pytest.fixture(scope="session")
def hf_smollm():
    """transformers' LlamaForCausalLM and tokenizer from the same GGUF: the reference."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from core.data.gguf_file import SHIPPED_FILE, shipped_path

    folder = str(shipped_path().parent)
    tok = AutoTokenizer.from_pretrained(folder, gguf_file=SHIPPED_FILE)
    model = AutoModelForCausalLM.from_pretrained(folder, gguf_file=SHIPPED_FILE, dtype=torch.float32)
    return model.eval(), tok
