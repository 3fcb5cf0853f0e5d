"""Recurrent networks (RNN, LSTM, GRU) and a small causal Transformer, side by side.

Four character-level language models with comparable parameter budgets:

- vanilla RNN, h_t = tanh(W_ih x_t + W_hh h_{t-1} + b) (Elman 1990),
- LSTM (Hochreiter & Schmidhuber 1997; PyTorch's gate order i, f, g, o),
- GRU (Cho et al. 2014, Sec. 2.3; PyTorch's gate order r, z, n),

all three through ``torch.nn.RNN/LSTM/GRU`` so cuDNN runs them on a GPU, and a
pre-norm causal Transformer (Vaswani et al. 2017, Sec. 3; pre-norm as in
GPT-2 / Xiong et al. 2020) with sinusoidal positions (Sec. 3.5, no length
limit, no parameters): core.nn's DecoderLM, GPT-2-shaped, whose fused path is
``F.scaled_dot_product_attention`` and whose reference path (core.nn's "naive"
backend, an explicit softmax of QK^T/sqrt(d) under a causal mask) also returns
the attention probabilities. All models share one interface: ``forward(idx,
state=None)`` returns ``(logits, state)``, where ``state`` is the RNN's hidden
state or the Transformer's key/value cache (core.nn.KVCache), so generation is
written once (sampling: core.nn.sampling).

Also here: the parameter-budget matcher, live training on gensim's Wikipedia
sample (core.data.char_data, core.train), and the delayed-recall task ("output the
symbol seen k steps ago"; cf. the copy task of Hochreiter & Schmidhuber 1997,
Sec. 5, and Arjovsky et al. 2016, Sec. 4.1). For scale, ``llm_continuation`` lets a real
pretrained decoder (SmolLM2-135M, core/llm.py; Allal et al. 2025) continue the toy models' prompt.
Does not handle: dropout, bidirectional models, mixed precision, truncated
BPTT across batches (every training window starts from a zero state).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace

import torch
import torch.nn.functional as F
from torch import nn

from core.configs import param_count as config_param_count
from core.data.char_data import VOCAB_SIZE, CharCorpus, as_batch, decode, sample_batch
from core.nn import DecoderConfig, DecoderInternals, DecoderLM, KVCache, attend
from core.nn.decoder import sinusoidal_positions as sinusoidal_positions  # re-exported
from core.nn.sampling import SamplingConfig, next_token_distribution, sample_token
from core.runtime.device import cpu_threads, oom_guard
from core.runtime.scheduler import heavy_job
from core.runtime.text import N_
from core.runtime.validation import (
    ResourceError as ResourceError,  # re-exported: a full KV cache raises it
)
from core.runtime.validation import ValidationError, check_choice, check_float, check_int
from core.train import loop
from core.train.loop import optimizer_step, set_lr
from core.train.schedule import warmup_cosine

Progress = Callable[[float, str], None] | None

KINDS = ("rnn", "lstm", "gru", "transformer")
LABELS = {"rnn": "RNN", "lstm": "LSTM", "gru": "GRU", "transformer": "Transformer"}
GATES = {"rnn": 1, "lstm": 4, "gru": 3}        # weight blocks per recurrent layer
MAX_WIDTH = 2048                                # caps on model sizes ...
MAX_LAYERS = 6
MAX_BUDGET = 20_000_000                         # ... and parameter budgets
MIN_BUDGET = 2_000
MAX_TRAIN_STEPS = 5_000
MAX_TRAIN_BLOCK = 512                           # characters per training window
MAX_TRAIN_BATCH = 256
MAX_GENERATE = 4_000                            # new tokens per generate() call
LLM_MAX_TOKENS = 512                            # a real LLM's tokens per continuation (>= 1 char each)
LLM_TIME_LIMIT_S = 120.0                        # ... and its time limit (200 chars: ~3 s at 15 tokens/s)
MAX_TRAIN_SECONDS = 900.0                       # one training call, all models together
HEAD_DIM = 16                                   # Transformer head size chosen by the budget matcher


# ---------------------------------------------------------------- configs
@dataclass(frozen=True)
class RecurrentConfig:
    kind: str = "rnn"             # "rnn" | "lstm" | "gru" (set by the subclasses)
    vocab_size: int = VOCAB_SIZE  # tokens in and out
    d_embed: int = 128            # embedding width (input of the first layer)
    d_hidden: int = 128           # hidden-state width of every layer
    n_layers: int = 2             # stacked recurrent layers

    def __post_init__(self) -> None:
        check_choice("Recurrent cell", self.kind, tuple(GATES))
        fixed = type(self).__dataclass_fields__["kind"].default
        if type(self) is not RecurrentConfig and self.kind != fixed:
            raise ValidationError(f"{type(self).__name__} is a {fixed!r} model, not {self.kind!r}.")
        _check_common(self.vocab_size, self.n_layers)
        check_int("Embedding width", self.d_embed, 1, MAX_WIDTH)
        check_int("Hidden width", self.d_hidden, 1, MAX_WIDTH)


@dataclass(frozen=True)
class RNNConfig(RecurrentConfig):
    kind: str = "rnn"             # Elman RNN with tanh


@dataclass(frozen=True)
class LSTMConfig(RecurrentConfig):
    kind: str = "lstm"            # input, forget, cell and output gates


@dataclass(frozen=True)
class GRUConfig(RecurrentConfig):
    kind: str = "gru"             # reset and update gates


@dataclass(frozen=True)
class TransformerConfig:
    kind: str = "transformer"     # fixed
    vocab_size: int = VOCAB_SIZE  # tokens in and out
    d_model: int = 128            # residual-stream width
    n_heads: int = 4              # attention heads (d_model % n_heads == 0)
    n_layers: int = 2             # pre-norm blocks
    d_ff: int = 512               # MLP inner width

    def __post_init__(self) -> None:
        check_choice("Model kind", self.kind, ("transformer",))
        _check_common(self.vocab_size, self.n_layers)
        check_int("Model width", self.d_model, 2, MAX_WIDTH)
        check_int("Heads", self.n_heads, 1, 256)
        check_int("MLP width", self.d_ff, 1, 4 * MAX_WIDTH)
        if self.d_model % self.n_heads:
            raise ValidationError(f"Model width {self.d_model} is not divisible by {self.n_heads} heads.")


SeqConfig = RecurrentConfig | TransformerConfig


def _check_common(vocab_size: int, n_layers: int) -> None:
    check_int("Vocabulary size", vocab_size, 2, 1_000_000)
    check_int("Layers", n_layers, 1, MAX_LAYERS)


def make_config(kind: str, width: int, n_layers: int, vocab_size: int = VOCAB_SIZE,
                n_heads: int | None = None) -> SeqConfig:
    """The config of ``kind`` at ``width`` (hidden size = embedding size; Transformer d_ff = 4 d,
    ``n_heads`` default width // HEAD_DIM)."""
    kind = check_choice("Model kind", kind, KINDS)
    if kind == "transformer":
        heads = n_heads if n_heads is not None else max(1, width // HEAD_DIM)
        return TransformerConfig(vocab_size=vocab_size, d_model=width, n_heads=heads,
                                 n_layers=n_layers, d_ff=4 * width)
    cls = {"rnn": RNNConfig, "lstm": LSTMConfig, "gru": GRUConfig}[kind]
    return cls(vocab_size=vocab_size, d_embed=width, d_hidden=width, n_layers=n_layers)


def param_count(config: SeqConfig) -> int:
    """Parameters of the model built from ``config``, counted weight matrix by weight matrix."""
    V = config.vocab_size
    if isinstance(config, TransformerConfig):
        d, f = config.d_model, config.d_ff
        block = 2 * d + (3 * d * d + 3 * d) + (d * d + d) + 2 * d + (d * f + f) + (f * d + d)
        return V * d + config.n_layers * block + 2 * d + (d * V + V)
    E, H, g = config.d_embed, config.d_hidden, GATES[config.kind]
    layers = sum(g * H * ((E if i == 0 else H) + H) + 2 * g * H for i in range(config.n_layers))
    return V * E + layers + (H * V + V)


def configs_for_budget(budget: int, n_layers: int = 2, vocab_size: int = VOCAB_SIZE) -> dict[str, SeqConfig]:
    """One config per kind whose parameter count is closest to ``budget``.

    Recurrent widths are searched over multiples of 4 (embedding width =
    hidden width). The Transformer's width is a multiple of HEAD_DIM with
    width // HEAD_DIM heads (fused attention kernels want head sizes that are
    multiples of 8); its MLP width (1-8 x d, multiple of 4) absorbs the rest;
    among shapes within 1 % of the budget, the one with d_ff nearest 4 d wins.
    """
    budget = check_int("Parameter budget", budget, MIN_BUDGET, MAX_BUDGET)
    n_layers = check_int("Layers", n_layers, 1, MAX_LAYERS)
    out = {}
    for kind in KINDS[:3]:
        best = min(range(4, MAX_WIDTH + 1, 4), key=lambda w, k=kind: abs(
            param_count(make_config(k, w, n_layers, vocab_size)) - budget))
        out[kind] = make_config(kind, best, n_layers, vocab_size)
    out["transformer"] = _transformer_for_budget(budget, n_layers, vocab_size)
    return out


def _transformer_for_budget(budget: int, n_layers: int, vocab_size: int) -> TransformerConfig:
    """Parameters are linear in d_ff at a fixed width: solve for d_ff, then pick the best width."""
    best, best_key = None, None
    for d in range(HEAD_DIM, MAX_WIDTH + 1, HEAD_DIM):
        base = TransformerConfig(vocab_size=vocab_size, d_model=d, n_heads=d // HEAD_DIM,
                                 n_layers=n_layers, d_ff=4)
        per_ff = n_layers * (2 * d + 1)                   # each MLP unit: d in, d out, one bias
        fixed = param_count(base) - 4 * per_ff
        ff = round((budget - fixed) / per_ff / 4) * 4
        ff = min(max(ff, d), 8 * d)
        cfg = replace(base, d_ff=ff)
        err = abs(param_count(cfg) - budget)
        shape = abs(ff / d - 4)
        key = (0, shape, err) if err <= 0.01 * budget else (1, err, shape)   # within 1 %: usual shape
        if best_key is None or key < best_key:
            best, best_key = cfg, key
    return best


def describe(config: SeqConfig) -> str:
    """"2 x LSTM, hidden 96" / "2 blocks, d=64, 4 heads"."""
    if isinstance(config, TransformerConfig):
        blocks = "block" if config.n_layers == 1 else "blocks"
        heads = "head" if config.n_heads == 1 else "heads"
        return f"{config.n_layers} {blocks}, d={config.d_model}, {config.n_heads} {heads}, d_ff={config.d_ff}"
    return f"{config.n_layers} x {LABELS[config.kind]}, hidden {config.d_hidden}"


# ---------------------------------------------------------------- recurrent models
@dataclass
class RecurrentInternals:
    hidden: torch.Tensor          # (B, T, H) top-layer hidden states h_t


class RecurrentLM(nn.Module):
    """Embedding -> nn.RNN / nn.LSTM / nn.GRU (batch_first) -> linear head."""

    def __init__(self, config: RecurrentConfig) -> None:
        super().__init__()
        self.config = config
        cls = {"rnn": nn.RNN, "lstm": nn.LSTM, "gru": nn.GRU}[config.kind]
        self.embed = nn.Embedding(config.vocab_size, config.d_embed)
        self.rnn = cls(config.d_embed, config.d_hidden, num_layers=config.n_layers, batch_first=True)
        self.head = nn.Linear(config.d_hidden, config.vocab_size)

    def forward(self, idx: torch.Tensor, state=None, return_internals: bool = False):
        """Logits (B, T, V) and the new state ((L, B, H), or (h, c) for the LSTM)."""
        x = self.embed(idx)                          # (B, T, E)
        out, state = self.rnn(x, state)              # (B, T, H)
        logits = self.head(out)                      # (B, T, V)
        if return_internals:
            return logits, state, RecurrentInternals(hidden=out)
        return logits, state

    def step(self, x_embed: torch.Tensor, state):
        """One time step from an embedded input (B, 1, E): output (B, 1, H) and the new state."""
        return self.rnn(x_embed, state)


# ---------------------------------------------------------------- transformer
SINUSOIDAL_MAX_SEQ = 1 << 20    # sinusoidal positions have no table: only a bound on one input


@dataclass
class TransformerInternals:
    attention: list[torch.Tensor] = field(default_factory=list)   # per layer (B, H, T, S)


def decoder_config(config: TransformerConfig) -> DecoderConfig:
    """The GPT-2-shaped core.nn decoder of ``config``: LayerNorm, GELU MLP, biases, sinusoidal positions."""
    return DecoderConfig(vocab_size=config.vocab_size, d_model=config.d_model, n_layers=config.n_layers,
                         n_heads=config.n_heads, n_kv_heads=config.n_heads,
                         head_dim=config.d_model // config.n_heads, d_ff=config.d_ff, mlp="gelu",
                         norm="layernorm", positions="sinusoidal", max_seq=SINUSOIDAL_MAX_SEQ,
                         linear_bias=True, head_bias=True)


def _check_offset(q: torch.Tensor, k: torch.Tensor, offset: int) -> None:
    if offset != k.shape[2] - q.shape[2]:
        raise ValueError(f"queries sit at the end of the keys: offset {offset} != {k.shape[2] - q.shape[2]}")


def reference_attention(q, k, v, offset: int = 0):
    """Explicit causal attention (core.nn.attend, naive backend); query i sits at position offset + i
    of the keys (offset = S - T, a cache). q: (B, H, T, D), k, v: (B, H, S, D) -> (out, probs (B, H, T, S))."""
    _check_offset(q, k, offset)
    return attend(q, k, v, backend="naive", causal=True, return_probs=True)


def fused_attention(q, k, v, offset: int = 0):
    """The same attention through F.scaled_dot_product_attention (core.nn.attend, SDPA backend)."""
    _check_offset(q, k, offset)
    return attend(q, k, v, backend="sdpa", causal=True)[0]


class TransformerLM(DecoderLM):
    """core.nn's DecoderLM (token embedding + sinusoidal positions -> pre-norm blocks -> LayerNorm
    -> head) with the recurrent models' interface: ``forward(idx, state)`` -> (logits, state)."""

    def __init__(self, config: TransformerConfig) -> None:
        super().__init__(decoder_config(config))
        self.config = config

    def forward(self, idx: torch.Tensor, state: KVCache | None = None,
                return_internals: bool = False, reference: bool = False):
        """Logits (B, T, V) and the (updated) cache. ``return_internals`` uses the reference path."""
        offset = state.length if state is not None else 0
        x = self.embed_tokens(idx, torch.arange(offset, offset + idx.shape[1], device=idx.device))
        logits, internals = self.forward_embeddings(x, state, reference or return_internals)
        if return_internals:
            return logits, state, internals
        return logits, state

    def forward_embeddings(self, x: torch.Tensor, cache: KVCache | None = None,
                           reference: bool = False):
        """Blocks and head from embedded inputs (B, T, C); returns (logits, internals)."""
        inner = DecoderInternals() if reference else None
        x = self.run_blocks(x, cache=cache, backend="naive" if reference else "sdpa", internals=inner)
        attention = [b.probs for b in inner.blocks] if inner is not None else []
        return self.unembed(x), TransformerInternals(attention)              # (B, T, V)


def build_model(config: SeqConfig, device: torch.device | str = "cpu", seed: int = 0) -> nn.Module:
    """A freshly initialised model (PyTorch's default init, seeded) on ``device``."""
    gen_state = torch.random.get_rng_state()
    torch.manual_seed(seed)
    try:
        model = TransformerLM(config) if isinstance(config, TransformerConfig) else RecurrentLM(config)
    finally:
        torch.random.set_rng_state(gen_state)
    return model.to(device)


def n_params(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def init_state(model: nn.Module, batch: int, capacity: int, device) -> object:
    """The empty state for generation: None for RNNs (zeros), a KV cache of ``capacity`` positions
    for the Transformer (core.nn.KVCache; its buffers take the batch, dtype and device of the keys)."""
    if isinstance(model, TransformerLM):
        return KVCache(model.config.n_layers, capacity=capacity)
    return None


def state_nbytes(state) -> int:
    """Bytes held by a generation state (RNN hidden state or filled KV cache)."""
    if state is None:
        return 0
    if isinstance(state, KVCache):
        return state.nbytes()
    tensors = state if isinstance(state, tuple) else (state,)
    return sum(t.numel() * t.element_size() for t in tensors)


# ---------------------------------------------------------------- training
@dataclass(frozen=True)
class TrainConfig:
    steps: int = 300              # optimiser steps per model
    batch: int = 32               # training windows per step
    block: int = 64               # characters per window (backpropagation-through-time length)
    lr: float = 1e-2              # peak Adam learning rate (linear warm-up, cosine decay to 10 %)
    warmup: int = 20              # warm-up steps
    clip: float = 1.0             # gradient-norm clip (recurrent nets need it)
    eval_every: int = 50          # validation loss every this many steps (and at the end)
    eval_batches: int = 8         # validation windows = eval_batches x batch
    seed: int = 0                 # initialisation and batch order (same batches for every model)

    def __post_init__(self) -> None:
        check_int("Training steps", self.steps, 1, MAX_TRAIN_STEPS)
        check_int("Batch size", self.batch, 1, MAX_TRAIN_BATCH)
        check_int("Sequence length", self.block, 2, MAX_TRAIN_BLOCK)
        check_float("Learning rate", self.lr, 0.0, 1.0, lo_open=True)
        check_int("Warm-up steps", self.warmup, 0, MAX_TRAIN_STEPS)
        check_float("Gradient clip", self.clip, 0.0, 1e6, lo_open=True)
        check_int("Evaluation interval", self.eval_every, 1, MAX_TRAIN_STEPS)
        check_int("Evaluation batches", self.eval_batches, 1, 64)
        check_int("Seed", self.seed, 0, 2**31 - 1)


@dataclass
class History:
    steps: list[int] = field(default_factory=list)        # optimiser step of each train loss
    train_loss: list[float] = field(default_factory=list)  # nats per character, that batch
    val_steps: list[int] = field(default_factory=list)
    val_loss: list[float] = field(default_factory=list)    # nats per character, held-out text
    seconds: float = 0.0                                   # wall time of this model's steps
    tokens: int = 0                                        # characters trained on


@dataclass
class TrainedModels:
    models: dict[str, nn.Module]   # kind -> model (eval mode; read-only once returned)
    configs: dict[str, SeqConfig]  # kind -> its config
    history: dict[str, History]    # kind -> loss curves and time ({} when untrained)
    train: TrainConfig | None      # None: freshly initialised, not trained
    device: str
    unigram_entropy: float | None  # nats/char of the train text's characters (None if unknown)
    seed: int = 0                  # initialisation seed of fresh models (trained ones: train.seed)

    @property
    def key(self) -> str:
        """A string that identifies these weights, made from the frozen configs that built them
        (result caches hash a TrainedModels by it)."""
        return repr((sorted(self.configs.items()), self.train, self.device, self.seed))


def fresh_models(configs: dict[str, SeqConfig], device: torch.device | str,
                 seed: int = 0) -> TrainedModels:
    """The models at initialisation (same seeds as training), in eval mode."""
    models = {k: build_model(c, device, seed=seed).eval().requires_grad_(False)
              for k, c in configs.items()}
    return TrainedModels(models, dict(configs), {}, None, str(torch.device(device)), None, seed)


def lm_loss(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Mean next-token cross-entropy in nats; targets of -100 are ignored. (B, T, V), (B, T)."""
    return F.cross_entropy(logits.reshape(-1, logits.shape[-1]), targets.reshape(-1),
                           ignore_index=-100)


def lr_at(step: int, cfg: TrainConfig) -> float:
    """Linear warm-up to ``cfg.lr``, then cosine decay to 10 % of it at the last step (core.train)."""
    return warmup_cosine(step, cfg.steps, cfg.warmup, cfg.lr)


def train_step(model: nn.Module, opt: torch.optim.Optimizer, x, y, lr: float, clip: float) -> float:
    """One Adam step on a batch; returns the batch loss (nats/char)."""
    set_lr(opt, lr)
    logits, _ = model(x)                                   # (B, T, V)
    loss = lm_loss(logits, y)
    optimizer_step(opt, loss, model.parameters(), clip)
    return float(loss.detach())


@torch.no_grad()
def evaluate(model: nn.Module, batches: list[tuple[torch.Tensor, torch.Tensor]]) -> float:
    """Mean loss over fixed batches (nats/char)."""
    losses = [float(lm_loss(model(x)[0], y)) for x, y in batches]
    return sum(losses) / len(losses)


def train_models(configs: dict[str, SeqConfig], train: TrainConfig, corpus: CharCorpus,
                 device: torch.device | str, progress: Progress = None, on_wait=None,
                 time_limit_s: float = 300.0, threads: int | None = 1) -> TrainedModels:
    """Train every model on the same batches, step by step in lockstep, on ``device``.

    Runs as one heavy job (queued behind other heavy work on the device);
    out-of-memory becomes a ResourceError that says what to lower. On a CPU
    it runs with ``threads`` torch threads (see :func:`cpu_threads`).
    """
    if not configs:
        raise ValidationError("Pick at least one model to train.")
    limit = check_float("Time limit", time_limit_s, 1.0, MAX_TRAIN_SECONDS)
    with heavy_job("sequence-model training", device, time_limit_s=limit, on_wait=on_wait) as job, \
            oom_guard("Training", device, hint="Lower the batch, the sequence length or the budget."), \
            cpu_threads(device, threads):
        return _train_loop(configs, train, corpus, torch.device(device), progress, job)


def _train_loop(configs, train: TrainConfig, corpus: CharCorpus, device, progress, job) -> TrainedModels:
    models = {k: build_model(c, device, seed=train.seed) for k, c in configs.items()}
    opts = {k: torch.optim.Adam(m.parameters(), lr=train.lr, betas=(0.9, 0.99)) for k, m in models.items()}
    history = {k: History() for k in models}
    gen = torch.Generator().manual_seed(train.seed)
    val_gen = torch.Generator().manual_seed(train.seed + 1)
    val = [sample_batch(corpus.val, train.batch, train.block, val_gen, device)
           for _ in range(train.eval_batches)]

    def step(i: int) -> None:
        x, y = sample_batch(corpus.train, train.batch, train.block, gen, device)  # (B, T)
        for kind, model in models.items():                 # every model on the same batch
            t0 = time.perf_counter()
            loss = train_step(model, opts[kind], x, y, lr_at(i, train), train.clip)
            _record_train(history[kind], i + 1, loss, time.perf_counter() - t0, x.numel())

    loop.train(step, train.steps, job=job, evaluate=lambda done: _record_val(models, history, val, done),
               eval_at=loop.every_and_last(train.steps, train.eval_every), progress=progress,
               message=lambda done, _: _progress_text(done, train.steps, history))
    for model in models.values():
        model.eval().requires_grad_(False)
    return TrainedModels(models, dict(configs), history, train, str(device),
                         corpus.unigram_entropy_nats, train.seed)


def _record_train(h: History, step: int, loss: float, seconds: float, tokens: int) -> None:
    h.seconds += seconds
    h.tokens += tokens
    h.steps.append(step)
    h.train_loss.append(loss)


def _record_val(models, history, val, step: int) -> None:
    for kind, model in models.items():
        history[kind].val_steps.append(step)
        history[kind].val_loss.append(evaluate(model, val))


def _progress_text(step: int, total: int, history: dict[str, History]) -> str:
    losses = " · ".join(f"{LABELS[k]} {h.train_loss[-1]:.2f}" for k, h in history.items())
    return N_(f"Step {step:,}/{total:,} · train loss (nats/char): {losses}")


# ---------------------------------------------------------------- generation
def _next_token(logits: torch.Tensor, cfg: SamplingConfig, gen: torch.Generator | None) -> torch.Tensor:
    """(B, V) -> (B,): the argmax when greedy (no draw), else a draw after core.nn.sampling's filters."""
    if cfg.temperature == 0:
        return logits.argmax(dim=-1)
    return sample_token(next_token_distribution(logits, cfg), gen)


@torch.no_grad()
def generate(model: nn.Module, prompt: torch.Tensor, n_new: int, *, temperature: float = 0.8,
             top_k: int | None = None, seed: int = 0) -> tuple[torch.Tensor, int]:
    """Continue ``prompt`` (B, P) by ``n_new`` tokens, carrying the state (RNN: h_t; Transformer:
    KV cache). Returns the new tokens (B, n_new) and the bytes of the final state.
    """
    n_new = check_int("Tokens to generate", n_new, 1, MAX_GENERATE)
    temperature = check_float("Temperature", temperature, 0.0, 10.0)
    if prompt.ndim != 2 or prompt.shape[1] < 1:
        raise ValidationError("The prompt needs at least one character.")
    device = prompt.device
    sampling = SamplingConfig(temperature, top_k, None, seed)
    gen = torch.Generator(device=device).manual_seed(seed) if temperature > 0 else None
    state = init_state(model, prompt.shape[0], prompt.shape[1] + n_new, device)
    logits, state = model(prompt, state)                            # (B, P, V)
    out = torch.empty(prompt.shape[0], n_new, dtype=torch.long, device=device)
    for i in range(n_new):
        out[:, i] = _next_token(logits[:, -1], sampling, gen)
        if i + 1 < n_new:
            logits, state = model(out[:, i:i + 1], state)           # (B, 1, V)
    return out, state_nbytes(state)


def continue_text(model: nn.Module, prompt_ids, n_new: int = 200, *, temperature: float = 0.8,
                  top_k: int | None = None, seed: int = 0, threads: int | None = 1) -> str:
    """A sampled continuation of a prompt (character ids) as text."""
    device = next(model.parameters()).device
    prompt = as_batch(prompt_ids, device)                           # (1, P)
    with cpu_threads(device, threads):
        out, _ = generate(model, prompt, n_new, temperature=temperature, top_k=top_k, seed=seed)
    return decode(out[0].tolist())


def continue_all(trained: TrainedModels, prompt_ids, n_new: int = 200, *, temperature: float = 0.8,
                 seed: int = 0) -> dict[str, str]:
    """Every model's continuation of the same prompt (kind -> text), same temperature and seed."""
    return {kind: continue_text(model, prompt_ids, n_new, temperature=temperature, seed=seed)
            for kind, model in trained.models.items()}


@dataclass(frozen=True)
class LLMContinuation:
    text: str               # the continuation, cut at the characters asked for
    tokens: int             # BPE tokens generated for it
    params: int             # the model's parameters (core.configs.param_count)
    vocab: int              # the tokens it reads and writes (its vocabulary)
    seconds: float          # wall time of the generation
    stopped: bool           # the model ended its text (EOS, not in ``text``) before the characters


def llm_continuation(lm, prompt: str, n_chars: int, *, temperature: float = 0.8, seed: int = 0,
                     on_wait=None, time_limit_s: float = LLM_TIME_LIMIT_S) -> LLMContinuation:
    """A real pretrained LLM (core.llm.PretrainedLM) continues the same prompt as plain text, token
    by token with its KV cache, until the new text is ``n_chars`` characters (or it ends it).

    Same temperature and seed as the toy models (0: greedy); one heavy job on the model's device."""
    n_chars = check_int("Characters", n_chars, 1, MAX_GENERATE)
    sampling = SamplingConfig(check_float("Temperature", temperature, 0.0, 10.0), None, None, seed)
    ids, new = lm.encode(prompt), []
    started, text = time.perf_counter(), ""
    with heavy_job("LLM continuation", lm.device, time_limit_s=time_limit_s, on_wait=on_wait) as job:
        for step in lm.stream(ids, min(n_chars, LLM_MAX_TOKENS), sampling, job=job):
            new.append(step.token_id)
            text = lm.decode(new)
            if len(text) >= n_chars:
                break
    stopped = bool(new) and new[-1] in lm.info.eos_ids
    if stopped:                                        # the end-of-text token is not text
        text = lm.decode(new[:-1])
    return LLMContinuation(text[:n_chars], len(new), config_param_count(lm.config)["total"],
                           lm.config.vocab_size, time.perf_counter() - started, stopped)


@torch.no_grad()
def generate_recompute(model: nn.Module, prompt: torch.Tensor, n_new: int) -> torch.Tensor:
    """Greedy continuation that re-runs the whole prefix every step (no state, no cache):
    the readable reference for :func:`generate` and the "no KV cache" timing. (B, n_new)."""
    n_new = check_int("Tokens to generate", n_new, 1, MAX_GENERATE)
    seq = prompt
    for _ in range(n_new):
        logits, _ = model(seq)                                      # (B, t, V)
        seq = torch.cat([seq, logits[:, -1].argmax(dim=-1, keepdim=True)], dim=1)
    return seq[:, prompt.shape[1]:]




# ---------------------------------------------------------------- delayed recall
MAX_DELAY = 256
MAX_RECALL_RUNS = 64              # (model, delay) trainings per call
RECALL_WARMUP = 20                # warm-up steps of each recall training


@dataclass(frozen=True)
class RecallConfig:
    delays: tuple[int, ...] = (1, 2, 4, 8, 16, 32)   # k: output the symbol seen k steps ago
    n_symbols: int = 8            # random input symbols; chance accuracy = 1 / n_symbols
    seq_len: int = 64             # positions per sequence (targets from position k on)
    budget: int = 20_000          # parameters per model (matched as for the language models)
    n_layers: int = 1             # layers per model
    steps: int = 300              # Adam steps per (model, delay)
    batch: int = 32               # sequences per step
    lr: float = 3e-3              # Adam learning rate (constant after a 20-step warm-up)
    eval_batches: int = 4         # fresh batches for the accuracy
    seed: int = 0

    def __post_init__(self) -> None:
        if not self.delays or len(set(self.delays)) != len(self.delays):
            raise ValidationError("Pick at least one delay k (each once).")
        for k in self.delays:
            check_int("Delay k", k, 1, MAX_DELAY)
        check_int("Symbols", self.n_symbols, 2, 64)
        check_int("Sequence length", self.seq_len, max(self.delays) + 1, MAX_TRAIN_BLOCK)
        check_int("Parameter budget", self.budget, MIN_BUDGET, 1_000_000)
        check_int("Layers", self.n_layers, 1, MAX_LAYERS)
        check_int("Steps", self.steps, 1, MAX_TRAIN_STEPS)
        check_int("Batch size", self.batch, 1, MAX_TRAIN_BATCH)
        check_float("Learning rate", self.lr, 0.0, 1.0, lo_open=True)
        check_int("Evaluation batches", self.eval_batches, 1, 64)


@dataclass(frozen=True)
class RecallResult:
    rows: tuple[dict, ...]        # {"kind", "delay", "accuracy", "loss", "seconds"} per run
    chance: float                 # 1 / n_symbols
    configs: dict                 # kind -> model config used


def recall_batch(cfg: RecallConfig, delay: int, gen: torch.Generator, device) -> tuple:
    """Random symbols (B, T) and targets (B, T): x[t - delay] from t = delay on, -100 before."""
    x = torch.randint(0, cfg.n_symbols, (cfg.batch, cfg.seq_len), generator=gen)   # (B, T)
    y = torch.full_like(x, -100)
    y[:, delay:] = x[:, :-delay]                                                   # (B, T)
    return x.to(device), y.to(device)


@torch.no_grad()
def recall_accuracy(model: nn.Module, cfg: RecallConfig, delay: int, gen, device) -> float:
    """Share of positions t >= delay where the argmax output is x[t - delay]."""
    hits = total = 0
    for _ in range(cfg.eval_batches):
        x, y = recall_batch(cfg, delay, gen, device)
        pred = model(x)[0].argmax(dim=-1)                          # (B, T)
        keep = y != -100
        hits += int((pred[keep] == y[keep]).sum())
        total += int(keep.sum())
    return hits / total


def run_recall(cfg: RecallConfig, kinds: tuple[str, ...], device, progress: Progress = None,
               on_wait=None, time_limit_s: float = 300.0, threads: int | None = 1) -> RecallResult:
    """Train one fresh model per (kind, delay) on the recall task; accuracy on fresh sequences."""
    kinds = tuple(check_choice("Model kind", k, KINDS) for k in kinds)
    if not kinds or len(kinds) * len(cfg.delays) > MAX_RECALL_RUNS:
        raise ValidationError(f"Pick 1 to {MAX_RECALL_RUNS} (model, delay) runs.")
    configs = configs_for_budget(cfg.budget, cfg.n_layers, vocab_size=cfg.n_symbols)
    limit = check_float("Time limit", time_limit_s, 1.0, MAX_TRAIN_SECONDS)
    runs = [(kind, k) for kind in kinds for k in cfg.delays]
    rows = []
    with heavy_job("delayed-recall training", device, time_limit_s=limit, on_wait=on_wait) as job, \
            oom_guard("The recall task", device, hint="Lower the budget or the batch."), \
            cpu_threads(device, threads):
        for i, (kind, k) in enumerate(runs):
            rows.append(_recall_run(configs[kind], cfg, k, torch.device(device), job))
            if progress:
                progress((i + 1) / len(runs), N_(f"{LABELS[kind]}, k = {k}: accuracy "
                                                 f"{rows[-1]['accuracy']:.0%} ({i + 1}/{len(runs)})"))
    return RecallResult(tuple(rows), 1.0 / cfg.n_symbols, {k: configs[k] for k in kinds})


def _recall_run(config: SeqConfig, cfg: RecallConfig, delay: int, device, job) -> dict:
    model = build_model(config, device, seed=cfg.seed)
    opt = torch.optim.Adam(model.parameters(), lr=cfg.lr, betas=(0.9, 0.99))
    gen = torch.Generator().manual_seed(cfg.seed * 1000 + delay)

    def step(i: int) -> float:
        x, y = recall_batch(cfg, delay, gen, device)
        lr = warmup_cosine(i, cfg.steps, RECALL_WARMUP, cfg.lr, floor=1.0)   # warm-up, then constant
        return train_step(model, opt, x, y, lr, clip=1.0)

    t0 = time.perf_counter()
    loss = loop.train(step, cfg.steps, job=job).steps[-1]
    seconds = time.perf_counter() - t0
    eval_gen = torch.Generator().manual_seed(10**6 + delay)
    acc = recall_accuracy(model, cfg, delay, eval_gen, device)
    return {"kind": config.kind, "delay": delay, "accuracy": acc, "loss": loss, "seconds": seconds}
