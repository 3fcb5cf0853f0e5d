"""core.memory KV-cache formulas against hand-derived values from the papers."""

from __future__ import annotations

import pytest

from core.configs import PRESETS
from core.memory import kv_cache_bytes, kv_cache_bytes_per_token
from core.runtime.validation import ValidationError


@pytest.mark.parametrize("name, expected", [
    # 2 (K,V) x kv_heads x head_dim x layers x 2 bytes
    ("llama-2-7b", 2 * 32 * 128 * 32 * 2),     # 512 KiB per token (MHA)
    ("llama-3-8b", 2 * 8 * 128 * 32 * 2),      # 128 KiB (GQA, 8 KV heads)
    ("falcon-7b", 2 * 1 * 64 * 32 * 2),        # 8 KiB (MQA)
    # DeepSeek-V2 section 2.1.4 / V3 2.1.1: cache (d_c + d_h^R) per layer
    ("deepseek-v3", (512 + 64) * 61 * 2),      # 70,272 B
    ("deepseek-v2", (512 + 64) * 60 * 2),
])
def test_kv_bytes_per_token(name, expected):
    assert kv_cache_bytes_per_token(PRESETS[name]) == expected


def test_mla_is_much_smaller_than_mha_equivalent():
    """DeepSeek-V2 Table 1: MLA caches (d_c + d_h^R) = 4.5 d_h per token per layer vs 2 n_h d_h."""
    v2 = PRESETS["deepseek-v2"]
    mha_equivalent = 2 * v2.heads * 128
    assert (v2.kv_lora_rank + v2.qk_rope_head_dim) == 4.5 * 128
    assert mha_equivalent / (v2.kv_lora_rank + v2.qk_rope_head_dim) > 50


def test_kv_cache_bytes_scales():
    cfg = PRESETS["llama-2-7b"]
    assert kv_cache_bytes(cfg, seq=4096, batch=2) == 2 * 4096 * 2**19
    assert kv_cache_bytes_per_token(cfg, bytes_per_value=1) == 2**18
    with pytest.raises(ValidationError):
        kv_cache_bytes(cfg, seq=-1)
    with pytest.raises(ValidationError):
        kv_cache_bytes_per_token(cfg, bytes_per_value=0)
