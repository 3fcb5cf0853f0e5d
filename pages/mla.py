"""Multi-head latent attention: what the KV cache holds, and why the absorbed form is exact."""

from __future__ import annotations

import numpy as np
import pandas as pd
import plotly.graph_objects as go
import streamlit as st

from app import cache, ui
from app.cache import llm as llm_cache
from app.cache import mla as mla_cache
from app.i18n import N_, t, tr
from core.configs import PRESETS
from core.measure import llm_runs
from core.models import mla

DEFAULT_MODELS = ["deepseek-v3", "deepseek-v2", "llama-2-7b", "llama-3-8b", "qwen2.5-7b", "falcon-7b"]
CACHE_DTYPES = {"bf16 / fp16 (2 B)": "bfloat16", "fp8 (1 B)": "float8_e4m3fn", "fp32 (4 B)": "float32"}  # i18n: skip (dtypes, bytes)
H200_BYTES = 141e9
KV_TOKENS = [16, 32, 64, 128, 256, 512, 1024, 2048, 4096, 8192]   # SmolLM2 prefill lengths (capped per device)
KV_DEFAULT = [32, 128, 512]
TIMING_CFG = mla.MLAConfig(hidden=1024, heads=16, q_lora_rank=384, kv_lora_rank=256,
                           qk_nope_head_dim=64, qk_rope_head_dim=32, v_head_dim=64)
FORMS = {"plain": N_("plain"), "decompressed": N_("decompressed"), "absorbed": N_("absorbed")}   # mla.DECODE_MODES


def form_label(mode: str) -> str:
    return tr(FORMS[mode]) if mode in FORMS else mode


ui.page_header(
    t("Multi-head latent attention"),
    t("DeepSeek-V2/V3 cache one **576-value latent per token per layer** instead of keys and values "
      "for 128 heads. Below: the cache of real model configs (computed, and checked against the bytes "
      "that real attention modules allocate), a real pretrained model's cache measured after T tokens, and "
      "a live MLA layer whose *absorbed* inference form is shown to give the same output as the plain one."),
)
device = cache.device_name()
tab_models, tab_measured, tab_layer, tab_check, tab_cost = st.tabs(
    [t("KV cache by model"), t("KV cache, measured (SmolLM2)"), t("Inside one MLA layer"),
     t("Formula vs allocated bytes"), t("Decode cost")])


# ---------------------------------------------------------------- KV cache by model
def kv_table(names: list[str], dtype_name: str, batch: int) -> pd.DataFrame:
    rows = []
    for name in names:
        check = mla_cache.preset_check(name, dtype_name, device)
        rows.append({
            t("Model"): PRESETS[name].name, t("Attention"): check.kind.upper(),
            t("Values / token / layer"): check.values_per_token_layer, t("Layers"): check.layers,
            t("Per token (formula)"): ui.fmt_bytes(check.formula_bytes_per_token, binary=True),
            t("Per token (allocated)"): ui.fmt_bytes(check.allocated_bytes_per_token, binary=True),
            t("Match"): "✓" if check.matches else "✗",
            t("128K context"): ui.fmt_bytes(check.formula_bytes_per_token * 131072 * batch, binary=True),
            t("If K/V were cached per head"): ui.fmt_bytes(check.naive_bytes_per_token, binary=True),
        })
    return pd.DataFrame(rows)


def kv_curve_figure(names: list[str], bpv: float, batch: int) -> go.Figure:
    contexts = [2**k for k in range(10, 21)]
    df = pd.DataFrame(mla_cache.kv_curve(tuple(names), tuple(contexts), bpv, batch))
    fig = go.Figure()
    for model, part in df.groupby("model", sort=False):
        fig.add_scatter(x=part["context"], y=part["bytes"] / 2**30, name=f"{model}",
                        mode="lines+markers",
                        hovertemplate=t("%{{x:,}} tokens: %{{y:,.2f}} GiB<extra>{model}</extra>", model=model))
    info = cache.device_info()
    memory = info.total_memory if info.kind == "cuda" and info.total_memory else H200_BYTES
    label = t("{device} memory", device=info.name) if info.kind == "cuda" else t("H200 memory (141 GB)")
    fig.add_scatter(x=[contexts[0], contexts[-1]], y=[memory / 2**30] * 2, name=label, mode="lines",
                    line={"dash": "dash", "color": "#868E96"},
                    hovertemplate=f"{label}: %{{y:,.0f}} GiB<extra></extra>")  # i18n: skip (unit, markup)
    ticks = [2**k for k in range(10, 21, 2)]
    fig.update_xaxes(type="log", tickvals=ticks, ticktext=[f"{c // 1024:,}K" for c in ticks])
    fig.update_yaxes(type="log", dtick=1)
    return ui.style_figure(fig, x_title=t("context length per sequence (tokens, log)"),
                           y_title=t("KV cache for batch {batch} (GiB, log)", batch=batch), height=430)


with tab_models, ui.guard():
    c1, c2, c3 = st.columns([3, 1, 1])
    names = c1.multiselect(t("Models"), list(PRESETS), default=DEFAULT_MODELS, key="mla_models",
                           format_func=lambda k: PRESETS[k].name)
    dtype_label = c2.selectbox(t("Cache element"), list(CACHE_DTYPES), key="mla_dtype")
    batch = int(c3.number_input(t("Batch (sequences)"), 1, 1024, 1, key="mla_batch"))
    if not names:
        st.info(t("Pick at least one model."), icon=":material/info:")
    else:
        dtype_name = CACHE_DTYPES[dtype_label]
        st.dataframe(kv_table(names, dtype_name, batch), hide_index=True, width="stretch")
        st.caption(t("*Formula*: core.memory.kv_cache_bytes_per_token. *Allocated*: one attention layer of "
                     "the real width (weights on PyTorch's meta device, so they take no memory) allocates its "
                     "cache on **{device}**; nbytes ÷ tokens × layers.", device=device))
        bpv = {"bfloat16": 2, "float8_e4m3fn": 1, "float32": 4}[dtype_name]
        ui.plot(kv_curve_figure(names, bpv, batch), key="mla_curve")
        v3 = mla_cache.preset_check("deepseek-v3", dtype_name, device)
        st.info(
            t("**DeepSeek-V3** caches {per_token} per token (({rank} + {rope}) values × {layers} layers). "
              "A calculator that treats it as 128-head MHA (K 192 + V 128 wide per head) gets {naive}: "
              "**{ratio:.0f}× too much**.",
              per_token=ui.fmt_bytes(v3.formula_bytes_per_token, binary=True),
              rank=PRESETS["deepseek-v3"].kv_lora_rank, rope=PRESETS["deepseek-v3"].qk_rope_head_dim,
              layers=v3.layers, naive=ui.fmt_bytes(v3.naive_bytes_per_token, binary=True),
              ratio=v3.naive_bytes_per_token / v3.formula_bytes_per_token),
            icon=":material/calculate:")


# ---------------------------------------------------------------- KV cache measured on SmolLM2
def kv_measured_section() -> None:
    st.markdown(t(
        "The first tab's table is arithmetic. Here a real pretrained model, **SmolLM2-135M** (30 layers, GQA: 9 query "
        "heads share 3 KV heads of 64), prefills held-out Wikipedia text into a real KV cache "
        "(`core.nn.KVCache`), and the bytes its tensors hold after T tokens are put next to the formula "
        "(`core.memory.kv_cache_bytes_per_token`). Beside it: the same model if it cached K and V for all 9 "
        "heads (MHA), and with an MLA-style latent (DeepSeek-V3's ratios at head size 64: a 256-value c_KV "
        "and a 32-value RoPE key), and the published Llama-2-7B and DeepSeek-V3."))
    c1, c2 = st.columns([3, 1], vertical_alignment="bottom")
    cap = PRESETS["smollm2-135m"].max_seq if cache.device_info().kind == "cuda" else llm_runs.MAX_KV_TOKENS
    lengths = c1.multiselect(t("Tokens T to prefill (each is a real forward pass)"),
                             [n for n in KV_TOKENS if n <= cap], default=KV_DEFAULT, key="mla_kv_tokens")
    ran = ui.last_run(c2.button(t("Measure the cache"), key="mla_kv_run", type="primary"), "mla_kv_ran",
                      tuple(sorted(lengths)),
                      idle=t("Press the button to load SmolLM2 (a few seconds the first time) and prefill each "
                             "length."),
                      changed=t("Lengths changed: press the button to measure them. Showing the last run."))
    if ran is None:
        return
    if not ran:
        st.warning(t("Pick at least one length."), icon=":material/info:")
        return
    runs = ui.map_with_progress(llm_cache.llm_kv_cache, ran, device,
                                text=lambda n: t("Prefilling {n:,} tokens …", n=n))
    last = runs[-1]
    c = st.columns(3)
    c[0].metric(t("Measured cache after {n:,} tokens", n=last.tokens), ui.fmt_bytes(last.measured_bytes, binary=True))
    c[1].metric(t("Formula: kv_cache_bytes_per_token × T"), ui.fmt_bytes(last.predicted_bytes, binary=True),
                delta=t("equal at every T") if all(m.measured_bytes == m.predicted_bytes for m in runs)
                else t("differs"), delta_color="off", delta_arrow="off")
    per_token = {r["name"]: ui.fmt_bytes(r["bytes_per_token"], binary=True) for r in last.rows}
    c[2].metric(t("SmolLM2 per token (all 30 layers)"), per_token["This model (GQA)"],
                delta=f"Llama-2-7B {per_token['Llama-2-7B (MHA)']} · DeepSeek-V3 {per_token['DeepSeek-V3 (MLA)']}",  # i18n: skip (model names)
                delta_color="off", delta_arrow="off")
    ui.plot(kv_measured_figure(runs), key="mla_kv_measured")
    st.dataframe(kv_measured_table(last), hide_index=True, width="stretch")
    st.caption(t("Cache values in {dtype} (the model's dtype on {device}). *Measured*: the nbytes of the "
                 "K and V tensors the cache holds for the T tokens; *allocated*: its chunked buffers "
                 "({allocated} at T = {n:,}). The other rows are the "
                 "formula at the same element size: they are other models, or this one rebuilt, not run here.",
                 dtype=last.dtype, device=device, allocated=ui.fmt_bytes(last.allocated_bytes, binary=True),
                 n=last.tokens))


def kv_measured_figure(runs) -> go.Figure:
    tokens = [m.tokens for m in runs]
    fig = go.Figure()
    for k, row in enumerate(runs[0].rows):
        name = tr(row["name"])
        fig.add_scatter(x=tokens, y=[m.rows[k]["bytes"] / 2**20 for m in runs], mode="lines",
                        name=t("{name} (formula)", name=name),
                        line={"color": ui.PALETTE[k], "dash": "solid" if k == 0 else "dot"},
                        hovertemplate="T=%{x:,}: %{y:,.2f} MiB<extra>" + name + "</extra>")  # i18n: skip (unit, markup)
    fig.add_scatter(x=tokens, y=[m.measured_bytes / 2**20 for m in runs], mode="markers", name=t("SmolLM2 measured"),
                    marker={"color": ui.PALETTE[0], "size": 12, "symbol": "circle-open", "line": {"width": 3}},
                    hovertemplate=t("T=%{x:,}: %{y:,.2f} MiB measured<extra>real KV cache</extra>"))
    fig.update_xaxes(type="log", tickvals=tokens, ticktext=[f"{n:,}" for n in tokens])
    fig.update_yaxes(type="log", dtick=1)
    return ui.style_figure(fig, x_title=t("tokens in the cache T (log)"), y_title=t("KV cache, all layers (MiB, log)"),
                           height=420)


def kv_measured_table(m) -> pd.DataFrame:
    base = m.rows[0]["bytes_per_token"]
    return pd.DataFrame([{
        t("Model"): tr(r["name"]), t("Attention"): r["kind"], t("Layers"): r["layers"],
        t("Values / token / layer"): r["values_per_token_layer"],
        t("Per token"): ui.fmt_bytes(r["bytes_per_token"], binary=True),
        t("At T = {n:,}", n=m.tokens): ui.fmt_bytes(r["bytes"], binary=True),
        t("Measured"): ui.fmt_bytes(m.measured_bytes, binary=True) if k == 0 else "—",
        "× SmolLM2": f"{r['bytes_per_token'] / base:.2f}×"} for k, r in enumerate(m.rows)])  # i18n: skip (a ratio to the model)


with tab_measured, ui.guard():
    kv_measured_section()


# ---------------------------------------------------------------- one live MLA layer
def mla_graph(cfg: mla.MLAConfig) -> str:
    q = (f'h -> cq [label="W_DQ"]; cq [label="c_Q ({cfg.q_lora_rank})"]; '  # i18n: skip (graphviz source)
         f'cq -> qc [label="W_UQ"]; cq -> qr [label="W_QR + RoPE"];') if cfg.q_lora_rank else (  # i18n: skip
        'h -> qc [label="W_Q"]; h -> qr [label="W_QR + RoPE"];')  # i18n: skip (graphviz source)
    cache_label = t("KV cache ({width} values / token)", width=cfg.cache_width)
    shared = t("shared")
    return (  # the graph's words come from t() above
        f'digraph {{ rankdir=LR; node [shape=box, style="rounded,filled", fillcolor="#EDF2FF", '  # i18n: skip (graphviz)
        f'fontname="sans-serif", fontsize=11]; edge [fontsize=10, fontname="sans-serif"]; '
        f'h [label="h_t ({cfg.hidden})"]; {q} '
        f'qc [label="q^C: {cfg.heads} × {cfg.qk_nope_head_dim}"]; qr [label="q^R: {cfg.heads} × {cfg.qk_rope_head_dim}"]; '
        f'subgraph cluster_cache {{ label="{cache_label}"; style=dashed; '
        f'ckv [label="c_KV ({cfg.kv_lora_rank})", fillcolor="#FFE8CC"]; '
        f'kr [label="k^R ({cfg.qk_rope_head_dim}, {shared})", fillcolor="#FFE8CC"]; }} '
        f'h -> ckv [label="W_DKV"]; h -> kr [label="W_KR + RoPE"]; '
        f'ckv -> kc [label="W_UK"]; ckv -> vc [label="W_UV"]; '
        f'kc [label="k^C: {cfg.heads} × {cfg.qk_nope_head_dim}"]; vc [label="v^C: {cfg.heads} × {cfg.v_head_dim}"]; '
        f'attn [label="softmax(q·k / √{cfg.qk_head_dim}) v", fillcolor="#D3F9D8"]; '
        f'qc -> attn; qr -> attn; kc -> attn; kr -> attn; vc -> attn; attn -> o [label="W_O"]; '
        f'o [label="u_t ({cfg.hidden})"]; }}')


def layer_inputs() -> tuple[mla.MLAConfig, int, int]:
    d = mla.MLAConfig()
    c = st.columns(4)
    hidden = int(c[0].select_slider(t("Hidden size d"), [64, 128, 256, 512, 1024], d.hidden, key="mla_hidden"))
    heads = int(c[1].slider(t("Heads n_h"), 1, 16, d.heads, key="mla_heads"))
    q_rank = int(c[2].number_input(t("q_lora_rank (0 = none)"), 0, 1024, d.q_lora_rank, 8, key="mla_qrank"))
    kv_rank = int(c[3].number_input("kv_lora_rank d_c", 1, 1024, d.kv_lora_rank, 8, key="mla_kvrank"))
    c = st.columns(4)
    nope = int(c[0].number_input("qk_nope_head_dim", 1, 256, d.qk_nope_head_dim, 8, key="mla_nope"))
    rope = int(c[1].number_input("qk_rope_head_dim", 2, 128, d.qk_rope_head_dim, 2, key="mla_rope"))
    v_dim = int(c[2].number_input("v_head_dim", 1, 256, d.v_head_dim, 8, key="mla_vdim"))
    seq = int(c[3].slider(t("Tokens"), 4, 128, 32, key="mla_seq"))
    cfg = mla.MLAConfig(hidden=hidden, heads=heads, q_lora_rank=q_rank, kv_lora_rank=kv_rank,
                        qk_nope_head_dim=nope, qk_rope_head_dim=rope, v_head_dim=v_dim)
    return cfg, seq, int(st.session_state.get("mla_seed", 0))


def show_comparison(cfg: mla.MLAConfig, r) -> None:
    scale = max(r.max_abs_out, 1e-30)
    c = st.columns(4)
    c[0].metric(t("Absorbed vs plain (fp64)"), f"{r.absorbed_vs_plain_fp64:.1e}",
                help=t("max |absorbed − plain| over all outputs, both in float64"))
    c[1].metric(t("Absorbed fp32 vs fp64 reference"), f"{r.absorbed_fp32_vs_fp64:.1e}",
                help=t("plain fp32 vs fp64: {err:.1e}; outputs are of order {scale:.2f}",
                       err=r.plain_fp32_vs_fp64, scale=scale))
    c[2].metric(t("Cached decode vs full forward"), f"{r.decode_latent_vs_full:.1e}",
                help=t("prefill half the tokens, then decode one at a time from [c_KV, k^R] (absorbed form)"))
    c[3].metric(t("Cache per token per layer"), ui.fmt_bytes(r.latent_bytes_per_token),
                delta=t("vs {size} for full K/V", size=ui.fmt_bytes(r.decompressed_bytes_per_token)),
                delta_color="off", delta_arrow="off")
    params = mla_cache.param_count(cfg)
    st.caption(t("{total:,} attention weights (query {query:,}, KV down {kv_down:,}, KV up {kv_up:,}, output "
                 "{output:,}). Cache bytes are the nbytes of the tensors the module allocates, in {dtype}.",
                 total=params["total"], query=params["query"], kv_down=params["kv_down"], kv_up=params["kv_up"],
                 output=params["output"], dtype=r.cache_dtype))


def probs_figure(probs: np.ndarray) -> go.Figure:
    fig = go.Figure(go.Heatmap(z=probs, colorscale="Blues", zmin=0,
                               hovertemplate=t("query %{y}, key %{x}: p = %{z:.3f}<extra></extra>")))
    fig.update_yaxes(autorange="reversed")
    return ui.style_figure(fig, x_title=t("key position (token)"), y_title=t("query position (token)"),
                           height=360, title=t("Head 1 attention probabilities (identical in both forms)"))


with tab_layer:
    with ui.guard():
        cfg, seq, seed = layer_inputs()
        mla_cache.check_config(cfg)
        st.graphviz_chart(mla_graph(cfg), width="stretch")
        r = mla_cache.compare_forms(cfg, seq, 1, seed, device, "bfloat16")
        show_comparison(cfg, r)
        left, right = st.columns([3, 2])
        with left:
            ui.plot(probs_figure(r.probs), key="mla_probs")
        with right:
            st.markdown(t(
                "**Plain form**: rebuild k^C = W_UK c_KV and v^C = W_UV c_KV for every cached token, "
                "then ordinary attention.\n\n**Absorbed form**: q^C·k^C = (W_UKᵀ q^C)·c_KV, so the "
                "query is mapped into the latent once and scores are taken against c_KV directly; "
                "the weighted sum of c_KV goes through W_UV and W_O afterwards. Attention becomes "
                "MQA with one {width}-wide key and a {rank}-wide value "
                "shared by all heads.", width=cfg.cache_width, rank=cfg.kv_lora_rank))
            st.number_input(t("Seed"), 0, 10_000, 0, key="mla_seed")


# ---------------------------------------------------------------- formula vs allocated (small stacks)
with tab_check, ui.guard():
    st.markdown(t("Small **real** attention stacks (2 layers, 64 wide) with the attention kind of each "
                  "preset: a prompt is prefilled through their caches, then tokens are decoded one at a "
                  "time. The cache tensors they allocate are measured and compared with the formula for "
                  "the same small config; the cached decode is compared with a full causal forward."))
    dtype_name = st.selectbox(t("Module dtype"), ["float64", "float32", "bfloat16"], key="mla_small_dtype")
    rows = []
    for name in mla.SMALL_CHANGES:
        run = mla_cache.small_run(name, dtype_name, device)
        cfg_small = mla_cache.small_config(name)
        rows.append({
            t("Kind (as in)"): f"{run.check.kind.upper()} ({PRESETS[name].name})",
            t("KV heads / latent"): (t("latent {rank} + rope {rope}", rank=cfg_small.kv_lora_rank,
                                       rope=cfg_small.qk_rope_head_dim)
                                     if cfg_small.is_mla else t("{kv_heads} of {heads}", kv_heads=cfg_small.kv_heads,
                                                                heads=cfg_small.heads)),
            t("Formula (B / token)"): run.check.formula_bytes_per_token,
            t("Allocated (B / token)"): run.check.allocated_bytes_per_token,
            t("Match"): "✓" if run.check.matches else "✗",
            t("Cached decode vs full"): f"{run.decode_vs_full:.1e}",
        })
    st.dataframe(pd.DataFrame(rows), hide_index=True, width="stretch")
    st.caption(t("Differences of order 1e-16 (float64), 1e-7 (float32) or 1e-2 (bfloat16) are rounding: "
                 "the cached and the full forward sum in different orders."))


# ---------------------------------------------------------------- decode cost
def cost_figure(cfg: mla.MLAConfig, what: str, bpv: float) -> go.Figure:
    contexts = [2**k for k in range(8, 18)]
    costs = [mla_cache.decode_cost(cfg, s, bpv) for s in contexts]       # every form at once, per context
    fig = go.Figure()
    for mode in mla.DECODE_MODES:
        ys = [c[mode][what] for c in costs]
        fig.add_scatter(x=contexts, y=ys, name=form_label(mode), mode="lines+markers",
                        hovertemplate=t("%{{x:,}} tokens: %{{y:.3s}}<extra>{form}</extra>", form=form_label(mode)))
    fig.update_xaxes(type="log", tickvals=contexts[::2], ticktext=[f"{c:,}" for c in contexts[::2]])
    fig.update_yaxes(type="log", dtick=1, exponentformat="SI")
    y_title = t("FLOPs per token per layer (log)") if what == "flops" else \
        t("bytes of cache read per token per layer (log)")
    return ui.style_figure(fig, x_title=t("cached tokens (log)"), y_title=y_title, height=340)


def show_timing(cfg: mla.MLAConfig, context: int, dtype_name: str) -> None:
    timings = ui.run_with_progress(mla_cache.decode_timing, cfg, context, device, dtype_name)
    bpv = 4 if dtype_name == "float32" else 2
    cost = mla_cache.decode_cost(cfg, context, bpv)
    rows = [{t("Form"): form_label(mode), t("Median (ms)"): round(timing.median_ms, 3),
             t("FLOPs (analytic)"): ui.fmt_count(cost[mode]["flops"]),
             t("Cache read"): ui.fmt_bytes(cost[mode]["cache_bytes_read"], binary=True),
             t("Achieved GFLOP/s"): round(cost[mode]["flops"] / timing.median_ms / 1e6, 2),
             t("Repeats"): timing.repeats} for mode, timing in timings.items()]
    st.dataframe(pd.DataFrame(rows), hide_index=True, width="stretch")
    info = cache.device_info()
    st.caption(t("Measured on {device}: one decode step of one layer, median "
                 "of the repeats after warm-up. On a shared CPU the times are noisy; the ordering is what "
                 "to look at.", device=ui.escape(ui.device_label(info))))


with tab_cost, ui.guard():
    v3 = mla.MLAConfig.from_model(PRESETS["deepseek-v3"])
    st.markdown(t("Per decoded token and layer, at DeepSeek-V3's real widths (analytic counts). "
                  "**plain**: re-expand k^C and v^C from every cached latent at every step; "
                  "**decompressed**: cache full per-head K and V (71× the memory); "
                  "**absorbed**: attend over the latent directly. Absorbed spends a few times the "
                  "attention FLOPs of the decompressed cache (every head scores against the 576-wide "
                  "latent) but reads 71× fewer bytes, and decoding one token is bound by memory reads."))
    ui.plot_pair(cost_figure(v3, "flops", 2), cost_figure(v3, "cache_bytes_read", 2),
                 keys=("mla_cost_flops", "mla_cost_bytes"))
    st.caption(t("Plain and absorbed read the same cached latent, so their byte lines coincide; they "
                 "differ in compute (left). bf16 cache, one layer, batch 1."))
    st.subheader(t("Measured on this device"))
    st.caption(t("A scaled-down live MLA layer ({weights:,} weights: d = {hidden}, {heads} heads, d_c = {d_c}, "
                 "d_h^R = {d_r}; DeepSeek-V3: 7168, 128, 512, 64), caches filled with random values.",
                 weights=mla_cache.param_count(TIMING_CFG)["total"], hidden=TIMING_CFG.hidden,
                 heads=TIMING_CFG.heads, d_c=TIMING_CFG.kv_lora_rank, d_r=TIMING_CFG.qk_rope_head_dim))
    c1, c2, c3 = st.columns([2, 1, 1])
    context = int(c1.select_slider(t("Cached tokens"), [256, 512, 1024, 2048, 4095], 1024, key="mla_ctx"))
    dtype_name = c2.selectbox("dtype", ["float32", "bfloat16"], key="mla_time_dtype")
    if c3.button(t("Measure decode step"), key="mla_time_btn", type="primary"):
        st.session_state["mla_timing"] = (context, dtype_name)
    if st.session_state.get("mla_timing"):
        show_timing(TIMING_CFG, *st.session_state["mla_timing"])


ui.page_footer(
    "\n".join([
        t("- **KV cache by model**: bytes a token leaves in the cache across all layers. MHA stores K and V "
          "for every head, GQA for each KV group, MQA for one head, MLA one latent c_KV plus one RoPE key "
          "(DeepSeek-V2 Table 1: (d_c + d_h^R) = 4.5 d_h values, about GQA with 2.25 groups). The dashed "
          "line is the memory of one GPU: the cache alone must fit beside the weights."),
        t("- **KV cache, measured**: SmolLM2-135M's real cache after T tokens (circles) sits on its formula line; "
          "the dotted lines are what the same tokens would cost as MHA, with MLA latents, and in Llama-2-7B and "
          "DeepSeek-V3. GQA with 3 of 9 heads caches a third of MHA; the latent here (288 values) is 3/4 of GQA's "
          "384, because SmolLM2 already shares its K and V heads."),
        t("- **Inside one MLA layer**: a seeded layer is run in float64 in both forms; differences of order "
          "1e-16 are rounding, so the absorbed form is the same function. fp32 errors are compared with the "
          "float64 reference. The cached decode shows the cache really holds only [c_KV, k^R]."),
        t("- **Decode cost**: without absorption, MLA would rebuild all keys and values at every step "
          "(compute grows with context × d_c × heads); absorption makes it read only the small latent."),
    ]),
    [
        ("DeepSeek-AI 2024, DeepSeek-V2, section 2.1 (eqs. 9-19) and Table 1",
         "https://arxiv.org/abs/2405.04434"),
        ("DeepSeek-AI 2024, DeepSeek-V3 Technical Report, section 2.1.1",
         "https://arxiv.org/abs/2412.19437"),
        ("DeepSeek-V3 inference code (model.py, MLA with attn_impl='absorb')",
         "https://github.com/deepseek-ai/DeepSeek-V3/blob/main/inference/model.py"),
        ("Shazeer 2019, Fast Transformer Decoding: One Write-Head is All You Need (MQA)",
         "https://arxiv.org/abs/1911.02150"),
        ("Ainslie et al. 2023, GQA, section 2", "https://arxiv.org/abs/2305.13245"),
        ("Su et al. 2021, RoFormer (RoPE), section 3.4", "https://arxiv.org/abs/2104.09864"),
    ],
)
