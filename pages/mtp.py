"""Multi-token prediction: DeepSeek-V3's sequential MTP modules, trained live, used to draft tokens."""

from __future__ import annotations

import pandas as pd
import plotly.graph_objects as go
import streamlit as st

from app import cache, ui
from app.cache import mtp as mtp_cache
from app.i18n import t, tr
from core.models import mtp

DEFAULT_PROMPT = "The history of the city begins in the "   # i18n: skip (the model reads English characters)
SOURCE_COLORS = ("transparent", "#FFD8A8", "#B2F2BB", "#D0BFFF", "#FCC2D7")

ui.page_header(
    t("Multi-token prediction"),
    t("DeepSeek-V3 trains **D extra modules that predict 2, 3, … tokens ahead** while keeping the causal "
      "chain. Here a small character-level model with such modules is trained live on a Wikipedia sample, "
      "and its MTP modules then draft tokens that the main model verifies in one pass: the same text as "
      "plain greedy decoding, in fewer main-model passes."),
)
device = cache.device_name()
tab_targets, tab_train, tab_decode = st.tabs(
    [t("What each module predicts"), t("Train live"), t("Self-speculative decoding")])


# ---------------------------------------------------------------- architecture and targets
SUB = str.maketrans("0123456789+", "₀₁₂₃₄₅₆₇₈₉₊")


def t_ahead(k: int) -> str:
    """t with subscript i+k (t_i for k = 0)."""
    return "tᵢ" if k == 0 else "tᵢ" + f"+{k}".translate(SUB)


def dot_node(name: str, label: str, fill: str = "") -> str:
    """One graphviz node (the label is ours: no quotes in it)."""
    color = f', fillcolor="{fill}"' if fill else ""   # i18n: skip (DOT syntax)
    return f'{name} [label="{label}"{color}]'        # i18n: skip (DOT syntax)


def dot_edge(tail: str, head: str, label: str, dashed: bool = False) -> str:
    style = ", style=dashed" if dashed else ""       # i18n: skip (DOT syntax)
    return f'{tail} -> {head} [label="{label}"{style}]'   # i18n: skip (DOT syntax)


def mtp_graph(depth: int) -> str:
    head = "head"   # i18n: skip (kept in English in the diagram; the caption below says 输出头 (head))
    lines = [dot_node("emb", t("Embedding\n(shared)"), "#FFE8CC"),
             dot_node("trunk", t("Main model\nL blocks")), dot_edge("emb", "trunk", "t₀…tᵢ"),
             dot_node("p0", f"P({t_ahead(1)})", "#D3F9D8"), dot_edge("trunk", "p0", head)]
    prev = "trunk"
    for k in range(1, depth + 1):
        lines += [dot_node(f"m{k}", t("MTP {k}\nM{k}[norm; norm] → block", k=k)),
                  dot_node(f"p{k}", f"P({t_ahead(k + 1)})", "#D3F9D8"),
                  dot_edge(prev, f"m{k}", f'h{"⁰¹²³⁴"[k - 1]}ᵢ'),
                  dot_edge("emb", f"m{k}", t_ahead(k), dashed=True),
                  dot_edge(f"m{k}", f"p{k}", head)]
        prev = f"m{k}"
    return ('digraph { rankdir=LR; nodesep=0.25; ranksep=0.45; node [shape=box, style="rounded,filled", '  # i18n: skip
            'fillcolor="#EDF2FF", fontname="sans-serif", fontsize=12]; '                                # i18n: skip
            'edge [fontsize=10, fontname="sans-serif"]; ' + "; ".join(lines) + "; }")                   # i18n: skip


def target_frame(text: str, depth: int) -> pd.DataFrame:
    """Positions as columns, heads as rows (core's row names, translated): the shifted targets
    line up diagonally."""
    df = pd.DataFrame(mtp_cache.targets(text, depth, 24)).set_index("position").T
    return df.map(lambda ch: ch if ch is None else ui.visible_whitespace(ch)).rename(index=tr)


with tab_targets, ui.guard():
    c1, c2 = st.columns([3, 1])
    prompt = c1.text_area(t("Text"), DEFAULT_PROMPT, key="mtp_prompt", height=80,
                          max_chars=mtp.MAX_PROMPT_CHARS * 4)
    depth = int(c2.slider(t("MTP depth D"), 1, mtp.MAX_DEPTH, 2, key="mtp_view_depth"))
    st.graphviz_chart(mtp_graph(depth), width="stretch")
    st.caption(t("Module k: h'ᵢ = M_k [RMSNorm(hᵢ^(k−1)); RMSNorm(Emb(tᵢ₊ₖ))], one transformer block, then "
                 "the shared output head predicts tᵢ₊ₖ₊₁ (DeepSeek-V3 eqs. 21-23). Dashed: the shared "
                 "embedding of the token k ahead."))
    st.dataframe(target_frame(prompt, depth), width="stretch")
    st.caption(t("Teacher forcing: during training, module k at position i reads the *true* token tᵢ₊ₖ "
                 "and the previous depth's hidden state at i, and is scored on tᵢ₊ₖ₊₁. Its attention "
                 "block only looks back, so nothing after tᵢ₊ₖ can leak in. At decoding time the true "
                 "tokens are unknown: module k reads the draft of module k − 1 instead."))


# ---------------------------------------------------------------- training
def train_inputs() -> tuple[mtp.MTPConfig, mtp.TrainConfig]:
    c = st.columns(4)
    d_model = int(c[0].select_slider(t("Width"), [32, 64, 96, 128, 192, 256], 128, key="mtp_width"))
    layers = int(c[1].slider(t("Main-model layers"), 1, mtp.MAX_LAYERS, 2, key="mtp_layers"))
    depth = int(c[2].slider(t("MTP depth D"), 1, mtp.MAX_DEPTH, 2, key="mtp_depth"))
    window = int(c[3].select_slider(t("Context window (chars)"), [16, 32, 64, 128], 64, key="mtp_window"))
    c = st.columns(4)
    steps = int(c[0].number_input(t("Steps"), 10, mtp.MAX_STEPS, 300, 10, key="mtp_steps"))
    batch = int(c[1].select_slider(t("Batch"), [4, 8, 16, 32, 64], 16, key="mtp_batch"))
    lam = float(c[2].slider(t("MTP loss weight λ"), 0.0, 1.0, 0.3, 0.05, key="mtp_lambda"))
    seed = int(c[3].number_input(t("Seed"), 0, 10_000, 0, key="mtp_seed"))
    heads = 4 if d_model % 8 == 0 else 2
    cfg = mtp.MTPConfig(d_model=d_model, n_layers=layers, n_heads=heads, mtp_depth=depth, window=window)
    return cfg, mtp.TrainConfig(steps=steps, batch=batch, mtp_lambda=lam, seed=seed)


def legend_below_title(fig: go.Figure) -> go.Figure:
    """Room for both: the title on top, the legend under it."""
    fig.update_layout(margin={"t": 75}, title={"y": 0.97, "yref": "container", "yanchor": "top"},
                      legend={"y": 1.0, "yanchor": "bottom"})
    return fig


def depth_name(k: int) -> str:
    return t("main head (t+1)") if k == 0 else t("MTP {k} (t+{n})", k=k, n=k + 1)


def loss_figure(trained) -> go.Figure:
    df = pd.DataFrame(trained.history)
    fig = go.Figure()
    for k in range(trained.config.mtp_depth + 1):
        name = depth_name(k)
        fig.add_scatter(x=df["step"], y=cache.smoothed(df[f"loss_{k}"].to_numpy()), name=name,
                        mode="lines", hovertemplate=t("step %{x}: %{y:.3f} nats") + "<extra>" + name + "</extra>")
    return legend_below_title(ui.style_figure(
        fig, x_title=t("optimizer step"), y_title=t("cross-entropy (nats / char, smoothed)"), height=360,
        title=t("Training loss per depth")))


def accuracy_figure(trained) -> go.Figure:
    df = pd.DataFrame(trained.evals)
    fig = go.Figure()
    for k in range(trained.config.mtp_depth + 1):
        name = depth_name(k)
        fig.add_scatter(x=df["step"], y=100 * df[f"acc_{k}"], name=name, mode="lines+markers",
                        hovertemplate=t("step %{x}: %{y:.1f} %") + "<extra>" + name + "</extra>")
    return legend_below_title(ui.style_figure(
        fig, x_title=t("optimizer step"), y_title=t("held-out accuracy (%)"), height=360,
        title=t("Teacher-forced accuracy per depth (held-out text)")))


def show_training(trained) -> None:
    final = trained.final
    cols = st.columns(trained.config.mtp_depth + 2)
    for k in range(trained.config.mtp_depth + 1):
        label = t("Main head: next char") if k == 0 else t("MTP {k}: char t+{n}", k=k, n=k + 1)
        agree = "" if k == 0 else t("; agrees with the main head's own guess {pct} of the time (its draft "
                                    "acceptance on real text)", pct=ui.fmt_pct(final[f"agree_{k}"]))
        cols[k].metric(label, ui.fmt_pct(final[f"acc_{k}"]),
                       help=t("held-out accuracy; cross-entropy {loss:.3f} nats{agree}",
                              loss=final[f"loss_{k}"], agree=agree))
    cols[-1].metric(t("Training time"), f"{trained.seconds:.1f} s",
                    help=t("{n:,} characters on {device}", n=trained.tokens_seen, device=trained.device))
    if trained.config.mtp_depth:
        rates = ", ".join(f"MTP {k}: **{ui.fmt_pct(final[f'agree_{k}'])}**"
                          for k in range(1, trained.config.mtp_depth + 1))
        st.caption(t("Draft acceptance on real held-out text (depth k's guess = the main head's guess for the "
                     "same character): {rates}. Greedy generation from a small model loops, which is easier "
                     "to draft.", rates=rates))
    ui.plot_pair(loss_figure(trained), accuracy_figure(trained), keys=("mtp_loss", "mtp_acc"))


with tab_train:
    with ui.guard():
        cfg, train_cfg = train_inputs()
        mtp_cache.checked(cfg, train_cfg)
        counts = mtp_cache.param_counts(cfg)
        st.caption(t("Main model {main:,} parameters; {depth} MTP module(s) of {each:,} each (one transformer "
                     "block + a {d2}→{d} projection + norms), sharing the embedding and the output head. "
                     "Characters: printable ASCII.", main=counts["main"], depth=cfg.mtp_depth,
                     each=counts["per_module"], d2=2 * cfg.d_model, d=cfg.d_model))
        if st.button(t("Train"), key="mtp_train_btn", type="primary"):
            st.session_state["mtp_model"] = (cfg, train_cfg)
    with ui.guard():
        chosen = st.session_state.get("mtp_model")
        if chosen is None:
            st.info(t("Press **Train** to train the model and its MTP modules on the Wikipedia sample "
                      "(the default takes a minute or more on a 2-core CPU, seconds on a GPU)."),
                    icon=":material/model_training:")
        else:
            try:
                trained = ui.run_with_progress(mtp_cache.trained_mtp, *chosen, device,
                                               text=t("waiting for the device"))
            except Exception:
                st.session_state.pop("mtp_model", None)      # do not retrain on every rerun
                raise
            if chosen != (cfg, train_cfg):
                st.caption(t("Showing the last trained model; press Train to use the settings above."))
            show_training(trained)


# ---------------------------------------------------------------- decoding
def colored_text(prompt: str, result) -> str:
    """The prompt in grey, then each generated character on the colour of who produced it."""
    marks = [ui.Mark(prompt, muted=True)]
    for ch, source in zip(result.text, result.speculative.sources, strict=True):   # one char per token
        tip = t("main model") if source == 0 else t("draft of MTP module {k}, accepted", k=source)
        marks.append(ui.Mark(ch, SOURCE_COLORS[min(source, len(SOURCE_COLORS) - 1)], tip))
    return ui.marked_text(marks)


def decode_figures(result, depth: int) -> tuple[go.Figure, go.Figure]:
    xs = [d for d, _ in result.by_drafts]
    fig1 = go.Figure(go.Bar(x=xs, y=[t for _, t in result.by_drafts], marker_color="#4C6EF5",
                            hovertemplate=t("%{x} draft(s): %{y:.2f} tokens per pass<extra></extra>")))
    fig1.update_xaxes(dtick=1)
    ui.style_figure(fig1, x_title=t("drafted tokens per pass (MTP modules used)"),
                    y_title=t("tokens per main-model pass"), height=300, title=t("Measured on your prompt"))
    acc = result.speculative.acceptance
    fig2 = go.Figure(go.Bar(x=[f"MTP {k + 1}" for k in range(depth)],
                            y=[None if a is None else 100 * a for a in acc], marker_color="#12B886",
                            customdata=list(zip(result.speculative.accepted, result.speculative.proposed,
                                                strict=True)),
                            hovertemplate=t("%{y:.1f} % (%{customdata[0]} of %{customdata[1]})<extra></extra>")))
    ui.style_figure(fig2, x_title=t("draft depth"), y_title=t("acceptance (%)"), height=300,
                    title=t("Acceptance per depth (given the earlier drafts were accepted)"))
    fig2.update_yaxes(range=[0, 100])
    return fig1, fig2


def show_decoding(result, depth: int) -> None:
    plain, spec = result.plain, result.speculative
    c = st.columns(4)
    c[0].metric(t("Tokens per main pass"), f"{spec.tokens_per_pass:.2f}",
                delta=t("plain greedy: {tpp:.2f}", tpp=plain.tokens_per_pass), delta_color="off", delta_arrow="off")
    c[1].metric(t("Main-model passes"), f"{spec.main_passes}",
                delta=t("{diff:+d} vs plain", diff=spec.main_passes - plain.main_passes), delta_color="inverse")
    c[2].metric(t("Wall time"), ui.fmt_ms(1000 * spec.seconds), delta=t("plain {ms}", ms=ui.fmt_ms(1000 * plain.seconds)),
                delta_color="off", delta_arrow="off",
                help=t("of which main passes {ms}; {n} MTP-module passes drafted",
                       ms=ui.fmt_ms(1000 * spec.main_seconds), n=spec.draft_passes))
    c[3].metric(t("Same text as plain greedy"), t("yes") if result.identical else t("NO"))
    if result.unknown_chars:
        st.warning(t("{n} character(s) of the prompt are outside the model's alphabet and were read as the "
                     "unknown symbol.", n=result.unknown_chars), icon=":material/translate:")
    if result.prompt_truncated:
        st.warning(t("The prompt was cut to {n} characters.", n=mtp.MAX_PROMPT_CHARS), icon=":material/content_cut:")
    st.markdown(colored_text(result.prompt, result), unsafe_allow_html=True)
    legend = ui.legend_chips((f"MTP {k}", SOURCE_COLORS[k]) for k in range(1, min(depth, 4) + 1))
    st.markdown(t("Grey: your prompt · plain: the main model's own token · {legend}: an accepted draft",
                  legend=legend), unsafe_allow_html=True)
    ui.plot_pair(*decode_figures(result, depth), keys=("mtp_tpp", "mtp_accept"))


def recorded_summary(doc: dict) -> list[str]:
    """bench/mtp.py's summary lines, written again from the numbers it recorded so that they read in
    the page's language (the same English text as the bench's); its own lines if a number is missing."""
    try:
        depth, final = doc["config"]["mtp_depth"], doc["final_eval"]

        def per_depth(key: str, first: int) -> str:
            return ", ".join(t("depth {k}: {pct:.1f} %", k=k, pct=100 * final[f"{key}_{k}"])
                             for k in range(first, depth + 1))

        acceptance = ", ".join("—" if a is None else f"{100 * a:.0f} %" for a in doc["acceptance"])
        return [
            t("trained {steps} steps in {s:.1f} s ({rate:,.0f} chars/s) on {device}", steps=doc["train_config"]["steps"],
              s=doc["train_seconds"], rate=doc["train_chars_per_s"], device=doc["device_used"]),
            t("held-out accuracy {depths}", depths=per_depth("acc", 0)),
            t("draft agreement with the main head on held-out text {depths}", depths=per_depth("agree", 1)),
            t("tokens per main pass with {d} drafts: {tpp:.2f} (plain 1.00); acceptance {rates}", d=depth,
              tpp=doc["tokens_per_pass_by_drafts"][str(depth)], rates=acceptance),
            t("decode {n} chars: plain {plain:.0f} ms, speculative {spec:.0f} ms (identical: {same})",
              n=doc["new_chars"], plain=doc["plain_ms_median"], spec=doc["speculative_ms_median"],
              same=t("True") if doc["identical"] else t("False")),
        ]
    except (KeyError, TypeError, ValueError):
        return list(doc.get("summary", []))


def show_recorded() -> None:
    """The last bench/mtp.py run, if one was recorded."""
    docs = cache.recorded("mtp")
    if not docs:
        return
    doc = docs[-1]
    st.markdown(t("**Recorded run** (bench/mtp.py, held-out Wikipedia prompts):") + "\n"
                + "\n".join(f"- {ui.escape(line)}" for line in recorded_summary(doc)))
    for sample in doc.get("samples", [])[:1]:
        st.code(sample["prompt"] + sample["text"], language=None, wrap_lines=True)
    st.caption(ui.recorded_caption(doc["meta"]))


with tab_decode, ui.guard():
    chosen = st.session_state.get("mtp_model")
    if chosen is None:
        st.info(t("Train a model first (tab **Train live**); then its MTP modules draft tokens here."),
                icon=":material/info:")
        show_recorded()
    else:
        c1, c2 = st.columns([3, 1])
        text = c1.text_input(t("Prompt"), DEFAULT_PROMPT, key="mtp_decode_prompt",
                             max_chars=mtp.MAX_PROMPT_CHARS * 4)
        max_new = int(c2.slider(t("New characters"), 10, mtp.MAX_NEW_TOKENS, 100, 10, key="mtp_new"))
        result = ui.run_with_progress(mtp_cache.decoding, *chosen, device, text, max_new)
        show_decoding(result, chosen[0].mtp_depth)


ui.page_footer(
    t("- **What each module predicts**: module k is a full next-token predictor for position i + k + 1: it "
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
      "words; loops are easy to draft, which is why acceptance can be high."),
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
