"""Next-token sampling: temperature, top-k and top-p (nucleus) filtering, then a draw.

Order as in transformers' generate: logits / temperature -> keep the k most likely ->
keep the smallest set whose probability reaches p (Holtzman et al. 2020, "The Curious
Case of Neural Text Degeneration", Sec. 3.1) -> renormalise -> sample with a seeded
generator. Temperature 0 is greedy (argmax). ``next_token_distribution`` returns the
reshaped distribution itself, so a page can show which tokens each filter cut.
Does not handle: repetition penalties, min-p, typical sampling, beam search.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from core.runtime.validation import ValidationError, check_float, check_int

MAX_TEMPERATURE = 5.0


@dataclass(frozen=True)
class SamplingConfig:
    temperature: float = 0.0      # 0 = greedy; higher flattens the distribution
    top_k: int | None = None      # keep the k most likely tokens (None: all)
    top_p: float | None = None    # keep the smallest set with probability >= p (None: all)
    seed: int = 0                 # the generator's seed (same seed, same sample)


def check_sampling(cfg: SamplingConfig, vocab_size: int) -> SamplingConfig:
    """Every field in range, or a ValidationError saying which."""
    check_float("Temperature", cfg.temperature, 0.0, MAX_TEMPERATURE)
    if cfg.top_k is not None:
        check_int("Top-k", cfg.top_k, 1, vocab_size)
    if cfg.top_p is not None:
        check_float("Top-p", cfg.top_p, 0.0, 1.0, lo_open=True)
    check_int("Seed", cfg.seed, 0, 2**63 - 1)
    if cfg.temperature == 0 and (cfg.top_k is not None or cfg.top_p is not None):
        raise ValidationError("Top-k and top-p only apply when sampling: set a temperature above 0.")
    return cfg


def next_token_distribution(logits: torch.Tensor, cfg: SamplingConfig) -> torch.Tensor:
    """(..., V) logits -> (..., V) float32 probabilities after the filters (cut tokens are 0).

    Temperature 0 gives a one-hot at the argmax (what greedy decoding picks).
    """
    logits = logits.float()
    if cfg.temperature == 0:
        return torch.nn.functional.one_hot(logits.argmax(-1), logits.shape[-1]).float()
    logits = logits / cfg.temperature
    if cfg.top_k is not None and cfg.top_k < logits.shape[-1]:
        kth = torch.topk(logits, cfg.top_k, dim=-1).values[..., -1:]            # (..., 1)
        logits = logits.masked_fill(logits < kth, float("-inf"))
    probs = logits.softmax(dim=-1)                                              # (..., V)
    if cfg.top_p is not None and cfg.top_p < 1.0:
        sorted_p, order = probs.sort(dim=-1, descending=True)
        before = sorted_p.cumsum(dim=-1) - sorted_p                             # mass above each token
        drop_sorted = before >= cfg.top_p                                       # the top token always stays
        drop = torch.zeros_like(drop_sorted).scatter(-1, order, drop_sorted)
        probs = probs.masked_fill(drop, 0.0)
        probs = probs / probs.sum(dim=-1, keepdim=True)
    return probs


def sample_token(probs: torch.Tensor, generator: torch.Generator | None) -> torch.Tensor:
    """Draw one id per row of (..., V) probabilities; a one-hot row always gives its id."""
    flat = probs.reshape(-1, probs.shape[-1])
    ids = torch.multinomial(flat, 1, generator=generator)[:, 0]
    return ids.reshape(probs.shape[:-1])
