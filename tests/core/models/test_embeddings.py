"""core.models.embeddings: exact neighbours vs brute force, PCA vs float64, analogies vs gensim, bad input."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from core.data import minilm
from core.models import embeddings as emb
from core.runtime.validation import ValidationError


def _random_space(n: int, d: int, seed: int = 0, eligible_share: float = 1.0) -> emb.Space:
    gen = torch.Generator().manual_seed(seed)
    vectors = torch.randn(n, d, generator=gen)
    eligible = torch.rand(n, generator=gen) < eligible_share
    eligible[0] = True
    return emb.make_space("rand", "random", "word", [f"w{i}" for i in range(n)], vectors, eligible)


@pytest.fixture(scope="module")
def static():
    return emb.minilm_static_space("cpu", whole_words_only=True)


# ---------------------------------------------------------------- the real spaces
def test_static_table_is_the_models_embedding_matrix():
    table = emb.static_table("cpu")
    model = minilm.load_model("cpu")
    assert torch.equal(table, model.embeddings.word_embeddings.weight.detach())
    assert len(emb.wordpiece_vocab()) == 30522 and emb.wordpiece_vocab()[1996] == "the"


def test_static_space_eligibility(static):
    assert len(static) == 30522 and static.dim == 384
    ok = [t for t, e in zip(static.items, static.eligible.tolist(), strict=True) if e]
    assert "king" in ok and "##ing" not in ok and "[unused0]" not in ok and "1990" not in ok
    every = emb.minilm_static_space("cpu", whole_words_only=False)
    assert bool(every.eligible[every.index["##ing"]]) and not bool(every.eligible[every.index["[CLS]"]])
    torch.testing.assert_close(static.unit.norm(dim=1), torch.ones(30522), atol=1e-5, rtol=0)


def test_encode_texts_equals_sentence_transformers():
    """Chunked encoding = sentence-transformers' pipeline (mean pooling, normalised)."""
    texts = ["king", "queen", "The cat sat on the mat.", "tarkovsky", "naïve café"]
    ours = emb.encode_texts(texts, "cpu", chunk=2)
    ref = torch.as_tensor(minilm.load_sentence_transformer("cpu").encode(texts))
    torch.testing.assert_close(ours, ref, atol=2e-5, rtol=1e-4)


# ---------------------------------------------------------------- neighbours
@pytest.mark.parametrize("n,d,share", [(50, 8, 1.0), (1000, 64, 0.6), (3000, 384, 0.3)])
@pytest.mark.parametrize("k", [1, 7, 100])
def test_nearest_equals_brute_force(n, d, share, k):
    space = _random_space(n, d, seed=n + k, eligible_share=share)
    query = torch.randn(d, generator=torch.Generator().manual_seed(k))
    exclude = [0, 3, 5]
    fast = emb.nearest(space, query, k, exclude)
    slow = emb.nearest_reference(space, query, k, exclude)
    assert [n.row for n in fast.items] == [r for r, _ in slow]
    np.testing.assert_allclose([n.score for n in fast.items], [s for _, s in slow], atol=1e-5)
    assert all(n.row not in exclude and bool(space.eligible[n.row]) for n in fast.items)
    assert [n.rank for n in fast.items] == list(range(1, len(fast.items) + 1))


def test_nearest_on_the_static_table(static):
    qv = emb.query_vector(static, emb.parse_query("King"))
    result = emb.nearest(static, qv.vector, 10, [qv.row])
    ref = emb.nearest_reference(static, qv.vector, 10, [qv.row])
    assert [n.row for n in result.items] == [r for r, _ in ref]
    words = [n.item for n in result.items]
    assert "queen" in words[:3] and "king" not in words
    assert result.candidates == int(static.eligible.sum()) - 1


def test_k_larger_than_the_candidates_is_clamped():
    space = _random_space(6, 4)
    result = emb.nearest(space, space.unit[0], 50, exclude=[0])
    assert len(result.items) == 5 and result.clamped and result.candidates == 5


@pytest.mark.parametrize("k", [0, -1, emb.MAX_K + 1, 2.5, "ten", None])
def test_bad_k_is_refused(k):
    space = _random_space(10, 4)
    with pytest.raises(ValidationError):
        emb.nearest(space, space.unit[0], k)


def test_nearest_rows_excludes_itself():
    space = _random_space(40, 6)
    rows = torch.tensor([1, 2, 3])
    top = emb.nearest_rows(space, rows, 4)
    assert top.shape == (3, 4)
    for r, row in zip(rows.tolist(), top.tolist(), strict=True):
        assert r not in row
        assert row == [n.row for n in emb.nearest(space, space.unit[r], 4, [r]).items]


# ---------------------------------------------------------------- queries
@pytest.mark.parametrize("text", ["", "   \n\t", 42, None])
def test_empty_or_non_text_queries_are_refused(text):
    with pytest.raises(ValidationError):
        emb.parse_query(text)


def test_query_is_cleaned_and_capped():
    q = emb.parse_query("  The   Cat\nSat ")
    assert q.text == "the cat sat" and q.words == ("the", "cat", "sat") and q.is_sentence
    long = emb.parse_query("a " * emb.MAX_QUERY_CHARS)
    assert long.truncated and len(long.text) <= emb.MAX_QUERY_CHARS
    with pytest.raises(ValidationError):
        emb.parse_query("x" * (emb.MAX_WORD_CHARS + 1))
    chinese = "猫" * (emb.MAX_WORD_CHARS + 1)               # no spaces between Chinese words: not refused
    assert emb.parse_query(chinese).words == (chinese,)


def test_a_wordpiece_mean_says_which_pieces_were_unknown(static):
    qv = emb.query_vector(static, emb.parse_query("猫坐在垫子上。"))
    unknown = sum(p == "[UNK]" for p in qv.pieces)
    assert 0 < unknown < len(qv.pieces)
    assert f"mean of the {len(qv.pieces) - unknown} known WordPiece pieces" in qv.how
    assert f"; {unknown} unknown left out)" in qv.how


def test_static_query_pieces(static):
    """'tarkovsky' is two WordPiece pieces: mean of pieces by default, or one piece."""
    q = emb.parse_query("tarkovsky")
    qv = emb.query_vector(static, q)
    assert qv.pieces == ("tar", "##kovsky") and qv.row is None and "mean" in qv.how
    expected = torch.nn.functional.normalize(static.unit[[static.index["tar"], static.index["##kovsky"]]].mean(0), dim=0)
    torch.testing.assert_close(qv.vector, expected)
    one = emb.query_vector(static, q, piece="##kovsky")
    assert one.row == static.index["##kovsky"]
    with pytest.raises(ValidationError):
        emb.query_vector(static, q, piece="king")


def test_static_query_unknown_characters(static):
    qv = emb.query_vector(static, emb.parse_query("😀"))
    assert qv.vector is None and qv.pieces == ("[UNK]",) and qv.missing == ("😀",)


def test_word_query_oov_gets_suggestions():
    space = emb.make_space("w", "w", "word", ["king", "queen", "kingdom", "castle"], torch.eye(4))
    qv = emb.query_vector(space, emb.parse_query("kingg"))
    assert qv.vector is None and qv.missing == ("kingg",) and qv.suggestions[0] == "king"
    mixed = emb.query_vector(space, emb.parse_query("king castle dragon"))
    assert mixed.missing == ("dragon",) and mixed.row is None
    torch.testing.assert_close(mixed.vector, torch.tensor([1.0, 0, 0, 1.0]) / math.sqrt(2))


def test_suggest_uses_whole_words_of_the_static_table(static):
    assert "queen" in emb.suggest(static, "quen")


# ---------------------------------------------------------------- analogies
def _analogy_space() -> emb.Space:
    # king = royal + male, queen = royal + female, man = male, woman = female (+ distractors)
    v = {"king": [1, 1, 0, 0.1], "queen": [1, 0, 1, 0.1], "man": [0, 1, 0, 0.1],
         "woman": [0, 0, 1, 0.1], "castle": [1, 0, 0, 1], "dog": [0, 0.5, 0.5, 1]}
    return emb.make_space("toy", "toy", "word", list(v), torch.tensor(list(v.values())))


def test_analogy_finds_the_offset():
    result = emb.analogy(_analogy_space(), "king", "man", "woman", k=3, expected="queen")
    assert result.answers[0].item == "queen" and result.expected_rank == 1
    assert result.expected_score == pytest.approx(result.answers[0].score)
    assert not {"king", "man", "woman"} & {n.item for n in result.answers}


def test_analogy_without_exclusion_can_return_an_input():
    result = emb.analogy(_analogy_space(), "king", "man", "woman", k=6, exclude_inputs=False)
    assert {"king", "woman"} <= {n.item for n in result.answers}


def test_analogy_reports_missing_words():
    result = emb.analogy(_analogy_space(), "king", "mann", "woman", expected="queen")
    assert result.missing == ("mann",) and result.answers == () and "man" in result.suggestions["mann"]
    with pytest.raises(ValidationError):
        emb.analogy(_analogy_space(), "king", "a man", "woman")


def test_analogy_on_the_static_table(static):
    result = emb.analogy(static, "king", "man", "woman", expected="queen")
    assert result.expected_rank is not None and result.expected_rank <= 3


def test_analogy_accuracy_equals_gensims_evaluation():
    """Our 3CosAdd scorer == gensim's KeyedVectors.evaluate_word_analogies on the same vectors."""
    gensim = pytest.importorskip("gensim")
    from core.models import word2vec as w2v

    corpus = w2v.wiki_corpus(60_000)
    model = gensim.models.Word2Vec([list(s) for s in corpus.sentences], vector_size=24, min_count=3,
                                   epochs=2, sg=1, workers=1, seed=1)
    from core.data.corpus import questions_words_path

    questions_file = questions_words_path()
    _, sections = model.wv.evaluate_word_analogies(str(questions_file))
    space = emb.word_vectors_space("g", "g", list(model.wv.index_to_key), torch.from_numpy(model.wv.vectors))
    ours = emb.analogy_accuracy(space, emb.load_questions(questions_file))
    total = sections[-1]
    assert ours.covered == len(total["correct"]) + len(total["incorrect"]) > 50
    assert ours.correct == len(total["correct"])
    assert ours.total == 19544          # Mikolov et al. 2013a, Table 1: 8,869 + 10,675 questions


def test_analogy_accuracy_restricted_vocabulary():
    space = _analogy_space()
    # king − man + dog is nearest to castle, so the second question is answered wrong
    questions = (("s", ("man", "king", "woman", "queen")), ("s", ("man", "king", "dog", "queen")))
    full = emb.analogy_accuracy(space, questions)
    assert (full.correct, full.covered, full.total) == (1, 2, 2)
    assert full.sections == (("s", 1, 2),)
    part = emb.analogy_accuracy(space, questions, restrict={"man", "king", "woman", "queen"})
    assert (part.correct, part.covered, part.accuracy, part.coverage) == (1, 1, 1.0, 0.5)


# ---------------------------------------------------------------- projections
@pytest.mark.parametrize("n,d,dims", [(60, 16, 2), (500, 384, 3), (5000, 384, 2)])
def test_pca_equals_float64_reference(n, d, dims):
    gen = torch.Generator().manual_seed(n)
    # clear gaps between the top components, so they are well defined
    scale = torch.cat([torch.tensor([6.0, 4.5, 3.0]), torch.linspace(1.5, 0.1, d - 3)])
    x = torch.randn(n, d, generator=gen) * scale + 0.5
    coords, share = emb.pca(x, dims)
    ref_coords, ref_share = emb.pca_reference(x, dims)
    torch.testing.assert_close(share.double(), ref_share, atol=1e-5, rtol=1e-4)
    top = float(ref_coords.abs().max())
    torch.testing.assert_close(coords.double() / top, ref_coords / top, atol=1e-4, rtol=0)


@pytest.mark.parametrize("method,dims", [("pca", 2), ("pca", 3), ("tsne", 3), ("umap", 2)])
def test_project_shapes(method, dims):
    """One run per method (UMAP compiles its numba kernels first: ~15 s of CPU)."""
    x = torch.randn(40, 12, generator=torch.Generator().manual_seed(1))
    out = emb.project(x, emb.ProjectionConfig(method=method, dims=dims, perplexity=30.0))
    assert out.coords.shape == (40, dims) and np.isfinite(out.coords).all()
    assert (out.explained is not None) == (method == "pca")
    if method == "tsne":
        assert "perplexity lowered" in out.note


@pytest.mark.parametrize("config,n", [
    (emb.ProjectionConfig(method="tsne"), emb.MAX_POINTS["tsne"] + 1),
    (emb.ProjectionConfig(method="pca", dims=3), 4),
    (emb.ProjectionConfig(method="mds"), 50),
    (emb.ProjectionConfig(dims=4), 50),
    (emb.ProjectionConfig(method="tsne", perplexity=float("inf")), 50),
])
def test_project_refuses(config, n):
    with pytest.raises(ValidationError):
        emb.project(torch.randn(n, 8), config)


def test_neighbour_overlap():
    angles = torch.linspace(0, math.pi, 200)
    circle = torch.stack([angles.cos(), angles.sin()], dim=1)           # cosine order = distance order
    assert emb.neighbour_overlap(circle, circle.numpy(), k=4) == pytest.approx(1.0)
    shuffled = circle[torch.randperm(200, generator=torch.Generator().manual_seed(0))].numpy()
    assert emb.neighbour_overlap(circle, shuffled, k=4) < 0.2


# ---------------------------------------------------------------- kNN graph
@pytest.mark.parametrize("method", ["louvain", "greedy"])
def test_neighbour_graph(static, method):
    qv = emb.query_vector(static, emb.parse_query("river"))
    config = emb.GraphConfig(ring=8, second=3, edges_per_node=3, method=method)
    g = emb.neighbour_graph(static, qv, "river", config)
    nodes = set(g.graph.nodes)
    assert g.query == "river" and g.graph.nodes["river"]["ring"] == 0
    ring1 = {n for n in nodes if g.graph.nodes[n]["ring"] == 1}
    assert ring1 == {n.item for n in emb.nearest(static, qv.vector, 8, [qv.row]).items}
    assert set().union(*g.communities) == nodes and sum(map(len, g.communities)) == len(nodes)
    assert all(d["weight"] > 0 for *_, d in g.graph.edges(data=True))
    assert set(g.positions) == nodes and -0.5 <= g.modularity <= 1.0


def test_neighbour_graph_for_a_vector_that_is_no_row(static):
    qv = emb.query_vector(static, emb.parse_query("tarkovsky"))
    g = emb.neighbour_graph(static, qv, "tarkovsky", emb.GraphConfig(ring=5, second=0))
    assert "tarkovsky" in g.graph and g.graph.number_of_nodes() == 6


def test_neighbour_graph_refuses_bad_config(static):
    qv = emb.query_vector(static, emb.parse_query("river"))
    with pytest.raises(ValidationError):
        emb.neighbour_graph(static, qv, "river", emb.GraphConfig(ring=emb.MAX_GRAPH_RING + 1))
    with pytest.raises(ValidationError):
        emb.neighbour_graph(static, qv, "river", emb.GraphConfig(method="spectral"))


# ---------------------------------------------------------------- lists and sentences
def test_word_list_dedupes_and_caps(monkeypatch):
    listed = emb.parse_word_list("King, queen,king\nQUEEN  castle;" + "x" * 50)
    assert listed.words == ("king", "queen", "castle") and set(listed.duplicates) == {"king", "queen"}
    assert len(listed.too_long) == 1 and not listed.truncated and listed.given == 6
    monkeypatch.setattr(emb, "MAX_LIST_WORDS", 3)
    capped = emb.parse_word_list("a b c d e")
    assert capped.words == ("a", "b", "c") and capped.truncated
    with pytest.raises(ValidationError):
        emb.parse_word_list(" , ;\n")


def test_vocab_slice(static):
    sl = emb.vocab_slice(static, ["king", "tarkovsky", "##ing", "queen"])
    assert sl.words == ("king", "queen") and sl.missing == ("tarkovsky", "##ing")
    assert [static.items[r] for r in sl.rows] == ["king", "queen"]


def test_frequent_words_are_the_wikipedia_sample_counts():
    top = emb.frequent_words(5)
    assert top == ("the", "of", "and", "in", "to")
    with pytest.raises(ValidationError):
        emb.frequent_words(emb.MAX_LIST_WORDS + 1)


def test_sentences_parsing():
    parsed = emb.parse_sentences("One.\n\nTwo.\nOne.\n" + "y" * (emb.MAX_SENTENCE_CHARS + 5))
    assert parsed.sentences[:2] == ("One.", "Two.") and parsed.duplicates == 1 and parsed.cut == 1
    many = emb.parse_sentences("\n".join(f"s{i}" for i in range(emb.MAX_SENTENCES + 3)))
    assert len(many.sentences) == emb.MAX_SENTENCES and many.truncated
    for bad in ["", "only one", "same\nsame"]:
        with pytest.raises(ValidationError):
            emb.parse_sentences(bad)


def test_similarity_matrix_and_static_sentence_vectors(static):
    sentences = ["the cat sat on the mat", "the cat sat on the mat .", "stocks fell"]
    mat = emb.similarity_matrix(emb.static_sentence_vectors(static, sentences))
    assert mat.shape == (3, 3) and np.allclose(mat, mat.T) and np.allclose(np.diag(mat), 1.0)
    assert mat[0, 1] > mat[0, 2]


def test_wiki_sentences():
    pool = emb.wiki_sentences(30)
    assert len(pool) == 30 == len(set(pool))
    assert all(8 <= len(s.split()) <= 40 for s in pool)


# ---------------------------------------------------------------- GPU
@pytest.mark.gpu
def test_nearest_on_cuda_equals_brute_force():
    space = _random_space(30522, 384, seed=3)
    cuda = emb.make_space("rand", "random", "word", space.items, space.unit.cuda())
    query = torch.randn(384, generator=torch.Generator().manual_seed(0))
    fast = emb.nearest(cuda, query.cuda(), 20, [0])
    slow = emb.nearest_reference(space, query, 20, [0])
    assert [n.row for n in fast.items] == [r for r, _ in slow]


# ---------------------------------------------------------------- SmolLM2's input table
def test_smollm2_static_space_neighbours():
    """The real LLM's 49,152 x 576 table, read alone from the weights cache: exact cosine
    neighbours equal a float64 brute force; " king" lands next to " queen" and its case forms."""
    space = emb.smollm2_static_space()
    assert space.unit.shape == (49152, 576) and space.kind == "bpe"
    assert space.items[9690] == "system" and space.items[space.index["␣king"]] == "␣king"
    assert not bool(space.eligible[1])                             # <|im_start|> is never a neighbour
    qv = emb.query_vector(space, emb.parse_query("King"))
    assert qv.how == "the token '␣King'" and qv.row == space.index["␣King"]
    nb = emb.nearest(space, qv.vector, 10, exclude=[qv.row])
    items = [n.item for n in nb.items]
    assert "␣king" in items and "␣queen" in items
    ref = emb.nearest_reference(space, qv.vector, 10, exclude=[qv.row])
    assert [space.items[r] for r, _ in ref] == items
    split = emb.query_vector(space, emb.parse_query("tokenization"))
    assert split.pieces == ("␣token", "ization") and split.row is None
    alone = emb.query_vector(space, emb.parse_query("tokenization"), piece="ization")
    assert alone.row == space.index["ization"]


def test_bpe_vocab_slice_and_surface_variants():
    space = emb.smollm2_static_space()
    sl = emb.vocab_slice(space, ["king", "paris", "the", "zzqxv"])
    assert sl.words[0] == "␣king" and sl.words[1] in ("␣paris", "␣Paris") and sl.words[2] == "␣the"
    assert sl.missing == ("zzqxv",) and sl.rows[0] == space.index["␣king"]
    items = ("␣King", "␣kings", "␣queen", "␣Kings", "king", "␣kingdom", "␣KINGS")
    assert emb.surface_variants("king", items) == ("␣King", "␣kings", "␣Kings", "king", "␣KINGS")
    assert emb.surface_variants("kings", ("king", "␣Kings", "kin")) == ("king", "␣Kings")
    assert emb.surface_variants("Paris", ("␣London", "␣France")) == ()


# ---------------------------------------------------------------- the page's views (cached by fingerprint)
def test_fingerprint_follows_the_content():
    a, b = _random_space(50, 8, seed=1), _random_space(50, 8, seed=1)
    assert a.fingerprint == b.fingerprint and len(a.fingerprint) == 64
    bumped = a.unit.clone()
    bumped[7, 3] += 1e-6
    assert emb.make_space("rand", "random", "word", a.items, bumped, a.eligible).fingerprint != a.fingerprint
    fewer = a.eligible.clone()
    fewer[3] = not bool(fewer[3])
    assert emb.make_space("rand", "random", "word", a.items, a.unit, fewer).fingerprint != a.fingerprint
    renamed = emb.make_space("rand", "random", "word", [f"v{i}" for i in range(50)], a.unit, a.eligible)
    assert renamed.fingerprint != a.fingerprint
    assert emb.make_space("rand", "other label", "word", a.items, a.unit, a.eligible).fingerprint != a.fingerprint


def test_query_neighbours_and_projection_points():
    space = _random_space(300, 16, seed=4)
    query = emb.parse_query("w5")
    qv, nb = emb.query_neighbours(space, query, 6)
    assert qv.row == 5 and [n.row for n in nb.items] == [r for r, _ in emb.nearest_reference(space, qv.vector, 6, [5])]
    assert emb.query_neighbours(space, emb.parse_query("nothere"), 6)[1] is None
    words = [f"w{i}" for i in range(0, 40)]
    points = emb.projection_points(space, words, query, 6)
    assert points.labels[:40] == tuple(words) and points.roles[5] == "query"
    outside = [n.item for n in nb.items if int(n.item[1:]) >= 40]
    assert points.labels[40:] == tuple(outside) and set(points.roles[40:]) <= {"neighbour"}
    inside = {n.item for n in nb.items} - set(outside)
    assert all(points.roles[words.index(w)] == "neighbour" for w in inside)
    np.testing.assert_array_equal(points.vectors[:40], space.unit[:40].numpy())
    sentence = emb.projection_points(space, words, emb.parse_query("w1 w2"), 3)
    assert sentence.roles[-1] == "query" and sentence.labels[-1] == "w1 w2 (query)"
    view = emb.projection_view(points, emb.ProjectionConfig())
    assert view.projection.coords.shape == (len(points.labels), 2)
    assert view.kept == emb.neighbour_overlap(points.vectors, view.projection.coords, k=10)


def test_query_graph_is_the_neighbour_graph_of_the_query(static):
    config = emb.GraphConfig(ring=6, second=2)
    got = emb.query_graph(static, emb.parse_query("river"), config)
    ref = emb.neighbour_graph(static, emb.query_vector(static, emb.parse_query("river")), "river", config)
    assert sorted(got.graph.nodes) == sorted(ref.graph.nodes) and got.modularity == ref.modularity


def test_sentence_matrices(static):
    sentences = ("The cat sat on the mat.", "A kitten rested on a rug.", "Stocks fell.")
    got = emb.sentence_matrices(sentences, "cpu", static)
    np.testing.assert_allclose(got["contextual"], emb.similarity_matrix(emb.encode_texts(list(sentences))),
                               rtol=0, atol=1e-6)
    np.testing.assert_allclose(got["static"], emb.similarity_matrix(emb.static_sentence_vectors(static, sentences)))
    assert got["contextual"][0, 1] > got["contextual"][0, 2]
    assert set(emb.sentence_matrices(sentences, "cpu")) == {"contextual"}
    with pytest.raises(ValidationError):
        emb.sentence_matrices(sentences, "cpu", _random_space(10, 4))


def test_shared_analogy_scores_use_the_same_questions():
    a = _analogy_space()
    small = emb.make_space("small", "small", "word", a.items[:-1], a.unit[:-1])
    questions = [("s", ("man", "king", "woman", "queen")), ("s", tuple(a.items[:3]) + (a.items[-1],))]
    got = emb.shared_analogy_scores([a, small], questions)
    shared = set(small.items)
    assert got == [emb.analogy_accuracy(a, questions, shared), emb.analogy_accuracy(small, questions, shared)]
    assert got[0].covered == got[1].covered
