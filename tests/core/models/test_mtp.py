"""core.models.mtp: DeepSeek-V3-style MTP shapes, causal targets, losses, and exact self-speculative decoding."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from core.models import mtp
from core.models.mtp import (
    VOCAB,
    DecodeStats,
    MTPConfig,
    MTPModel,
    TrainConfig,
    TrainedMTP,
    compare_decoding,
    decode,
    encode,
    greedy_reference,
    mtp_losses,
    mtp_targets,
    speculative_decode,
    target_table,
    train_mtp,
)
from core.runtime.validation import ValidationError

TINY = MTPConfig(d_model=32, n_layers=2, n_heads=2, mtp_depth=3, window=8)


def tiny_model(cfg: MTPConfig = TINY, seed: int = 0) -> MTPModel:
    torch.manual_seed(seed)
    return MTPModel(cfg).double().eval()


def test_shapes_and_targets():
    """DeepSeek-V3 eqs. 21-23: depth k sees T - k positions and predicts t_{i+k+1}."""
    model = tiny_model()
    tokens = torch.randint(0, len(VOCAB), (2, 13))            # T = 12 inputs
    out = model(tokens)
    targets = mtp_targets(tokens, TINY.mtp_depth)
    assert len(out.logits) == len(targets) == TINY.mtp_depth + 1
    for k, (lg, h, tg) in enumerate(zip(out.logits, out.hidden, targets, strict=True)):
        assert lg.shape == (2, 12 - k, len(VOCAB))
        assert h.shape == (2, 12 - k, TINY.d_model)
        assert tg.shape == (2, 12 - k)
        assert torch.equal(tg[:, 0], tokens[:, k + 1])         # position 0 at depth k -> t_{k+1}
        assert torch.equal(tg[:, -1], tokens[:, -1])


@pytest.mark.parametrize("depth", [0, 1, 2, 3])
def test_depth_k_is_causal(depth):
    """Position i at depth k depends on t_0..t_{i+k} and on nothing later."""
    model = tiny_model()
    tokens = torch.randint(0, len(VOCAB), (1, 13))
    i = 4
    base = model(tokens).logits[depth][0, i]
    later = tokens.clone()
    later[0, i + depth + 1:] = (later[0, i + depth + 1:] + 7) % len(VOCAB)
    torch.testing.assert_close(model(later).logits[depth][0, i], base, atol=1e-12, rtol=0)
    seen = tokens.clone()
    seen[0, i + depth] = (seen[0, i + depth] + 7) % len(VOCAB)
    assert not torch.allclose(model(seen).logits[depth][0, i], base)


def test_loss_is_main_plus_weighted_mean_of_depths():
    """DeepSeek-V3 eqs. 24-25: L = L_main + lambda / D * sum_k L_MTP^k."""
    model = tiny_model()
    tokens = torch.randint(0, len(VOCAB), (3, 10))
    total, parts = mtp_losses(model, tokens, 0.3)
    out = model(tokens)
    ces = [F.cross_entropy(lg.reshape(-1, lg.shape[-1]), tg.reshape(-1))
           for lg, tg in zip(out.logits, mtp_targets(tokens, 3), strict=True)]
    assert parts == pytest.approx([float(c.detach()) for c in ces])
    assert float(total.detach()) == pytest.approx(float((ces[0] + 0.3 / 3 * sum(ces[1:])).detach()))
    assert parts[0] == pytest.approx(math.log(len(VOCAB)), abs=0.2)   # near-uniform at init


def test_cropped_trunk_equals_full():
    """With a sliding window W, outputs from position s + L (W - 1) on need only tokens from s on."""
    model = tiny_model()
    tokens = torch.randint(0, len(VOCAB), (1, 40))
    full = model.trunk(tokens)
    s = 9
    cropped = model.trunk(tokens[:, s:], start_pos=s)
    exact_from = TINY.n_layers * (TINY.window - 1)
    torch.testing.assert_close(cropped[:, exact_from:], full[:, s + exact_from:], atol=1e-12, rtol=0)


@pytest.mark.parametrize("drafts", [0, 1, 3])
@pytest.mark.parametrize("prompt", ["a", "The city of Paris, " * 2])
def test_speculative_equals_greedy(drafts, prompt):
    model = tiny_model(seed=1)
    ids = encode(prompt)
    ref = greedy_reference(model, ids, 16)
    stats = speculative_decode(model, ids, 16, drafts)
    assert list(stats.tokens) == ref
    assert sum(stats.per_pass) == 16 and len(stats.sources) == 16
    assert stats.draft_passes == drafts * (stats.main_passes - 1)


def test_oracle_and_wrong_drafts(monkeypatch):
    """Drafts equal to the greedy continuation are all accepted; a wrong second draft stops at 1."""
    model = tiny_model(seed=2)
    ids = encode("Hello, world")
    longer = greedy_reference(model, ids, 24)
    ref = longer[:20]

    def oracle(model_, h0, h0_start, seq, depth):
        done = len(seq) - len(ids)                  # tokens already generated (incl. y)
        return list(longer[done:done + depth])

    monkeypatch.setattr(mtp, "_draft", oracle)
    stats = speculative_decode(model, ids, 20, 3)
    assert list(stats.tokens) == ref
    assert stats.per_pass[:-1] == (1,) + (4,) * (len(stats.per_pass) - 2)
    assert stats.acceptance == (1.0, 1.0, 1.0)

    def wrong_second(model_, h0, h0_start, seq, depth):
        guess = oracle(model_, h0, h0_start, seq, depth)
        guess[1] = (guess[1] + 1) % len(VOCAB)
        return guess

    monkeypatch.setattr(mtp, "_draft", wrong_second)
    stats = speculative_decode(model, ids, 20, 3)
    assert list(stats.tokens) == ref
    assert set(stats.per_pass[1:-1]) == {2}
    assert stats.accepted[1:] == (0, 0) and stats.proposed[2] == 0
    assert set(stats.sources) == {0, 1}


def test_learned_pattern_drafts_are_accepted():
    """Trained on a periodic text, every MTP depth learns it and each verify pass commits D + 1 tokens."""
    cfg = MTPConfig(d_model=32, n_layers=1, n_heads=2, mtp_depth=2, window=8)
    torch.manual_seed(0)
    model = MTPModel(cfg)
    data = torch.tensor(encode("abcde" * 40))
    opt = torch.optim.AdamW(model.parameters(), lr=2e-2)
    for _ in range(30):
        starts = torch.randint(0, len(data) - 9, (8,))
        batch = torch.stack([data[s:s + 9] for s in starts.tolist()])
        loss, _ = mtp_losses(model, batch, 1.0)
        opt.zero_grad()
        loss.backward()
        opt.step()
    model = model.double().eval()
    stats = speculative_decode(model, encode("abcdeab"), 30, 2)
    assert decode(stats.tokens).startswith("cdeabcdeab")
    assert stats.acceptance == (1.0, 1.0)
    assert stats.tokens_per_pass > 2.5
    assert list(stats.tokens) == greedy_reference(model, encode("abcdeab"), 30)


def test_train_mtp_quick():
    cfg = MTPConfig(d_model=32, n_layers=1, n_heads=2, mtp_depth=2, window=16)
    seen = []
    trained = train_mtp(cfg, TrainConfig(steps=4, batch=4, corpus_chars=20_000, eval_windows=8),
                        progress=lambda f, m: seen.append(f))
    assert [h["step"] for h in trained.history] == [1, 2, 3, 4]
    assert set(trained.final) >= {"acc_0", "acc_1", "acc_2", "loss_2", "agree_1", "agree_2"}
    assert 0 <= trained.final["agree_2"] <= 1
    assert all(math.isfinite(h["loss_2"]) for h in trained.history)
    assert seen[-1] == 1.0 and not trained.model.training
    result = compare_decoding(trained, "Wikipedia is ", 12)
    assert result.identical and len(result.speculative.tokens) == 12
    assert [d for d, _ in result.by_drafts] == [0, 1, 2]
    assert result.by_drafts[0][1] == 1.0


def test_prompt_and_limits():
    trained = TrainedMTP(tiny_model(), TINY, TrainConfig(), [], [{"step": 0}], 0.0, 0, "cpu")
    with pytest.raises(ValidationError, match="empty"):
        compare_decoding(trained, "   ", 5)
    with pytest.raises(ValidationError):
        compare_decoding(trained, "ok", 10_000)
    long = compare_decoding(trained, "é" + "<script>" * 100, 3)
    assert long.prompt_truncated and len(long.prompt) == mtp.MAX_PROMPT_CHARS
    assert long.prompt.startswith("e<script>")            # accents folded, text kept as text
    weird = compare_decoding(trained, "日本 ok", 3)
    assert weird.unknown_chars == 2
    with pytest.raises(ValidationError):
        MTPModel(MTPConfig(d_model=30, n_heads=4))
    with pytest.raises(ValidationError):
        train_mtp(TINY, TrainConfig(steps=10**6))


def test_target_table():
    rows = target_table("abcdef", 2, positions=3)
    assert rows[0]["main head → tᵢ₊₁"] == "b"
    assert rows[0]["MTP 1 reads tᵢ₊₁"] == "b" and rows[0]["MTP 1 → tᵢ₊₂"] == "c"
    assert rows[0]["MTP 2 reads tᵢ₊₂"] == "c" and rows[0]["MTP 2 → tᵢ₊₃"] == "d"
    assert rows[2]["MTP 2 → tᵢ₊₃"] == "f" and len(rows) == 3
    assert target_table("abc", 2)[0]["MTP 2 → tᵢ₊₃"] is None


def test_stats_properties():
    s = DecodeStats((1, 2, 3), (0, 1, 0), (1, 2), (1, 1), (1, 0), 2, 0.1, 0.05)
    assert s.main_passes == 2 and s.tokens_per_pass == 1.5
    assert s.acceptance == (1.0, 0.0)


def test_agreement_is_acceptance_on_real_text():
    """agree_k compares depth k's guess at position i with the main head's guess at position i + k."""
    model = tiny_model()
    windows = torch.randint(0, len(VOCAB), (3, 12))
    ev = mtp.evaluate(model, windows)
    out = model(windows)
    expect = (out.logits[2].argmax(-1) == out.logits[0][:, 2:].argmax(-1)).double().mean()
    assert ev["agree_2"] == pytest.approx(float(expect))
    assert "agree_0" not in ev


@pytest.mark.gpu
def test_cuda_speculative_equals_greedy():
    model = tiny_model(seed=3).to("cuda")
    ids = encode("GPU check, ")
    ref = greedy_reference(model, ids, 20)
    stats = speculative_decode(model, ids, 20, 3)
    assert list(stats.tokens) == ref
