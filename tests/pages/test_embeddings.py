"""pages/embeddings.py through app/main.py: queries, projection switch, graph, analogies,
sentences, word2vec training controls, and bad input (never a traceback)."""

from __future__ import annotations

import pytest

from core.models import embeddings as emb
from tests.pages.apptest import assert_clean, errors, open_page, texts

PAGE = "embeddings.py"


def _tab(at, name: str):
    at.session_state["emb_tab"] = name
    return at.run()


def _frames(at) -> list:
    return [df.value for df in at.dataframe]


@pytest.fixture(scope="module")
def page():
    return open_page(PAGE)


def test_first_load_shows_exact_static_neighbours(page):
    assert_clean(page)
    first = _frames(page)[0]
    assert "queen" in list(first["neighbour"])[:3]
    assert any("Exact search over 21,744 rows" in c for c in texts(page.caption))


@pytest.mark.parametrize("query,kind,needle", [
    ("", "error", "empty"),
    ("😀", "warning", "does not know"),
    ("x" * 60, "error", "longer than"),
])
def test_bad_queries_give_messages(page, query, kind, needle):
    page.text_input(key="emb_query").input(query).run()
    assert_clean(page)
    shown = texts(page.error if kind == "error" else page.warning)
    assert any(needle in s for s in shown), shown


def test_user_text_is_escaped(page):
    page.text_input(key="emb_query").input("<script>alert(1)</script>").run()
    assert_clean(page)
    rendered = " ".join(texts(page.markdown) + texts(page.caption) + texts(page.warning))
    assert "<script>" not in rendered and "&lt;script&gt;" in rendered


def test_word_split_into_pieces_offers_the_pieces(page):
    page.text_input(key="emb_query").input("tarkovsky").run()
    radio = page.radio(key="emb_piece_static")
    assert list(radio.options) == ["mean of the pieces", "tar", "##kovsky"]
    radio.set_value("tar").run()
    assert_clean(page)
    assert any("the piece 'tar' alone" in c.replace("&#x27;", "'") for c in texts(page.caption))


def test_sentence_query_searches_wikipedia_sentences(page):
    page.session_state["emb_pool_n"] = 50                      # encode a small pool
    page.text_input(key="emb_query").input("The war ended with a peace treaty").run()
    assert_clean(page)
    assert any("MiniLM sentence embeddings" in m for m in texts(page.markdown))
    assert len(_frames(page)[0]) == 10


def test_projection_switch_and_tsne_on_request():
    at = open_page(PAGE)
    at.slider(key="emb_slice_n").set_value(200).run()
    _tab(at, "Projection")
    assert_clean(at)
    assert any("PCA of" in c for c in texts(at.caption))
    at.radio(key="emb_proj_dims").set_value(3).run()
    assert_clean(at) and len(at.get("plotly_chart")) == 1
    at.radio(key="emb_proj_method").set_value("tsne").run()
    assert any("Showing PCA until" in c for c in texts(at.caption))
    at.button(key="emb_proj_run").click().run()
    assert_clean(at)
    assert any("TSNE of" in c for c in texts(at.caption))


def test_graph_tab_both_community_methods():
    at = open_page(PAGE)
    _tab(at, "kNN graph")
    assert_clean(at)
    assert any("communities, modularity" in c for c in texts(at.caption))
    at.radio(key="emb_graph_method").set_value("greedy").run()
    assert_clean(at) and len(at.get("plotly_chart")) == 1


def test_analogies_examples_and_missing_words():
    at = open_page(PAGE)
    _tab(at, "Analogies")
    assert_clean(at)
    assert any(m.label == "rank of queen" for m in at.metric)
    at.selectbox(key="emb_an_example").set_value("paris − france + italy ≈ rome").run()
    assert at.text_input(key="emb_an_a").value == "paris"
    assert any(m.label == "rank of rome" for m in at.metric)
    at.text_input(key="emb_an_b").input("😀").run()
    assert_clean(at)
    assert any("Not in the vocabulary" in w for w in texts(at.warning))


def test_sentence_heatmaps_and_bad_sentences():
    at = open_page(PAGE)
    _tab(at, "Sentences")
    assert_clean(at) and len(at.get("plotly_chart")) == 2
    at.text_area(key="emb_sentences").input("Same line.\nSame line.\nOther line.").run()
    assert any("repeated" in i for i in texts(at.info))
    at.text_area(key="emb_sentences").input("just one").run()
    assert_clean(at)
    assert any("at least two" in e for e in errors(at))


def test_word_list_contextual_space_and_k_larger_than_the_candidates():
    at = open_page(PAGE)
    at.radio(key="emb_slice_mode").set_value("My word list").run()
    at.text_area(key="emb_word_list").input("king, queen, King, castle, knight, bishop").run()
    assert any("kept once" in i for i in texts(at.info))
    at.toggle(key="emb_context").set_value(True).run()
    at.number_input(key="emb_k").set_value(50).run()
    assert_clean(at)
    assert any("fewer than k = 50" in w for w in texts(at.warning))


def test_training_controls_train_and_add_spaces():
    at = open_page(PAGE)
    _tab(at, "Train word2vec")
    at.select_slider(key="emb_w2v_words").set_value(20_000)
    at.slider(key="emb_w2v_epochs").set_value(2)
    at.select_slider(key="emb_w2v_dim").set_value(32)
    at.text_input(key="emb_w2v_watch").input("war, states, qqqq")
    at.button(key="emb_w2v_train").click().run()
    assert_clean(at)
    labels = [m.label for m in at.metric]
    assert "PyTorch SGNS, words/s" in labels and "gensim (C), words/s" in labels
    assert list(at.radio(key="emb_w2v_watch_pick").options) == ["war", "states"]
    at.radio(key="emb_w2v_watch_pick").set_value("states").run()
    assert_clean(at)
    assert any("qqqq" in i for i in texts(at.info))                 # watched word not in vocab
    assert any("all covered" in list(f["section"]) for f in _frames(at) if "section" in f)
    _tab(at, "Neighbours")
    at.text_input(key="emb_query").input("wars").run()
    assert_clean(at)
    assert any("word2vec (trained here)" in m for m in texts(at.markdown))
    assert any("Close matches" in w and "war" in w for w in texts(at.warning))


@pytest.mark.parametrize("name,data,needle", [
    ("binary.txt", bytes(range(256)) * 20, "binary"),
    ("empty.txt", b"", "empty"),
    ("latin1.txt", "café au lait ".encode("latin-1") * 100, "not UTF-8"),
    ("short.txt", b"hello world", "words"),
])
def test_bad_uploads_give_messages(name, data, needle):
    at = open_page(PAGE)
    _tab(at, "Train word2vec")
    at.radio(key="emb_w2v_source").set_value("Upload a text file").run()
    at.file_uploader(key="emb_w2v_upload").upload(name, data, "text/plain").run()
    at.button(key="emb_w2v_train").click().run()
    assert_clean(at)
    assert any(needle in e for e in errors(at)), errors(at)


# ---------------------------------------------------------------- SmolLM2's input table
def test_smollm2_table_beside_minilm_with_exact_neighbours(page):
    """The second column is the real LLM's table; its list is the float64 brute force of core."""
    page.text_input(key="emb_query").input("king").run()
    assert_clean(page)
    frames = _frames(page)
    assert "**SmolLM2 input table (static BPE, whole words)** · 576 dims" in texts(page.markdown)
    space = emb.smollm2_static_space()
    qv = emb.query_vector(space, emb.parse_query("king"))
    ref = [space.items[r] for r, _ in emb.nearest_reference(space, qv.vector, 10, exclude=[qv.row])]
    assert list(frames[1]["neighbour"]) == ref and "␣queen" in ref
    assert any("Exact search over 31,585 rows" in c for c in texts(page.caption))
    variants = emb.surface_variants("king", tuple(ref))
    assert any(f"Here {len(variants)} of SmolLM2's 10 neighbours of “king”" in c for c in texts(page.caption))
    assert any("tied input/output matrix (576 dims)" in c for c in texts(page.caption))


def test_smollm2_offers_its_bpe_pieces_and_can_be_switched_off(page):
    page.text_input(key="emb_query").input("tarkovsky").run()
    radio = page.radio(key="emb_piece_smollm2")
    assert list(radio.options) == ["mean of the pieces", "␣t", "ark", "ovsky"]
    radio.set_value("ark").run()
    assert_clean(page)
    assert any("the piece 'ark' alone" in c.replace("&#x27;", "'") for c in texts(page.caption))
    page.toggle(key="emb_smollm2").set_value(False).run()
    assert_clean(page)
    assert not any(m.startswith("**SmolLM2 input table") for m in texts(page.markdown))
    assert any("More spaces side by side" in i for i in texts(page.info))
    page.toggle(key="emb_smollm2").set_value(True).run()


def test_smollm2_projection_and_graph():
    at = open_page(PAGE)
    at.slider(key="emb_slice_n").set_value(200).run()
    _tab(at, "Projection")
    at.selectbox(key="emb_proj_space").set_value("smollm2").run()
    assert_clean(at)
    pca = next(c for c in texts(at.caption) if c.startswith("PCA of"))
    shown = int(pca.split()[2].replace(",", ""))
    missing = next((int(c.split()[0]) for c in texts(at.caption) if "slice words are not single rows" in c), 0)
    assert 180 <= shown <= 200 + 11 and shown + missing >= 200           # slice words as ␣word rows, + neighbours
    at.radio(key="emb_proj_method").set_value("tsne").run()
    at.button(key="emb_proj_run").click().run()
    assert_clean(at)
    assert any(c.startswith("TSNE of") for c in texts(at.caption))
    _tab(at, "kNN graph")
    at.selectbox(key="emb_graph_space").set_value("smollm2").run()
    assert_clean(at)
    assert any("communities, modularity" in c for c in texts(at.caption))
    assert any("␣King" in m for m in texts(at.markdown) if "community" in m)


def test_smollm2_in_analogies():
    at = open_page(PAGE)
    _tab(at, "Analogies")
    assert_clean(at)
    assert "**SmolLM2 input table**" in texts(at.markdown)
    assert [m.label for m in at.metric].count("rank of queen") == 2


# ---------------------------------------------------------------- issue 17: nothing heavy on a rerun
@pytest.mark.parametrize("tab,name,word", [("Sentences", "encode_texts", "violin"),
                                           ("kNN graph", "neighbour_graph", "cello"),
                                           ("Neighbours", "nearest", "harp"), ("Projection", "project", "flute")])
def test_a_rerun_recomputes_nothing(monkeypatch, tab, name, word):
    """MiniLM encoding, the kNN graph, exact search and projections come from app/cache: a rerun
    with the same inputs calls none of them again (issue 17)."""
    calls = []
    real = getattr(emb, name)
    monkeypatch.setattr(emb, name, lambda *a, **kw: calls.append(1) or real(*a, **kw))
    at = open_page(PAGE)
    at.text_input(key="emb_query").input(word).run()          # inputs no other test uses: a cold cache
    at.session_state["emb_tab"] = tab
    if tab == "Sentences":
        at.session_state["emb_sentences"] = f"The {word} played.\nA {word} sounded.\nRain fell."
    at.run()
    assert_clean(at)
    before = len(calls)
    assert before > 0
    at.run()
    at.run()
    assert_clean(at)
    assert len(calls) == before


# ---------------------------------------------------------------- in Chinese (?lang=zh)
def test_every_tab_in_chinese_with_the_chinese_examples():
    """?lang=zh: every tab and its main controls render without an error and without text missing
    from the catalog; the Chinese query and sentence examples say what an English model does with
    Chinese, with the numbers measured here."""
    from app import i18n

    before = set(i18n.MISSING)
    zh = lambda msgid: i18n.translate(msgid, "zh")              # noqa: E731
    at = open_page(PAGE, lang="zh")
    assert_clean(at)
    assert at.title[0].value == zh("Embedding neighbourhoods") != "Embedding neighbourhoods"
    at.slider(key="emb_slice_n").set_value(200).run()
    at.selectbox(key="emb_zh_query").set_value("猫坐在垫子上。").run()         # a Chinese query
    assert_clean(at)
    assert at.text_input(key="emb_query").value == "猫坐在垫子上。"
    note = next(i.value for i in at.info if "个汉字" in i.value)
    assert "[UNK]" in note and "UTF-8" in note
    assert any("查询向量" in c for c in texts(at.caption))
    at.toggle(key="emb_whole").set_value(False).run()
    assert_clean(at)
    at.text_input(key="emb_query").input("king").run()
    assert_clean(at)
    assert "**SmolLM2 输入嵌入表（静态 BPE）** · 576 维" in texts(at.markdown)
    _tab(at, zh("Projection"))
    assert_clean(at)
    at.radio(key="emb_proj_method").set_value("tsne").run()
    at.button(key="emb_proj_run").click().run()
    assert_clean(at)
    assert any(c.startswith("TSNE：") for c in texts(at.caption))
    _tab(at, zh("kNN graph"))
    assert_clean(at)
    assert any("社区 1：" in m for m in texts(at.markdown))
    _tab(at, zh("Analogies"))
    assert_clean(at)
    assert any(m.label == "queen 的排名" for m in at.metric)
    _tab(at, zh("Sentences"))
    at.selectbox(key="emb_sent_example").set_value("mixed").run()
    assert_clean(at) and len(at.get("plotly_chart")) == 2
    assert "猫坐在垫子上。" in at.text_area(key="emb_sentences").value
    assert any("MiniLM 只懂英文" in w for w in texts(at.warning))
    assert zh("mean cosine, same topic") in at.dataframe[0].value.columns
    at.selectbox(key="emb_sent_example").set_value("en").run()
    assert_clean(at)
    assert not any("MiniLM 只懂英文" in w for w in texts(at.warning))
    _tab(at, zh("Train word2vec"))
    at.select_slider(key="emb_w2v_words").set_value(20_000)
    at.slider(key="emb_w2v_epochs").set_value(1)
    at.select_slider(key="emb_w2v_dim").set_value(16)
    at.text_input(key="emb_w2v_watch").input("war, qqqq")
    at.button(key="emb_w2v_train").click().run()
    assert_clean(at)
    assert zh("PyTorch SGNS, words/s") in [m.label for m in at.metric]
    assert any(zh("all covered") in list(f[zh("section")]) for f in _frames(at) if zh("section") in f)
    assert not at.error, [e.value for e in at.error]
    missing = sorted(m for lang, m in i18n.MISSING - before if lang == "zh")
    assert not missing, missing
