"""RNN vs Transformer page: the four models trained live, samples, probes, timings, recall,
and the real LLM (SmolLM2, app/cache/llm.py's one model per process) continuing the same prompt.

Cached wrappers only (see app/cache/__init__.py for the rules). Results computed from trained
models take the TrainedModels itself and hash it by ``TrainedModels.key``, a string made from
the frozen configs, the TrainConfig, the device and the seed that built the weights: the key
and the models can never disagree.
"""

from __future__ import annotations

import streamlit as st

from app.cache import llm as llm_cache
from core.data import char_data
from core.measure import sequence_timing
from core.models import sequence_models, sequence_probes
from core.views import sequences

BY_WEIGHTS = {sequence_models.TrainedModels: lambda trained: trained.key}   # hash_funcs


@st.cache_resource(show_spinner=False, max_entries=1)   # the page shows the spinner
def corpus():
    """gensim's Wikipedia sample as character ids (train/validation split)."""
    return char_data.wiki_corpus()


@st.cache_data(max_entries=64, ttl=3600, show_spinner=False)
def prepare_text(text: str, max_chars: int):
    """core.data.char_data.PreparedText: the text checked, capped and encoded to character ids."""
    return char_data.prepare_text(text, max_chars)


@st.cache_data(max_entries=32, show_spinner=False)
def configs(budget: int, n_layers: int) -> dict:
    """RNN/LSTM/GRU/Transformer configs matched to one parameter budget."""
    return sequence_models.configs_for_budget(budget, n_layers)


@st.cache_data(max_entries=32, show_spinner=False)
def config_rows(configs: dict, block: int) -> list[dict]:
    return sequences.config_rows(configs, block)


@st.cache_resource(show_spinner=False, max_entries=4)
def trained(configs: dict, train, device: str, _progress=None, _on_wait=None):
    """The four models trained live on the Wikipedia sample of corpus() (shared, read-only)."""
    return sequence_models.train_models(configs, train, corpus(), device, progress=_progress,
                                        on_wait=_on_wait, time_limit_s=600.0)


@st.cache_resource(show_spinner=False, max_entries=4)
def fresh(configs: dict, device: str):
    """The same models at initialisation (before any training)."""
    return sequence_models.fresh_models(configs, device)


@st.cache_data(max_entries=16, show_spinner=False, hash_funcs=BY_WEIGHTS)
def mean_params(trained) -> float:
    return sequences.mean_params(trained)


@st.cache_data(max_entries=16, show_spinner=False, hash_funcs=BY_WEIGHTS)
def loss_curves(trained) -> dict:
    return sequences.loss_curves(trained)


@st.cache_data(max_entries=16, show_spinner=False, hash_funcs=BY_WEIGHTS)
def result_rows(trained) -> list[dict]:
    return sequences.result_rows(trained)


@st.cache_data(max_entries=16, ttl=3600, show_spinner=False, hash_funcs=BY_WEIGHTS)
def samples(trained, prompt_ids: tuple, n_new: int, temperature: float, seed: int) -> dict:
    """One sampled continuation per model (kind -> text)."""
    return sequence_models.continue_all(trained, prompt_ids, n_new, temperature=temperature, seed=seed)


@st.cache_data(max_entries=16, ttl=3600, show_spinner=False)
def llm_continuation(device: str, prompt: str, n_chars: int, temperature: float, seed: int, _on_wait=None):
    """core.models.sequence_models.LLMContinuation: SmolLM2 continues ``prompt`` (plain text)."""
    return sequence_models.llm_continuation(llm_cache.model(device), prompt, n_chars, temperature=temperature,
                                            seed=seed, on_wait=_on_wait)


@st.cache_data(max_entries=16, ttl=3600, show_spinner=False, hash_funcs=BY_WEIGHTS)
def gradient_flow(trained, length: int, seed: int, scale: float, batch: int, _on_wait=None) -> dict:
    """||dL/dh_t|| vs distance for every model, on validation windows (kind -> GradientFlow)."""
    return sequence_probes.gradient_flows(trained.models, corpus().val, length, seed, scale, batch,
                                          on_wait=_on_wait)


@st.cache_data(max_entries=16, ttl=3600, show_spinner=False)
def flow_rows(flows: dict) -> list[dict]:
    return sequences.flow_rows(flows)


@st.cache_data(max_entries=32, ttl=3600, show_spinner=False, hash_funcs=BY_WEIGHTS)
def gate_trace(trained, kind: str, ids: tuple, layer: int):
    return sequence_probes.gate_trace(trained.models[kind], ids, layer=layer)


@st.cache_data(max_entries=32, ttl=3600, show_spinner=False)
def gate_matrix(trace, gate: str, units: int):
    return sequences.gate_matrix(trace, gate, units)


@st.cache_data(max_entries=32, ttl=3600, show_spinner=False)
def gate_means(trace) -> dict:
    return sequences.gate_means(trace)


@st.cache_data(max_entries=32, ttl=3600, show_spinner=False, hash_funcs=BY_WEIGHTS)
def attention(trained, ids: tuple):
    return sequence_probes.attention_maps(trained.models["transformer"], ids)


@st.cache_data(max_entries=16, show_spinner=False)
def unroll(T: int, n_layers: int) -> dict:
    """Unrolled RNN and Transformer graphs: edge coordinates, nodes, longest path, counts."""
    return sequence_probes.unroll_view(T, n_layers)


@st.cache_data(max_entries=8, show_spinner=False)
def depth_curves(n_layers: int) -> dict:
    return sequences.depth_curves(n_layers)


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
