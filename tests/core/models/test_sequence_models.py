"""core.models.sequence_models: parameter counts, shapes, causal masking, KV cache, training, recall."""

from __future__ import annotations

import math
import types

import pytest
import torch

from core import llm
from core.configs import PRESETS
from core.data.char_data import corpus_from_text
from core.models import sequence_models
from core.runtime.validation import ValidationError

TINY = {
    "rnn": sequence_models.RNNConfig(vocab_size=11, d_embed=6, d_hidden=8, n_layers=2),
    "lstm": sequence_models.LSTMConfig(vocab_size=11, d_embed=6, d_hidden=8, n_layers=2),
    "gru": sequence_models.GRUConfig(vocab_size=11, d_embed=6, d_hidden=8, n_layers=2),
    "transformer": sequence_models.TransformerConfig(vocab_size=11, d_model=8, n_heads=2, n_layers=2, d_ff=16),
}


@pytest.mark.parametrize("kind", sequence_models.KINDS)
@pytest.mark.parametrize("width,layers", [(8, 1), (12, 2), (16, 3)])
def test_param_count_matches_module(kind, width, layers):
    cfg = sequence_models.make_config(kind, width, layers, vocab_size=13, n_heads=4)
    assert sequence_models.param_count(cfg) == sequence_models.n_params(sequence_models.build_model(cfg))


def test_param_count_golden_single_layer_rnn():
    """Elman RNN by hand: embedding V*E, W_ih H*E, W_hh H*H, two biases 2H, head H*V + V."""
    cfg = sequence_models.RNNConfig(vocab_size=10, d_embed=4, d_hidden=5, n_layers=1)
    assert sequence_models.param_count(cfg) == 10 * 4 + (5 * 4 + 5 * 5 + 2 * 5) + (5 * 10 + 10)


@pytest.mark.parametrize("budget", [25_000, 100_000, 400_000])
@pytest.mark.parametrize("layers", [1, 2])
def test_budget_matching_is_close(budget, layers):
    configs = sequence_models.configs_for_budget(budget, layers)
    assert set(configs) == set(sequence_models.KINDS)
    for cfg in configs.values():
        assert abs(sequence_models.param_count(cfg) - budget) / budget < 0.08
        assert cfg.n_layers == layers


def test_config_validation():
    with pytest.raises(ValidationError):
        sequence_models.RNNConfig(kind="lstm")
    with pytest.raises(ValidationError, match="divisible"):
        sequence_models.TransformerConfig(d_model=10, n_heads=4)
    with pytest.raises(ValidationError):
        sequence_models.LSTMConfig(d_hidden=0)
    with pytest.raises(ValidationError):
        sequence_models.configs_for_budget(10**9)
    with pytest.raises(ValidationError):
        sequence_models.TrainConfig(steps=0)
    with pytest.raises(ValidationError):
        sequence_models.TrainConfig(lr=-1.0)
    with pytest.raises(ValidationError):
        sequence_models.TrainConfig(block=10**6)


@pytest.mark.parametrize("kind", sequence_models.KINDS)
@pytest.mark.parametrize("B,T", [(1, 1), (3, 7)])
def test_forward_shapes_and_state(kind, B, T):
    model = sequence_models.build_model(TINY[kind])
    idx = torch.randint(0, 11, (B, T))
    logits, state = model(idx)
    assert logits.shape == (B, T, 11)
    if kind == "lstm":
        assert state[0].shape == state[1].shape == (2, B, 8)
    elif kind != "transformer":
        assert state.shape == (2, B, 8)
    _, _, internals = model(idx, return_internals=True)
    if kind == "transformer":
        assert len(internals.attention) == 2 and internals.attention[0].shape == (B, 2, T, T)
    else:
        assert internals.hidden.shape == (B, T, 8)


@pytest.mark.parametrize("kind", sequence_models.KINDS)
def test_causal_future_tokens_do_not_change_past_logits(kind):
    model = sequence_models.build_model(TINY[kind]).double()
    idx = torch.randint(0, 11, (2, 12))
    changed = idx.clone()
    changed[:, 7:] = (changed[:, 7:] + 3) % 11
    a, b = model(idx)[0], model(changed)[0]
    torch.testing.assert_close(a[:, :7], b[:, :7], atol=1e-12, rtol=0)
    assert (a[:, 7:] - b[:, 7:]).abs().max() > 1e-6


@pytest.mark.parametrize("T,S,offset", [(5, 5, 0), (1, 9, 8), (4, 10, 6)])
def test_fused_attention_matches_reference(T, S, offset):
    gen = torch.Generator().manual_seed(0)
    q = torch.randn(2, 3, T, 8, generator=gen, dtype=torch.float64)
    k = torch.randn(2, 3, S, 8, generator=gen, dtype=torch.float64)
    v = torch.randn(2, 3, S, 8, generator=gen, dtype=torch.float64)
    ref, probs = sequence_models.reference_attention(q, k, v, offset)
    torch.testing.assert_close(sequence_models.fused_attention(q, k, v, offset), ref, atol=1e-10, rtol=1e-10)
    torch.testing.assert_close(probs.sum(-1), torch.ones(2, 3, T, dtype=torch.float64))
    future = torch.arange(S)[None, :] > (torch.arange(T)[:, None] + offset)
    assert (probs[..., future] == 0).all()


def test_reference_path_matches_fused_path_in_the_model():
    model = sequence_models.build_model(TINY["transformer"])
    idx = torch.randint(0, 11, (2, 9))
    fused = model(idx)[0]
    ref = model(idx, reference=True)[0]
    torch.testing.assert_close(fused, ref, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("chunks", [(9,), (1,) * 9, (4, 1, 4), (3, 6)])
def test_kv_cache_forward_equals_full_forward(chunks):
    model = sequence_models.build_model(TINY["transformer"]).double()
    idx = torch.randint(0, 11, (2, sum(chunks)))
    full = model(idx)[0]
    cache = sequence_models.init_state(model, 2, sum(chunks), "cpu")            # core.nn.KVCache
    pieces, start = [], 0
    for n in chunks:
        logits, cache = model(idx[:, start:start + n], cache)
        pieces.append(logits)
        start += n
    torch.testing.assert_close(torch.cat(pieces, dim=1), full, atol=1e-10, rtol=1e-10)
    assert cache.length == sum(chunks)
    assert cache.nbytes() == 2 * 2 * 2 * 8 * sum(chunks) * 8    # k+v, layers, batch, d, positions, fp64


def test_kv_cache_overflow_is_a_clear_error():
    model = sequence_models.build_model(TINY["transformer"])
    cache = sequence_models.init_state(model, 1, 4, "cpu")
    with pytest.raises(sequence_models.ResourceError, match="holds 4"):
        model(torch.zeros(1, 5, dtype=torch.long), cache)


def test_sinusoidal_positions_golden():
    """Vaswani et al. 2017, Sec. 3.5: PE(pos, 2i) = sin(pos / 10000^(2i/d)), PE(pos, 2i+1) = cos(...)."""
    pe = sequence_models.sinusoidal_positions(torch.arange(3), 4)
    assert pe[0].tolist() == [0.0, 1.0, 0.0, 1.0]
    assert pe[2, 0].item() == pytest.approx(math.sin(2))
    assert pe[2, 1].item() == pytest.approx(math.cos(2))
    assert pe[2, 2].item() == pytest.approx(math.sin(2 / 100), rel=1e-5)
    assert sequence_models.sinusoidal_positions(torch.arange(2), 5).shape == (2, 5)


@pytest.mark.parametrize("kind", sequence_models.KINDS)
def test_greedy_generation_with_state_equals_recompute(kind):
    model = sequence_models.build_model(TINY[kind]).eval()
    prompt = torch.randint(0, 11, (2, 3))
    out, nbytes = sequence_models.generate(model, prompt, 10, temperature=0.0)
    assert out.shape == (2, 10)
    torch.testing.assert_close(out, sequence_models.generate_recompute(model, prompt, 10))
    if kind == "transformer":
        assert nbytes == 2 * 2 * 2 * 8 * (3 + 9) * 4               # cache of prompt + 9 fed tokens
    else:
        assert nbytes == (2 if kind == "lstm" else 1) * 2 * 2 * 8 * 4   # (L, B, H) fp32, no growth


def test_generation_validates_inputs():
    model = sequence_models.build_model(TINY["rnn"])
    with pytest.raises(ValidationError):
        sequence_models.generate(model, torch.zeros(1, 1, dtype=torch.long), 0)
    with pytest.raises(ValidationError):
        sequence_models.generate(model, torch.zeros(1, 1, dtype=torch.long), sequence_models.MAX_GENERATE + 1)
    with pytest.raises(ValidationError):
        sequence_models.generate(model, torch.zeros(1, 0, dtype=torch.long), 5)
    with pytest.raises(ValidationError):
        sequence_models.continue_text(model, (), 5)


def test_sampling_is_seeded_and_in_vocabulary():
    model = sequence_models.build_model(sequence_models.configs_for_budget(5_000, 1)["gru"])
    a = sequence_models.continue_text(model, (40, 41), 30, temperature=1.0, seed=3)
    assert a == sequence_models.continue_text(model, (40, 41), 30, temperature=1.0, seed=3)
    assert len(a) == 30
    top1 = sequence_models.continue_text(model, (40, 41), 30, temperature=1.0, top_k=1, seed=4)
    assert top1 == sequence_models.continue_text(model, (40, 41), 30, temperature=0.0)


def test_lr_schedule_warmup_peak_and_floor():
    cfg = sequence_models.TrainConfig(steps=100, warmup=10, lr=1e-2)
    assert sequence_models.lr_at(0, cfg) == pytest.approx(1e-3)
    assert sequence_models.lr_at(9, cfg) == pytest.approx(1e-2)
    assert sequence_models.lr_at(10, cfg) == pytest.approx(1e-2)
    assert sequence_models.lr_at(100, cfg) == pytest.approx(1e-3)


def test_training_lowers_the_loss_for_every_model():
    text = "the cat sat on the mat. " * 200
    corpus = corpus_from_text(text)
    configs = sequence_models.configs_for_budget(5_000, 1)
    train = sequence_models.TrainConfig(steps=40, batch=8, block=24, lr=1e-2, warmup=5, eval_every=20,
                           eval_batches=2)
    seen = []
    result = sequence_models.train_models(configs, train, corpus, "cpu", progress=lambda f, m: seen.append(f))
    assert seen[-1] == pytest.approx(1.0) and len(seen) == 40
    for kind, h in result.history.items():
        assert len(h.train_loss) == 40 and h.val_steps == [20, 40]
        assert h.val_loss[-1] < math.log(97) - 1.0, kind        # well below a uniform guess
        assert not any(p.requires_grad for p in result.models[kind].parameters())
    assert result.key != sequence_models.fresh_models(configs, "cpu").key


def test_weights_key_comes_from_what_built_them():
    """TrainedModels.key (the results caches' hash) changes with the configs, the seed and the
    device, and is equal for equal inputs."""
    fresh = sequence_models.fresh_models(TINY, "cpu")
    assert fresh.key == sequence_models.fresh_models(dict(TINY), "cpu").key
    assert fresh.key != sequence_models.fresh_models(TINY, "cpu", seed=1).key
    smaller = dict(TINY, rnn=sequence_models.RNNConfig(vocab_size=11, d_embed=6, d_hidden=4, n_layers=2))
    assert fresh.key != sequence_models.fresh_models(smaller, "cpu").key


def test_continue_all_is_each_models_continuation():
    fresh = sequence_models.fresh_models(TINY, "cpu")
    got = sequence_models.continue_all(fresh, (1, 2, 3), 12, temperature=0.7, seed=3)
    assert list(got) == list(TINY)
    for kind, text in got.items():
        assert text == sequence_models.continue_text(fresh.models[kind], (1, 2, 3), 12, temperature=0.7, seed=3)


def test_llm_continuation_cuts_the_real_models_text_at_the_characters_asked():
    """SmolLM2 (core.llm) continues a prompt: greedy equals its own greedy generate(), cut at 40
    characters; the parameter count is the published 134,515,008 (DESIGN.md)."""
    lm = llm.load_pretrained(device="cpu")
    out = sequence_models.llm_continuation(lm, "The river ", 40, temperature=0.0)
    ref = lm.decode(lm.generate(lm.encode("The river "), out.tokens, temperature=0.0))
    assert out.text == ref[:40] and len(out.text) == 40 and not out.stopped
    assert len(lm.decode(lm.generate(lm.encode("The river "), out.tokens - 1))) < 40   # no token too many
    assert out.params == 134_515_008 and out.vocab == 49_152
    drawn = [sequence_models.llm_continuation(lm, "The river ", 40, temperature=0.8, seed=5) for _ in range(2)]
    assert drawn[0].text == drawn[1].text and drawn[0].tokens == drawn[1].tokens       # seeded
    with pytest.raises(ValidationError):
        sequence_models.llm_continuation(lm, "The river ", 0)


class _ScriptedLM:
    """A stand-in with PretrainedLM's text interface that writes a fixed script of ids, to check
    llm_continuation's stopping rules without a real model."""

    def __init__(self, script):
        self.script, self.device, self.config = script, torch.device("cpu"), PRESETS["smollm2-135m"]
        self.info = types.SimpleNamespace(eos_ids=(2,))

    def encode(self, text):
        return [7] * len(text)

    def decode(self, ids):
        return "".join("<|im_end|>" if i == 2 else "ab" for i in ids)

    def stream(self, ids, max_new_tokens, sampling, job=None):
        for i in self.script[:max_new_tokens]:
            yield types.SimpleNamespace(token_id=i)
            if i == 2:
                return


def test_llm_continuation_stops_at_the_characters_or_the_end_of_text():
    out = sequence_models.llm_continuation(_ScriptedLM([5] * 10), "x", 5)
    assert out.text == "ababa" and out.tokens == 3 and not out.stopped      # 3 tokens of 2 chars, cut at 5
    ended = sequence_models.llm_continuation(_ScriptedLM([5, 2, 5]), "x", 50)
    assert ended.text == "ab" and ended.tokens == 2 and ended.stopped        # the EOS token is not text
    assert ended.params == 134_515_008


def test_training_needs_a_model():
    with pytest.raises(ValidationError):
        sequence_models.train_models({}, sequence_models.TrainConfig(), corpus_from_text("x" * 500), "cpu")


def test_cpu_threads_restores_setting():
    before = torch.get_num_threads()
    with sequence_models.cpu_threads("cpu", 1):
        assert torch.get_num_threads() == 1
    assert torch.get_num_threads() == before
    with sequence_models.cpu_threads("cpu", None):
        assert torch.get_num_threads() == before


def test_recall_batch_targets_are_delayed_inputs():
    cfg = sequence_models.RecallConfig(delays=(3,), seq_len=10, batch=4)
    x, y = sequence_models.recall_batch(cfg, 3, torch.Generator().manual_seed(0), "cpu")
    assert (y[:, :3] == -100).all()
    assert torch.equal(y[:, 3:], x[:, :-3])


def test_recall_config_validation():
    with pytest.raises(ValidationError):
        sequence_models.RecallConfig(delays=())
    with pytest.raises(ValidationError):
        sequence_models.RecallConfig(delays=(4, 4))
    with pytest.raises(ValidationError):
        sequence_models.RecallConfig(delays=(64,), seq_len=64)       # needs a position after the delay
    with pytest.raises(ValidationError):
        sequence_models.run_recall(sequence_models.RecallConfig(delays=(1,), seq_len=8), ("lstm", "cnn"), "cpu")


def test_recall_task_runs_and_learns_delay_one():
    cfg = sequence_models.RecallConfig(delays=(1,), n_symbols=4, seq_len=16, budget=3_000, steps=80, batch=16,
                          lr=1e-2, eval_batches=2)
    result = sequence_models.run_recall(cfg, ("gru", "transformer"), "cpu")
    assert [r["kind"] for r in result.rows] == ["gru", "transformer"]
    assert result.chance == 0.25
    assert max(r["accuracy"] for r in result.rows) > 0.6     # copying the previous symbol is easy


@pytest.mark.gpu
@pytest.mark.parametrize("kind", sequence_models.KINDS)
def test_cuda_forward_matches_cpu(kind, monkeypatch):
    monkeypatch.setattr(torch.backends.cudnn, "allow_tf32", False)     # cuDNN RNNs: full fp32
    monkeypatch.setattr(torch.backends.cuda.matmul, "allow_tf32", False)
    model = sequence_models.build_model(TINY[kind])
    idx = torch.randint(0, 11, (2, 33))
    cpu = model(idx)[0]
    gpu = model.to("cuda")(idx.cuda())[0].cpu()
    torch.testing.assert_close(gpu, cpu, atol=1e-4, rtol=1e-4)
    out, _ = sequence_models.generate(model, idx[:, :2].cuda(), 8, temperature=0.0)
    torch.testing.assert_close(out, sequence_models.generate_recompute(model, idx[:, :2].cuda(), 8))
