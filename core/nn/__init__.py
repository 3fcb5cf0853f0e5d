"""The building blocks every transformer in the atlas is made of.

One piece of code per concept: the norms, rotary position embeddings, attention
masks, attention itself (four backends, grouped-query heads, a KV cache), the
MLPs, the pre-norm decoder block, a decoder-only language model that stacks
them, and next-token sampling. The real pretrained model (core/llm.py) and the
small models trained live on the pages are built from these, so what a page
teaches on a toy is the same code that runs SmolLM2.

Read in this order (about 600 lines): norms -> rope -> masks -> attention ->
mlp -> block -> decoder -> sampling.

References
- Zhang & Sennrich 2019, "Root Mean Square Layer Normalization" (RMSNorm).
- Su et al. 2021, "RoFormer" (arXiv:2104.09864), Sec. 3.4 (rotary embeddings).
- Ainslie et al. 2023, "GQA" (arXiv:2305.13245) (grouped-query attention).
- Shazeer 2020, "GLU Variants Improve Transformer" (arXiv:2002.05202) (SwiGLU).
- Touvron et al. 2023, "Llama 2" (arXiv:2307.09288), Sec. 2.2 (the pre-norm
  Llama block: RMSNorm, RoPE, SwiGLU, GQA).
"""

from core.nn.attention import (
    BACKENDS,
    KVCache,
    SelfAttention,
    attend,
    attention_probs,
    expand_kv,
)
from core.nn.block import BlockInternals, DecoderBlock
from core.nn.decoder import DecoderConfig, DecoderInternals, DecoderLM
from core.nn.masks import causal_mask, padding_mask, window_mask
from core.nn.mlp import GeluMLP, SwiGLU, make_mlp
from core.nn.norms import RMSNorm, make_norm
from core.nn.rope import apply_rope, rope_cos_sin
from core.nn.sampling import SamplingConfig, next_token_distribution, sample_token

__all__ = [
    "BACKENDS", "BlockInternals", "DecoderBlock", "DecoderConfig", "DecoderInternals",
    "DecoderLM", "GeluMLP", "KVCache", "RMSNorm", "SamplingConfig", "SelfAttention",
    "SwiGLU", "apply_rope", "attend", "attention_probs", "causal_mask", "expand_kv",
    "make_mlp", "make_norm", "next_token_distribution", "padding_mask", "rope_cos_sin",
    "sample_token", "window_mask",
]
