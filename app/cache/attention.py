"""FlashAttention page: block tables, the tiling walkthrough, benchmarks, memory, IO, recorded GPU
runs, and SmolLM2 run through each attention backend (core.measure.llm_runs).

Cached wrappers only (see app/cache/__init__.py for the rules). The real model comes from
app/cache/llm.py's ``model`` (one copy per process, shared with the LLM page).
"""

from __future__ import annotations

import streamlit as st

from app.cache import llm as llm_cache
from app.i18n import N_
from core import attention
from core.data.corpus import wiki_articles
from core.measure import attention_bench, llm_runs
from core.runtime import recorded
from core.runtime.scheduler import heavy_job
from core.views import tiling

LLM_TIME_LIMIT_S = 300.0   # one prompt through the four backends (2,048 tokens on 2 CPU cores: about a minute)


@st.cache_data(max_entries=32, ttl=3600, show_spinner=False)
def block_sizes(head_dim: int, dtype: str, device: str, capability: tuple[int, int] | None = None):
    """The Triton kernel's block sizes for this head_dim/dtype on ``device`` (or a GPU capability)."""
    return attention_bench.kernel_block_sizes(head_dim, dtype, device, capability)


@st.cache_data(max_entries=16, ttl=3600, show_spinner=False)
def walkthrough(cfg):
    """Naive and tiled attention on one head, with the tiled run's trace (core.attention)."""
    return tiling.tiling_walkthrough(cfg)


@st.cache_data(max_entries=16, ttl=3600, show_spinner=False)
def kernel_check(cfg, device: str):
    """Our Triton kernel on the walkthrough's head, with the drawn block sizes."""
    return tiling.kernel_check(walkthrough(cfg), device)


@st.cache_data(max_entries=8, ttl=3600, show_spinner=False)
def benchmark(cfg, device: str, _progress=None, _on_wait=None):
    """Timings and errors of every implementation (a heavy job on ``device``)."""
    with heavy_job(N_("FlashAttention benchmark"), device, time_limit_s=attention_bench.BENCH_TIME_LIMIT_S,
                   on_wait=_on_wait) as job:
        return attention_bench.run_benchmark(cfg, device, progress=_progress, job=job)


@st.cache_data(max_entries=16, ttl=3600, show_spinner=False)
def memory(cfg, device: str, _on_wait=None):
    """Analytic and (CUDA) measured peak memory of each implementation's forward."""
    with heavy_job(N_("FlashAttention memory"), device, time_limit_s=120, on_wait=_on_wait) as job:
        return attention_bench.memory_footprint(cfg, device, job=job)


@st.cache_data(max_entries=1, ttl=3600, show_spinner=False)
def wiki_titles(limit: int = 40) -> tuple[str, ...]:
    return tuple(a.title for a in wiki_articles()[:limit])


@st.cache_data(max_entries=64, ttl=3600, show_spinner=False)
def wiki_text(title: str) -> str:
    return next((a.text for a in wiki_articles() if a.title == title), "")


@st.cache_data(max_entries=64, ttl=3600, show_spinner=False)
def row_progress(cfg, row: int, key_block: int):
    """One row's online-softmax state after key block ``key_block`` of the walkthrough."""
    return tiling.row_progress(walkthrough(cfg), row, key_block)


@st.cache_data(max_entries=64, ttl=3600, show_spinner=False)
def busiest_row(cfg, q_block: int) -> int:
    return tiling.busiest_row(walkthrough(cfg), q_block)


@st.cache_data(max_entries=4, ttl=300, show_spinner=False)
def gpu_results() -> dict | None:
    """The recorded GPU-check attention results (bench/results/gpu-check-cuda.json), or None."""
    return recorded.recorded_gpu_results()


@st.cache_data(max_entries=256, ttl=3600, show_spinner=False)
def io(cfg):
    """FlashAttention paper's IO analysis (pure arithmetic)."""
    return attention.io_analysis(cfg)


@st.cache_data(max_entries=8, show_spinner=False)
def max_bench_seq(device: str) -> int:
    """Longest N a benchmark may use on ``device``."""
    return attention_bench.max_bench_seq(device)


@st.cache_data(max_entries=8, show_spinner=False)
def max_bench_elements(device: str) -> int:
    """Most elements (batch x heads x N x head_dim) one benchmark input may hold on ``device``."""
    return attention_bench.max_bench_elements(device)


@st.cache_data(max_entries=16, ttl=300, show_spinner=False)
def recorded_rows(doc: dict) -> list[dict]:
    """Flat rows of a recorded bench/attention.py document (core.runtime.recorded)."""
    return recorded.recorded_rows(doc)


@st.cache_data(max_entries=16, ttl=300, show_spinner=False)
def compare_rows(rows: list[dict]) -> list[dict]:
    """Recorded rows with their speed relative to SDPA's flash and cuDNN backends."""
    return recorded.compare_rows(rows)


@st.cache_data(max_entries=32, ttl=3600, show_spinner=False)
def llm_backends(device: str, ids: tuple[int, ...], _on_wait=None) -> list:
    """core.measure.llm_runs.compare_backends: SmolLM2's logits for ``ids`` through naive, SDPA,
    tiled and our Triton kernel (a heavy job on ``device``)."""
    lm = llm_cache.model(device)
    with heavy_job(N_("SmolLM2 through each attention backend"), device, time_limit_s=LLM_TIME_LIMIT_S,
                   on_wait=_on_wait):
        return llm_runs.compare_backends(lm, list(ids))


@st.cache_data(max_entries=8, ttl=3600, show_spinner=False)
def llm_prefill(device: str, seqs: tuple[int, ...], backends: tuple[str, ...], _progress=None, _on_wait=None):
    """core.measure.llm_runs.prefill_timings: median prefill ms of SmolLM2 per (backend, T)."""
    return llm_runs.prefill_timings(llm_cache.model(device), seqs, backends, progress=_progress,
                                    on_wait=_on_wait)
