"""Vision tokens page: images, encodings and the patch attention.

Cached wrappers only (see app/cache/__init__.py for the rules).
"""

from __future__ import annotations

import streamlit as st

from core.models import vision_tokens


@st.cache_data(max_entries=16, show_spinner=False)
def sample(name: str):
    return vision_tokens.sample_image(name)


@st.cache_data(max_entries=16, ttl=3600, show_spinner=False)
def upload(data: bytes, name: str):
    return vision_tokens.load_image(data, name)


def image(source: tuple):
    """("sample", name) or ("upload", name, bytes) -> core.models.vision_tokens.LoadedImage (cached)."""
    if source[0] == "sample":
        return sample(source[1])
    return upload(source[2], source[1])


@st.cache_data(max_entries=16, ttl=3600, show_spinner=False)
def encode(sources: tuple, cfg, device: str, _on_wait=None):
    images = [image(s) for s in sources]
    return vision_tokens.encode_images(images, cfg, device=device, on_wait=_on_wait)


@st.cache_data(max_entries=32, ttl=3600, show_spinner=False)
def attention(source: tuple, query: tuple[int, int], cfg, device: str):
    return vision_tokens.attention_maps(image(source), query, cfg, device=device)
