"""DeepSeekMoE routing with auxiliary-loss-free load balancing, and a small MoE LM trained live.

What this is
- :class:`MoELayer`: the DeepSeekMoE layer (Dai et al. 2024, "DeepSeekMoE", section 3) as
  DeepSeek-V3 uses it (DeepSeek-V3 technical report, section 2.1.2, eq. 12-16): ``n_shared``
  shared experts that every token uses plus ``n_routed`` fine-grained routed SwiGLU experts.
  Affinities are sigmoids ``s_i = sigmoid(u . e_i)``; the top-K experts are chosen on
  ``s_i + b_i``; the gate of a chosen expert is ``s_i / sum_{j chosen} s_j`` times
  ``route_scale``; the bias ``b_i`` only chooses, it never enters a gate. Optional
  group-limited routing (V3's node-limited routing, section 2.1.2): a group's score is the
  sum of its two largest biased affinities (as in DeepSeek-V3's ``inference/model.py`` Gate),
  a token may use only its ``topk_groups`` best groups.
- Balancing (:class:`BalanceConfig`): ``"none"``; ``"aux_loss"``, the conventional
  expert-level balance loss ``alpha * N * sum_i f_i P_i`` over the batch (Switch Transformer,
  Fedus et al. 2021, section 2.2, eq. 4-6; DeepSeekMoE section 3.3, eq. 12-14); ``"aux_free"``,
  DeepSeek-V3's auxiliary-loss-free strategy (Wang et al. 2024, "Auxiliary-Loss-Free Load
  Balancing Strategy for Mixture-of-Experts", section 3; V3 section 2.1.2): after each step
  ``b_i -= gamma * sign(load_i - mean load)``. Any mode may add V3's complementary
  sequence-wise balance loss (eq. 17-20) with weight ``seq_alpha``.
- Dispatch without a Python loop over tokens: ``"sorted"`` sorts the (token, expert) pairs
  by expert, runs each expert once on its contiguous slice and adds the weighted outputs
  back with ``index_add`` (DeepSeek-V3's reference MoE also loops over experts, not tokens);
  ``"padded"`` scatters the pairs into an ``(N, capacity, D)`` buffer and runs all experts in
  one batched matmul (capacity = the busiest expert's load, so imbalance costs compute).
  :func:`naive_moe_reference` is the readable per-token loop in float64 they are tested
  against.
- :class:`MoELM`: a small decoder-only character LM (token + learned position embedding,
  core.nn's pre-norm DecoderBlocks with the MoE layer as their MLP, RMSNorm, LM head), trained
  live on gensim's Wikipedia sample (core.data.char_data, a vocabulary of its most frequent
  characters) by :func:`train_balancing_modes` through core.train, three balancing modes
  from the same initial weights and the same batches.
- Metrics: MaxVio = max_i load_i / mean load - 1 (Wang et al. 2024, section 4.1).
- :func:`bias_demo`: the bias update alone on a frozen, skewed router (instant, no training).
- :func:`route_text` / :func:`expert_specialisation`: gates per character of a text, and the
  characters each expert prefers on held-out text (:func:`route_run_text` /
  :func:`run_specialisation`: the same for one run of a :class:`Comparison`, which
  :func:`build_comparison` makes trained or untrained).
- :func:`scale_view`: what routing means for a real configuration (core.configs PRESETS).

Does not handle: expert parallelism (all-to-all across devices), capacity factors or token
dropping (V3 drops no tokens either), softmax gating, MLA or multi-token prediction
(attention here is plain multi-head attention), tokenisers other than characters.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from core.configs import PRESETS, attention_params, mlp_params, param_count
from core.data import char_data
from core.data.char_data import CharCorpus, CharVocab, sample_batch
from core.nn import DecoderBlock, RMSNorm, SwiGLU
from core.nn.attention import AttentionShape
from core.runtime.device import cpu_threads as _cpu_threads
from core.runtime.device import oom_guard
from core.runtime.scheduler import heavy_job
from core.runtime.text import N_
from core.runtime.validation import CheckedText, ValidationError, check_float, check_int, check_text
from core.train import loop
from core.train.loop import optimizer_step, set_lr
from core.train.schedule import default_warmup, warmup_cosine

# ---- caps: enforced inside this module, whatever a widget allows -----------------------
MAX_EXPERTS = 64            # routed experts per layer
MAX_SHARED = 4              # shared experts per layer
MAX_GROUPS = 16             # expert groups
MAX_D_MODEL = 512           # model width
MAX_EXPERT_HIDDEN = 1024    # inner width of one expert
MAX_LAYERS = 6              # transformer blocks of the small LM
MAX_HEADS = 16              # attention heads
MAX_SEQ_LEN = 512           # training context in characters
MAX_BATCH = 128             # sequences per step
MAX_STEPS = 2000            # training steps per mode
MAX_ALPHA = 1.0             # weight of the conventional auxiliary loss
MAX_SEQ_ALPHA = 0.1         # weight of the sequence-wise balance loss
MAX_GAMMA = 0.1             # bias update speed
MAX_ROUTE_SCALE = 10.0      # gates of one token sum to this
MAX_LR = 0.1                # AdamW learning rate
MAX_TEXT_CHARS = 400        # user text routed through the model
MAX_VOCAB = 128             # characters in the vocabulary (index 0 = unknown)
MIN_CHAR_COUNT = 20         # rarer characters map to "unknown"
VAL_FRACTION = 0.05         # the last 5 % of the Wikipedia sample is held out
NORM_EPS = torch.finfo(torch.float32).eps   # RMSNorm epsilon (nn.RMSNorm's default at float32)
TRAIN_TIME_LIMIT_S = 900.0  # a comparison run stops after this long
# Intra-op threads while training on a CPU. The model's matmuls are tiny: one thread is as
# fast as two on an idle 2-core machine, and ~30x faster when other work shares the cores
# (measured: 0.07 s vs 2.2 s per step), because OpenMP threads spin-wait for each other.
CPU_TRAIN_THREADS = 1
MODES = ("none", "aux_loss", "aux_free")
MODE_LABELS = {"none": N_("No balancing"), "aux_loss": N_("Auxiliary loss"),
               "aux_free": N_("Aux-loss-free bias (V3)")}
DISPATCHES = ("sorted", "padded")
UNKNOWN = char_data.UNK     # how an unknown character is shown

ProgressFn = Callable[[float, str], None]


# ============================================================== configuration
@dataclass(frozen=True)
class MoEConfig:
    d_model: int = 64            # token width D
    n_routed: int = 16           # routed experts N_r
    n_shared: int = 1            # shared experts N_s, used by every token
    top_k: int = 2               # routed experts per token K_r
    expert_hidden: int = 32      # inner width of one SwiGLU expert
    n_groups: int = 1            # expert groups (1 = no group limit; V3: 8)
    topk_groups: int = 1         # groups a token may use (V3: 4)
    route_scale: float = 1.0     # the gates of one token sum to this (V3: 2.5)

    def __post_init__(self) -> None:
        validate_moe_config(self)

    @property
    def group_size(self) -> int:
        return self.n_routed // self.n_groups


def validate_moe_config(cfg: MoEConfig) -> MoEConfig:
    """Clear messages for impossible layer settings; raises ValidationError."""
    check_int("Model width", cfg.d_model, 8, MAX_D_MODEL)
    if isinstance(cfg.n_routed, int) and not isinstance(cfg.n_routed, bool) and cfg.n_routed < 1:
        raise ValidationError("A MoE layer needs at least one routed expert (got 0 or fewer).")
    check_int("Routed experts", cfg.n_routed, 1, MAX_EXPERTS)
    check_int("Shared experts", cfg.n_shared, 0, MAX_SHARED)
    check_int("Expert width", cfg.expert_hidden, 4, MAX_EXPERT_HIDDEN)
    check_int("Top-k", cfg.top_k, 1, MAX_EXPERTS)
    if cfg.top_k > cfg.n_routed:
        raise ValidationError(f"Top-k ({cfg.top_k}) cannot exceed the number of routed experts "
                              f"({cfg.n_routed}): a token cannot pick more experts than exist.")
    check_int("Expert groups", cfg.n_groups, 1, MAX_GROUPS)
    if cfg.n_routed % cfg.n_groups:
        raise ValidationError(f"Expert groups ({cfg.n_groups}) must divide the routed experts "
                              f"({cfg.n_routed}) into equal groups.")
    check_int("Groups per token", cfg.topk_groups, 1, cfg.n_groups)
    reachable = cfg.topk_groups * (cfg.n_routed // cfg.n_groups)
    if cfg.top_k > reachable:
        raise ValidationError(f"Top-k ({cfg.top_k}) exceeds the {reachable} experts a token can "
                              f"reach in {cfg.topk_groups} group(s) of {cfg.n_routed // cfg.n_groups}.")
    check_float("Route scale", cfg.route_scale, 0.0, MAX_ROUTE_SCALE, lo_open=True)
    return cfg


@dataclass(frozen=True)
class BalanceConfig:
    mode: str = "aux_free"       # "none" | "aux_loss" | "aux_free"
    alpha: float = 0.01          # weight of the conventional aux loss (mode "aux_loss")
    gamma: float = 0.01          # bias update speed (mode "aux_free"; V3: 0.001)
    seq_alpha: float = 0.0       # weight of the sequence-wise balance loss (V3: 0.0001)

    def __post_init__(self) -> None:
        if self.mode not in MODES:
            raise ValidationError(f"Balancing mode must be one of {', '.join(MODES)}; got {str(self.mode)[:30]!r}.")
        check_float("Auxiliary-loss weight alpha", self.alpha, 0.0, MAX_ALPHA)
        check_float("Bias update speed gamma", self.gamma, 0.0, MAX_GAMMA)
        check_float("Sequence-wise loss weight", self.seq_alpha, 0.0, MAX_SEQ_ALPHA)


@dataclass(frozen=True)
class TrainConfig:
    moe: MoEConfig = field(default_factory=MoEConfig)   # the MoE layer of every block
    alpha: float = 0.01          # aux-loss weight of the "aux_loss" run
    gamma: float = 0.01          # bias update speed of the "aux_free" run
    seq_alpha: float = 1e-4      # sequence-wise loss weight of the "aux_free" run (as V3)
    n_layers: int = 2            # transformer blocks
    n_heads: int = 4             # attention heads
    seq_len: int = 64            # context in characters
    batch: int = 16              # sequences per step
    steps: int = 150             # optimizer steps per mode
    lr: float = 1e-3             # AdamW peak learning rate (warm-up, then cosine to 10 %)
    eval_every: int = 20         # steps between held-out evaluations
    seed: int = 0                # initial weights and batch order (same for every mode)

    def __post_init__(self) -> None:
        BalanceConfig("aux_loss", alpha=self.alpha)
        BalanceConfig("aux_free", gamma=self.gamma, seq_alpha=self.seq_alpha)
        check_int("Layers", self.n_layers, 1, MAX_LAYERS)
        check_int("Attention heads", self.n_heads, 1, MAX_HEADS)
        if self.moe.d_model % self.n_heads:
            raise ValidationError(f"Attention heads ({self.n_heads}) must divide the model width ({self.moe.d_model}).")
        check_int("Context length", self.seq_len, 8, MAX_SEQ_LEN)
        check_int("Batch", self.batch, 1, MAX_BATCH)
        check_int("Training steps", self.steps, 1, MAX_STEPS)
        check_float("Learning rate", self.lr, 0.0, MAX_LR, lo_open=True)
        check_int("Evaluation interval", self.eval_every, 1, MAX_STEPS)
        check_int("Seed", self.seed, 0, 2**31 - 1)

    def balance(self, mode: str) -> BalanceConfig:
        """The balancing of one run; seq_alpha only in the aux-free run (V3's recipe)."""
        if mode == "aux_free":
            return BalanceConfig(mode, gamma=self.gamma, seq_alpha=self.seq_alpha)
        return BalanceConfig(mode, alpha=self.alpha if mode == "aux_loss" else 0.0)


# ============================================================== routing
def group_limit(choice: torch.Tensor, cfg: MoEConfig) -> torch.Tensor:
    """Mask (to -inf) the experts outside each token's ``topk_groups`` best groups.

    Group score = sum of the group's two largest (biased) affinities, as DeepSeek-V3's Gate.
    """
    t = choice.shape[0]
    grouped = choice.view(t, cfg.n_groups, cfg.group_size)                    # (T, G, N/G)
    group_scores = grouped.topk(min(2, cfg.group_size), dim=-1).values.sum(-1)  # (T, G)
    keep = group_scores.topk(cfg.topk_groups, dim=-1).indices                 # (T, topk_groups)
    drop = torch.ones_like(group_scores, dtype=torch.bool).scatter_(1, keep, False)  # (T, G)
    return grouped.masked_fill(drop.unsqueeze(-1), float("-inf")).flatten(1)  # (T, N)


def route(scores: torch.Tensor, bias: torch.Tensor | None,
          cfg: MoEConfig) -> tuple[torch.Tensor, torch.Tensor]:
    """Top-K selection on ``scores + bias``; gates from the unbiased scores.

    scores: (T, N) sigmoid affinities. Returns (weights (T, K), indices (T, K)); each row of
    weights sums to ``cfg.route_scale``. The bias changes which experts are chosen, never
    the weights of the chosen ones.
    """
    choice = scores if bias is None else scores + bias                # (T, N)
    if cfg.n_groups > 1:
        choice = group_limit(choice, cfg)                             # (T, N)
    indices = choice.topk(cfg.top_k, dim=-1).indices                  # (T, K)
    chosen = scores.gather(-1, indices)                               # (T, K)
    denom = chosen.sum(-1, keepdim=True).clamp_min(torch.finfo(chosen.dtype).tiny)
    return chosen / denom * cfg.route_scale, indices                  # (T, K), (T, K)


def expert_load(indices: torch.Tensor, n_experts: int) -> torch.Tensor:
    """Routed (token, expert) pairs per expert: (N,) int64."""
    return torch.bincount(indices.reshape(-1), minlength=n_experts)


def max_violation(load: torch.Tensor | np.ndarray) -> float:
    """MaxVio = max load / mean load - 1 (0 = perfectly balanced); Wang et al. 2024, 4.1."""
    arr = np.asarray(load.detach().cpu() if isinstance(load, torch.Tensor) else load, dtype=np.float64)
    mean = arr.mean()
    return float(arr.max() / mean - 1.0) if mean > 0 else 0.0


# ============================================================== balancing
def _normalised(scores: torch.Tensor) -> torch.Tensor:
    """s'_{i,t} = s_{i,t} / sum_j s_{j,t}: affinities as a distribution over experts."""
    return scores / scores.sum(-1, keepdim=True).clamp_min(1e-20)


def aux_balance_loss(scores: torch.Tensor, indices: torch.Tensor, n_experts: int) -> torch.Tensor:
    """Conventional balance loss N * sum_i f_i P_i over all tokens of the batch (weight alpha outside).

    f_i = share of the routed (token, expert) pairs that went to expert i (no gradient),
    P_i = mean normalised affinity of expert i. Equals 1 when routing is uniform.
    """
    f = expert_load(indices, n_experts).to(scores.dtype) / indices.numel()    # (N,)
    p = _normalised(scores.reshape(-1, n_experts)).mean(0)                    # (N,)
    return n_experts * (f * p).sum()


def sequence_balance_loss(scores: torch.Tensor, indices: torch.Tensor) -> torch.Tensor:
    """DeepSeek-V3's sequence-wise balance loss sum_i f_i P_i, eq. 17-20, averaged over sequences.

    scores: (B, S, N); indices: (B, S, K). f_i = N/(K S) * tokens of the sequence sent to i,
    P_i = mean over the sequence of s'_{i,t}. Equals 1 when each sequence is balanced.
    """
    b, s, n = scores.shape
    k = indices.shape[-1]
    chosen = torch.zeros_like(scores).scatter_(-1, indices, 1.0)              # (B, S, N)
    f = chosen.sum(1) * n / (k * s)                                           # (B, N)
    p = _normalised(scores).mean(1)                                           # (B, N)
    return (f * p).sum(-1).mean()


@torch.no_grad()
def update_bias(bias: torch.Tensor, load: torch.Tensor, gamma: float) -> torch.Tensor:
    """b_i -= gamma * sign(load_i - mean load): down for overloaded, up for underloaded (in place)."""
    load = load.to(bias.dtype)
    bias.sub_(gamma * torch.sign(load - load.mean()))
    return bias


@dataclass(frozen=True)
class BiasDemo:
    load: np.ndarray       # (steps, N) routed pairs per expert before each update
    bias: np.ndarray       # (steps, N) bias after each update
    max_vio: np.ndarray    # (steps,) MaxVio before each update


MAX_DEMO_TOKENS = 16384    # tokens routed per update in the bias demo
MAX_DEMO_STEPS = 1000      # bias updates in the bias demo


def bias_demo(cfg: MoEConfig, gamma: float, *, tokens: int = 2048, steps: int = 200,
              skew: float = 3.0, seed: int = 0) -> BiasDemo:
    """The aux-free bias alone, on a frozen router that favours low-numbered experts.

    Affinities sigmoid(z + skew * linspace(1, -1, N)) with z ~ N(0, 1) per token; each update
    routes all tokens with the current bias, then applies :func:`update_bias`.
    """
    BalanceConfig("aux_free", gamma=gamma)
    check_int("Demo tokens", tokens, 16, MAX_DEMO_TOKENS)
    check_int("Demo steps", steps, 1, MAX_DEMO_STEPS)
    check_float("Router skew", skew, 0.0, 10.0)
    gen = torch.Generator().manual_seed(seed)
    logits = torch.randn(tokens, cfg.n_routed, generator=gen)                      # (T, N)
    scores = torch.sigmoid(logits + skew * torch.linspace(1.0, -1.0, cfg.n_routed))  # (T, N)
    bias, loads, biases = torch.zeros(cfg.n_routed), [], []
    with cpu_threads("cpu"):
        for _ in range(steps):
            _, idx = route(scores, bias, cfg)
            loads.append(expert_load(idx, cfg.n_routed))
            biases.append(update_bias(bias, loads[-1], gamma).clone())
    load = torch.stack(loads).double().numpy()                                     # (steps, N)
    return BiasDemo(load, torch.stack(biases).numpy(), load.max(1) / load.mean(1) - 1.0)


# ============================================================== experts and dispatch
class Experts(nn.Module):
    """``n`` SwiGLU experts with stacked weights: w_gate, w_up (n, D, H); w_down (n, H, D)."""

    def __init__(self, n: int, d: int, hidden: int) -> None:
        super().__init__()
        self.n = n
        self.w_gate = nn.Parameter(torch.randn(n, d, hidden) * d**-0.5)
        self.w_up = nn.Parameter(torch.randn(n, d, hidden) * d**-0.5)
        self.w_down = nn.Parameter(torch.randn(n, hidden, d) * hidden**-0.5)

    def one(self, e: int, x: torch.Tensor) -> torch.Tensor:
        """Expert ``e`` on its tokens x: (M, D) -> (M, D)."""
        return (F.silu(x @ self.w_gate[e]) * (x @ self.w_up[e])) @ self.w_down[e]

    def batched(self, xb: torch.Tensor) -> torch.Tensor:
        """Every expert on its padded slot buffer xb: (N, C, D) -> (N, C, D)."""
        h = F.silu(torch.bmm(xb, self.w_gate)) * torch.bmm(xb, self.w_up)   # (N, C, H)
        return torch.bmm(h, self.w_down)                                     # (N, C, D)


def _sort_pairs(indices: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(order, token, expert) of the T*K routed pairs, grouped by expert (stable)."""
    k = indices.shape[1]
    flat = indices.reshape(-1)                        # (T*K,)
    order = torch.argsort(flat, stable=True)          # (T*K,)
    return order, order // k, flat[order]             # (T*K,) x 3


def dispatch_sorted(x: torch.Tensor, weights: torch.Tensor, indices: torch.Tensor,
                    experts: Experts) -> torch.Tensor:
    """Sort pairs by expert, one matmul chain per expert on its slice, index_add back. x: (T, D)."""
    order, token, _ = _sort_pairs(indices)
    counts = expert_load(indices, experts.n).tolist()              # N ints
    xs = x[token]                                                  # (T*K, D) grouped by expert
    outs = [experts.one(e, chunk) for e, chunk in enumerate(xs.split(counts)) if counts[e]]
    ys = torch.cat(outs) * weights.reshape(-1)[order].unsqueeze(-1)  # (T*K, D)
    return torch.zeros_like(x).index_add(0, token, ys)             # (T, D)


def dispatch_padded(x: torch.Tensor, weights: torch.Tensor, indices: torch.Tensor,
                    experts: Experts) -> torch.Tensor:
    """Scatter pairs into an (N, capacity, D) buffer, one batched matmul, gather back. x: (T, D)."""
    order, token, expert = _sort_pairs(indices)
    counts = expert_load(indices, experts.n)                       # (N,)
    starts = torch.cumsum(counts, 0) - counts                      # (N,)
    slot = torch.arange(expert.numel(), device=x.device) - starts[expert]  # (T*K,)
    capacity = int(counts.max())
    buf = x.new_zeros(experts.n, capacity, x.shape[1])             # (N, C, D)
    buf = buf.index_put((expert, slot), x[token])                  # (N, C, D)
    ys = experts.batched(buf)[expert, slot]                        # (T*K, D)
    ys = ys * weights.reshape(-1)[order].unsqueeze(-1)             # (T*K, D)
    return torch.zeros_like(x).index_add(0, token, ys)             # (T, D)


DISPATCH = {"sorted": dispatch_sorted, "padded": dispatch_padded}


# ============================================================== the MoE layer
@dataclass
class MoEInternals:
    scores: torch.Tensor     # (..., N) sigmoid affinities s_i (before the bias)
    weights: torch.Tensor    # (..., K) gate weights of the chosen experts (sum = route_scale)
    indices: torch.Tensor    # (..., K) chosen routed experts
    load: torch.Tensor       # (N,) routed pairs per expert in this call


class MoELayer(nn.Module):
    """DeepSeekMoE: shared experts + routed experts chosen by sigmoid affinity + bias."""

    def __init__(self, cfg: MoEConfig, dispatch: str = "sorted") -> None:
        super().__init__()
        if dispatch not in DISPATCH:
            raise ValidationError(f"Dispatch must be one of {', '.join(DISPATCH)}.")
        self.cfg, self.dispatch = cfg, dispatch
        self.router = nn.Parameter(torch.randn(cfg.n_routed, cfg.d_model) * cfg.d_model**-0.5)
        self.register_buffer("bias", torch.zeros(cfg.n_routed))   # b_i: chooses, no gradient
        self.experts = Experts(cfg.n_routed, cfg.d_model, cfg.expert_hidden)
        # the shared experts, fused into one SwiGLU of width n_shared * H (as V3 does): core.nn's
        self.shared = SwiGLU(cfg.d_model, cfg.n_shared * cfg.expert_hidden) if cfg.n_shared else None

    def forward(self, x: torch.Tensor, return_internals: bool = False):
        lead, d = x.shape[:-1], x.shape[-1]
        flat = x.reshape(-1, d)                                            # (T, D)
        rdt = torch.promote_types(flat.dtype, torch.float32)              # router in >= fp32
        scores = torch.sigmoid(flat.to(rdt) @ self.router.to(rdt).T)       # (T, N)
        weights, indices = route(scores, self.bias.to(rdt), self.cfg)      # (T, K), (T, K)
        y = DISPATCH[self.dispatch](flat, weights.to(flat.dtype), indices, self.experts)  # (T, D)
        if self.shared is not None:
            y = y + self.shared(flat)                                      # (T, D)
        y = y.view(*lead, d)
        if not return_internals:
            return y
        n, k = self.cfg.n_routed, self.cfg.top_k
        return y, MoEInternals(scores.view(*lead, n), weights.view(*lead, k),
                               indices.view(*lead, k), expert_load(indices, n))


def naive_moe_reference(layer: MoELayer, x: torch.Tensor) -> tuple[torch.Tensor, list[list[int]]]:
    """The readable path: per token, sort experts by biased score in Python, gate, sum; float64.

    x: (T, D). Returns (y (T, D) float64, chosen experts per token, best first).
    """
    cfg = layer.cfg
    router, bias = layer.router.detach().double(), layer.bias.detach().double()
    w = {n: p.detach().double() for n, p in layer.experts.named_parameters()}
    ys, picks = [], []
    for xt in x.detach().double():
        scores = torch.sigmoid(router @ xt).tolist()
        chosen = _naive_choice(scores, bias.tolist(), cfg)
        total = sum(scores[e] for e in chosen)
        yt = torch.zeros_like(xt)
        for e in chosen:
            h = F.silu(xt @ w["w_gate"][e]) * (xt @ w["w_up"][e])
            yt += scores[e] / total * cfg.route_scale * (h @ w["w_down"][e])
        if layer.shared is not None:
            s = {n: p.detach().double() for n, p in layer.shared.named_parameters()}
            gate, up = s["gate_up.weight"].chunk(2)
            yt += s["down.weight"] @ (F.silu(gate @ xt) * (up @ xt))
        ys.append(yt)
        picks.append(chosen)
    return torch.stack(ys), picks


def _naive_choice(scores: list[float], bias: list[float], cfg: MoEConfig) -> list[int]:
    """Experts for one token: best groups first (sum of top-2 biased scores), then top-k."""
    biased = [s + b for s, b in zip(scores, bias, strict=True)]
    allowed = list(range(cfg.n_routed))
    if cfg.n_groups > 1:
        size = cfg.group_size
        group_score = [sum(sorted(biased[g * size:(g + 1) * size], reverse=True)[:2])
                       for g in range(cfg.n_groups)]
        best = sorted(range(cfg.n_groups), key=lambda g: -group_score[g])[:cfg.topk_groups]
        allowed = [e for e in allowed if e // size in best]
    return sorted(allowed, key=lambda e: -biased[e])[:cfg.top_k]


# ============================================================== the small MoE language model
class Block(DecoderBlock):
    """core.nn's pre-norm block (RMSNorm, causal SDPA attention) with a DeepSeekMoE layer as its MLP;
    ``block(x, return_internals=True, return_probs=False)[1].mlp`` is the layer's routing."""

    def __init__(self, cfg: TrainConfig, dispatch: str) -> None:
        d = cfg.moe.d_model
        super().__init__(AttentionShape(d, cfg.n_heads, cfg.n_heads, d // cfg.n_heads),
                         d_ff=cfg.moe.expert_hidden, norm="rmsnorm", norm_eps=NORM_EPS,
                         mlp_module=MoELayer(cfg.moe, dispatch), mlp_internals=True)

    @property
    def moe(self) -> MoELayer:
        return self.mlp


@dataclass
class LMOutput:
    logits: torch.Tensor                 # (B, S, V)
    layers: tuple[MoEInternals, ...]     # routing of every MoE layer


class MoELM(nn.Module):
    """A small decoder-only character LM whose every block has a DeepSeekMoE layer."""

    def __init__(self, vocab_size: int, cfg: TrainConfig, dispatch: str = "sorted") -> None:
        super().__init__()
        d = cfg.moe.d_model
        self.cfg = cfg
        self.tok = nn.Embedding(vocab_size, d)
        self.pos = nn.Embedding(cfg.seq_len, d)
        self.blocks = nn.ModuleList(Block(cfg, dispatch) for _ in range(cfg.n_layers))
        self.norm = RMSNorm(d, NORM_EPS)
        self.head = nn.Linear(d, vocab_size, bias=False)
        self._init_weights()

    def _init_weights(self) -> None:
        """GPT-2's init: N(0, 0.02); residual output projections N(0, 0.02 / sqrt(2 L)).

        PyTorch's default Linear init makes the attention output dominate the normalised
        hidden state, so every token looks alike to the router and a few experts take all.
        The fused gate/up matrix of the shared experts is drawn as its two matrices.
        """
        residual_std = 0.02 / math.sqrt(2 * self.cfg.n_layers)
        for name, p in self.named_parameters():
            if name.endswith(("proj.weight", "down.weight", "w_down")):
                nn.init.normal_(p, std=residual_std)
            elif p.dim() >= 2:
                for part in p.chunk(2) if name.endswith("gate_up.weight") else (p,):
                    nn.init.normal_(part, std=0.02)

    def forward(self, idx: torch.Tensor, return_internals: bool = False):
        s = idx.shape[1]
        if s > self.cfg.seq_len:
            raise ValidationError(f"At most {self.cfg.seq_len} tokens per sequence, got {s}.")
        x = self.tok(idx) + self.pos(torch.arange(s, device=idx.device))   # (B, S, D)
        layers = []
        for block in self.blocks:
            x, inner = block(x, return_internals=True, return_probs=False)  # (B, S, D)
            layers.append(inner.mlp)                                        # the MoE's routing
        logits = self.head(self.norm(x))                                    # (B, S, V)
        return LMOutput(logits, tuple(layers)) if return_internals else logits

    def moe_layers(self) -> list[MoELayer]:
        return [block.mlp for block in self.blocks]


def build_model(vocab_size: int, cfg: TrainConfig, device: torch.device | str = "cpu",
                dispatch: str = "sorted") -> MoELM:
    """The LM with seeded initial weights (same seed -> same weights in every mode)."""
    check_int("Vocabulary size", vocab_size, 2, 1_000_000)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(cfg.seed)
        model = MoELM(vocab_size, cfg, dispatch)
    return model.to(device)


# ============================================================== character data
def build_vocab(text: str, max_size: int = MAX_VOCAB, min_count: int = MIN_CHAR_COUNT) -> CharVocab:
    """The ``max_size - 1`` most frequent characters seen at least ``min_count`` times (core.data.char_data)."""
    return char_data.build_vocab(text, max_size, min_count)


def wiki_corpus() -> CharCorpus:
    """gensim's Wikipedia sample as ids of its own most frequent characters, split 95 / 5 (core.data.char_data)."""
    return char_data.wiki_corpus(vocab_size=MAX_VOCAB, min_count=MIN_CHAR_COUNT, val_fraction=VAL_FRACTION)


# ============================================================== training
@dataclass(frozen=True)
class TrainHistory:
    mode: str                 # balancing mode of this run
    loss: np.ndarray          # (steps,) training cross-entropy, nats per character
    balance_loss: np.ndarray  # (steps,) weighted balance-loss terms added to it
    load: np.ndarray          # (steps, L, N) routed pairs per expert in each step's batch
    bias: np.ndarray          # (steps, L, N) expert bias b_i after each step
    max_vio: np.ndarray       # (steps, L) MaxVio of each step's batch
    eval_steps: np.ndarray    # (E,) steps after which the held-out batch was evaluated
    val_loss: np.ndarray      # (E,) held-out cross-entropy, nats per character
    val_max_vio: np.ndarray   # (E, L) MaxVio over the whole held-out batch
    seconds: float            # wall time of the training steps (evaluation excluded)
    tokens_per_s: float       # training tokens per second of step time


@dataclass
class TrainedRun:
    balance: BalanceConfig    # how this run balanced its experts
    model: MoELM              # trained weights, eval mode, on the training device
    history: TrainHistory


@dataclass
class Comparison:
    config: TrainConfig              # what was trained
    vocab: CharVocab                 # the character vocabulary
    runs: dict[str, TrainedRun]      # mode -> run, in MODES order
    val: torch.Tensor                # held-out character ids (CPU) for analyses
    device: str                      # where it was trained


def balance_terms(layers: tuple[MoEInternals, ...], balance: BalanceConfig, n_experts: int) -> torch.Tensor:
    """The weighted balance losses of every MoE layer, summed (0 for mode "none")."""
    total = layers[0].scores.new_zeros(())
    for li in layers:
        if balance.mode == "aux_loss" and balance.alpha > 0:
            total = total + balance.alpha * aux_balance_loss(li.scores, li.indices, n_experts)
        if balance.seq_alpha > 0:
            total = total + balance.seq_alpha * sequence_balance_loss(li.scores, li.indices)
    return total


def train_step(model: MoELM, opt: torch.optim.Optimizer, x: torch.Tensor, y: torch.Tensor,
               balance: BalanceConfig) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """One step: CE + balance losses, AdamW, then the aux-free bias update. Returns (ce, bal, load (L, N))."""
    out = model(x, return_internals=True)
    ce = F.cross_entropy(out.logits.flatten(0, 1), y.flatten())       # () nats per character
    bal = balance_terms(out.layers, balance, model.cfg.moe.n_routed)  # ()
    optimizer_step(opt, ce + bal, model.parameters(), clip=1.0)
    loads = torch.stack([li.load for li in out.layers])               # (L, N)
    if balance.mode == "aux_free" and balance.gamma > 0:
        for layer, load in zip(model.moe_layers(), loads, strict=True):
            update_bias(layer.bias, load, balance.gamma)
    return ce.detach(), bal.detach(), loads


@torch.no_grad()
def evaluate(model: MoELM, x: torch.Tensor, y: torch.Tensor) -> tuple[float, list[float]]:
    """Held-out cross-entropy and the MaxVio of each layer over the whole batch."""
    was_training = model.training
    model.eval()
    out = model(x, return_internals=True)
    model.train(was_training)
    ce = F.cross_entropy(out.logits.flatten(0, 1), y.flatten())
    return float(ce), [max_violation(li.load) for li in out.layers]


@dataclass
class _Log:
    loss: list = field(default_factory=list)
    bal: list = field(default_factory=list)
    load: list = field(default_factory=list)
    bias: list = field(default_factory=list)
    eval_steps: list = field(default_factory=list)
    val_loss: list = field(default_factory=list)
    val_vio: list = field(default_factory=list)
    seconds: float = 0.0


def train_lm(cfg: TrainConfig, balance: BalanceConfig, corpus: CharCorpus,
             device: torch.device | str = "cpu", progress: ProgressFn | None = None,
             job=None, span: tuple[float, float] = (0.0, 1.0)) -> TrainedRun:
    """Train one MoE LM with ``balance``; batches and initial weights depend on cfg.seed only.

    ``progress(fraction, message)`` is called with fractions inside ``span``; ``job.check()``
    (core.runtime.scheduler) is called every step.
    """
    dev = torch.device(device)
    model = build_model(corpus.vocab.size, cfg, dev).train()
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=0.01, betas=(0.9, 0.95))
    gen = torch.Generator().manual_seed(cfg.seed)
    vx, vy = (t.to(dev) for t in sample_batch(corpus.val, 32, cfg.seq_len, torch.Generator().manual_seed(1)))
    log, warm = _Log(), default_warmup(cfg.steps)

    def step(i: int) -> torch.Tensor:
        set_lr(opt, cfg.lr * warmup_cosine(i, cfg.steps, warm))          # warm-up, cosine to 10 %
        x, y = (t.to(dev, non_blocking=True) for t in sample_batch(corpus.train, cfg.batch, cfg.seq_len, gen))
        t0 = time.perf_counter()
        ce, bal, loads = train_step(model, opt, x, y, balance)
        log.loss.append(ce)
        log.bal.append(bal)
        log.load.append(loads)
        log.bias.append(torch.stack([m.bias.detach().clone() for m in model.moe_layers()]))
        log.seconds += _elapsed(t0, dev)
        return ce

    loop.train(step, cfg.steps, job=job, evaluate=lambda done: _log_eval(log, model, vx, vy, done),
               eval_at=loop.every_and_last(cfg.steps, cfg.eval_every), progress=progress,
               progress_every=max(1, cfg.steps // 40), span=span,
               message=lambda done, ce: N_(f"{MODE_LABELS[balance.mode]}: step {done}/{cfg.steps}, "
                                           f"loss {float(ce):.3f}"))
    return TrainedRun(balance, model.eval(), _history(balance.mode, log, cfg))


def _elapsed(t0: float, dev: torch.device) -> float:
    """Seconds since t0 once queued device work is done."""
    if dev.type == "cuda":
        torch.cuda.synchronize(dev)
    return time.perf_counter() - t0


def _log_eval(log: _Log, model: MoELM, vx: torch.Tensor, vy: torch.Tensor, step: int) -> None:
    val_loss, vio = evaluate(model, vx, vy)
    log.eval_steps.append(step)
    log.val_loss.append(val_loss)
    log.val_vio.append(vio)


def _history(mode: str, log: _Log, cfg: TrainConfig) -> TrainHistory:
    load = torch.stack(log.load).cpu().numpy()                       # (steps, L, N)
    mean = load.mean(-1, keepdims=True)                              # (steps, L, 1)
    tokens = cfg.steps * cfg.batch * cfg.seq_len
    return TrainHistory(
        mode=mode,
        loss=torch.stack(log.loss).float().cpu().numpy(),
        balance_loss=torch.stack(log.bal).float().cpu().numpy(),
        load=load,
        bias=torch.stack(log.bias).float().cpu().numpy(),
        max_vio=(load.max(-1) / mean[..., 0] - 1.0),
        eval_steps=np.asarray(log.eval_steps),
        val_loss=np.asarray(log.val_loss),
        val_max_vio=np.asarray(log.val_vio),
        seconds=log.seconds,
        tokens_per_s=tokens / log.seconds if log.seconds > 0 else 0.0,
    )


def cpu_threads(device: torch.device | str, n: int = CPU_TRAIN_THREADS):
    """At most ``n`` intra-op threads inside the block when ``device`` is a CPU (core.runtime.device.cpu_threads)."""
    return _cpu_threads(device, n)


def train_balancing_modes(cfg: TrainConfig, device: torch.device | str = "cpu", *,
                          corpus: CharCorpus | None = None, modes: tuple[str, ...] = MODES,
                          progress: ProgressFn | None = None, on_wait=None) -> Comparison:
    """Train one LM per balancing mode, same initial weights and batches; on ``device``.

    Runs as one heavy job (core.runtime.scheduler) limited to TRAIN_TIME_LIMIT_S; out of memory
    becomes a ResourceError that says what to lower.
    """
    if not modes or len(set(modes)) != len(modes):
        raise ValidationError("Give each balancing mode once.")
    for mode in modes:
        BalanceConfig(mode)
    corpus = corpus if corpus is not None else wiki_corpus()
    runs: dict[str, TrainedRun] = {}
    with heavy_job("MoE training", device, time_limit_s=TRAIN_TIME_LIMIT_S, on_wait=on_wait) as job, \
            oom_guard("MoE training", device, hint="Lower the batch, context or number of experts."), \
            cpu_threads(device):
        for i, mode in enumerate(modes):
            span = (i / len(modes), (i + 1) / len(modes))
            runs[mode] = train_lm(cfg, cfg.balance(mode), corpus, device, progress, job, span)
    return Comparison(cfg, corpus.vocab, runs, corpus.val, str(torch.device(device)))


def untrained_comparison(cfg: TrainConfig, device: torch.device | str = "cpu",
                         corpus: CharCorpus | None = None) -> Comparison:
    """The same LM at its initial weights (bias 0, so every mode routes alike): step 0."""
    corpus = corpus if corpus is not None else wiki_corpus()
    model = build_model(corpus.vocab.size, cfg, device).eval()
    layers, experts = cfg.n_layers, cfg.moe.n_routed
    empty = TrainHistory(
        mode="none", loss=np.zeros(0), balance_loss=np.zeros(0),
        load=np.zeros((0, layers, experts)), bias=np.zeros((0, layers, experts)),
        max_vio=np.zeros((0, layers)), eval_steps=np.zeros(0, dtype=int), val_loss=np.zeros(0),
        val_max_vio=np.zeros((0, layers)), seconds=0.0, tokens_per_s=0.0)
    run = TrainedRun(cfg.balance("none"), model, empty)
    return Comparison(cfg, corpus.vocab, {"none": run}, corpus.val, str(torch.device(device)))


def build_comparison(cfg: TrainConfig, device: torch.device | str = "cpu", *, trained: bool = True,
                     corpus: CharCorpus | None = None, progress: ProgressFn | None = None,
                     on_wait=None) -> Comparison:
    """The three trained runs (:func:`train_balancing_modes`) or, with ``trained=False``, the same
    LM at its initial weights (:func:`untrained_comparison`): one entry point, keyed by config."""
    if trained:
        return train_balancing_modes(cfg, device, corpus=corpus, progress=progress, on_wait=on_wait)
    return untrained_comparison(cfg, device, corpus)


# ============================================================== routing analyses
def comparison_run(comp: Comparison, mode: str) -> TrainedRun:
    """The run of balancing ``mode`` in ``comp``; a clear message for a mode it does not hold."""
    if mode not in comp.runs:
        names = ", ".join(MODE_LABELS.get(m, m) for m in comp.runs)
        raise ValidationError(f"This model has no run {str(mode)[:30]!r}; it holds: {names}.")
    return comp.runs[mode]


@torch.no_grad()
def route_ids(model: MoELM, ids: torch.Tensor) -> list[MoEInternals]:
    """Route a 1-D id sequence in windows of the model's context; per layer, flattened to (T, ...)."""
    dev, s = next(model.parameters()).device, model.cfg.seq_len
    full = len(ids) // s * s
    batches = [ids[:full].view(-1, s)] if full else []                   # (W, S) whole windows
    if full < len(ids):
        batches.append(ids[full:].unsqueeze(0))                           # (1, rest)
    with cpu_threads(dev):
        per_window = [model(b.to(dev), return_internals=True).layers for b in batches]
    n = model.cfg.moe.n_routed
    out = []
    for layer in range(model.cfg.n_layers):
        parts = [w[layer] for w in per_window]
        indices = torch.cat([p.indices.reshape(-1, p.indices.shape[-1]) for p in parts])   # (T, K)
        out.append(MoEInternals(
            scores=torch.cat([p.scores.reshape(-1, n) for p in parts]).cpu(),                # (T, N)
            weights=torch.cat([p.weights.reshape(-1, p.weights.shape[-1]) for p in parts]).cpu(),
            indices=indices.cpu(), load=expert_load(indices, n).cpu()))
    return out


@dataclass(frozen=True)
class TextRouting:
    tokens: tuple[str, ...]    # the characters of the text, one token each
    known: np.ndarray          # (T,) False where the model reads the character as "unknown"
    gates: np.ndarray          # (L, T, N) gate weight per token and routed expert (0 = not chosen)
    scores: np.ndarray         # (L, T, N) sigmoid affinities s_i
    top_expert: np.ndarray     # (L, T) routed expert with the largest gate
    load: np.ndarray           # (L, N) tokens sent to each expert
    max_vio: np.ndarray        # (L,) MaxVio of this text's load, per layer
    top_counts: np.ndarray     # (L, N) tokens whose largest gate is each expert's
    truncated: bool            # the text was cut to MAX_TEXT_CHARS
    original_chars: int        # characters before the cut


def route_text(model: MoELM, vocab: CharVocab, text: str) -> TextRouting:
    """Which experts each character of ``text`` goes to, layer by layer (text capped, checked)."""
    checked: CheckedText = check_text(text, max_chars=MAX_TEXT_CHARS)
    ids = vocab.encode(checked.text)
    layers = route_ids(model, ids)
    gates = np.stack([torch.zeros_like(li.scores).scatter_(-1, li.indices, li.weights.float()).numpy()
                      for li in layers])                                     # (L, T, N)
    top, n = gates.argmax(-1), gates.shape[-1]                               # (L, T)
    return TextRouting(
        tokens=tuple(checked.text),
        known=(ids > 0).numpy(),
        gates=gates,
        scores=np.stack([li.scores.numpy() for li in layers]),
        top_expert=top,
        load=np.stack([li.load.numpy() for li in layers]),
        max_vio=np.array([max_violation(li.load) for li in layers]),
        top_counts=np.stack([np.bincount(t, minlength=n) for t in top]),     # (L, N)
        truncated=checked.truncated,
        original_chars=checked.original_chars,
    )


def route_run_text(comp: Comparison, mode: str, text: str) -> TextRouting:
    """:func:`route_text` through run ``mode`` of a comparison (its model, its vocabulary)."""
    return route_text(comparison_run(comp, mode).model, comp.vocab, text)


MIN_LIFT = 1.5   # a character is an expert's favourite when it is routed there 1.5x as often as average
CHAR_CLASSES = (N_("space"), N_("vowel"), N_("consonant"), N_("capital"), N_("digit"), N_("punctuation"),
                N_("other"))


def char_class(ch: str) -> str:
    """Coarse class of one character, for the class x expert view."""
    if ch.isspace():
        return "space"
    if ch.isdigit():
        return "digit"
    if ch.isalpha() and ch.isascii():
        if ch.isupper():
            return "capital"
        return "vowel" if ch in "aeiou" else "consonant"
    if ch.isascii() and not ch.isalnum():
        return "punctuation"
    return "other"


@dataclass(frozen=True)
class ExpertProfile:
    expert: int                                   # routed expert index
    share: float                                  # fraction of routed pairs it received
    top: tuple[tuple[str, float, float], ...]     # (character, P(chosen | char), lift >= MIN_LIFT)


@dataclass(frozen=True)
class Specialisation:
    layer: int                        # 0-based MoE layer
    experts: tuple[ExpertProfile, ...]
    classes: tuple[str, ...]          # CHAR_CLASSES present in the sample
    class_rate: np.ndarray            # (C, N) P(expert chosen | class); rows sum to top_k
    tokens: int                       # characters analysed


def expert_specialisation(model: MoELM, vocab: CharVocab, ids: torch.Tensor, *,
                          n_tokens: int = 8192, top: int = 5, min_count: int = 20) -> list[Specialisation]:
    """Which characters each expert prefers, on a held-out sample: lift = P(e | c) / P(e)."""
    check_int("Sample size", n_tokens, 64, 200_000)
    ids = ids[:n_tokens].cpu()
    classes = np.array([CHAR_CLASSES.index(char_class(c)) for c in vocab.decode(range(vocab.size))])
    return [_specialise(li, layer, ids, vocab, classes, top, min_count)
            for layer, li in enumerate(route_ids(model, ids))]


def run_specialisation(comp: Comparison, mode: str) -> list[Specialisation]:
    """:func:`expert_specialisation` of run ``mode`` on the comparison's held-out characters."""
    return expert_specialisation(comparison_run(comp, mode).model, comp.vocab, comp.val)


def _specialise(li: MoEInternals, layer: int, ids: torch.Tensor, vocab: CharVocab,
                classes: np.ndarray, top: int, min_count: int) -> Specialisation:
    chosen = torch.zeros_like(li.scores).scatter_(-1, li.indices, 1.0).double()   # (T, N)
    per_char = torch.zeros(vocab.size, chosen.shape[1], dtype=torch.float64).index_add_(0, ids, chosen)
    occ = torch.bincount(ids, minlength=vocab.size).double()                        # (V,)
    base = chosen.mean(0)                                                           # (N,)
    rate = per_char / occ.clamp_min(1).unsqueeze(1)                                 # (V, N)
    lift = (rate / base.clamp_min(1e-12)).masked_fill((occ < min_count).unsqueeze(1), -1.0)
    chars = vocab.decode(range(vocab.size))
    profiles = []
    for e in range(chosen.shape[1]):
        best = [int(c) for c in lift[:, e].argsort(descending=True)[:top] if lift[c, e] >= MIN_LIFT]
        profiles.append(ExpertProfile(e, float(base[e] / base.sum()),
                                      tuple((chars[c], float(rate[c, e]), float(lift[c, e])) for c in best)))
    cls = torch.from_numpy(classes)[ids]                                            # (T,)
    present = sorted(set(cls.tolist()))
    class_rate = np.stack([chosen[cls == c].mean(0).numpy() for c in present])      # (C, N)
    return Specialisation(layer, tuple(profiles), tuple(CHAR_CLASSES[c] for c in present),
                          class_rate, len(ids))


# ============================================================== scale view of real models
@dataclass(frozen=True)
class ScaleView:
    name: str                  # model name
    n_routed: int              # routed experts per MoE layer
    n_shared: int              # shared experts per MoE layer
    top_k: int                 # routed experts per token
    n_group: int               # expert groups (nodes in V3's deployment)
    topk_group: int            # groups one token may reach
    moe_layers: int            # layers with a MoE
    dense_layers: int          # leading layers with a dense MLP
    expert_params: int         # parameters of one expert
    params: dict               # core.configs.param_count
    combinations: int          # expert sets a token can choose per layer, C(N, K)
    context: int               # tokens attended to, for the attention FLOPs
    flops: dict                # forward FLOPs per token by part, as routed
    flops_all_experts: dict    # the same if every routed expert ran for every token


def scale_view(preset: str, context: int = 4096) -> ScaleView:
    """DeepSeek-V3 (or another MoE preset): experts, active vs total, FLOPs per token."""
    check_text(preset, max_chars=40, name="Preset")
    if preset not in PRESETS or not PRESETS[preset].is_moe:
        moe = ", ".join(k for k, v in PRESETS.items() if v.is_moe)
        raise ValidationError(f"{str(preset)[:40]!r} is not a MoE preset; choose one of {moe}.")
    check_int("Context", context, 1, 1_000_000)
    cfg = PRESETS[preset]
    expert = mlp_params(cfg, cfg.moe_intermediate)
    return ScaleView(
        cfg.name, cfg.n_routed_experts, cfg.n_shared_experts, cfg.top_k, cfg.n_group,
        cfg.topk_group, cfg.moe_layers, cfg.first_k_dense, expert, param_count(cfg),
        math.comb(cfg.n_routed_experts, cfg.top_k), context,
        _flops_per_token(cfg, expert, context, cfg.top_k),
        _flops_per_token(cfg, expert, context, cfg.n_routed_experts))


def _flops_per_token(cfg, expert: int, context: int, experts_used: int) -> dict:
    """Forward FLOPs of one token (2 per multiply-add), by part; attention over ``context`` tokens."""
    if cfg.is_mla:
        qk, v = cfg.qk_nope_head_dim + cfg.qk_rope_head_dim, cfg.v_head_dim
    else:
        qk = v = cfg.head_dim
    return {
        N_("attention projections"): 2 * cfg.layers * attention_params(cfg),
        N_("attention over context"): 2 * cfg.layers * cfg.heads * (qk + v) * context,
        N_("dense MLP layers"): 2 * cfg.first_k_dense * mlp_params(cfg, cfg.intermediate),
        N_("shared experts"): 2 * cfg.moe_layers * cfg.n_shared_experts * expert,
        N_("routed experts"): 2 * cfg.moe_layers * experts_used * expert,
        N_("router"): 2 * cfg.moe_layers * cfg.n_routed_experts * cfg.hidden,
        N_("LM head"): 2 * cfg.vocab_size * cfg.hidden,
    }
