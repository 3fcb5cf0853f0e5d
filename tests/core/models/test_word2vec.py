"""core.models.word2vec: SGNS pieces against readable references and against gensim; training learns."""

from __future__ import annotations

import random
from collections import Counter

import pytest
import torch
import torch.nn.functional as F

from core.models import word2vec as w2v
from core.runtime.validation import ValidationError


def _gensim_model(sentences, **kwargs):
    gensim = pytest.importorskip("gensim")
    model = gensim.models.Word2Vec(sg=1, hs=0, workers=1, seed=1, **kwargs)
    model.build_vocab(sentences)
    return model


TOY = [["the", "cat", "sat", "on", "the", "mat"], ["the", "dog", "sat", "on", "the", "log"],
       ["a", "cat", "and", "a", "dog"], ["birds", "fly", "over", "the", "hills"]] * 40


# ---------------------------------------------------------------- sampling recipe vs gensim
@pytest.mark.parametrize("sample", [1e-3, 1e-2, 0.05])
def test_keep_probabilities_equal_gensims(sample):
    """gensim stores P(keep) as ``sample_int = round(p * 2**32)`` (word2vec.py, prepare_vocab)."""
    model = _gensim_model(TOY, vector_size=8, min_count=1, sample=sample)
    words = list(model.wv.index_to_key)
    counts = torch.tensor([model.wv.get_vecattr(w, "count") for w in words])
    ours = w2v.keep_probabilities(counts, sample)
    theirs = torch.tensor([model.wv.get_vecattr(w, "sample_int") / 2**32 for w in words],
                          dtype=torch.float64)
    torch.testing.assert_close(ours, theirs, atol=1e-9, rtol=0)


def test_keep_probabilities_off_keeps_everything():
    assert torch.equal(w2v.keep_probabilities(torch.tensor([5, 1000]), 0.0), torch.ones(2, dtype=torch.float64))


def test_noise_distribution_equals_gensims_cum_table():
    """gensim's cum_table: running sum of count**0.75, scaled to 2**31 - 1 (make_cum_table)."""
    model = _gensim_model(TOY, vector_size=8, min_count=1, negative=5)
    words = list(model.wv.index_to_key)
    counts = torch.tensor([model.wv.get_vecattr(w, "count") for w in words])
    ours = w2v.noise_cdf(counts) * (2**31 - 1)
    theirs = torch.tensor(model.cum_table, dtype=torch.float64)
    torch.testing.assert_close(ours, theirs, atol=2.0, rtol=0)


@pytest.mark.parametrize("size", [1 << 12, 1 << 16])
def test_noise_table_samples_the_noise_distribution(size):
    counts = torch.tensor([1000, 300, 50, 7, 1])
    table = w2v.noise_table(counts, size=size)
    share = torch.bincount(table, minlength=5).double() / size
    probs = counts.double() ** 0.75 / (counts.double() ** 0.75).sum()
    torch.testing.assert_close(share, probs, atol=2.0 / size, rtol=0)
    draws = w2v.sample_negatives(table, (20_000,), torch.Generator().manual_seed(0))
    assert draws.min() >= 0 and draws.max() < 5


# ---------------------------------------------------------------- pairs
@pytest.mark.parametrize("window", [1, 3, 5])
@pytest.mark.parametrize("seed", [0, 1])
def test_window_pairs_equal_the_loop(window, seed):
    rng = random.Random(seed)
    sent = sorted(rng.randrange(6) for _ in range(80))           # sentence ids, contiguous
    ids = [rng.randrange(20) for _ in sent]
    spans = [rng.randint(1, window) for _ in sent]
    inputs, targets = w2v.window_pairs(torch.tensor(ids), torch.tensor(sent), torch.tensor(spans), window)
    fast = Counter(zip(inputs.tolist(), targets.tolist(), strict=True))
    slow = Counter(w2v.window_pairs_reference(ids, sent, spans))
    assert fast == slow


# ---------------------------------------------------------------- the sparse step
@pytest.mark.parametrize("batch,negative", [(1, 1), (7, 5), (32, 3)])
def test_sgns_step_equals_autograd(batch, negative):
    """One sparse step == one SGD step on the summed loss (float64, duplicates included)."""
    gen = torch.Generator().manual_seed(batch)
    V, D = 11, 6
    w_in = torch.randn(V, D, generator=gen, dtype=torch.float64)
    w_out = torch.randn(V, D, generator=gen, dtype=torch.float64) * 0.3
    inputs = torch.randint(0, V, (batch,), generator=gen)
    targets = torch.randint(0, V, (batch,), generator=gen)
    negatives = torch.randint(0, V, (batch, negative), generator=gen)
    negatives[0, 0] = targets[0]                                      # gensim skips such a negative
    ref_in, ref_out = w_in.clone().requires_grad_(), w_out.clone().requires_grad_()
    loss = w2v.sgns_loss_reference(ref_in, ref_out, inputs, targets, negatives)
    loss.backward()
    lr = 0.05
    mean = w2v.sgns_step(w_in, w_out, inputs, targets, negatives, lr)
    torch.testing.assert_close(mean, loss.detach() / batch, atol=1e-12, rtol=1e-12)
    torch.testing.assert_close(w_in, ref_in.detach() - lr * ref_in.grad, atol=1e-12, rtol=1e-12)
    torch.testing.assert_close(w_out, ref_out.detach() - lr * ref_out.grad, atol=1e-12, rtol=1e-12)


# ---------------------------------------------------------------- training
@pytest.mark.parametrize("device,workers", [("cpu", 1), ("cpu", 2), pytest.param("cuda", 1, marks=pytest.mark.gpu)])
def test_training_learns_topics(device, workers):
    """Two topics with disjoint words: after training, words of a topic are closer to each other."""
    rng = random.Random(0)
    topics = [[f"a{i}" for i in range(8)], [f"b{i}" for i in range(8)]]
    sentences = [[rng.choice(topics[t]) for _ in range(8)] for t in (0, 1) for _ in range(300)]
    rng.shuffle(sentences)
    cfg = w2v.Word2VecConfig(dim=16, window=3, epochs=4, min_count=1, sample=0.0, batch_size=256, seed=2)
    result = w2v.train(sentences, cfg, device, watch=["a0"], cpu_workers=workers)
    assert result.device == device and result.vectors.device.type == "cpu"
    unit = F.normalize(result.vectors, dim=1)
    idx = [[result.vocab.index[w] for w in words] for words in topics]
    within = torch.stack([unit[i] @ unit[i].T for i in idx]).mean()
    across = (unit[idx[0]] @ unit[idx[1]].T).mean()
    assert within > across + 0.3
    assert all(n[0].startswith("a") for n in result.snapshots[-1].neighbours["a0"])


@pytest.fixture(scope="module")
def wiki_run():
    corpus = w2v.wiki_corpus(40_000)
    cfg = w2v.Word2VecConfig(dim=32, epochs=8, min_count=3, seed=3)
    return corpus, cfg, w2v.train(corpus.sentences, cfg, "cpu", watch=["african", "zzz-not-a-word"],
                                  cpu_workers=1)


def test_loss_decreases_and_a_related_pair_gets_closer(wiki_run):
    """Real text (first 40 K words of the Wikipedia sample, where "African Americans" and
    "United States" are frequent bigrams): the second word climbs from a random rank among the
    first word's neighbours to the very top (seeds 1-5 all give ranks 0-3)."""
    _, cfg, result = wiki_run
    first, last = result.loss_curve[0][1], result.loss_curve[-1][1]
    assert first > 4.0 and last < first - 1.0          # 6·log 2 ≈ 4.16 nats at the start
    init = w2v.init_vectors(len(result.vocab), cfg.dim, torch.Generator().manual_seed(cfg.seed))

    def rank(vectors, a, b):
        unit = F.normalize(vectors, dim=1)
        sims = unit @ unit[result.vocab.index[a]]
        return int((sims > sims[result.vocab.index[b]]).sum())

    assert rank(init, "african", "americans") > 20
    assert rank(result.vectors, "african", "americans") <= 3
    assert rank(result.vectors, "united", "states") < rank(init, "united", "states")
    assert rank(result.vectors, "united", "states") <= 5


def test_result_bookkeeping(wiki_run):
    corpus, cfg, result = wiki_run
    assert result.watched == ("african",)
    fractions = [s.fraction for s in result.snapshots]
    assert fractions[0] == 0.0 and fractions[-1] == 1.0 and fractions == sorted(fractions)
    assert len(result.snapshots) >= w2v.SNAPSHOTS_PER_RUN
    assert result.trained_words == sum(int(c) for c in result.vocab.counts) * cfg.epochs
    assert result.corpus_words == corpus.words
    assert result.vectors.shape == (len(result.vocab), cfg.dim) and result.pairs > 0
    assert [e for e, _ in result.loss_curve] == sorted(e for e, _ in result.loss_curve)


def test_training_is_deterministic_on_cpu():
    cfg = w2v.Word2VecConfig(dim=8, epochs=1, min_count=1, batch_size=64, seed=5)
    a = w2v.train(TOY, cfg, "cpu", cpu_workers=1).vectors
    b = w2v.train(TOY, cfg, "cpu", cpu_workers=1).vectors
    assert torch.equal(a, b)


def test_hogwild_workers_stop_on_the_time_limit(monkeypatch):
    """A JobTimeout in the reporting thread stops the helper threads too, and is raised."""
    from core.runtime.scheduler import JobTimeout

    monkeypatch.setattr(w2v, "TIME_LIMIT_S", 0.1)
    cfg = w2v.Word2VecConfig(dim=8, epochs=20, min_count=1, batch_size=16, sample=0.0)
    threads = torch.get_num_threads()
    with pytest.raises(JobTimeout):
        w2v.train(TOY * 20, cfg, "cpu", cpu_workers=3)
    assert torch.get_num_threads() == threads          # the intra-op setting is restored


def test_gensim_reference_sees_the_same_vocabulary(wiki_run):
    corpus, cfg, result = wiki_run
    pytest.importorskip("gensim")
    small = w2v.Word2VecConfig(dim=16, epochs=1, min_count=cfg.min_count)
    ref = w2v.train_gensim(corpus.sentences, small, workers=1)
    assert set(ref.words) == set(result.vocab.words)
    assert ref.vectors.shape == (len(result.vocab), 16)
    assert ref.trained_words == sum(int(c) for c in result.vocab.counts)


# ---------------------------------------------------------------- bad input
@pytest.mark.parametrize("field,value", [
    ("dim", 0), ("dim", w2v.MAX_DIM + 1), ("window", 0), ("negative", w2v.MAX_NEGATIVE + 1),
    ("epochs", w2v.MAX_EPOCHS + 1), ("alpha", 0.0), ("alpha", float("nan")), ("sample", -1.0),
    ("batch_size", 3), ("max_vocab", 5), ("dim", 2.5), ("min_count", True),
])
def test_config_out_of_range_is_refused(field, value):
    with pytest.raises(ValidationError):
        w2v.train(TOY, w2v.Word2VecConfig(**{field: value}), "cpu")


@pytest.mark.parametrize("sentences", [[], [[]], "not a list", [["one", "two"]] * 3])
def test_unusable_corpora_are_refused(sentences):
    with pytest.raises(ValidationError):
        w2v.train(sentences, w2v.Word2VecConfig(min_count=1), "cpu")


def test_corpus_is_capped(monkeypatch):
    monkeypatch.setattr(w2v, "MAX_CORPUS_WORDS", 50)
    rows, truncated = w2v.check_corpus([["w"] * 30, ["v"] * 30])
    assert truncated and sum(map(len, rows)) == 50


@pytest.mark.parametrize("data", [b"", b"\x00\x01\x02binary" * 50, "caf\xe9 ".encode("latin-1") * 300,
                                  b"   \n\t  ", b"too few words here"])
def test_bad_uploads_are_refused(data):
    with pytest.raises(ValidationError):
        w2v.upload_corpus(data, 10_000)


def test_upload_corpus_reads_text():
    text = ("The quick brown fox jumps over the lazy dog. " * 60).encode("utf-16")
    corpus = w2v.upload_corpus(text, 300, name="fox.txt")
    assert corpus.words == 300 and corpus.truncated and corpus.key.startswith("upload:")
    assert corpus.sentences[0][:4] == ("the", "quick", "brown", "fox")


@pytest.mark.parametrize("max_words", [10, w2v.MAX_CORPUS_WORDS + 1, "many"])
def test_wiki_corpus_size_is_checked(max_words):
    with pytest.raises(ValidationError):
        w2v.wiki_corpus(max_words)


# ---------------------------------------------------------------- GPU
@pytest.mark.gpu
def test_sgns_step_on_cuda_equals_cpu():
    gen = torch.Generator().manual_seed(0)
    V, D, B, K = 500, 64, 2048, 5
    w_in, w_out = torch.randn(V, D, generator=gen), torch.randn(V, D, generator=gen) * 0.1
    inputs, targets = torch.randint(0, V, (B,), generator=gen), torch.randint(0, V, (B,), generator=gen)
    negatives = torch.randint(0, V, (B, K), generator=gen)
    cpu_in, cpu_out = w_in.double(), w_out.double()
    w2v.sgns_step(cpu_in, cpu_out, inputs, targets, negatives, 0.025)
    gpu_in, gpu_out = w_in.cuda(), w_out.cuda()
    w2v.sgns_step(gpu_in, gpu_out, inputs.cuda(), targets.cuda(), negatives.cuda(), 0.025)
    torch.testing.assert_close(gpu_in.cpu().double(), cpu_in, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(gpu_out.cpu().double(), cpu_out, atol=1e-5, rtol=1e-5)
