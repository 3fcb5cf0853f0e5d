"""Multi-token prediction: DeepSeek-V3's sequential MTP modules, trained live, used to draft tokens."""

from __future__ import annotations

import pandas as pd
import plotly.graph_objects as go
import streamlit as st

from app import cache, ui
from app.cache import mtp as mtp_cache
from core.models import mtp

DEFAULT_PROMPT = "The history of the city begins in the "
SOURCE_COLORS = ("transparent", "#FFD8A8", "#B2F2BB", "#D0BFFF", "#FCC2D7")

ui.page_header(
    "Multi-token prediction",
    "DeepSeek-V3 trains **D extra modules that predict 2, 3, … tokens ahead** while keeping the causal "
    "chain. Here a small character-level model with such modules is trained live on a Wikipedia sample, "
    "and its MTP modules then draft tokens that the main model verifies in one pass: the same text as "
    "plain greedy decoding, in fewer main-model passes.",
)
device = cache.device_name()
tab_targets, tab_train, tab_decode = st.tabs(
    ["What each module predicts", "Train live", "Self-speculative decoding"])


# ---------------------------------------------------------------- architecture and targets
SUB = str.maketrans("0123456789+", "₀₁₂₃₄₅₆₇₈₉₊")


def t_ahead(k: int) -> str:
    """t with subscript i+k (t_i for k = 0)."""
    return "tᵢ" if k == 0 else "tᵢ" + f"+{k}".translate(SUB)


def mtp_graph(depth: int) -> str:
    lines = ['emb [label="Embedding\n(shared)", fillcolor="#FFE8CC"]',
             'trunk [label="Main model\nL blocks"]', 'emb -> trunk [label="t₀…tᵢ"]',
             f'p0 [label="P({t_ahead(1)})", fillcolor="#D3F9D8"]', 'trunk -> p0 [label="head"]']
    prev = "trunk"
    for k in range(1, depth + 1):
        lines += [f'm{k} [label="MTP {k}\nM{k}[norm; norm] → block"]',
                  f'p{k} [label="P({t_ahead(k + 1)})", fillcolor="#D3F9D8"]',
                  f'{prev} -> m{k} [label="h{"⁰¹²³⁴"[k - 1]}ᵢ"]',
                  f'emb -> m{k} [label="{t_ahead(k)}", style=dashed]',
                  f'm{k} -> p{k} [label="head"]']
        prev = f"m{k}"
    return ('digraph { rankdir=LR; nodesep=0.25; ranksep=0.45; node [shape=box, style="rounded,filled", '
            'fillcolor="#EDF2FF", fontname="sans-serif", fontsize=12]; '
            'edge [fontsize=10, fontname="sans-serif"]; ' + "; ".join(lines) + "; }")


def target_frame(text: str, depth: int) -> pd.DataFrame:
    """Positions as columns, heads as rows: the shifted targets line up diagonally."""
    df = pd.DataFrame(mtp_cache.targets(text, depth, 24)).set_index("position").T
    return df.map(lambda ch: ch if ch is None else ui.visible_whitespace(ch))


with tab_targets, ui.guard():
    c1, c2 = st.columns([3, 1])
    prompt = c1.text_area("Text", DEFAULT_PROMPT, key="mtp_prompt", height=80,
                          max_chars=mtp.MAX_PROMPT_CHARS * 4)
    depth = int(c2.slider("MTP depth D", 1, mtp.MAX_DEPTH, 2, key="mtp_view_depth"))
    st.graphviz_chart(mtp_graph(depth), width="stretch")
    st.caption("Module k: h'ᵢ = M_k [RMSNorm(hᵢ^(k−1)); RMSNorm(Emb(tᵢ₊ₖ))], one transformer block, then "
               "the shared output head predicts tᵢ₊ₖ₊₁ (DeepSeek-V3 eqs. 21-23). Dashed: the shared "
               "embedding of the token k ahead.")
    st.dataframe(target_frame(prompt, depth), width="stretch")
    st.caption("Teacher forcing: during training, module k at position i reads the *true* token tᵢ₊ₖ "
               "and the previous depth's hidden state at i, and is scored on tᵢ₊ₖ₊₁. Its attention "
               "block only looks back, so nothing after tᵢ₊ₖ can leak in. At decoding time the true "
               "tokens are unknown: module k reads the draft of module k − 1 instead.")


# ---------------------------------------------------------------- training
def train_inputs() -> tuple[mtp.MTPConfig, mtp.TrainConfig]:
    c = st.columns(4)
    d_model = int(c[0].select_slider("Width", [32, 64, 96, 128, 192, 256], 128, key="mtp_width"))
    layers = int(c[1].slider("Main-model layers", 1, mtp.MAX_LAYERS, 2, key="mtp_layers"))
    depth = int(c[2].slider("MTP depth D", 1, mtp.MAX_DEPTH, 2, key="mtp_depth"))
    window = int(c[3].select_slider("Context window (chars)", [16, 32, 64, 128], 64, key="mtp_window"))
    c = st.columns(4)
    steps = int(c[0].number_input("Steps", 10, mtp.MAX_STEPS, 300, 10, key="mtp_steps"))
    batch = int(c[1].select_slider("Batch", [4, 8, 16, 32, 64], 16, key="mtp_batch"))
    lam = float(c[2].slider("MTP loss weight λ", 0.0, 1.0, 0.3, 0.05, key="mtp_lambda"))
    seed = int(c[3].number_input("Seed", 0, 10_000, 0, key="mtp_seed"))
    heads = 4 if d_model % 8 == 0 else 2
    cfg = mtp.MTPConfig(d_model=d_model, n_layers=layers, n_heads=heads, mtp_depth=depth, window=window)
    return cfg, mtp.TrainConfig(steps=steps, batch=batch, mtp_lambda=lam, seed=seed)


def legend_below_title(fig: go.Figure) -> go.Figure:
    """Room for both: the title on top, the legend under it."""
    fig.update_layout(margin={"t": 75}, title={"y": 0.97, "yref": "container", "yanchor": "top"},
                      legend={"y": 1.0, "yanchor": "bottom"})
    return fig


def loss_figure(trained) -> go.Figure:
    df = pd.DataFrame(trained.history)
    fig = go.Figure()
    for k in range(trained.config.mtp_depth + 1):
        name = "main head (t+1)" if k == 0 else f"MTP {k} (t+{k + 1})"
        fig.add_scatter(x=df["step"], y=cache.smoothed(df[f"loss_{k}"].to_numpy()), name=name,
                        mode="lines", hovertemplate="step %{x}: %{y:.3f} nats<extra>" + name + "</extra>")
    return legend_below_title(ui.style_figure(
        fig, x_title="optimizer step", y_title="cross-entropy (nats / char, smoothed)", height=360,
        title="Training loss per depth"))


def accuracy_figure(trained) -> go.Figure:
    df = pd.DataFrame(trained.evals)
    fig = go.Figure()
    for k in range(trained.config.mtp_depth + 1):
        name = "main head (t+1)" if k == 0 else f"MTP {k} (t+{k + 1})"
        fig.add_scatter(x=df["step"], y=100 * df[f"acc_{k}"], name=name, mode="lines+markers",
                        hovertemplate="step %{x}: %{y:.1f} %<extra>" + name + "</extra>")
    return legend_below_title(ui.style_figure(
        fig, x_title="optimizer step", y_title="held-out accuracy (%)", height=360,
        title="Teacher-forced accuracy per depth (held-out text)"))


def show_training(trained) -> None:
    final = trained.final
    cols = st.columns(trained.config.mtp_depth + 2)
    for k in range(trained.config.mtp_depth + 1):
        label = "Main head: next char" if k == 0 else f"MTP {k}: char t+{k + 1}"
        agree = "" if k == 0 else (f"; agrees with the main head's own guess {ui.fmt_pct(final[f'agree_{k}'])} "
                                   "of the time (its draft acceptance on real text)")
        cols[k].metric(label, ui.fmt_pct(final[f"acc_{k}"]), help=f"held-out accuracy; cross-entropy "
                       f"{final[f'loss_{k}']:.3f} nats{agree}")
    cols[-1].metric("Training time", f"{trained.seconds:.1f} s",
                    help=f"{trained.tokens_seen:,} characters on {trained.device}")
    if trained.config.mtp_depth:
        st.caption("Draft acceptance on real held-out text (depth k's guess = the main head's guess for the "
                   "same character): " + ", ".join(f"MTP {k}: **{ui.fmt_pct(final[f'agree_{k}'])}**"
                                                   for k in range(1, trained.config.mtp_depth + 1))
                   + ". Greedy generation from a small model loops, which is easier to draft.")
    ui.plot_pair(loss_figure(trained), accuracy_figure(trained), keys=("mtp_loss", "mtp_acc"))


with tab_train:
    with ui.guard():
        cfg, train_cfg = train_inputs()
        mtp_cache.checked(cfg, train_cfg)
        counts = mtp_cache.param_counts(cfg)
        st.caption(f"Main model {counts['main']:,} parameters; {cfg.mtp_depth} MTP module(s) of "
                   f"{counts['per_module']:,} each (one transformer block + a {2 * cfg.d_model}→"
                   f"{cfg.d_model} projection + norms), sharing the embedding and the output head. "
                   "Characters: printable ASCII.")
        if st.button("Train", key="mtp_train_btn", type="primary"):
            st.session_state["mtp_model"] = (cfg, train_cfg)
    with ui.guard():
        chosen = st.session_state.get("mtp_model")
        if chosen is None:
            st.info("Press **Train** to train the model and its MTP modules on the Wikipedia sample "
                    "(the default takes a minute or more on a 2-core CPU, seconds on a GPU).",
                    icon=":material/model_training:")
        else:
            try:
                trained = ui.run_with_progress(mtp_cache.trained_mtp, *chosen, device,
                                               text="waiting for the device")
            except Exception:
                st.session_state.pop("mtp_model", None)      # do not retrain on every rerun
                raise
            if chosen != (cfg, train_cfg):
                st.caption("Showing the last trained model; press Train to use the settings above.")
            show_training(trained)


# ---------------------------------------------------------------- decoding
def colored_text(prompt: str, result) -> str:
    """The prompt in grey, then each generated character on the colour of who produced it."""
    marks = [ui.Mark(prompt, muted=True)]
    for ch, source in zip(result.text, result.speculative.sources, strict=True):   # one char per token
        tip = "main model" if source == 0 else f"draft of MTP module {source}, accepted"
        marks.append(ui.Mark(ch, SOURCE_COLORS[min(source, len(SOURCE_COLORS) - 1)], tip))
    return ui.marked_text(marks)


def decode_figures(result, depth: int) -> tuple[go.Figure, go.Figure]:
    xs = [d for d, _ in result.by_drafts]
    fig1 = go.Figure(go.Bar(x=xs, y=[t for _, t in result.by_drafts], marker_color="#4C6EF5",
                            hovertemplate="%{x} draft(s): %{y:.2f} tokens per pass<extra></extra>"))
    fig1.update_xaxes(dtick=1)
    ui.style_figure(fig1, x_title="drafted tokens per pass (MTP modules used)",
                    y_title="tokens per main-model pass", height=300, title="Measured on your prompt")
    acc = result.speculative.acceptance
    fig2 = go.Figure(go.Bar(x=[f"MTP {k + 1}" for k in range(depth)],
                            y=[None if a is None else 100 * a for a in acc], marker_color="#12B886",
                            customdata=list(zip(result.speculative.accepted, result.speculative.proposed,
                                                strict=True)),
                            hovertemplate="%{y:.1f} % (%{customdata[0]} of %{customdata[1]})<extra></extra>"))
    ui.style_figure(fig2, x_title="draft depth", y_title="acceptance (%)", height=300,
                    title="Acceptance per depth (given the earlier drafts were accepted)")
    fig2.update_yaxes(range=[0, 100])
    return fig1, fig2


def show_decoding(result, depth: int) -> None:
    plain, spec = result.plain, result.speculative
    c = st.columns(4)
    c[0].metric("Tokens per main pass", f"{spec.tokens_per_pass:.2f}", delta=f"plain greedy: {plain.tokens_per_pass:.2f}",
                delta_color="off", delta_arrow="off")
    c[1].metric("Main-model passes", f"{spec.main_passes}", delta=f"{spec.main_passes - plain.main_passes:+d} vs plain",
                delta_color="inverse")
    c[2].metric("Wall time", ui.fmt_ms(1000 * spec.seconds), delta=f"plain {ui.fmt_ms(1000 * plain.seconds)}",
                delta_color="off", delta_arrow="off", help=f"of which main passes {ui.fmt_ms(1000 * spec.main_seconds)}; "
                f"{spec.draft_passes} MTP-module passes drafted")
    c[3].metric("Same text as plain greedy", "yes" if result.identical else "NO")
    if result.unknown_chars:
        st.warning(f"{result.unknown_chars} character(s) of the prompt are outside the model's alphabet "
                   "and were read as the unknown symbol.", icon=":material/translate:")
    if result.prompt_truncated:
        st.warning(f"The prompt was cut to {mtp.MAX_PROMPT_CHARS} characters.", icon=":material/content_cut:")
    st.markdown(colored_text(result.prompt, result), unsafe_allow_html=True)
    legend = ui.legend_chips((f"MTP {k}", SOURCE_COLORS[k]) for k in range(1, min(depth, 4) + 1))
    st.markdown(f"Grey: your prompt · plain: the main model's own token · {legend}: an accepted draft",
                unsafe_allow_html=True)
    ui.plot_pair(*decode_figures(result, depth), keys=("mtp_tpp", "mtp_accept"))


def show_recorded() -> None:
    """The last bench/mtp.py run, if one was recorded."""
    docs = cache.recorded("mtp")
    if not docs:
        return
    doc = docs[-1]
    st.markdown("**Recorded run** (bench/mtp.py, held-out Wikipedia prompts):\n"
                + "\n".join(f"- {ui.escape(line)}" for line in doc.get("summary", [])))
    for sample in doc.get("samples", [])[:1]:
        st.code(sample["prompt"] + sample["text"], language=None, wrap_lines=True)
    st.caption(ui.recorded_caption(doc["meta"]))


with tab_decode, ui.guard():
    chosen = st.session_state.get("mtp_model")
    if chosen is None:
        st.info("Train a model first (tab **Train live**); then its MTP modules draft tokens here.",
                icon=":material/info:")
        show_recorded()
    else:
        c1, c2 = st.columns([3, 1])
        text = c1.text_input("Prompt", DEFAULT_PROMPT, key="mtp_decode_prompt",
                             max_chars=mtp.MAX_PROMPT_CHARS * 4)
        max_new = int(c2.slider("New characters", 10, mtp.MAX_NEW_TOKENS, 100, 10, key="mtp_new"))
        result = ui.run_with_progress(mtp_cache.decoding, *chosen, device, text, max_new)
        show_decoding(result, chosen[0].mtp_depth)


ui.page_footer(
    "- **What each module predicts**: module k is a full next-token predictor for position i + k + 1: it "
    "gets the previous depth's representation of the prefix and the embedding of tᵢ₊ₖ. The main model "
    "alone is what you keep; the modules are training signal (DeepSeek-V3 reports better benchmarks "
    "with MTP, Table 4) and a free drafter.\n"
    "- **Train live**: one optimizer step sums the main loss and λ/D times the MTP losses. Accuracies are "
    "teacher-forced on held-out text, so every depth answers the same kind of question; the deeper "
    "modules are not handicapped there — the handicap comes at decoding time, when they read drafts.\n"
    "- **Self-speculative decoding**: each main-model pass checks all drafts at once and keeps the longest "
    "prefix the main model agrees with, plus its own next token, so the text is exactly greedy decoding "
    "(checked above; both run in float64). *Tokens per main pass* is the speed-up when the main model "
    "dominates the cost, as in DeepSeek-V3 (61 layers vs 1 per MTP module; 85-90 % acceptance of the "
    "second token, 1.8× tokens per second). In this toy the main model has only a few layers, so drafting "
    "costs about as much as it saves in wall time. A small model trained for minutes loops on frequent "
    "words; loops are easy to draft, which is why acceptance can be high.",
    [
        ("DeepSeek-AI 2024, DeepSeek-V3 Technical Report, section 2.2 (MTP) and 5.4.3",
         "https://arxiv.org/abs/2412.19437"),
        ("Gloeckle et al. 2024, Better & Faster LLMs via Multi-token Prediction",
         "https://arxiv.org/abs/2404.19737"),
        ("Leviathan et al. 2023, Fast Inference from Transformers via Speculative Decoding",
         "https://arxiv.org/abs/2211.17192"),
        ("Stern et al. 2018, Blockwise Parallel Decoding for Deep Autoregressive Models",
         "https://arxiv.org/abs/1811.03115"),
    ],
)
