"""Training and inference memory calculators, in bytes: pure functions, no torch needed.

Model states (ZeRO; Rajbhandari et al. 2020, "ZeRO: Memory Optimizations Toward
Training Trillion Parameter Models", section 3.1 and Figure 1): with Psi
parameters, K bytes of optimizer state per parameter and N_d data-parallel GPUs,
  baseline  (2 + 2 + K) Psi          P_os      4 Psi + K Psi / N_d
  P_os+g    2 Psi + (2 + K) Psi / N_d  P_os+g+p  (2 + 2 + K) Psi / N_d
for 16-bit mixed precision with Adam (K = 12: fp32 master weights, m and v).
Other precision recipes change the bytes per parameter (:data:`RECIPES`),
including DeepSeek-V3's FP8 recipe (DeepSeek-V3 report, section 3.3.3: "BF16
... to track the first and second moments in the AdamW optimizer ... the master
weights ... and gradients ... are still retained in FP32").

Activations (Korthikanti et al. 2022, "Reducing Activation Recomputation in
Large Transformer Models", section 4 and Table 2): per layer, 16-bit values,
  no parallelism         sbh (34 + 5as/h)
  tensor parallel t      sbh (10 + 24/t + 5as/(ht))
  + sequence parallel    sbh/t (34 + 5as/h)
  selective recompute    sbh (10 + 24/t)   (with SP: sbh 34/t)
  full recompute         2sbh
built here from the paper's term-by-term list (section 4.1) so that each term
can be switched: FlashAttention (Dao et al. 2022) never stores the a s^2 b
attention matrix (it keeps fp32 softmax statistics, a s b values, instead);
training without dropout drops the masks. sqrt(n) checkpointing (Chen et al.
2016, "Training Deep Nets with Sublinear Memory Cost", section 4) stores one
input per segment and recomputes segments in the backward pass, as
torch.utils.checkpoint.checkpoint_sequential does.

KV cache: what one token leaves in the cache across all layers.
- MHA / GQA / MQA: 2 (K and V) x kv_heads x head_dim x layers values.
- MLA (DeepSeek-V2 section 2.1; DeepSeek-V3 section 2.1.1): only the joint
  latent c_KV (kv_lora_rank) and the shared decoupled RoPE key
  (qk_rope_head_dim) per layer: (kv_lora_rank + qk_rope_head_dim) x layers.

A training plan (:class:`TrainingPlan`) ties these together per GPU and is
shared through URL query parameters (:func:`plan_from_query`).

Does not handle: pipeline parallelism (activations of in-flight micro-batches),
expert parallelism, allocator fragmentation and communication buffers, MoE and
MLA layers' own activation terms (the dense formula is used for them), FP8
activation caching, paged-allocator block rounding, quantised KV caches with
per-group scales (pass bytes_per_value for the element size only).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import asdict, dataclass, fields, replace

from core.configs import (
    PRESETS,
    ModelConfig,
    attention_params,
    custom_config,
    mlp_params,
    param_count,
)
from core.runtime.text import N_
from core.runtime.validation import ValidationError, check_choice, check_int

GIB = 2**30
GPU_CAPACITIES_GIB = (24, 40, 80, 141)   # RTX 4090 / L4, A100-40GB, A100/H100-80GB, H200
MAX_PARAMS = 10**14
MAX_DP = 1_000_000          # data-parallel GPUs
MAX_TP = 1024               # tensor-parallel degree
MAX_GPUS = 10_000_000       # dp x tp
MAX_SEQ = 10_000_000        # tokens per sequence
MAX_BATCH = 100_000         # micro-batch
MAX_HIDDEN = 1_000_000
MAX_HEADS = 100_000
MAX_LAYERS = 10_000
MAX_VOCAB = 10_000_000
MAX_KV_REQUESTS = 100_000
MAX_QUERY_VALUE_CHARS = 64  # longer URL values are refused before parsing
ZERO_STAGES = (0, 1, 2, 3)
RECOMPUTE_MODES = ("none", "selective", "full")              # per layer (Korthikanti Table 2)
CHECKPOINT_STRATEGIES = ("none", "selective", "full", "sqrt")  # per model


# ---------------------------------------------------------------- KV cache
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


def kv_cache_bytes_per_gpu(config: ModelConfig, *, seq: int, batch: int = 1, tp: int = 1,
                           bytes_per_value: int | float = 2) -> float:
    """KV cache on one GPU of a tensor-parallel group: heads are split across ranks
    (a KV head is replicated when tp > kv_heads); MLA's latent is replicated on every rank."""
    total = kv_cache_bytes(config, seq=seq, batch=batch, bytes_per_value=bytes_per_value)
    tp = check_int("Tensor-parallel degree", tp, 1, MAX_TP)
    if config.is_mla:
        return float(total)
    return total / min(tp, config.kv_heads)


# ---------------------------------------------------------------- model states
@dataclass(frozen=True)
class Recipe:
    key: str
    label: str
    param_bytes: float    # working weights per parameter (what the forward pass reads)
    grad_bytes: float     # gradient per parameter
    master_bytes: float   # fp32 master copy kept by the optimizer (0: the weights are the master)
    moment_bytes: float   # Adam first + second moment per parameter
    act_bytes: int        # bytes per stored activation value
    source: str           # where the numbers come from

    @property
    def optimizer_bytes(self) -> float:
        """K in the ZeRO paper: optimizer-held bytes per parameter."""
        return self.master_bytes + self.moment_bytes

    @property
    def bytes_per_param(self) -> float:
        return self.param_bytes + self.grad_bytes + self.optimizer_bytes


FP8_BLOCK = 128   # DeepSeek-V3 section 3.3.2: weights scaled per 128x128 block (one fp32 scale)

RECIPES: dict[str, Recipe] = {
    "fp32": Recipe("fp32", N_("fp32 (weights, grads, Adam m and v in fp32)"), 4, 4, 0, 8, 4,
                   N_("Adam in fp32: 4 + 4 + (4 + 4) bytes/param")),
    "mixed-adam": Recipe("mixed-adam", N_("16-bit mixed precision + fp32 master (ZeRO's 2+2+12)"),
                         2, 2, 4, 8, 2, N_("ZeRO paper section 3.1: 2 + 2 + K, K = 12")),
    "bf16": Recipe("bf16", N_("pure bf16 (weights, grads, m and v in bf16)"), 2, 2, 0, 4, 2,
                   N_("no fp32 master: 2 + 2 + (2 + 2) bytes/param")),
    "fp8-deepseek": Recipe(
        "fp8-deepseek", N_("DeepSeek-V3 FP8 (FP8 GEMM weights, FP32 master and grads, BF16 m, v)"),
        1 + 4 / FP8_BLOCK**2, 4, 4, 4, 2,
        N_("DeepSeek-V3 report 3.3.2-3.3.3: FP8 weights + a 128x128-block scale, FP32 grads and "
           "master, BF16 moments")),
}


def get_recipe(name: str) -> Recipe:
    return RECIPES[check_choice("Precision recipe", name, RECIPES)]


def model_state_bytes(n_params, *, zero_stage: int = 0, dp: int = 1, recipe: str = "mixed-adam",
                      tp: int = 1, offload_optimizer: bool = False) -> dict:
    """Bytes per GPU of parameters, gradients and optimizer states (ZeRO paper section 3.1).

    Stage 1 partitions the optimizer states across ``dp`` GPUs, stage 2 also the
    gradients, stage 3 also the parameters; ``tp`` first splits the model itself.
    ``offload_optimizer`` keeps the optimizer states in host memory (ZeRO-Offload):
    they leave the GPU total and appear under ``"offloaded"`` (bytes per rank).
    Returns floats: ``params``, ``grads``, ``optimizer``, ``total``, ``offloaded``.
    """
    n = check_int("Parameters", n_params, 1, MAX_PARAMS)
    stage = check_int("ZeRO stage", zero_stage, 0, 3)
    dp = check_int("Data-parallel GPUs", dp, 1, MAX_DP)
    tp = check_int("Tensor-parallel degree", tp, 1, MAX_TP)
    rec = get_recipe(recipe)
    psi = n / tp
    params = rec.param_bytes * psi / (dp if stage >= 3 else 1)
    grads = rec.grad_bytes * psi / (dp if stage >= 2 else 1)
    optimizer = rec.optimizer_bytes * psi / (dp if stage >= 1 else 1)
    on_gpu = 0.0 if offload_optimizer else optimizer
    return {"params": params, "grads": grads, "optimizer": on_gpu,
            "total": params + grads + on_gpu, "offloaded": optimizer if offload_optimizer else 0.0}


# ---------------------------------------------------------------- activations
@dataclass(frozen=True)
class ActivationTerm:
    name: str       # what is stored
    block: str      # "attention" | "mlp" | "layernorm" | "layer"
    kind: str       # "value" (activation dtype) | "mask" (1 byte) | "stat" (fp32 statistics)
    bytes: float    # bytes per layer on one GPU


# (name, block, kind, count in units of sbh or as^2b, unit, split, core, needs dropout)
# split "tp": divided by t under tensor parallelism; "sp": only with sequence parallelism.
# Korthikanti et al. 2022 section 4.1 (16-bit values: 2 bytes = the paper's "2sbh").
_TERMS = (
    (N_("QKV input (LayerNorm output)"), "attention", "value", 1, "sbh", "sp", False, False),
    (N_("Q and K (for QKᵀ)"), "attention", "value", 2, "sbh", "tp", False, False),
    (N_("Softmax output"), "attention", "value", 1, "as2b", "tp", True, False),
    (N_("Softmax dropout mask"), "attention", "mask", 1, "as2b", "tp", True, True),
    (N_("Dropout output (for ·V)"), "attention", "value", 1, "as2b", "tp", True, True),
    (N_("V"), "attention", "value", 1, "sbh", "tp", False, False),
    (N_("Output-projection input"), "attention", "value", 1, "sbh", "tp", False, False),
    (N_("Attention dropout mask"), "attention", "mask", 1, "sbh", "sp", False, True),
    (N_("fc1 input (LayerNorm output)"), "mlp", "value", 1, "sbh", "sp", False, False),
    (N_("GELU input"), "mlp", "value", 4, "sbh", "tp", False, False),
    (N_("fc2 input (GELU output)"), "mlp", "value", 4, "sbh", "tp", False, False),
    (N_("MLP dropout mask"), "mlp", "mask", 1, "sbh", "sp", False, True),
    (N_("LayerNorm 1 input"), "layernorm", "value", 1, "sbh", "sp", False, False),
    (N_("LayerNorm 2 input"), "layernorm", "value", 1, "sbh", "sp", False, False),
)


def _check_shape(seq, batch, hidden, heads, tp) -> tuple[int, int, int, int, int]:
    s = check_int("Sequence length", seq, 1, MAX_SEQ)
    b = check_int("Micro-batch", batch, 1, MAX_BATCH)
    h = check_int("Hidden size", hidden, 1, MAX_HIDDEN)
    a = check_int("Attention heads", heads, 1, MAX_HEADS)
    t = check_int("Tensor-parallel degree", tp, 1, MAX_TP)
    if h % a:
        raise ValidationError(f"The {a:,} attention heads must divide the hidden size {h:,}.")
    if a % t:
        raise ValidationError(f"Tensor-parallel degree {t} must divide the {a:,} attention heads.")
    return s, b, h, a, t


def activation_terms(*, seq, batch, hidden, heads, tp=1, sequence_parallel=False,
                     recompute="none", flash_attention=False, dropout=True,
                     bytes_per_value=2, mask_bytes=1) -> list[ActivationTerm]:
    """The stored tensors of one transformer layer (Korthikanti et al. 2022, section 4.1).

    ``recompute="selective"`` drops the attention core (recomputed in the backward
    pass); ``"full"`` keeps only the layer input, 2sbh (their Table 2);
    ``flash_attention`` drops the core as well and keeps a s b fp32 softmax
    statistics (logsumexp) instead; ``dropout=False`` drops masks and the dropout output.
    """
    s, b, h, a, t = _check_shape(seq, batch, hidden, heads, tp)
    mode = check_choice("Recompute mode", recompute, RECOMPUTE_MODES)
    bpv = float(bytes_per_value)
    if mode == "full":
        return [ActivationTerm(N_("Layer input (checkpoint)"), "layer", "value", s * b * h * bpv)]
    units = {"sbh": s * b * h, "as2b": a * s * s * b}
    out = []
    for name, block, kind, count, unit, split, core, needs_dropout in _TERMS:
        if (core and (mode == "selective" or flash_attention)) or (needs_dropout and not dropout):
            continue
        divisor = t if (split == "tp" or sequence_parallel) else 1
        width = bpv if kind == "value" else float(mask_bytes)
        out.append(ActivationTerm(name, block, kind, count * units[unit] * width / divisor))
    if flash_attention:
        out.append(ActivationTerm(N_("Softmax statistics (logsumexp, fp32)"), "attention", "stat",
                                  4.0 * a * s * b / t))
    return out


def activation_bytes_per_layer(*, seq, batch, hidden, heads, tp=1, sequence_parallel=False,
                               recompute="none", flash_attention=False, dropout=True,
                               bytes_per_value=2) -> float:
    """Bytes of activations one layer stores for the backward pass, on one GPU.

    Defaults reproduce Korthikanti et al. 2022, Table 2 (16-bit values, 1-byte masks).
    """
    terms = activation_terms(seq=seq, batch=batch, hidden=hidden, heads=heads, tp=tp,
                             sequence_parallel=sequence_parallel, recompute=recompute,
                             flash_attention=flash_attention, dropout=dropout,
                             bytes_per_value=bytes_per_value)
    return float(sum(term.bytes for term in terms))


# ---------------------------------------------------------------- Llama-style blocks
# One pre-norm block of RMSNorm, GQA attention with RoPE and a SwiGLU MLP, no dropout
# (Llama 2, Touvron et al. 2023 section 2.2; SmolLM2; Qwen2 without its biases). Derived
# term by term as Korthikanti et al. 2022 section 4.1 do for GPT: each op keeps what its
# backward needs. Widths per token: h (model), h_kv = kv_heads x head_dim (GQA: K and V are
# narrower than Q), f (SwiGLU inner). (name, block, kind, width, core)
_LLAMA_TERMS = (
    (N_("RMSNorm 1 input"), "attention", "value", "h", False),
    (N_("RMSNorm 1 statistics (1/rms, fp32)"), "attention", "stat", "1", False),
    (N_("QKV input (RMSNorm output)"), "attention", "value", "h", False),
    (N_("Q after RoPE (for QKᵀ)"), "attention", "value", "h", False),
    (N_("K after RoPE and V (GQA: h_kv wide)"), "attention", "value", "2hkv", False),
    (N_("Softmax output"), "attention", "value", "as", True),
    (N_("Output-projection input"), "attention", "value", "h", False),
    (N_("RMSNorm 2 input"), "mlp", "value", "h", False),
    (N_("RMSNorm 2 statistics (1/rms, fp32)"), "mlp", "stat", "1", False),
    (N_("Gate/up input (RMSNorm output)"), "mlp", "value", "h", False),
    (N_("Gate and up outputs (for SiLU and the product)"), "mlp", "value", "2f", False),
    (N_("SiLU(gate)"), "mlp", "value", "f", False),
    (N_("Down-projection input (SiLU(gate) · up)"), "mlp", "value", "f", False),
)


def llama_activation_terms(config: ModelConfig, *, seq, batch, bytes_per_value=2, flash_attention=True,
                           recompute="none") -> list[ActivationTerm]:
    """What one RMSNorm / GQA / SwiGLU block stores for the backward pass (see _LLAMA_TERMS).

    Per token: 6h + 2h_kv + 4f values and two fp32 statistics, plus the attention core:
    the a s values of softmax output (a s^2 b per layer), or with FlashAttention the
    attention output (h) and fp32 logsumexp (a per token) instead. ``recompute="full"``
    keeps only the block input (s b h). No dropout: Llama-family models train without it.
    """
    s, b = check_int("Sequence length", seq, 1, MAX_SEQ), check_int("Micro-batch", batch, 1, MAX_BATCH)
    mode = check_choice("Recompute mode", recompute, ("none", "full"))
    bpv, tokens = float(bytes_per_value), s * b
    if mode == "full":
        return [ActivationTerm(N_("Block input (checkpoint)"), "layer", "value", tokens * config.hidden * bpv)]
    width = {"h": config.hidden, "2hkv": 2 * config.kv_heads * config.head_dim, "2f": 2 * config.intermediate,
             "f": config.intermediate, "as": config.heads * s, "1": 1}
    out = []
    for name, block, kind, unit, core in _LLAMA_TERMS:
        if core and flash_attention:
            continue
        per_value = 4.0 if kind == "stat" else bpv
        out.append(ActivationTerm(name, block, kind, tokens * width[unit] * per_value))
    if flash_attention:
        out.insert(5, ActivationTerm(N_("Attention output (FlashAttention's backward)"), "attention", "value",
                                     tokens * config.hidden * bpv))
        out.insert(6, ActivationTerm(N_("Softmax statistics (logsumexp, fp32)"), "attention", "stat",
                                     4.0 * config.heads * tokens))
    return out


def llama_head_terms(config: ModelConfig, *, seq, batch, bytes_per_value=2) -> list[ActivationTerm]:
    """After the last block: the final RMSNorm (input, fp32 statistics), the head's input, and
    the fp32 log-probabilities the cross-entropy loss keeps (s b V; the logits themselves are
    not kept). A tied head adds nothing else."""
    tokens, bpv = int(seq) * int(batch), float(bytes_per_value)
    return [ActivationTerm(N_("Final RMSNorm input"), "head", "value", tokens * config.hidden * bpv),
            ActivationTerm(N_("Final RMSNorm statistics (fp32)"), "head", "stat", 4.0 * tokens),
            ActivationTerm(N_("Head input (final RMSNorm output)"), "head", "value", tokens * config.hidden * bpv),
            ActivationTerm(N_("Log-probabilities for the loss (fp32)"), "head", "value",
                           4.0 * tokens * config.vocab_size)]


def llama_training_activations(config: ModelConfig, *, seq, batch, bytes_per_value=2, flash_attention=True,
                               checkpoint=False) -> dict:
    """All blocks plus the head and loss: stored bytes, and the backward peak of the chain
    (with per-block checkpointing, one block's working set is recomputed at a time)."""
    common = {"seq": seq, "batch": batch, "bytes_per_value": bytes_per_value}
    layer = sum(t.bytes for t in llama_activation_terms(config, **common, flash_attention=flash_attention))
    layer_input = sum(t.bytes for t in llama_activation_terms(config, **common, recompute="full"))
    plan = checkpoint_plan(config.layers, "full" if checkpoint else "none")
    chain = chain_activation_bytes(plan, layer_bytes=layer, input_bytes=layer_input)
    head = sum(t.bytes for t in llama_head_terms(config, **common))
    return {"per_layer": layer, "layer_input": layer_input, "layers_stored": chain["stored"],
            "layers_peak": chain["peak"], "head": head, "stored": chain["stored"] + head,
            "peak": chain["peak"] + head, "plan": plan}


# ---------------------------------------------------------------- checkpointing along the chain
@dataclass(frozen=True)
class CheckpointPlan:
    layers: int                                # layers in the chain
    strategy: str                              # one of CHECKPOINT_STRATEGIES
    segments: tuple[tuple[int, int], ...]      # checkpointed segments (first, last layer), inclusive
    stored_inputs: tuple[int, ...]             # layers whose input alone is kept (segment starts)
    kept_layers: tuple[int, ...]               # layers whose activations are kept in full
    recomputed_layers: tuple[int, ...]         # layers run forward again in the backward pass

    @property
    def largest_segment(self) -> int:
        return max((last - first + 1 for first, last in self.segments), default=0)


def checkpoint_plan(layers: int, strategy: str, segments: int | None = None) -> CheckpointPlan:
    """Which layers keep what, per strategy.

    ``sqrt`` follows Chen et al. 2016 with torch.utils.checkpoint.checkpoint_sequential's
    layout: ``segments`` (default round(sqrt(layers))) pieces of ``layers // segments``
    layers; every piece but the last is checkpointed, the last runs normally.
    ``full`` checkpoints every layer; ``none``/``selective`` checkpoint no whole layer.
    """
    n = check_int("Layers", layers, 1, MAX_LAYERS)
    mode = check_choice("Checkpointing", strategy, CHECKPOINT_STRATEGIES)
    everything = tuple(range(n))
    if mode in ("none", "selective"):
        return CheckpointPlan(n, mode, (), (), everything, ())
    if mode == "full":
        segs = tuple((i, i) for i in everything)
        return CheckpointPlan(n, mode, segs, everything, (), everything)
    m = max(1, round(math.sqrt(n))) if segments is None else check_int("Segments", segments, 1, n)
    size = n // m
    segs = tuple((start, start + size - 1) for start in range(0, size * (m - 1), size))
    last_start = size * (m - 1)
    recomputed = tuple(i for first, last in segs for i in range(first, last + 1))
    return CheckpointPlan(n, mode, segs, tuple(first for first, _ in segs),
                          tuple(range(last_start, n)), recomputed)


def chain_activation_bytes(plan: CheckpointPlan, *, layer_bytes: float, input_bytes: float,
                           selective_layer_bytes: float | None = None) -> dict:
    """Stored and peak activation bytes of a layer chain under ``plan``.

    ``layer_bytes``: one layer without recomputation; ``input_bytes``: one layer
    input (2sbh); ``selective_layer_bytes``: one layer with selective recompute.
    The peak adds the working set of the segment being recomputed in the backward.
    """
    if plan.strategy == "none":
        stored = plan.layers * layer_bytes
        return {"stored": stored, "peak": stored}
    if plan.strategy == "selective":
        sel = layer_bytes if selective_layer_bytes is None else selective_layer_bytes
        stored = plan.layers * sel
        return {"stored": stored, "peak": stored + (layer_bytes - sel)}
    boundaries = len(plan.stored_inputs) * input_bytes
    stored = boundaries + len(plan.kept_layers) * layer_bytes
    peak = boundaries + max(len(plan.kept_layers), plan.largest_segment) * layer_bytes
    return {"stored": stored, "peak": peak}


# ---------------------------------------------------------------- FLOPs (for recompute cost)
def layer_forward_flops(config: ModelConfig, *, seq: int, batch: int) -> dict:
    """Forward FLOPs of an average layer: matmuls 2 x tokens x weights, plus the attention
    core 2 b s^2 (a d_qk + a d_v) (Narayanan et al. 2021 count; no causal halving)."""
    tokens = seq * batch
    if config.is_moe:
        expert = mlp_params(config, config.moe_intermediate)
        moe = (config.top_k + config.n_shared_experts) * expert + config.n_routed_experts * config.hidden
        dense = mlp_params(config, config.intermediate)
        mlp = (config.first_k_dense * dense + config.moe_layers * moe) / config.layers
    else:
        mlp = mlp_params(config, config.intermediate)
    d_qk = config.qk_nope_head_dim + config.qk_rope_head_dim if config.is_mla else config.head_dim
    d_v = config.v_head_dim if config.is_mla else config.head_dim
    core = 2.0 * batch * seq * seq * config.heads * (d_qk + d_v)
    return {"matmul": 2.0 * tokens * (attention_params(config) + mlp), "core": core,
            "total": 2.0 * tokens * (attention_params(config) + mlp) + core}


def recompute_cost(config: ModelConfig, plan: CheckpointPlan, *, seq: int, batch: int) -> dict:
    """Extra forward FLOPs of a checkpointing plan, and their share of a training step
    (forward + backward = 3 forwards, plus the output head)."""
    layer = layer_forward_flops(config, seq=seq, batch=batch)
    head = 2.0 * seq * batch * config.hidden * config.vocab_size
    step = 3.0 * (config.layers * layer["total"] + head)
    if plan.strategy == "selective":
        extra = config.layers * layer["core"]
    else:
        extra = len(plan.recomputed_layers) * layer["total"]
    return {"extra_flops": extra, "step_flops": step, "fraction": extra / step,
            "recomputed_layers": len(plan.recomputed_layers)}


# ---------------------------------------------------------------- a whole model
def model_activation_bytes(config: ModelConfig, *, seq, batch, tp=1, sequence_parallel=False,
                           strategy="none", flash_attention=False, dropout=True,
                           bytes_per_value=2, segments=None) -> dict:
    """Activations of all layers plus the output head on one GPU (Korthikanti et al. 2022,
    sections 4.1-4.3: the head adds 4sbh/t (1 + v/h), fp32 logits included)."""
    mode = check_choice("Checkpointing", strategy, CHECKPOINT_STRATEGIES)
    common = {"seq": seq, "batch": batch, "hidden": config.hidden, "heads": config.heads,
              "tp": tp, "sequence_parallel": sequence_parallel, "dropout": dropout,
              "bytes_per_value": bytes_per_value, "flash_attention": flash_attention}
    layer = activation_bytes_per_layer(**common)
    selective = activation_bytes_per_layer(**common, recompute="selective")
    layer_input = activation_bytes_per_layer(**common, recompute="full")
    plan = checkpoint_plan(config.layers, mode, segments)
    chain = chain_activation_bytes(plan, layer_bytes=layer, input_bytes=layer_input,
                                   selective_layer_bytes=selective)
    s, b, h, t = int(seq), int(batch), config.hidden, int(tp)
    sp_div = t if sequence_parallel else 1
    head = 2.0 * s * b * h * bytes_per_value / sp_div + 4.0 * s * b * config.vocab_size / t
    embed = (s * b * h / sp_div) if dropout else 0.0
    cost = recompute_cost(config, plan, seq=s, batch=b)
    return {"per_layer": layer, "per_layer_selective": selective, "layer_input": layer_input,
            "stored": chain["stored"], "peak_layers": chain["peak"], "head": head,
            "embedding": embed, "total": chain["peak"] + head + embed,
            "recompute_fraction": cost["fraction"], "recomputed_layers": cost["recomputed_layers"],
            "plan": plan}


# ---------------------------------------------------------------- a training plan per GPU
@dataclass(frozen=True)
class TrainingPlan:
    preset: str = "llama-2-7b"   # key of core.configs.PRESETS, or "custom"
    zero_stage: int = 1          # 0 (plain data parallel) .. 3
    dp: int = 8                  # data-parallel GPUs (N_d)
    recipe: str = "mixed-adam"   # key of RECIPES
    offload: bool = False        # optimizer states in host memory (ZeRO-Offload)
    micro_batch: int = 1         # sequences per GPU per step
    seq: int = 4096              # tokens per sequence
    tp: int = 1                  # tensor-parallel degree
    sp: bool = False             # sequence parallelism (with tp)
    recompute: str = "none"      # one of CHECKPOINT_STRATEGIES
    flash: bool = False          # FlashAttention: no a s^2 b attention matrix
    dropout: bool = True         # dropout masks stored (the paper's assumption)
    kv_requests: int = 0         # concurrent generation requests sharing the GPU (0: none)
    kv_context: int = 4096       # tokens per request in the KV cache
    # custom model (preset == "custom")
    hidden: int = 4096           # model width
    layers: int = 32             # transformer blocks
    heads: int = 32              # query heads
    kv_heads: int = 32           # key/value heads
    ffn: int = 11008             # MLP inner width
    vocab: int = 32000           # vocabulary size


PRESET_CHOICES = (*PRESETS, "custom")
MAX_FFN = 10_000_000
_CUSTOM_LIMITS = (("hidden", "Hidden size", MAX_HIDDEN), ("layers", "Layers", MAX_LAYERS),
                  ("heads", "Attention heads", MAX_HEADS), ("kv_heads", "KV heads", MAX_HEADS),
                  ("ffn", "MLP width", MAX_FFN), ("vocab", "Vocabulary", MAX_VOCAB))
_CUSTOM_FIELDS = tuple(field for field, _, _ in _CUSTOM_LIMITS)


def plan_config(plan: TrainingPlan) -> ModelConfig:
    """The model a plan trains: a preset, or a validated custom Llama-style model."""
    check_choice("Model", plan.preset, PRESET_CHOICES)
    if plan.preset != "custom":
        return PRESETS[plan.preset]
    hidden = check_int("Hidden size", plan.hidden, 1, MAX_HIDDEN)
    heads = check_int("Attention heads", plan.heads, 1, MAX_HEADS)
    kv_heads = check_int("KV heads", plan.kv_heads, 1, MAX_HEADS)
    if hidden % heads:
        raise ValidationError(f"The {heads:,} attention heads must divide the hidden size {hidden:,}.")
    if heads % kv_heads:
        raise ValidationError(f"The {kv_heads:,} KV heads must divide the {heads:,} attention heads.")
    return custom_config(
        "llama-2-7b", name="Custom", hidden=hidden, heads=heads, kv_heads=kv_heads,
        head_dim=hidden // heads, layers=check_int("Layers", plan.layers, 1, MAX_LAYERS),
        intermediate=check_int("MLP width", plan.ffn, 1, MAX_FFN),
        vocab_size=check_int("Vocabulary", plan.vocab, 1, MAX_VOCAB))


def validate_plan(plan: TrainingPlan) -> TrainingPlan:
    """Check every field and the combinations; raises ValidationError with what is wrong."""
    for field, label, hi in _CUSTOM_LIMITS:   # checked even when unused: they feed widgets
        check_int(label, getattr(plan, field), 1, hi)
    cfg = plan_config(plan)
    check_int("ZeRO stage", plan.zero_stage, 0, 3)
    dp = check_int("Data-parallel GPUs", plan.dp, 1, MAX_DP)
    tp = check_int("Tensor-parallel degree", plan.tp, 1, MAX_TP)
    if dp * tp > MAX_GPUS:
        raise ValidationError(f"{dp:,} x {tp:,} = {dp * tp:,} GPUs is more than the "
                              f"{MAX_GPUS:,} this calculator allows.")
    get_recipe(plan.recipe)
    check_choice("Checkpointing", plan.recompute, CHECKPOINT_STRATEGIES)
    _check_shape(plan.seq, plan.micro_batch, cfg.hidden, cfg.heads, tp)
    if plan.sp and tp == 1:
        raise ValidationError("Sequence parallelism splits activations across the tensor-parallel "
                              "group: it needs a tensor-parallel degree above 1.")
    check_int("KV-cache requests", plan.kv_requests, 0, MAX_KV_REQUESTS)
    check_int("KV-cache context", plan.kv_context, 1, MAX_SEQ)
    for name in ("offload", "sp", "flash", "dropout"):
        if not isinstance(getattr(plan, name), bool):
            raise ValidationError(f"{name} must be true or false.")
    return plan


def plan_memory(plan: TrainingPlan) -> dict:
    """Bytes per GPU of everything a plan keeps: model states, activations, KV cache."""
    plan = validate_plan(plan)
    cfg = plan_config(plan)
    counts = param_count(cfg)
    rec = get_recipe(plan.recipe)
    states = model_state_bytes(counts["total"], zero_stage=plan.zero_stage, dp=plan.dp,
                               recipe=plan.recipe, tp=plan.tp, offload_optimizer=plan.offload)
    acts = model_activation_bytes(
        cfg, seq=plan.seq, batch=plan.micro_batch, tp=plan.tp, sequence_parallel=plan.sp,
        strategy=plan.recompute, flash_attention=plan.flash, dropout=plan.dropout,
        bytes_per_value=rec.act_bytes)
    kv = 0.0
    if plan.kv_requests:
        kv = kv_cache_bytes_per_gpu(cfg, seq=plan.kv_context, batch=plan.kv_requests, tp=plan.tp)
    parts = {"params": states["params"], "grads": states["grads"], "optimizer": states["optimizer"],
             "activations": acts["total"], "kv_cache": kv}
    total = sum(parts.values())
    return {"model": cfg.name, "n_params": counts["total"], "n_active": counts["active"],
            "parts": parts, "total": total, "offloaded": states["offloaded"],
            "activations": acts, "recipe": asdict(rec), "gpus": plan.dp * plan.tp,
            "fits": {cap: total <= cap * GIB for cap in GPU_CAPACITIES_GIB},
            "notes": plan_notes(plan, cfg)}


def plan_notes(plan: TrainingPlan, cfg: ModelConfig) -> list[str]:
    """What the numbers leave out for this plan (shown beside the chart)."""
    notes = []
    if cfg.is_moe:
        notes.append(N_("MoE: model states count all experts (no expert parallelism); activations "
                        "use the dense-layer formula."))
    if cfg.is_mla:
        notes.append(N_("MLA: activations use the standard-attention formula with the model's "
                        "query heads; the KV cache uses the compressed latent."))
    if cfg.mlp == "swiglu":
        notes.append(N_("SwiGLU MLP: the paper's 19sbh MLP term assumes a 4h GELU MLP."))
    if plan.recipe == "fp8-deepseek":
        notes.append(N_("FP8: activations are counted at 16 bits; DeepSeek-V3 caches some in FP8."))
    if plan.flash and plan.recompute == "selective":
        notes.append(N_("FlashAttention already avoids the attention matrix: selective recompute "
                        "saves nothing more."))
    return notes


def plan_activation_terms(plan: TrainingPlan) -> list[ActivationTerm]:
    """The per-layer terms behind a plan's activations (full recompute: the layer input)."""
    cfg = plan_config(validate_plan(plan))
    mode = {"sqrt": "none"}.get(plan.recompute, plan.recompute)
    return activation_terms(seq=plan.seq, batch=plan.micro_batch, hidden=cfg.hidden, heads=cfg.heads,
                            tp=plan.tp, sequence_parallel=plan.sp, recompute=mode,
                            flash_attention=plan.flash, dropout=plan.dropout,
                            bytes_per_value=get_recipe(plan.recipe).act_bytes)


def strategy_table(plan: TrainingPlan) -> list[dict]:
    """Every checkpointing strategy for this plan: stored and peak activations, extra compute."""
    cfg = plan_config(validate_plan(plan))
    rows = []
    for strategy in CHECKPOINT_STRATEGIES:
        acts = model_activation_bytes(
            cfg, seq=plan.seq, batch=plan.micro_batch, tp=plan.tp, sequence_parallel=plan.sp,
            strategy=strategy, flash_attention=plan.flash, dropout=plan.dropout,
            bytes_per_value=get_recipe(plan.recipe).act_bytes)
        rows.append({"strategy": strategy, "stored": acts["stored"], "peak": acts["total"],
                     "recomputed_layers": acts["recomputed_layers"],
                     "recompute_fraction": acts["recompute_fraction"]})
    return rows


def checkpoint_graph(plan: CheckpointPlan):
    """A networkx DiGraph of the layer chain: forward row, recompute row, backward row.

    Node attributes: ``pos`` (x = layer, y = row), ``row`` ("forward" | "recompute" |
    "backward") and ``role`` ("kept" | "input kept" | "dropped" | "recomputed" |
    "partly recomputed" | "backward").
    """
    import networkx as nx  # start-up cost: networkx takes ~0.15 s to import

    g = nx.DiGraph()
    recomputed, starts = set(plan.recomputed_layers), set(plan.stored_inputs)
    for i in range(plan.layers):
        if plan.strategy == "selective":
            role = "partly recomputed"
        elif i in starts:
            role = "input kept"
        else:
            role = "dropped" if i in recomputed else "kept"
        g.add_node(f"F{i}", pos=(i, 0), row="forward", role=role, layer=i)
        g.add_node(f"B{i}", pos=(i, -2), row="backward", role="backward", layer=i)
        if i in recomputed:
            g.add_node(f"R{i}", pos=(i, -1), row="recompute", role="recomputed", layer=i)
            g.add_edge(f"R{i}", f"B{i}")
        if i:
            g.add_edge(f"F{i - 1}", f"F{i}")
            g.add_edge(f"B{i}", f"B{i - 1}")
    for first, last in plan.segments:
        g.add_edge(f"F{first}", f"R{first}")
        for i in range(first, last):
            g.add_edge(f"R{i}", f"R{i + 1}")
    return g


# ---------------------------------------------------------------- sweeps
def dp_sweep(plan: TrainingPlan, dps=(1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024)) -> list[dict]:
    """Per-GPU memory against the number of data-parallel GPUs, for every ZeRO stage."""
    rows = []
    for stage in ZERO_STAGES:
        for dp in dps:
            result = plan_memory(replace(plan, zero_stage=stage, dp=int(dp)))
            states = sum(result["parts"][k] for k in ("params", "grads", "optimizer"))
            rows.append({"zero_stage": stage, "dp": int(dp), "model_states": states,
                         "total": result["total"]})
    return rows


def seq_sweep(plan: TrainingPlan, seqs=(512, 1024, 2048, 4096, 8192, 16384, 32768)) -> list[dict]:
    """Activations per GPU against sequence length, per checkpointing strategy (+ FlashAttention)."""
    cfg = plan_config(validate_plan(plan))
    bpv = get_recipe(plan.recipe).act_bytes
    rows = []
    for strategy in CHECKPOINT_STRATEGIES:
        for flash in (False, True):
            label = strategy + (" + FlashAttention" if flash else "")
            for seq in seqs:
                acts = model_activation_bytes(
                    cfg, seq=int(seq), batch=plan.micro_batch, tp=plan.tp, sequence_parallel=plan.sp,
                    strategy=strategy, flash_attention=flash, dropout=plan.dropout,
                    bytes_per_value=bpv)
                rows.append({"strategy": label, "seq": int(seq), "activations": acts["total"],
                             "recompute_fraction": acts["recompute_fraction"]})
    return rows


# ---------------------------------------------------------------- URL state
_QUERY_KEYS = {  # query key -> plan field
    "preset": "preset", "zero": "zero_stage", "dp": "dp", "recipe": "recipe", "offload": "offload",
    "mb": "micro_batch", "seq": "seq", "tp": "tp", "sp": "sp", "rc": "recompute", "flash": "flash",
    "drop": "dropout", "kvr": "kv_requests", "kvc": "kv_context", "h": "hidden", "L": "layers",
    "a": "heads", "kvh": "kv_heads", "ffn": "ffn", "v": "vocab",
}
_BOOL_WORDS = {"1": True, "true": True, "yes": True, "on": True,
               "0": False, "false": False, "no": False, "off": False}


def _parse_value(key: str, field: str, raw) -> object:
    if isinstance(raw, (list, tuple)):
        raw = raw[-1] if raw else ""
    text = str(raw).strip()
    if len(text) > MAX_QUERY_VALUE_CHARS:
        raise ValidationError(f"URL parameter {key!r} is too long.")
    default = getattr(TrainingPlan(), field)
    if isinstance(default, bool):
        if text.lower() not in _BOOL_WORDS:
            raise ValidationError(f"URL parameter {key!r} must be true or false, got {text[:20]!r}.")
        return _BOOL_WORDS[text.lower()]
    if isinstance(default, int):
        return check_int(f"URL parameter {key!r}", text, 0, MAX_SEQ)
    choices = {"preset": PRESET_CHOICES, "recipe": RECIPES, "recompute": CHECKPOINT_STRATEGIES}[field]
    return check_choice(f"URL parameter {key!r}", text, choices)


def plan_from_query(query: Mapping) -> tuple[TrainingPlan, list[str]]:
    """A plan from URL query parameters, and the problems found.

    A bad value is reported and replaced by its default; if the combination is
    invalid (e.g. TP not dividing the heads) the whole default plan is used.
    Unknown keys are ignored (other pages may use the URL too).
    """
    values, problems = {}, []
    for key, field in _QUERY_KEYS.items():
        if key not in query:
            continue
        try:
            values[field] = _parse_value(key, field, query[key])
        except ValidationError as err:
            problems.append(str(err))
    plan = replace(TrainingPlan(), **values)
    try:
        validate_plan(plan)
    except ValidationError as err:
        problems.append(N_(f"The settings in the URL do not work together: {err} Using the defaults."))
        plan = TrainingPlan()
    return plan, problems


def plan_to_query(plan: TrainingPlan) -> dict[str, str]:
    """Query parameters that rebuild ``plan`` (custom-model fields only for "custom")."""
    out = {}
    for key, field in _QUERY_KEYS.items():
        if field in _CUSTOM_FIELDS and plan.preset != "custom":
            continue
        value = getattr(plan, field)
        out[key] = ("1" if value else "0") if isinstance(value, bool) else str(value)
    return out


def plan_fields() -> tuple[str, ...]:
    return tuple(f.name for f in fields(TrainingPlan))
