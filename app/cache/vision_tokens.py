"""Vision tokens page: images, encodings and the patch attention.

Cached wrappers only (see app/cache/__init__.py for the rules). An image is named by its source,
("sample", name) or ("upload", name, bytes), so every view of it is keyed by what it was made from.
"""

from __future__ import annotations

import streamlit as st

from core.models import vision_tokens
from core.views import images


@st.cache_data(max_entries=16, ttl=3600, show_spinner=False)
def image(source: tuple) -> vision_tokens.LoadedImage:
    """("sample", name) or ("upload", name, bytes) -> the decoded, size-checked image."""
    return vision_tokens.image_from_source(source)


@st.cache_data(max_entries=32, show_spinner=False)
def plans(size: tuple[int, int]) -> list[vision_tokens.PatchPlan]:
    """Kimi-VL's, Qwen2-VL's (when the aspect allows) and the fixed encoder's plans for (H, W)."""
    return vision_tokens.all_plans(*size)


@st.cache_data(max_entries=8, ttl=3600, show_spinner=False)
def overlay(source: tuple, plan: vision_tokens.PatchPlan) -> str:
    """The image as ``plan`` feeds it to the encoder, grids drawn, as a PNG data URI."""
    return images.png_data_uri(vision_tokens.plan_overlay(image(source), plan))


@st.cache_data(max_entries=16, show_spinner=False)
def scaling(aspect: float, sides: tuple[int, ...]) -> list[dict]:
    """Tokens per scheme as the longer side of an image of ``aspect`` grows."""
    return vision_tokens.tokens_vs_side(aspect, list(sides))


@st.cache_data(max_entries=16, ttl=3600, show_spinner=False)
def encode(sources: tuple, cfg: vision_tokens.EncoderConfig, device: str, _on_wait=None):
    """The packed images through the encoder, checked against per-image and dense-mask runs."""
    return vision_tokens.encode_sources(sources, cfg, device=device, on_wait=_on_wait)


@st.cache_data(max_entries=16, ttl=3600, show_spinner=False)
def mask_preview(packing: vision_tokens.Packing, cells: int):
    """(c, c) share of allowed (query, key) pairs per cell of the packed mask."""
    return vision_tokens.mask_preview(packing, cells)


@st.cache_data(max_entries=32, ttl=3600, show_spinner=False)
def attention(source: tuple, query: tuple[int, int], cfg: vision_tokens.EncoderConfig, device: str):
    """Attention of one patch over its image, with and without 2D RoPE."""
    return vision_tokens.attention_maps(image(source), query, cfg, device=device)


@st.cache_data(max_entries=32, ttl=3600, show_spinner=False)
def distance_profile(attn, query: tuple[int, int]) -> list[dict]:
    """Mean attention weight at each distance from the query patch."""
    return vision_tokens.attention_by_distance(attn, query)
