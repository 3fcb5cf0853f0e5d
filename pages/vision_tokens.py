"""Vision tokens at native resolution: Kimi-VL's MoonViT patching, 2x2 merge, packing, 2D RoPE."""

from __future__ import annotations

import numpy as np
import pandas as pd
import plotly.graph_objects as go
import streamlit as st

from app import cache, ui
from app.cache import vision_tokens as vision_tokens_cache
from app.i18n import N_, t, tr
from core.models import vision_tokens

UPLOAD_TYPES = ["png", "jpg", "jpeg", "gif", "bmp", "webp", "tif", "tiff"]
ASPECTS = {"1:1": 1.0, "4:3": 4 / 3, "16:9": 16 / 9, "3:1 (banner)": 3.0, "1:3 (page)": 1 / 3}  # i18n: skip (keys)
ASPECT_NAMES = {"3:1 (banner)": N_("3:1 (banner)"), "1:3 (page)": N_("1:3 (page)")}
SCHEME_NAMES = {"kimi-vl": N_("Kimi-VL (MoonViT, native)"), "qwen2-vl": N_("Qwen2-VL (smart_resize)"),
                "fixed-336": N_("CLIP ViT-L/14-336 (fixed)")}
SOURCE_KINDS = {"Sample": N_("Sample"), "Upload": N_("Upload")}  # i18n: skip (keys)


def sample_names() -> dict[str, str]:
    """Each sample's name in the session's language (a format_func made in this run: AppTest calls
    format_funcs outside the script, where no language is set)."""
    return {s: tr(s) for s in vision_tokens.SAMPLES}


def image_name(name: str) -> str:
    """A sample's name in the session's language; an upload's file name as it is."""
    return tr(name) if name in vision_tokens.SAMPLES else name


ui.page_header(
    t("Vision tokens at native resolution"),
    t("How an image becomes tokens for a language model. Kimi-VL's MoonViT cuts the image **as it is** into "
      "14×14-pixel patches and merges 2×2 patches into one token, so a small icon costs a few tokens and "
      "a tall page keeps its shape; a fixed-resolution encoder squashes everything to 336×336 = 576 tokens. "
      "Images of different sizes are packed into one sequence, and a small patch-embedding + 2D-RoPE "
      "module runs over the real pixels."),
)
device = cache.device_name()


def choose_source() -> tuple:
    c1, c2 = st.columns([1, 2])
    kinds = {k: tr(label) for k, label in SOURCE_KINDS.items()}     # labels made now, in this run
    kind = c1.radio(t("Image"), list(kinds), horizontal=True, key="vt_kind", format_func=kinds.get)
    if kind == "Upload":
        up = c2.file_uploader(t("An image file (PNG, JPEG, GIF, BMP, WebP, TIFF; up to {mb} MB)",
                                mb=vision_tokens.MAX_UPLOAD_BYTES // 1_000_000), type=UPLOAD_TYPES, key="vt_upload")
        if up is not None:
            return ("upload", up.name, up.getvalue())
        c2.caption(t("No file yet: showing the first sample."))
        return ("sample", vision_tokens.SAMPLES[0])
    return ("sample", c2.selectbox(t("Sample"), vision_tokens.SAMPLES, key="vt_sample", format_func=sample_names().get))


def image_figure(uri: str, title: str, height: int = 420) -> go.Figure:
    """A PNG data URI drawn with pixel axes."""
    fig = go.Figure(go.Image(source=uri, hovertemplate=t("x %{x} px, y %{y} px<extra></extra>")))
    fig.update_yaxes(scaleanchor="x", showgrid=False, constrain="domain")
    fig.update_xaxes(showgrid=False, constrain="domain")
    return ui.style_figure(fig, x_title=t("x (pixels)"), y_title=t("y (pixels)"), height=height, title=title)


def grid_figure(z: np.ndarray, title: str, *, log: bool = False, mark=None, height: int = 330,
                label: str | None = None) -> go.Figure:
    """A (rows, cols) map over the patch grid, one cell per patch."""
    values = np.log10(np.maximum(z, 1e-9)) if log else z
    label = t("log₁₀ weight") if log else label or t("value")
    fig = go.Figure(go.Heatmap(z=values, colorscale="Viridis", colorbar={"title": label},
                               hovertemplate=t("row %{y}, col %{x}: %{z:.3f}<extra></extra>")))
    if mark is not None:
        fig.add_scatter(x=[mark[1]], y=[mark[0]], mode="markers", marker_symbol="x", marker_size=12,
                        marker_color="#F76707", name=t("query"), hoverinfo="skip")
    fig.update_xaxes(constrain="domain")
    fig.update_yaxes(autorange="reversed", scaleanchor="x", constrain="domain")
    return ui.style_figure(fig, x_title=t("patch column"), y_title=t("patch row"), height=height, title=title)


def rgb_figure(rgb: np.ndarray, title: str) -> go.Figure:
    fig = go.Figure(go.Image(z=(255 * rgb).astype(np.uint8),
                             hovertemplate=t("row %{y}, col %{x}<extra></extra>")))
    return ui.style_figure(fig, x_title=t("patch column"), y_title=t("patch row"), height=330, title=title)


# ---------------------------------------------------------------- patch grid
def plans_table(image, plans) -> pd.DataFrame:
    rows = []
    for plan in plans:
        rows.append({
            t("Encoder"): tr(SCHEME_NAMES[plan.scheme]),
            t("Resized (H×W)"): f"{plan.resized[0]}×{plan.resized[1]}",
            t("Canvas (H×W)"): f"{plan.canvas[0]}×{plan.canvas[1]}",
            t("Patch grid"): f"{plan.grid[0]}×{plan.grid[1]}", t("ViT patches"): plan.patches,
            t("LLM tokens"): plan.tokens, t("Padding"): ui.fmt_pct(plan.padding_fraction),
            t("Shape kept"): t("yes") if abs(plan.aspect_change - 1) < 0.02
            else t("×{change:.2f} aspect", change=plan.aspect_change),
            t("Original pixels per token"): f"{image.size[0] * image.size[1] / plan.tokens:,.0f}",
        })
    return pd.DataFrame(rows)


def show_grid(source: tuple, image) -> None:
    plans = vision_tokens_cache.plans(image.size)
    kimi, fixed = plans[0], plans[-1]                      # all_plans: Kimi-VL first, fixed last
    c = st.columns(4)
    c[0].metric(t("Image"), f"{image.size[1]}×{image.size[0]} px")
    c[1].metric(t("Patch grid (14 px)"), f"{kimi.grid[0]}×{kimi.grid[1]}",
                help=t("{n:,} ViT patches", n=kimi.patches))
    c[2].metric(t("Visual tokens (Kimi-VL)"), f"{kimi.tokens:,}", help=t("after the 2×2 merge"))
    c[3].metric(t("Fixed 336×336 encoder"), f"{fixed.tokens:,}",
                delta=t("{diff:+,} tokens", diff=fixed.tokens - kimi.tokens), delta_color="off", delta_arrow="off")
    if kimi.resized != image.size:
        st.info(t("Above Kimi-VL's limit of {limit:,} patches: the image is scaled to {width}×{height} px first.",
                  limit=vision_tokens.IN_TOKEN_LIMIT, width=kimi.resized[1], height=kimi.resized[0]),
                icon=":material/photo_size_select_large:")
    left, right = st.columns([3, 2])
    with left:
        ui.plot(image_figure(vision_tokens_cache.overlay(source, kimi),
                             t("Native resolution: 14-px patches, orange = one LLM token (2×2), pink = padding")),
                key="vt_native")
    with right:
        ui.plot(image_figure(vision_tokens_cache.overlay(source, fixed), t("Fixed 336×336: the same image, squashed"),
                             height=420), key="vt_fixed")
    st.dataframe(plans_table(image, plans), hide_index=True, width="stretch")


# ---------------------------------------------------------------- tokens vs size
def scaling_figure(aspect: float) -> go.Figure:
    sides = (28, 56, 112, 224, 336, 448, 672, 896, 1344, 1792, 2688, 4032)
    df = pd.DataFrame(vision_tokens_cache.scaling(aspect, sides))
    fig = go.Figure()
    for scheme, part in df.groupby("scheme", sort=False):
        name = tr(SCHEME_NAMES[scheme])
        fig.add_scatter(x=part["side"], y=part["tokens"], name=name, mode="lines+markers",
                        customdata=part[["width", "height"]].to_numpy(),
                        hovertemplate=t("%{{customdata[0]}}×%{{customdata[1]}} px: %{{y:,}} tokens<extra>{name}</extra>",
                                        name=name))
    fig.update_xaxes(type="log", tickvals=sides[::2], ticktext=[f"{s:,}" for s in sides[::2]])
    fig.update_yaxes(type="log", dtick=1)
    return ui.style_figure(fig, x_title=t("longer side of the image (pixels, log)"),
                           y_title=t("visual tokens (log)"), height=380)


# ---------------------------------------------------------------- packing
def mask_figure(result) -> go.Figure:
    preview = vision_tokens_cache.mask_preview(result.packing, 240)
    n = result.packing.total
    edges = np.linspace(0, n, preview.shape[0] + 1)
    centers = (edges[:-1] + edges[1:]) / 2
    fig = go.Figure(go.Heatmap(z=preview, x=centers, y=centers, colorscale="Blues", zmin=0, zmax=1,
                               colorbar={"title": t("allowed")},
                               hovertemplate=t("query %{y:.0f}, key %{x:.0f}: %{z:.2f}<extra></extra>")))
    for cut in result.packing.cu_seqlens[1:-1]:
        fig.add_vline(x=cut, line_color="#F76707", line_width=1)
        fig.add_hline(y=cut, line_color="#F76707", line_width=1)
    fig.update_xaxes(constrain="domain")
    fig.update_yaxes(autorange="reversed", scaleanchor="x", constrain="domain")
    return ui.style_figure(fig, x_title=t("key patch (position in the packed sequence)"),
                           y_title=t("query patch"), height=460,
                           title=t("Block-diagonal attention mask over {n:,} packed patches", n=n))


def show_packing(result) -> None:
    p = result.packing
    c = st.columns(4)
    c[0].metric(t("Packed sequence"), t("{n:,} patches", n=p.total), help=f"cu_seqlens = {list(p.cu_seqlens)}")
    c[1].metric(t("As a padded batch"), t("{n:,} patches", n=p.padded_total),
                delta=t("{n:,} padding", n=p.padded_total - p.total), delta_color="off", delta_arrow="off")
    c[2].metric(t("Packed = each image alone"), f"{result.packed_vs_separate:.1e}",
                help=t("max |difference| of the output tokens: attention never crosses images"))
    dense = t("skipped") if result.packed_vs_dense is None else f"{result.packed_vs_dense:.1e}"
    c[3].metric(t("Per-image = dense mask"), dense,
                help=t("varlen path vs one dense block-diagonal mask (run up to {n:,} patches)",
                       n=vision_tokens.DENSE_CHECK_MAX))
    left, right = st.columns([3, 2])
    with left:
        ui.plot(mask_figure(result), key="vt_mask")
    with right:
        rows = [{t("Image"): image_name(f.name), t("Grid"): f"{f.plan.grid[0]}×{f.plan.grid[1]}",
                 t("Patches"): f.plan.patches, t("LLM tokens"): f.plan.tokens} for f in result.images]
        st.dataframe(pd.DataFrame(rows), hide_index=True, width="stretch")
        st.caption(t("The encoder hands {n:,} tokens of width {width} to the language model (computed in "
                     "{time} on {device}).", n=result.token_shape[0], width=result.token_shape[1],
                     time=ui.fmt_ms(1000 * result.seconds), device=device))


# ---------------------------------------------------------------- encoder
def show_encoder(source: tuple, features, cfg: vision_tokens.EncoderConfig) -> None:
    gh, gw = features.plan.grid
    c = st.columns(3)
    with c[0]:
        ui.plot(rgb_figure(features.embedding_rgb, t("PCA of the patch embeddings")), key="vt_pca_emb")
    with c[1]:
        ui.plot(rgb_figure(features.attended_rgb, t("PCA after 2D-RoPE attention")), key="vt_pca_att")
    with c[2]:
        ui.plot(grid_figure(features.embedding_norm, t("Patch-embedding norm"), label="‖e‖"), key="vt_norm")
    c1, c2 = st.columns(2)
    row = int(c1.slider(t("Query patch row"), 0, gh - 1, gh // 2, key="vt_qrow"))
    col = int(c2.slider(t("Query patch column"), 0, gw - 1, gw // 2, key="vt_qcol"))
    maps = vision_tokens_cache.attention(source, (row, col), cfg, device)
    c = st.columns(3)
    for i, (name, attn) in enumerate(maps.items()):
        with c[i]:
            ui.plot(grid_figure(attn, t("Query's attention, {name}", name=tr(name)), log=True, mark=(row, col)),
                    key=f"vt_attn_{i}")
    with c[2]:
        fig = go.Figure()
        for name, attn in maps.items():
            prof = pd.DataFrame(vision_tokens_cache.distance_profile(attn, (row, col)))
            fig.add_scatter(x=prof["distance"], y=prof["mean_weight"], name=tr(name), mode="lines",
                            hovertemplate=t("%{{x}} patches away: %{{y:.2e}}<extra>{name}</extra>", name=tr(name)))
        fig.update_yaxes(type="log", dtick=1, exponentformat="power")
        ui.style_figure(fig, x_title=t("distance from the query (patches)"),
                        y_title=t("mean attention weight (log)"), height=330, title=t("Attention vs distance"))
        fig.update_layout(legend={"yanchor": "top", "y": 0.98, "x": 0.4, "orientation": "v"})
        ui.plot(fig, key="vt_profile")


with ui.guard():
    source = choose_source()
image = None
with ui.guard():
    image = vision_tokens_cache.image(source)
    if image.downscaled:
        st.warning(t("The image is {width}×{height} px; it was scaled to {new_width}×{new_height} px (longest "
                     "side capped at {cap:,}).", width=image.original_size[1], height=image.original_size[0],
                     new_width=image.size[1], new_height=image.size[0], cap=vision_tokens.MAX_WORK_SIDE),
                   icon=":material/content_cut:")

if image is None:
    st.info(t("Choose a sample, or upload another file."), icon=":material/image:")
else:
    tab_grid, tab_size, tab_pack, tab_enc = st.tabs(
        [t("Patch grid"), t("Tokens vs image size"), t("Packing several images"), t("Patch embedding + 2D RoPE")])
    with tab_grid, ui.guard():
        show_grid(source, image)
    with tab_size, ui.guard():
        aspects = {a: tr(ASPECT_NAMES[a]) if a in ASPECT_NAMES else a for a in ASPECTS}
        aspect = st.radio(t("Aspect ratio (width:height)"), list(aspects), horizontal=True, key="vt_aspect",
                          format_func=aspects.get)
        ui.plot(scaling_figure(ASPECTS[aspect]), key="vt_scaling")
        st.caption(t("Native resolution grows with the area until Kimi-VL's {limit:,}-patch "
                     "limit ({tokens:,} tokens); Qwen2-VL caps at {pixels:,} pixels; the fixed encoder spends "
                     "576 tokens on a thumbnail and on a poster alike.", limit=vision_tokens.IN_TOKEN_LIMIT,
                     tokens=vision_tokens.IN_TOKEN_LIMIT // 4, pixels=vision_tokens.QWEN_MAX_PIXELS))
    cfg = vision_tokens.EncoderConfig()
    result = None
    with tab_pack, ui.guard():
        others = st.multiselect(t("Pack together with"), [s for s in vision_tokens.SAMPLES if ("sample", s) != source],
                                default=["small icon (generated)", "china, 1:4 strip (crop)"], format_func=sample_names().get,
                                key="vt_pack", max_selections=vision_tokens.MAX_PACK_IMAGES - 1)
        sources = (source, *(("sample", s) for s in others))
        result = vision_tokens_cache.encode(sources, cfg, device, _on_wait=ui.wait_callback(st.empty()))
        show_packing(result)
    with tab_enc, ui.guard():
        if result is None:
            st.info(t("The encoder did not run (see the message in the packing tab)."), icon=":material/info:")
        else:
            st.caption(t("Seeded, untrained weights: a linear patch embedding (= Conv2d 3→{dim}, "
                         "kernel 14, stride 14), one attention layer ({heads} heads, q and k share one "
                         "projection so a patch attends to patches that look like it) with axial 2D RoPE, "
                         "then the 2×2 merge and a projector MLP to width {out_dim}.", dim=cfg.dim, heads=cfg.heads,
                         out_dim=cfg.out_dim))
            show_encoder(source, result.images[0], cfg)

ui.page_footer(
    "\n".join([
        t("- **Patch grid**: white lines every 14 px are ViT patches; the orange 28-px squares are what the "
          "language model sees as one token after the 2×2 merge (pixel shuffle + MLP). Pink is padding up to a "
          "multiple of 28. The fixed encoder's view on the right is what a 336×336 model gets: text and thin "
          "shapes are squashed or lost, and a small icon is blown up to 576 tokens."),
        t("- **Packing**: NaViT-style, the patches of all images are concatenated and attention is restricted "
          "to blocks on the diagonal (cu_seqlens, as flash-attention's varlen kernels take them). The checks "
          "show the packed run equals running every image alone. A padded batch would waste the difference."),
        t("- **Patch embedding + 2D RoPE**: the colours are the first three principal components of the patch "
          "features, so regions with similar features share a colour. The attention maps compare the same "
          "query with and without 2D RoPE: without positions, attention follows appearance only; with 2D "
          "RoPE, the score also depends on the row and column offset, and the distance plot shows the decay "
          "RoPE adds (RoFormer section 3.4.3). Weights are untrained, so this shows mechanics, not semantics."),
    ]),
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
