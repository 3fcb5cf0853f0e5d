"""Cached wrappers for the "Inside a real LLM" page (pages/llm.py) around core/llm.py.

- ``model``: st.cache_resource. core.llm.load_pretrained memoises the model per process
  as well, so the hosted warm-up (core/runtime/health.py) and every session share one copy.
- prompts, logits, next-token choices, token views, logit-lens effects: st.cache_data,
  keyed by hashable arguments (ids as tuples, a frozen SamplingConfig, the device string).
- ``trace``: st.cache_resource with few entries and a TTL. A Trace holds every layer's
  attention probabilities (30 x 9 x T x T) and the residual stream: about 120 MB at 256
  tokens, which st.cache_data would pickle and copy on every rerun. Nothing writes to it.
- ``generate``: not cached. It streams a live, measured generation through
  core.runtime.scheduler.heavy_job (one job at a time per device, with a time limit).
Every model call that can take seconds runs inside heavy_job; ``_on_wait`` (not part of
the key) is the queue notice's callback. Cached functions never read globals.
"""

from __future__ import annotations

from collections.abc import Iterator

import streamlit as st

from app.i18n import N_

FORWARD_TIME_LIMIT_S = 120.0     # one forward or trace (2,048 tokens on 2 CPU cores: ~10 s)
GENERATE_TIME_LIMIT_S = 180.0    # one generation (1,024 new tokens at ~15 tokens/s: ~70 s)


@st.cache_resource(show_spinner=False)
def model(device: str):
    """The LLM on ``device`` (core.llm.load_pretrained: once per process)."""
    from core import llm

    return llm.load_pretrained(device=device)


@st.cache_data(max_entries=64, ttl=3600, show_spinner=False)
def prompt(device: str, chat: bool, text: str, system: str):
    """core.llm.Prompt: the checked input as token ids (chat template or plain text)."""
    from core import llm

    return llm.build_prompt(model(device), chat=chat, text=text, system=system)


@st.cache_data(max_entries=64, ttl=3600, show_spinner=False)
def token_view(device: str, ids: tuple[int, ...]) -> str:
    """The prompt's tokens as coloured, hoverable HTML (special tokens outlined; text escaped)."""
    return tokens_html(device, ids)


def tokens_html(device: str, ids, colours: list[str] | None = None, notes: list[str] | None = None) -> str:
    """core.tokenizers.render_html of ``ids`` with per-token colours and hover notes (not cached:
    a generation redraws it as it grows)."""
    from core.views.tokens import render_html

    lm = model(device)
    text, tokens = lm.token_pieces(ids)
    return render_html(text, tokens, frozenset(lm.info.control_ids), colours=colours, notes=notes)


@st.cache_data(max_entries=64, ttl=3600, show_spinner=False)
def token_pieces(device: str, ids: tuple[int, ...]) -> tuple:
    """(text, tokens): the text ``ids`` spell and each token's bytes and character span in it
    (PretrainedLM.token_pieces; a piece of a character spans that whole character)."""
    return model(device).token_pieces(ids)


@st.cache_data(max_entries=256, ttl=3600, show_spinner=False)
def token_texts(device: str, ids: tuple[int, ...]) -> list[str]:
    """Each id's own text (PretrainedLM.token_text)."""
    return model(device).token_text(ids)


@st.cache_data(max_entries=32, ttl=3600, show_spinner=False)
def last_logits(device: str, ids: tuple[int, ...], _on_wait=None):
    """(V,) float32 CPU logits for the token after ``ids``."""
    from core.runtime.scheduler import heavy_job

    lm = model(device)
    with heavy_job(N_("LLM forward pass"), device, time_limit_s=FORWARD_TIME_LIMIT_S, on_wait=_on_wait):
        return lm.logits(list(ids))[0, -1].cpu()


@st.cache_data(max_entries=256, ttl=3600, show_spinner=False)
def choices(device: str, ids: tuple[int, ...], sampling, n: int = 20, _on_wait=None):
    """core.llm.NextTokenChoices for ``sampling`` (drawn on the model's device, as Generate does)."""
    from core import llm

    lm = model(device)
    logits = last_logits(device, ids, _on_wait=_on_wait)
    return llm.next_token_choices(logits.to(lm.device), sampling, n)


@st.cache_resource(max_entries=4, ttl=1800, show_spinner=False)
def trace(device: str, ids: tuple[int, ...], _on_wait=None):
    """core.llm.Trace of ``ids`` (at most core.llm.MAX_TRACE_TOKENS); shared, read-only."""
    from core.runtime.scheduler import heavy_job

    lm = model(device)
    with heavy_job(N_("LLM traced forward"), device, time_limit_s=FORWARD_TIME_LIMIT_S, on_wait=_on_wait):
        return lm.trace(list(ids))


@st.cache_data(max_entries=64, ttl=3600, show_spinner=False)
def sink_share(device: str, ids: tuple[int, ...]) -> list[float]:
    """Per layer: the attention on the first token (core.llm.attention_sink_share)."""
    from core import llm

    return llm.attention_sink_share(trace(device, ids)).tolist()


@st.cache_data(max_entries=128, ttl=3600, show_spinner=False)
def query_attention(device: str, ids: tuple[int, ...], position: int, head: int | None):
    """(L, T) numpy: what one token attends to in every layer (core.llm.query_attention)."""
    from core import llm

    return llm.query_attention(trace(device, ids), position, head).numpy()


@st.cache_data(max_entries=64, ttl=3600, show_spinner=False)
def lens_grid(device: str, ids: tuple[int, ...]) -> dict:
    """The logit lens over the whole prompt: top ids and probabilities (L + 1, T, k) as numpy,
    and the final prediction's id, rank and probability per layer (the page labels the ids)."""
    from core import llm

    tr = trace(device, ids)
    ranks, probs = llm.final_rank_by_layer(tr)
    return {"top_ids": tr.lens_top_ids.numpy(), "top_probs": tr.lens_top_probs.numpy(),
            "final_id": int(tr.logits[-1].argmax()), "final_rank": ranks.tolist(), "final_prob": probs.tolist()}


@st.cache_data(max_entries=128, ttl=3600, show_spinner=False)
def lens_effects(device: str, ids: tuple[int, ...], position: int, k: int = 5) -> list[dict]:
    """Per block, the tokens it promoted and suppressed most at ``position`` (core.llm.block_effects),
    with their text."""
    from core import llm

    lm = model(device)
    effects = llm.block_effects(lm.lens_at(trace(device, ids), position), k)
    seen = tuple(sorted({i for e in effects for i, _ in e["promoted"] + e["suppressed"]}))
    text = dict(zip(seen, token_texts(device, seen), strict=True))
    return [{"layer": e["layer"],
             "promoted": [(text[i], i, d) for i, d in e["promoted"]],
             "suppressed": [(text[i], i, d) for i, d in e["suppressed"]]} for e in effects]


@st.cache_data(max_entries=8, show_spinner=False)
def param_parts(device: str) -> list[dict]:
    from core import llm

    return llm.param_parts(model(device))


def generate(device: str, ids: tuple[int, ...], max_new_tokens: int, sampling, on_wait=None) -> Iterator:
    """Live core.llm.GenStep records, one per new token, inside one heavy job (its time limit is
    checked before every step). Not cached: each run is a measurement."""
    from core.runtime.scheduler import heavy_job

    lm = model(device)
    with heavy_job(N_("LLM generation"), device, time_limit_s=GENERATE_TIME_LIMIT_S, on_wait=on_wait) as job:
        yield from lm.stream(list(ids), max_new_tokens, sampling, job=job)


@st.cache_data(max_entries=32, ttl=3600, show_spinner=False)
def llm_kv_cache(device: str, tokens: int, _on_wait=None):
    """SmolLM2's real KV cache after ``tokens`` tokens vs the formula (core.measure.llm_runs.measure_kv_cache);
    shared by the MLA and training-memory pages, so one prefill serves both."""
    from core.measure import llm_runs  # the measurement module: only these two pages need it
    from core.runtime.scheduler import heavy_job

    lm = model(device)
    with heavy_job(N_("SmolLM2 KV-cache measurement"), device, time_limit_s=FORWARD_TIME_LIMIT_S, on_wait=_on_wait):
        return llm_runs.measure_kv_cache(lm, tokens)
