"""Sequence packing: padding vs packing on real token lengths, cu_seqlens masks, packed == alone, speed."""

from __future__ import annotations

import numpy as np
import pandas as pd
import plotly.graph_objects as go
import streamlit as st

from app import cache, ui
from app.cache import packing as packing_cache
from app.i18n import N_, t, tr
from core.models import packing
from core.runtime.validation import ValidationError

MAX_UPLOAD_BYTES = 2_000_000
SOURCES = {"wiki-paragraph": N_("Wikipedia sample, one sample per paragraph"),
           "wiki-article": N_("Wikipedia sample, one sample per article (cut at the max length)"),
           "text": N_("Your own text")}
LENGTH_OPTIONS = [64, 128, 256, 512, 1024, 2048, 4096, 8192, 16384]
PAD_COLOR = "#DEE2E6"

ui.page_header(
    t("Sequence packing"),
    t("A padded batch computes every sample at the batch's longest length; the padding is thrown away. "
      "**Packing** puts whole samples end to end in rows of a fixed length. A **block-diagonal mask** built "
      "from `cu_seqlens` and **position ids that restart** at every sample keep each sample's output "
      "exactly what it would be alone. Real token lengths (the tokenizer you pick), a real transformer "
      "layer checked both ways, and forward+backward timed on this device."),
)
device = cache.device_name()
info = cache.device_info()
tab_pack, tab_mask, tab_layer, tab_speed = st.tabs(
    [t("Padding vs packing"), t("cu_seqlens & the mask"), t("Packed == alone?"), t("Speed & memory")])


# ---------------------------------------------------------------- inputs
def tokenizer_choice(container) -> str:
    options = [n for n in packing_cache.tokenizer_names() if n != "bert-wordpiece"]
    default = options.index("cl100k_base") if "cl100k_base" in options else 0
    return container.selectbox(t("Tokenizer"), options, index=default, key="pk_tokenizer",
                               help=t("Lengths are real token counts (+1 end-of-text token per sample)."))


def user_text(container) -> str:
    text = container.text_area(t("Your documents (a blank line between documents; one paragraph a line)"),
                               key="pk_text", height=140, max_chars=packing.MAX_TEXT_CHARS,
                               placeholder=t("Paste some text: each line becomes a sample."))
    upload = container.file_uploader(t("…or upload a UTF-8 text file"), type=["txt", "md", "csv"],
                                     key="pk_upload")
    if upload is not None:
        checked = packing_cache.upload_text(upload.getvalue(), MAX_UPLOAD_BYTES)
        ui.notice_truncated(checked, MAX_UPLOAD_BYTES, "bytes")
        text = checked.text
    if text.strip():
        checked = packing_cache.user_text(text)
        ui.notice_truncated(checked, packing.MAX_TEXT_CHARS)
        return checked.text
    return text


def sample_source() -> tuple[tuple | None, dict]:
    """Widgets for the data and the batch shape; returns (lengths or None, settings)."""
    c1, c2, c3, c4, c5 = st.columns([1.6, 1, 1, 1, 1])
    source = c1.selectbox(t("Samples"), list(SOURCES), format_func={k: tr(v) for k, v in SOURCES.items()}.get,
                          key="pk_source")
    tokenizer = tokenizer_choice(c2)
    max_len = c3.select_slider(t("Max sample length (tokens)"), LENGTH_OPTIONS, value=1024, key="pk_max_len",
                               help=t("Longer documents are cut into several samples."))
    capacity = c4.select_slider(t("Pack length (tokens per row)"), LENGTH_OPTIONS, value=2048, key="pk_capacity")
    batch = c5.slider(t("Batch size (padded)"), 1, 64, 8, key="pk_batch",
                      help=t("Sequences per padded batch. A packed batch gets the same token budget: "
                             "batch × max length tokens."))
    text = ""
    settings = {"capacity": capacity, "batch": batch, "max_len": max_len, "tokenizer": tokenizer}
    if source == "text":
        text = user_text(st)
        if not text.strip():
            st.info(t("Type or upload some text to see its length distribution."), icon=":material/edit:")
            return None, settings
    unit = "article" if source == "wiki-article" else "paragraph"
    origin = "wiki" if source.startswith("wiki") else "text"
    with st.spinner(t("Tokenizing the documents…")):
        return packing_cache.samples(origin, unit, tokenizer, max_len, text), settings


# ---------------------------------------------------------------- tab 1
def length_figure(lengths: tuple, capacity: int) -> go.Figure:
    hist = packing_cache.histogram(lengths, 50)
    edges = hist["edges"]
    mids = [(a + b) / 2 for a, b in zip(edges, edges[1:], strict=False)]
    fig = go.Figure(go.Bar(x=mids, y=hist["counts"], width=edges[1] - edges[0], marker_color=ui.PALETTE[0],
                           customdata=list(zip(edges, edges[1:], strict=False)),
                           hovertemplate=t("%{customdata[0]}–%{customdata[1]} tokens: %{y} samples"
                                           "<extra></extra>")))
    longest = edges[-1]
    if capacity <= 1.5 * longest:
        fig.add_vline(x=capacity, line_dash="dash", line_color=ui.PALETTE[1],
                      annotation_text=t("pack length {n:,}", n=capacity))
    else:
        fig.add_annotation(x=1, y=1, xref="paper", yref="paper", showarrow=False, xanchor="right",
                           text=t("pack length {n:,} tokens (off the chart)", n=capacity))
    return ui.style_figure(fig, x_title=t("sample length (tokens)"), y_title=t("samples"), height=300)


def stats_table(stats) -> pd.DataFrame:
    return pd.DataFrame([{
        t("strategy"): tr(s.label), t("rows"): s.rows, t("batches"): s.batches,
        t("computed positions"): s.slots, t("efficiency"): ui.fmt_pct(s.efficiency),
        t("padding"): ui.fmt_pct(s.waste), t("real tokens / batch"): f"{s.tokens_per_batch:,.0f}",
        t("attention scores (full rows)"): ui.fmt_count(s.attention_scores),
        t("sequences cut"): s.split_sequences,
    } for s in stats])


def waste_figure(stats) -> go.Figure:
    fig = go.Figure(go.Bar(
        y=[tr(s.label) for s in stats], x=[100 * s.waste for s in stats], orientation="h",
        marker_color=[ui.PALETTE[1] if s.strategy.startswith("pad") else ui.PALETTE[2] for s in stats],
        text=[ui.fmt_pct(s.waste) for s in stats], textposition="outside",
        hovertemplate=t("%{y}: %{x:.2f} % of computed positions are padding<extra></extra>")))
    fig.update_yaxes(autorange="reversed")
    fig.update_xaxes(range=[0, 118])
    return ui.style_figure(fig, x_title=t("padding (% of computed positions)"), height=300)


def layout_figure(layout, values: tuple, rows: int, width: int) -> go.Figure:
    """The first rows of a layout: one coloured segment per sequence, padding grey."""
    fig = go.Figure()
    shown = list(range(min(rows, layout.n_rows)))
    depth = max(len(layout.pieces[r]) for r in shown)
    piece, row_names = t("sample #{i}: {n:,} of {total:,} tokens"), [t("row {r}", r=r) for r in shown]
    for j in range(depth):
        xs, names, colors = [], [], []
        for r in shown:
            has = j < len(layout.pieces[r])
            xs.append(layout.pieces[r][j] if has else 0)
            idx = layout.rows[r][j] if has else -1
            names.append(piece.format(i=idx, n=layout.pieces[r][j], total=values[idx]) if has else "")
            colors.append(ui.PALETTE[idx % len(ui.PALETTE)] if has else PAD_COLOR)
        fig.add_bar(y=row_names, x=xs, orientation="h", marker_color=colors,
                    marker_line_width=1, marker_line_color="white", customdata=names,
                    hovertemplate="%{customdata}<extra></extra>", showlegend=False)
    pads = [layout.row_width[r] - layout.row_tokens[r] for r in shown]
    fig.add_bar(y=row_names, x=pads, orientation="h", marker_color=PAD_COLOR,
                name=t("padding"), hovertemplate=t("padding: %{x:,} positions<extra></extra>"))
    fig.update_layout(barmode="stack")
    fig.update_yaxes(autorange="reversed")
    fig.update_xaxes(range=[0, width])
    return ui.style_figure(fig, x_title=t("position in the row (tokens)"), height=60 + 26 * len(shown))


def render_pack_tab() -> tuple | None:
    lengths, cfg = sample_source()
    if lengths is None:
        return None
    stats = packing_cache.compare(lengths, cfg["capacity"], cfg["batch"], cfg["max_len"])
    arr = np.asarray(lengths)
    m = st.columns(5)
    m[0].metric(t("Samples"), f"{len(arr):,}")
    m[1].metric(t("Real tokens"), ui.fmt_count(int(arr.sum())))
    m[2].metric(t("Median length"), t("{n:,} tokens", n=int(np.median(arr))))
    m[3].metric(t("Longest"), t("{n:,} tokens", n=int(arr.max())))
    best = min(stats, key=lambda s: s.waste)
    m[4].metric(t("Least padding"), ui.fmt_pct(best.waste), help=tr(best.label))
    ui.plot(length_figure(lengths, cfg["capacity"]), key="pk_hist")
    st.dataframe(stats_table(stats), hide_index=True, width="stretch")
    c1, c2 = st.columns(2)
    with c1:
        ui.plot(waste_figure(stats), key="pk_waste")
    with c2:
        layout_section(lengths, cfg)
    return lengths


def layout_section(lengths: tuple, cfg: dict) -> None:
    strategy = st.selectbox(t("Layout of the first rows"), list(packing.STRATEGIES), index=4,
                            format_func={k: tr(v) for k, v in packing.STRATEGIES.items()}.get, key="pk_layout")
    layout, values = packing_cache.layout(strategy, lengths, cfg["capacity"], cfg["batch"], cfg["max_len"])
    width = max(layout.row_width[: 12]) if strategy.startswith("pad") else cfg["capacity"]
    ui.plot(layout_figure(layout, values, 12, max(width, cfg["capacity"])), key="pk_layout_fig")


corpus_lengths = None
with tab_pack, ui.guard():
    corpus_lengths = render_pack_tab()


# ---------------------------------------------------------------- tab 2
def mask_figure(mask: np.ndarray, doc: np.ndarray) -> go.Figure:
    T = mask.shape[0]
    line, attends, masked = t("query {i} (seq {si}) → key {j} (seq {sj}): {what}"), t("attends"), t("masked")
    hover = [[line.format(i=i, si=doc[i], j=j, sj=doc[j], what=attends if mask[i, j] else masked)
              for j in range(T)] for i in range(T)]
    fig = go.Figure(go.Heatmap(z=mask.astype(int), colorscale=[[0, "#F1F3F5"], [1, ui.PALETTE[0]]],
                               showscale=False, text=hover, hovertemplate="%{text}<extra></extra>",
                               xgap=1, ygap=1))
    fig.update_yaxes(autorange="reversed", scaleanchor="x")
    return ui.style_figure(fig, x_title=t("key position"), y_title=t("query position"), height=420)


def render_mask_tab() -> None:
    c1, c2 = st.columns([2, 1])
    text = c1.text_input(t("Sequence lengths (tokens)"), "5, 3, 7, 4", key="pk_mask_lengths")
    row = c2.slider(t("Row length (pack length)"), 4, 64, 24, key="pk_mask_row")
    layout = packing_cache.row_layout(packing_cache.typed_lengths(text, 16), row)
    real = layout.cu_seqlens[-1]
    st.markdown(t("`cu_seqlens = {cu}` · {real} real tokens, {pad} padding "
                  "(padding gets its own id, −1, and only ever sees padding).",
                  cu=list(layout.cu_seqlens), real=real, pad=row - real))
    table = pd.DataFrame({t("position in row"): range(row), t("sequence id"): layout.doc,
                          t("position id (restarting)"): layout.positions,
                          t("position id (not restarting)"): list(range(row))}).T
    st.dataframe(table, width="stretch")
    block, plain, d = layout.block_mask.numpy(), layout.causal_mask.numpy(), np.asarray(layout.doc)
    c1, c2 = st.columns(2)
    with c1:
        ui.titled_plot(mask_figure(block, d), "pk_mask_block", t("Block-diagonal causal mask (correct)"))
    with c2:
        ui.titled_plot(mask_figure(plain, d), "pk_mask_plain", t("Plain causal mask (leaks across sequences)"))


with tab_mask, ui.guard():
    render_mask_tab()


# ---------------------------------------------------------------- tab 3
def default_layer_lengths(lengths) -> str:
    """The first real samples that fit a small row (default input of the layer check)."""
    picked, total = [], 0
    for n in lengths or (37, 112, 18, 64, 90):
        if n <= 160 and total + n <= 384 and len(picked) < 6:
            picked.append(int(n))
            total += n
    return ", ".join(map(str, picked or [37, 112, 18, 64, 90]))


def error_figure(result) -> go.Figure:
    fig = go.Figure()
    seqs = [t("seq {i} ({n} tok)", i=i, n=n) for i, n in enumerate(result.lengths)]
    hover = t("%{x}: relative error %{y:.2e}, max |Δ| %{customdata:.2e}")
    for i, v in enumerate(result.variants):
        rel = [max(x, 1e-18) for x in v.rel]
        fig.add_bar(x=seqs, y=rel, name=tr(v.label), marker_color=ui.PALETTE[[2, 1, 4, 3][i]],
                    customdata=v.max_abs, hovertemplate=hover + "<extra>" + tr(v.label) + "</extra>")
    fig.add_hline(y=result.noise, line_dash="dot", line_color="#868E96",
                  annotation_text=t("{dtype} rounding ≈ {noise:.0e}", dtype=result.dtype, noise=result.noise))
    fig.update_yaxes(type="log", exponentformat="power")
    fig.update_layout(barmode="group")
    ui.style_figure(fig, y_title=t("‖packed − alone‖ / ‖alone‖ (log)"), height=480)
    fig.update_layout(legend={"orientation": "v", "y": -0.12, "yanchor": "top", "x": 0},
                      margin={"b": 10, "t": 40})
    return fig


def attention_figure(probs: np.ndarray, cu: tuple) -> go.Figure:
    fig = go.Figure(go.Heatmap(z=probs, colorscale="Blues", colorbar={"title": "p"},
                               hovertemplate=t("query %{y} → key %{x}: %{z:.3f}<extra></extra>")))
    for c in cu[1:-1]:
        fig.add_hline(y=c - 0.5, line_width=1, line_color=ui.PALETTE[1])
        fig.add_vline(x=c - 0.5, line_width=1, line_color=ui.PALETTE[1])
    fig.update_yaxes(autorange="reversed", scaleanchor="x")
    return ui.style_figure(fig, x_title=t("key position"), y_title=t("query position"), height=420)


ATTENTION_PATHS = {"sdpa": N_("SDPA + boolean block mask"), "varlen-loop": N_("causal SDPA per sequence (cu_seqlens)"),
                   "reference": N_("written-out softmax (reference)"), "flex": N_("FlexAttention document mask")}


def render_layer_tab(lengths) -> None:
    c1, c2, c3 = st.columns([2, 1, 1])
    text = c1.text_input(t("Sequences packed into one row (token lengths)"), default_layer_lengths(lengths),
                         key="pk_layer_lengths", help=t("Defaults to the first real samples of the data above."))
    dtype = c2.selectbox(t("Precision"), ["float64", "float32", "bfloat16"], key="pk_layer_dtype")
    attn_options = ["sdpa", "varlen-loop", "reference"] + (["flex"] if packing_cache.flex_available(device, False) else [])
    attn = c3.selectbox(t("Attention path"), attn_options, key="pk_layer_attn",
                        format_func={k: tr(v) for k, v in ATTENTION_PATHS.items()}.get)
    values = packing_cache.typed_lengths(text)
    cols = st.columns(2)
    results = {}
    for col, positions in zip(cols, packing.POSITIONS, strict=True):
        cfg = packing.LayerConfig(positions=positions)
        results[positions] = res = packing_cache.layer(values, cfg, dtype, attn, device)
        name = t("RoPE (relative)") if positions == "rope" else t("learned absolute positions (GPT-2 style)")
        with col:
            ui.titled_plot(error_figure(res), f"pk_err_{positions}", t("Block with {name}", name=name))
    st.caption(layer_verdict(results))
    maps = results["learned"].attention
    if maps:
        c1, c2 = st.columns(2)
        with c1:
            ui.titled_plot(attention_figure(maps["packed"], results["learned"].cu_seqlens), "pk_att_block",
                           t("Attention probabilities, block mask (mean over heads)"))
        with c2:
            ui.titled_plot(attention_figure(maps["plain-causal"], results["learned"].cu_seqlens), "pk_att_plain",
                           t("Attention probabilities, plain causal mask (mean over heads)"))


def layer_verdict(results: dict) -> str:
    lines = []
    for positions, res in results.items():
        v = {x.variant: x for x in res.variants}
        lines.append(t(
            "**{positions}**: correct packing max relative error {packed:.1e} (rounding {noise:.0e}); plain "
            "causal mask up to {plain:.1e} (sequence 0 untouched: {first:.1e}); non-restarting positions up to "
            "{cont:.1e}.", positions=positions, packed=max(v["packed"].rel), noise=res.noise,
            plain=max(v["plain-causal"].rel), first=v["plain-causal"].rel[0], cont=max(v["positions-continue"].rel)))
    return "  \n".join(lines)


with tab_layer, ui.guard():
    render_layer_tab(corpus_lengths)


# ---------------------------------------------------------------- tab 4
METHOD_COLORS = {"padded": ui.PALETTE[1], "packed-sdpa": ui.PALETTE[0],
                 "packed-varlen-loop": ui.PALETTE[2], "packed-flex": ui.PALETTE[4]}
SHORT = {"padded": N_("padded"), "packed-sdpa": N_("packed · SDPA mask"),
         "packed-varlen-loop": N_("packed · varlen loop"), "packed-flex": N_("packed · Flex")}


def speed_settings(lengths) -> tuple[tuple, packing.ThroughputConfig, tuple]:
    cuda = info.kind == "cuda"
    c1, c2, c3, c4, c5, c6 = st.columns(6)
    n = c1.slider(t("Sequences"), 8, 512, 256 if cuda else 48, key="pk_speed_n",
                  help=t("Drawn at random from the samples of the first tab."))
    width = c2.select_slider(t("Model width"), [64, 128, 256, 512, 1024, 2048], 1024 if cuda else 128,
                             key="pk_speed_width")
    layers = c3.slider(t("Layers"), 1, 8, 4 if cuda else 2, key="pk_speed_layers")
    capacity = c4.select_slider(t("Pack length"), LENGTH_OPTIONS[2:], 2048 if cuda else 1024, key="pk_speed_cap")
    batch = c5.slider(t("Batch size (padded)"), 1, 64, 16 if cuda else 8, key="pk_speed_batch")
    dtypes = ["bfloat16", "float32"] if cuda else ["float32", "bfloat16"]
    dtype = c6.selectbox(t("Precision"), dtypes, key="pk_speed_dtype")
    available = [m for m in packing.METHODS if m != "packed-flex" or packing_cache.flex_available(device)]
    methods = st.multiselect(t("Methods"), available, default=available, key="pk_speed_methods",
                             format_func={k: tr(v) for k, v in packing.METHODS.items()}.get)
    if not methods:
        raise ValidationError(N_("Pick at least one method to measure."))
    heads = max(1, width // 64)
    cfg = packing.ThroughputConfig(d_model=width, n_heads=heads, n_layers=layers, batch_size=batch,
                             capacity=capacity, dtype=dtype)
    sample = packing_cache.sample_sequences(lengths, min(n, len(lengths)))
    return sample, cfg, tuple(methods)


def speed_table(result) -> pd.DataFrame:
    rows = []
    for m in result.methods:
        if not m.available:
            rows.append({t("method"): tr(m.label), t("note"): tr(m.note)})
            continue
        rows.append({
            t("method"): tr(m.label), t("batches"): m.batches, t("computed positions"): f"{m.slots:,}",
            t("padding"): ui.fmt_pct(1 - m.real_tokens / m.slots), t("time per pass"): ui.fmt_ms(m.median_ms),
            t("tokens/s"): ui.fmt_count(m.tokens_per_s), t("saved for backward"): ui.fmt_bytes(m.saved_bytes),
            t("CUDA peak"): ui.fmt_bytes(m.peak_bytes) if m.peak_bytes is not None else t("unknown (not CUDA)"),
            t("FLOPs computed / useful"): f"{m.flops_computed / m.flops_useful:.2f}×", t("note"): tr(m.note)})
    return pd.DataFrame(rows)


def speed_figures(result) -> tuple[go.Figure, go.Figure]:
    ran = [m for m in result.methods if m.available]
    names, colors = [tr(SHORT[m.method]) for m in ran], [METHOD_COLORS[m.method] for m in ran]
    fig_t = go.Figure(go.Bar(x=names, y=[m.tokens_per_s for m in ran], marker_color=colors,
                             hovertemplate=t("%{x}: %{y:,.0f} real tokens/s<extra></extra>")))
    ui.style_figure(fig_t, y_title=t("real tokens/s (fwd + bwd)"), height=340)
    cuda = bool(ran) and ran[0].peak_bytes is not None
    mem = [m.peak_bytes if cuda else m.saved_bytes for m in ran]
    fig_m = go.Figure(go.Bar(x=names, y=mem, marker_color=colors,
                             hovertemplate=t("%{x}: %{y:,.0f} bytes<extra></extra>")))
    ui.style_figure(fig_m, y_title=t("CUDA peak (bytes)") if cuda else t("saved for backward (bytes)"), height=340)
    return fig_t, fig_m


def show_speed(result) -> None:
    st.dataframe(speed_table(result), hide_index=True, width="stretch")
    ui.plot_pair(*speed_figures(result), keys=("pk_speed_tps", "pk_speed_mem"))


def render_speed_tab(lengths) -> None:
    st.markdown(t(
        "One forward + backward pass over the same sequences, as padded batches and as packed rows "
        "(first-fit decreasing), through the block above (width, layers below; the loss counts real "
        "tokens only). Varlen attention here: **SDPA with a boolean block-diagonal mask** (computes the "
        "whole row's scores), a **loop of causal SDPA calls over `cu_seqlens`** (exact work, many small "
        "calls) and, on CUDA, **FlexAttention** with a document mask. On this torch build nested (jagged) "
        "tensors refuse a causal SDPA and FlexAttention has no CPU backward, so neither is timed on a CPU."))
    if not lengths:
        st.info(t("The samples of the first tab are needed here."), icon=":material/info:")
        return
    sample, cfg, methods = speed_settings(lengths)
    run_key = (sample, cfg, methods, device)
    if st.button(t("Measure on {device}", device=device), key="pk_speed_run", type="primary"):
        ui.run_with_progress(packing_cache.throughput, sample, cfg, device, methods)
        st.session_state["pk_speed_done"] = run_key
    if st.session_state.get("pk_speed_done") == run_key:
        show_speed(packing_cache.throughput(sample, cfg, device, methods))
    else:
        st.caption(t("{n} sequences, {tokens:,} real tokens, torch intra-op threads: {threads}. Press the "
                     "button to measure (tens of seconds on a CPU).", n=len(sample), tokens=sum(sample),
                     threads=info.cpu_threads))


def render_recorded() -> None:
    docs = cache.recorded("packing")
    if not docs:
        st.caption(t("No recorded benchmark yet: run `python -m bench.packing`."))
        return
    for i, doc in enumerate(docs):
        with st.expander(t("Recorded: {device} ({source})", device=doc["meta"]["device"]["name"],
                           source=doc.get("lengths_source", "")),
                         expanded=doc["meta"]["device"]["kind"] == "cuda"):
            load = doc.get("load_average_1m")
            threads = doc.get("torch_threads", "?")
            extra = (t(" torch threads: {threads}, machine load average {load:.1f} when it started.",
                       threads=threads, load=load) if load is not None
                     else t(" torch threads: {threads}.", threads=threads))
            st.caption(ui.recorded_caption(doc["meta"]) + extra)
            st.markdown("\n".join(f"- {line}" for line in doc.get("summary", [])))
            df = pd.DataFrame(doc.get("methods", []))
            if not df.empty:
                st.dataframe(df[[c for c in ("label", "batches", "median_ms", "tokens_per_s", "saved_bytes",
                                             "peak_bytes", "note") if c in df]],
                             hide_index=True, width="stretch", key=f"pk_rec_{i}")


with tab_speed:
    with ui.guard():
        render_speed_tab(corpus_lengths)
    with ui.guard():
        render_recorded()


ui.page_footer(
    t("""
**Padding vs packing.** Every strategy sees the same samples, shuffled as a data loader would.
*Efficiency* = real tokens / computed positions; *padding* is the rest. Padded batches use one
sequence per row; a packed batch gets the same token budget (batch × max length), i.e.
batch × max length / pack length rows. Length-grouped padding also removes most padding, but its
batches are sorted by length (a bias packing avoids). *Concatenate & chunk* (GPT pretraining) never
pads but cuts samples across rows. *Attention scores (full rows)* is what an attention over whole
rows computes (T² per row); a varlen kernel computes only Σ Lᵢ² (see the FLOPs column in the last tab).

**The mask.** `cu_seqlens` are the boundaries [0, l₀, l₀+l₁, …]. Query i may see key j only if both lie
in the same sequence and j ≤ i; positions restart at 0 at every boundary.

**Packed == alone?** Each sequence is run alone (positions 0…L−1, causal mask) and packed into one row
four ways; the bars are the relative error of each sequence's outputs. Correct packing sits at the
rounding level of the precision. A plain causal mask lets every sequence after the first attend to the
ones before it (sequence 0 is untouched). Non-restarting positions break *learned absolute* position
embeddings badly, but barely move a RoPE model: RoPE scores depend only on i − j, so shifting a whole
sequence by its offset changes nothing but rounding — until positions exceed the context length the
model was trained for.

**Speed & memory.** Time per pass is the median of timed passes after warm-up (CUDA events on a GPU).
Memory: on CUDA the allocator's peak; elsewhere the bytes autograd saves for backward in the largest
batch (parameters excluded), counted with `saved_tensors_hooks`. FLOPs computed / useful compares the
analytic work of each method with the work on real tokens and in-sequence attention only.
"""),
    [
        ("Krell et al. 2021, Efficient Sequence Packing without Cross-contamination, sections 3–4",
         "https://arxiv.org/abs/2107.02027"),
        ("Dao 2023, FlashAttention-2, section 3 (variable-length batches via cu_seqlens)",
         "https://arxiv.org/abs/2307.08691"),
        ("flash-attn: flash_attn_varlen_func (cu_seqlens interface)",
         "https://github.com/Dao-AILab/flash-attention"),
        ("Su et al. 2021, RoFormer (RoPE), section 3.4", "https://arxiv.org/abs/2104.09864"),
        ("Radford et al. 2019, GPT-2, section 2.3 (learned positions)",
         "https://cdn.openai.com/better-language-models/language_models_are_unsupervised_multitask_learners.pdf"),
        ("PyTorch: FlexAttention (document masking)", "https://pytorch.org/blog/flexattention/"),
        ("Dósa 2007, The tight bound of first fit decreasing bin-packing algorithm is FFD(I) ≤ 11/9 OPT(I) + 6/9",
         "https://doi.org/10.1007/978-3-540-74450-4_1"),
    ],
)
