"""Training memory page: the plan calculator, activation and ZeRO measurements, FP8 analysis.

Cached wrappers only (see app/cache/__init__.py for the rules).
"""

from __future__ import annotations

import streamlit as st

from core import fp8, memory
from core.measure import activations as measure
from core.measure import zero as distributed


@st.cache_data(max_entries=16, ttl=3600, show_spinner=False)
def plan_from_query(items: tuple[tuple[str, str], ...]):
    """(plan, problems) from URL query parameters given as sorted (key, value) pairs."""
    return memory.plan_from_query(dict(items))


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
def checkpoint_layout(layers: int, strategy: str) -> dict:
    """Node positions, roles and edges of the checkpointing diagram (networkx layout)."""
    graph = memory.checkpoint_graph(memory.checkpoint_plan(layers, strategy))
    return {"nodes": [(n, *d["pos"], d["role"], d["row"], d["layer"]) for n, d in graph.nodes(data=True)],
            "edges": [(graph.nodes[u]["pos"], graph.nodes[v]["pos"]) for u, v in graph.edges()]}


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
    """(tensor shape, per-scheme results) for a tensor source:
    "weight" (name,), "synthetic" (tokens, channels, outliers, scale), "minilm" (text, layer)."""
    if source == "weight":
        x = fp8.minilm_weight(params[0])
    elif source == "synthetic":
        x = fp8.synthetic_activations(*params)
    else:
        x = fp8.minilm_activations(params[0], params[1], device)
    return tuple(x.shape), fp8.analyze(x, fmt)
