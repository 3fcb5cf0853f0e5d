"""Multi-head latent attention (MLA) next to MHA / GQA / MQA, with real KV caches.

MLA (DeepSeek-V2, arXiv:2405.04434, section 2.1, eqs. 9-19; kept in DeepSeek-V3,
arXiv:2412.19437, section 2.1.1) compresses keys and values jointly into one
low-rank latent per token and caches only that latent plus one small RoPE key:

    c_Q = RMSNorm(W_DQ h)                    query latent, q_lora_rank wide (eq. 12)
    q^C = W_UQ c_Q,  q^R = RoPE(W_QR c_Q)    per head: nope and RoPE parts (eqs. 13-14)
    c_KV = RMSNorm(W_DKV h)                  joint KV latent, kv_lora_rank wide (eq. 9)
    k^C = W_UK c_KV,  v^C = W_UV c_KV        per head, recomputable from c_KV (eqs. 10-11)
    k^R = RoPE(W_KR h)                       decoupled RoPE key, shared by all heads (eq. 15)
    o = W_O [softmax((q^C.k^C + q^R.k^R) / sqrt(d_h + d_h^R)) v^C]   (eqs. 16-19)

The cache holds [c_KV, k^R]: (kv_lora_rank + qk_rope_head_dim) values per token
per layer. The *absorbed* inference form (section 2.1.2) never rebuilds k^C and
v^C: W_UK is folded into the query (q^C.k^C = (W_UK^T q^C).c_KV) and W_UV into
the output (attention runs over c_KV, then W_O W_UV), so attention becomes MQA
with one (kv_lora_rank + rope)-wide key and a kv_lora_rank-wide value.

The RMSNorms on c_Q and c_KV are in the released models (q_a_layernorm,
kv_a_layernorm), not in the paper's equations (core.nn's RMSNorm). The softmax scale is
1/sqrt(d_h + d_h^R) (no YaRN mscale). RoPE is core.nn's rotate-half form, its angles
computed in float64 at every module dtype (so the fp32 runs are compared with exact
tables); the causal masks are core.nn's.

The same file holds a standard RoPE attention with ``kv_heads`` key/value heads
(MHA: kv_heads = heads; GQA: fewer; MQA: 1) with its (K, V) cache, so the page
can check core.memory.kv_cache_bytes_per_token against the bytes of cache tensors
these modules actually allocate and fill.

Does not handle: YaRN context extension, paged caches, fp8 caches with scales,
tensor parallelism, dropout.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

import torch
from torch import nn

from core.configs import PRESETS, ModelConfig, head_sharing
from core.measure.timing import time_fn
from core.memory import kv_cache_bytes_per_token
from core.nn import RMSNorm, causal_mask
from core.nn.rope import apply_rope as apply_rope  # re-exported: the rotation of q and k
from core.nn.rope import rope_cos_sin as rope_cos_sin  # re-exported: its cos and sin tables
from core.runtime.device import oom_guard
from core.runtime.scheduler import heavy_job
from core.runtime.text import N_
from core.runtime.validation import ValidationError, check_choice, check_int

# ---- caps enforced inside the functions (a crafted request cannot bypass them)
MAX_HIDDEN = 16384           # model width (real presets reach 7168; live runs are capped by MAX_LIVE_PARAMS)
MAX_HEADS = 128
MAX_RANK = 4096              # q_lora_rank / kv_lora_rank of a live module
MAX_HEAD_DIM = 512
MAX_SEQ = 4096               # tokens in one live forward / cache capacity
MAX_BATCH = 16
MAX_LIVE_PARAMS = 80_000_000  # weights of one live module (fp64 copies are made)
MAX_CONTEXT = 10_000_000     # context length for calculators
DTYPES = {"float64": torch.float64, "float32": torch.float32,
          "bfloat16": torch.bfloat16, "float16": torch.float16}
CACHE_DTYPES = {**DTYPES, "float8_e4m3fn": torch.float8_e4m3fn}   # what a cache may be stored in


# ---------------------------------------------------------------- configs
@dataclass(frozen=True)
class MLAConfig:
    hidden: int = 256              # model width d
    heads: int = 8                 # attention heads n_h
    q_lora_rank: int = 96          # query latent d_c' (0: full-rank query, as DeepSeek-V2-Lite)
    kv_lora_rank: int = 64         # joint KV latent d_c: what the cache stores
    qk_nope_head_dim: int = 32     # per-head q/k width without RoPE (d_h)
    qk_rope_head_dim: int = 16     # decoupled RoPE width d_h^R (one key for all heads)
    v_head_dim: int = 32           # per-head value width
    rope_theta: float = 10000.0    # RoPE base

    @property
    def qk_head_dim(self) -> int:
        return self.qk_nope_head_dim + self.qk_rope_head_dim

    @property
    def cache_width(self) -> int:
        """Values one token stores per layer: c_KV and k^R."""
        return self.kv_lora_rank + self.qk_rope_head_dim

    @property
    def decompressed_width(self) -> int:
        """Values per token per layer if full per-head K (nope + rope) and V were cached."""
        return self.heads * (self.qk_head_dim + self.v_head_dim)

    @classmethod
    def from_model(cls, cfg: ModelConfig) -> MLAConfig:
        if not cfg.is_mla:
            raise ValidationError(f"{cfg.name} does not use multi-head latent attention.")
        return cls(hidden=cfg.hidden, heads=cfg.heads, q_lora_rank=cfg.q_lora_rank,
                   kv_lora_rank=cfg.kv_lora_rank, qk_nope_head_dim=cfg.qk_nope_head_dim,
                   qk_rope_head_dim=cfg.qk_rope_head_dim, v_head_dim=cfg.v_head_dim)


@dataclass(frozen=True)
class AttentionConfig:
    hidden: int = 256              # model width d
    heads: int = 8                 # query heads
    kv_heads: int = 8              # key/value heads: heads (MHA), 1 (MQA), between (GQA)
    head_dim: int = 32             # per-head width of q, k, v
    rope_theta: float = 10000.0    # RoPE base

    @property
    def kind(self) -> str:
        return head_sharing(self.heads, self.kv_heads)

    @property
    def cache_width(self) -> int:
        """Values one token stores per layer: K and V of every KV head."""
        return 2 * self.kv_heads * self.head_dim

    @classmethod
    def from_model(cls, cfg: ModelConfig) -> AttentionConfig:
        if cfg.is_mla:
            raise ValidationError(f"{cfg.name} uses MLA; use MLAConfig.from_model.")
        return cls(hidden=cfg.hidden, heads=cfg.heads, kv_heads=cfg.kv_heads, head_dim=cfg.head_dim)


def validate_mla_config(cfg: MLAConfig) -> MLAConfig:
    """Check widths and ranks; a rank wider than what it compresses is refused with a message."""
    check_int("Hidden size", cfg.hidden, 8, MAX_HIDDEN)
    check_int("Heads", cfg.heads, 1, MAX_HEADS)
    check_int("qk_nope_head_dim", cfg.qk_nope_head_dim, 1, MAX_HEAD_DIM)
    check_int("qk_rope_head_dim", cfg.qk_rope_head_dim, 2, MAX_HEAD_DIM)
    check_int("v_head_dim", cfg.v_head_dim, 1, MAX_HEAD_DIM)
    check_int("kv_lora_rank", cfg.kv_lora_rank, 1, MAX_RANK)
    check_int("q_lora_rank", cfg.q_lora_rank, 0, MAX_RANK)
    if cfg.qk_rope_head_dim % 2:
        raise ValidationError("qk_rope_head_dim must be even (RoPE rotates pairs of values).")
    if cfg.kv_lora_rank > cfg.hidden:
        raise ValidationError(
            f"kv_lora_rank ({cfg.kv_lora_rank}) exceeds the hidden size ({cfg.hidden}): "
            "a latent wider than the input it compresses is not a compression.")
    kv_out = cfg.heads * (cfg.qk_nope_head_dim + cfg.v_head_dim)
    if cfg.kv_lora_rank > kv_out:
        raise ValidationError(
            f"kv_lora_rank ({cfg.kv_lora_rank}) exceeds heads x (qk_nope + v) = {kv_out}, "
            "the width it is expanded to: lower the rank.")
    q_out = cfg.heads * cfg.qk_head_dim
    if cfg.q_lora_rank > min(cfg.hidden, q_out):
        raise ValidationError(
            f"q_lora_rank ({cfg.q_lora_rank}) exceeds min(hidden, heads x qk_head_dim) = "
            f"{min(cfg.hidden, q_out)}: lower the rank (or 0 for no query compression).")
    if not math.isfinite(cfg.rope_theta) or cfg.rope_theta <= 1:
        raise ValidationError("rope_theta must be a finite number above 1.")
    return cfg


def validate_attention_config(cfg: AttentionConfig) -> AttentionConfig:
    check_int("Hidden size", cfg.hidden, 8, MAX_HIDDEN)
    check_int("Heads", cfg.heads, 1, MAX_HEADS)
    check_int("KV heads", cfg.kv_heads, 1, cfg.heads)
    check_int("Head dim", cfg.head_dim, 2, MAX_HEAD_DIM)
    if cfg.heads % cfg.kv_heads:
        raise ValidationError(f"KV heads ({cfg.kv_heads}) must divide heads ({cfg.heads}).")
    if cfg.head_dim % 2:
        raise ValidationError("Head dim must be even (RoPE rotates pairs of values).")
    return cfg


def mla_param_count(cfg: MLAConfig) -> dict:
    """Weights of one MLA block by matrix (norm weights included)."""
    h, n = cfg.hidden, cfg.heads
    q = (h * cfg.q_lora_rank + cfg.q_lora_rank + cfg.q_lora_rank * n * cfg.qk_head_dim
         if cfg.q_lora_rank else h * n * cfg.qk_head_dim)
    kv_a = h * cfg.cache_width + cfg.kv_lora_rank
    kv_b = cfg.kv_lora_rank * n * (cfg.qk_nope_head_dim + cfg.v_head_dim)
    out = n * cfg.v_head_dim * h
    return {"query": q, "kv_down": kv_a, "kv_up": kv_b, "output": out,
            "total": q + kv_a + kv_b + out}


# ---------------------------------------------------------------- RoPE
def _rope(start_pos: int, T: int, dim: int, theta: float, device, dtype: torch.dtype):
    """cos, sin (T, dim / 2) for positions start_pos .. start_pos + T - 1, angles in float64."""
    pos = torch.arange(start_pos, start_pos + T, device=device)
    return rope_cos_sin(pos, dim, theta, dtype, angles_dtype=torch.float64)


def _norm(dim: int, device, dtype) -> RMSNorm:
    return RMSNorm(dim, eps=1e-6).to(device=device, dtype=dtype)


# ---------------------------------------------------------------- caches
@dataclass
class LatentCache:
    """MLA cache: the joint latent and the shared RoPE key, preallocated for ``capacity`` tokens."""

    c_kv: torch.Tensor     # (B, S_max, kv_lora_rank)
    k_rope: torch.Tensor   # (B, S_max, qk_rope_head_dim), RoPE already applied

    @property
    def tensors(self) -> tuple[torch.Tensor, ...]:
        return (self.c_kv, self.k_rope)


@dataclass
class KVCache:
    """Standard cache: keys and values of every KV head (also MLA's naive decompressed cache)."""

    k: torch.Tensor        # (B, H_kv, S_max, D_k), RoPE already applied
    v: torch.Tensor        # (B, H_kv, S_max, D_v)

    @property
    def tensors(self) -> tuple[torch.Tensor, ...]:
        return (self.k, self.v)


def cache_nbytes(cache) -> int:
    """Bytes of the tensors a cache allocated."""
    return int(sum(t.nbytes for t in cache.tensors))


def cache_bytes_per_token(cache) -> float:
    """Allocated bytes per cached token (one layer): nbytes / (batch x capacity)."""
    first = cache.tensors[0]
    batch, capacity = first.shape[0], first.shape[-2]
    return cache_nbytes(cache) / (batch * capacity)


def _check_capacity(cache, end: int) -> None:
    capacity = cache.tensors[0].shape[-2]
    if end > capacity:
        raise ValidationError(f"The cache holds {capacity:,} tokens; this step needs {end:,}.")


# ---------------------------------------------------------------- internals
@dataclass
class AttentionInternals:
    probs: torch.Tensor              # (B, H, T, S) attention probabilities
    cache_values: torch.Tensor       # (B, S, width) what this layer would cache per token


# ---------------------------------------------------------------- MLA
class MultiHeadLatentAttention(nn.Module):
    """MLA with a plain and an absorbed inference path (weights named as in DeepSeek-V3's model.py)."""

    def __init__(self, cfg: MLAConfig, *, device=None, dtype=None) -> None:
        super().__init__()
        self.cfg = validate_mla_config(cfg)
        kw = {"device": device, "dtype": dtype, "bias": False}
        h, n = cfg.hidden, cfg.heads
        if cfg.q_lora_rank:
            self.wq_a = nn.Linear(h, cfg.q_lora_rank, **kw)                       # W_DQ
            self.q_norm = _norm(cfg.q_lora_rank, device, dtype)
            self.wq_b = nn.Linear(cfg.q_lora_rank, n * cfg.qk_head_dim, **kw)     # [W_UQ; W_QR]
        else:
            self.wq = nn.Linear(h, n * cfg.qk_head_dim, **kw)
        self.wkv_a = nn.Linear(h, cfg.cache_width, **kw)                          # [W_DKV; W_KR]
        self.kv_norm = _norm(cfg.kv_lora_rank, device, dtype)
        self.wkv_b = nn.Linear(cfg.kv_lora_rank, n * (cfg.qk_nope_head_dim + cfg.v_head_dim), **kw)
        self.wo = nn.Linear(n * cfg.v_head_dim, h, **kw)                          # W_O
        self.scale = cfg.qk_head_dim ** -0.5

    # -- pieces
    def new_cache(self, batch: int, capacity: int, *, decompressed: bool = False,
                  device=None, dtype=None):
        """Zeroed cache for ``capacity`` tokens: [c_KV, k^R] (or full per-head K, V)."""
        check_int("Batch", batch, 1, MAX_BATCH)
        check_int("Cache capacity", capacity, 1, MAX_SEQ)
        c = self.cfg
        dev = device if device is not None else self.wkv_a.weight.device
        dt = dtype or self.wkv_a.weight.dtype
        if decompressed:
            return KVCache(torch.zeros(batch, c.heads, capacity, c.qk_head_dim, device=dev, dtype=dt),
                           torch.zeros(batch, c.heads, capacity, c.v_head_dim, device=dev, dtype=dt))
        return LatentCache(torch.zeros(batch, capacity, c.kv_lora_rank, device=dev, dtype=dt),
                           torch.zeros(batch, capacity, c.qk_rope_head_dim, device=dev, dtype=dt))

    def queries(self, x: torch.Tensor, cos, sin) -> tuple[torch.Tensor, torch.Tensor]:
        """q^C (B, H, T, d_h) and RoPE'd q^R (B, H, T, d_h^R)."""
        c = self.cfg
        B, T, _ = x.shape
        q = self.wq_b(self.q_norm(self.wq_a(x))) if c.q_lora_rank else self.wq(x)  # (B, T, H*dqk)
        q = q.view(B, T, c.heads, c.qk_head_dim).transpose(1, 2)                 # (B, H, T, dqk)
        q_nope, q_rope = q.split([c.qk_nope_head_dim, c.qk_rope_head_dim], dim=-1)
        return q_nope, apply_rope(q_rope, cos, sin)

    def latents(self, x: torch.Tensor, cos, sin) -> tuple[torch.Tensor, torch.Tensor]:
        """c_KV (B, T, d_c) and the shared RoPE'd key k^R (B, T, d_h^R): what the cache stores."""
        c_kv, k_rope = self.wkv_a(x).split([self.cfg.kv_lora_rank, self.cfg.qk_rope_head_dim], -1)
        return self.kv_norm(c_kv), apply_rope(k_rope, cos, sin)

    def up_weights(self) -> tuple[torch.Tensor, torch.Tensor]:
        """W_UK (H, d_h, d_c) and W_UV (H, d_v, d_c), views of wkv_b."""
        c = self.cfg
        w = self.wkv_b.weight.view(c.heads, c.qk_nope_head_dim + c.v_head_dim, c.kv_lora_rank)
        return w[:, : c.qk_nope_head_dim], w[:, c.qk_nope_head_dim:]

    def expand(self, c_kv: torch.Tensor, k_rope: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Full per-head keys (B, H, S, d_h + d_h^R) and values (B, H, S, d_v) from the latent."""
        c = self.cfg
        B, S, _ = c_kv.shape
        kv = self.wkv_b(c_kv).view(B, S, c.heads, -1).transpose(1, 2)            # (B, H, S, dh+dv)
        k_nope, v = kv.split([c.qk_nope_head_dim, c.v_head_dim], dim=-1)
        k_r = k_rope[:, None].expand(B, c.heads, S, c.qk_rope_head_dim)          # (B, H, S, dhR)
        return torch.cat([k_nope, k_r], dim=-1), v

    # -- forward
    def forward(self, x: torch.Tensor, *, start_pos: int = 0, cache=None, mode: str = "plain",
                return_internals: bool = False):
        """x (B, T, d) -> (B, T, d). ``mode`` "plain" or "absorbed"; ``cache`` from new_cache()."""
        check_choice("Mode", mode, ("plain", "absorbed"))
        B, T, _ = x.shape
        cos, sin = _rope(start_pos, T, self.cfg.qk_rope_head_dim, self.cfg.rope_theta, x.device, x.dtype)
        q_nope, q_rope = self.queries(x, cos, sin)
        c_kv, k_rope = self.latents(x, cos, sin)                                 # (B, T, dc), (B, T, dhR)
        new_values = torch.cat([c_kv, k_rope], dim=-1)                           # (B, T, dc + dhR)
        if isinstance(cache, KVCache):
            if mode != "plain":
                raise ValidationError("A decompressed K/V cache only works with the plain form.")
            out, probs = self._plain_decompressed(q_nope, q_rope, c_kv, k_rope, cache, start_pos)
        else:
            if cache is not None:
                _check_capacity(cache, start_pos + T)
                cache.c_kv[:, start_pos:start_pos + T] = c_kv
                cache.k_rope[:, start_pos:start_pos + T] = k_rope
                c_kv, k_rope = cache.c_kv[:, :start_pos + T], cache.k_rope[:, :start_pos + T]
            attend = self._plain if mode == "plain" else self._absorbed
            out, probs = attend(q_nope, q_rope, c_kv, k_rope, start_pos)
        return (out, AttentionInternals(probs, new_values)) if return_internals else out

    def _softmax(self, scores: torch.Tensor, start_pos: int) -> torch.Tensor:
        mask = causal_mask(scores.shape[-2], scores.shape[-1], scores.device)   # queries after the cache
        return torch.softmax(scores.masked_fill(~mask, float("-inf")), dim=-1)

    def _plain(self, q_nope, q_rope, c_kv, k_rope, start_pos):
        """Rebuild k^C, v^C for every cached token, then ordinary multi-head attention."""
        k, v = self.expand(c_kv, k_rope)                                         # (B, H, S, dqk), (B, H, S, dv)
        q = torch.cat([q_nope, q_rope], dim=-1)                                  # (B, H, T, dqk)
        probs = self._softmax(q @ k.transpose(-1, -2) * self.scale, start_pos)   # (B, H, T, S)
        return self._out(probs @ v), probs                                       # (B, H, T, dv)

    def _plain_decompressed(self, q_nope, q_rope, c_kv, k_rope, cache: KVCache, start_pos):
        """Naive inference: cache the expanded per-head K and V (what MLA exists to avoid)."""
        T = q_nope.shape[2]
        _check_capacity(cache, start_pos + T)
        k_new, v_new = self.expand(c_kv, k_rope)
        cache.k[:, :, start_pos:start_pos + T] = k_new
        cache.v[:, :, start_pos:start_pos + T] = v_new
        k, v = cache.k[:, :, :start_pos + T], cache.v[:, :, :start_pos + T]
        q = torch.cat([q_nope, q_rope], dim=-1)
        probs = self._softmax(q @ k.transpose(-1, -2) * self.scale, start_pos)
        return self._out(probs @ v), probs

    def _absorbed(self, q_nope, q_rope, c_kv, k_rope, start_pos):
        """W_UK folded into the query, W_UV into the output: attention runs on the latent."""
        w_uk, w_uv = self.up_weights()                                           # (H, dh, dc), (H, dv, dc)
        q_lat = torch.einsum("bhtn,hnc->bhtc", q_nope, w_uk)                     # (B, H, T, dc)
        scores = (q_lat @ c_kv[:, None].transpose(-1, -2)                        # (B, H, T, S)
                  + q_rope @ k_rope[:, None].transpose(-1, -2)) * self.scale
        probs = self._softmax(scores, start_pos)
        o_lat = probs @ c_kv[:, None]                                            # (B, H, T, dc)
        return self._out(torch.einsum("bhtc,hvc->bhtv", o_lat, w_uv)), probs     # (B, H, T, dv)

    def _out(self, o: torch.Tensor) -> torch.Tensor:
        B, H, T, dv = o.shape
        return self.wo(o.transpose(1, 2).reshape(B, T, H * dv))                  # (B, T, d)


# ---------------------------------------------------------------- MHA / GQA / MQA
class GroupedQueryAttention(nn.Module):
    """RoPE attention with ``kv_heads`` K/V heads shared by groups of query heads."""

    def __init__(self, cfg: AttentionConfig, *, device=None, dtype=None) -> None:
        super().__init__()
        self.cfg = validate_attention_config(cfg)
        kw = {"device": device, "dtype": dtype, "bias": False}
        self.wq = nn.Linear(cfg.hidden, cfg.heads * cfg.head_dim, **kw)
        self.wk = nn.Linear(cfg.hidden, cfg.kv_heads * cfg.head_dim, **kw)
        self.wv = nn.Linear(cfg.hidden, cfg.kv_heads * cfg.head_dim, **kw)
        self.wo = nn.Linear(cfg.heads * cfg.head_dim, cfg.hidden, **kw)

    def new_cache(self, batch: int, capacity: int, *, device=None, dtype=None) -> KVCache:
        check_int("Batch", batch, 1, MAX_BATCH)
        check_int("Cache capacity", capacity, 1, MAX_SEQ)
        c = self.cfg
        dev = device if device is not None else self.wk.weight.device
        dt = dtype or self.wk.weight.dtype
        shape = (batch, c.kv_heads, capacity, c.head_dim)
        return KVCache(torch.zeros(shape, device=dev, dtype=dt), torch.zeros(shape, device=dev, dtype=dt))

    def forward(self, x: torch.Tensor, *, start_pos: int = 0, cache: KVCache | None = None,
                return_internals: bool = False):
        c = self.cfg
        B, T, _ = x.shape
        cos, sin = _rope(start_pos, T, c.head_dim, c.rope_theta, x.device, x.dtype)
        q = apply_rope(self.wq(x).view(B, T, c.heads, c.head_dim).transpose(1, 2), cos, sin)
        k = apply_rope(self.wk(x).view(B, T, c.kv_heads, c.head_dim).transpose(1, 2), cos, sin)
        v = self.wv(x).view(B, T, c.kv_heads, c.head_dim).transpose(1, 2)        # (B, Hkv, T, D)
        new_values = torch.cat([k, v], dim=-1).transpose(1, 2).reshape(B, T, -1)  # (B, T, 2*Hkv*D)
        if cache is not None:
            _check_capacity(cache, start_pos + T)
            cache.k[:, :, start_pos:start_pos + T] = k
            cache.v[:, :, start_pos:start_pos + T] = v
            k, v = cache.k[:, :, :start_pos + T], cache.v[:, :, :start_pos + T]
        group = c.heads // c.kv_heads
        k = k.repeat_interleave(group, dim=1)                                    # (B, H, S, D)
        v = v.repeat_interleave(group, dim=1)
        scores = q @ k.transpose(-1, -2) / math.sqrt(c.head_dim)                 # (B, H, T, S)
        mask = causal_mask(T, k.shape[2], x.device)                              # (T, S)
        probs = torch.softmax(scores.masked_fill(~mask, float("-inf")), dim=-1)
        out = self.wo((probs @ v).transpose(1, 2).reshape(B, T, c.heads * c.head_dim))
        return (out, AttentionInternals(probs, new_values)) if return_internals else out


def build_attention(cfg: ModelConfig | MLAConfig | AttentionConfig, *, device=None, dtype=None):
    """The attention module for a preset (MLA or MHA/GQA/MQA) or an explicit config."""
    if isinstance(cfg, ModelConfig):
        cfg = MLAConfig.from_model(cfg) if cfg.is_mla else AttentionConfig.from_model(cfg)
    if isinstance(cfg, MLAConfig):
        return MultiHeadLatentAttention(cfg, device=device, dtype=dtype)
    return GroupedQueryAttention(cfg, device=device, dtype=dtype)


def _dtype(name: str) -> torch.dtype:
    return DTYPES[check_choice("dtype", name, DTYPES)]


def build_live_mla(cfg: MLAConfig, *, seed: int = 0, device="cpu",
                   dtype: torch.dtype = torch.float64) -> MultiHeadLatentAttention:
    """A seeded MLA module (initialised on the CPU in float64, so every device gets the same weights)."""
    check_int("Seed", seed, 0, 2**31 - 1)
    validate_mla_config(cfg)
    if mla_param_count(cfg)["total"] > MAX_LIVE_PARAMS:
        raise ValidationError(f"This configuration has {mla_param_count(cfg)['total']:,} attention "
                              f"weights; the live demo allows {MAX_LIVE_PARAMS:,}. Lower the widths.")
    torch.manual_seed(seed)
    module = MultiHeadLatentAttention(cfg, dtype=torch.float64)
    with torch.no_grad():   # non-trivial norm gains, so the norms are visible in the check
        for norm in (m for m in module.modules() if isinstance(m, RMSNorm)):
            norm.weight.uniform_(0.5, 1.5)
    return module.to(device=device, dtype=dtype).eval()


# ---------------------------------------------------------------- plain vs absorbed
@dataclass(frozen=True)
class FormComparison:
    max_abs_out: float               # max |plain output| (float64), the scale of the errors below
    absorbed_vs_plain_fp64: float    # max |absorbed - plain|, both float64
    plain_fp32_vs_fp64: float        # max |plain fp32 - plain fp64|
    absorbed_fp32_vs_fp64: float     # max |absorbed fp32 - plain fp64|
    decode_latent_vs_full: float     # prefill + token-by-token absorbed decode with [c_KV, k^R] cache vs full forward (fp64)
    decode_decompressed_vs_full: float   # same with the naive decompressed K/V cache (plain form)
    probs_max_diff: float            # max |P_absorbed - P_plain| (fp64)
    probs: object                    # (T, T) numpy: head 0 attention probabilities, batch 0
    latent_bytes_per_token: float    # allocated cache bytes per token per layer in ``cache_dtype``
    decompressed_bytes_per_token: float
    cache_dtype: str


def compare_forms(cfg: MLAConfig, *, seq: int = 32, batch: int = 1, seed: int = 0,
                  device="cpu", cache_dtype: str = "bfloat16") -> FormComparison:
    """Run one MLA module in the plain and absorbed forms (fp64 and fp32) and with both caches."""
    seq = check_int("Sequence length", seq, 2, 512)
    batch = check_int("Batch", batch, 1, 4)
    module = build_live_mla(cfg, seed=seed, device=device)
    gen = torch.Generator().manual_seed(seed + 1)
    x = torch.randn(batch, seq, cfg.hidden, generator=gen, dtype=torch.float64).to(device)  # (B, T, d)
    with torch.no_grad():
        plain, p_int = module(x, mode="plain", return_internals=True)
        absorbed, a_int = module(x, mode="absorbed", return_internals=True)
        m32 = build_live_mla(cfg, seed=seed, device=device, dtype=torch.float32)
        plain32 = m32(x.float(), mode="plain").double()
        absorbed32 = m32(x.float(), mode="absorbed").double()
        latent_err = _decode_error(module, x, plain, decompressed=False)
        full_err = _decode_error(module, x, plain, decompressed=True)
    dt = _dtype(cache_dtype)
    lat = module.new_cache(1, 16, dtype=dt)
    dec = module.new_cache(1, 16, decompressed=True, dtype=dt)
    diff = lambda a, b: float((a - b).abs().max())   # noqa: E731
    return FormComparison(
        float(plain.abs().max()), diff(absorbed, plain), diff(plain32, plain),
        diff(absorbed32, plain), latent_err, full_err, diff(a_int.probs, p_int.probs),
        p_int.probs[0, 0].float().cpu().numpy(), cache_bytes_per_token(lat),
        cache_bytes_per_token(dec), cache_dtype)


def _decode_error(module: MultiHeadLatentAttention, x: torch.Tensor, full: torch.Tensor,
                  *, decompressed: bool) -> float:
    """Prefill half of ``x`` through a cache, then one token at a time; max |diff| to ``full``."""
    B, T, _ = x.shape
    cache = module.new_cache(B, T, decompressed=decompressed)
    mode = "plain" if decompressed else "absorbed"
    prefill = max(T // 2, 1)
    outs = [module(x[:, :prefill], cache=cache, mode=mode)]
    for t in range(prefill, T):
        outs.append(module(x[:, t:t + 1], start_pos=t, cache=cache, mode=mode))
    return float((torch.cat(outs, dim=1) - full).abs().max())


# ---------------------------------------------------------------- cache bytes: formula vs allocated
@dataclass(frozen=True)
class CacheCheck:
    preset: str                      # key in core.configs.PRESETS (or a small config's name)
    kind: str                        # "mha" | "gqa" | "mqa" | "mla"
    layers: int
    values_per_token_layer: int      # what the formula counts per token per layer
    formula_bytes_per_token: int     # core.memory.kv_cache_bytes_per_token (all layers)
    allocated_bytes_per_token: float  # nbytes of the module's cache tensors / tokens, x layers
    naive_bytes_per_token: int | None  # MLA only: per-head K and V cached in full (all layers)

    @property
    def matches(self) -> bool:
        return self.allocated_bytes_per_token == self.formula_bytes_per_token


def preset_cache_check(name: str, dtype_name: str = "bfloat16", device="cpu") -> CacheCheck:
    """One real-width layer of preset ``name`` (weights on the meta device: no memory) allocates its cache.

    ``dtype_name`` is the cache's element type (CACHE_DTYPES, fp8 included).
    """
    check_choice("Model", name, PRESETS)
    cfg, dt = PRESETS[name], CACHE_DTYPES[check_choice("Cache dtype", dtype_name, CACHE_DTYPES)]
    module = build_attention(cfg, device="meta", dtype=torch.bfloat16)
    cache = module.new_cache(1, 16, device=device, dtype=dt)
    per_layer = cache_bytes_per_token(cache)
    bpv = torch.empty((), dtype=dt).element_size()
    naive = None
    if cfg.is_mla:
        naive_cache = module.new_cache(1, 16, decompressed=True, device=device, dtype=dt)
        naive = int(cache_bytes_per_token(naive_cache) * cfg.layers)
    return CacheCheck(name, cfg.attention_kind, cfg.layers, module.cfg.cache_width,
                      kv_cache_bytes_per_token(cfg, bpv), per_layer * cfg.layers, naive)


SMALL_CHANGES = {   # small configs that keep each preset's attention kind
    "llama-2-7b": {"hidden": 64, "heads": 4, "kv_heads": 4, "head_dim": 16, "layers": 2},
    "llama-3-8b": {"hidden": 64, "heads": 4, "kv_heads": 2, "head_dim": 16, "layers": 2},
    "falcon-7b": {"hidden": 64, "heads": 4, "kv_heads": 1, "head_dim": 16, "layers": 2},
    "deepseek-v3": {"hidden": 64, "heads": 4, "kv_heads": 4, "head_dim": 24, "layers": 2,
                    "q_lora_rank": 32, "kv_lora_rank": 32, "qk_nope_head_dim": 16,
                    "qk_rope_head_dim": 8, "v_head_dim": 16},
}


def small_config(name: str) -> ModelConfig:
    """A 2-layer, 64-wide copy of preset ``name`` with the same attention kind."""
    check_choice("Model", name, SMALL_CHANGES)
    return replace(PRESETS[name], name=f"small {name}", **SMALL_CHANGES[name])


@dataclass(frozen=True)
class SmallRun:
    check: CacheCheck                # formula vs the bytes the stack's caches allocated
    decode_vs_full: float            # max |cached decode - full causal forward| over the stack


def small_module_run(name: str, *, dtype_name: str = "float64", tokens: int = 12, seed: int = 0,
                     device="cpu") -> SmallRun:
    """Build a small real stack (``layers`` attention blocks), prefill + decode through its caches."""
    cfg, dt = small_config(name), _dtype(dtype_name)
    tokens = check_int("Tokens", tokens, 2, 256)
    torch.manual_seed(seed)
    layers = [build_attention(cfg, dtype=torch.float64).to(device=device, dtype=dt).eval()
              for _ in range(cfg.layers)]
    x = torch.randn(1, tokens, cfg.hidden, generator=torch.Generator().manual_seed(seed),
                    dtype=torch.float64).to(device=device, dtype=dt)           # (1, T, d)
    caches = [m.new_cache(1, tokens) for m in layers]
    with torch.no_grad():
        full = _stack(layers, x, None, 0)
        prefill = tokens // 2
        steps = [_stack(layers, x[:, :prefill], caches, 0)]
        steps += [_stack(layers, x[:, t:t + 1], caches, t) for t in range(prefill, tokens)]
    err = float((torch.cat(steps, dim=1) - full).abs().max())
    allocated = sum(cache_bytes_per_token(c) for c in caches)
    naive = None
    if cfg.is_mla:
        naive = int(sum(cache_bytes_per_token(m.new_cache(1, tokens, decompressed=True)) for m in layers))
    check = CacheCheck(name, cfg.attention_kind, cfg.layers, layers[0].cfg.cache_width,
                       kv_cache_bytes_per_token(cfg, torch.empty((), dtype=dt).element_size()),
                       allocated, naive)
    return SmallRun(check, err)


def _stack(layers, x, caches, start_pos):
    """Residual stack h = h + attn(h) (no MLP: the cache is all attention's)."""
    for i, layer in enumerate(layers):
        x = x + layer(x, start_pos=start_pos, cache=None if caches is None else caches[i])
    return x


# ---------------------------------------------------------------- calculators
def kv_cache_curve(names: list[str], contexts: list[int], *, bytes_per_value: float = 2,
                   batch: int = 1) -> list[dict]:
    """Rows (model, kind, context, bytes) of the KV cache for ``batch`` sequences of each context."""
    rows = []
    for name in names:
        check_choice("Model", name, PRESETS)
        cfg = PRESETS[name]
        per_token = kv_cache_bytes_per_token(cfg, bytes_per_value)
        for ctx in contexts:
            check_int("Context length", ctx, 1, MAX_CONTEXT)
            check_int("Batch", batch, 1, 100_000)
            rows.append({"model": cfg.name, "kind": cfg.attention_kind.upper(), "context": ctx,
                         "bytes": per_token * ctx * batch})
    return rows


def max_context(name: str, memory_bytes: float, *, bytes_per_value: float = 2, batch: int = 1) -> int:
    """Tokens per sequence whose KV cache fits in ``memory_bytes`` (weights not counted)."""
    check_choice("Model", name, PRESETS)
    check_int("Batch", batch, 1, 100_000)
    if not memory_bytes > 0:
        raise ValidationError("Memory must be positive.")
    return int(memory_bytes // (kv_cache_bytes_per_token(PRESETS[name], bytes_per_value) * batch))


def decode_cost(cfg: MLAConfig, context: int, bytes_per_value: float = 2) -> dict:
    """Analytic FLOPs and cache bytes read for one decoded token, one layer, at ``context`` cached tokens.

    "plain": re-expand k^C, v^C from c_KV for all ``context`` tokens every step;
    "decompressed": cache full per-head K, V (expand only the new token);
    "absorbed": attention over c_KV with W_UK / W_UV folded into query and output.
    """
    s = check_int("Context length", context, 1, MAX_CONTEXT)
    c, n = cfg, cfg.heads
    proj = 2 * ((c.hidden * c.q_lora_rank + c.q_lora_rank * n * c.qk_head_dim) if c.q_lora_rank
                else c.hidden * n * c.qk_head_dim) + 2 * c.hidden * c.cache_width
    out = 2 * n * c.v_head_dim * c.hidden
    expand_one = 2 * c.kv_lora_rank * n * (c.qk_nope_head_dim + c.v_head_dim)
    attn_full = 2 * n * s * (c.qk_head_dim + c.v_head_dim)
    absorbed = (2 * n * c.qk_nope_head_dim * c.kv_lora_rank + 2 * n * s * (c.cache_width + c.kv_lora_rank)
                + 2 * n * c.kv_lora_rank * c.v_head_dim)
    return {
        "plain": {"flops": proj + out + s * expand_one + attn_full,
                  "cache_bytes_read": s * c.cache_width * bytes_per_value},
        "decompressed": {"flops": proj + out + expand_one + attn_full,
                         "cache_bytes_read": s * c.decompressed_width * bytes_per_value},
        "absorbed": {"flops": proj + out + absorbed,
                     "cache_bytes_read": s * c.cache_width * bytes_per_value},
    }


# ---------------------------------------------------------------- measured decode step
DECODE_MODES = ("plain", "decompressed", "absorbed")


def time_decode_step(cfg: MLAConfig, context: int, *, device="cpu", dtype_name: str = "float32",
                     seed: int = 0, progress=None, on_wait=None) -> dict:
    """Median time of one decoded token (one layer) after ``context`` cached tokens, per form.

    The caches are filled with random values (only their size matters for the
    time). Runs as a heavy job on ``device``; returns {mode: core.measure.timing.Timing}.
    """
    context = check_int("Context length", context, 1, MAX_SEQ - 1)
    dt = _dtype(dtype_name)
    results = {}
    with heavy_job("MLA decode timing", device, time_limit_s=120, on_wait=on_wait) as job, \
            oom_guard("MLA decode timing", device, "Lower the context length or the widths."):
        module = build_live_mla(cfg, seed=seed, device=device, dtype=dt)
        x = torch.randn(1, 1, cfg.hidden, device=device, dtype=dt)                   # (1, 1, d)
        for i, mode in enumerate(DECODE_MODES):
            job.check()
            if progress:
                progress(i / len(DECODE_MODES), N_(f"timing the {mode} form at {context:,} tokens"))
            cache = module.new_cache(1, context + 1, decompressed=mode == "decompressed")
            for t in cache.tensors:
                t.normal_()
            form = "plain" if mode == "decompressed" else mode
            with torch.no_grad():
                results[mode] = time_fn(lambda c=cache, f=form: module(x, start_pos=context, cache=c, mode=f),
                                        device, warmup=2, repeats=7, max_seconds=4.0)
            del cache
    if progress:
        progress(1.0, "done")
    return results
