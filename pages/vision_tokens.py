"""Vision tokens at native resolution: Kimi-VL's MoonViT patching, 2x2 merge, packing, 2D RoPE."""

from __future__ import annotations

import numpy as np
import pandas as pd
import plotly.graph_objects as go
import streamlit as st

from app import cache, ui
from app.cache import vision_tokens as vision_tokens_cache
from core.models import vision_tokens

UPLOAD_TYPES = ["png", "jpg", "jpeg", "gif", "bmp", "webp", "tif", "tiff"]
ASPECTS = {"1:1": 1.0, "4:3": 4 / 3, "16:9": 16 / 9, "3:1 (banner)": 3.0, "1:3 (page)": 1 / 3}
SCHEME_NAMES = {"kimi-vl": "Kimi-VL (MoonViT, native)", "qwen2-vl": "Qwen2-VL (smart_resize)",
                "fixed-336": "CLIP ViT-L/14-336 (fixed)"}

ui.page_header(
    "Vision tokens at native resolution",
    "How an image becomes tokens for a language model. Kimi-VL's MoonViT cuts the image **as it is** into "
    "14×14-pixel patches and merges 2×2 patches into one token, so a small icon costs a few tokens and "
    "a tall page keeps its shape; a fixed-resolution encoder squashes everything to 336×336 = 576 tokens. "
    "Images of different sizes are packed into one sequence, and a small patch-embedding + 2D-RoPE "
    "module runs over the real pixels.",
)
device = cache.device_name()


def choose_source() -> tuple:
    c1, c2 = st.columns([1, 2])
    kind = c1.radio("Image", ["Sample", "Upload"], horizontal=True, key="vt_kind")
    if kind == "Upload":
        up = c2.file_uploader("An image file (PNG, JPEG, GIF, BMP, WebP, TIFF; up to "
                              f"{vision_tokens.MAX_UPLOAD_BYTES // 1_000_000} MB)", type=UPLOAD_TYPES, key="vt_upload")
        if up is not None:
            return ("upload", up.name, up.getvalue())
        c2.caption("No file yet: showing the first sample.")
        return ("sample", vision_tokens.SAMPLES[0])
    return ("sample", c2.selectbox("Sample", vision_tokens.SAMPLES, key="vt_sample"))


def image_figure(uri: str, title: str, height: int = 420) -> go.Figure:
    """A PNG data URI drawn with pixel axes."""
    fig = go.Figure(go.Image(source=uri, hovertemplate="x %{x} px, y %{y} px<extra></extra>"))
    fig.update_yaxes(scaleanchor="x", showgrid=False, constrain="domain")
    fig.update_xaxes(showgrid=False, constrain="domain")
    return ui.style_figure(fig, x_title="x (pixels)", y_title="y (pixels)", height=height, title=title)


def grid_figure(z: np.ndarray, title: str, *, log: bool = False, mark=None, height: int = 330,
                label: str = "value") -> go.Figure:
    """A (rows, cols) map over the patch grid, one cell per patch."""
    values = np.log10(np.maximum(z, 1e-9)) if log else z
    label = "log₁₀ weight" if log else label
    fig = go.Figure(go.Heatmap(z=values, colorscale="Viridis", colorbar={"title": label},
                               hovertemplate="row %{y}, col %{x}: %{z:.3f}<extra></extra>"))
    if mark is not None:
        fig.add_scatter(x=[mark[1]], y=[mark[0]], mode="markers", marker_symbol="x", marker_size=12,
                        marker_color="#F76707", name="query", hoverinfo="skip")
    fig.update_xaxes(constrain="domain")
    fig.update_yaxes(autorange="reversed", scaleanchor="x", constrain="domain")
    return ui.style_figure(fig, x_title="patch column", y_title="patch row", height=height, title=title)


def rgb_figure(rgb: np.ndarray, title: str) -> go.Figure:
    fig = go.Figure(go.Image(z=(255 * rgb).astype(np.uint8),
                             hovertemplate="row %{y}, col %{x}<extra></extra>"))
    return ui.style_figure(fig, x_title="patch column", y_title="patch row", height=330, title=title)


# ---------------------------------------------------------------- patch grid
def plans_table(image, plans) -> pd.DataFrame:
    rows = []
    for plan in plans:
        rows.append({
            "Encoder": SCHEME_NAMES[plan.scheme],
            "Resized (H×W)": f"{plan.resized[0]}×{plan.resized[1]}",
            "Canvas (H×W)": f"{plan.canvas[0]}×{plan.canvas[1]}",
            "Patch grid": f"{plan.grid[0]}×{plan.grid[1]}", "ViT patches": plan.patches,
            "LLM tokens": plan.tokens, "Padding": ui.fmt_pct(plan.padding_fraction),
            "Shape kept": "yes" if abs(plan.aspect_change - 1) < 0.02 else f"×{plan.aspect_change:.2f} aspect",
            "Original pixels per token": f"{image.size[0] * image.size[1] / plan.tokens:,.0f}",
        })
    return pd.DataFrame(rows)


def show_grid(source: tuple, image) -> None:
    plans = vision_tokens_cache.plans(image.size)
    kimi, fixed = plans[0], plans[-1]                      # all_plans: Kimi-VL first, fixed last
    c = st.columns(4)
    c[0].metric("Image", f"{image.size[1]}×{image.size[0]} px")
    c[1].metric("Patch grid (14 px)", f"{kimi.grid[0]}×{kimi.grid[1]}", help=f"{kimi.patches:,} ViT patches")
    c[2].metric("Visual tokens (Kimi-VL)", f"{kimi.tokens:,}", help="after the 2×2 merge")
    c[3].metric("Fixed 336×336 encoder", f"{fixed.tokens:,}",
                delta=f"{fixed.tokens - kimi.tokens:+,} tokens", delta_color="off", delta_arrow="off")
    if kimi.resized != image.size:
        st.info(f"Above Kimi-VL's limit of {vision_tokens.IN_TOKEN_LIMIT:,} patches: the image is scaled to "
                f"{kimi.resized[1]}×{kimi.resized[0]} px first.", icon=":material/photo_size_select_large:")
    left, right = st.columns([3, 2])
    with left:
        ui.plot(image_figure(vision_tokens_cache.overlay(source, kimi), "Native resolution: 14-px patches, orange = one LLM token (2×2), "
                                   "pink = padding"), key="vt_native")
    with right:
        ui.plot(image_figure(vision_tokens_cache.overlay(source, fixed), "Fixed 336×336: the same image, squashed", height=420),
                key="vt_fixed")
    st.dataframe(plans_table(image, plans), hide_index=True, width="stretch")


# ---------------------------------------------------------------- tokens vs size
def scaling_figure(aspect: float) -> go.Figure:
    sides = (28, 56, 112, 224, 336, 448, 672, 896, 1344, 1792, 2688, 4032)
    df = pd.DataFrame(vision_tokens_cache.scaling(aspect, sides))
    fig = go.Figure()
    for scheme, part in df.groupby("scheme", sort=False):
        name = SCHEME_NAMES[scheme]
        fig.add_scatter(x=part["side"], y=part["tokens"], name=name, mode="lines+markers",
                        customdata=part[["width", "height"]].to_numpy(),
                        hovertemplate="%{customdata[0]}×%{customdata[1]} px: %{y:,} tokens<extra>"
                                      + name + "</extra>")
    fig.update_xaxes(type="log", tickvals=sides[::2], ticktext=[f"{s:,}" for s in sides[::2]])
    fig.update_yaxes(type="log", dtick=1)
    return ui.style_figure(fig, x_title="longer side of the image (pixels, log)",
                           y_title="visual tokens (log)", height=380)


# ---------------------------------------------------------------- packing
def mask_figure(result) -> go.Figure:
    preview = vision_tokens_cache.mask_preview(result.packing, 240)
    n = result.packing.total
    edges = np.linspace(0, n, preview.shape[0] + 1)
    centers = (edges[:-1] + edges[1:]) / 2
    fig = go.Figure(go.Heatmap(z=preview, x=centers, y=centers, colorscale="Blues", zmin=0, zmax=1,
                               colorbar={"title": "allowed"},
                               hovertemplate="query %{y:.0f}, key %{x:.0f}: %{z:.2f}<extra></extra>"))
    for cut in result.packing.cu_seqlens[1:-1]:
        fig.add_vline(x=cut, line_color="#F76707", line_width=1)
        fig.add_hline(y=cut, line_color="#F76707", line_width=1)
    fig.update_xaxes(constrain="domain")
    fig.update_yaxes(autorange="reversed", scaleanchor="x", constrain="domain")
    return ui.style_figure(fig, x_title="key patch (position in the packed sequence)",
                           y_title="query patch", height=460,
                           title=f"Block-diagonal attention mask over {n:,} packed patches")


def show_packing(result) -> None:
    p = result.packing
    c = st.columns(4)
    c[0].metric("Packed sequence", f"{p.total:,} patches", help=f"cu_seqlens = {list(p.cu_seqlens)}")
    c[1].metric("As a padded batch", f"{p.padded_total:,} patches",
                delta=f"{p.padded_total - p.total:,} padding", delta_color="off", delta_arrow="off")
    c[2].metric("Packed = each image alone", f"{result.packed_vs_separate:.1e}",
                help="max |difference| of the output tokens: attention never crosses images")
    dense = "skipped" if result.packed_vs_dense is None else f"{result.packed_vs_dense:.1e}"
    c[3].metric("Per-image = dense mask", dense,
                help=f"varlen path vs one dense block-diagonal mask (run up to {vision_tokens.DENSE_CHECK_MAX:,} patches)")
    left, right = st.columns([3, 2])
    with left:
        ui.plot(mask_figure(result), key="vt_mask")
    with right:
        rows = [{"Image": f.name, "Grid": f"{f.plan.grid[0]}×{f.plan.grid[1]}", "Patches": f.plan.patches,
                 "LLM tokens": f.plan.tokens} for f in result.images]
        st.dataframe(pd.DataFrame(rows), hide_index=True, width="stretch")
        st.caption(f"The encoder hands {result.token_shape[0]:,} tokens of width {result.token_shape[1]} "
                   f"to the language model (computed in {ui.fmt_ms(1000 * result.seconds)} on {device}).")


# ---------------------------------------------------------------- encoder
def show_encoder(source: tuple, features, cfg: vision_tokens.EncoderConfig) -> None:
    gh, gw = features.plan.grid
    c = st.columns(3)
    with c[0]:
        ui.plot(rgb_figure(features.embedding_rgb, "PCA of the patch embeddings"), key="vt_pca_emb")
    with c[1]:
        ui.plot(rgb_figure(features.attended_rgb, "PCA after 2D-RoPE attention"), key="vt_pca_att")
    with c[2]:
        ui.plot(grid_figure(features.embedding_norm, "Patch-embedding norm", label="‖e‖"), key="vt_norm")
    c1, c2 = st.columns(2)
    row = int(c1.slider("Query patch row", 0, gh - 1, gh // 2, key="vt_qrow"))
    col = int(c2.slider("Query patch column", 0, gw - 1, gw // 2, key="vt_qcol"))
    maps = vision_tokens_cache.attention(source, (row, col), cfg, device)
    c = st.columns(3)
    for i, (name, attn) in enumerate(maps.items()):
        with c[i]:
            ui.plot(grid_figure(attn, f"Query's attention, {name}", log=True, mark=(row, col)),
                    key=f"vt_attn_{i}")
    with c[2]:
        fig = go.Figure()
        for name, attn in maps.items():
            prof = pd.DataFrame(vision_tokens_cache.distance_profile(attn, (row, col)))
            fig.add_scatter(x=prof["distance"], y=prof["mean_weight"], name=name, mode="lines",
                            hovertemplate="%{x} patches away: %{y:.2e}<extra>" + name + "</extra>")
        fig.update_yaxes(type="log", dtick=1, exponentformat="power")
        ui.style_figure(fig, x_title="distance from the query (patches)",
                        y_title="mean attention weight (log)", height=330, title="Attention vs distance")
        fig.update_layout(legend={"yanchor": "top", "y": 0.98, "x": 0.4, "orientation": "v"})
        ui.plot(fig, key="vt_profile")


with ui.guard():
    source = choose_source()
image = None
with ui.guard():
    image = vision_tokens_cache.image(source)
    if image.downscaled:
        st.warning(f"The image is {image.original_size[1]}×{image.original_size[0]} px; it was scaled to "
                   f"{image.size[1]}×{image.size[0]} px (longest side capped at {vision_tokens.MAX_WORK_SIDE:,}).",
                   icon=":material/content_cut:")

if image is None:
    st.info("Choose a sample, or upload another file.", icon=":material/image:")
else:
    tab_grid, tab_size, tab_pack, tab_enc = st.tabs(
        ["Patch grid", "Tokens vs image size", "Packing several images", "Patch embedding + 2D RoPE"])
    with tab_grid, ui.guard():
        show_grid(source, image)
    with tab_size, ui.guard():
        aspect = st.radio("Aspect ratio (width:height)", list(ASPECTS), horizontal=True, key="vt_aspect")
        ui.plot(scaling_figure(ASPECTS[aspect]), key="vt_scaling")
        st.caption(f"Native resolution grows with the area until Kimi-VL's {vision_tokens.IN_TOKEN_LIMIT:,}-patch "
                   f"limit ({vision_tokens.IN_TOKEN_LIMIT // 4:,} tokens); Qwen2-VL caps at "
                   f"{vision_tokens.QWEN_MAX_PIXELS:,} pixels; the fixed encoder spends 576 tokens on a thumbnail "
                   "and on a poster alike.")
    cfg = vision_tokens.EncoderConfig()
    result = None
    with tab_pack, ui.guard():
        others = st.multiselect("Pack together with", [s for s in vision_tokens.SAMPLES if ("sample", s) != source],
                                default=["small icon (generated)", "china, 1:4 strip (crop)"],
                                key="vt_pack", max_selections=vision_tokens.MAX_PACK_IMAGES - 1)
        sources = (source, *(("sample", s) for s in others))
        result = vision_tokens_cache.encode(sources, cfg, device, _on_wait=ui.wait_callback(st.empty()))
        show_packing(result)
    with tab_enc, ui.guard():
        if result is None:
            st.info("The encoder did not run (see the message in the packing tab).", icon=":material/info:")
        else:
            st.caption(f"Seeded, untrained weights: a linear patch embedding (= Conv2d 3→{cfg.dim}, "
                       f"kernel 14, stride 14), one attention layer ({cfg.heads} heads, q and k share one "
                       "projection so a patch attends to patches that look like it) with axial 2D RoPE, "
                       f"then the 2×2 merge and a projector MLP to width {cfg.out_dim}.")
            show_encoder(source, result.images[0], cfg)

ui.page_footer(
    "- **Patch grid**: white lines every 14 px are ViT patches; the orange 28-px squares are what the "
    "language model sees as one token after the 2×2 merge (pixel shuffle + MLP). Pink is padding up to a "
    "multiple of 28. The fixed encoder's view on the right is what a 336×336 model gets: text and thin "
    "shapes are squashed or lost, and a small icon is blown up to 576 tokens.\n"
    "- **Packing**: NaViT-style, the patches of all images are concatenated and attention is restricted "
    "to blocks on the diagonal (cu_seqlens, as flash-attention's varlen kernels take them). The checks "
    "show the packed run equals running every image alone. A padded batch would waste the difference.\n"
    "- **Patch embedding + 2D RoPE**: the colours are the first three principal components of the patch "
    "features, so regions with similar features share a colour. The attention maps compare the same "
    "query with and without 2D RoPE: without positions, attention follows appearance only; with 2D "
    "RoPE, the score also depends on the row and column offset, and the distance plot shows the decay "
    "RoPE adds (RoFormer section 3.4.3). Weights are untrained, so this shows mechanics, not semantics.",
    [
        ("Kimi Team 2025, Kimi-VL Technical Report, section 2.1 (MoonViT, 2D RoPE, packing)",
         "https://arxiv.org/abs/2504.07491"),
        ("Dehghani et al. 2023, Patch n' Pack: NaViT, section 2", "https://arxiv.org/abs/2307.06304"),
        ("Wang et al. 2024, Qwen2-VL, section 2.1 (naive dynamic resolution, 2D RoPE)",
         "https://arxiv.org/abs/2409.12191"),
        ("Liu et al. 2023, Improved Baselines with Visual Instruction Tuning (LLaVA-1.5, 336 px)",
         "https://arxiv.org/abs/2310.03744"),
        ("Dosovitskiy et al. 2021, An Image is Worth 16x16 Words (ViT), section 3.1",
         "https://arxiv.org/abs/2010.11929"),
        ("Su et al. 2021, RoFormer, section 3.4", "https://arxiv.org/abs/2104.09864"),
    ],
)
