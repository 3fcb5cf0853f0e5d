"""Multi-head latent attention: what the KV cache holds, and why the absorbed form is exact."""

from __future__ import annotations

import numpy as np
import pandas as pd
import plotly.graph_objects as go
import streamlit as st

from app import cache, ui
from app.cache import mla as mla_cache
from core.configs import PRESETS
from core.measure import llm_runs
from core.models import mla

DEFAULT_MODELS = ["deepseek-v3", "deepseek-v2", "llama-2-7b", "llama-3-8b", "qwen2.5-7b", "falcon-7b"]
CACHE_DTYPES = {"bf16 / fp16 (2 B)": "bfloat16", "fp8 (1 B)": "float8_e4m3fn", "fp32 (4 B)": "float32"}
H200_BYTES = 141e9
KV_TOKENS = [16, 32, 64, 128, 256, 512, 1024, 2048, 4096, 8192]   # SmolLM2 prefill lengths (capped per device)
KV_DEFAULT = [32, 128, 512]
TIMING_CFG = mla.MLAConfig(hidden=1024, heads=16, q_lora_rank=384, kv_lora_rank=256,
                           qk_nope_head_dim=64, qk_rope_head_dim=32, v_head_dim=64)

ui.page_header(
    "Multi-head latent attention",
    "DeepSeek-V2/V3 cache one **576-value latent per token per layer** instead of keys and values "
    "for 128 heads. Below: the cache of real model configs (computed, and checked against the bytes "
    "that real attention modules allocate), a real pretrained model's cache measured after T tokens, and "
    "a live MLA layer whose *absorbed* inference form is shown to give the same output as the plain one.",
)
device = cache.device_name()
tab_models, tab_measured, tab_layer, tab_check, tab_cost = st.tabs(
    ["KV cache by model", "KV cache, measured (SmolLM2)", "Inside one MLA layer", "Formula vs allocated bytes",
     "Decode cost"])


# ---------------------------------------------------------------- KV cache by model
def kv_table(names: list[str], dtype_name: str, batch: int) -> pd.DataFrame:
    rows = []
    for name in names:
        check = mla_cache.preset_check(name, dtype_name, device)
        rows.append({
            "Model": PRESETS[name].name, "Attention": check.kind.upper(),
            "Values / token / layer": check.values_per_token_layer, "Layers": check.layers,
            "Per token (formula)": ui.fmt_bytes(check.formula_bytes_per_token, binary=True),
            "Per token (allocated)": ui.fmt_bytes(check.allocated_bytes_per_token, binary=True),
            "Match": "✓" if check.matches else "✗",
            "128K context": ui.fmt_bytes(check.formula_bytes_per_token * 131072 * batch, binary=True),
            "If K/V were cached per head": ui.fmt_bytes(check.naive_bytes_per_token, binary=True),
        })
    return pd.DataFrame(rows)


def kv_curve_figure(names: list[str], bpv: float, batch: int) -> go.Figure:
    contexts = [2**k for k in range(10, 21)]
    df = pd.DataFrame(mla_cache.kv_curve(tuple(names), tuple(contexts), bpv, batch))
    fig = go.Figure()
    for model, part in df.groupby("model", sort=False):
        fig.add_scatter(x=part["context"], y=part["bytes"] / 2**30, name=f"{model}",
                        mode="lines+markers",
                        hovertemplate="%{x:,} tokens: %{y:,.2f} GiB<extra>" + model + "</extra>")
    info = cache.device_info()
    memory = info.total_memory if info.kind == "cuda" and info.total_memory else H200_BYTES
    label = f"{info.name} memory" if info.kind == "cuda" else "H200 memory (141 GB)"
    fig.add_scatter(x=[contexts[0], contexts[-1]], y=[memory / 2**30] * 2, name=label, mode="lines",
                    line={"dash": "dash", "color": "#868E96"},
                    hovertemplate=f"{label}: %{{y:,.0f}} GiB<extra></extra>")
    ticks = [2**k for k in range(10, 21, 2)]
    fig.update_xaxes(type="log", tickvals=ticks, ticktext=[f"{t // 1024:,}K" for t in ticks])
    fig.update_yaxes(type="log", dtick=1)
    return ui.style_figure(fig, x_title="context length per sequence (tokens, log)",
                           y_title=f"KV cache for batch {batch} (GiB, log)", height=430)


with tab_models, ui.guard():
    c1, c2, c3 = st.columns([3, 1, 1])
    names = c1.multiselect("Models", list(PRESETS), default=DEFAULT_MODELS, key="mla_models",
                           format_func=lambda k: PRESETS[k].name)
    dtype_label = c2.selectbox("Cache element", list(CACHE_DTYPES), key="mla_dtype")
    batch = int(c3.number_input("Batch (sequences)", 1, 1024, 1, key="mla_batch"))
    if not names:
        st.info("Pick at least one model.", icon=":material/info:")
    else:
        dtype_name = CACHE_DTYPES[dtype_label]
        st.dataframe(kv_table(names, dtype_name, batch), hide_index=True, width="stretch")
        st.caption("*Formula*: core.memory.kv_cache_bytes_per_token. *Allocated*: one attention layer of "
                   "the real width (weights on PyTorch's meta device, so they take no memory) allocates its "
                   f"cache on **{device}**; nbytes ÷ tokens × layers.")
        bpv = {"bfloat16": 2, "float8_e4m3fn": 1, "float32": 4}[dtype_name]
        ui.plot(kv_curve_figure(names, bpv, batch), key="mla_curve")
        v3 = mla_cache.preset_check("deepseek-v3", dtype_name, device)
        st.info(
            f"**DeepSeek-V3** caches {ui.fmt_bytes(v3.formula_bytes_per_token, binary=True)} per token "
            f"(({PRESETS['deepseek-v3'].kv_lora_rank} + {PRESETS['deepseek-v3'].qk_rope_head_dim}) values "
            f"× {v3.layers} layers). A calculator that treats it as 128-head MHA (K 192 + V 128 wide per "
            f"head) gets {ui.fmt_bytes(v3.naive_bytes_per_token, binary=True)}: "
            f"**{v3.naive_bytes_per_token / v3.formula_bytes_per_token:.0f}× too much**.",
            icon=":material/calculate:")


# ---------------------------------------------------------------- KV cache measured on SmolLM2
def kv_measured_section() -> None:
    st.markdown(
        "The first tab's table is arithmetic. Here a real pretrained model, **SmolLM2-135M** (30 layers, GQA: 9 query "
        "heads share 3 KV heads of 64), prefills held-out Wikipedia text into a real KV cache "
        "(`core.nn.KVCache`), and the bytes its tensors hold after T tokens are put next to the formula "
        "(`core.memory.kv_cache_bytes_per_token`). Beside it: the same model if it cached K and V for all 9 "
        "heads (MHA), and with an MLA-style latent (DeepSeek-V3's ratios at head size 64: a 256-value c_KV "
        "and a 32-value RoPE key), and the published Llama-2-7B and DeepSeek-V3.")
    c1, c2 = st.columns([3, 1], vertical_alignment="bottom")
    cap = PRESETS["smollm2-135m"].max_seq if cache.device_info().kind == "cuda" else llm_runs.MAX_KV_TOKENS
    lengths = c1.multiselect("Tokens T to prefill (each is a real forward pass)", [t for t in KV_TOKENS if t <= cap],
                             default=KV_DEFAULT, key="mla_kv_tokens")
    if c2.button("Measure the cache", key="mla_kv_run", type="primary"):
        st.session_state["mla_kv_ran"] = tuple(sorted(lengths))
    ran = st.session_state.get("mla_kv_ran")
    if ran is None:
        st.caption("Press the button to load SmolLM2 (a few seconds the first time) and prefill each length.")
        return
    if not ran:
        st.warning("Pick at least one length.", icon=":material/info:")
        return
    if ran != tuple(sorted(lengths)):
        st.caption("Lengths changed: press the button to measure them. Showing the last run.")
    runs = ui.map_with_progress(mla_cache.llm_kv_cache, ran, device, text=lambda t: f"Prefilling {t:,} tokens …")
    last = runs[-1]
    c = st.columns(3)
    c[0].metric(f"Measured cache after {last.tokens:,} tokens", ui.fmt_bytes(last.measured_bytes, binary=True))
    c[1].metric("Formula: kv_cache_bytes_per_token × T", ui.fmt_bytes(last.predicted_bytes, binary=True),
                delta="equal at every T" if all(m.measured_bytes == m.predicted_bytes for m in runs) else "differs",
                delta_color="off", delta_arrow="off")
    per_token = {r["name"]: ui.fmt_bytes(r["bytes_per_token"], binary=True) for r in last.rows}
    c[2].metric("SmolLM2 per token (all 30 layers)", per_token["This model (GQA)"],
                delta=f"Llama-2-7B {per_token['Llama-2-7B (MHA)']} · DeepSeek-V3 {per_token['DeepSeek-V3 (MLA)']}",
                delta_color="off", delta_arrow="off")
    ui.plot(kv_measured_figure(runs), key="mla_kv_measured")
    st.dataframe(kv_measured_table(last), hide_index=True, width="stretch")
    st.caption(f"Cache values in {last.dtype} (the model's dtype on {device}). *Measured*: the nbytes of the "
               "K and V tensors the cache holds for the T tokens; *allocated*: its chunked buffers "
               f"({ui.fmt_bytes(last.allocated_bytes, binary=True)} at T = {last.tokens:,}). The other rows are the "
               "formula at the same element size: they are other models, or this one rebuilt, not run here.")


def kv_measured_figure(runs) -> go.Figure:
    tokens = [m.tokens for m in runs]
    fig = go.Figure()
    for k, row in enumerate(runs[0].rows):
        name = row["name"]
        fig.add_scatter(x=tokens, y=[m.rows[k]["bytes"] / 2**20 for m in runs], mode="lines", name=f"{name} (formula)",
                        line={"color": ui.PALETTE[k], "dash": "solid" if k == 0 else "dot"},
                        hovertemplate="T=%{x:,}: %{y:,.2f} MiB<extra>" + name + "</extra>")
    fig.add_scatter(x=tokens, y=[m.measured_bytes / 2**20 for m in runs], mode="markers", name="SmolLM2 measured",
                    marker={"color": ui.PALETTE[0], "size": 12, "symbol": "circle-open", "line": {"width": 3}},
                    hovertemplate="T=%{x:,}: %{y:,.2f} MiB measured<extra>real KV cache</extra>")
    fig.update_xaxes(type="log", tickvals=tokens, ticktext=[f"{t:,}" for t in tokens])
    fig.update_yaxes(type="log", dtick=1)
    return ui.style_figure(fig, x_title="tokens in the cache T (log)", y_title="KV cache, all layers (MiB, log)",
                           height=420)


def kv_measured_table(m) -> pd.DataFrame:
    base = m.rows[0]["bytes_per_token"]
    return pd.DataFrame([{
        "Model": r["name"], "Attention": r["kind"], "Layers": r["layers"],
        "Values / token / layer": r["values_per_token_layer"],
        "Per token": ui.fmt_bytes(r["bytes_per_token"], binary=True),
        f"At T = {m.tokens:,}": ui.fmt_bytes(r["bytes"], binary=True),
        "Measured": ui.fmt_bytes(m.measured_bytes, binary=True) if k == 0 else "—",
        "× SmolLM2": f"{r['bytes_per_token'] / base:.2f}×"} for k, r in enumerate(m.rows)])


with tab_measured, ui.guard():
    kv_measured_section()


# ---------------------------------------------------------------- one live MLA layer
def mla_graph(cfg: mla.MLAConfig) -> str:
    q = (f'h -> cq [label="W_DQ"]; cq [label="c_Q ({cfg.q_lora_rank})"]; '
         f'cq -> qc [label="W_UQ"]; cq -> qr [label="W_QR + RoPE"];') if cfg.q_lora_rank else (
        'h -> qc [label="W_Q"]; h -> qr [label="W_QR + RoPE"];')
    return f"""digraph {{ rankdir=LR; node [shape=box, style="rounded,filled", fillcolor="#EDF2FF",
      fontname="sans-serif", fontsize=11]; edge [fontsize=10, fontname="sans-serif"];
      h [label="h_t ({cfg.hidden})"];
      {q}
      qc [label="q^C: {cfg.heads} × {cfg.qk_nope_head_dim}"]; qr [label="q^R: {cfg.heads} × {cfg.qk_rope_head_dim}"];
      subgraph cluster_cache {{ label="KV cache ({cfg.cache_width} values / token)"; style=dashed;
        ckv [label="c_KV ({cfg.kv_lora_rank})", fillcolor="#FFE8CC"];
        kr [label="k^R ({cfg.qk_rope_head_dim}, shared)", fillcolor="#FFE8CC"]; }}
      h -> ckv [label="W_DKV"]; h -> kr [label="W_KR + RoPE"];
      ckv -> kc [label="W_UK"]; ckv -> vc [label="W_UV"];
      kc [label="k^C: {cfg.heads} × {cfg.qk_nope_head_dim}"]; vc [label="v^C: {cfg.heads} × {cfg.v_head_dim}"];
      attn [label="softmax(q·k / √{cfg.qk_head_dim}) v", fillcolor="#D3F9D8"];
      qc -> attn; qr -> attn; kc -> attn; kr -> attn; vc -> attn; attn -> o [label="W_O"];
      o [label="u_t ({cfg.hidden})"]; }}"""


def layer_inputs() -> tuple[mla.MLAConfig, int, int]:
    d = mla.MLAConfig()
    c = st.columns(4)
    hidden = int(c[0].select_slider("Hidden size d", [64, 128, 256, 512, 1024], d.hidden, key="mla_hidden"))
    heads = int(c[1].slider("Heads n_h", 1, 16, d.heads, key="mla_heads"))
    q_rank = int(c[2].number_input("q_lora_rank (0 = none)", 0, 1024, d.q_lora_rank, 8, key="mla_qrank"))
    kv_rank = int(c[3].number_input("kv_lora_rank d_c", 1, 1024, d.kv_lora_rank, 8, key="mla_kvrank"))
    c = st.columns(4)
    nope = int(c[0].number_input("qk_nope_head_dim", 1, 256, d.qk_nope_head_dim, 8, key="mla_nope"))
    rope = int(c[1].number_input("qk_rope_head_dim", 2, 128, d.qk_rope_head_dim, 2, key="mla_rope"))
    v_dim = int(c[2].number_input("v_head_dim", 1, 256, d.v_head_dim, 8, key="mla_vdim"))
    seq = int(c[3].slider("Tokens", 4, 128, 32, key="mla_seq"))
    cfg = mla.MLAConfig(hidden=hidden, heads=heads, q_lora_rank=q_rank, kv_lora_rank=kv_rank,
                        qk_nope_head_dim=nope, qk_rope_head_dim=rope, v_head_dim=v_dim)
    return cfg, seq, int(st.session_state.get("mla_seed", 0))


def show_comparison(cfg: mla.MLAConfig, r) -> None:
    scale = max(r.max_abs_out, 1e-30)
    c = st.columns(4)
    c[0].metric("Absorbed vs plain (fp64)", f"{r.absorbed_vs_plain_fp64:.1e}",
                help="max |absorbed − plain| over all outputs, both in float64")
    c[1].metric("Absorbed fp32 vs fp64 reference", f"{r.absorbed_fp32_vs_fp64:.1e}",
                help=f"plain fp32 vs fp64: {r.plain_fp32_vs_fp64:.1e}; outputs are of order {scale:.2f}")
    c[2].metric("Cached decode vs full forward", f"{r.decode_latent_vs_full:.1e}",
                help="prefill half the tokens, then decode one at a time from [c_KV, k^R] (absorbed form)")
    c[3].metric("Cache per token per layer", ui.fmt_bytes(r.latent_bytes_per_token),
                delta=f"vs {ui.fmt_bytes(r.decompressed_bytes_per_token)} for full K/V",
                delta_color="off", delta_arrow="off")
    params = mla_cache.param_count(cfg)
    st.caption(f"{params['total']:,} attention weights (query {params['query']:,}, KV down "
               f"{params['kv_down']:,}, KV up {params['kv_up']:,}, output {params['output']:,}). "
               f"Cache bytes are the nbytes of the tensors the module allocates, in {r.cache_dtype}.")


def probs_figure(probs: np.ndarray) -> go.Figure:
    fig = go.Figure(go.Heatmap(z=probs, colorscale="Blues", zmin=0,
                               hovertemplate="query %{y}, key %{x}: p = %{z:.3f}<extra></extra>"))
    fig.update_yaxes(autorange="reversed")
    return ui.style_figure(fig, x_title="key position (token)", y_title="query position (token)",
                           height=360, title="Head 1 attention probabilities (identical in both forms)")


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
            st.markdown(
                "**Plain form**: rebuild k^C = W_UK c_KV and v^C = W_UV c_KV for every cached token, "
                "then ordinary attention.\n\n**Absorbed form**: q^C·k^C = (W_UKᵀ q^C)·c_KV, so the "
                "query is mapped into the latent once and scores are taken against c_KV directly; "
                "the weighted sum of c_KV goes through W_UV and W_O afterwards. Attention becomes "
                f"MQA with one {cfg.cache_width}-wide key and a {cfg.kv_lora_rank}-wide value "
                "shared by all heads.")
            st.number_input("Seed", 0, 10_000, 0, key="mla_seed")


# ---------------------------------------------------------------- formula vs allocated (small stacks)
with tab_check, ui.guard():
    st.markdown("Small **real** attention stacks (2 layers, 64 wide) with the attention kind of each "
                "preset: a prompt is prefilled through their caches, then tokens are decoded one at a "
                "time. The cache tensors they allocate are measured and compared with the formula for "
                "the same small config; the cached decode is compared with a full causal forward.")
    dtype_name = st.selectbox("Module dtype", ["float64", "float32", "bfloat16"], key="mla_small_dtype")
    rows = []
    for name in mla.SMALL_CHANGES:
        run = mla_cache.small_run(name, dtype_name, device)
        cfg_small = mla_cache.small_config(name)
        rows.append({
            "Kind (as in)": f"{run.check.kind.upper()} ({PRESETS[name].name})",
            "KV heads / latent": (f"latent {cfg_small.kv_lora_rank} + rope {cfg_small.qk_rope_head_dim}"
                                  if cfg_small.is_mla else f"{cfg_small.kv_heads} of {cfg_small.heads}"),
            "Formula (B / token)": run.check.formula_bytes_per_token,
            "Allocated (B / token)": run.check.allocated_bytes_per_token,
            "Match": "✓" if run.check.matches else "✗",
            "Cached decode vs full": f"{run.decode_vs_full:.1e}",
        })
    st.dataframe(pd.DataFrame(rows), hide_index=True, width="stretch")
    st.caption("Differences of order 1e-16 (float64), 1e-7 (float32) or 1e-2 (bfloat16) are rounding: "
               "the cached and the full forward sum in different orders.")


# ---------------------------------------------------------------- decode cost
def cost_figure(cfg: mla.MLAConfig, what: str, bpv: float) -> go.Figure:
    contexts = [2**k for k in range(8, 18)]
    fig = go.Figure()
    for mode in mla.DECODE_MODES:
        ys = [mla_cache.decode_cost(cfg, s, bpv)[mode][what] for s in contexts]
        fig.add_scatter(x=contexts, y=ys, name=mode, mode="lines+markers",
                        hovertemplate="%{x:,} tokens: %{y:.3s}<extra>" + mode + "</extra>")
    fig.update_xaxes(type="log", tickvals=contexts[::2], ticktext=[f"{c:,}" for c in contexts[::2]])
    fig.update_yaxes(type="log", dtick=1, exponentformat="SI")
    unit = "FLOPs" if what == "flops" else "bytes of cache read"
    return ui.style_figure(fig, x_title="cached tokens (log)", y_title=f"{unit} per token per layer (log)",
                           height=340)


def show_timing(cfg: mla.MLAConfig, context: int, dtype_name: str) -> None:
    timings = ui.run_with_progress(mla_cache.decode_timing, cfg, context, device, dtype_name)
    bpv = 4 if dtype_name == "float32" else 2
    cost = mla_cache.decode_cost(cfg, context, bpv)
    rows = [{"Form": mode, "Median (ms)": round(t.median_ms, 3),
             "FLOPs (analytic)": ui.fmt_count(cost[mode]["flops"]),
             "Cache read": ui.fmt_bytes(cost[mode]["cache_bytes_read"], binary=True),
             "Achieved GFLOP/s": round(cost[mode]["flops"] / t.median_ms / 1e6, 2),
             "Repeats": t.repeats} for mode, t in timings.items()]
    st.dataframe(pd.DataFrame(rows), hide_index=True, width="stretch")
    info = cache.device_info()
    st.caption(f"Measured on {ui.escape(ui.device_label(info))}: one decode step of one layer, median "
               "of the repeats after warm-up. On a shared CPU the times are noisy; the ordering is what "
               "to look at.")


with tab_cost, ui.guard():
    v3 = mla.MLAConfig.from_model(PRESETS["deepseek-v3"])
    st.markdown("Per decoded token and layer, at DeepSeek-V3's real widths (analytic counts). "
                "**plain**: re-expand k^C and v^C from every cached latent at every step; "
                "**decompressed**: cache full per-head K and V (71× the memory); "
                "**absorbed**: attend over the latent directly. Absorbed spends a few times the "
                "attention FLOPs of the decompressed cache (every head scores against the 576-wide "
                "latent) but reads 71× fewer bytes, and decoding one token is bound by memory reads.")
    ui.plot_pair(cost_figure(v3, "flops", 2), cost_figure(v3, "cache_bytes_read", 2),
                 keys=("mla_cost_flops", "mla_cost_bytes"))
    st.caption("Plain and absorbed read the same cached latent, so their byte lines coincide; they "
               "differ in compute (left). bf16 cache, one layer, batch 1.")
    st.subheader("Measured on this device")
    st.caption(f"A scaled-down live MLA layer ({mla_cache.param_count(TIMING_CFG)['total']:,} weights: "
               f"d = {TIMING_CFG.hidden}, {TIMING_CFG.heads} heads, d_c = {TIMING_CFG.kv_lora_rank}, "
               f"d_h^R = {TIMING_CFG.qk_rope_head_dim}; DeepSeek-V3: 7168, 128, 512, 64), caches filled "
               "with random values.")
    c1, c2, c3 = st.columns([2, 1, 1])
    context = int(c1.select_slider("Cached tokens", [256, 512, 1024, 2048, 4095], 1024, key="mla_ctx"))
    dtype_name = c2.selectbox("dtype", ["float32", "bfloat16"], key="mla_time_dtype")
    if c3.button("Measure decode step", key="mla_time_btn", type="primary"):
        st.session_state["mla_timing"] = (context, dtype_name)
    if st.session_state.get("mla_timing"):
        show_timing(TIMING_CFG, *st.session_state["mla_timing"])


ui.page_footer(
    "- **KV cache by model**: bytes a token leaves in the cache across all layers. MHA stores K and V "
    "for every head, GQA for each KV group, MQA for one head, MLA one latent c_KV plus one RoPE key "
    "(DeepSeek-V2 Table 1: (d_c + d_h^R) = 4.5 d_h values, about GQA with 2.25 groups). The dashed "
    "line is the memory of one GPU: the cache alone must fit beside the weights.\n"
    "- **KV cache, measured**: SmolLM2-135M's real cache after T tokens (circles) sits on its formula line; "
    "the dotted lines are what the same tokens would cost as MHA, with MLA latents, and in Llama-2-7B and "
    "DeepSeek-V3. GQA with 3 of 9 heads caches a third of MHA; the latent here (288 values) is 3/4 of GQA's "
    "384, because SmolLM2 already shares its K and V heads.\n"
    "- **Inside one MLA layer**: a seeded layer is run in float64 in both forms; differences of order "
    "1e-16 are rounding, so the absorbed form is the same function. fp32 errors are compared with the "
    "float64 reference. The cached decode shows the cache really holds only [c_KV, k^R].\n"
    "- **Decode cost**: without absorption, MLA would rebuild all keys and values at every step "
    "(compute grows with context × d_c × heads); absorption makes it read only the small latent.",
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
