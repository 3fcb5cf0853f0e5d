"""Inside a real LLM: SmolLM2-135M-Instruct on the atlas's own blocks (core/nn), opened up.

Tabs: the next-token distribution and what sampling does to it, a streamed and measured
generation, attention heads (GQA groups, the attention sink), the logit lens, and the model
file itself (config, parameters by part, quantization). The model and every number come
from core/llm.py through app/llm_cache.py; this script only lays them out.
Tokens are labelled from their bytes: a token that holds only part of a character's UTF-8
bytes (most Chinese characters are 2 or 3 tokens here) is shown as that character with its
place, 国(1/2), where the text around it is known, and as its bytes, ⟨e5 9b⟩, on its own.
"""

from __future__ import annotations

import contextlib
import time

import numpy as np
import pandas as pd
import plotly.graph_objects as go
import streamlit as st
from plotly.subplots import make_subplots

from app import cache, ui
from app.cache import llm as llm_cache
from app.i18n import N_, t, tr
from core import llm as core_llm
from core.nn import SamplingConfig
from core.nn.sampling import check_sampling
from core.runtime.validation import ResourceError, ValidationError, check_int
from core.views.tokens import byte_text, is_piece

TITLE = N_("Inside a real LLM")
EXAMPLES = {   # label -> (chat?, system, text)
    N_("Capital of France (chat)"): (True, "", "What is the capital of France?"),  # i18n: skip (an English example input)
    N_("Explain attention (chat, own system message)"):
        (True, "You are a patient teacher. Answer in two sentences.",  # i18n: skip (an English example input)
         "What does attention do in a transformer?"),  # i18n: skip (an English example input)
    N_("Chinese (chat; the model is English-first)"): (True, "", "中国的首都是哪里？请用中文回答。"),
    N_("Capital of China (chat; the Chinese question in English)"):
        (True, "", "What is the capital of China?"),  # i18n: skip (an English example input)
    N_("Eiffel Tower (plain text)"): (False, "", "The Eiffel Tower is located in the city of"),  # i18n: skip (an English example input)
    N_("Python code (plain text)"):
        (False, "", "def fibonacci(n):\n    \"\"\"Return the n-th Fibonacci number.\"\"\"\n"),  # i18n: skip (code)
}
DEFAULT_EXAMPLE = next(iter(EXAMPLES))
MODES = (N_("Chat"), N_("Plain text"))
TABS = (N_("Next token"), N_("Generate"), N_("Attention"), N_("Logit lens"), N_("Under the hood"))
PROB_COLOURS = ((0.9, "#b2f2bb"), (0.5, "#d8f5a2"), (0.2, "#ffec99"), (0.05, "#ffd8a8"), (0.0, "#ffc9c9"))
CUT_COLOUR, KEPT_COLOUR, MODEL_COLOUR = "#ced4da", ui.PALETTE[0], "#a5b4fc"

ui.page_header(
    tr(TITLE),
    t("A real pretrained instruct model, **SmolLM2-135M-Instruct** (30 Llama blocks, 135 M parameters), "
      "running on the atlas's own building blocks (`core/nn`), its logits checked against transformers. "
      "Type a question and look inside: its tokens and chat template, the next-token distribution and "
      "what temperature, top-k and top-p do to it, a measured generation, attention heads and the logit lens."),
)
device = cache.device_name()


# ============================================================== formatting helpers
def token_strings(ids) -> list[str]:
    """Each token on its own (a predicted token, a table row): byte_text of its bytes."""
    return [byte_text(lm.id_bytes[int(i)]) for i in ids]


def context_strings(ids) -> list[str]:
    """Each token of a sequence: its text, or, for a piece of a character, that character and
    which of its tokens this is: 国(1/2), 国(2/2)."""
    text, tokens = llm_cache.token_pieces(device, tuple(int(i) for i in ids))
    out = []
    for k, tok in enumerate(tokens):
        if not is_piece(tok.bytes):
            out.append(byte_text(tok.bytes))
            continue
        span = (tok.start, tok.end)
        first = k
        while first > 0 and (tokens[first - 1].start, tokens[first - 1].end) == span:
            first -= 1
        last = k
        while last + 1 < len(tokens) and (tokens[last + 1].start, tokens[last + 1].end) == span:
            last += 1
        out.append(f"{text[tok.start: tok.end]}({k - first + 1}/{last - first + 1})")
    return out


def position_labels(texts: list[str], max_len: int | None = None) -> list[str]:
    """Unique axis labels "12 ␣Paris" (plotly merges equal category names)."""
    return [f"{i} {ui.token_label(s, max_len)}" for i, s in enumerate(texts)]


def prob_colour(p: float) -> str:
    return next(c for lo, c in PROB_COLOURS if p >= lo)


def prob_legend() -> str:
    bounds = [lo for lo, _ in PROB_COLOURS]
    names = [f"≥ {lo:g}" if k == 0 else f"{lo:g}–{bounds[k - 1]:g}" for k, lo in enumerate(bounds)]
    chips = "".join(f'<span style="background:{c};padding:1px 6px;border-radius:3px;margin-right:4px">'
                    f"p {n}</span>" for (_, c), n in zip(PROB_COLOURS, names, strict=True))
    return f'<div style="font-size:13px">{chips}</div>'


def dtype_name() -> str:
    return str(lm.dtype).removeprefix("torch.")


# ============================================================== the model
def load_model():
    with st.spinner(t("Loading the LLM (the first time the GGUF is dequantized and cached: about 10 s; "
                      "then about 1 s)…")):
        return llm_cache.model(device)


def model_caption(lm) -> None:
    info = lm.info
    source = t("from the disk cache") if lm.from_cache else t("dequantized from the GGUF file")
    st.caption(t(
        "Running **{label}** (“{name}”) from `{file}` ({size}) on **{device}** in {dtype}, loaded in "
        "{seconds:.1f} s {source}. An operator can set `ATLAS_LLM_GGUF=/path/model.gguf` to run another "
        "Llama-architecture GGUF (a larger SmolLM2, Llama 3.2 1B).",
        label=ui.escape(info.label), name=ui.escape(info.name), file=ui.escape(info.path.rsplit("/", 1)[-1]),
        size=ui.fmt_bytes(info.file_bytes), device=device, dtype=str(lm.dtype).removeprefix("torch."),
        seconds=lm.load_seconds, source=source))


lm = None
with ui.guard():
    lm = load_model()
if lm is None:
    st.stop()
model_caption(lm)


# ============================================================== the prompt (shared by the tabs)
def _set_example() -> None:
    chat, system, text = EXAMPLES[st.session_state["llm_example"]]
    st.session_state["llm_mode"] = MODES[0] if chat else MODES[1]
    st.session_state["llm_system"], st.session_state["llm_text"] = system, text


def prompt_inputs() -> tuple[bool, str, str]:
    st.session_state.setdefault("llm_text", EXAMPLES[DEFAULT_EXAMPLE][2])
    st.session_state.setdefault("llm_system", "")
    c1, c2 = st.columns([2, 1])
    labels = {name: tr(name) for name in (*EXAMPLES, *MODES)}    # in this run's language (AppTest calls
    shown = lambda name: labels.get(name, name)   # noqa: E731     # format_func later, outside the run)
    c1.selectbox(t("Example"), list(EXAMPLES), key="llm_example", on_change=_set_example, format_func=shown,
                 help=t("Loads an example into the boxes below; then edit freely."))
    mode = c2.radio(t("Input"), MODES, key="llm_mode", horizontal=True, format_func=shown,
                    help=t("Chat: your text is the user's message inside the model's chat template. "
                           "Plain text: the model continues your text as it is."))
    chat = mode != MODES[1]
    system = ""
    left, right = st.columns([1, 2]) if chat else (None, st.container())
    if chat:
        system = left.text_area(t("System message (empty: the template's default)"), key="llm_system", height=90,
                                help=t("Up to {n:,} characters.", n=core_llm.MAX_SYSTEM_CHARS))
    text = right.text_area(t("User message") if chat else t("Text"), key="llm_text", height=90,
                           help=t("Up to {n:,} characters; a prompt past the context cap keeps its last "
                                  "{cap:,} tokens.", n=core_llm.MAX_PROMPT_CHARS, cap=lm.context_cap))
    return chat, text, system


def sampling_inputs() -> SamplingConfig:
    """Temperature, top-k, top-p and seed (used by Next token and Generate), checked in core."""
    c = st.columns(4)
    temperature = c[0].slider(t("Temperature"), 0.0, 2.0, 0.8, 0.05, key="llm_temp",
                              help=t("0 = greedy (always the most likely token). Below 1 sharpens, above 1 flattens."))
    top_k = c[1].number_input(t("Top-k (0 = off)"), min_value=0, value=10, key="llm_topk",   # upper bound: core's
                              help=t("Keep only the k most likely tokens (at most {n:,}).", n=lm.config.vocab_size))
    top_p = c[2].slider(t("Top-p (1 = off)"), 0.05, 1.0, 0.9, 0.05, key="llm_topp",
                        help=t("Keep the smallest set of tokens whose probability reaches p (nucleus sampling)."))
    seed = c[3].number_input(t("Seed"), min_value=0, value=0, key="llm_seed", help=t("Same seed, same draw."))
    greedy = temperature == 0
    if greedy and (top_k or top_p < 1):
        st.caption(t("Temperature 0 is greedy decoding: top-k and top-p have nothing to cut."))
    cfg = SamplingConfig(float(temperature), None if greedy or not top_k else int(top_k),
                         None if greedy or top_p >= 1 else float(top_p), int(seed))
    return check_sampling(cfg, lm.config.vocab_size)


def current_prompt():
    """The checked prompt (core.llm.Prompt) with its notices, or None with a message."""
    chat, text, system = prompt_inputs()
    try:
        prompt = llm_cache.prompt(device, chat, text, system)
    except ValidationError as exc:
        st.warning(tr(str(exc)), icon=":material/edit:")
        return None
    for checked, cap in prompt.cuts:
        ui.notice_truncated(checked, cap)
    if prompt.tokens_dropped:
        st.warning(t("The prompt is {n:,} tokens, past this server's context cap of {cap:,} tokens (the model "
                     "was trained on {trained:,}; a CPU is held to {cpu:,}): only the last {kept:,} tokens are "
                     "used.", n=len(prompt.ids) + prompt.tokens_dropped, cap=lm.context_cap,
                     trained=lm.decoder_config.max_seq, cpu=core_llm.CPU_CONTEXT_CAP, kept=len(prompt.ids)),
                   icon=":material/content_cut:")
    return prompt


def waiting():
    """A placeholder for the scheduler's queue notice and its callback."""
    return ui.wait_callback(st.empty())


prompt = current_prompt()
sampling, sampling_error = None, None
try:
    sampling = sampling_inputs()
except ValidationError as exc:
    sampling_error = tr(str(exc))
    st.error(sampling_error, icon=":material/error:")

tabs = st.tabs([tr(name) for name in TABS], key="llm_tab", on_change="rerun")


# ============================================================== 1. next token
def next_token_tab() -> None:
    ids = prompt.ids
    specials = set(lm.info.control_ids)
    m = st.columns(4)
    m[0].metric(t("Tokens"), f"{len(ids):,}", help=t("Context cap here: {cap:,} tokens", cap=lm.context_cap))
    m[1].metric(t("Special tokens"), f"{sum(i in specials for i in ids):,}")
    m[2].metric(t("Characters"), f"{len(prompt.text):,}")
    m[3].metric(t("Vocabulary"), f"{lm.config.vocab_size:,}")
    if prompt.chat:
        st.markdown(t("**What the model reads**: the chat template, rendered (special tokens spelled out)"))
        st.code(prompt.text, language=None, wrap_lines=True)
    st.html(llm_cache.token_view(device, ids))
    st.caption(t("Each coloured span is one token; hover for its id and bytes. Purple outlines are the "
                 "template's special tokens (<|im_start|>, <|im_end|>): one id each, inserted by the template. "
                 "Typed into a message they stay plain text, so a user cannot open a new turn."))
    pieces_note(ids)
    with st.expander(t("The {n:,} token ids", n=len(ids))):
        st.code(", ".join(map(str, ids)), language=None, wrap_lines=True)
    if sampling is None:
        st.info(t("Fix the sampling settings above to see the distribution ({error}).", error=sampling_error))
        return
    choice = llm_cache.choices(device, ids, sampling, 20, _on_wait=waiting())
    texts = token_strings(choice.ids)
    distribution_chart(choice, texts)
    sample_summary(choice)
    cut_table(choice, texts)


def pieces_note(ids) -> None:
    """What happens to text the vocabulary holds few whole characters of (Chinese, emoji)."""
    pieces = sum(is_piece(lm.id_bytes[i]) for i in ids)
    if pieces:
        st.caption(t(
            "{pieces:,} of these {n:,} tokens are pieces of a character: SmolLM2 is English-first (trained "
            "mostly on English text), so its byte-level BPE holds few Chinese characters whole, and a "
            "character, 3 bytes of UTF-8, often takes 2 or 3 tokens. The charts label such a token with its "
            "character and place, 国(1/2), and a token on its own with its bytes, ⟨e5 9b⟩. Expect weak "
            "answers in Chinese: compare the example with the same question in English.",
            pieces=pieces, n=len(ids)))


def distribution_chart(choice, texts: list[str]) -> None:
    names = [f"{k + 1}. {ui.token_label(s)}" if cut is None else
             f'<span style="color:#868e96">{k + 1}. {ui.token_label(s)} ✂ {tr(cut)}</span>'
             for k, (s, cut) in enumerate(zip(texts, choice.cut_by, strict=True))]
    kept = t("kept")
    custom = [[ui.token_label(s), i, tr(c) if c else kept] for s, i, c in zip(texts, choice.ids, choice.cut_by, strict=True)]
    fig = go.Figure()
    fig.add_bar(y=names, x=choice.model_probs, orientation="h", name=t("the model (temperature 1)"),
                marker_color=MODEL_COLOUR, customdata=custom,
                hovertemplate=t("%{customdata[0]} (id %{customdata[1]}): p = %{x:.4f}<extra>model</extra>"))
    fig.add_bar(y=names, x=choice.probs, orientation="h", name=t("after temperature, top-k, top-p"),
                marker_color=[KEPT_COLOUR if c is None else CUT_COLOUR for c in choice.cut_by],
                customdata=custom,
                hovertemplate=t("%{customdata[0]}: p = %{x:.4f} (%{customdata[2]})<extra>reshaped</extra>"))
    fig.update_yaxes(autorange="reversed", type="category")
    fig.update_layout(barmode="group", bargap=0.25)
    ui.titled_plot(ui.style_figure(fig, x_title=t("probability of being the next token"), height=620),
                   "llm_next_bars", t("The 20 most likely next tokens, before and after sampling's filters"))


def sample_summary(choice) -> None:
    sampled = token_strings((choice.sampled,))[0]
    m = st.columns(4)
    m[0].metric(t("Tokens left to sample from"), f"{choice.kept:,}", help=t("of {n:,}", n=lm.config.vocab_size))
    m[1].metric(t("Their probability before renormalising"), ui.fmt_pct(choice.kept_mass))
    m[2].metric(t("Entropy after the filters"), t("{bits:.2f} bits", bits=choice.entropy_bits))
    m[3].metric(t("Drawn with seed {seed}", seed=sampling.seed), ui.visible_token(sampled, 24),
                help=t("id {id}, p = {p:.4f} after the filters", id=choice.sampled, p=choice.sampled_prob))
    if sampling.temperature == 0:
        st.caption(t("Temperature divides the logits before the softmax; top-k keeps the k most likely tokens; "
                     "top-p keeps the smallest set whose probability reaches p; what is left is renormalised. "
                     "Here greedy decoding always picks the top token."))
    else:
        st.caption(t("Temperature divides the logits before the softmax; top-k keeps the k most likely tokens; "
                     "top-p keeps the smallest set whose probability reaches p; what is left is renormalised. "
                     "Here with seed {seed} the draw gives “{token}” (p = {p:.3f}); the Generate tab's first "
                     "token with the same settings is this one.",
                     seed=sampling.seed, token=ui.escape(sampled), p=choice.sampled_prob))


def cut_table(choice, texts: list[str]) -> None:
    rows = [{t("rank"): k + 1, t("token"): repr(s), "id": i, t("model p"): p, t("cut by"): tr(c)}
            for k, (s, i, p, c) in enumerate(zip(texts, choice.ids, choice.model_probs, choice.cut_by, strict=True))
            if c is not None]
    if not rows:
        st.caption(t("None of these 20 tokens is cut at these settings."))
        return
    with st.expander(t("Cut from the top 20: {n} token(s)", n=len(rows)), expanded=False):
        st.dataframe(pd.DataFrame(rows), hide_index=True, width="stretch",
                     column_config={t("model p"): st.column_config.NumberColumn(format="%.4f")})


# ============================================================== 2. generate
def generate_tab() -> None:
    c1, c2 = st.columns([1, 3])
    n_new = c1.number_input(t("New tokens at most"), min_value=1, value=48, key="llm_max_new",   # upper bound: core's
                            help=t("1 to {n:,}; generation stops earlier at the end-of-turn token.",
                                   n=core_llm.MAX_NEW_TOKENS))
    if sampling is None:
        st.info(t("Fix the sampling settings above first ({error}).", error=sampling_error))
        return
    n_new = check_int(N_("New tokens"), n_new, 1, core_llm.MAX_NEW_TOKENS)
    ids, dropped = core_llm.fit_tokens(prompt.ids, max(1, lm.context_cap - n_new))
    if dropped:
        st.warning(t("Prompt and {n:,} new tokens do not fit the context cap of {cap:,}: the first {dropped:,} "
                     "prompt tokens are left out.", n=n_new, cap=lm.context_cap, dropped=dropped),
                   icon=":material/content_cut:")
    key = (ids, n_new, sampling)
    c2.markdown("&nbsp;")  # i18n: skip (markup)
    if c2.button(t("Generate"), key="llm_gen_btn", type="primary", icon=":material/play_arrow:"):
        st.session_state["llm_generation"] = run_generation(ids, n_new)
    result = st.session_state.get("llm_generation")
    if not result or result["key"] != key:
        st.info(t("Press **Generate**: the model writes up to that many tokens with the prompt and sampling "
                  "settings above, one forward pass per token, and every step is measured."),
                icon=":material/play_arrow:")
        return
    show_generation(result)


def run_generation(ids: tuple[int, ...], n_new: int) -> dict:
    """Stream the tokens into a placeholder as they come; returns what the rest of the tab shows."""
    box, steps, error, shown_at = st.empty(), [], None, 0.0
    stream = llm_cache.generate(device, ids, n_new, sampling, on_wait=waiting())
    try:
        with contextlib.closing(stream):                   # the heavy job ends even if drawing fails
            for step in stream:
                steps.append(step)
                if time.monotonic() - shown_at > 0.2:      # redraw about 5 times a second
                    box.html(generated_html(steps))
                    shown_at = time.monotonic()
    except (ValidationError, ResourceError) as exc:
        error = exc
    box.empty()
    return {"key": (ids, n_new, sampling), "steps": steps, "prompt_tokens": len(ids),
            "error": (type(error).__name__, str(error)) if error else None}


def generated_html(steps) -> str:
    note = t("p = {p:.3f}, rank {rank}")
    return llm_cache.tokens_html(device, [s.token_id for s in steps], colours=[prob_colour(s.prob) for s in steps],
                                 notes=[note.format(p=s.prob, rank=s.rank) for s in steps])


def show_generation(result: dict) -> None:
    steps = result["steps"]
    if result["error"]:
        kind, message = result["error"]
        made = t(" The {n} token(s) made before are shown.", n=len(steps)) if steps else ""
        (st.error if kind != "JobTimeout" else st.warning)(tr(message) + made, icon=":material/timer:")
    if not steps:
        return
    st.html(generated_html(steps))
    st.html(prob_legend())
    end = steps[-1].token_id in lm.info.eos_ids
    st.caption(t("Each token coloured by the probability the model gave it (hover: p and its rank, 0 = the most "
                 "likely).") + " " + (t("Stopped at the end-of-turn token.") if end else t("Stopped at the token limit.")))
    stats = core_llm.generation_stats(steps)
    n_prompt = result["prompt_tokens"]
    m = st.columns(4)
    m[0].metric(t("New tokens"), f"{len(steps):,}")
    m[1].metric(t("Prefill"), ui.fmt_ms(1000 * stats["prefill_s"]),
                help=t("{n:,} prompt tokens in one forward pass, plus the first new token", n=n_prompt))
    m[1].caption(t("{rate:,.0f} prompt tokens/s", rate=n_prompt / stats["prefill_s"]))
    m[2].metric(t("Decode"), "—" if stats["decode_tok_s"] is None else t("{rate:,.1f} tokens/s", rate=stats["decode_tok_s"]),
                help=t("one forward pass per token over the KV cache (the steps after the first)"))
    m[3].metric(t("KV cache at the end"), ui.fmt_bytes(stats["kv_bytes"], binary=True),
                help=t("bytes of the keys and values held; the buffers, grown in chunks of 256 positions, take {size}",
                       size=ui.fmt_bytes(steps[-1].kv_allocated, binary=True)))
    texts = context_strings([s.token_id for s in steps])
    ui.plot_pair(step_figure(steps, texts), kv_figure(steps, n_prompt), keys=("llm_gen_steps", "llm_gen_kv"))
    with st.expander(t("Every step")):
        st.dataframe(pd.DataFrame([{"#": s.index, t("token"): repr(text), "id": s.token_id, "p": s.prob,
                                    t("rank"): s.rank, "ms": 1000 * s.seconds, t("KV bytes"): s.kv_bytes}
                                   for s, text in zip(steps, texts, strict=True)]),
                     hide_index=True, width="stretch",
                     column_config={"p": st.column_config.NumberColumn(format="%.4f"),
                                    "ms": st.column_config.NumberColumn(format="%.1f")})


def step_figure(steps, texts: list[str]) -> go.Figure:
    fig = make_subplots(specs=[[{"secondary_y": True}]])
    x = [s.index for s in steps]
    text = [ui.token_label(s) for s in texts]
    fig.add_scatter(x=x, y=[1000 * s.seconds for s in steps], name=t("time of the step (ms)"), mode="lines+markers",
                    text=text, hovertemplate=t("token %{x} %{text}: %{y:.1f} ms<extra></extra>"))
    fig.add_scatter(x=x, y=[s.prob for s in steps], name=t("probability of the token"), mode="markers",
                    text=text, hovertemplate=t("token %{x} %{text}: p = %{y:.3f}<extra></extra>"), secondary_y=True)
    fig.update_yaxes(type="log", title_text=t("ms per step (log; step 0 = the prefill)"), secondary_y=False)
    fig.update_yaxes(range=[0, 1.02], tickmode="linear", tick0=0, dtick=0.25, showgrid=False,
                     title_text=t("probability"), secondary_y=True)
    return ui.style_figure(fig, x_title=t("new token"), height=360)


def kv_figure(steps, n_prompt: int) -> go.Figure:
    held = [n_prompt + s.index for s in steps]           # positions in the cache after each step's forward
    per_token = lm.cache_bytes_per_token
    fig = go.Figure()
    fig.add_scatter(x=held, y=[s.kv_bytes / 2**20 for s in steps], name=t("measured (tensor bytes)"), mode="markers",
                    hovertemplate=t("%{x} tokens: %{y:.3f} MiB held<extra></extra>"))
    fig.add_scatter(x=[held[0], held[-1]], y=[per_token * held[0] / 2**20, per_token * held[-1] / 2**20],
                    name=t("formula: {per_token:,} B × T", per_token=per_token), mode="lines", line={"dash": "dash"},
                    hovertemplate=t("%{x} tokens: %{y:.3f} MiB<extra>formula</extra>"))
    return ui.style_figure(fig, x_title=t("tokens in the cache T"), y_title=t("KV cache (MiB)"), height=360)


# ============================================================== the trace (attention, logit lens)
def traced_ids() -> tuple[int, ...]:
    ids, dropped = core_llm.fit_tokens(prompt.ids, core_llm.MAX_TRACE_TOKENS)
    if dropped:
        st.warning(t("A trace keeps every layer's attention and residual stream, so it takes at most {cap} tokens: "
                     "this tab shows the last {n} of the prompt's {total:,}.",
                     cap=core_llm.MAX_TRACE_TOKENS, n=len(ids), total=len(prompt.ids)),
                   icon=":material/content_cut:")
    with st.spinner(t("Tracing the forward pass (attention, residual stream, logit lens)…")):
        llm_cache.trace(device, ids, _on_wait=waiting())
    return ids


def attention_tab() -> None:
    ids = traced_ids()
    trace = llm_cache.trace(device, ids)
    L, H = lm.config.layers, lm.config.heads
    texts = context_strings(ids)
    names = position_labels(texts)
    layer = st.slider(t("Layer"), 1, L, min(3, L), key="llm_att_layer")
    ui.titled_plot(heads_figure(trace.attention[layer - 1].numpy(), texts), "llm_att_heads",
                   t("Layer {layer}: the {heads} heads' attention, one row per KV group", layer=layer, heads=H))
    st.caption(gqa_caption())
    st.markdown(t("#### What one token attends to, in every layer"))
    c1, c2 = st.columns([3, 1])
    pos = c1.selectbox(t("Token (query)"), range(len(ids)), index=len(ids) - 1, key="llm_att_query",
                       format_func=lambda i: names[i])
    per = H // lm.config.kv_heads
    mean, head_name = t("mean of all heads"), t("head {h} (KV {g})")
    head = c2.selectbox(t("Head"), ["mean"] + list(range(H)), key="llm_att_head",
                        format_func=lambda h: mean if h == "mean" else head_name.format(h=h, g=h // per))
    rows = llm_cache.query_attention(device, ids, int(pos), None if head == "mean" else int(head))
    ui.plot(query_figure(rows[:, : int(pos) + 1], names[: int(pos) + 1]), key="llm_att_query_fig")
    ui.plot(sink_figure(llm_cache.sink_share(device, ids), len(ids)), key="llm_att_sink")
    st.caption(t("The attention sink (Xiao et al. 2023): from the first layers on, most heads send much of their "
                 "attention to the first token, whatever it is; it works as a place to put attention that has "
                 "nowhere useful to go. The dashed line is what uniform attention over the visible tokens would give."))


def gqa_caption() -> str:
    H, G = lm.config.heads, lm.config.kv_heads
    per = H // G
    groups = "; ".join(t("KV head {g}: query heads {heads}", g=g, heads=", ".join(str(h) for h in range(g * per, (g + 1) * per)))
                       for g in range(G))
    return t("Grouped-query attention: {H} query heads share {G} key/value heads, query head h reads KV head "
             "h // {per} ({groups}). One row per KV group: heads in a row score against the same keys, yet "
             "each has its own query projection and looks elsewhere. Rows are queries, columns keys; causal, "
             "so the upper triangle is empty.", H=H, G=G, per=per, groups=groups)


def heads_figure(att: np.ndarray, texts: list[str]) -> go.Figure:
    H, G = lm.config.heads, lm.config.kv_heads
    per = H // G
    names, short = position_labels(texts), position_labels(texts, 10)
    fig = make_subplots(rows=G, cols=per, horizontal_spacing=0.02, vertical_spacing=0.06,
                        subplot_titles=[t("head {h} · KV head {g}", h=h, g=h // per) for h in range(H)])
    for h in range(H):
        fig.add_heatmap(z=att[h], x=names, y=names, coloraxis="coloraxis", row=h // per + 1, col=h % per + 1,
                        hovertemplate=t("head {h}<br>query %{{y}}<br>key %{{x}}<br>p = %{{z:.3f}}<extra></extra>", h=h))
    fig.update_yaxes(autorange="reversed", type="category", showticklabels=False)
    every = 1 if len(names) <= 24 else 2 if len(names) <= 48 else 0    # tick labels that still fit
    if every:
        fig.update_yaxes(showticklabels=True, tickvals=names[::every], ticktext=short[::every],
                         tickfont={"size": 9}, col=1)
    fig.update_xaxes(type="category", showticklabels=False)
    fig.update_layout(coloraxis={"colorscale": "Blues", "cmin": 0, "cmax": 1, "colorbar": {"title": "p"}})  # i18n: skip
    return ui.style_figure(fig, height=300 * G + 60).update_layout(margin={"t": 30})   # room for subplot titles


def query_figure(rows: np.ndarray, names: list[str]) -> go.Figure:
    fig = go.Figure(go.Heatmap(z=rows, x=names, y=list(range(1, rows.shape[0] + 1)), colorscale="Blues", zmin=0,
                               hovertemplate=t("layer %{y}, key %{x}: p = %{z:.3f}<extra></extra>"),
                               colorbar={"title": "p"}))
    fig.update_xaxes(type="category", showticklabels=len(names) <= 60, tickangle=-60)
    fig.update_yaxes(autorange="reversed", dtick=2)
    return ui.style_figure(fig, x_title=t("key token (what it attends to)"), y_title=t("layer"), height=480)


def sink_figure(share: list[float], n_tokens: int) -> go.Figure:
    uniform = core_llm.uniform_sink_share(n_tokens)
    layers = list(range(1, len(share) + 1))
    fig = go.Figure(go.Bar(x=layers, y=share, marker_color=ui.PALETTE[1], name=t("attention on token 0"),
                           hovertemplate=t("layer %{x}: %{y:.1%} on the first token<extra></extra>")))
    fig.add_scatter(x=[0.5, len(share) + 0.5], y=[uniform, uniform], mode="lines", line={"dash": "dash", "color": "#868e96"},
                    name=t("uniform attention"),
                    hovertemplate=t("uniform: {share:.1%}<extra></extra>", share=uniform))
    fig.update_yaxes(range=[0, 1], tickformat=".0%")
    return ui.style_figure(fig, x_title=t("layer"), y_title=t("attention on token 0"), height=340,
                           title=t("The attention sink: share of attention on the first token (mean of heads, queries)"))


# ============================================================== 4. logit lens
def lens_tab() -> None:
    ids = traced_ids()
    grid = llm_cache.lens_grid(device, ids)
    names = position_labels(context_strings(ids))
    T = len(ids)
    lo, hi = 0, T
    if T > 32:
        lo, hi = st.select_slider(t("Positions shown"), options=list(range(T + 1)), value=(T - 32, T),
                                  key="llm_lens_window", format_func=lambda i: str(i))
        lo, hi = int(lo), max(int(hi), int(lo) + 1)
    ui.plot(lens_figure(grid, names, lo, hi), key="llm_lens_grid")
    st.caption(t("Row l is the residual stream after block l (0 = the token embedding) put through the final "
                 "RMSNorm and the unembedding, as if the model stopped there (the logit lens). Each cell: the top "
                 "token and its probability (colour); hover for the top 5. Read a column upwards to watch the "
                 "prediction for the next position form."))
    final = ui.token_label(token_strings((grid["final_id"],))[0])
    st.markdown(t("#### When does the final prediction “{token}” appear?", token=final))
    ui.plot_pair(final_figure(grid, "rank"), final_figure(grid, "prob"), keys=("llm_lens_rank", "llm_lens_prob"))
    effects_table(ids, names)


def lens_figure(grid: dict, names: list[str], lo: int, hi: int) -> go.Figure:
    top_ids, top_p = grid["top_ids"][:, lo:hi], grid["top_probs"][:, lo:hi]            # (L+1, W, k)
    seen = sorted({int(i) for i in top_ids.ravel()})
    words = dict(zip(seen, token_strings(seen), strict=True))
    hover = [["<br>".join(f"{ui.token_label(words[int(i)])} {p:.3f}" for i, p in zip(top_ids[r, c], top_p[r, c], strict=True))
              for c in range(top_ids.shape[1])] for r in range(top_ids.shape[0])]
    cells = [[ui.token_label(words[int(i)], 8) for i in row] for row in top_ids[..., 0]]
    rows = [t("embedding")] + [t("block {k}", k=k) for k in range(1, top_ids.shape[0])]
    fig = go.Figure(go.Heatmap(z=top_p[..., 0], x=names[lo:hi], y=rows, text=cells, customdata=hover,
                               texttemplate="%{text}" if hi - lo <= 32 else None, textfont={"size": 9},
                               colorscale="YlGnBu", zmin=0, zmax=1, colorbar={"title": t("top-1 p")},
                               hovertemplate=t("%{y}, position %{x}<br>%{customdata}<extra></extra>")))
    fig.update_xaxes(type="category", tickangle=-60)
    fig.update_yaxes(type="category")
    return ui.style_figure(fig, x_title=t("position (the token there; the cell predicts the next one)"),
                           y_title=t("layer"), height=780)


def final_figure(grid: dict, what: str) -> go.Figure:
    layers = list(range(len(grid["final_rank"])))
    if what == "rank":
        fig = go.Figure(go.Scatter(x=layers, y=[r + 1 for r in grid["final_rank"]], mode="lines+markers",
                                   hovertemplate=t("after block %{x}: rank %{y:,}<extra></extra>")))
        fig.update_yaxes(type="log", autorange="reversed", dtick=1)
        return ui.style_figure(fig, x_title=t("layer (0 = embedding)"), y_title=t("its rank (1 = top; log)"), height=320)
    fig = go.Figure(go.Scatter(x=layers, y=grid["final_prob"], mode="lines+markers", line={"color": ui.PALETTE[2]},
                               hovertemplate=t("after block %{x}: p = %{y:.3f}<extra></extra>")))
    fig.update_yaxes(range=[0, 1])
    return ui.style_figure(fig, x_title=t("layer (0 = embedding)"), y_title=t("its probability"), height=320)


def effects_table(ids: tuple[int, ...], names: list[str]) -> None:
    st.markdown(t("#### What each block promoted and suppressed"))
    pos = st.selectbox(t("Position"), range(len(ids)), index=len(ids) - 1, key="llm_lens_pos",
                       format_func=lambda i: names[i])
    effects = llm_cache.lens_effects(device, ids, int(pos), 5)
    fmt = lambda items: "  ".join(f"{ui.visible_token(token_strings((i,))[0])} {d:+.2f}" for _, i, d in items)   # noqa: E731
    st.dataframe(pd.DataFrame([{t("block"): e["layer"] + 1, t("promoted most (Δ log p)"): fmt(e["promoted"]),
                                t("suppressed most (Δ log p)"): fmt(e["suppressed"])} for e in effects]),
                 hide_index=True, width="stretch", height=420)
    st.caption(t("Δ log p: how much block l changed a token's log-probability under the logit lens at this position "
                 "(the lens after block l minus the lens before it). With tied embeddings the lens of the embedding "
                 "itself predicts the input token, so block 1 raises almost everything else; look at the last "
                 "blocks to see the actual prediction promoted."))


# ============================================================== 5. under the hood
def hood_tab() -> None:
    cfg, dec = lm.config, lm.decoder_config
    st.markdown(t("#### The config (from the file's llama.* metadata)"))
    rows = [(t("vocabulary"), t("{n:,} tokens (byte-level BPE, pre-tokenizer “{pre}”)", n=cfg.vocab_size,
                                pre=lm.info.pre_tokenizer)),
            (t("width d_model"), f"{cfg.hidden:,}"), (t("blocks"), f"{cfg.layers}"),
            (t("query heads / KV heads"), t("{heads} / {kv} of width {width} (GQA, {per} per group)", heads=cfg.heads,
                                            kv=cfg.kv_heads, width=cfg.head_dim, per=cfg.heads // cfg.kv_heads)),
            ("MLP", t("SwiGLU, inner width {n:,}", n=cfg.intermediate)),
            (t("norm"), f"RMSNorm, ε = {dec.norm_eps:g}"),  # i18n: skip (names and numbers)
            (t("positions"), f"RoPE, θ = {dec.rope_theta:,.0f}"),  # i18n: skip (names and numbers)
            (t("context"), t("{trained:,} trained; {cap:,} here", trained=cfg.max_seq, cap=lm.context_cap)),
            (t("embeddings"), t("tied (the output head is the embedding table)") if cfg.tied_embeddings
             else t("separate head")),
            (t("KV cache"), t("{n:,} B per token in {dtype} (2 × {layers} layers × {kv} heads × {dim})",
                              n=lm.cache_bytes_per_token, dtype=dtype_name(), layers=cfg.layers,
                              kv=cfg.kv_heads, dim=cfg.head_dim))]
    st.dataframe(pd.DataFrame(rows, columns=["", t("value")]), hide_index=True, width="stretch")
    params_table()
    quant_tables()
    recorded_bench()


def params_table() -> None:
    st.markdown(t("#### Parameters by part"))
    parts = llm_cache.param_parts(device)
    total, loaded = sum(r["formula"] for r in parts), sum(r["loaded"] for r in parts)
    part, what, formula = t("part"), t("what"), t("formula (core.configs.param_count)")
    in_model, share = t("in the loaded model"), t("share")
    rows = [{part: r["part"], what: tr(r["what"]), formula: f"{r['formula']:,}",
             in_model: f"{r['loaded']:,}", share: ui.fmt_pct(r["formula"] / total)} for r in parts]
    rows.append({part: t("total"), what: "", formula: f"{total:,}", in_model: f"{loaded:,}", share: ui.fmt_pct(1.0)})
    st.dataframe(pd.DataFrame(rows), hide_index=True, width="stretch")
    biggest = max(parts, key=lambda r: r["formula"])
    cfg = lm.config
    tied = (t("the tied {vocab:,} × {hidden} embedding is both the input table and the output head",
              vocab=cfg.vocab_size, hidden=cfg.hidden)
            if cfg.tied_embeddings else t("the output head is a separate matrix"))
    st.caption(t("{mark} The parts add up to **{total:,}** parameters, and the model built from the file has "
                 "{loaded:,}. The largest part is {part} ({share}); {tied}.",
                 mark="✓" if total == loaded else "✗", total=total, loaded=loaded, part=biggest["part"],
                 share=ui.fmt_pct(biggest["formula"] / total), tied=tied))


def quant_tables() -> None:
    st.markdown(t("#### The file's quantization"))
    types = lm.info.tensor_types
    kind, bits = t("type"), t("bits per weight")
    st.dataframe(pd.DataFrame([{kind: name, t("tensors"): row["tensors"], t("weights"): f"{row['weights']:,}",
                                t("bytes"): f"{row['bytes']:,}", bits: core_llm.bits_per_weight(row)}
                               for name, row in types.items()]), hide_index=True, width="stretch",
                 column_config={bits: st.column_config.NumberColumn(format="%.2f")})
    checks = lm.info.block_checks
    bound = t("rounding bound d/2, relative to the block's max |w| (median)")
    if checks:
        st.dataframe(pd.DataFrame([{kind: name, t("blocks of 32"): f"{row['blocks']:,}",
                                    t("max |ours − gguf| in units of the block scale d"): row["max_diff_in_d"],
                                    bound: ui.fmt_pct(row["median_half_step_rel"], 2)}
                                   for name, row in checks.items()]), hide_index=True, width="stretch")
    bounds = ", ".join(t("{pct} for {type}", pct=ui.fmt_pct(r["median_half_step_rel"], 2), type=n)
                       for n, r in checks.items())
    st.caption(t("Q4_1: 32 weights in 20 bytes, an fp16 scale d and minimum m and 32 four-bit codes q, w = d·q + m "
                 "(5 bits per weight). Q8_0: an fp16 scale and 32 int8 codes, w = d·q (8.5 bits). F32: the norm "
                 "weights, unquantized. The blocks were decoded twice, from their raw bytes as the format says and "
                 "by the gguf package: a difference of 0 means the layout is read right. Quantizing moved each "
                 "weight by at most half a step d/2: relative to its block's largest weight, {bounds} (median "
                 "over blocks). The model computes in {dtype} from the dequantized weights.",
                 bounds=bounds, dtype=dtype_name()))


def recorded_bench() -> None:
    st.markdown(t("#### Speed against transformers (recorded)"))
    docs = sorted(cache.recorded("llm"), key=lambda d: d.get("meta", {}).get("date", ""))
    if not docs:
        st.info(t("No recorded run yet: `python -m bench.llm` writes bench/results/llm-<device>.json."))
        return
    doc = docs[-1]
    measure, ours, theirs, ratio = t("measure"), t("ours (tokens/s)"), t("transformers (tokens/s)"), t("ours ÷ transformers")
    rows = [{measure: t("prefill, {n:,} tokens", n=r["tokens"]), ours: r["ours_tok_s"],
             theirs: r["transformers_tok_s"], ratio: r["ratio"]} for r in doc["prefill"]]
    d = doc["decode"]
    rows.append({measure: t("decode, {n} new tokens (greedy)", n=d["new_tokens"]), ours: d["ours_tok_s"],
                 theirs: d["transformers_tok_s"], ratio: d["ratio"]})
    st.dataframe(pd.DataFrame(rows), hide_index=True, width="stretch", column_config={
        c: st.column_config.NumberColumn(format="%.1f") for c in (ours, theirs)}
        | {ratio: st.column_config.NumberColumn(format="%.2f")})
    st.caption(ui.recorded_caption(doc["meta"]) + " " + t(
        "Same weights ({dtype}), same device, same run; medians of {repeats} interleaved repeats after warm-up "
        "(bench/llm.py).", dtype=doc.get("dtype", ""), repeats=doc.get("repeats", "?")))


# ============================================================== run the open tab
SECTIONS = (next_token_tab, generate_tab, attention_tab, lens_tab, hood_tab)
for tab, section in zip(tabs, SECTIONS, strict=True):
    if tab.open is False:            # only the open tab runs (None: state not tracked)
        continue
    with tab, ui.guard():
        if section is hood_tab or prompt is not None:
            section()
        else:
            st.info(t("Type a prompt above to see this tab."), icon=":material/edit:")

ui.page_footer(
    t("""
**Next token.** The model reads token ids and returns one score (logit) per vocabulary entry for the next
token; softmax turns them into probabilities. Sampling reshapes that distribution: temperature
divides the logits, top-k and top-p cut the tail, and a seeded draw picks one token. Greedy decoding
(temperature 0) always takes the most likely token.

**Generate.** The prompt is read in one forward pass (the *prefill*, fast per token because the tokens are
processed together); then each new token costs one forward pass over the KV cache (the *decode*, bound by
reading all weights once per token). The cache grows by the same number of bytes with every token:
2 (K and V) × layers × KV heads × head width × bytes per value.

**Attention.** Each head's row is a probability distribution over the tokens before it. Heads in one GQA
group share keys and values, which is what makes the cache 3× smaller than with 9 KV heads.

**Logit lens.** The residual stream is a running sum: every block adds its attention and MLP output.
Projecting the sum after each block through the final norm and the unembedding shows what the model
would predict if it stopped there, and which blocks move the prediction.
"""),
    [
        ("Allal et al. 2025, SmolLM2: When Smol Goes Big (arXiv:2502.02737)", "https://arxiv.org/abs/2502.02737"),
        ("Touvron et al. 2023, Llama 2, section 2.2 (the block: RMSNorm, RoPE, SwiGLU, GQA)",
         "https://arxiv.org/abs/2307.09288"),
        ("Ainslie et al. 2023, GQA: Training Generalized Multi-Query Transformer Models",
         "https://arxiv.org/abs/2305.13245"),
        ("Holtzman et al. 2020, The Curious Case of Neural Text Degeneration (top-p), section 3.1",
         "https://arxiv.org/abs/1904.09751"),
        ("Xiao et al. 2023, Efficient Streaming Language Models with Attention Sinks", "https://arxiv.org/abs/2309.17453"),
        ("nostalgebraist 2020, interpreting GPT: the logit lens",
         "https://www.lesswrong.com/posts/AcKRB8wDpdaN6v6ru/interpreting-gpt-the-logit-lens"),
        ("Tufanov et al. 2024, LLM Transparency Tool (arXiv:2404.07004)", "https://arxiv.org/abs/2404.07004"),
        ("Cho et al. 2024, Transformer Explainer (arXiv:2408.04619)", "https://arxiv.org/abs/2408.04619"),
        ("GGUF file format (ggml docs/gguf.md)", "https://github.com/ggml-org/ggml/blob/master/docs/gguf.md"),
    ],
)
