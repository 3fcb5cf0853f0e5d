"""Contrastive learning: InfoNCE on MiniLM sentence pairs, the log N bound, and CPC trained live."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import plotly.graph_objects as go
import streamlit as st

from app import cache, ui
from app.cache import contrastive as contrastive_cache
from core.models import contrastive

TITLE = "Contrastive learning"
POOL_SIZES = [16, 32, 64, 128, 256]
TEMPERATURES = [0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0, 2.0]
CURVE_SIZES = (2, 4, 8, 16, 32, 64, 128, 256)
CURVE_TAUS = (0.02, 0.05, 0.1, 0.2, 0.5, 1.0)
SOURCES = {"wiki": "Wikipedia sample", "text": "Your own text"}

ui.page_header(
    TITLE,
    "Learn by telling the true partner from the rest of the batch. **InfoNCE** scores every anchor against "
    "every candidate (an N × N matrix of similarities / τ) and asks for the diagonal: it is a "
    "cross-entropy, and log N − loss is a lower bound on the mutual information that can never exceed "
    "log N. First on **real all-MiniLM-L6-v2 embeddings** of Wikipedia sentence pairs, then in a small "
    "**CPC** model (encoder + GRU + k-step predictors) trained here on the same corpus.",
)
device = cache.device_name()
tab_nce, tab_bound, tab_cpc = st.tabs(["InfoNCE on sentence pairs", "The bound vs N and τ",
                                       "CPC trained live"])


# ---------------------------------------------------------------- pool of pairs
def pool_settings() -> dict:
    c1, c2, c3, c4 = st.columns([1, 1.6, 1.6, 1])
    source = c1.radio("Sentences from", list(SOURCES), format_func=SOURCES.get, key="cl_source")
    kind = c2.selectbox("Positive pair", list(contrastive.PAIR_KINDS), format_func=contrastive.PAIR_KINDS.get, key="cl_kind")
    negatives = c3.selectbox("Negatives", list(contrastive.NEGATIVES), format_func=contrastive.NEGATIVES.get, key="cl_negatives",
                             disabled=source != "wiki")
    pool = c4.select_slider("Pairs embedded", POOL_SIZES, value=64, key="cl_pool",
                            help=f"Each pair is two sentences for MiniLM (at most {contrastive.MAX_PAIRS} pairs).")
    text = ""
    if source == "text":
        text = st.text_area("Your text (sentences of 6–60 words; consecutive sentences become pairs)",
                            key="cl_text", height=120, max_chars=contrastive.MAX_TEXT_CHARS)
    return {"source": source, "kind": kind, "negatives": negatives, "pool": pool, "text": text}


def load_pool(s: dict):
    if s["source"] == "text" and not s["text"].strip():
        st.info("Type some sentences to make pairs from.", icon=":material/edit:")
        return None
    bar = st.progress(0.0)
    try:
        return contrastive_cache.pool(s["source"], s["kind"], s["negatives"], s["pool"], 0, s["text"],
                                      device, _progress=ui.progress_callback(bar))
    finally:
        bar.empty()


# ---------------------------------------------------------------- tab 1
def short(text: str, n: int = 90) -> str:
    return text if len(text) <= n else text[: n - 1] + "…"


def logits_figure(res, pairs, idx) -> go.Figure:
    n = res.n
    anchors = [ui.escape(short(pairs[i].anchor)) for i in idx]
    cands = [ui.escape(short(pairs[i].positive)) for i in idx]
    hover = [[f"anchor {r}: {anchors[r]}<br>candidate {c}: {cands[c]}<br>"
              f"{'POSITIVE' if r == c else 'negative'}" for c in range(n)] for r in range(n)]
    fig = go.Figure(go.Heatmap(z=res.logits, colorscale="RdBu", zmid=0, text=hover,
                               colorbar={"title": "cos / τ"},
                               hovertemplate="%{text}<br>logit %{z:.2f}<extra></extra>"))
    fig.add_scatter(x=res.logits.argmax(1).tolist(), y=list(range(n)), mode="markers", showlegend=False,
                    marker={"symbol": "x", "color": "black", "size": 6}, hoverinfo="skip")
    fig.update_yaxes(autorange="reversed", scaleanchor="x", constrain="domain")
    fig.update_xaxes(constrain="domain")
    return ui.style_figure(fig, x_title="candidate j (positive of pair j)", y_title="anchor i",
                           height=520)


def batch_controls(pool_n: int) -> tuple[int, float, bool, int]:
    c1, c2, c3, c4 = st.columns([2, 2, 1.3, 1])
    n = c1.slider("Batch size N", 2, max(2, pool_n), min(16, pool_n), key="cl_n",
                  help="N pairs: each anchor's positive plus N − 1 negatives.")
    tau = c2.select_slider("Temperature τ", TEMPERATURES, value=0.05, key="cl_tau")
    symmetric = c3.toggle("Symmetric", key="cl_sym", help="CLIP's loss: the average of the anchor→candidate and "
                          "candidate→anchor cross-entropies.")
    seed = c4.number_input("Batch seed", 0, 10_000, 0, key="cl_seed")
    return n, tau, symmetric, int(seed)


def render_nce_tab():
    settings = pool_settings()
    pool = load_pool(settings)
    if pool is None:
        return None
    pairs, a, b = pool
    n, tau, symmetric, seed = batch_controls(len(pairs))
    res, idx = contrastive_cache.batch(a, b, n, tau, seed, symmetric)
    m = st.columns(4)
    m[0].metric("InfoNCE loss", f"{res.loss:.3f} nats")
    m[1].metric("Top-1 accuracy", ui.fmt_pct(res.accuracy), help=f"chance: {ui.fmt_pct(1 / res.n)}")
    m[2].metric("log N", f"{res.log_n:.3f} nats")
    m[3].metric("MI bound log N − L", f"{res.bound:.3f} nats", help="A lower bound on I(x; y); ≤ log N.")
    ui.titled_plot(logits_figure(res, pairs, idx), "cl_heatmap",
                "Logits cos(aᵢ, bⱼ) / τ — × marks each row's top pick")
    rows = [{"#": r, "anchor": pairs[i].anchor, "positive": pairs[i].positive, "article": pairs[i].source,
             "picked": int(res.logits[r].argmax()), "rank of positive": int((res.logits[r] > res.logits[r, r]).sum()) + 1}
            for r, i in enumerate(idx)]
    st.dataframe(pd.DataFrame(rows), hide_index=True, width="stretch")
    return pool


pool_state = None
with tab_nce, ui.guard():
    pool_state = render_nce_tab()


# ---------------------------------------------------------------- tab 2
def bound_figure(points) -> go.Figure:
    fig = go.Figure()
    sizes = sorted({p.n for p in points})
    fig.add_scatter(x=sizes, y=[math.log(n) for n in sizes], name="log N (the ceiling)",
                    line={"dash": "dash", "color": "#495057"},
                    hovertemplate="N = %{x}: log N = %{y:.3f} nats<extra></extra>")
    for i, tau in enumerate(sorted({p.temperature for p in points})):
        pts = [p for p in points if p.temperature == tau]
        fig.add_scatter(x=[p.n for p in pts], y=[p.bound for p in pts], name=f"τ = {tau:g}",
                        mode="lines+markers", line={"color": ui.PALETTE[i % len(ui.PALETTE)]},
                        error_y={"type": "data", "array": [p.loss_std for p in pts], "thickness": 1},
                        customdata=[[p.loss, p.accuracy, p.batches] for p in pts],
                        hovertemplate="N = %{x}: bound %{y:.3f} nats, loss %{customdata[0]:.3f}, "
                                      "top-1 %{customdata[1]:.1%} (%{customdata[2]} batches)<extra></extra>")
    fig.update_xaxes(type="log", dtick=math.log10(2))
    return ui.style_figure(fig, x_title="batch size N (log scale)", y_title="log N − InfoNCE (nats)", height=440)


def best_table(points) -> pd.DataFrame:
    rows = []
    for n in sorted({p.n for p in points}):
        best = max((p for p in points if p.n == n), key=lambda p: p.bound)
        rows.append({"N": n, "log N": f"{math.log(n):.3f}", "best τ": f"{best.temperature:g}",
                     "best bound (nats)": f"{best.bound:.3f}", "loss": f"{best.loss:.3f}",
                     "top-1": ui.fmt_pct(best.accuracy), "bound / log N": ui.fmt_pct(best.bound / math.log(n))})
    return pd.DataFrame(rows)


def render_bound_tab(pool) -> None:
    if pool is None:
        st.info("The pairs of the first tab are needed here.", icon=":material/info:")
        return
    pairs, a, b = pool
    sizes = tuple(n for n in CURVE_SIZES if n <= len(pairs))
    draws = st.slider("Random batches per point", 1, 32, 8, key="cl_draws")
    points = contrastive_cache.curve(a, b, sizes, CURVE_TAUS, draws, 0)
    ui.titled_plot(bound_figure(points), "cl_bound", f"MI lower bound from batches of the {len(pairs)} embedded pairs")
    st.dataframe(best_table(points), hide_index=True, width="stretch")
    st.caption("Error bars: standard deviation of the loss over the random batches. At N = the whole pool "
               "there is one batch. Embed more pairs in the first tab to extend the curve.")


with tab_bound, ui.guard():
    render_bound_tab(pool_state)


# ---------------------------------------------------------------- tab 3
def cpc_settings() -> contrastive.CPCConfig:
    c1, c2, c3, c4 = st.columns(4)
    unit = c1.selectbox("Sequence", list(contrastive.CPC_UNITS), format_func=contrastive.CPC_UNITS.get, key="cl_cpc_unit")
    steps = c2.select_slider("Training steps", [20, 50, 100, 200, 300, 500, 1000, 2000], value=300,
                             key="cl_cpc_steps")
    k_max = c3.slider("Predict up to k steps ahead", 2, 16, 8, key="cl_cpc_k")
    batch = c4.select_slider("Windows per batch", [8, 16, 32, 64, 128], value=32, key="cl_cpc_batch")
    lr = 1e-2 if unit == "tokens" else 3e-3
    return contrastive.CPCConfig(unit=unit, steps=steps, k_max=k_max, batch_size=batch, lr=lr,
                       eval_every=max(10, steps // 12))


def accuracy_figure(result) -> go.Figure:
    ks = list(range(1, result.config.k_max + 1))
    fig = go.Figure()
    fig.add_scatter(x=ks, y=result.evals[-1].accuracy, name=f"trained ({result.evals[-1].step} steps)",
                    mode="lines+markers", line={"color": ui.PALETTE[0], "width": 3},
                    hovertemplate="k = %{x}: %{y:.1%} picked the true future<extra></extra>")
    fig.add_scatter(x=ks, y=result.evals[0].accuracy, name="untrained", mode="lines+markers",
                    line={"color": ui.PALETTE[8]}, hovertemplate="k = %{x}: %{y:.1%}<extra></extra>")
    fig.add_hline(y=result.chance, line_dash="dash", line_color=ui.PALETTE[1],
                  annotation_text=f"chance 1/{result.config.eval_candidates}")
    fig.update_yaxes(type="log", tickformat=".0%")
    return ui.style_figure(fig, x_title="steps ahead k", y_title="held-out accuracy (log)", height=380)


def bound_k_figure(result) -> go.Figure:
    ks = list(range(1, result.config.k_max + 1))
    fig = go.Figure(go.Bar(x=ks, y=[result.log_candidates - lo for lo in result.evals[-1].loss],
                           marker_color=ui.PALETTE[2],
                           hovertemplate="k = %{x}: log M − L = %{y:.3f} nats<extra></extra>"))
    return ui.style_figure(fig, x_title="steps ahead k", y_title="log M − InfoNCE (nats)", height=380)


def history_figure(result) -> go.Figure:
    fig = go.Figure()
    losses = np.asarray(result.losses)
    if len(losses):
        fig.add_scatter(x=np.arange(1, len(losses) + 1), y=cache.smoothed(losses), name=f"training loss (1 + {result.config.negatives} candidates, mean over k)",
                        line={"color": ui.PALETTE[0]}, hovertemplate="step %{x}: %{y:.3f} nats<extra></extra>")
    steps = [e.step for e in result.evals]
    for k in sorted({1, max(1, result.config.k_max // 2), result.config.k_max}):
        fig.add_scatter(x=steps, y=[e.loss[k - 1] for e in result.evals], name=f"held-out loss, k = {k}",
                        mode="lines+markers", hovertemplate="step %{x}: %{y:.3f} nats<extra></extra>")
    fig.add_hline(y=result.log_candidates, line_dash="dot", line_color="#868E96",
                  annotation_text=f"log {result.config.eval_candidates} (uniform guess)")
    return ui.style_figure(fig, x_title="training step", y_title="InfoNCE (nats)", height=380)


def show_cpc(result) -> None:
    cfg = result.config
    m = st.columns(4)
    m[0].metric("Parameters", ui.fmt_count(result.n_params))
    m[1].metric(f"Training {cfg.unit}", ui.fmt_count(result.train_items))
    m[2].metric("k = 1 accuracy", ui.fmt_pct(result.evals[-1].accuracy[0]), help=f"chance {ui.fmt_pct(result.chance)}")
    m[3].metric("Training time", f"{result.seconds:.1f} s", help=f"on {result.device}")
    c1, c2 = st.columns(2)
    with c1:
        ui.titled_plot(accuracy_figure(result), "cl_cpc_acc",
                    f"Held-out: pick z(t+k) among {cfg.eval_candidates} candidates")
    with c2:
        ui.titled_plot(bound_k_figure(result), "cl_cpc_bound", f"MI lower bound per k: log {cfg.eval_candidates} − L")
    ui.titled_plot(history_figure(result), "cl_cpc_hist", "Training loss and held-out loss")
    st.markdown("**What the model picks** (held-out text; the context ends where the prediction starts):")
    st.dataframe(pd.DataFrame([{"k": e.k, "context …": e.context, "true future": e.truth,
                                "model's pick": e.picked, "rank of truth": f"{e.rank} / {e.candidates}"}
                               for e in result.examples]), hide_index=True, width="stretch")


def render_cpc_tab() -> None:
    st.markdown(
        "An encoder turns each token (or each 4 bytes) into a latent **z**, a GRU summarises the past into a "
        "context **c**, and one linear map **W_k** per step scores z(t+k)ᵀ W_k c(t). InfoNCE trains all three: "
        "every position must pick its true z(t+k) among the futures of other positions of the batch. "
        "Every 10th article is held out; accuracy is measured there.")
    cfg = cpc_settings()
    run_key = (cfg, device)
    if st.button("Train CPC", key="cl_cpc_train", type="primary"):
        ui.run_with_progress(contrastive_cache.cpc, cfg, device)
        st.session_state["cl_cpc_done"] = run_key
    if st.session_state.get("cl_cpc_done") == run_key:
        show_cpc(contrastive_cache.cpc(cfg, device))
    else:
        st.info(f"Press **Train CPC**: {cfg.steps} steps of {cfg.batch_size} windows × {cfg.window} latents "
                "(about 40 s for 300 steps on a 2-core CPU, seconds on a GPU).", icon=":material/model_training:")


with tab_cpc, ui.guard():
    render_cpc_tab()


ui.page_footer(
    """
**The heatmap.** Row i is anchor aᵢ, column j is candidate bⱼ (the positive of pair j); the cell is
cos(aᵢ, bⱼ) / τ. InfoNCE is the cross-entropy of each row with its diagonal cell as the target, so a
dark diagonal and pale rest means a low loss. × marks each row's highest logit (top-1 pick).
*Next sentence* pairs share topic and entities; *two crops* of one sentence share most words, so they
are easier. *Hard negatives* (all pairs from one article) share the topic too: accuracy drops.

**The bound.** InfoNCE ≥ log N − I(x; y), i.e. I(x; y) ≥ log N − L. Since L ≥ 0 the bound can never
say more than log N: with small batches it saturates (the dashed line), which is why contrastive
learning wants large batches. The temperature is part of the critic: too high and all logits look
alike (L → log N, bound → 0); too low and a few confident mistakes dominate. The best τ gives the
tightest bound.

**CPC.** Accuracy is measured on held-out articles: each of M positions must pick its own z(t+k)
among the M futures (chance 1/M). It falls with k: the next token is constrained by syntax, eight
tokens ahead mostly by topic. log M − L per k is the model's MI lower bound between context and the
future latent. A few hundred CPU steps give a small model; more steps keep improving it.
""",
    [
        ("van den Oord, Li, Vinyals 2018, Representation Learning with Contrastive Predictive Coding, "
         "sections 2.1–2.3", "https://arxiv.org/abs/1807.03748"),
        ("Poole et al. 2019, On Variational Bounds of Mutual Information, section 2.3 (InfoNCE ≤ log N)",
         "https://arxiv.org/abs/1905.06922"),
        ("Chen et al. 2020, SimCLR, section 2.1 (NT-Xent, temperature)", "https://arxiv.org/abs/2002.05709"),
        ("Radford et al. 2021, CLIP, section 2.3 (symmetric loss)", "https://arxiv.org/abs/2103.00020"),
        ("Logeswaran & Lee 2018, Quick-Thoughts (neighbouring sentences as positives)",
         "https://arxiv.org/abs/1803.02893"),
        ("Giorgi et al. 2021, DeCLUTR (spans of one document as positives)", "https://arxiv.org/abs/2006.03659"),
        ("Reimers & Gurevych 2019, Sentence-BERT; all-MiniLM-L6-v2 model card",
         "https://huggingface.co/sentence-transformers/all-MiniLM-L6-v2"),
    ],
)
