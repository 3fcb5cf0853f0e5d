"""FlashAttention: our Triton kernel's tiles and online softmax, its memory traffic, its speed."""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import pandas as pd
import plotly.graph_objects as go
import streamlit as st
from plotly.subplots import make_subplots

from app import cache, ui
from app.cache import attention as attention_cache
from app.cache import llm as llm_cache
from app.i18n import N_, t, tr
from core import attention
from core.measure import attention_bench, llm_runs
from core.nn import BACKENDS
from core.views import tiling

SEQ_OPTIONS = [2**k for k in range(6, 16)]                   # 64 .. 32768 (capped per device)
IO_SEQ_OPTIONS = [2**k for k in range(8, 18)]                # 256 .. 131072
SRAM_KB = [48, 64, 96, 100, 128, 164, 192, 228, 256]
LLM_PROMPT = "The Eiffel Tower is located in the city of"    # i18n: skip (10 tokens: the interpreter's Triton run takes seconds)
LLM_MAX_CHARS = 4000
LLM_PREFILL_GPU = [512, 1024, 2048, 4096, 8192]              # bf16 on CUDA, up to the model's context
LLM_PREFILL_CPU = [32, 64, 128, 256, 512]
H200 = (9, 0)
COLORS = {"naive": ui.PALETTE[1], "sdpa": ui.PALETTE[0], "tiled": ui.PALETTE[2], "triton": ui.PALETTE[4],
          "flash": ui.PALETTE[3], "ours": ui.PALETTE[4]}
# KernelConfig.source of kernels/flash_attention.py's block tables, shown with tr() (kernels/ imports
# nothing from core/, so its table names are catalogued here)
KERNEL_TABLES = (N_("Hopper table, head_dim <= 64"), N_("Hopper table, head_dim <= 128"),
                 N_("Ampere table, head_dim <= 64"), N_("Ampere table, head_dim <= 128"),
                 N_("CUDA fp32 table"), N_("interpreter (CPU)"))
PASSES = {"fwd": N_("fwd"), "fwd+bwd": N_("fwd+bwd")}

ui.page_header(
    t("FlashAttention"),
    t("Attention without the N × N score matrix in memory: **our Triton FlashAttention-2 kernel** streams "
      "key/value tiles through on-chip memory and keeps a running max and sum per row (online softmax). "
      "Below: the kernel's real tiles step by step, the memory traffic this saves (FlashAttention paper, "
      "Theorem 2), timings against naive attention and PyTorch SDPA on this machine, and a real pretrained "
      "LLM (SmolLM2-135M) run with each attention backend."),
)
device = cache.device_name()
info = cache.device_info()
interpreted = info.kind != "cuda" or info.triton_interpreted
if interpreted:
    st.info(t("No CUDA GPU here: our Triton kernel runs in Triton's **CPU interpreter**. That checks "
              "that it computes the right thing, nothing more; its interpreter timings are never shown. "
              "GPU timings recorded earlier are in the last tab."), icon=":material/info:")
tab_tiles, tab_io, tab_time, tab_llm, tab_gpu = st.tabs(
    [t("Tiles & online softmax"), t("Memory traffic"), t("Timings on this machine"), t("Inside SmolLM2"),
     t("Recorded GPU results")])


def int_slider(container, label: str, key: str, lo: int, hi: int, default: int, help: str | None = None) -> int:
    """A keyed slider whose range may change between runs (its value is clamped first)."""
    if hi <= lo:
        container.caption(f"{label}: **{lo}**")
        return lo
    st.session_state[key] = min(max(int(st.session_state.get(key, default)), lo), hi)
    return container.slider(label, lo, hi, key=key, help=help)


def impl_label(impl: str) -> str:
    """An implementation's name (core.measure.attention_bench.IMPL_LABELS) in the session's language."""
    return tr(attention_bench.IMPL_LABELS[impl]) if impl in attention_bench.IMPL_LABELS else str(impl)


def pass_label(mode: str) -> str:
    return tr(PASSES[mode]) if mode in PASSES else str(mode)


def status_text(status):
    """A row's status (core's words) in the session's language; a refusal or a failure carries
    core's own message, translated too."""
    if not isinstance(status, str) or not status:
        return status
    if status.startswith("refused: "):
        return t("refused: {reason}", reason=tr(status.removeprefix("refused: ")))
    if status.startswith("failed: "):
        return t("failed: {reason}", reason=tr(status.removeprefix("failed: ")))
    return tr(status)


# ---------------------------------------------------------------- tiles & online softmax
def tiling_config() -> tiling.TilingConfig:
    c1, c2, c3, c4 = st.columns([1.3, 1.2, 1.2, 1])
    source = c1.radio(t("Inputs"), tiling.TILING_SOURCES, key="fa_source",
                      format_func={"random": t("Random Gaussian q, k, v"),
                                   "minilm": t("A real head: all-MiniLM-L6-v2 on Wikipedia")}.get)
    causal = c4.toggle(t("Causal mask"), key="fa_causal", help=t("Decoder-style: row i sees keys 0..i. "
                       "Tiles wholly above the diagonal are never loaded."))
    text, layer, head = "", 0, 0
    if source == "random":
        n = c2.slider(t("Sequence length N"), 16, tiling.MAX_TILING_SEQ, 200, key="fa_n")
        head_dim = c3.select_slider("head_dim", [16, 32, 64, 128], value=64, key="fa_d")
    else:
        title = c2.selectbox(t("Wikipedia article"), attention_cache.wiki_titles(), key="fa_article")
        text = attention_cache.wiki_text(title)
        n = c2.slider(t("Tokens (at most)"), 16, tiling.MAX_TILING_SEQ, 160, key="fa_tokens")
        layer = c3.slider(t("Layer"), 0, tiling.MINILM_LAYERS - 1, 1, key="fa_layer")
        head = c3.slider(t("Head"), 0, tiling.MINILM_HEADS - 1, 0, key="fa_head")
        head_dim = tiling.MINILM_HEAD_DIM
    blocks = block_choice(head_dim)
    return tiling.TilingConfig(n=n, head_dim=head_dim, causal=causal, block_m=blocks.block_m,
                          block_n=blocks.block_n, source=source, text=text, layer=layer, head=head)


def block_choice(head_dim: int):
    here = attention_cache.block_sizes(head_dim, "bfloat16" if info.kind == "cuda" else "float32", device)
    hopper = attention_cache.block_sizes(head_dim, "bfloat16", "cuda", H200)
    options = {"device": t("this machine's kernel: {block_m} × {block_n} ({source})", block_m=here.block_m,
                           block_n=here.block_n, source=tr(here.source)),
               "h200": t("H100/H200 kernel, bf16: {block_m} × {block_n}", block_m=hopper.block_m,
                         block_n=hopper.block_n)}
    pick = st.radio(t("Tiles (BLOCK_M × BLOCK_N)"), list(options), format_func=options.get, horizontal=True,
                    key="fa_blocks", help=t("The block sizes the kernel really launches with "
                    "(kernels/flash_attention.py: block_sizes)."))
    return here if pick == "device" else hopper


def tile_map(view, prog, q_block: int, key_block: int) -> go.Figure:
    z = np.where(np.isfinite(view.scores), np.round(view.scores, 3), np.nan).astype(np.float32)
    fig = go.Figure(go.Heatmap(z=z, colorscale="Viridis", colorbar={"title": t("score")},
                               hovertemplate=t("query %{y}, key %{x}: score %{z:.3f}<extra></extra>")))
    bm, bn, n = view.block_m, view.block_n, view.n
    t_r, t_c = math.ceil(n / bm), math.ceil(n / bn)
    for i in range(t_r):
        for j in range(t_c):
            if view.causal and j * bn >= min((i + 1) * bm, n):
                fig.add_shape(type="rect", x0=j * bn - 0.5, x1=min((j + 1) * bn, n) - 0.5, y0=i * bm - 0.5,
                              y1=min((i + 1) * bm, n) - 0.5, fillcolor="#DEE2E6", opacity=0.85, line_width=0)
    for x in range(0, t_c * bn + 1, bn):
        fig.add_vline(x=x - 0.5, line_width=0.6, line_color="rgba(255,255,255,0.6)")
    for y in range(0, t_r * bm + 1, bm):
        fig.add_hline(y=y - 0.5, line_width=0.6, line_color="rgba(255,255,255,0.6)")
    r0, r1 = q_block * bm - 0.5, (q_block + 1) * bm - 0.5
    for j in range(t_c):
        x0, x1 = j * bn - 0.5, (j + 1) * bn - 0.5
        if j in prog.skipped:
            style = {"line": {"color": "#868E96", "width": 1, "dash": "dot"}}
        elif j == key_block:
            style = {"line": {"color": "#F76707", "width": 4}}
        elif j < key_block:
            style = {"line": {"color": "#12B886", "width": 2}}
        else:
            style = {"line": {"color": "rgba(255,255,255,0.9)", "width": 1.5, "dash": "dash"}}
        fig.add_shape(type="rect", x0=x0, x1=x1, y0=r0, y1=r1, **style)
    if t_c * bn > n:   # the kernel's last key block runs past N: those columns are masked
        fig.add_shape(type="rect", x0=n - 0.5, x1=t_c * bn - 0.5, y0=-0.5, y1=t_r * bm - 0.5,
                      fillcolor="#FA5252", opacity=0.12, line_width=0)
    if t_r * bm > n:   # ... and its last query block: those rows are loaded as 0 and never stored
        fig.add_shape(type="rect", x0=-0.5, x1=t_c * bn - 0.5, y0=n - 0.5, y1=t_r * bm - 0.5,
                      fillcolor="#FA5252", opacity=0.12, line_width=0)
    fig.add_hline(y=prog.row, line_color="#E64980", line_width=1.5)
    fig.update_yaxes(autorange="reversed", range=None, scaleanchor="x", constrain="domain")
    fig.update_xaxes(range=[-0.5, t_c * bn - 0.5], constrain="domain")
    return ui.style_figure(fig, x_title=t("key position j (token)"), y_title=t("query position i (token)"),
                           height=600)


def running_stats_figure(prog) -> go.Figure:
    fig = make_subplots(rows=3, cols=1, shared_xaxes=True, vertical_spacing=0.06,
                        subplot_titles=(t("running max m (log units)"), t("running sum ℓ = Σ exp(s − m)"),
                                        t("rescale factor α = exp(m_old − m_new)")))
    x = list(prog.visited)
    done = prog.done
    shade = ["#4C6EF5" if k < done else "#CED4DA" for k in range(len(x))]
    fig.add_scatter(x=x, y=prog.m, mode="lines+markers", name=t("running max m"), marker_color=shade,
                    line_color="#4C6EF5", row=1, col=1,
                    hovertemplate=t("after key block %{x}: m = %{y:.4f}<extra></extra>"))
    fig.add_scatter(x=x, y=prog.tile_max, mode="markers", name=t("max inside the block"), marker_symbol="x",
                    marker_color="#868E96", row=1, col=1,
                    hovertemplate=t("block %{x}: max %{y:.4f}<extra></extra>"))
    fig.add_hline(y=prog.final_m, line_dash="dash", line_color="#12B886", row=1, col=1,
                  annotation_text=t("row max (naive)"), annotation_position="bottom right")
    fig.add_scatter(x=x, y=prog.l, mode="lines+markers", name=t("running sum ℓ"), marker_color=shade,
                    line_color="#7950F2", row=2, col=1,
                    hovertemplate=t("after key block %{x}: ℓ = %{y:.4f}<extra></extra>"))
    fig.add_hline(y=prog.final_l, line_dash="dash", line_color="#12B886", row=2, col=1,
                  annotation_text=t("Σ exp(s − max) (naive)"), annotation_position="bottom right")
    fig.add_bar(x=x, y=prog.alpha, name=t("rescale α"), marker_color=shade, row=3, col=1,
                hovertemplate=t("key block %{x}: α = %{y:.4f}<extra></extra>"))
    fig.add_vline(x=prog.key_block, line_color="#F76707", line_width=2)
    fig.update_xaxes(title_text=t("key block j"), dtick=1, row=3, col=1)
    fig.update_yaxes(range=[0, 1.05], row=3, col=1)
    fig.update_layout(showlegend=False)
    ui.style_figure(fig, height=600)
    fig.update_layout(margin={"t": 30})
    return fig


def softmax_row_figure(view, prog) -> go.Figure:
    cols = np.arange(view.n)
    labels = [ui.escape(tok) for tok in view.tokens] if view.tokens else [""] * view.n
    fig = go.Figure()
    fig.add_bar(x=cols, y=prog.final, name=t("softmax from naive attention (final)"), marker_color="#ADB5BD",
                customdata=labels, hovertemplate=t("key %{x} %{customdata}: p = %{y:.4g}<extra>naive</extra>"))
    fig.add_scatter(x=cols, y=prog.estimate, mode="markers", marker={"size": 5, "color": "#F76707"},
                    name=t("online estimate after key block {j}", j=prog.key_block), customdata=labels,
                    hovertemplate=t("key %{x} %{customdata}: exp(s − m)/ℓ = %{y:.4g}<extra>online</extra>"))
    seen = int(np.sum(np.isfinite(prog.estimate)))
    if seen < view.n:
        fig.add_vrect(x0=seen - 0.5, x1=view.n - 0.5, fillcolor="#E9ECEF", opacity=0.5, line_width=0,
                      annotation_text=t("not seen yet"), annotation_position="top left")
    return ui.style_figure(fig, x_title=t("key position j"), y_title=t("attention weight of row {row}", row=prog.row),
                           height=320)


def tiling_section() -> None:
    cfg = tiling_config()
    with st.spinner(t("Loading all-MiniLM-L6-v2 …") if cfg.source == "minilm" else t("Computing …")):
        view = attention_cache.walkthrough(cfg)
    t_r, t_c = math.ceil(view.n / view.block_m), math.ceil(view.n / view.block_n)
    s1, s2, s3 = st.columns(3)
    q_block = int_slider(s1, t("Query block i"), "fa_qblock", 0, t_r - 1, min(1, t_r - 1),
                         help=t("Rows {block_m}·i … — one kernel program (BLOCK_M rows).", block_m=view.block_m))
    rows_here = min(view.block_m, view.n - q_block * view.block_m)
    busiest = attention_cache.busiest_row(cfg, q_block) - q_block * view.block_m
    offset = int_slider(s2, t("Row within the block"), "fa_row", 0, rows_here - 1, busiest,
                        help=t("Default: the row whose running max moves most often."))
    key_block = int_slider(s3, t("Step: key block j"), "fa_kblock", 0, t_c - 1, 0,
                           help=t("The kernel's inner loop: one BLOCK_N-wide key/value tile per step."))
    row = q_block * view.block_m + offset
    prog = attention_cache.row_progress(cfg, row, key_block)
    tiling_metrics(view, prog)
    left, right = st.columns([1.15, 1])
    with left:
        ui.plot(tile_map(view, prog, q_block, key_block), key="fa_tilemap")
        st.caption(t("N × N scaled scores of one head, cut into {block_m} × {block_n} tiles. "
                     "Orange: the tile loaded at this step; green: tiles already folded into the running "
                     "statistics; grey: skipped by the causal mask (never loaded); red bands: rows and columns "
                     "past N that the kernel masks in its last tiles. Pink line: the chosen row.",
                     block_m=view.block_m, block_n=view.block_n))
    with right:
        ui.plot(running_stats_figure(prog), key="fa_running")
    ui.plot(softmax_row_figure(view, prog), key="fa_softmax_row")
    tiling_agreement(view, prog)
    kernel_section(cfg, prog)


def tiling_metrics(view, prog) -> None:
    m1, m2, m3, m4, m5 = st.columns(5)
    m1.metric(t("Tiles loaded (this query block)"), f"{prog.done} / {len(prog.visited)}")
    m2.metric(t("Skipped (causal)"), len(prog.skipped))
    if prog.done:
        m3.metric(t("Running max m (row {row})", row=prog.row), f"{prog.m[prog.done - 1]:.4f}")
        m4.metric(t("Running sum ℓ"), f"{prog.l[prog.done - 1]:.4f}")
        m5.metric(t("Rescale α at this step"), f"{prog.alpha[prog.done - 1]:.4f}")
    else:
        m3.metric(t("Running max m (row {row})", row=prog.row), "−∞")
        m4.metric(t("Running sum ℓ"), "0")
        m5.metric(t("Rescale α at this step"), "—")


def tiling_agreement(view, prog) -> None:
    if prog.lse_err is not None:
        st.success(t("Every key block of row {row} is in: m + log ℓ equals the naive log-sum-exp "
                     "(|Δ| = {lse_err:.1e}) and the online softmax equals naive softmax "
                     "(max |Δ| = {prob_err:.1e}). Over the whole head, tiled vs naive output: "
                     "max |Δ| = {out_err:.1e} (float64).", row=prog.row, lse_err=prog.lse_err,
                     prob_err=prog.prob_err, out_err=view.out_max_err), icon=":material/check_circle:")
    else:
        st.info(t("After key block {j} the estimate is normalised over the keys seen so far; "
                  "each new block can raise the max m, and then α < 1 shrinks what was summed before. "
                  "Step to the last block to see it meet naive softmax.", j=prog.key_block),
                icon=":material/footprint:")


def kernel_section(cfg, prog) -> None:
    if not st.toggle(t("Run our Triton kernel on this head too"), value=True, key="fa_kernel_check"):
        return
    where = t("Triton's CPU interpreter") if interpreted else info.name
    with st.spinner(t("Running the kernel ({where}) …", where=where)):
        check = attention_cache.kernel_check(cfg, device)
    lse_online = prog.m[-1] + math.log(prog.l[-1])
    st.markdown(t(
        "**Our Triton kernel** on this head (fp32, BLOCK_M × BLOCK_N = {block_m} × {block_n}, "
        "{where}): max |O − naive| = `{out_err:.1e}`, max |LSE − naive| = "
        "`{lse_err:.1e}`. Row {row}: the kernel saved LSE = `{lse:.6f}`, "
        "the online m + log ℓ above gives `{lse_online:.6f}` — the backward pass recomputes P from this LSE.",
        block_m=check.block_m, block_n=check.block_n, where=where, out_err=check.out_max_err,
        lse_err=check.lse_max_err, row=prog.row, lse=check.lse[prog.row], lse_online=lse_online))


# ---------------------------------------------------------------- memory traffic
def io_section() -> None:
    c1, c2, c3, c4 = st.columns(4)
    n = c1.select_slider(t("Sequence length N"), IO_SEQ_OPTIONS, value=4096, key="fa_io_n")
    d = c2.select_slider(t("head_dim d"), [16, 32, 64, 128], value=64, key="fa_io_d")
    sram_kb = c3.select_slider(t("On-chip SRAM M (KB per SM)"), SRAM_KB, value=228, key="fa_io_sram",
                               help=t("A100: 192 KB per SM (164 KB usable by one block); H100/H200: 256 KB "
                                      "per SM (228 KB shared memory, 227 KB per block)."))
    causal = c4.toggle(t("Causal (our kernel skips tiles)"), key="fa_io_causal")
    block_m = attention_cache.block_sizes(d, "bfloat16", "cuda", H200).block_m
    cfg = attention.IOConfig(n=n, head_dim=d, sram_bytes=sram_kb * 1024, bytes_per_elem=2, block_m=block_m, causal=causal)
    io = attention_cache.io(cfg)
    m1, m2, m3, m4 = st.columns(4)
    m1.metric(t("Standard attention (Alg. 0)"), ui.fmt_bytes(io.naive_bytes))
    m2.metric(t("FlashAttention (Alg. 1)"), ui.fmt_bytes(io.flash_bytes),
              t("{ratio:.1f}× less than standard", ratio=io.naive_bytes / io.flash_bytes), delta_color="off",
              delta_arrow="off")
    m3.metric(t("Our FA2 loop (BLOCK_M {block_m})", block_m=block_m), ui.fmt_bytes(io.ours_bytes),
              t("{ratio:.1f}× less than standard", ratio=io.naive_bytes / io.ours_bytes), delta_color="off",
              delta_arrow="off")
    m4.metric(t("N × N buffers of standard attention"), ui.fmt_bytes(io.naive_extra_bytes, binary=True),
              t("kernel: {size} of LSE", size=ui.fmt_bytes(io.flash_extra_bytes, binary=True)), delta_color="off",
              delta_arrow="off")
    left, right = st.columns([1, 2])
    with left:
        ui.plot(io_bars(io), key="fa_io_bars")
    with right:
        ui.plot(io_figure(cfg), key="fa_io_curve")
    st.caption(t(
        "Per head, one forward, 16-bit values. Standard attention (paper Alg. 0) writes S = QKᵀ, reads it "
        "back for P = softmax(S), writes P and reads it for PV: 4Nd + 4N² element accesses, Θ(Nd + N²). "
        "FlashAttention (Alg. 1) with M = {sram_kb} KB = {elements:,} elements uses B_c = "
        "⌈M/4d⌉ = {block_c} keys and B_r = min(B_c, d) = {block_r} queries per tile, and re-reads Q "
        "and O once per key block ({t_c} times): Θ(N²d²/M). FlashAttention-2 (our kernel) swaps the "
        "loops: Q is read and O written once, K and V once per query block ({t_r} blocks of {block_m}). "
        "Its query block is sized by registers, not by all of SRAM, so it may move more bytes than "
        "Algorithm 1; it wins on parallelism (one program per query block) and fewer non-matmul FLOPs. "
        "Both grow as N² with a constant far below standard attention's, and neither writes an N × N matrix.",
        sram_kb=sram_kb, elements=cfg.sram_bytes // 2, block_c=io.block_c, block_r=io.block_r, t_c=io.t_c,
        t_r=io.t_r, block_m=block_m))
    memory_table(n, d)


def io_bars(io) -> go.Figure:
    names = [t("standard (Alg. 0)"), t("FlashAttention (Alg. 1)"), t("our FA2 loop")]
    reads = [io.naive_read_bytes, io.flash_read_bytes, io.ours_read_bytes]
    totals = [io.naive_bytes, io.flash_bytes, io.ours_bytes]
    fig = go.Figure()
    fig.add_bar(x=names, y=[r / 1e6 for r in reads], name=t("read from HBM"), marker_color=ui.PALETTE[0],
                hovertemplate=t("%{x}: %{y:,.2f} MB read<extra></extra>"))
    fig.add_bar(x=names, y=[(tot - r) / 1e6 for tot, r in zip(totals, reads, strict=True)], name=t("written to HBM"),
                marker_color=ui.PALETTE[1], hovertemplate=t("%{x}: %{y:,.2f} MB written<extra></extra>"))
    fig.update_layout(barmode="stack")
    return ui.style_figure(fig, y_title=t("HBM traffic per head (MB)"), height=380)


def io_figure(cfg) -> go.Figure:
    seqs = list(IO_SEQ_OPTIONS)
    rows = [attention_cache.io(dataclasses.replace(cfg, n=s)) for s in seqs]
    fig = go.Figure()
    for name, attr, color in ((t("standard attention (Alg. 0)"), "naive_bytes", COLORS["naive"]),
                              (t("FlashAttention (Alg. 1)"), "flash_bytes", COLORS["flash"]),
                              (t("our FA2 loop"), "ours_bytes", COLORS["ours"])):
        fig.add_scatter(x=seqs, y=[getattr(r, attr) / 1e6 for r in rows], name=name, mode="lines+markers",
                        line={"color": color},
                        hovertemplate="N=%{x:,}: %{y:,.1f} MB<extra>" + name + "</extra>")  # i18n: skip (units, markup)
    fig.add_vline(x=cfg.n, line_dash="dash", line_color="#868E96")
    fig.update_xaxes(type="log")
    fig.update_yaxes(type="log")
    return ui.style_figure(fig, x_title=t("sequence length N (log)"), y_title=t("HBM traffic per head (MB, log)"),
                           height=380)


def memory_table(n: int, d: int) -> None:
    st.markdown(t("**Peak memory on this device** (batch × heads below, N capped at what a benchmark may use here)"))
    c1, c2, c3 = st.columns([1, 1, 2])
    batch = c1.slider(t("batch"), 1, 8, 1, key="fa_mem_b")
    heads = c2.slider(t("heads"), 1, 32, 8, key="fa_mem_h")
    n_here = min(n, attention_cache.max_bench_seq(device),
                 attention_cache.max_bench_elements(device) // (batch * heads * d))
    dtype = "bfloat16" if info.kind == "cuda" else "float32"
    cfg = attention_bench.BenchConfig(seqs=(n_here,), batch=batch, heads=heads, head_dim=d, dtype=dtype)
    pressed = info.kind == "cuda" and c3.button(t("Measure peak memory"), key="fa_mem_run")
    if info.kind == "cuda" and not pressed and st.session_state.get("fa_mem_cfg") != cfg:
        st.caption(t("Press the button to run each implementation once and read torch.cuda.max_memory_allocated."))
        return
    st.session_state["fa_mem_cfg"] = cfg
    rows = attention_cache.memory(cfg, device, _on_wait=ui.wait_callback(st.empty()))
    table = pd.DataFrame([{
        t("implementation"): impl_label(r.impl),
        t("formula (beyond q, k, v; output included)"): ui.fmt_bytes(r.analytic_bytes, binary=True),
        t("measured peak"): ui.fmt_bytes(r.measured_bytes, binary=True) if r.measured_bytes is not None
        else t("unknown"),
        t("note"): status_text(r.status)} for r in rows])
    st.dataframe(table, hide_index=True, width="stretch")
    st.caption(t("N = {n:,}, head_dim {d}, {dtype}. ", n=n_here, d=d, dtype=dtype) + (
        t("Measured: torch.cuda.max_memory_allocated above the inputs during one forward.") if info.kind == "cuda"
        else t("A CPU has no allocator statistics, so only the formula is shown: naive attention's N × N "
               "scores and probabilities against the kernel's N log-sum-exp values.")))


# ---------------------------------------------------------------- timings
def bench_controls() -> attention_bench.BenchConfig:
    cap = attention_cache.max_bench_seq(device)
    on_gpu = info.kind == "cuda"
    c1, c2, c3, c4 = st.columns([2, 1, 1, 1])
    seqs = c1.multiselect(t("Sequence lengths N"), [s for s in SEQ_OPTIONS if s <= cap],
                          default=[1024, 2048, 4096, 8192] if on_gpu else [64, 128, 256, 512], key="fa_b_seqs")
    dtype = c2.selectbox("dtype", ["bfloat16", "float16", "float32"] if on_gpu else ["float32", "bfloat16"],
                         key="fa_b_dtype")
    head_dim = c3.select_slider("head_dim", [16, 32, 64, 128], value=64, key="fa_b_d")
    batch = c4.slider(t("batch"), 1, 16, 1, key="fa_b_batch")
    c5, c6, c7, c8 = st.columns([2, 1, 1, 1])
    impl_names = {i: impl_label(i) for i in attention_bench.IMPLEMENTATIONS}   # labels made now, in this run
    impls = c5.multiselect(t("Implementations"), attention_bench.IMPLEMENTATIONS,
                           default=list(attention_bench.IMPLEMENTATIONS), format_func=impl_names.get, key="fa_b_impls")
    heads = c6.slider(t("heads"), 1, 32, 16 if on_gpu else 4, key="fa_b_heads")
    causal = c7.toggle(t("Causal"), key="fa_b_causal")
    backward = c8.toggle(t("Forward + backward"), key="fa_b_bwd")
    sdpa = "auto"
    if on_gpu:
        sdpa = st.radio(t("SDPA backend"), attention_bench.SDPA_BACKENDS, horizontal=True, key="fa_b_sdpa",
                        format_func={"auto": t("PyTorch's choice"), "flash": t("force flash (FlashAttention-2)")}.get)
    return attention_bench.BenchConfig(seqs=tuple(seqs), batch=batch, heads=heads, head_dim=head_dim, dtype=dtype,
                         causal=causal, backward=backward, impls=tuple(impls), sdpa_backend=sdpa)


def timing_section() -> None:
    cfg = bench_controls()
    ran = ui.last_run(st.button(t("Run benchmark"), key="fa_run", type="primary"), "fa_bench_cfg", cfg,
                      changed=t("Settings changed: press **Run benchmark** to measure them. Showing the last run."))
    if ran is None:
        show_recorded_here()
        return
    rows = ui.run_with_progress(attention_cache.benchmark, ran, device)
    df = pd.DataFrame([dataclasses.asdict(r) for r in rows])
    title = t("{device}, {dtype}, batch {batch}, heads {heads}, head_dim {head_dim}", device=info.name,
              dtype=ran.dtype, batch=ran.batch, heads=ran.heads, head_dim=ran.head_dim)
    show_timings(df, title + (t(", causal") if ran.causal else ""), "fa_live")


def latest_recorded(kind: str) -> dict | None:
    """The newest recorded bench/attention.py result from a device of ``kind`` (None: none yet)."""
    docs = [d for d in cache.recorded("attention") if d.get("meta", {}).get("device", {}).get("kind") == kind]
    return max(docs, key=lambda d: d.get("meta", {}).get("date", "")) if docs else None


def show_recorded_here() -> None:
    doc = latest_recorded(info.kind)
    st.info(t("Press **Run benchmark** to time the implementations on this machine now (small sizes "
              "take a few seconds on a CPU)."), icon=":material/timer:")
    if doc is not None:
        load = doc.get("load_avg")
        busy = t(" Load average at its end (1/5/15 min): {load1:.1f}/{load5:.1f}/{load15:.1f} on {cpus} CPUs.",
                 load1=load[0], load5=load[1], load15=load[2], cpus=doc["cpu_count"]) \
            if load and len(load) == 3 and doc.get("cpu_count") else ""
        st.caption(ui.recorded_caption(doc["meta"]) + busy + t(" Shown until you run your own."))
        show_recorded_doc(doc, "fa_rec_here")


def show_timings(df: pd.DataFrame, title: str, key: str) -> None:
    st.caption(title)
    for mode, label in (("fwd", t("Forward")), ("fwd+bwd", t("Forward + backward"))):
        part = df[df["mode"] == mode]
        if part.empty:
            continue
        st.markdown(f"**{label}**")
        ui.plot_pair(timing_figure(part, "ms"), timing_figure(part, "tflops"),
                     keys=(f"{key}_{mode}_ms", f"{key}_{mode}_tf"))
    if (df["status"] == attention_bench.INTERPRETER_STATUS).any():
        st.caption(t("Our Triton kernel: under the CPU interpreter it is run for correctness only — see its "
                     "error column; it has no time on this machine."))
    st.dataframe(timing_table(df), hide_index=True, width="stretch")


def timing_figure(df: pd.DataFrame, metric: str) -> go.Figure:
    fig = go.Figure()
    for impl, part in df.groupby("impl", sort=False):
        part = part[part[metric].notna()]
        if part.empty:
            continue
        err = [f"{e:.1e}" if e == e and e is not None else "—" for e in part["max_err"]]
        fig.add_scatter(x=part["n"], y=part[metric], name=impl_label(impl), mode="lines+markers",
                        line_color=COLORS.get(impl), customdata=err,
                        hovertemplate=t("N=%{{x:,}}: %{{y:,.4g}} {unit}<br>max |err| vs float64: "
                                        "%{{customdata}}<extra>{impl}</extra>",
                                        unit="ms" if metric == "ms" else "TFLOP/s", impl=str(impl)))
    fig.update_xaxes(type="log")
    if metric == "ms":
        fig.update_yaxes(type="log")
    y_title = t("median time (ms, log)") if metric == "ms" else t("TFLOP/s (4·B·H·N²·D fwd, ×3.5 fwd+bwd)")
    return ui.style_figure(fig, x_title=t("sequence length N (log)"), y_title=y_title, height=360)


def timing_table(df: pd.DataFrame) -> pd.DataFrame:
    peak = t("peak memory")
    table = pd.DataFrame({
        t("implementation"): [impl_label(i) for i in df["impl"]],
        "N": df["n"], t("pass"): [pass_label(m) for m in df["mode"]],
        t("time"): [ui.fmt_ms(x) if x == x else "—" for x in df["ms"].astype(float)],
        "TFLOP/s": [f"{x:,.3g}" if x == x else "—" for x in df["tflops"].astype(float)],  # i18n: skip (unit)
        t("max |err| vs float64"): [f"{x:.1e}" if x == x else "—" for x in df["max_err"].astype(float)],
        t("grad max |err|"): [f"{x:.1e}" if x == x else "—" for x in df["grad_err"].astype(float)],
        peak: [ui.fmt_bytes(x, binary=True) if x == x else "—" for x in df["peak_bytes"].astype(float)],
        t("status"): [status_text(s) for s in df["status"]],
    })
    return table if df["peak_bytes"].notna().any() else table.drop(columns=peak)


# ---------------------------------------------------------------- recorded GPU results
def show_recorded_doc(doc: dict, key: str) -> None:
    rows = pd.DataFrame(attention_cache.recorded_rows(doc))
    if rows.empty:
        st.caption(t("This result file holds no rows."))
        return
    device_name = doc.get("meta", {}).get("device", {}).get("name", t("unknown device"))
    date = doc.get("meta", {}).get("date", t("unknown date"))
    for (d, causal), part in rows.groupby(["head_dim", "causal"], sort=True):
        shape = t("batch {batch}, heads {heads}", batch=part["batch"].iloc[0], heads=part["heads"].iloc[0]) \
            if part["batch"].nunique() == 1 else t("16k tokens per batch")
        label = t("Recorded on {device}, {date} · head_dim {head_dim}{causal} · {dtype} · {shape}",
                  device=device_name, date=date, head_dim=d, causal=t(" · causal") if causal else "",
                  dtype=part["dtype"].iloc[0], shape=shape)
        with st.expander(f"head_dim {d}{t(', causal') if causal else ''}", expanded=True):
            show_timings(part.reset_index(drop=True), label, f"{key}_{d}_{int(bool(causal))}")


def gpu_section() -> None:
    doc = attention_cache.gpu_results()
    if doc is None:
        st.info(t("Not yet recorded on a GPU: run `bash bench/gpu_check.sh` on a CUDA machine and commit "
                  "bench/results/gpu-check-cuda.json. This tab then shows our kernel against PyTorch SDPA's "
                  "flash and cuDNN backends (bf16, head_dim 64 and 128, N = 1k…16k, causal and not), with "
                  "the device and date."), icon=":material/hourglass_empty:")
        return
    meta = doc.get("meta", {})
    versions = ", ".join(f"{k} {meta[k]}" for k in ("driver", "torch", "triton", "cudnn", "commit") if meta.get(k))
    st.caption(ui.recorded_caption(meta) + (f" {versions}." if versions else ""))
    rows = pd.DataFrame(attention_cache.compare_rows(attention_cache.recorded_rows(doc)))
    if not rows.empty:
        target_table(rows, doc.get("targets", {"fwd": 1.0, "fwd+bwd": 0.8}))
        st.markdown(t("**Every row** (speed vs a backend = its time / this row's time; spread = 20th–80th "
                      "percentile of the timed runs; errors: max |difference| to float64 on head (0, 0))"))
        st.dataframe(recorded_gpu_table(rows), hide_index=True, width="stretch")
        picks = sorted({str(c.get("sdpa_default")) for c in doc.get("cases", []) if c.get("sdpa_default")})
        paths = sorted({str(c.get("kernel_path")) for c in doc.get("cases", []) if c.get("kernel_path")})
        st.caption(t("SDPA's own choice of backend on these inputs: {picks}. Our kernel's forward path: {paths}.",
                     picks=", ".join(picks) or t("not recorded"), paths=", ".join(paths) or t("not recorded")))
    show_recorded_doc(doc, "fa_gpu")
    if doc.get("sweep"):
        with st.expander(t("Block-size sweep (N = 4096, bf16)")):
            sweep = pd.DataFrame(doc["sweep"]).round(3)
            st.dataframe(sweep.rename(columns={"mode": t("mode"), "status": t("status")}), hide_index=True,
                         width="stretch")


def _ratio(x) -> str:
    return f"{x:.2f}×" if x == x and x is not None else "—"


def target_table(rows: pd.DataFrame, targets: dict) -> None:
    ours = rows[(rows["impl"] == "triton") & rows["vs_flash"].notna()]
    if ours.empty:
        return
    target = [targets.get(m) for m in ours["mode"]]
    st.markdown(t("**Our kernel vs PyTorch SDPA** (speed = SDPA time / our time; target vs the flash backend: "
                  "forward ≥ 1.0, forward+backward ≥ 0.8; cuDNN reported beside it)"))
    st.dataframe(pd.DataFrame({
        "head_dim": ours["head_dim"], t("mask"): [t("causal") if c else t("full") for c in ours["causal"]],
        "N": ours["n"], t("pass"): [pass_label(m) for m in ours["mode"]],
        t("ours (TFLOP/s)"): ours["tflops"].round(1),
        t("vs SDPA flash"): [_ratio(x) for x in ours["vs_flash"]],
        t("vs SDPA cuDNN"): [_ratio(x) for x in ours["vs_cudnn"]], t("target"): target,
        t("met"): ["✓" if r >= (g or 0) else "✗" for r, g in zip(ours["vs_flash"], target, strict=True)]}),
        hide_index=True, width="stretch")


def recorded_gpu_table(rows: pd.DataFrame) -> pd.DataFrame:
    def col(name):
        return rows[name] if name in rows else pd.Series([None] * len(rows), index=rows.index)

    spread = [f"{ui.fmt_ms(lo)} – {ui.fmt_ms(hi)}" if lo == lo and hi == hi and lo is not None else "—"
              for lo, hi in zip(col("p20_ms").astype(float), col("p80_ms").astype(float), strict=True)]
    return pd.DataFrame({
        "head_dim": rows["head_dim"], t("mask"): [t("causal") if c else t("full") for c in rows["causal"]],
        "N": rows["n"], t("pass"): [pass_label(m) for m in rows["mode"]],
        t("implementation"): [impl_label(i) for i in rows["impl"]],
        t("time"): [ui.fmt_ms(x) if x == x else "—" for x in rows["ms"].astype(float)], t("spread"): spread,
        "TFLOP/s": [f"{x:,.1f}" if x == x else "—" for x in rows["tflops"].astype(float)],  # i18n: skip (unit)
        t("vs SDPA flash"): [_ratio(x) for x in col("vs_flash").astype(float)],
        t("vs SDPA cuDNN"): [_ratio(x) for x in col("vs_cudnn").astype(float)],
        t("max |err|"): [f"{x:.1e}" if x == x else "—" for x in rows["max_err"].astype(float)],
        t("grad max |err|"): [f"{x:.1e}" if x == x else "—" for x in col("grad_err").astype(float)],
        t("status"): [status_text(s) for s in rows["status"]],
    })


# ---------------------------------------------------------------- inside SmolLM2
BACKEND_LABELS = {"sdpa": N_("PyTorch SDPA (reference)"), "naive": N_("naive (T × T in memory)"),
                  "tiled": N_("tiled PyTorch (online softmax)"), "triton": N_("our Triton kernel")}


def backend_label(backend: str) -> str:
    return tr(BACKEND_LABELS[backend]) if backend in BACKEND_LABELS else backend


def short_label(backend: str) -> str:
    """The backends multiselect's names: SDPA, our Triton kernel, and core/nn's own names."""
    return "SDPA" if backend == "sdpa" else tr(BACKEND_LABELS["triton"]) if backend == "triton" else backend


def llm_intro() -> None:
    st.markdown(t(
        "**SmolLM2-135M-Instruct** (30 Llama blocks, 9 query heads sharing 3 KV heads of 64) reads your "
        "prompt once per attention backend of `core/nn`: naive attention with its T × T scores, PyTorch "
        "SDPA, the tiled online-softmax reference and our Triton kernel. Everything else in the model is "
        "the same code, so the next-token distributions must agree up to rounding."))
    if interpreted:
        st.info(t("Triton runs in its **CPU interpreter** here: the kernel's programs execute as Python, "
                  "tile by tile, for 9 heads in each of 30 layers. That is fine for checking correctness but "
                  "slow, so our kernel runs prompts of up to **{n} tokens** here; "
                  "a longer prompt runs the other three and says so in the Triton row. On a CUDA GPU the "
                  "kernel takes any prompt the model can read.", n=llm_runs.INTERPRETER_MAX_TOKENS),
                icon=":material/info:")


def llm_section() -> None:
    llm_intro()
    text = st.text_area(t("Prompt (plain text, no chat template)"), LLM_PROMPT, max_chars=LLM_MAX_CHARS,
                        key="fa_llm_text", height=80)
    ran = ui.last_run(st.button(t("Run SmolLM2 with each backend"), key="fa_llm_run", type="primary"),
                      "fa_llm_ran", text,
                      idle=t("Press the button to load the model (a few seconds the first time) and run the "
                             "prompt four times."),
                      changed=t("The prompt changed: press the button to run it. Showing the last run."))
    if ran is not None:
        with ui.guard():
            llm_backend_results(ran)
    with ui.guard():
        llm_prefill_section()


def llm_backend_results(text: str) -> None:
    with st.spinner(t("Loading SmolLM2 …")):
        lm = llm_cache.model(device)
        prompt = llm_cache.prompt(device, False, text, "")
    for checked, cap in prompt.cuts:
        ui.notice_truncated(checked, cap)
    if prompt.tokens_dropped:
        st.warning(t("The prompt was {total:,} tokens; the last {kept:,} (this server's context cap) are used.",
                     total=len(prompt.ids) + prompt.tokens_dropped, kept=len(prompt.ids)),
                   icon=":material/content_cut:")
    with st.spinner(t("Running {n:,} tokens through four attention backends …", n=len(prompt.ids))):
        runs = attention_cache.llm_backends(device, prompt.ids, _on_wait=ui.wait_callback(st.empty()))
    by = {r.backend: r for r in runs}
    ref = by["sdpa"]
    texts = dict(zip(ref.top_ids, llm_cache.token_texts(device, ref.top_ids), strict=True))
    for r in runs:
        missing = tuple(i for i in r.top_ids if i not in texts)
        texts.update(zip(missing, llm_cache.token_texts(device, missing), strict=True))
    st.caption(t("{n:,} tokens, {dtype} on **{device}**. Each backend's logits at every position are compared "
                 "with SDPA's.", n=len(prompt.ids), dtype=str(lm.dtype).removeprefix("torch."),
                 device=ui.escape(device)))
    cols = st.columns(len(runs))
    for col, r in zip(cols, runs, strict=True):
        label = t("{backend}: max |Δ logit|", backend=r.backend)
        if r.ran:
            col.metric(label, t("reference") if r.backend == "sdpa" else f"{r.max_abs_dlogit:.1e}",
                       delta=t("top-1 agrees at {share} of positions", share=ui.fmt_pct(r.top1_agree)),
                       delta_color="off", delta_arrow="off")
        else:
            col.metric(label, t("not run"))
    for r in runs:
        if not r.ran:
            st.warning(f"**{backend_label(r.backend)}**: {tr(r.reason)}", icon=":material/hourglass_disabled:")
    ui.plot(top_tokens_figure(runs, texts), key="fa_llm_top")
    st.dataframe(top_tokens_table(runs, texts), hide_index=True, width="stretch")
    st.markdown(t("**What each backend holds for one layer's attention at this T** (beyond Q, K, V; output "
                  "included; the formula of the *Memory traffic* tab's table)"))
    st.dataframe(pd.DataFrame([{
        t("backend"): backend_label(r.backend),
        t("attention bytes (one layer)"): ui.fmt_bytes(r.attention_bytes, binary=True)
        if r.attention_bytes is not None else t("torch's choice at run time"),
        t("ran"): "✓" if r.ran else "✗", t("max |Δ logit| vs SDPA"): f"{r.max_abs_dlogit:.1e}" if r.ran else "—",
        t("top-1 agreement"): ui.fmt_pct(r.top1_agree) if r.ran else "—"} for r in runs]),
        hide_index=True, width="stretch")
    st.caption(t("Naive attention holds the 9 × T × T scores and probabilities; the tiled reference one "
                 "64 × 64 tile per head (larger than T × T for a short prompt, far smaller for a long one); "
                 "our kernel only its output and one fp32 log-sum-exp per row. SDPA's memory depends on the "
                 "kernel PyTorch picks for these inputs."))


def top_tokens_table(runs, texts: dict) -> pd.DataFrame:
    """Rank by rank: each backend's next token and its probability, side by side."""
    table = {t("rank"): list(range(1, 11))}
    for r in runs:
        if r.ran:
            table[t("{backend} token", backend=r.backend)] = [ui.visible_whitespace(texts[i]) for i in r.top_ids]
            table[f"{r.backend} p"] = [f"{p:.4f}" for p in r.top_probs]
    return pd.DataFrame(table)


def top_tokens_figure(runs, texts: dict) -> go.Figure:
    """Each backend's 10 most likely next tokens, rank by rank (x labels: SDPA's tokens)."""
    ref = next(r for r in runs if r.backend == "sdpa")
    ranks = [f"{k + 1}. {ui.token_label(texts[i], 12)}" for k, i in enumerate(ref.top_ids)]
    fig = go.Figure()
    for r in runs:
        if not r.ran:
            continue
        labels = [ui.token_label(texts[i], 16) for i in r.top_ids]
        fig.add_bar(x=ranks[:len(r.top_ids)], y=list(r.top_probs), name=r.backend,
                    marker_color=COLORS.get(r.backend), customdata=labels,
                    hovertemplate=t("rank %{{x}}: {backend}'s token %{{customdata}}, p = %{{y:.4f}}<extra></extra>",
                                    backend=r.backend))
    fig.update_layout(barmode="group")
    return ui.style_figure(fig, x_title=t("rank of the next token (label: SDPA's token; hover: each backend's own)"),
                           y_title=t("probability of the next token"), height=340)


def llm_prefill_section() -> None:
    on_gpu = info.kind == "cuda"
    where = t("bf16 on {device}", device=ui.escape(info.name)) if on_gpu else t("float32 on this CPU")
    st.markdown(t("**Prefill time per backend** ({where}): one forward over T held-out Wikipedia tokens, "
                  "median of 3 after a warm-up.", where=where))
    options = LLM_PREFILL_GPU if on_gpu else LLM_PREFILL_CPU
    c1, c2, c3 = st.columns([2, 2, 1], vertical_alignment="bottom")
    seqs = c1.multiselect(t("Prompt lengths T (tokens)"), options, default=options if on_gpu else [64, 128],
                          key="fa_llm_seqs")
    names = {b: short_label(b) for b in BACKENDS}
    backends = c2.multiselect(t("Backends"), list(BACKENDS), default=list(BACKENDS), key="fa_llm_backends",
                              format_func=names.get)
    if c3.button(t("Time prefill"), key="fa_llm_time"):
        st.session_state["fa_llm_timed"] = (tuple(sorted(seqs)), tuple(backends))
    timed = st.session_state.get("fa_llm_timed")
    if timed is None:
        st.caption(t("Press **Time prefill** to measure.") if on_gpu else
                   t("Press **Time prefill** to measure (CPU timings; our kernel is not timed under the "
                     "interpreter, its speed there means nothing)."))
        return
    if not timed[0] or not timed[1]:
        st.warning(t("Pick at least one length and one backend."), icon=":material/info:")
        return
    rows = ui.run_with_progress(attention_cache.llm_prefill, device, *timed)
    df = pd.DataFrame(rows).reindex(columns=["backend", "tokens", "ms", "tok_s", "status"])
    df[["ms", "tok_s"]] = df[["ms", "tok_s"]].astype(float)
    ui.plot(prefill_figure(df), key="fa_llm_prefill")
    st.dataframe(pd.DataFrame({
        t("backend"): [backend_label(b) for b in df["backend"]], "T": df["tokens"],
        t("prefill"): [ui.fmt_ms(x) if x == x else "—" for x in df["ms"]],
        t("tokens / s"): [f"{x:,.0f}" if x == x else "—" for x in df["tok_s"]],
        t("status"): [status_text(s) for s in df["status"]]}), hide_index=True, width="stretch")
    if not on_gpu:
        st.caption(t("CPU timings on a machine others may share: they move with its load, so read them as one "
                     "run's rough ordering. At these lengths attention is a small part of the forward pass; the "
                     "backends pull apart at thousands of tokens, on a GPU."))


def prefill_figure(df: pd.DataFrame) -> go.Figure:
    fig = go.Figure()
    for backend, part in df[df["ms"].notna()].groupby("backend", sort=False):
        fig.add_scatter(x=part["tokens"], y=part["ms"], mode="lines+markers", name=backend_label(backend),
                        line_color=COLORS.get(backend),
                        hovertemplate="T=%{x:,}: %{y:,.1f} ms<extra>" + backend + "</extra>")  # i18n: skip (units, markup)
    tokens = sorted(set(df["tokens"]))
    fig.update_xaxes(type="log", tickvals=tokens, ticktext=[f"{n:,}" for n in tokens])
    fig.update_yaxes(type="log", dtick="D2", tickformat=",.0f")
    return ui.style_figure(fig, x_title=t("prompt length T (tokens, log)"), y_title=t("prefill time (ms, log)"),
                           height=340)


with tab_tiles, ui.guard():
    tiling_section()
with tab_io, ui.guard():
    io_section()
with tab_time, ui.guard():
    timing_section()
with tab_llm, ui.guard():
    llm_section()
with tab_gpu, ui.guard():
    gpu_section()

ui.page_footer(
    "\n\n".join([
        t("**Tiles.** The kernel gives each block of BLOCK_M query rows to one program. That program walks "
          "the key/value blocks left to right; for each tile it computes the scores, updates the row max m, "
          "rescales what it had summed so far by α = exp(m_old − m_new), and adds the new tile. Nothing N × N "
          "is ever written out. After the last tile, O = acc/ℓ and LSE = m + log ℓ are exact, not approximate: "
          "the green check compares them with naive softmax in float64. With a causal mask, tiles wholly above "
          "the diagonal are skipped (grey): about half the work."),
        t("**Memory traffic.** Counts of bytes between GPU memory (HBM) and the chip, from the FlashAttention "
          "paper's analysis; larger on-chip SRAM M means bigger tiles and fewer passes. The measured peak memory "
          "(on a GPU) shows the N × N buffers naive attention needs and the kernel does not."),
        t("**Timings.** Median of repeats after warm-up (triton.testing.do_bench on CUDA). TFLOP/s counts the "
          "two matmuls, 4·B·H·N²·D for the forward (half with a causal mask) and 2.5× that for the backward. "
          "The error column is the max |difference| to a float64 reference on head (0, 0): expect ~1e-6 in "
          "fp32 and ~1e-2 in bf16, for every implementation alike."),
        t("**Inside SmolLM2.** The same pretrained weights, the same prompt, four attention backends. Max |Δ logit| "
          "is the largest difference of any logit at any position from SDPA's; top-1 agreement the share of "
          "positions whose most likely next token is the same. In float32 expect ~1e-5 (the sums run in a "
          "different order); in bf16 (on a GPU) rounding is larger and the top tokens should still agree. The "
          "attention bytes are per layer and freed before the next layer runs; they are what decides how long a "
          "prompt fits."),
    ]),
    [
        ("Dao et al. 2022, FlashAttention, Sec. 3.1 (Algorithm 1) and Theorem 2 (IO complexity)",
         "https://arxiv.org/abs/2205.14135"),
        ("Dao 2023, FlashAttention-2, Sec. 3 (Algorithms 1 and 2: forward, backward) and Sec. 4 (FLOPs)",
         "https://arxiv.org/abs/2307.08691"),
        ("Milakov & Gimelshein 2018, Online normalizer calculation for softmax, Sec. 3",
         "https://arxiv.org/abs/1805.02867"),
        ("Triton tutorial 06, Fused Attention", "https://triton-lang.org/main/getting-started/tutorials/06-fused-attention.html"),
        ("Vaswani et al. 2017, Attention Is All You Need, Sec. 3.2.1", "https://arxiv.org/abs/1706.03762"),
        ("PyTorch scaled_dot_product_attention", "https://pytorch.org/docs/stable/generated/torch.nn.functional.scaled_dot_product_attention.html"),
    ],
)
