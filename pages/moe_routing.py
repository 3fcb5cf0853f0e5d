"""MoE routing: DeepSeekMoE with auxiliary-loss-free load balancing, trained live.

Three small character-level MoE language models (same initial weights, same batches) are
trained on gensim's Wikipedia sample with no balancing, a conventional auxiliary loss, and
DeepSeek-V3's bias update; the page shows their loss, load imbalance, expert load and bias
over training, how each routes the user's text, what each expert prefers, and what routing
means at DeepSeek-V3's real scale. Models and analyses live in core/models/moe.py.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import plotly.graph_objects as go
import streamlit as st
from plotly.subplots import make_subplots

from app import cache, ui
from app.cache import moe as moe_cache
from app.i18n import t, tr
from core.configs import PRESETS
from core.models import moe

TITLE = t("MoE routing")
DEFAULT_TEXT = ("Mixture-of-experts models send each token to a few specialists. "   # i18n: skip (the model
                "In 1969, Apollo 11 landed on the Moon.")                             # i18n: skip reads English)
MOE_PRESETS = {k: v.name for k, v in PRESETS.items() if v.is_moe}   # key -> name, for the scale tab

ui.page_header(
    TITLE,
    t("A **DeepSeekMoE** layer (shared + fine-grained routed experts, sigmoid affinities, top-k) "
      "inside a small language model, **trained live** on a Wikipedia sample three ways: no "
      "balancing, an auxiliary loss, and DeepSeek-V3's **auxiliary-loss-free bias**. See how "
      "load balance, loss and routing differ, and what routing means at 671 B parameters."),
)
device = cache.device_name()


# ============================================================== helpers (formatting only)
def describe(cfg: moe.TrainConfig) -> str:
    m = cfg.moe
    groups = t(", {n} groups (≤ {k} per token)", n=m.n_groups, k=m.topk_groups) if m.n_groups > 1 else ""
    return t("{routed} routed + {shared} shared experts, top-{k}{groups}, {layers} layers, width {width}, "
             "{steps} steps of {batch}×{seq} characters", routed=m.n_routed, shared=m.n_shared, k=m.top_k,
             groups=groups, layers=cfg.n_layers, width=m.d_model, steps=cfg.steps, batch=cfg.batch,
             seq=cfg.seq_len)


def layer_options(n_layers: int, with_mean: bool = False) -> list:
    return (["mean"] if with_mean else []) + list(range(n_layers))


def layer_label(layer) -> str:
    return t("Mean over layers") if layer == "mean" else t("Layer {n}", n=layer + 1)


def layer_control(label: str, n_layers: int, key: str, *, with_mean: bool = False, default=0, where=st):
    """A segmented control over the layers (labels made now: a format_func must not call t() later)."""
    options = layer_options(n_layers, with_mean)
    labels = {layer: layer_label(layer) for layer in options}
    return where.segmented_control(label, options, default=default, format_func=labels.get, key=key)


# ============================================================== settings
def settings() -> moe.TrainConfig | None:
    """Widgets -> a validated TrainConfig (core checks every value), or None with a message."""
    with st.expander(t("Settings"), expanded=True, icon=":material/tune:"):
        c = st.columns(5)
        experts = c[0].number_input(t("Routed experts"), 0, 256, 16, key="moe_experts")
        top_k = c[1].number_input(t("Top-k"), 0, 64, 2, key="moe_topk")
        shared = c[2].number_input(t("Shared experts"), 0, 16, 1, key="moe_shared")
        groups = c[3].number_input(t("Expert groups"), 1, 64, 1, key="moe_groups",
                                   help=t("Group-limited routing (V3: 8 groups, one per node)."))
        topk_groups = c[4].number_input(t("Groups per token"), 1, 64, 1, key="moe_topk_groups")
        c = st.columns(5)
        gamma = c[0].number_input(t("Bias speed γ"), -1.0, 1.0, 0.01, 0.001, format="%.4f",
                                  key="moe_gamma", help=t("Aux-free run: b_i moves by γ per step."))
        alpha = c[1].number_input(t("Aux-loss weight α"), -1.0, 10.0, 0.01, 0.001, format="%.4f",
                                  key="moe_alpha", help=t("Auxiliary-loss run: α·N·Σ f_i P_i."))
        seq_alpha = c[2].number_input(t("Sequence-wise α"), -1.0, 1.0, 1e-4, 1e-4, format="%.5f",
                                      key="moe_seq_alpha", help=t("V3's small per-sequence loss (aux-free run)."))
        route_scale = c[3].number_input(t("Route scale"), 0.0, 20.0, 1.0, 0.5, key="moe_route_scale",
                                        help=t("Gates of a token sum to this (V3: 2.5)."))
        steps = c[4].slider(t("Steps per mode"), 10, moe.MAX_STEPS, 150, 10, key="moe_steps")
        with st.expander(t("Model and optimiser"), icon=":material/settings:"):
            c = st.columns(6)
            layers = c[0].number_input(t("Layers"), 1, 12, 2, key="moe_layers")
            width = c[1].selectbox(t("Width"), [32, 64, 128, 256], index=1, key="moe_width")
            hidden = c[2].selectbox(t("Expert width"), [16, 32, 64, 128], index=1, key="moe_hidden")
            seq_len = c[3].selectbox(t("Context"), [32, 64, 128, 256], index=1, key="moe_seq")
            batch = c[4].selectbox(t("Batch"), [8, 16, 32, 64], index=1, key="moe_batch")
            lr = c[5].number_input(t("Learning rate"), 0.0, 1.0, 1e-3, 1e-4, format="%.4f", key="moe_lr")
    layer = moe.MoEConfig(d_model=width, n_routed=experts, n_shared=shared, top_k=top_k,
                          expert_hidden=hidden, n_groups=groups, topk_groups=topk_groups,
                          route_scale=route_scale)
    return moe.TrainConfig(moe=layer, alpha=alpha, gamma=gamma, seq_alpha=seq_alpha,
                           n_layers=layers, seq_len=seq_len, batch=batch, steps=steps, lr=lr)


def train_button(cfg: moe.TrainConfig) -> None:
    left, right = st.columns([1, 3], vertical_alignment="center")
    clicked = left.button(t("Train the three modes"), key="moe_train", type="primary",
                          icon=":material/play_arrow:")
    right.caption(t("{what} · on **{device}** · the default takes about a minute on 2 CPU cores (3 × 150 "
                    "steps); results are cached by configuration.", what=describe(cfg), device=device))
    if clicked:
        st.session_state["moe_trained"] = cfg        # trained below, then fetched from the cache


def trained_comparison() -> moe.Comparison | None:
    """The comparison of the last trained configuration (a cache hit after the first training)."""
    trained_cfg = st.session_state.get("moe_trained")
    if trained_cfg is None:
        return None
    try:
        return ui.run_with_progress(moe_cache.comparison, trained_cfg, device, True, text=t("Starting…"))
    except Exception:
        st.session_state.pop("moe_trained", None)    # do not retrain on every rerun
        raise


# ============================================================== tab: training
def run_label(mode: str) -> str:
    return tr(moe.MODE_LABELS[mode]) if mode in moe.MODE_LABELS else mode


def training_metrics(comp) -> None:
    cols = st.columns(len(comp.runs))
    for col, (mode, run) in zip(cols, comp.runs.items(), strict=True):
        h = run.history
        tail = max(1, len(h.max_vio) // 10)
        with col.container(border=True):
            st.markdown(f"**{run_label(mode)}**")
            a, b = st.columns(2)
            a.metric(t("Held-out loss"), f"{h.val_loss[-1]:.3f}", help=t("nats per character"))
            b.metric(t("MaxVio (last 10 %)"), f"{h.max_vio[-tail:].mean():.2f}",
                     help=t("max load / mean load − 1 over each step's batch; 0 = balanced"))
            st.caption(t("{rate} tokens/s · {s:.1f} s of steps", rate=ui.fmt_count(h.tokens_per_s), s=h.seconds))


def loss_figure(comp) -> go.Figure:
    fig = go.Figure()
    for i, (mode, run) in enumerate(comp.runs.items()):
        h, color = run.history, ui.PALETTE[i]
        steps = np.arange(1, len(h.loss) + 1)
        fig.add_scatter(x=steps, y=cache.smoothed(h.loss), name=t("{run} (train, smoothed)", run=run_label(mode)),
                        line={"color": color}, hovertemplate=t("step %{x}: %{y:.3f} nats<extra></extra>"))
        fig.add_scatter(x=h.eval_steps, y=h.val_loss, name=t("{run} (held out)", run=run_label(mode)),
                        mode="lines+markers", line={"color": color, "dash": "dot"},
                        hovertemplate=t("step %{x}: held-out %{y:.3f} nats<extra></extra>"))
    return ui.style_figure(fig, x_title=t("training step"), y_title=t("cross-entropy (nats per character)"),
                           height=380)


def maxvio_figure(comp, layer) -> go.Figure:
    fig = go.Figure()
    m = comp.config.moe
    for i, (mode, run) in enumerate(comp.runs.items()):
        vio = run.history.max_vio
        y = vio.mean(1) if layer == "mean" else vio[:, layer]
        fig.add_scatter(x=np.arange(1, len(y) + 1), y=y, name=run_label(mode),
                        line={"color": ui.PALETTE[i]},
                        hovertemplate=t("step %{x}: MaxVio %{y:.2f}<extra></extra>"))
    worst = m.n_routed / m.top_k - 1
    fig.add_hline(y=worst, line_dash="dash", line_color="#868E96",
                  annotation_text=t("all tokens in the same {k} expert(s): {worst:.1f}", k=m.top_k, worst=worst))
    return ui.style_figure(fig, x_title=t("training step"), y_title=t("MaxVio (max load / mean load − 1)"),
                           height=360)


def load_heatmap(comp, layer: int) -> go.Figure:
    runs = list(comp.runs.items())
    fig = make_subplots(rows=len(runs), cols=1, shared_xaxes=True, vertical_spacing=0.06,
                        subplot_titles=[run_label(mode) for mode, _ in runs])
    for row, (_, run) in enumerate(runs, start=1):
        load = run.history.load[:, layer, :]                          # (steps, N)
        rel = load / load.mean(1, keepdims=True)                       # (steps, N)
        fig.add_heatmap(z=rel.T, x=np.arange(1, len(rel) + 1), y=np.arange(rel.shape[1]),
                        customdata=load.T, colorscale="RdBu_r", zmin=0, zmax=2, zmid=1,
                        colorbar={"title": {"text": t("load / mean")}},
                        hovertemplate=t("step %{x}, expert %{y}: %{customdata} pairs "
                                        "(%{z:.2f}× mean)<extra></extra>"), row=row, col=1)
        fig.update_yaxes(title_text=t("expert"), row=row, col=1)
    fig.update_xaxes(title_text=t("training step"), row=len(runs), col=1)
    ui.style_figure(fig, height=230 * len(runs))
    fig.update_layout(margin={"t": 30})
    return fig


def bias_figure(comp, layer: int) -> go.Figure | None:
    run = comp.runs.get("aux_free")
    if run is None:
        return None
    bias = run.history.bias[:, layer, :]                               # (steps, N)
    final_load = run.history.load[-max(1, len(bias) // 10):, layer, :].mean(0)
    colors = ui.category_colors(bias.shape[1])
    fig = go.Figure()
    for e in range(bias.shape[1]):
        fig.add_scatter(x=np.arange(1, len(bias) + 1), y=bias[:, e], name=t("expert {e}", e=e),
                        line={"color": colors[e], "width": 1.5}, showlegend=False,
                        hovertemplate=t("expert {e}, step %{{x}}: b = %{{y:.3f}} (late load {load:.0f})"
                                        "<extra></extra>", e=e, load=final_load[e]))
    return ui.style_figure(fig, x_title=t("training step"), y_title=t("bias b_i (affinity units)"),
                           height=340)


def final_load_figure(comp, layer: int) -> go.Figure:
    fig = go.Figure()
    for i, (mode, run) in enumerate(comp.runs.items()):
        load = run.history.load[:, layer, :]
        tail = load[-max(1, len(load) // 10):].mean(0)
        share = tail / tail.sum()
        fig.add_bar(x=np.arange(len(share)), y=share, name=run_label(mode),
                    marker_color=ui.PALETTE[i],
                    hovertemplate=t("expert %{x}: %{y:.1%} of routed pairs<extra></extra>"))
    n = comp.config.moe.n_routed
    fig.add_hline(y=1 / n, line_dash="dash", line_color="#868E96", annotation_text=t("uniform"),
                  annotation_position="top left")
    fig.update_layout(barmode="group", yaxis_tickformat=".0%")
    return ui.style_figure(fig, x_title=t("routed expert"), y_title=t("share of routed pairs (last 10 % of steps)"),
                           height=340)


def recorded_throughput() -> None:
    results = cache.recorded("moe")
    if not results:
        return
    with st.expander(t("Recorded training throughput (bench/moe.py)"), icon=":material/speed:"):
        for doc in results:
            rows = pd.DataFrame(doc.get("rows", []))
            if rows.empty:
                continue
            st.caption(ui.recorded_caption(doc.get("meta", {})))
            st.dataframe(rows, hide_index=True, width="stretch")


def bias_demo_section(cfg: moe.TrainConfig) -> None:
    """The bias mechanism alone, instantly: a frozen router that prefers low-numbered experts."""
    demo = moe_cache.bias_demo(cfg.moe, cfg.gamma)
    st.markdown(t("**Meanwhile, the bias alone** (no training): 2,048 tokens, a frozen router that favours "
                  "low-numbered experts, and {n} bias updates with γ = {gamma:g}.", n=len(demo.max_vio),
                  gamma=cfg.gamma))
    left, right = st.columns([3, 2])
    rel = demo.load / demo.load.mean(1, keepdims=True)                   # (steps, N)
    fig = go.Figure(go.Heatmap(
        z=rel.T, x=np.arange(1, len(rel) + 1), y=np.arange(rel.shape[1]), customdata=demo.bias.T,
        colorscale="RdBu_r", zmin=0, zmax=2, zmid=1, colorbar={"title": {"text": t("load / mean")}},
        hovertemplate=t("update %{x}, expert %{y}: %{z:.2f}× mean load, bias %{customdata:.3f}"
                        "<extra></extra>")))
    with left:
        ui.plot(ui.style_figure(fig, x_title=t("bias update"), y_title=t("expert"), height=300),
                key="moe_fig_demo_heat")
    fig = go.Figure(go.Scatter(x=np.arange(1, len(rel) + 1), y=demo.max_vio, line={"color": ui.PALETTE[2]},
                               hovertemplate=t("update %{x}: MaxVio %{y:.2f}<extra></extra>")))
    with right:
        ui.plot(ui.style_figure(fig, x_title=t("bias update"), y_title="MaxVio", height=300),  # i18n: skip
                key="moe_fig_demo_vio")


def training_tab(comp, cfg: moe.TrainConfig | None) -> None:
    if comp is None:
        st.info(t("Press **Train the three modes** above: three copies of the same model, same "
                  "batches, differing only in how they balance their experts."), icon=":material/school:")
        if cfg is not None:
            bias_demo_section(cfg)
        recorded_throughput()
        return
    st.caption(t("Trained: {what} · on {device}.", what=describe(comp.config), device=comp.device))
    training_metrics(comp)
    ui.plot(loss_figure(comp), key="moe_fig_loss")
    layer = layer_control(t("Layer"), comp.config.n_layers, "moe_train_layer", with_mean=True, default="mean")
    layer = "mean" if layer is None else layer
    ui.plot(maxvio_figure(comp, layer), key="moe_fig_vio")
    detail = 0 if layer == "mean" else layer
    st.markdown(t("**Load of every expert at every step** ({layer}; blue: underloaded, red: overloaded, "
                  "white: exactly the mean)", layer=layer_label(detail)))
    ui.plot(load_heatmap(comp, detail), key="moe_fig_heat")
    left, right = st.columns(2)
    with left:
        st.markdown(t("**Bias b_i of the aux-free run** ({layer})", layer=layer_label(detail)))
        fig = bias_figure(comp, detail)
        if fig is not None:
            ui.plot(fig, key="moe_fig_bias")
    with right:
        st.markdown(t("**Where the tokens went at the end** ({layer})", layer=layer_label(detail)))
        ui.plot(final_load_figure(comp, detail), key="moe_fig_final")
    recorded_throughput()


# ============================================================== tab: routing of the user's text
def colored_tokens(routing, layer: int, n: int) -> str:
    """Each character on the colour of its top expert; the gate and unknown characters on hover."""
    colors, top, gates = ui.category_colors(n), routing.top_expert[layer], routing.gates[layer]
    tip, unknown = t("{ch} → expert {e} (gate {gate:.2f})"), t("{title} — unknown to the model")   # once, not per character
    marks = []
    for i, ch in enumerate(routing.tokens):
        e, known = int(top[i]), bool(routing.known[i])
        title = tip.format(ch=ui.visible_whitespace(ch), e=e, gate=gates[i, e])
        marks.append(ui.Mark(ch, colors[e], title if known else unknown.format(title=title), dotted=not known))
    return ui.marked_text(marks)


def expert_legend(counts, n: int) -> str:
    colors = ui.category_colors(n)
    return t("Top expert: token count · ") + ui.legend_chips(
        (f"{e}: {counts[e]}", colors[e]) for e in range(n) if counts[e])


def routing_heatmap(routing, layer: int, show: str) -> go.Figure:
    z = routing.gates[layer] if show == "gates" else routing.scores[layer]   # (T, N)
    labels = [ui.visible_whitespace(c) for c in routing.tokens]
    other = routing.scores[layer] if show == "gates" else routing.gates[layer]
    custom = np.stack([np.broadcast_to(np.array(labels)[:, None], z.shape), other.round(3)], -1)
    name, other_name = (t("gate"), t("affinity")) if show == "gates" else (t("affinity"), t("gate"))
    fig = go.Figure(go.Heatmap(
        z=z.T, x=np.arange(len(labels)), y=np.arange(z.shape[1]), customdata=custom.transpose(1, 0, 2),
        colorscale="Viridis", colorbar={"title": {"text": name}},
        hovertemplate=t("token %{{x}} '%{{customdata[0]}}', expert %{{y}}: {name} %{{z:.3f}}, "
                        "{other} %{{customdata[1]}}<extra></extra>", name=name, other=other_name)))
    every = max(1, len(labels) // 100)
    fig.update_xaxes(tickmode="array", tickvals=list(range(0, len(labels), every)),
                     ticktext=labels[::every], tickangle=0)
    return ui.style_figure(fig, x_title=t("token (character) position"), y_title=t("routed expert"),
                           height=max(260, 14 * z.shape[1] + 120))


def model_choice(comp, key: str) -> str:
    modes = list(comp.runs)
    if len(modes) == 1:
        return modes[0]
    labels = {mode: run_label(mode) for mode in modes}
    return st.segmented_control(t("Model"), modes, default="aux_free" if "aux_free" in modes else modes[0],
                                format_func=labels.get, key=key) or modes[0]


def routing_tab(comp, trained: bool) -> None:
    if not trained:
        st.caption(t("Untrained model (initial weights, bias 0): routing before any learning. "
                     "Train above to see how routing changes."))
    mode = model_choice(comp, "moe_route_model")
    c1, c2 = st.columns([1, 1])
    layer = layer_control(t("Layer"), comp.config.n_layers, "moe_route_layer", where=c1) or 0
    shows = {"gates": t("gate weights g_i"), "affinities": t("affinities s_i")}
    show = c2.segmented_control(t("Show"), list(shows), default="gates", format_func=shows.get,
                                key="moe_route_show") or "gates"
    text = st.text_area(t("Your text"), DEFAULT_TEXT, key="moe_text", height=90,
                        max_chars=moe.MAX_TEXT_CHARS * 4)
    routing = moe_cache.route_text(comp.config, device, trained, mode, text)
    if routing.truncated:
        st.warning(t("Text is {n:,} characters; only the first {cap:,} are routed.", n=routing.original_chars,
                     cap=moe.MAX_TEXT_CHARS), icon=":material/content_cut:")
    n = comp.config.moe.n_routed
    st.markdown(colored_tokens(routing, layer, n), unsafe_allow_html=True)
    st.markdown(expert_legend(routing.top_counts[layer], n), unsafe_allow_html=True)
    if not routing.known.all():
        st.caption(t("Dotted underline: a character outside the model's vocabulary; the model "
                     "reads all of them as one 'unknown' token."))
    ui.plot(routing_heatmap(routing, layer, show), key="moe_fig_route")
    st.caption(t("This text in layer {n}: MaxVio {vio:.2f}; every token has {k} non-zero gates summing to "
                 "{scale:g}.", n=layer + 1, vio=routing.max_vio[layer], k=comp.config.moe.top_k,
                 scale=comp.config.moe.route_scale))


# ============================================================== tab: specialisation
def specialisation_table(spec) -> pd.DataFrame:
    rows = []
    for p in spec.experts:
        favourites = ", ".join(f"'{ui.visible_whitespace(c)}' {rate:.0%} (×{lift:.1f})" for c, rate, lift in p.top) or "—"
        rows.append({t("expert"): p.expert, t("load share"): p.share, t("favourite characters"): favourites})
    return pd.DataFrame(rows)


def class_heatmap(spec) -> go.Figure:
    fig = go.Figure(go.Heatmap(
        z=spec.class_rate, x=np.arange(spec.class_rate.shape[1]), y=[tr(c) for c in spec.classes],
        colorscale="Viridis", colorbar={"title": {"text": t("P(chosen)")}},
        hovertemplate=t("%{y} → expert %{x}: %{z:.1%} of these characters<extra></extra>")))
    return ui.style_figure(fig, x_title=t("routed expert"), y_title=t("character class"), height=300)


def specialisation_tab(comp, trained: bool) -> None:
    mode = model_choice(comp, "moe_spec_model")
    layer = layer_control(t("Layer"), comp.config.n_layers, "moe_spec_layer") or 0
    specs = moe_cache.specialisation(comp.config, device, trained, mode)
    spec = specs[layer]
    st.caption(t("Routing of {n:,} held-out Wikipedia characters. Favourite characters: share of that "
                 "character's occurrences sent to the expert, and its lift (×: how much more often than the "
                 "expert's average).", n=spec.tokens))
    st.dataframe(specialisation_table(spec), hide_index=True, width="stretch",
                 column_config={t("load share"): st.column_config.ProgressColumn(
                     t("load share"), format="percent", min_value=0.0,
                     max_value=float(max(p.share for p in spec.experts)))})
    ui.plot(class_heatmap(spec), key="moe_fig_classes")


# ============================================================== tab: scale
def scale_tab() -> None:
    presets = list(MOE_PRESETS)
    c1, c2 = st.columns(2)
    preset = c1.selectbox(t("Model"), presets, index=presets.index("deepseek-v3"), key="moe_scale_preset",
                          format_func=MOE_PRESETS.get)
    context = c2.select_slider(t("Context for attention FLOPs (tokens)"), [512, 1024, 2048, 4096, 8192,
                               16384, 32768, 65536, 131072], value=4096, key="moe_scale_context")
    view = moe_cache.scale(preset, context)
    p = view.params
    cols = st.columns(5)
    cols[0].metric(t("Routed experts"), view.n_routed, help=t("per MoE layer, + {n} shared", n=view.n_shared))
    cols[1].metric(t("Experts per token"), f"{view.top_k} + {view.n_shared}", help=t("routed + shared"))
    cols[2].metric(t("MoE layers"), view.moe_layers, help=t("+ {n} dense layers first", n=view.dense_layers))
    cols[3].metric(t("Total parameters"), ui.fmt_count(p["total"]))
    cols[4].metric(t("Active per token"), ui.fmt_count(p["active"]),
                   help=t("{n} without the input embedding", n=ui.fmt_count(p["active_no_embedding"])))
    ui.plot(flops_figure(view), key="moe_fig_flops")
    routed, all_experts = sum(view.flops.values()), sum(view.flops_all_experts.values())
    st.markdown(t(
        "- Each token uses **{k} of {n}** routed experts ({share} of the routed weights) plus {shared} shared; "
        "one expert has {expert} parameters.\n"
        "- Active parameters are **{active_share}** of the total: {active} of {total}.\n"
        "- Forward compute per token at {context:,} tokens of context: **{routed:,.1f} GFLOP** as routed, "
        "against {all:,.0f} GFLOP if every expert ran: **{ratio:.1f}× less**.\n"
        "- A token may choose among **{sets:.2g}** expert sets per layer (C({n}, {k})); group-limited routing "
        "confines it to {groups} of {n_groups} groups (nodes), so its activations cross to at most {groups} "
        "nodes.", k=view.top_k, n=view.n_routed, share=ui.fmt_pct(view.top_k / view.n_routed),
        shared=view.n_shared, expert=ui.fmt_count(view.expert_params),
        active_share=ui.fmt_pct(p["active"] / p["total"]), active=ui.fmt_count(p["active"]),
        total=ui.fmt_count(p["total"]), context=context, routed=routed / 1e9, all=all_experts / 1e9,
        ratio=all_experts / routed, sets=view.combinations, groups=view.topk_group, n_groups=view.n_group))


def flops_figure(view) -> go.Figure:
    fig = go.Figure()
    bars = (t("as routed (top-{k})", k=view.top_k), t("all {n} experts", n=view.n_routed))
    for i, part in enumerate(view.flops):
        values = [view.flops[part] / 1e9, view.flops_all_experts[part] / 1e9]
        fig.add_bar(x=values, y=list(bars), name=tr(part), orientation="h", marker_color=ui.PALETTE[i],
                    hovertemplate=t("{part}: %{{x:,.1f}} GFLOP<extra></extra>", part=tr(part)))
    fig.update_layout(barmode="stack")
    return ui.style_figure(fig, x_title=t("forward GFLOP per token"), y_title="", height=280)


# ============================================================== the page
cfg = None
with ui.guard():
    cfg = settings()
with ui.guard():
    if cfg is not None:
        train_button(cfg)

comparison = None
with ui.guard():
    comparison = trained_comparison()
if comparison is not None and cfg is not None and comparison.config != cfg:
    st.caption(t("Showing the last trained run; press **Train** to train the new settings."))

tabs = st.tabs([t("Balancing during training"), t("Routing of your text"), t("Expert specialisation"),
                t("DeepSeek-V3 at scale")])
with tabs[0], ui.guard():
    training_tab(comparison, cfg)
shown, trained = comparison, comparison is not None
if shown is None and cfg is not None:
    with ui.guard():
        shown = moe_cache.comparison(cfg, device, False)
with tabs[1], ui.guard():
    if shown is None:
        st.info(t("Fix the settings above to route text."))
    else:
        routing_tab(shown, trained)
with tabs[2], ui.guard():
    if shown is None:
        st.info(t("Fix the settings above to see what experts prefer."))
    else:
        specialisation_tab(shown, trained)
with tabs[3], ui.guard():
    scale_tab()

ui.page_footer(
    t("""
**Training tab.** The three runs start from the same weights and see the same batches; only
the balancing differs. *MaxVio* (max load / mean load − 1, Wang et al. 2024) is 0 when every
expert gets the same number of (token, expert) pairs and N/K − 1 when all tokens go to the
same K experts. In the heatmap every column is one step: red experts are overloaded, blue
ones underloaded. The aux-free run's bias b_i falls for overloaded experts and rises for
underloaded ones by γ per step; only differences between biases matter (their mean drifts).

**Routing tab.** Each character is coloured by the expert with its largest gate; the heatmap
shows the gate weights g_i (zero for experts not chosen; the K non-zero ones sum to the route
scale) or the raw sigmoid affinities s_i. The bias chose the experts, but the gates come from
s_i alone. The model reads characters, so routing reflects spelling and position, not words.

**Specialisation tab.** For a held-out sample: what share of each character's occurrences
went to an expert, and the lift over that expert's average share.

**Scale tab.** FLOPs count 2 per multiply-add of the weight matrices a token uses, plus
attention over the given context; norms, softmax and the embedding lookup are left out.
On a CPU the sidebar device is a CPU, and timings are CPU timings.
"""),
    [
        ("DeepSeek-AI 2024, DeepSeek-V3 Technical Report, section 2.1.2 (auxiliary-loss-free "
         "balancing, sequence-wise loss, node-limited routing)", "https://arxiv.org/abs/2412.19437"),
        ("Wang et al. 2024, Auxiliary-Loss-Free Load Balancing Strategy for Mixture-of-Experts, "
         "sections 3 and 4.1 (bias update, MaxVio)", "https://arxiv.org/abs/2408.15664"),
        ("Dai et al. 2024, DeepSeekMoE, section 3 (fine-grained and shared experts, balance losses)",
         "https://arxiv.org/abs/2401.06066"),
        ("Fedus et al. 2021, Switch Transformers, section 2.2 (auxiliary load-balancing loss)",
         "https://arxiv.org/abs/2101.03961"),
        ("Lepikhin et al. 2020, GShard, section 2.2 (auxiliary loss, expert capacity)",
         "https://arxiv.org/abs/2006.16668"),
        ("Shazeer et al. 2017, Outrageously Large Neural Networks (sparsely-gated MoE)",
         "https://arxiv.org/abs/1701.06538"),
        ("DeepSeek-V3 inference/model.py: Gate (group scores, route scale)",
         "https://github.com/deepseek-ai/DeepSeek-V3/blob/main/inference/model.py"),
    ],
)
