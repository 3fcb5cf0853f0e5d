"""Memory calculators, in bytes: pure functions, no torch needed.

KV cache (this part): what one token leaves in the cache across all layers.
- MHA / GQA / MQA: 2 (K and V) x kv_heads x head_dim x layers values.
- MLA (DeepSeek-V2 section 2.1; DeepSeek-V3 section 2.1.1): only the joint
  latent c_KV (kv_lora_rank) and the shared decoupled RoPE key
  (qk_rope_head_dim) per layer: (kv_lora_rank + qk_rope_head_dim) x layers.
Does not handle: paged-allocator block rounding, quantised caches with
per-group scales (pass bytes_per_value for the element size only).
"""

from __future__ import annotations

from core.configs import ModelConfig
from core.validation import ValidationError, check_int


def kv_values_per_token_per_layer(config: ModelConfig) -> int:
    """Values one token stores in one layer's KV cache."""
    if config.is_mla:
        return config.kv_lora_rank + config.qk_rope_head_dim
    return 2 * config.kv_heads * config.head_dim


def kv_cache_bytes_per_token(config: ModelConfig, bytes_per_value: int | float = 2) -> int:
    """Bytes one token occupies in the KV cache, all layers (bytes_per_value 2 = fp16/bf16)."""
    if not bytes_per_value > 0:
        raise ValidationError("bytes_per_value must be positive.")
    return int(kv_values_per_token_per_layer(config) * config.layers * bytes_per_value)


def kv_cache_bytes(config: ModelConfig, *, seq: int, batch: int = 1, bytes_per_value: int | float = 2) -> int:
    """Bytes of the KV cache for ``batch`` requests of ``seq`` tokens each."""
    check_int("Sequence length", seq, 0, 100_000_000)
    check_int("Batch", batch, 1, 1_000_000)
    return kv_cache_bytes_per_token(config, bytes_per_value) * seq * batch
