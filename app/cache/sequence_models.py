"""RNN vs Transformer page: the four models trained live, samples, probes, timings, recall.

Cached wrappers only (see app/cache/__init__.py for the rules).
"""

from __future__ import annotations

import streamlit as st

from core.data import char_data
from core.measure import sequence_timing
from core.models import sequence_models, sequence_probes


@st.cache_resource(show_spinner="Loading the Wikipedia sample…", max_entries=1)
def corpus():
    """gensim's Wikipedia sample as character ids (train/validation split)."""
    return char_data.wiki_corpus()


@st.cache_data(max_entries=32, show_spinner=False)
def configs(budget: int, n_layers: int) -> dict:
    """RNN/LSTM/GRU/Transformer configs matched to one parameter budget."""
    return sequence_models.configs_for_budget(budget, n_layers)


@st.cache_resource(show_spinner=False, max_entries=4)
def trained(configs: dict, train, device: str, _corpus=None, _progress=None, _on_wait=None):
    """The four models trained live on the Wikipedia sample (shared, read-only)."""
    return sequence_models.train_models(configs, train, _corpus, device, progress=_progress,
                                        on_wait=_on_wait, time_limit_s=600.0)


@st.cache_resource(show_spinner=False, max_entries=4)
def fresh(configs: dict, device: str):
    """The same models at initialisation (before any training)."""
    return sequence_models.fresh_models(configs, device)


@st.cache_data(max_entries=16, ttl=3600, show_spinner=False)
def samples(models_key: str, prompt_ids: tuple, n_new: int, temperature: float, seed: int,
                _trained=None) -> dict:
    """One sampled continuation per model (kind -> text)."""
    return {k: sequence_models.continue_text(m, prompt_ids, n_new, temperature=temperature,
                                             seed=seed)
            for k, m in _trained.models.items()}


@st.cache_data(max_entries=16, ttl=3600, show_spinner=False)
def gradient_flow(models_key: str, length: int, seed: int, scale: float, batch: int,
                      _trained=None, _corpus=None, _on_wait=None) -> dict:
    """||dL/dh_t|| vs distance for every model, on validation windows (kind -> GradientFlow)."""
    windows = char_data.corpus_window(_corpus.val, length + 1, seed, batch)    # (B, T + 1)
    return {k: sequence_probes.gradient_flow(m, windows, recurrent_scale=scale, on_wait=_on_wait)
            for k, m in _trained.models.items()}


@st.cache_data(max_entries=32, ttl=3600, show_spinner=False)
def gate_trace(models_key: str, kind: str, ids: tuple, layer: int, _trained=None):
    return sequence_probes.gate_trace(_trained.models[kind], ids, layer=layer)


@st.cache_data(max_entries=32, ttl=3600, show_spinner=False)
def attention(models_key: str, ids: tuple, _trained=None):
    return sequence_probes.attention_maps(_trained.models["transformer"], ids)


@st.cache_data(max_entries=16, show_spinner=False)
def unroll(T: int, n_layers: int) -> dict:
    """Unrolled RNN and Transformer graphs: edge coordinates, longest path, counts."""
    out = {}
    for name, build in (("rnn", sequence_probes.rnn_graph),
                        ("transformer", sequence_probes.transformer_graph)):
        ug = build(T, n_layers)
        nodes = [(d["pos"], d["role"], n) for n, d in ug.graph.nodes(data=True)]
        out[name] = {"coords": sequence_probes.edge_coordinates(ug), "nodes": nodes,
                     "path": ug.path, "depth": ug.depth, "n_edges": ug.n_edges}
    return out


@st.cache_data(max_entries=8, ttl=3600, show_spinner=False)
def time_vs_length(configs: dict, spec, device: str, _progress=None, _on_wait=None) -> list:
    return sequence_timing.time_vs_length(configs, spec, device, progress=_progress,
                                          on_wait=_on_wait, time_limit_s=600.0)


@st.cache_data(max_entries=8, ttl=3600, show_spinner=False)
def generation_speed(configs: dict, spec, device: str, _progress=None, _on_wait=None) -> list:
    return sequence_timing.generation_speed(configs, spec, device, progress=_progress,
                                            on_wait=_on_wait, time_limit_s=600.0)


@st.cache_data(max_entries=8, ttl=3600, show_spinner=False)
def recall(cfg, kinds: tuple, device: str, _progress=None, _on_wait=None):
    return sequence_models.run_recall(cfg, kinds, device, progress=_progress, on_wait=_on_wait,
                                      time_limit_s=900.0)
