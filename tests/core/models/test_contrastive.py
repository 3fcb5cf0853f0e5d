"""core.models.contrastive: InfoNCE is the cross-entropy of the logits (== a float64 written-out
reference), the bound log N - L never exceeds log N, real MiniLM pairs, and CPC (loss ==
reference, causal context, it learns)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st

from core.models import contrastive
from core.runtime.validation import ValidationError


def unit_pairs(n: int, d: int = 16, noise: float = 0.3, seed: int = 0):
    gen = torch.Generator().manual_seed(seed)
    a = torch.randn(n, d, generator=gen)
    b = a + noise * torch.randn(n, d, generator=gen)
    return F.normalize(a, dim=-1), F.normalize(b, dim=-1)


# ---------------------------------------------------------------- InfoNCE
@pytest.mark.parametrize("n", [2, 5, 32])
@pytest.mark.parametrize("tau", [0.01, 0.1, 1.0, 7.0])
def test_info_nce_is_cross_entropy_on_the_logits(n, tau):
    a, b = unit_pairs(n, seed=n)
    logits = contrastive.similarity_logits(a, b, tau)
    loss = contrastive.info_nce(logits)
    torch.testing.assert_close(loss, F.cross_entropy(logits, torch.arange(n)))
    logits64 = contrastive.similarity_logits(a.double(), b.double(), tau)
    assert math.isclose(float(contrastive.info_nce(logits64)), contrastive.info_nce_reference(a, b, tau),
                        rel_tol=1e-9, abs_tol=1e-12)
    sym = contrastive.info_nce(logits, symmetric=True)
    torch.testing.assert_close(sym, (loss + F.cross_entropy(logits.T, torch.arange(n))) / 2)


@settings(max_examples=60, deadline=None)
@given(n=st.integers(2, 40), tau=st.floats(1e-3, 50.0), noise=st.floats(0.0, 3.0), seed=st.integers(0, 99))
def test_bound_never_exceeds_log_n(n, tau, noise, seed):
    a, b = unit_pairs(n, noise=noise, seed=seed)
    res = contrastive.info_nce_batch(a, b, tau)
    assert res.loss >= 0 and res.bound <= math.log(n) + 1e-12
    assert math.isclose(res.bound, math.log(n) - res.loss)
    assert 0 <= res.accuracy <= 1 and res.logits.shape == (n, n)


def test_bound_limits():
    """Identical candidates: every logit equal, loss = log N, bound 0. Orthogonal pairs at a
    tiny temperature: loss -> 0, bound -> log N."""
    same = torch.ones(8, 4)
    res = contrastive.info_nce_batch(same, same, 0.1)
    assert math.isclose(res.loss, math.log(8), rel_tol=1e-9) and abs(res.bound) < 1e-9
    eye = torch.eye(8)
    res = contrastive.info_nce_batch(eye, eye, 0.01)
    assert res.loss < 1e-10 and math.isclose(res.bound, math.log(8), rel_tol=1e-9) and res.accuracy == 1


def test_bound_curve_points():
    a, b = unit_pairs(40, noise=0.5)
    pts = contrastive.bound_curve(a, b, [2, 8, 40], [0.05, 1.0], n_batches=6)
    assert len(pts) == 6
    for p in pts:
        assert p.bound <= math.log(p.n) + 1e-12
        assert p.batches == (1 if p.n == 40 else 6)
    low = {p.n: p.bound for p in pts if p.temperature == 0.05}
    assert low[2] < low[8] < low[40]                  # easy pairs: more negatives, more nats
    with pytest.raises(ValidationError, match="larger than the data"):
        contrastive.bound_curve(a, b, [41], [0.1])


@pytest.mark.parametrize(("call", "message"), [
    (lambda: contrastive.info_nce_batch(torch.ones(1, 4), torch.ones(1, 4), 0.1), "no negatives"),
    (lambda: contrastive.info_nce_batch(torch.ones(0, 4), torch.ones(0, 4), 0.1), "empty"),
    (lambda: contrastive.info_nce_batch(torch.ones(3, 4), torch.ones(3, 5), 0.1), r"\(N, D\)"),
    (lambda: contrastive.similarity_logits(torch.ones(3, 4), torch.ones(3, 4), 0.0), "above 0"),
    (lambda: contrastive.similarity_logits(torch.ones(3, 4), torch.ones(3, 4), -1.0), "above 0"),
    (lambda: contrastive.similarity_logits(torch.ones(3, 4), torch.ones(3, 4), float("nan")), "finite"),
    (lambda: contrastive.draw_batch(10, 11), "larger than the data"),
    (lambda: contrastive.draw_batch(10, 1), "no negatives"),
    (lambda: contrastive.draw_batch(10, 0), "empty"),
    (lambda: contrastive.text_pairs("One short sentence only, nothing more to see here."), "at least 2"),
    (lambda: contrastive.text_pairs(""), "empty"),
    (lambda: contrastive.corpus_pairs(1), "between"),
    (lambda: contrastive.CPCConfig(unit="words"), "Sequence unit"),
    (lambda: contrastive.CPCConfig(window=16, k_max=16), "Prediction steps"),
    (lambda: contrastive.CPCConfig(eval_windows=1, window=10, k_max=5, eval_candidates=64), "candidates"),
])
def test_bad_input_is_a_clear_message(call, message):
    with pytest.raises(ValidationError, match=message):
        call()


def test_info_nce_from_pool_uses_the_drawn_rows():
    a, b = unit_pairs(20)
    res, idx = contrastive.info_nce_from_pool(a, b, 6, 0.1, seed=3)
    assert len(set(idx)) == 6
    assert np.allclose(res.logits, contrastive.info_nce_batch(a[idx], b[idx], 0.1).logits)


def test_pool_views_take_arrays_as_well_as_tensors():
    a, b = unit_pairs(20)
    res_t, idx_t = contrastive.info_nce_from_pool(a, b, 6, 0.1, seed=3)
    res_a, idx_a = contrastive.info_nce_from_pool(a.numpy(), b.numpy(), 6, 0.1, seed=3)
    assert idx_t == idx_a and res_t.loss == res_a.loss
    np.testing.assert_array_equal(res_t.logits, res_a.logits)
    assert (contrastive.bound_curve(a, b, [2, 8], [0.1], n_batches=3)
            == contrastive.bound_curve(a.numpy(), b.numpy(), [2, 8], [0.1], n_batches=3))


# ---------------------------------------------------------------- pairs
def test_sentences_and_pairs():
    para = ("The first sentence has quite a few words in it. The second one is also long enough "
            "to count. Short. A fourth sentence closes the little paragraph here.")
    sents = contrastive.split_sentences(para)
    assert sents == ["The first sentence has quite a few words in it.",
                     "The second one is also long enough to count.",
                     "A fourth sentence closes the little paragraph here."]
    nxt = contrastive.pairs_from_paragraphs([para], "next", "t")
    assert [(p.anchor, p.positive) for p in nxt] == list(zip(sents, sents[1:], strict=False))
    span = contrastive.pairs_from_paragraphs([para], "span", "t")[0]
    words = sents[0].split()
    assert span.anchor == " ".join(words[:6]) and span.positive == " ".join(words[-6:])
    got = contrastive.text_pairs(para + " " + para)
    assert len(got) == 5 and got[0].source == "your text"


def test_corpus_pairs_mixed_and_hard():
    mixed = contrastive.corpus_pairs(12, seed=1)
    assert len(mixed) == 12 and len({p.source for p in mixed}) == 12
    hard = contrastive.corpus_pairs(8, negatives="one-article", seed=1)
    assert len({p.source for p in hard}) == 1
    assert contrastive.corpus_pairs(12, seed=1) == mixed                       # seeded


def test_pair_pool_of_a_users_text_reports_progress():
    text = ("Packing removes padding from training batches. Attention must not cross the sequence "
            "boundaries then. Position ids restart at zero for every packed sequence.")
    steps = []
    pairs, a, b = contrastive.pair_pool("text", 8, text=text, progress=lambda f, m: steps.append(f))
    assert pairs == tuple(contrastive.text_pairs(text)) and len(pairs) == 2
    assert a.shape == b.shape == (2, 384) and a.dtype == np.float32
    ref_a, ref_b = contrastive.embed_pairs(pairs)
    np.testing.assert_array_equal(a, ref_a.numpy())
    np.testing.assert_array_equal(b, ref_b.numpy())
    assert steps == [0.1, 0.3, 1.0]
    assert len(contrastive.pair_pool("text", 2, text=text + " " + text)[0]) == 2     # capped at n_pairs
    with pytest.raises(ValidationError, match="Sentences from"):
        contrastive.pair_pool("web", 8)


def test_real_minilm_pairs_keep_their_order():
    from core.data.minilm import encode_sentences

    pairs = [contrastive.Pair("Short one here.", "A much longer sentence about the history of Aruba and its people.", "x"),
             contrastive.Pair("Lithium is the lightest metal.", "Tiny.", "y")]
    a, b = contrastive.embed_pairs(pairs)
    ref = encode_sentences([p.anchor for p in pairs] + [p.positive for p in pairs])
    torch.testing.assert_close(torch.cat([a, b]), ref, atol=1e-5, rtol=1e-4)
    res = contrastive.info_nce_batch(a, b, 0.05)
    assert res.n == 2 and res.bound <= math.log(2)


# ---------------------------------------------------------------- CPC
TINY = contrastive.CPCConfig(window=12, emb_dim=8, z_dim=8, c_dim=8, k_max=3, batch_size=4, negatives=7,
                   steps=2, eval_candidates=8, eval_windows=4, eval_every=1)


def test_cpc_loss_matches_a_written_out_reference():
    model = contrastive.build_cpc(TINY, vocab=20).double()
    x = torch.randint(0, 20, (4, 12), generator=torch.Generator().manual_seed(0))
    out = model(x)
    k, n_neg = 2, 7
    got = contrastive.cpc_loss_k(model, out, k, n_neg, torch.Generator().manual_seed(5))
    neg = torch.randint(0, 4 * 10, (n_neg,), generator=torch.Generator().manual_seed(5)).tolist()
    total, M = 0.0, 4 * 10
    anchors = [(b, t) for b in range(4) for t in range(10)]
    for m, (b, t) in enumerate(anchors):
        pred = model.predictors[k - 1](out.c[b, t])
        futures = [(b, t)] + [anchors[j] for j in neg if j != m]
        scores = [float((out.z[bb, tt + k] @ pred).detach()) for bb, tt in futures]
        top = max(scores)
        total += -(scores[0] - top - math.log(sum(math.exp(s - top) for s in scores)))
    assert math.isclose(float(got.detach()), total / M, rel_tol=1e-9)


@pytest.mark.parametrize("unit", ["tokens", "bytes"])
def test_cpc_context_never_sees_the_future(unit):
    cfg = contrastive.CPCConfig(unit=unit, window=12, emb_dim=8, z_dim=8, c_dim=8, k_max=3, eval_windows=4,
                      eval_candidates=8)
    model = contrastive.build_cpc(cfg, vocab=256)
    x = torch.randint(0, 256, (2, 12 * cfg.stride), generator=torch.Generator().manual_seed(1))
    y = x.clone()
    y[:, 5 * cfg.stride:] = (y[:, 5 * cfg.stride:] + 1) % 256     # change latents 5.. only
    ox, oy = model(x), model(y)
    torch.testing.assert_close(ox.c[:, :5], oy.c[:, :5])
    torch.testing.assert_close(ox.z[:, :5], oy.z[:, :5])
    assert not torch.allclose(ox.z[:, 5], oy.z[:, 5])


def test_cpc_learns_a_predictable_sequence():
    """A repeating sequence (period 13) is fully predictable: 60 steps take held-out accuracy
    far above chance (1/16). Equal tokens give equal latents, so repeats among the 16
    candidates cap the reachable accuracy near 0.6."""
    cfg = contrastive.CPCConfig(window=16, emb_dim=16, z_dim=16, c_dim=16, k_max=2, batch_size=8, negatives=15,
                      steps=60, lr=1e-2, eval_candidates=16, eval_windows=8, eval_every=60)
    ids = np.tile(np.arange(13), 400)
    windows = contrastive.sample_windows(ids, 8, 16, np.random.default_rng(1))

    class NoLimit:
        def check(self):
            pass

    threads = torch.get_num_threads()
    torch.set_num_threads(1)          # tiny GRU: one thread is faster than two on a busy machine
    try:
        model = contrastive.build_cpc(cfg, vocab=13)
        _, evals = contrastive._train_loop(model, ids, windows, "cpu", NoLimit(), None)
    finally:
        torch.set_num_threads(threads)
    assert evals[0].step == 0 and evals[-1].step == 60
    assert evals[-1].accuracy[0] > max(0.4, 4 * evals[0].accuracy[0])


@pytest.mark.parametrize("unit", ["tokens", "bytes"])
def test_train_cpc_end_to_end_tiny(unit):
    cfg = contrastive.CPCConfig(unit=unit, window=12, emb_dim=8, z_dim=8, c_dim=8, k_max=3, batch_size=4,
                      negatives=7, steps=2, eval_candidates=8, eval_windows=4, eval_every=1)
    seen = []
    res = contrastive.train_cpc(cfg, progress=lambda f, m: seen.append(f))
    assert [e.step for e in res.evals] == [0, 1, 2] and len(res.losses) == 2
    assert all(0 <= a <= 1 for e in res.evals for a in e.accuracy)
    assert res.chance == 1 / 8 and res.examples and seen[-1] == 1.0
    assert res.vocab == (256 if unit == "bytes" else len(contrastive.cpc_data("tokens", 3).token_of))
    data = contrastive.cpc_data(unit, 3)
    assert contrastive.show_items(data, data.held_out[:40]).strip()
