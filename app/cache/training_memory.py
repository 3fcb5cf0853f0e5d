"""Training memory page: the plan calculator, activation and ZeRO measurements, FP8 analysis, and
SmolLM2 measured (fine-tuning memory, FP8 perplexity, KV cache: core.measure.llm_runs).

Cached wrappers only (see app/cache/__init__.py for the rules). The real model comes from
app/cache/llm.py's ``model`` (one copy per process, shared with the LLM page).
"""

from __future__ import annotations

import streamlit as st

from app.cache import llm as llm_cache
from core import fp8, memory
from core.measure import activations as measure
from core.measure import llm_runs
from core.measure import zero as distributed


@st.cache_data(max_entries=16, ttl=3600, show_spinner=False)
def plan_from_query(items: tuple[tuple[str, str], ...]):
    """(plan, problems) from URL query parameters given as sorted (key, value) pairs."""
    return memory.plan_from_query(dict(items))


@st.cache_data(max_entries=1, show_spinner=False)
def plan_fields() -> tuple[str, ...]:
    """The TrainingPlan's field names (one widget each)."""
    return memory.plan_fields()


@st.cache_data(max_entries=128, show_spinner=False)
def plan_query(plan) -> dict[str, str]:
    """The URL query parameters that rebuild ``plan``."""
    return memory.plan_to_query(plan)


@st.cache_data(max_entries=128, show_spinner=False)
def plan_memory(plan) -> dict:
    return memory.plan_memory(plan)


@st.cache_data(max_entries=64, show_spinner=False)
def plan_terms(plan) -> list:
    return memory.plan_activation_terms(plan)


@st.cache_data(max_entries=64, show_spinner=False)
def strategy_table(plan) -> list[dict]:
    return memory.strategy_table(plan)


@st.cache_data(max_entries=32, show_spinner=False)
def dp_sweep(plan) -> list[dict]:
    return memory.dp_sweep(plan)


@st.cache_data(max_entries=32, show_spinner=False)
def seq_sweep(plan) -> list[dict]:
    return memory.seq_sweep(plan)


@st.cache_data(max_entries=32, show_spinner=False)
def checkpoint_plan(layers: int, strategy: str):
    """core.memory.CheckpointPlan: which layers keep what along the chain."""
    return memory.checkpoint_plan(layers, strategy)


@st.cache_data(max_entries=32, show_spinner=False)
def checkpoint_graph(plan):
    """The checkpointing diagram of ``plan`` as a networkx DiGraph (positions, roles)."""
    return memory.checkpoint_graph(plan)


@st.cache_data(max_entries=8, ttl=3600, show_spinner=False)
def measure_activations(cfg, checkpointing: str, device: str, _progress=None, _on_wait=None):
    return measure.measure_activations(cfg, checkpointing, device, progress=_progress, on_wait=_on_wait)


@st.cache_data(max_entries=4, ttl=3600, show_spinner=False)
def run_zero(cfg, _progress=None, _on_wait=None):
    return distributed.run_zero(cfg, progress=_progress, on_wait=_on_wait)


@st.cache_data(max_entries=1, show_spinner=False)
def minilm_weight_names() -> list[str]:
    return fp8.minilm_weight_names()


@st.cache_data(max_entries=16, ttl=3600, show_spinner=False)
def fp8_analysis(source: str, fmt: str, params: tuple, device: str) -> tuple[tuple, list]:
    """(tensor shape, per-scheme results) of one tensor source (core.fp8.analyze_source)."""
    return fp8.analyze_source(source, fmt, params, device)


@st.cache_data(max_entries=4, show_spinner=False)
def format_limits(fmt: str) -> dict:
    return fp8.format_limits(fmt)


@st.cache_data(max_entries=1, show_spinner=False)
def finfo_table() -> list[dict]:
    return fp8.finfo_table()


# ---------------------------------------------------------------------- SmolLM2, measured
@st.cache_data(max_entries=8, ttl=3600, show_spinner=False)
def llm_finetune(device: str, cfg: llm_runs.FinetuneConfig, _progress=None, _on_wait=None):
    """(every activation stored, checkpointed per block): core.measure.llm_runs.finetune_memory.
    The key is the frozen FinetuneConfig and the device."""
    return llm_runs.finetune_memory(llm_cache.model(device), cfg, progress=_progress, on_wait=_on_wait)


@st.cache_data(max_entries=32, show_spinner=False)
def llm_activation_terms(device: str, cfg: llm_runs.FinetuneConfig) -> list[dict]:
    """The calculator's activation terms for SmolLM2 at ``cfg`` (one block, and the head)."""
    return llm_runs.activation_term_table(llm_cache.model(device), cfg)


@st.cache_data(max_entries=8, ttl=3600, show_spinner=False)
def llm_fp8(device: str, recipes: tuple[str, ...], eval_tokens: int, _progress=None, _on_wait=None):
    """Held-out perplexity of each FP8 recipe on SmolLM2 (core.measure.llm_runs.fp8_quality)."""
    return llm_runs.fp8_quality(llm_cache.model(device), recipes, eval_tokens=eval_tokens, progress=_progress,
                                on_wait=_on_wait)

