"""Training memory: ZeRO, activations and checkpointing, mixed precision and FP8 — calculated, then measured."""

from __future__ import annotations

import json
import math
from dataclasses import replace

import pandas as pd
import plotly.graph_objects as go
import streamlit as st
from plotly.subplots import make_subplots

from app import cache, ui
from app.cache import llm as llm_cache
from app.cache import training_memory as training_memory_cache
from app.i18n import N_, t, tr
from core import fp8
from core import memory as mem
from core.configs import PRESETS
from core.measure import activations, llm_runs, zero

GIB = mem.GIB
PART_LABELS = {"params": N_("Parameters"), "grads": N_("Gradients"), "optimizer": N_("Optimizer states"),
               "activations": N_("Activations"), "kv_cache": N_("KV cache")}
PART_COLORS = {"params": ui.PALETTE[0], "grads": ui.PALETTE[1], "optimizer": ui.PALETTE[2],
               "activations": ui.PALETTE[3], "kv_cache": ui.PALETTE[4]}
RECIPE_LABELS = {"fp32": N_("fp32 (4+4+8 B/param)"), "mixed-adam": N_("mixed 16-bit + fp32 master (2+2+12)"),
                 "bf16": N_("pure bf16 (2+2+4)"), "fp8-deepseek": N_("DeepSeek-V3 FP8 (1+4+8)")}
STRATEGY_LABELS = {"none": N_("none (store everything)"), "selective": N_("selective (attention core)"),
                   "full": N_("full (every layer)"), "sqrt": N_("√n segments (Chen et al.)")}
STRATEGY_SHORT = {"none": N_("none"), "selective": N_("selective"), "full": N_("full"), "sqrt": N_("sqrt")}
ROLE_STYLE = {  # checkpoint diagram: role -> (label, color, symbol)
    "kept": (N_("activations kept"), ui.PALETTE[2], "circle"),
    "input kept": (N_("only the input kept (checkpoint)"), ui.PALETTE[0], "square"),
    "dropped": (N_("activations dropped"), "#CED4DA", "circle-open"),
    "partly recomputed": (N_("kept except the attention core"), ui.PALETTE[5], "circle"),
    "recomputed": (N_("forward run again"), ui.PALETTE[3], "diamond"),
    "backward": (N_("backward"), ui.PALETTE[8], "circle"),
}
BLOCK_NAMES = {"attention": N_("attention"), "mlp": N_("MLP"), "layernorm": N_("LayerNorm"), "layer": N_("layer"),
               "head": N_("output head")}
KIND_NAMES = {"value": N_("value"), "mask": N_("mask"), "stat": N_("statistics")}
CATEGORY_NAMES = {"activation": N_("activation"), "dropout mask": N_("dropout mask"),
                  "LayerNorm statistics": N_("LayerNorm statistics"), "softmax statistics": N_("softmax statistics"),  # i18n: skip
                  "other": N_("other")}
DEFAULT_TEXT = ("The Transformer replaces recurrence with attention. Training it keeps every "  # i18n: skip (MiniLM's English input)
                "layer's activations until the backward pass needs them, which is why memory, "
                "not arithmetic, often decides how large a batch or a context can be.")

ui.page_header(
    t("Training memory"),
    t("What one GPU holds while a model trains — **parameters, gradients, optimizer states, "
      "activations, KV cache** — from the ZeRO and Megatron papers' formulas, for real model "
      "configs. Then the **Measure it** tab runs a real transformer, real `torch.distributed` "
      "workers and a real pretrained LLM (SmolLM2-135M, fine-tuned for a few steps) on this machine and "
      "puts the bytes they actually keep beside the prediction; the **FP8** tab measures what FP8 weights "
      "do to that LLM's perplexity."),
)
device = cache.device_name()


# ---------------------------------------------------------------- state (URL <-> widgets)
def init_state() -> list[str]:
    """Fill missing widget values from the URL (validated in core); returns the URL's problems."""
    items = tuple(sorted((str(k), str(v)) for k, v in st.query_params.to_dict().items()))
    plan, problems = training_memory_cache.plan_from_query(items)
    for field in training_memory_cache.plan_fields():
        st.session_state.setdefault(f"tm_{field}", getattr(plan, field))
    return problems


def plan_widgets() -> mem.TrainingPlan:
    """The knobs; returns the plan they describe."""
    c = st.columns(4)
    presets = {k: PRESETS[k].name if k in PRESETS else t("Custom…") for k in mem.PRESET_CHOICES}
    c[0].selectbox(t("Model"), mem.PRESET_CHOICES, key="tm_preset", format_func=presets.get)
    recipes = {k: tr(v) for k, v in RECIPE_LABELS.items()}
    c[1].selectbox(t("Precision recipe"), list(mem.RECIPES), key="tm_recipe", format_func=recipes.get,
                   help="\n".join(f"- **{recipes[k]}**: {tr(r.label)}; {tr(r.source)}." for k, r in mem.RECIPES.items()))
    c[2].select_slider(t("ZeRO stage"), options=list(mem.ZERO_STAGES), key="tm_zero_stage",
                       help=t("0: replicate all · 1: shard optimizer states · 2: + gradients · 3: + parameters"))
    c[3].number_input(t("Data-parallel GPUs (N)"), 1, mem.MAX_DP, step=1, key="tm_dp")
    c = st.columns(4)
    c[0].number_input(t("Micro-batch (sequences)"), 1, mem.MAX_BATCH, step=1, key="tm_micro_batch")
    c[1].number_input(t("Sequence length (tokens)"), 1, mem.MAX_SEQ, step=512, key="tm_seq")
    c[2].number_input(t("Tensor-parallel degree (t)"), 1, mem.MAX_TP, step=1, key="tm_tp")
    c[3].selectbox(t("Activation checkpointing"), mem.CHECKPOINT_STRATEGIES, key="tm_recompute",
                   format_func={k: tr(v) for k, v in STRATEGY_LABELS.items()}.get)
    c = st.columns(4)
    c[0].toggle(t("Sequence parallelism"), key="tm_sp", help=t("Needs t > 1 (Korthikanti et al. section 4.2.2)."))
    c[1].toggle("FlashAttention", key="tm_flash", help=t("No s×s attention matrix is stored."))  # i18n: skip
    c[2].toggle("Dropout", key="tm_dropout", help=t("The paper's layer has dropout; Llama-style training does not."))  # i18n: skip
    c[3].toggle(t("Offload optimizer to CPU"), key="tm_offload", help=t("ZeRO-Offload: optimizer states in host memory."))
    with st.expander(t("KV cache (generation on the same GPU, e.g. RL rollouts) and custom model")):
        c = st.columns(4)
        c[0].number_input(t("Concurrent requests"), 0, mem.MAX_KV_REQUESTS, step=1, key="tm_kv_requests")
        c[1].number_input(t("Tokens per request"), 1, mem.MAX_SEQ, step=1024, key="tm_kv_context")
        st.caption(t("Custom model (used when Model is *Custom…*): a Llama-style decoder."))
        c = st.columns(6)
        for col, (field, label, hi) in zip(c, (
                ("hidden", t("Hidden"), mem.MAX_HIDDEN), ("layers", t("Layers"), mem.MAX_LAYERS),
                ("heads", t("Heads"), mem.MAX_HEADS), ("kv_heads", t("KV heads"), mem.MAX_HEADS),
                ("ffn", t("MLP width"), mem.MAX_FFN), ("vocab", t("Vocabulary"), mem.MAX_VOCAB)), strict=True):
            col.number_input(label, 1, hi, step=1, key=f"tm_{field}")
    return mem.TrainingPlan(**{f: st.session_state[f"tm_{f}"] for f in training_memory_cache.plan_fields()})


# ---------------------------------------------------------------- per GPU
def stage_figure(plan: mem.TrainingPlan) -> go.Figure:
    """One stacked bar per ZeRO stage at this N, against common GPU capacities."""
    results = [training_memory_cache.plan_memory(replace(plan, zero_stage=s)) for s in mem.ZERO_STAGES]
    names = [t("ZeRO-{s} (yours)", s=s) if s == plan.zero_stage else f"ZeRO-{s}" for s in mem.ZERO_STAGES]  # i18n: skip
    fig = go.Figure()
    for part, label in PART_LABELS.items():
        values = [r["parts"][part] / GIB for r in results]
        if part == "kv_cache" and not any(values):
            continue
        fig.add_bar(x=names, y=values, name=tr(label), marker_color=PART_COLORS[part],
                    hovertemplate="%{x}: %{y:,.2f} GiB<extra>" + tr(label) + "</extra>")  # i18n: skip
    add_capacities(fig)
    fig.update_layout(barmode="stack", legend={"traceorder": "normal"})
    ui.style_figure(fig, x_title=t("ZeRO stage at N = {n:,} data-parallel GPUs", n=plan.dp),
                    y_title=t("memory per GPU (GiB)"), height=430)
    return fig.update_layout(margin={"r": 60})


def add_capacities(fig: go.Figure, log_y: bool = False) -> None:
    """Dotted lines at common GPU sizes, labelled in the right margin (clear of the data).
    Plotly places annotations on a log axis in log10 units; shapes take data values."""
    for cap in mem.GPU_CAPACITIES_GIB:
        fig.add_hline(y=cap, line_dash="dot", line_color="#868E96")
        fig.add_annotation(x=1.0, xref="paper", xanchor="left", y=math.log10(cap) if log_y else cap,
                           yref="y", showarrow=False, text=f" {cap} GB",
                           font={"size": 11, "color": "#868E96"})


def log_axes(fig: go.Figure, xs) -> None:
    """Log-log with the swept values as x ticks and powers of ten on y."""
    xs = sorted({int(x) for x in xs})
    fig.update_xaxes(type="log", tickvals=xs, ticktext=[f"{x:,}" for x in xs])
    fig.update_yaxes(type="log", dtick=1)


def breakdown_rows(plan: mem.TrainingPlan, result: dict) -> list[dict]:
    rec, acts = mem.RECIPES[plan.recipe], result["activations"]
    n = " / N"
    tp = " / t" if plan.tp > 1 else ""
    rows = [
        (N_("Parameters"), result["parts"]["params"], f"{rec.param_bytes:g} B × Ψ{n if plan.zero_stage >= 3 else ''}{tp}"),
        (N_("Gradients"), result["parts"]["grads"], f"{rec.grad_bytes:g} B × Ψ{n if plan.zero_stage >= 2 else ''}{tp}"),
        (N_("Optimizer states"), result["parts"]["optimizer"], t("in host memory") if plan.offload
         else f"K = {rec.optimizer_bytes:g} B × Ψ{n if plan.zero_stage >= 1 else ''}{tp}"),
        (N_("Activations: layers (kept for backward)"), acts["stored"],
         t("{strategy}: L layers", strategy=tr(STRATEGY_SHORT[plan.recompute]))),
        (N_("Activations: recompute working set"), acts["peak_layers"] - acts["stored"], t("one segment, in backward")),
        (N_("Activations: output head + fp32 logits"), acts["head"], "4sbh/t (1 + v/h)"),
        (N_("Activations: embedding dropout mask"), acts["embedding"], "sbh" if plan.dropout else t("no dropout")),
        (N_("KV cache"), result["parts"]["kv_cache"],
         t("{requests:,} × {tokens:,} tokens", requests=plan.kv_requests, tokens=plan.kv_context)),
        (N_("Total on the GPU"), result["total"], ""),
        (N_("Offloaded to host memory"), result["offloaded"], t("per rank")),
    ]
    return [{"part": p, "bytes": b, "GiB": b / GIB, "GB": b / 1e9, "how": how} for p, b, how in rows]  # i18n: skip


def render_per_gpu(plan: mem.TrainingPlan, result: dict) -> None:
    c = st.columns(5)
    c[0].metric(t("Parameters"), ui.fmt_count(result["n_params"]),
                help=t("active per token: {n}", n=ui.fmt_count(result["n_active"])))
    c[1].metric(t("Per GPU"), ui.fmt_bytes(result["total"], binary=True))
    states = sum(result["parts"][k] for k in ("params", "grads", "optimizer"))
    c[2].metric(t("Model states"), ui.fmt_bytes(states, binary=True))
    c[3].metric(t("Activations"), ui.fmt_bytes(result["parts"]["activations"], binary=True))
    fits = [cap for cap, ok in result["fits"].items() if ok]
    c[4].metric(t("Smallest GPU that fits"), f"{fits[0]} GB" if fits else t("none ≤ 141 GB"))
    ui.plot(stage_figure(plan), key="tm_fig_stages")
    for note in result["notes"]:
        st.caption(f":material/info: {tr(note)}")
    rows = breakdown_rows(plan, result)
    table = pd.DataFrame([{t("part"): tr(r["part"]), "GiB": r["GiB"], "GB": r["GB"], t("how"): r["how"]} for r in rows])  # i18n: skip
    st.dataframe(table, hide_index=True, width="stretch",
                 column_config={"GiB": st.column_config.NumberColumn(format="%.3f"),  # i18n: skip
                                "GB": st.column_config.NumberColumn(format="%.3f")})
    doc = {"plan": training_memory_cache.plan_query(plan), "model": result["model"], "n_params": result["n_params"],
           "breakdown_bytes": {r["part"]: r["bytes"] for r in rows}}
    c = st.columns(2)
    c[0].download_button(t("Download CSV"), pd.DataFrame(rows).to_csv(index=False), "training_memory.csv",
                         "text/csv", key="tm_dl_csv")
    c[1].download_button(t("Download JSON"), json.dumps(doc, indent=1), "training_memory.json",
                         "application/json", key="tm_dl_json")
    with st.expander(t("Activations of one layer, term by term (Korthikanti et al. 2022, section 4.1)")):
        terms = training_memory_cache.plan_terms(plan)
        total = sum(term.bytes for term in terms) or 1.0
        per_layer, share = t("MiB per layer"), t("share")
        st.dataframe(pd.DataFrame([{t("tensor"): tr(term.name), t("block"): tr(BLOCK_NAMES[term.block]),
                                    t("kind"): tr(KIND_NAMES[term.kind]), per_layer: term.bytes / 2**20,
                                    share: term.bytes / total} for term in terms]), hide_index=True, width="stretch",
                     column_config={per_layer: st.column_config.NumberColumn(format="%.2f"),
                                    share: st.column_config.ProgressColumn(min_value=0, max_value=1)})


# ---------------------------------------------------------------- sweeps
def dp_figure(plan: mem.TrainingPlan) -> go.Figure:
    df = pd.DataFrame(training_memory_cache.dp_sweep(plan))
    fig = go.Figure()
    for stage, part in df.groupby("zero_stage"):
        fig.add_scatter(x=part["dp"], y=part["total"] / GIB, mode="lines+markers", name=f"ZeRO-{stage}",  # i18n: skip
                        customdata=part["model_states"] / GIB,
                        hovertemplate=t("N = %{x:,}: %{y:,.2f} GiB per GPU (model states %{customdata:,.2f} GiB)")
                        + "<extra>ZeRO-" + str(stage) + "</extra>")
    add_capacities(fig, log_y=True)
    log_axes(fig, df["dp"])
    ui.style_figure(fig, x_title=t("data-parallel GPUs N (log scale)"),
                    y_title=t("memory per GPU, activations included (GiB, log)"), height=400)
    return fig.update_layout(margin={"r": 60})


def seq_figure(plan: mem.TrainingPlan) -> go.Figure:
    df = pd.DataFrame(training_memory_cache.seq_sweep(plan))
    fig = go.Figure()
    hover = t("%{x:,} tokens: %{y:,.2f} GiB, recompute +%{customdata:.1f} % of step FLOPs")
    for i, (label, part) in enumerate(df.groupby("strategy", sort=False)):
        base, flash = label.removesuffix(" + FlashAttention"), label.endswith(" + FlashAttention")  # i18n: skip
        name = tr(STRATEGY_SHORT[base]) + (" + FlashAttention" if flash else "")  # i18n: skip
        fig.add_scatter(x=part["seq"], y=part["activations"] / GIB, mode="lines+markers", name=name,
                        line={"dash": "dot" if flash else "solid",
                              "color": ui.PALETTE[(i // 2) % len(ui.PALETTE)]},
                        customdata=100 * part["recompute_fraction"],
                        hovertemplate=hover + "<extra>" + name + "</extra>")
    log_axes(fig, df["seq"])
    return ui.style_figure(fig, x_title=t("sequence length (tokens, log scale)"),
                           y_title=t("activations per GPU (GiB, log)"), height=430)


# ---------------------------------------------------------------- checkpointing diagram
def checkpoint_figure(layers: int, strategy: str) -> go.Figure:
    graph = training_memory_cache.checkpoint_graph(training_memory_cache.checkpoint_plan(layers, strategy))
    node_rows, edges = ui.graph_points(graph, ("role", "row", "layer"))
    xs, ys = [], []
    for (x0, y0), (x1, y1) in edges:
        xs += [x0, x1, None]
        ys += [y0, y1, None]
    fig = go.Figure(go.Scatter(x=xs, y=ys, mode="lines", line={"color": "#ADB5BD", "width": 1},
                               hoverinfo="skip", showlegend=False))
    nodes = pd.DataFrame(node_rows, columns=["id", "x", "y", "role", "row", "layer"])
    for role, part in nodes.groupby("role", sort=False):
        label, color, symbol = ROLE_STYLE[role]
        fig.add_scatter(x=part["x"], y=part["y"], mode="markers", name=tr(label),
                        marker={"color": color, "symbol": symbol, "size": 11 if layers <= 48 else 7,
                                "line": {"color": color, "width": 2}},
                        customdata=part["layer"] + 1,
                        hovertemplate=t("layer %{customdata}: ") + tr(label) + "<extra></extra>")
    fig.update_yaxes(tickvals=[0, -1, -2], ticktext=[t("forward"), t("recompute"), t("backward")],
                     range=[-2.6, 0.6])
    return ui.style_figure(fig, x_title=t("layer (the chain, input → output)"), y_title=t("pass"),
                           height=300)


def render_checkpointing(plan: mem.TrainingPlan, result: dict) -> None:
    cfg_layers = result["activations"]["plan"].layers
    views = {"yours": t("your setting ({strategy})", strategy=tr(STRATEGY_SHORT[plan.recompute]))} | {
        k: tr(STRATEGY_SHORT[k]) for k in mem.CHECKPOINT_STRATEGIES}
    view = st.radio(t("Draw"), ["yours", *mem.CHECKPOINT_STRATEGIES], horizontal=True, key="tm_ck_view",
                    format_func=views.get)
    strategy = plan.recompute if view == "yours" else view
    st.markdown(t("**{strategy}** along {layers} layers: the forward pass runs left to right, the backward pass "
                  "right to left; a layer whose activations were dropped runs forward again (from the nearest "
                  "kept input) just before its backward.", strategy=tr(STRATEGY_LABELS[strategy]), layers=cfg_layers))
    ui.plot(checkpoint_figure(cfg_layers, strategy), key="tm_fig_ckpt")
    rows = training_memory_cache.strategy_table(plan)
    kept, peak, extra = (t("kept after forward (GiB)"), t("peak in backward, head included (GiB)"),
                         t("extra compute (share of step FLOPs)"))
    st.dataframe(pd.DataFrame([{
        t("strategy"): tr(STRATEGY_LABELS[r["strategy"]]), kept: r["stored"] / GIB, peak: r["peak"] / GIB,
        t("layers run again"): r["recomputed_layers"], extra: r["recompute_fraction"]} for r in rows]),
        hide_index=True, width="stretch",
        column_config={kept: st.column_config.NumberColumn(format="%.2f"),
                       peak: st.column_config.NumberColumn(format="%.2f"),
                       extra: st.column_config.NumberColumn(format="percent")})
    st.caption(t("Extra compute: recomputed forward FLOPs over one training step (forward + backward "
                 "= 3 forwards, output head included). Full recomputation costs one extra forward "
                 "(~33 %); √n segments skip the last segment; selective recomputation re-runs only "
                 "QKᵀ, softmax, dropout and ·V."))


# ---------------------------------------------------------------- measure: activations
def measure_widgets() -> tuple[activations.TinyGPTConfig, str]:
    d = activations.TinyGPTConfig()
    c = st.columns(5)
    hidden = c[0].number_input(t("Hidden h"), 8, activations.MAX_HIDDEN, d.hidden, step=64, key="tm_m_hidden")
    heads = c[1].number_input(t("Heads a"), 1, activations.MAX_HEADS, d.heads, key="tm_m_heads")
    layers = c[2].number_input(t("Layers L"), 1, activations.MAX_LAYERS, d.layers, key="tm_m_layers")
    seq = c[3].number_input(t("Sequence s"), 1, activations.MAX_SEQ, d.seq, step=64, key="tm_m_seq")
    batch = c[4].number_input(t("Batch b"), 1, activations.MAX_BATCH, d.batch, key="tm_m_batch")
    c = st.columns(4)
    dropout = c[0].number_input("Dropout", 0.0, 0.9, d.dropout, step=0.05, key="tm_m_dropout")  # i18n: skip
    attention = c[1].selectbox(t("Attention"), activations.ATTENTION_KINDS, key="tm_m_attention",
                               format_func={"eager": t("explicit softmax (paper)"), "sdpa": t("fused SDPA")}.get)
    dtype = c[2].selectbox("dtype", activations.DTYPES, index=activations.DTYPES.index("bfloat16"), key="tm_m_dtype")
    ckpt = c[3].selectbox(t("Checkpointing"), activations.CHECKPOINT_MODES, key="tm_m_ckpt",
                          format_func={"none": t("none"), "full": t("every layer"), "sqrt": t("√n segments")}.get)
    cfg = activations.TinyGPTConfig(hidden=int(hidden), heads=int(heads), layers=int(layers), seq=int(seq),
                           batch=int(batch), dropout=float(dropout), attention=attention, dtype=dtype)
    return cfg, ckpt


def render_measurement(m: activations.ActivationMeasurement) -> None:
    c = st.columns(4)
    c[0].metric(t("Measured: saved for backward"), ui.fmt_bytes(m.measured_bytes, binary=True))
    c[1].metric(t("Paper formula (16-bit)"), ui.fmt_bytes(m.predicted_paper, binary=True))
    c[2].metric(t("Formula at {dtype}", dtype=m.config.dtype), ui.fmt_bytes(m.predicted_dtype, binary=True),
                delta=t("measured {d:+.1%}", d=m.diff_vs_dtype), delta_color="off")
    c[3].metric(t("Formula + what it leaves out"), ui.fmt_bytes(m.predicted_explained, binary=True),
                delta=t("measured {d:+.2%}", d=m.diff_vs_explained), delta_color="off")
    cats = sorted(set(m.measured_by_category) | {k for k, v in m.predicted_by_category.items() if v})
    names = [tr(CATEGORY_NAMES[k]) if k in CATEGORY_NAMES else k for k in cats]
    predicted, measured = t("predicted"), t("measured")
    fig = go.Figure()
    fig.add_bar(x=names, y=[m.predicted_by_category.get(k, 0) / 2**20 for k in cats], name=predicted,
                hovertemplate="%{x}: %{y:,.2f} MiB<extra>" + predicted + "</extra>")  # i18n: skip
    fig.add_bar(x=names, y=[m.measured_by_category.get(k, 0) / 2**20 for k in cats], name=measured,
                hovertemplate="%{x}: %{y:,.2f} MiB<extra>" + measured + "</extra>")  # i18n: skip
    ui.plot(ui.style_figure(fig, x_title=t("what is saved"), y_title="MiB", height=300), key="tm_fig_measure")  # i18n: skip
    for line in m.explanation:
        st.markdown(f"- {tr(line)}")
    if m.cuda_peak_bytes is not None:
        st.caption(t("CUDA allocator: {held} held after the forward pass, peak {peak} over forward + backward "
                     "(predicted peak {predicted}).", held=ui.fmt_bytes(m.cuda_held_bytes, binary=True),
                     peak=ui.fmt_bytes(m.cuda_peak_bytes, binary=True),
                     predicted=ui.fmt_bytes(m.predicted_peak, binary=True)))
    table = pd.DataFrame([{"category": k, "predicted_bytes": m.predicted_by_category.get(k, 0),
                           "measured_bytes": m.measured_by_category.get(k, 0)} for k in cats])
    st.download_button(t("Download predicted vs measured (CSV)"), table.to_csv(index=False),
                       "activations_measured.csv", "text/csv", key="tm_m_dl")
    with st.expander(t("The {n} largest of {total} saved tensors", n=len(m.tensors), total=m.n_saved)):
        st.dataframe(saved_tensors_table(m.tensors, "KiB", 1024), hide_index=True, width="stretch")  # i18n: skip


def saved_tensors_table(tensors, unit: str, size: int) -> pd.DataFrame:
    """The largest saved tensors (core.measure.activations.SavedTensor) as a table, bytes in ``unit``."""
    return pd.DataFrame([{t("made by"): x.producer, t("shape"): str(x.shape), "dtype": x.dtype, unit: x.nbytes / size,
                          t("category"): tr(CATEGORY_NAMES[x.category]) if x.category in CATEGORY_NAMES else x.category}
                         for x in tensors])


def render_recorded() -> None:
    docs = cache.recorded("memory")
    if not docs:
        st.caption(t("No recorded benchmark yet (run `python -m bench.memory`)."))
        return
    for doc in docs:
        with st.expander(t("Recorded: bench/memory on {device}", device=doc["meta"]["device"].get("name", "?"))):
            st.caption(ui.recorded_caption(doc["meta"]))
            st.dataframe(pd.DataFrame(doc.get("activations", [])), hide_index=True, width="stretch")
            for line in doc.get("summary", []):
                st.markdown(f"- {line}")


# ---------------------------------------------------------------- measure: ZeRO workers
def zero_widgets() -> zero.ZeroRunConfig:
    c = st.columns(4)
    world = c[0].number_input(t("Ranks (world size)"), 1, zero.MAX_WORLD, 2, key="tm_z_world")
    hidden = c[1].number_input(t("Hidden"), 8, zero.MAX_RUN_HIDDEN, 128, step=64, key="tm_z_hidden")
    layers = c[2].number_input(t("Layers"), 1, zero.MAX_RUN_LAYERS, 2, key="tm_z_layers")
    steps = c[3].number_input(t("Steps per strategy"), 1, zero.MAX_STEPS, 3, key="tm_z_steps")
    c = st.columns([3, 1, 1])
    strategies = c[0].multiselect(t("Strategies"), zero.STRATEGIES, default=list(zero.STRATEGIES),
                                  format_func={k: tr(v) for k, v in zero.STRATEGY_LABELS.items()}.get,
                                  key="tm_z_strategies")
    devices = ["cpu", "cuda"] if device.startswith("cuda") else ["cpu"]
    dev = c[1].selectbox(t("Ranks on"), devices, key="tm_z_device",
                         format_func={"cpu": "CPU (gloo)", "cuda": t("GPUs (NCCL)")}.get)  # i18n: skip
    limit = c[2].number_input(t("Time limit (s)"), 5, int(zero.MAX_TIME_LIMIT_S), 180, key="tm_z_limit")
    model = activations.TinyGPTConfig(vocab=512, hidden=int(hidden), heads=4, layers=int(layers), seq=64,
                             batch=2, dropout=0.0)
    return zero.ZeroRunConfig(world_size=int(world), strategies=tuple(strategies), model=model,
                            steps=int(steps), device=dev, time_limit_s=float(limit))


def zero_figure(summary: list[dict]) -> go.Figure:
    """Predicted (light) vs measured (solid) bytes per rank: one panel per model state."""
    parts = ("params", "grads", "optimizer")
    titles = {"params": t("parameters"), "grads": t("gradients"), "optimizer": t("optimizer states")}
    fig = make_subplots(rows=1, cols=3, shared_yaxes=True, horizontal_spacing=0.04,
                        subplot_titles=tuple(titles[p] for p in parts))
    names = [{"ddp": "DDP", "zero1": "ZeRO-1", "zero2": "FSDP ≈Z2", "zero3": "FSDP Z3"}[r["strategy"]]  # i18n: skip
             for r in summary]
    kinds = {"predicted": t("predicted"), "measured": t("measured")}
    for col, part in enumerate(parts, start=1):
        for kind, color, opacity in (("predicted", ui.PALETTE[8], 0.5), ("measured", ui.PALETTE[0], 1.0)):
            fig.add_bar(x=names, y=[r[f"{part}_{kind}"] / 2**20 for r in summary], name=kinds[kind],
                        marker_color=color, opacity=opacity, showlegend=col == 1, legendgroup=kind,
                        hovertemplate="%{x}: %{y:,.3f} MiB<extra>" + f"{titles[part]} {kinds[kind]}" + "</extra>",  # i18n: skip
                        row=1, col=col)
    fig.update_layout(barmode="group")
    ui.style_figure(fig, y_title=None, height=380)
    fig.update_layout(legend={"y": 1.12}, margin={"t": 70})
    fig.update_yaxes(title_text=t("MiB per rank (mean over ranks)"), row=1, col=1)
    fig.update_xaxes(title_text=t("strategy"), row=1, col=2)
    return fig


def render_zero(result: zero.ZeroRunResult) -> None:
    summary = result.summary()
    st.caption(t("{world} rank(s), backend {backend}, {params:,} parameters, {seconds:.1f} s including start-up; "
                 "prediction: recipe fp32 (4 + 4 + 8 bytes/param) with dp = world size.",
                 world=result.config.world_size, backend=result.backend, params=result.n_params,
                 seconds=result.wall_s))
    ui.plot(zero_figure(summary), key="tm_fig_zero")
    states = {"params": t("parameters"), "grads": t("gradients"), "optimizer": t("optimizer states")}
    difference = t("difference")
    rows = []
    for r in summary:
        for part in ("params", "grads", "optimizer"):
            pred, meas = r[f"{part}_predicted"], r[f"{part}_measured"]
            rows.append({t("strategy"): tr(r["label"]), t("state"): states[part], t("predicted MiB"): pred / 2**20,
                         t("measured MiB (mean)"): meas / 2**20,
                         t("largest rank MiB"): r[f"{part}_max_rank"] / 2**20, difference: (meas - pred) / pred})
    st.dataframe(pd.DataFrame(rows), hide_index=True, width="stretch", height=36 * (len(rows) + 1) + 3,
                 column_config={difference: st.column_config.NumberColumn(format="percent")})
    if any(r["strategy"] == "zero2" for r in summary):
        held = next(r["params_held_after_forward"] for r in summary if r["strategy"] == "zero2")
        st.caption(t("FSDP shards parameters at rest even without re-sharding; the ZeRO-2 behaviour shows between "
                     "forward and backward, when each rank holds {held} of parameters (its shard + the gathered "
                     "copy).", held=ui.fmt_bytes(held, binary=True)))
    losses = {r["strategy"]: r["losses"][-1] for r in result.rows if r["rank"] == 0}
    st.caption(t("Rank 0's last loss per strategy (same data and seed, so they should agree): {losses}",
                 losses=", ".join(f"{k} {v:.5f}" for k, v in losses.items())))
    with st.expander(t("Per rank")):
        st.dataframe(pd.DataFrame([{k: v for k, v in r.items() if k != "losses"} for r in result.rows]),
                     hide_index=True, width="stretch")
    st.download_button(t("Download the run (JSON)"), json.dumps({"summary": summary, "rows": list(result.rows)},
                                                                indent=1), "zero_run.json",
                       "application/json", key="tm_z_dl")


TORCHRUN = N_("""# the same workers across machines (NCCL, one GPU per rank); results land in --out
torchrun --nnodes 2 --node-rank 0 --nproc-per-node 8 --rdzv-backend c10d \\
    --rdzv-endpoint host0:29500 -m core.measure.zero_worker --hidden 1024 --layers 8 --out runs/zero
# on host1 the same with --node-rank 1; on one machine: torchrun --nproc-per-node 4 -m core.measure.zero_worker ...""")


# ---------------------------------------------------------------- FP8
def fp8_source() -> tuple[str, tuple]:
    c = st.columns([2, 1])
    source = c[0].selectbox(t("Tensor"), ("synthetic", "weight", "minilm"), key="tm_f_source", format_func={
        "synthetic": t("Synthetic activations with outlier channels"),
        "weight": t("A real MiniLM weight matrix"), "minilm": t("Real MiniLM hidden states on your text")}.get)
    c[1].radio(t("FP8 format"), list(fp8.FORMATS), key="tm_f_fmt", horizontal=True)
    c = st.columns(4)
    if source == "synthetic":
        return source, (int(c[0].number_input(t("Tokens"), 1, fp8.MAX_TOKENS, 512, key="tm_f_tokens")),
                        int(c[1].number_input(t("Channels"), 1, fp8.MAX_CHANNELS, 1024, key="tm_f_channels")),
                        int(c[2].number_input(t("Outlier channels"), 0, fp8.MAX_CHANNELS, 4, key="tm_f_nout")),
                        float(c[3].number_input(t("Outlier scale"), 1.0, 1e4, 100.0, key="tm_f_scale")))
    if source == "weight":
        names = training_memory_cache.minilm_weight_names()
        default = names.index("encoder.layer.0.intermediate.dense.weight")
        return source, (c[0].selectbox(t("Matrix"), names, index=default, key="tm_f_weight"),)
    text = st.text_area(t("Text (MiniLM reads English)"), DEFAULT_TEXT, max_chars=fp8.MAX_TEXT_CHARS, key="tm_f_text")
    return source, (text, int(c[0].slider(t("After layer"), 0, 6, 3, key="tm_f_layer")))


def fp8_figures(results: list, fmt: str) -> tuple[go.Figure, go.Figure]:
    limits = training_memory_cache.format_limits(fmt)
    hist, err = go.Figure(), go.Figure()
    log2_hover, log10_hover = t("log2 = %{x:.1f}: %{y:,} values"), t("log10 = %{x:.2f}: %{y:,} values")
    for i, r in enumerate(results):
        label, color = tr(fp8.SCHEME_LABELS[r.scheme]), ui.PALETTE[i]
        mids = [(a + b) / 2 for a, b in zip(r.log2_edges[:-1], r.log2_edges[1:], strict=True)]
        hist.add_scatter(x=mids, y=r.log2_counts, mode="lines", line_shape="hvh", name=label,
                         line_color=color, hovertemplate=log2_hover + "<extra>" + label + "</extra>")
        emids = [(a + b) / 2 for a, b in zip(r.rel_err_edges[:-1], r.rel_err_edges[1:], strict=True)]
        err.add_scatter(x=emids, y=r.rel_err_counts, mode="lines", line_shape="hvh", name=label,
                        line_color=color, hovertemplate=log10_hover + "<extra>" + label + "</extra>")
    hist.add_vrect(x0=math.log2(limits["min_subnormal"]), x1=math.log2(limits["min_normal"]),
                   fillcolor="#FAB005", opacity=0.12, line_width=0, annotation_text=t("subnormal"))
    hist.add_vrect(x0=math.log2(limits["min_normal"]), x1=math.log2(limits["max"]),
                   fillcolor="#12B886", opacity=0.10, line_width=0, annotation_text=t("{fmt} normal range", fmt=fmt))
    ui.style_figure(hist, x_title=t("log2(|x| / scale) — where each value lands in FP8's range"),
                    y_title=t("values (count)"), height=340)
    ui.style_figure(err, x_title=t("log10 relative error per value (exact: 1e-8; flushed to zero: 0)"),
                    y_title=t("values (count, log)"), height=300)
    err.update_yaxes(type="log")
    return hist, err


def render_fp8() -> None:
    source, params = fp8_source()
    fmt = st.session_state["tm_f_fmt"]
    bar = st.empty()
    if source == "minilm":
        bar.caption(t("Loading all-MiniLM-L6-v2 (first time only)…"))
    shape, results = training_memory_cache.fp8_analysis(source, fmt, params, device)
    bar.empty()
    st.caption(t("Tensor of shape {rows:,} × {cols:,}; scales are online amax / {fp8_max:g}.", rows=shape[0],
                 cols=shape[1], fp8_max=training_memory_cache.format_limits(fmt)["max"]))
    rel, flushed = t("relative error (‖x−x̂‖/‖x‖)"), t("non-zeros flushed to 0")
    st.dataframe(pd.DataFrame([{
        t("scaling"): tr(fp8.SCHEME_LABELS[r.scheme]), rel: r.stats["rel_error"],
        "SNR (dB)": r.stats["snr_db"], flushed: r.stats["flushed_to_zero"],  # i18n: skip
        t("max |error|"): r.stats["max_abs_error"], t("bytes per value (with scales)"): r.bytes_per_value,
        t("scales"): r.n_scales} for r in results]), hide_index=True, width="stretch",
        column_config={flushed: st.column_config.NumberColumn(format="percent"),
                       rel: st.column_config.NumberColumn(format="%.4f"),
                       "SNR (dB)": st.column_config.NumberColumn(format="%.1f")})  # i18n: skip
    hist, err = fp8_figures(results, fmt)
    ui.plot(hist, key="tm_fig_fp8_hist")
    ui.plot(err, key="tm_fig_fp8_err")
    finfo = {"format": t("format"), "exponent bits": t("exponent bits"), "mantissa bits": t("mantissa bits"),
             "max": t("max"), "min normal": t("min normal"), "min subnormal": t("min subnormal"),
             "agrees with torch": t("agrees with torch")}
    st.dataframe(pd.DataFrame(training_memory_cache.finfo_table()).rename(columns=finfo), hide_index=True,
                 width="stretch")


# ---------------------------------------------------------------- SmolLM2, measured
SMOLLM2 = PRESETS["smollm2-135m"]
ON_CUDA = device.startswith("cuda")
RUN_NAMES = {False: N_("every activation stored"), True: N_("checkpointed per block")}
SAVED_LABELS = {False: N_("Saved, all stored"), True: N_("Saved, checkpointed")}


def llm_recorded() -> list[dict]:
    """Recorded bench/memory runs that hold a SmolLM2 measurement (newest first)."""
    docs = [d for d in cache.recorded("memory") if isinstance(d.get("smollm2"), dict) and d["smollm2"].get("ok")]
    return sorted(docs, key=lambda d: str(d.get("meta", {}).get("date", "")), reverse=True)


def mib(n: float | None) -> str:
    return ui.fmt_bytes(n, binary=True)


# ---- KV cache on the real model (the calculator's KV-cache part)
def render_llm_kv() -> None:
    st.markdown(t("**The KV-cache formula on a real model.** SmolLM2-135M prefills held-out Wikipedia tokens "
                  "into a real KV cache (`core.nn.KVCache`); the bytes its tensors hold are put next to "
                  "`kv_cache_bytes_per_token` × T, the formula behind the KV-cache row above."))
    c = st.columns([1, 1, 2], vertical_alignment="bottom")
    cap = SMOLLM2.max_seq if ON_CUDA else llm_runs.MAX_KV_TOKENS
    tokens = c[0].number_input(t("Tokens T in the cache"), 1, cap, 256, step=128, key="tm_kv_tokens")
    ran = ui.last_run(c[1].button(t("Measure the KV cache"), key="tm_kv_run"), "tm_kv_ran", int(tokens),
                      idle=t("Press the button to load SmolLM2 (a few seconds the first time) and prefill T "
                             "tokens."))
    if ran is None:
        return
    with st.spinner(t("Prefilling {n:,} tokens …", n=ran)):
        m = llm_cache.llm_kv_cache(device, ran, _on_wait=ui.wait_callback(st.empty()))
    c = st.columns(3)
    c[0].metric(t("Measured: cache tensors after {n:,} tokens", n=m.tokens), mib(m.measured_bytes))
    c[1].metric(t("Formula: kv_cache_bytes_per_token × T"), mib(m.predicted_bytes),
                delta=t("equal") if m.measured_bytes == m.predicted_bytes else
                t("measured {d:+,} B", d=m.measured_bytes - m.predicted_bytes), delta_color="off", delta_arrow="off")
    c[2].metric(t("Allocated (the cache grows in chunks)"), mib(m.allocated_bytes))
    st.dataframe(kv_rows_table(m), hide_index=True, width="stretch")
    st.caption(t("{dtype} cache values. SmolLM2 is GQA: 9 query heads share 3 KV heads of 64, so a token "
                 "leaves 2 × 3 × 64 values per layer. *As MHA*: the same model with 9 KV heads; *MLA latents*: "
                 "DeepSeek-V3's ratios at this head size (a 256-value latent + a 32-value RoPE key). "
                 "Llama-2-7B and DeepSeek-V3 are their published configs at the same element size.", dtype=m.dtype))


def kv_rows_table(m) -> pd.DataFrame:
    base = m.rows[0]["bytes_per_token"]
    return pd.DataFrame([{
        t("model"): tr(r["name"]), t("attention"): r["kind"], t("layers"): r["layers"],
        t("values / token / layer"): r["values_per_token_layer"],
        t("bytes / token"): ui.fmt_bytes(r["bytes_per_token"], binary=True),
        t("at T = {n:,}", n=m.tokens): mib(r["bytes"]), t("× SmolLM2"): f"{r['bytes_per_token'] / base:.2f}×"}
        for r in m.rows])


# ---- fine-tuning the real model (Measure it)
def llm_finetune_widgets() -> llm_runs.FinetuneConfig:
    cap = llm_runs.MAX_FINETUNE_SEQ_CUDA if ON_CUDA else llm_runs.MAX_FINETUNE_SEQ_CPU
    d = llm_runs.FinetuneConfig()
    c = st.columns(4)
    seq = c[0].number_input(t("Sequence length (tokens)"), 8, cap, 64, step=32, key="tm_l_seq",
                            help=t("At most {cap:,} here. 64 tokens: about 10 s on 2 idle CPU cores; much longer "
                                   "when other jobs share them.", cap=cap))
    batch = c[1].number_input(t("Batch (sequences)"), 1, 8, d.batch, key="tm_l_batch")
    steps = c[2].number_input(t("AdamW steps per run"), 3, llm_runs.MAX_FINETUNE_STEPS, d.steps, key="tm_l_steps",
                              help=t("Step 1 allocates gradients and AdamW's states, step 2 is measured "
                                     "(saved tensors, peak), steps 3 on are timed."))
    backend = c[3].selectbox(t("Attention"), ("sdpa", "naive"), key="tm_l_backend",
                             format_func={"sdpa": t("SDPA (flash-style: no s × s saved)"),
                                          "naive": t("naive (saves the s × s probabilities)")}.get)
    return llm_runs.FinetuneConfig(seq=int(seq), batch=int(batch), steps=int(steps), backend=backend)


def render_llm_finetune() -> None:
    cfg = llm_finetune_widgets()
    ran = ui.last_run(st.button(t("Fine-tune SmolLM2 (stored, then checkpointed)"), key="tm_l_run", type="primary"),
                      "tm_l_cfg", cfg,
                      idle=t("Press the button to run the steps twice on a copy of the weights: once storing "
                             "every activation, once with torch.utils.checkpoint around each of the 30 blocks."))
    if ran is not None:
        with ui.guard():
            full, ckpt = ui.run_with_progress(training_memory_cache.llm_finetune, device, ran)
            show_llm_finetune(ran, full, ckpt)
    with ui.guard():
        render_llm_recorded_finetune(expanded=ran is None)


def show_llm_finetune(cfg: llm_runs.FinetuneConfig, full, ckpt) -> None:
    c = st.columns(4)
    for col, r in zip(c[:2], (full, ckpt), strict=True):
        col.metric(tr(SAVED_LABELS[r.checkpoint]), mib(r.saved_bytes),
                   delta=t("calculator {bytes} ({d:+.1%})", bytes=mib(r.predicted_bytes),
                           d=r.saved_bytes / r.predicted_bytes - 1),
                   delta_color="off", delta_arrow="off",
                   help=t("Saved for backward, {run}.", run=tr(RUN_NAMES[r.checkpoint])))
    c[2].metric(t("Recompute cost"), f"{ckpt.step_ms / full.step_ms - 1:+.0%}",
                delta=t("time per step {full} → {ckpt}", full=ui.fmt_ms(full.step_ms), ckpt=ui.fmt_ms(ckpt.step_ms)),
                delta_color="off", delta_arrow="off",
                help=t("Measured: median time per step with checkpointing over without. One extra forward is about "
                       "a third of a forward + backward by FLOPs; what a machine really pays depends on it."))
    c[3].metric(t("Peak, forward + backward"), mib(full.peak_bytes),
                delta=t("checkpointed {bytes}", bytes=mib(ckpt.peak_bytes)), delta_color="off", delta_arrow="off",
                help=t("{kind}, above what was allocated before the step.", kind=tr(full.peak_kind)))
    ui.plot(finetune_figure(full, ckpt), key="tm_fig_llm_ft")
    st.dataframe(finetune_table(full, ckpt), hide_index=True, width="stretch")
    if ckpt.peak_bytes >= 0.99 * full.peak_bytes:
        st.caption(t("Why checkpointing did not lower the peak here: at this length the peak comes at the very end "
                     "of backward, after the activations are gone, when every gradient exists ({grads}) and the "
                     "tied {vocab:,} × {hidden} embedding's two gradients (from the output head and from the input "
                     "lookup) are added into one, two more table-sized tensors for a moment. Checkpointing lowers "
                     "the peak once the activations, not the gradients, set it: longer sequences, larger batches.",
                     grads=mib(full.gradient_bytes), vocab=SMOLLM2.vocab_size, hidden=SMOLLM2.hidden))
    st.caption(t("SmolLM2-135M, AdamW (lr {lr:g}), {batch} × {seq:,} held-out Wikipedia tokens, {steps} steps per "
                 "run, {backend} attention. Saved: every tensor autograd keeps for backward (saved_tensors_hooks, "
                 "each storage once). Calculator: core.memory.llama_training_activations for this exact config "
                 "(SwiGLU, GQA, RMSNorm, no dropout, tied embeddings). Peak: above what was allocated before the "
                 "step (weights, gradients of the last step are freed), activations and gradients together. Step "
                 "times on a shared machine are noisy: the recompute cost is one measurement, not a constant.",
                 lr=cfg.lr, batch=cfg.batch, seq=cfg.seq, steps=cfg.steps, backend=cfg.backend))
    with st.expander(t("The calculator's terms for this config, and what this implementation saves beyond them")):
        st.caption(t("{layers} × one block's terms + the head's terms = the calculator's {full} (every activation "
                     "stored); checkpointed, each block keeps only its input: {ckpt}.", layers=SMOLLM2.layers,
                     full=mib(full.predicted_bytes), ckpt=mib(ckpt.predicted_bytes)))
        terms = pd.DataFrame(training_memory_cache.llm_activation_terms(device, cfg))
        terms = terms.assign(term=terms["term"].map(tr), where=terms["where"].map(tr), MiB=terms["bytes"] / 2**20)
        by = t("bytes")
        st.dataframe(terms.rename(columns={"term": t("term"), "where": t("where"), "bytes": by}), hide_index=True,
                     width="stretch", column_config={"MiB": st.column_config.NumberColumn(format="%.3f"),  # i18n: skip
                                                     by: st.column_config.NumberColumn(format="%d")})
        for r in (full, ckpt):
            show_extras(r)
    with st.expander(t("The {n} largest saved tensors ({run})", n=len(full.top_saved), run=tr(RUN_NAMES[False]))):
        st.dataframe(saved_tensors_table(full.top_saved, "MiB", 2**20), hide_index=True, width="stretch")  # i18n: skip


def show_extras(r) -> None:
    left = r.saved_bytes - r.explained_bytes
    run = tr(RUN_NAMES[r.checkpoint])
    st.markdown(t("**{run}**: measured − calculator = {diff:+,.0f} B, of which these terms explain {explained:+,.0f} B ",
                  run=run[:1].upper() + run[1:], diff=r.saved_bytes - r.predicted_bytes,
                  explained=r.explained_bytes - r.predicted_bytes)
                + (t("(all of it).") if left == 0 else t("({left:+,.0f} B left unexplained).", left=left)))
    what, by = t("what the formula leaves out"), t("bytes")
    st.dataframe(pd.DataFrame([{what: tr(item), by: b, "MiB": b / 2**20} for item, b in r.extras]),  # i18n: skip
                 hide_index=True, width="stretch",
                 column_config={"MiB": st.column_config.NumberColumn(format="%.3f"),  # i18n: skip
                                by: st.column_config.NumberColumn(format="%d")})


def finetune_figure(full, ckpt) -> go.Figure:
    fig = go.Figure()
    names = [tr(RUN_NAMES[r.checkpoint]) for r in (full, ckpt)]
    for label, attr, color in ((t("measured: saved for backward"), "saved_bytes", ui.PALETTE[0]),
                               (t("calculator"), "predicted_bytes", ui.PALETTE[8]),
                               (t("calculator + implementation terms"), "explained_bytes", ui.PALETTE[2]),
                               (t("measured peak, forward + backward"), "peak_bytes", ui.PALETTE[1]),
                               (t("predicted peak (activations + gradients)"), "predicted_peak", ui.PALETTE[5])):
        fig.add_bar(x=names, y=[getattr(r, attr) / 2**20 for r in (full, ckpt)], name=label, marker_color=color,
                    hovertemplate="%{x}: %{y:,.1f} MiB<extra>" + label + "</extra>")  # i18n: skip
    fig.update_layout(barmode="group")
    return ui.style_figure(fig, x_title=t("fine-tuning run"), y_title="MiB", height=360)  # i18n: skip


def finetune_table(full, ckpt) -> pd.DataFrame:
    return pd.DataFrame([{
        t("run"): tr(RUN_NAMES[r.checkpoint]), t("saved for backward"): mib(r.saved_bytes),
        t("calculator"): mib(r.predicted_bytes),
        t("measured vs calculator"): f"{r.saved_bytes / r.predicted_bytes - 1:+.1%}",
        t("calculator + extras"): mib(r.explained_bytes), t("peak ({kind})", kind=tr(r.peak_kind)): mib(r.peak_bytes),
        t("predicted peak"): mib(r.predicted_peak), t("gradients"): mib(r.gradient_bytes),
        t("AdamW update peak"): mib(r.update_peak_bytes), t("time per step"): ui.fmt_ms(r.step_ms),
        t("losses"): " → ".join(f"{x:.3f}" for x in r.losses)} for r in (full, ckpt)])


def render_llm_recorded_finetune(expanded: bool) -> None:
    docs = llm_recorded()
    if not docs:
        st.caption(t("No recorded SmolLM2 fine-tuning run yet (`python -m bench.memory` records one)."))
        return
    saved, calc, explained, peak, versus = (t("saved (MiB)"), t("calculator (MiB)"), t("explained (MiB)"),
                                            t("peak (MiB)"), t("vs calculator"))
    for doc in docs:
        meta, llm = doc.get("meta", {}), doc["smollm2"]
        with st.expander(t("Recorded: SmolLM2 fine-tuning on {device}",
                           device=meta.get("device", {}).get("name") or t("unknown device")), expanded=expanded):
            st.caption(ui.recorded_caption(meta) + t(" {dtype} weights.", dtype=llm.get("dtype", "")))
            runs = [r for r in llm.get("finetune", []) if isinstance(r, dict)]
            stored = {r.get("seq"): r for r in runs if not r.get("checkpoint")}
            st.dataframe(pd.DataFrame([{
                "seq": r.get("seq"), t("run"): tr(RUN_NAMES[bool(r.get("checkpoint"))]),
                saved: r.get("saved_MiB"), calc: r.get("predicted_MiB"),  # i18n: skip
                versus: r.get("diff_vs_predicted"), explained: r.get("explained_MiB"),  # i18n: skip
                peak: r.get("peak_MiB"), t("time per step"): ui.fmt_ms(r.get("step_ms")),  # i18n: skip
                t("recompute cost"): recompute_cost(r, stored.get(r.get("seq")))} for r in runs]),
                hide_index=True, width="stretch",
                column_config={k: st.column_config.NumberColumn(format="%.1f") for k in (saved, calc, explained, peak)}
                | {versus: st.column_config.NumberColumn(format="percent")})


def recompute_cost(run: dict, stored: dict | None) -> str:
    if not run.get("checkpoint") or not stored or not stored.get("step_ms") or not run.get("step_ms"):
        return "—"
    return f"{run['step_ms'] / stored['step_ms'] - 1:+.0%}"


# ---- FP8 on the real model (FP8 tab)
def render_llm_fp8() -> None:
    st.subheader(t("What FP8 does to a real model"))
    st.markdown(t("SmolLM2-135M's 210 linear weights (q, k, v, o, gate, up, down of 30 blocks) are quantized to "
                  "FP8 and back, and the model's perplexity is measured on held-out Wikipedia text (the last "
                  "10 % of the atlas's sample). Embeddings, norms and the tied head keep the file's precision, "
                  "as DeepSeek-V3 keeps its embedding and head in BF16."))
    st.info(t("**The baseline is the file's Q4_1 weights**, not SmolLM2's original bf16 weights, which this "
              "offline atlas does not have: the GGUF file stores all 210 linear weights in Q4_1 (blocks of 32 "
              "4-bit values with a scale and a minimum; the embedding in Q8_0), dequantized here. Each FP8 recipe "
              "re-quantizes those already-rounded values, so its error comes on top of Q4_1's."),
            icon=":material/info:")
    c = st.columns([3, 1, 1], vertical_alignment="bottom")
    recipes = c[0].multiselect(t("Recipes"), list(llm_runs.FP8_RECIPES), default=list(llm_runs.FP8_RECIPES),
                               format_func={k: tr(v[0]) for k, v in llm_runs.FP8_RECIPES.items()}.get,
                               key="tm_l8_recipes")
    tokens = c[1].number_input(t("Held-out tokens"), 64, llm_runs.MAX_EVAL_TOKENS, 256, step=64, key="tm_l8_tokens",
                               help=t("More tokens: a steadier perplexity, a longer run (each recipe copies and "
                                      "quantizes the model, then reads the tokens in windows of 512)."))
    ran = ui.last_run(c[2].button(t("Measure perplexity"), key="tm_l8_run", type="primary"), "tm_l8_ran",
                      (tuple(recipes), int(tokens)),
                      idle=t("Press the button to quantize and evaluate: each recipe copies the model, quantizes "
                             "its 210 weights and reads the tokens (a few seconds per recipe on 2 idle CPU cores; "
                             "longer when other jobs share them)."))
    if ran is not None and not ran[0]:
        st.warning(t("Pick at least one recipe."), icon=":material/info:")
    elif ran is not None:
        with ui.guard():
            rows = ui.run_with_progress(training_memory_cache.llm_fp8, device, *ran)
            show_llm_fp8(rows, ran[1])
    with ui.guard():
        render_llm_recorded_fp8()


def show_llm_fp8(rows, tokens: int) -> None:
    base = next((r.perplexity for r in rows if r.recipe == "file"), None)
    fig = go.Figure(go.Scatter(x=[r.recipe for r in rows], y=[r.perplexity for r in rows], mode="markers+text",
                               marker={"size": 14, "color": ui.PALETTE[0]}, text=[f"{r.perplexity:.2f}" for r in rows],
                               textposition="top center", customdata=[tr(r.label) for r in rows],
                               hovertemplate=t("%{customdata}: perplexity %{y:.3f}<extra></extra>")))
    if base is not None:
        fig.add_hline(y=base, line_dash="dot", line_color="#868E96", annotation_text=t("the file's Q4_1 weights"),
                      annotation_position="bottom right")
    ui.plot(ui.style_figure(fig, x_title=t("recipe (perplexity on {n:,} held-out Wikipedia tokens)", n=tokens),
                            y_title=t("perplexity (lower is better)"), height=320), key="tm_fig_llm_fp8")
    ppl, versus, nll, bpw, worst, mean = (t("perplexity"), t("vs the file's weights"), t("NLL (nats / token)"),
                                          t("bytes / weight"), t("max relative weight error"),
                                          t("mean relative weight error"))
    st.dataframe(pd.DataFrame([{
        t("recipe"): tr(r.label), ppl: r.perplexity, versus: r.perplexity / base - 1 if base else None, nll: r.nll,
        bpw: r.bytes_per_param, worst: r.rel_err_max, mean: r.rel_err_mean, t("tensors quantized"): r.tensors}
        for r in rows]),
        hide_index=True, width="stretch",
        column_config={ppl: st.column_config.NumberColumn(format="%.3f"),
                       versus: st.column_config.NumberColumn(format="percent"),
                       nll: st.column_config.NumberColumn(format="%.4f"),
                       bpw: st.column_config.NumberColumn(format="%.4f"),
                       worst: st.column_config.NumberColumn(format="%.4f"),
                       mean: st.column_config.NumberColumn(format="%.4f")})
    st.caption(t("Relative weight error: ‖Ŵ − W‖ / ‖W‖ per tensor (W: the file's dequantized weight), the "
               "worst and the mean over the tensors. Bytes per weight: one FP8 byte plus the scales (per "
               "tensor, per output channel or per 128 × 128 block); the file's row is Q4_1's 20 bytes per 32 "
               "weights. The block recipes also quantize each linear layer's input in 1 × 128 tiles; the "
               "arithmetic itself stays in float32 (no FP8 matmul). How to read it: E4M3 keeps 3 mantissa bits, "
               "so each weight is off by up to about 2⁻⁴ of itself whatever the scale, as long as the scale keeps "
               "it out of the subnormals; where the E4M3 rows show the same weight error, the extra perplexity of "
               "the block recipes is what the FP8 activation tiles cost. E5M2 has 2 mantissa bits: twice the error."))


def render_llm_recorded_fp8() -> None:
    for doc in llm_recorded():
        llm, meta = doc["smollm2"], doc.get("meta", {})
        rows = [r for r in llm.get("fp8", []) if isinstance(r, dict)]
        if not rows:
            continue
        with st.expander(t("Recorded: FP8 perplexity on {device}",
                           device=meta.get("device", {}).get("name") or t("unknown device"))):
            st.caption(ui.recorded_caption(meta) + t(" {n} held-out tokens.", n=llm.get("fp8_eval_tokens", "?")))
            labels = {v[0]: tr(v[0]) for v in llm_runs.FP8_RECIPES.values()}
            st.dataframe(pd.DataFrame([{t("recipe"): labels.get(r.get("label"), r.get("label", r.get("recipe"))),
                                        t("perplexity"): r.get("perplexity"),
                                        t("bytes / weight"): r.get("bytes_per_param"),
                                        t("max relative weight error"): r.get("rel_err_max"),
                                        t("mean relative weight error"): r.get("rel_err_mean")} for r in rows]),
                         hide_index=True, width="stretch")


# ---------------------------------------------------------------- the page
problems = init_state()
for problem in problems:
    st.warning(tr(problem), icon=":material/link_off:")
plan = plan_widgets()
result = None
with ui.guard():
    result = training_memory_cache.plan_memory(plan)
    query = training_memory_cache.plan_query(plan)
    if "lang" in st.query_params:      # the language switch's choice stays in the URL
        query = {**query, "lang": st.query_params["lang"]}
    st.query_params.from_dict(query)

tab_gpu, tab_sweeps, tab_ckpt, tab_measure, tab_fp8 = st.tabs(
    [t("Per GPU"), t("Sweeps"), t("Checkpointing"), t("Measure it"), "FP8"])
with tab_gpu:
    if result is None:
        st.info(t("Fix the settings above to see the breakdown."))
    else:
        with ui.guard():
            render_per_gpu(plan, result)
    with ui.guard():
        render_llm_kv()
with tab_sweeps:
    if result is not None:
        with ui.guard():
            ui.plot(dp_figure(plan), key="tm_fig_dp")
            st.caption(t("Per-GPU memory (activations included) as data-parallel GPUs are added: "
                         "ZeRO-0 never shrinks, ZeRO-3 shrinks model states as 16Ψ/N."))
        with ui.guard():
            ui.plot(seq_figure(plan), key="tm_fig_seq")
            st.caption(t("Without FlashAttention or recomputation the 5as²b attention term makes "
                         "activations grow with the square of the sequence length."))
with tab_ckpt:
    if result is not None:
        with ui.guard():
            render_checkpointing(plan, result)
with tab_measure:
    st.subheader(t("Activations of a real transformer on this device"))
    st.caption(t("A GPT-style model (pre-LayerNorm, 4h GELU MLP, dropout: the paper's layer) runs "
                 "forward once; every tensor autograd saves is counted through "
                 "`torch.autograd.graph.saved_tensors_hooks` (each storage once)."))
    with ui.guard():
        cfg, ckpt = measure_widgets()
        if st.button(t("Measure activations"), key="tm_m_run", type="primary"):
            st.session_state["tm_m_result"] = ui.run_with_progress(
                training_memory_cache.measure_activations, cfg, ckpt, device)
    with ui.guard():
        if "tm_m_result" in st.session_state:
            render_measurement(st.session_state["tm_m_result"])
        render_recorded()
    st.subheader(t("ZeRO stages across real torch.distributed workers"))
    st.caption(t("Separate processes (gloo on CPU, NCCL on GPUs) train a small GPT a few steps per "
                 "strategy and report the bytes each rank holds. A rank that fails or hangs past the "
                 "time limit is stopped, with its process group, and reported."))
    with ui.guard():
        zcfg = zero_widgets()
        if st.button(t("Run distributed workers"), key="tm_z_run", type="primary"):
            st.session_state["tm_z_result"] = ui.run_with_progress(training_memory_cache.run_zero, zcfg)
    with ui.guard():
        if "tm_z_result" in st.session_state:
            render_zero(st.session_state["tm_z_result"])
    st.code(tr(TORCHRUN), language="bash")
    st.subheader(t("Fine-tuning a real model: SmolLM2-135M"))
    st.caption(t("A few real AdamW steps of the whole pretrained model (135 M parameters, 30 Llama blocks), "
                 "storing every activation and then checkpointing each block; the saved bytes next to the "
                 "calculator's prediction for this exact model, term by term."))
    with ui.guard():
        render_llm_finetune()
with tab_fp8:
    st.caption(t("DeepSeek-V3 quantizes activations per 1×128 tile and weights per 128×128 block "
                 "(report section 3.3.2), so one outlier only coarsens its own group."))
    with ui.guard():
        render_fp8()
    with ui.guard():
        render_llm_fp8()

ui.page_footer(
    t("**Per GPU**: each bar is one GPU under a ZeRO stage at your N; dotted lines are 24, 40, 80 and "
    "141 GB cards (usable memory is a little less: CUDA context, allocator fragmentation). Model "
    "states follow ZeRO's formulas — with Ψ parameters and K optimizer bytes per parameter, stage 1 "
    "keeps 4Ψ + KΨ/N, stage 2 2Ψ + (2+K)Ψ/N, stage 3 (4+K)Ψ/N for 16-bit mixed precision. "
    "Activations follow Korthikanti et al.: sbh(34 + 5as/h) bytes per layer, split by tensor and "
    "sequence parallelism and cut by recomputation; the output head adds fp32 logits, 4sbv/t. "
    "**Sweeps** are log-log. **Checkpointing** shows which layers keep what, and the forward work "
    "repeated in the backward pass. **Measure it** counts what a real model saved, with the "
    "difference explained; the distributed run shows real per-rank bytes; SmolLM2's fine-tuning "
    "steps show the same for a pretrained Llama-style model, with the recompute cost measured, not assumed. "
    "Below the breakdown, SmolLM2's real KV cache checks the KV-cache formula. **FP8** shows why "
    "fine-grained scales matter: with one scale for the whole tensor, small values sink into "
    "FP8's subnormals or to zero; on SmolLM2 the perplexity says what the rounding costs a real "
    "model (baseline: the file's Q4_1 weights). Settings live in the URL: copy it to share."),
    [
        ("Rajbhandari et al. 2020, ZeRO, section 3.1 and Figure 1", "https://arxiv.org/abs/1910.02054"),
        ("Korthikanti et al. 2022, Reducing Activation Recomputation, section 4 and Table 2",
         "https://arxiv.org/abs/2205.05198"),
        ("Chen et al. 2016, Training Deep Nets with Sublinear Memory Cost, section 4",
         "https://arxiv.org/abs/1604.06174"),
        ("Dao et al. 2022, FlashAttention, section 3.1", "https://arxiv.org/abs/2205.14135"),
        ("Ren et al. 2021, ZeRO-Offload", "https://arxiv.org/abs/2101.06840"),
        ("DeepSeek-AI 2024, DeepSeek-V3 Technical Report, sections 3.3.2-3.3.3",
         "https://arxiv.org/abs/2412.19437"),
        ("Micikevicius et al. 2022, FP8 Formats for Deep Learning, section 3",
         "https://arxiv.org/abs/2209.05433"),
        ("Dettmers et al. 2022, LLM.int8(), section 3 (outlier features)", "https://arxiv.org/abs/2208.07339"),
        ("Zhao et al. 2023, PyTorch FSDP", "https://arxiv.org/abs/2304.11277"),
        ("PyTorch: ZeroRedundancyOptimizer", "https://pytorch.org/docs/stable/distributed.optim.html"),
    ],
)
