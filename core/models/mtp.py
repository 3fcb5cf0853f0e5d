"""Multi-token prediction (MTP) as in DeepSeek-V3, trained live, and self-speculative decoding.

DeepSeek-V3 (arXiv:2412.19437, section 2.2, eqs. 21-25) keeps the causal chain
when it predicts several tokens ahead: D sequential MTP modules, module k taking
the previous depth's hidden state at position i and the embedding of token i+k,

    h'_i^k = M_k [RMSNorm(h_i^{k-1}); RMSNorm(Emb(t_{i+k}))]          (eq. 21)
    h_{1:T-k}^k = TRM_k(h'_{1:T-k}^k)                                  (eq. 22)
    P_{i+k+1}^k = OutHead(h_i^k)                                       (eq. 23)
    L_MTP = lambda / D * sum_k CE(P^k, t)                              (eqs. 24-25)

with the embedding and output head shared with the main model (h^0 is the main
model's last hidden state). At inference the modules can be dropped, or used to
draft tokens for speculative decoding (section 5.4.3: 85-90 % acceptance of the
second token, 1.8x tokens per second).

Here: a small character-level transformer (core.nn's pre-norm blocks: RMSNorm, RoPE,
sliding-window causal attention, GELU MLP) trained on gensim's Wikipedia sample
(core.data.char_data's 97-character vocabulary; core.train's loop and schedule), and
self-speculative greedy decoding: the MTP modules draft D tokens, one main-model
forward pass verifies them all, the longest prefix that agrees with the main
model's own greedy choice is kept, plus the main model's next token. The output
is identical to plain greedy decoding; what changes is the number of main-model
forward passes. The sliding window (= the training context) makes every output
depend on a bounded past, so decoding feeds only the last L x (W - 1) + 1 tokens
(absolute positions kept for RoPE) and costs the same at any length.

Does not handle: KV caching (each pass re-runs its bounded window), sampling
(greedy only), subword tokens, batching several prompts.
"""

from __future__ import annotations

import copy
import functools
import time
from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from core.data import char_data
from core.data.char_data import UNK as UNK  # re-exported: the unknown character
from core.data.char_data import UNK_ID, VOCAB, decode, even_windows, random_windows
from core.nn import DecoderBlock, RMSNorm, rope_cos_sin, window_mask
from core.nn.attention import AttentionShape
from core.runtime.device import oom_guard
from core.runtime.scheduler import heavy_job
from core.runtime.text import N_
from core.runtime.validation import ValidationError, check_float, check_int, check_text
from core.train import loop
from core.train.loop import optimizer_step, set_lr
from core.train.schedule import default_warmup, warmup_cosine

# ---- caps enforced inside the functions
MAX_STEPS = 3000
MAX_DEPTH = 4
MAX_LAYERS = 4
MAX_D_MODEL = 256
MAX_WINDOW = 128
MAX_BATCH = 64
MAX_CORPUS_CHARS = 3_000_000
MAX_PROMPT_CHARS = 300
MAX_NEW_TOKENS = 400
TRAIN_TIME_LIMIT_S = 600.0

NORM_EPS = 1e-6                                   # RMSNorm epsilon
Progress = Callable[[float, str], None]
_SUB = "₀₁₂₃₄₅₆₇₈₉"                               # subscript digits for column names


# ---------------------------------------------------------------- configs
@dataclass(frozen=True)
class MTPConfig:
    vocab_size: int = len(VOCAB)   # characters (printable ASCII, newline, unknown)
    d_model: int = 128             # width of the main model and the MTP modules
    n_layers: int = 2              # main-model transformer blocks
    n_heads: int = 4               # attention heads per block
    mtp_depth: int = 2             # D: sequential MTP modules (extra tokens predicted)
    window: int = 64               # attention window = training context (tokens)
    ff_mult: int = 4               # MLP inner width = ff_mult x d_model
    rope_theta: float = 10000.0    # RoPE base


@dataclass(frozen=True)
class TrainConfig:
    steps: int = 400               # optimizer steps
    batch: int = 16                # windows per step
    lr: float = 3e-3               # peak AdamW learning rate (warm-up, then cosine)
    mtp_lambda: float = 0.3        # weight of the MTP loss (DeepSeek-V3: 0.3, later 0.1)
    seed: int = 0                  # initialisation and batch order
    corpus_chars: int = 1_500_000  # characters of the Wikipedia sample used (90 % train)
    eval_windows: int = 64         # held-out windows for per-depth accuracy


def validate_configs(cfg: MTPConfig, train: TrainConfig | None = None) -> None:
    check_int("Model width", cfg.d_model, 16, MAX_D_MODEL)
    check_int("Layers", cfg.n_layers, 1, MAX_LAYERS)
    check_int("Heads", cfg.n_heads, 1, 16)
    check_int("MTP depth", cfg.mtp_depth, 1, MAX_DEPTH)
    check_int("Window", cfg.window, 8, MAX_WINDOW)
    check_int("MLP multiplier", cfg.ff_mult, 1, 8)
    if cfg.vocab_size != len(VOCAB):
        raise ValidationError(f"vocab_size must be {len(VOCAB)} (the character vocabulary).")
    if cfg.d_model % cfg.n_heads or (cfg.d_model // cfg.n_heads) % 2:
        raise ValidationError("Heads must divide the width into an even head size.")
    if train is not None:
        check_int("Steps", train.steps, 1, MAX_STEPS)
        check_int("Batch", train.batch, 1, MAX_BATCH)
        check_float("Learning rate", train.lr, 0.0, 0.1, lo_open=True)
        check_float("MTP loss weight", train.mtp_lambda, 0.0, 10.0)
        check_int("Seed", train.seed, 0, 2**31 - 1)
        check_int("Corpus characters", train.corpus_chars, 10_000, MAX_CORPUS_CHARS)
        check_int("Evaluation windows", train.eval_windows, 1, 512)


# ---------------------------------------------------------------- characters
def encode(text: str) -> list[int]:
    """Character ids (core.data.char_data: folded towards ASCII; characters outside become UNK)."""
    return list(char_data.encode(text).ids)


# ---------------------------------------------------------------- model
@functools.lru_cache(maxsize=512)
def _rope_table(start_pos: int, T: int, dh: int, theta: float, device: str, dtype: torch.dtype):
    """cos, sin (T, Dh/2) for positions start_pos..start_pos+T-1: core.nn.rope, angles in float64
    (cached: decoding asks again and again)."""
    pos = torch.arange(start_pos, start_pos + T, device=device)
    return rope_cos_sin(pos, dh, theta, dtype, angles_dtype=torch.float64)


@functools.lru_cache(maxsize=256)
def _window_mask(T: int, window: int, device: str) -> torch.Tensor:
    """(T, T) bool: position i sees j when i - window < j <= i (core.nn.masks, cached)."""
    return window_mask(T, window, device)


class Block(DecoderBlock):
    """core.nn's pre-norm block (RMSNorm, RoPE, GELU MLP, no biases) under the sliding-window mask."""

    def __init__(self, cfg: MTPConfig) -> None:
        d = cfg.d_model
        super().__init__(AttentionShape(d, cfg.n_heads, cfg.n_heads, d // cfg.n_heads), d_ff=cfg.ff_mult * d,
                         mlp="gelu", norm="rmsnorm", norm_eps=NORM_EPS)
        self.cfg = cfg

    def forward(self, x: torch.Tensor, start_pos: int = 0) -> torch.Tensor:
        """x (B, T, d) at absolute positions start_pos .. start_pos + T - 1 -> (B, T, d)."""
        T, dev, c = x.shape[1], str(x.device), self.cfg
        rope = _rope_table(start_pos, T, c.d_model // c.n_heads, c.rope_theta, dev, x.dtype)
        return super().forward(x, rope=rope, causal=False, mask=_window_mask(T, c.window, dev))[0]


class MTPModule(nn.Module):
    """Depth k: M_k [RMSNorm(h^{k-1}); RMSNorm(Emb(t_{i+k}))] -> one block (eqs. 21-22)."""

    def __init__(self, cfg: MTPConfig) -> None:
        super().__init__()
        self.h_norm, self.e_norm = RMSNorm(cfg.d_model, NORM_EPS), RMSNorm(cfg.d_model, NORM_EPS)
        self.merge = nn.Linear(2 * cfg.d_model, cfg.d_model, bias=False)       # M_k (d x 2d)
        self.block = Block(cfg)
        self.out_norm = RMSNorm(cfg.d_model, NORM_EPS)                        # before the shared head

    def forward(self, h_prev: torch.Tensor, emb_ahead: torch.Tensor, start_pos: int = 0):
        merged = self.merge(torch.cat([self.h_norm(h_prev), self.e_norm(emb_ahead)], dim=-1))
        return self.block(merged, start_pos)                                  # (B, T-k, d)


@dataclass
class MTPOutput:
    logits: list[torch.Tensor]       # depth 0 (main) .. D: (B, T - k, V); depth k predicts t_{i+k+1}
    hidden: list[torch.Tensor]       # h^0 .. h^D: (B, T - k, d)


class MTPModel(nn.Module):
    """Main model (embedding, blocks, norm, head) plus D sequential MTP modules sharing Emb and head."""

    def __init__(self, cfg: MTPConfig) -> None:
        super().__init__()
        validate_configs(cfg)
        self.cfg = cfg
        self.embed = nn.Embedding(cfg.vocab_size, cfg.d_model)
        self.blocks = nn.ModuleList(Block(cfg) for _ in range(cfg.n_layers))
        self.norm = RMSNorm(cfg.d_model, NORM_EPS)
        self.head = nn.Linear(cfg.d_model, cfg.vocab_size, bias=False)        # shared OutHead
        self.mtp = nn.ModuleList(MTPModule(cfg) for _ in range(cfg.mtp_depth))
        self.apply(self._init)

    @staticmethod
    def _init(m: nn.Module) -> None:
        if isinstance(m, nn.Linear | nn.Embedding):
            nn.init.normal_(m.weight, std=0.02)

    def trunk(self, tokens: torch.Tensor, start_pos: int = 0) -> torch.Tensor:
        """h^0 (B, T, d): the main model's last hidden state (before its final norm)."""
        x = self.embed(tokens)                                                # (B, T, d)
        for block in self.blocks:
            x = block(x, start_pos)
        return x

    def main_logits(self, h0: torch.Tensor) -> torch.Tensor:
        return self.head(self.norm(h0))                                       # (B, T, V)

    def mtp_step(self, k: int, h_prev: torch.Tensor, tokens_ahead: torch.Tensor, start_pos: int = 0):
        """Depth k (1-based): hidden h^k and logits for t_{i+k+1} from h^{k-1}_i and t_{i+k}."""
        module = self.mtp[k - 1]
        h = module(h_prev, self.embed(tokens_ahead), start_pos)
        return h, self.head(module.out_norm(h))

    def forward(self, tokens: torch.Tensor) -> MTPOutput:
        """tokens (B, T+1): inputs t_0..t_{T-1}; depth k reads t_k..t_{T-1} (its sequence is T - k long)."""
        x = tokens[:, :-1]                                                    # (B, T)
        T = x.shape[1]
        h = self.trunk(x)
        hidden, logits = [h], [self.main_logits(h)]
        for k in range(1, self.cfg.mtp_depth + 1):
            h, lg = self.mtp_step(k, h[:, : T - k], x[:, k:])                 # (B, T-k, d), (B, T-k, V)
            hidden.append(h)
            logits.append(lg)
        return MTPOutput(logits, hidden)


def mtp_targets(tokens: torch.Tensor, depth: int) -> list[torch.Tensor]:
    """Targets per depth for tokens (B, T+1): depth k at position i predicts t_{i+k+1}: (B, T - k)."""
    return [tokens[:, k + 1:] for k in range(depth + 1)]


def mtp_losses(model: MTPModel, tokens: torch.Tensor, mtp_lambda: float):
    """(total loss, per-depth cross-entropies): L_main + lambda / D * sum_k L_MTP^k (eqs. 24-25)."""
    out = model(tokens)
    losses = [F.cross_entropy(lg.reshape(-1, lg.shape[-1]), tg.reshape(-1))
              for lg, tg in zip(out.logits, mtp_targets(tokens, model.cfg.mtp_depth), strict=True)]
    total = losses[0] + mtp_lambda / model.cfg.mtp_depth * torch.stack(losses[1:]).sum()
    return total, [float(loss.detach()) for loss in losses]


# ---------------------------------------------------------------- data
def corpus_ids(chars: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(train, val) id tensors from the first ``chars`` characters of the Wikipedia sample (90/10)."""
    corpus = char_data.wiki_corpus(check_int("Corpus characters", chars, 10_000, MAX_CORPUS_CHARS))
    return corpus.train, corpus.val


# ---------------------------------------------------------------- training
@dataclass
class TrainedMTP:
    model: MTPModel                  # eval mode, float32, on ``device``; read-only once returned
    config: MTPConfig
    train_config: TrainConfig
    history: list[dict]              # step, lr, loss_0 .. loss_D (training batches)
    evals: list[dict]                # step, acc_0 .. acc_D, loss_0 .. loss_D (held-out windows)
    seconds: float                   # training wall time
    tokens_seen: int                 # characters consumed as main-model inputs
    device: str

    @property
    def final(self) -> dict:
        return self.evals[-1]


@torch.no_grad()
def evaluate(model: MTPModel, windows: torch.Tensor) -> dict:
    """Per-depth accuracy and cross-entropy on held-out windows (B, T+1), and for k >= 1 how often
    depth k's guess for t_{i+k+1} equals the main head's own greedy guess for that token (``agree_k``:
    the draft acceptance rate on real text, given the earlier tokens were right)."""
    was_training = model.training
    model.eval()
    out = model(windows)
    main_guess = out.logits[0].argmax(-1)                                     # (B, T)
    result = {}
    for k, (lg, tg) in enumerate(zip(out.logits, mtp_targets(windows, model.cfg.mtp_depth), strict=True)):
        guess = lg.argmax(-1)                                                 # (B, T - k)
        result[f"acc_{k}"] = float((guess == tg).float().mean())
        result[f"loss_{k}"] = float(F.cross_entropy(lg.reshape(-1, lg.shape[-1]), tg.reshape(-1)))
        if k:
            result[f"agree_{k}"] = float((guess == main_guess[:, k:]).float().mean())
    model.train(was_training)
    return result


def train_mtp(cfg: MTPConfig, train: TrainConfig, *, device="cpu", progress: Progress | None = None,
              on_wait=None) -> TrainedMTP:
    """Train the main model and its MTP modules together on the Wikipedia sample (a heavy job)."""
    validate_configs(cfg, train)
    train_ids, val_ids = corpus_ids(train.corpus_chars)
    torch.manual_seed(train.seed)
    model = MTPModel(cfg)
    with heavy_job("MTP training", device, time_limit_s=TRAIN_TIME_LIMIT_S, on_wait=on_wait) as job, \
            oom_guard("MTP training", device, "Lower the width, batch or window."):
        model.to(device).train()
        val = even_windows(val_ids, train.eval_windows, cfg.window + 1).to(device)
        history, evals, started = [], [], time.perf_counter()
        _train_loop(model, train, train_ids, val, history, evals, job, progress)
        model.eval()
    seconds = time.perf_counter() - started
    return TrainedMTP(model, cfg, train, history, evals, seconds,
                      train.steps * train.batch * cfg.window, str(device))


def _train_loop(model, train: TrainConfig, train_ids, val, history, evals, job, progress) -> None:
    cfg, device = model.cfg, val.device
    opt = torch.optim.AdamW(model.parameters(), lr=train.lr, betas=(0.9, 0.95), weight_decay=0.1)
    gen = torch.Generator().manual_seed(train.seed)
    warm, started = default_warmup(train.steps), time.perf_counter()

    def step(i: int) -> float:
        lr = warmup_cosine(i, train.steps, warm, train.lr, floor=0.0)      # warm-up, cosine to 0
        set_lr(opt, lr)
        batch = random_windows(train_ids, train.batch, cfg.window + 1, gen).to(device)
        total, parts = mtp_losses(model, batch, train.mtp_lambda)
        optimizer_step(opt, total, model.parameters(), clip=1.0)
        history.append({"step": i + 1, "lr": lr, **{f"loss_{k}": v for k, v in enumerate(parts)}})
        return parts[0]

    def message(done: int, main_loss: float) -> str:
        left = (time.perf_counter() - started) / done * (train.steps - done)
        return N_(f"step {done}/{train.steps} · main loss {main_loss:.3f} · about {left:.0f} s left")

    eval_at = {round(train.steps * f) for f in (0.25, 0.5, 0.75)} | {train.steps}
    log = loop.train(step, train.steps, job=job, evaluate=lambda done: evaluate(model, val),
                     eval_at=eval_at, progress=progress, progress_every=5, message=message)
    evals.extend({"step": done, **result} for done, result in log.evals)


# ---------------------------------------------------------------- decoding
@dataclass(frozen=True)
class DecodeStats:
    tokens: tuple[int, ...]          # generated ids
    sources: tuple[int, ...]         # per token: 0 = the main model's own token, k = accepted draft of depth k
    per_pass: tuple[int, ...]        # tokens committed by each main-model forward pass
    proposed: tuple[int, ...]        # per depth: drafts checked (all earlier drafts of that step accepted)
    accepted: tuple[int, ...]        # per depth: drafts the main model agreed with
    draft_passes: int                # MTP-module forward passes
    seconds: float                   # wall time of the whole decode
    main_seconds: float              # of which in main-model passes

    @property
    def main_passes(self) -> int:
        return len(self.per_pass)

    @property
    def tokens_per_pass(self) -> float:
        return len(self.tokens) / max(1, self.main_passes)

    @property
    def acceptance(self) -> tuple[float | None, ...]:
        """Per depth: accepted / proposed (conditional on the earlier drafts being accepted)."""
        return tuple(a / p if p else None for a, p in zip(self.accepted, self.proposed, strict=True))


def check_prompt(text: str):
    """The prompt as CheckedText (capped at MAX_PROMPT_CHARS) and its ids; unknown characters counted."""
    checked = check_text(text, max_chars=MAX_PROMPT_CHARS, name="Prompt")
    ids = encode(checked.text)
    return checked, ids, sum(1 for i in ids if i == UNK_ID)


@torch.no_grad()
def greedy_reference(model: MTPModel, prompt_ids: list[int], max_new: int) -> list[int]:
    """Readable reference: greedy decoding that re-runs the main model over the whole sequence."""
    seq = list(prompt_ids)
    device = next(model.parameters()).device
    for _ in range(max_new):
        h0 = model.trunk(torch.tensor([seq], device=device))
        seq.append(int(model.main_logits(h0[:, -1]).argmax(-1)))
    return seq[len(prompt_ids):]


def _reach(model: MTPModel) -> int:
    """Receptive field of one layer: a sliding window of W reaches W - 1 positions back."""
    return model.cfg.window - 1


def _main_pass(model: MTPModel, seq: list[int], start: int):
    """Trunk over seq[start:] at absolute positions: hidden (1, n, d) and greedy next tokens (n,)."""
    device = next(model.parameters()).device
    h0 = model.trunk(torch.tensor([seq[start:]], device=device), start_pos=start)
    return h0, model.main_logits(h0)[0].argmax(-1).tolist()


def _draft(model: MTPModel, h0: torch.Tensor, h0_start: int, seq: list[int], depth: int) -> list[int]:
    """Draft ``depth`` tokens after seq (whose last token has no trunk state yet) with the MTP chain."""
    p = len(seq) - 2                                   # last position with a trunk state
    a = max(h0_start, p - depth * _reach(model))       # enough past for depth sliding windows
    h = h0[:, a - h0_start: p - h0_start + 1]          # (1, p - a + 1, d)
    ext, drafts = list(seq), []
    for k in range(1, depth + 1):
        ahead = torch.tensor([ext[a + k: p + k + 1]], device=h0.device)   # t_{i+k} for i in [a, p]
        h, logits = model.mtp_step(k, h, ahead, start_pos=a)
        drafts.append(int(logits[0, -1].argmax()))
        ext.append(drafts[-1])
    return drafts


@torch.no_grad()
def speculative_decode(model: MTPModel, prompt_ids: list[int], max_new: int, drafts: int) -> DecodeStats:
    """Greedy decoding; with drafts > 0 the MTP modules propose and one main pass verifies them all.

    Invariant: ``seq`` ends with the newest committed token y (not yet fed to the
    trunk); ``h0`` holds exact trunk states for positions start .. len(seq) - 2.
    """
    max_new = check_int("New tokens", max_new, 1, MAX_NEW_TOKENS)
    drafts = check_int("Drafted tokens", drafts, 0, model.cfg.mtp_depth)
    if not prompt_ids:
        raise ValidationError("The prompt is empty.")
    reach = (drafts + model.cfg.n_layers) * _reach(model)
    started = time.perf_counter()
    seq = list(prompt_ids)
    start = max(0, len(seq) - 1 - reach)
    h0, preds = _main_pass(model, seq, start)
    seq.append(preds[-1])
    main_s = time.perf_counter() - started
    log = {"sources": [0], "per_pass": [1], "proposed": [0] * drafts, "accepted": [0] * drafts,
           "draft_passes": 0}
    while len(log["sources"]) < max_new:
        q = len(seq) - 1                                # position of y
        guess = _draft(model, h0, start, seq, drafts) if drafts else []
        log["draft_passes"] += len(guess)
        start = max(0, q - reach)
        t0 = time.perf_counter()
        h, preds = _main_pass(model, seq + guess, start)
        main_s += time.perf_counter() - t0
        n_ok = _verify(preds[q - start:], guess, log)
        new = guess[:n_ok] + [preds[q - start + n_ok]]
        seq += new
        log["sources"] += [*range(1, n_ok + 1), 0]
        log["per_pass"].append(len(new))
        h0 = h[:, : len(seq) - 1 - start]               # states of positions start .. len(seq) - 2
    return _stats(seq[len(prompt_ids):], log, max_new, time.perf_counter() - started, main_s)


def _verify(preds_from_y: list[int], guess: list[int], log: dict) -> int:
    """Longest prefix of ``guess`` equal to the main model's greedy tokens after y; counts per depth."""
    n_ok = 0
    for k, token in enumerate(guess):
        log["proposed"][k] += 1
        if preds_from_y[k] != token:
            break
        log["accepted"][k] += 1
        n_ok += 1
    return n_ok


def _stats(tokens: list[int], log: dict, max_new: int, seconds: float, main_s: float) -> DecodeStats:
    """Trim the overshoot of the last pass to ``max_new`` tokens."""
    per_pass, extra = list(log["per_pass"]), len(tokens) - max_new
    if extra > 0:
        per_pass[-1] -= extra
    return DecodeStats(tuple(tokens[:max_new]), tuple(log["sources"][:max_new]), tuple(per_pass),
                       tuple(log["proposed"]), tuple(log["accepted"]), log["draft_passes"],
                       seconds, main_s)


@dataclass(frozen=True)
class DecodeComparison:
    prompt: str                      # the prompt as used (capped, folded to the vocabulary)
    prompt_truncated: bool
    unknown_chars: int               # prompt characters outside the vocabulary (became UNK)
    plain: DecodeStats               # greedy, one main pass per token
    speculative: DecodeStats         # greedy with D drafted tokens per pass
    by_drafts: tuple[tuple[int, float], ...]   # (drafts used, tokens per main pass) for 0..D
    identical: bool                  # speculative output == plain output

    @property
    def text(self) -> str:
        return decode(self.speculative.tokens)


def decoding_model(trained: TrainedMTP) -> MTPModel:
    """A float64 copy for decoding: the verify pass and plain greedy then cannot differ by rounding."""
    return copy.deepcopy(trained.model).to(torch.float64).eval()


def compare_decoding(trained: TrainedMTP, prompt: str, max_new: int = 120, *, on_wait=None,
                     progress: Progress | None = None) -> DecodeComparison:
    """Plain greedy vs self-speculative decoding of ``prompt`` (and tokens per pass for every draft count)."""
    checked, ids, unknown = check_prompt(prompt)
    max_new = check_int("New tokens", max_new, 1, MAX_NEW_TOKENS)
    D = trained.config.mtp_depth
    with heavy_job("MTP decoding", trained.device, time_limit_s=180, on_wait=on_wait) as job:
        model = decoding_model(trained)
        runs = {}
        for i, d in enumerate([0, D, *range(1, D)]):
            job.check()
            if progress:
                progress(i / (D + 1), N_(f"decoding with {d} drafted token(s) per pass"))
            runs[d] = speculative_decode(model, ids, max_new, d)
    if progress:
        progress(1.0, N_("done"))
    plain, spec = runs[0], runs[D]
    return DecodeComparison(decode(ids), checked.truncated, unknown, plain, spec,
                            tuple((d, runs[d].tokens_per_pass) for d in sorted(runs)),
                            plain.tokens == spec.tokens)


def mtp_param_counts(cfg: MTPConfig) -> dict:
    """Parameters of the main model and of the MTP modules (shared embedding/head counted once)."""
    model = MTPModel(cfg)
    mtp = sum(p.numel() for p in model.mtp.parameters())
    return {"main": sum(p.numel() for p in model.parameters()) - mtp, "mtp": mtp,
            "per_module": mtp // cfg.mtp_depth}


def target_table(text: str, depth: int, positions: int = 16) -> list[dict]:
    """What each head is trained to predict at the first ``positions`` positions of ``text``."""
    checked = check_text(text, max_chars=MAX_PROMPT_CHARS, name="Prompt")
    depth = check_int("MTP depth", depth, 1, MAX_DEPTH)
    chars = decode(encode(checked.text))
    rows = []
    for i in range(min(check_int("Table positions", positions, 1, 64), len(chars) - 1)):
        row = {"position": i, N_("input tᵢ"): chars[i], N_("main head → tᵢ₊₁"): chars[i + 1]}
        for k in range(1, depth + 1):
            ok = i + k + 1 < len(chars)
            row[N_(f"MTP {k} reads tᵢ₊{_SUB[k]}")] = chars[i + k] if ok else None
            row[N_(f"MTP {k} → tᵢ₊{_SUB[k + 1]}")] = chars[i + k + 1] if ok else None
        rows.append(row)
    return rows
