"""Embedding neighbourhoods: exact neighbours, projections, kNN graphs, analogies and
sentence similarity in MiniLM's spaces and SmolLM2's input table, plus word2vec trained live
(and gensim's reference)."""

import re

import numpy as np
import pandas as pd
import plotly.graph_objects as go
import streamlit as st

from app import cache, ui
from app.cache import embeddings as embeddings_cache
from app.i18n import N_, t, tr
from core.models import embeddings as emb
from core.models import word2vec as w2v

EXAMPLES = {   # label -> (a, b, c, expected): a − b + c ≈ expected (English inputs: the spaces are English)
    "king − man + woman ≈ queen": ("king", "man", "woman", "queen"),  # i18n: skip
    "paris − france + italy ≈ rome": ("paris", "france", "italy", "rome"),  # i18n: skip
    "berlin − germany + japan ≈ tokyo": ("berlin", "germany", "japan", "tokyo"),  # i18n: skip
    "walking − walk + swim ≈ swimming": ("walking", "walk", "swim", "swimming"),  # i18n: skip
    "went − go + see ≈ saw": ("went", "go", "see", "saw"),  # i18n: skip
    "bigger − big + small ≈ smaller": ("bigger", "big", "small", "smaller"),  # i18n: skip
}
# The sentence examples: three topics, two sentences each (a pair that says much the same thing),
# in English and in Chinese, line for line translations of each other.
EN_SENTENCES = (
    "The cat sat on the mat.", "A kitten was resting on the rug.",  # i18n: skip
    "The stock market fell sharply today.", "Shares dropped as investors panicked.",  # i18n: skip
    "Photosynthesis turns light into chemical energy.", "Plants convert sunlight into sugar.",  # i18n: skip
)
ZH_SENTENCES = (
    "猫坐在垫子上。", "一只小猫在地毯上休息。",
    "今天股市大幅下跌。", "投资者恐慌，股价下挫。",
    "光合作用把光能转化为化学能。", "植物把阳光转化为糖。",
)
MIXED_SENTENCES = tuple(s for pair in zip(ZH_SENTENCES, EN_SENTENCES, strict=True) for s in pair)
SENTENCE_SETS = {"en": (N_("English pairs (the default)"), EN_SENTENCES),
                 "zh": (N_("Chinese pairs (中文)"), ZH_SENTENCES),
                 "mixed": (N_("Each Chinese sentence beside its English translation"), MIXED_SENTENCES)}
DEFAULT_SENTENCES = "\n".join(EN_SENTENCES)
ZH_QUERIES = {"国王": "king", "中国": "China", "北京": "Beijing", "音乐": "music",  # i18n: skip
              "猫坐在垫子上。": "The cat sat on the mat."}  # i18n: skip
CJK = re.compile(r"[\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff]")  # i18n: skip (Han characters: CJK ideographs)
DEFAULT_WATCH = "king, war, music, river, france, einstein"

ui.page_header(
    t("Embedding neighbourhoods"),
    t("Words and sentences as vectors, and which ones sit close together: **exact cosine "
      "neighbours** in the original spaces of real models (all-MiniLM-L6-v2: its static WordPiece "
      "table and its contextual sentence embeddings; the input table of the LLM SmolLM2-135M), "
      "projections that show the shape, a kNN graph with communities, analogies, and **word2vec "
      "trained live** on Wikipedia next to gensim's."),
)
device = cache.device_name()
if "emb_an_a" not in st.session_state:
    for key, value in zip(("emb_an_a", "emb_an_b", "emb_an_c", "emb_an_expected"),
                          EXAMPLES["king − man + woman ≈ queen"], strict=True):
        st.session_state[key] = value


def _apply_example() -> None:
    values = EXAMPLES.get(st.session_state.get("emb_an_example"))
    if values:
        for key, value in zip(("emb_an_a", "emb_an_b", "emb_an_c", "emb_an_expected"), values,
                              strict=True):
            st.session_state[key] = value


# ---------------------------------------------------------------- shared controls
SLICE_MODES = (N_("Most frequent Wikipedia words"), N_("My word list"))
top = st.columns([1.9, 0.8, 1.2, 1.35, 1.75])
if "emb_query" not in st.session_state:          # set here, not as value=: the Chinese queries set it too
    st.session_state["emb_query"] = "king"
query_text = top[0].text_input(
    t("Query: a word or a sentence"), key="emb_query", max_chars=emb.MAX_QUERY_CHARS,
    help=t("One word: its neighbours among words/tokens. Several words: a sentence query."))
k = int(top[1].number_input(t("Neighbours k"), min_value=1, max_value=emb.MAX_K, value=10,
                            key="emb_k"))
whole_words = top[2].toggle(
    t("Whole words"), value=True, key="emb_whole",
    help=t("Static tables: search only whole-word tokens (MiniLM: not ##pieces, digits, signs, [unused]; "
           "SmolLM2: only a word after a space, ␣king)."))
use_smollm2 = top[3].toggle(
    t("SmolLM2 table"), value=True, key="emb_smollm2",
    help=t("The input embedding table of SmolLM2-135M (49,152 cased BPE tokens × 576), read from its "
           "weights: the real LLM's own vectors, beside MiniLM's."))
use_context = top[4].toggle(
    t("Contextual MiniLM"), value=device != "cpu", key="emb_context",
    help=t("Runs every word of the vocabulary slice alone through the whole model: roughly 5-10 s per "
           "1,000 words on a 2-core CPU (once; cached), instant on a GPU. Off by default on a CPU."))

slice_words: tuple[str, ...] = ()
with st.expander(t("Vocabulary slice: the words projected, and the candidates of the contextual "
                   "space"), expanded=False):
    slice_cols = st.columns([1.2, 2])
    slice_mode = slice_cols[0].radio(t("Slice"), SLICE_MODES, key="emb_slice_mode",
                                     format_func={m: tr(m) for m in SLICE_MODES}.get)
    slice_n = slice_cols[1].slider(t("Most frequent words"), 200, emb.MAX_LIST_WORDS, 2000, step=100,
                                   key="emb_slice_n", disabled=slice_mode != "Most frequent Wikipedia words")
    word_list_text = slice_cols[1].text_area(
        t("My words (commas, spaces or lines)"), "king, queen, prince, princess, man, woman, boy, girl, "
        "paris, france, rome, italy, berlin, germany, apple, banana, cherry, car, truck, bicycle",
        key="emb_word_list", height=90, disabled=slice_mode != "My word list")
    with ui.guard():
        if slice_mode == "My word list":
            listed = embeddings_cache.parse_word_list(word_list_text)
            slice_words = listed.words
            if listed.duplicates:
                st.info(t("Repeated words kept once: {words}.", words=ui.escape(', '.join(listed.duplicates[:20]))),
                        icon=":material/content_copy:")
            if listed.too_long:
                st.warning(t("{n} entries longer than {cap} characters were dropped.", n=len(listed.too_long),
                             cap=emb.MAX_WORD_CHARS), icon=":material/content_cut:")
            if listed.truncated:
                st.warning(t("Only the first {cap:,} distinct words are used (given: {given:,}).",
                             cap=emb.MAX_LIST_WORDS, given=listed.given), icon=":material/content_cut:")
        else:
            slice_words = embeddings_cache.frequent_words(int(slice_n))

query = None
with ui.guard():
    query = embeddings_cache.parse_query(query_text)
    if query.truncated:
        st.warning(t("The query is cut at {cap} characters.", cap=emb.MAX_QUERY_CHARS),
                   icon=":material/content_cut:")

static_space = smollm2_space = None
with ui.guard(), st.spinner(t("Reading MiniLM's token embedding table…")):
    static_space = embeddings_cache.static_space(device, bool(whole_words))
if use_smollm2:
    with ui.guard(), st.spinner(t("Reading SmolLM2's input embedding table…")):
        smollm2_space = embeddings_cache.smollm2_space(device, bool(whole_words))

trained = st.session_state.get("emb_w2v")     # dict set by the training tab
SPACE_NAMES = {"static": N_("MiniLM static table"), "smollm2": N_("SmolLM2 input table"),
               "context": N_("MiniLM contextual (words alone)"),
               "word2vec": N_("word2vec (trained here)"), "gensim": N_("gensim Word2Vec")}
if not trained:
    st.caption(t(":material/model_training: Train word2vec in the last tab to add it (and gensim's "
                 "reference) as spaces everywhere on this page."))


def _space_name(key: str, space: emb.Space | None = None) -> str:
    """The page's short name of a space (SPACE_NAMES), else its own label, in the session's language."""
    return tr(SPACE_NAMES[key]) if key in SPACE_NAMES else tr(space.label) if space is not None else key


def _query_label(label: str) -> str:
    """A point or node label from core; the query's own ("king (query)") in the session's language."""
    suffix = " (query)"  # i18n: skip (how core marks the query's label)
    return t("{shown} (query)", shown=label[:-len(suffix)]) if label.endswith(suffix) else label


def _word_spaces(with_context: bool = True) -> dict:
    """The word-level spaces available now (the contextual one is encoded on first use)."""
    spaces = {"static": static_space, "smollm2": smollm2_space}
    if with_context and use_context and slice_words:
        with ui.guard():
            bar, wait = st.empty(), st.empty()
            spaces["context"] = embeddings_cache.word_space(tuple(slice_words), device,
                                                            _progress=ui.progress_callback(bar),
                                                            _on_wait=ui.wait_callback(wait))
            bar.empty()
            wait.empty()
    if trained:
        spaces["word2vec"] = trained["space"]
        spaces["gensim"] = trained.get("gensim_space")
    return {key: space for key, space in spaces.items() if space is not None}


# ---------------------------------------------------------------- helpers
def _neighbour_frame(result: emb.Neighbours) -> pd.DataFrame:
    return pd.DataFrame({t("rank"): [n.rank for n in result.items],
                         t("neighbour"): [n.item for n in result.items],
                         t("cosine"): [round(n.score, 4) for n in result.items]})


def _show_neighbours(result: emb.Neighbours, key: str) -> None:
    st.dataframe(
        _neighbour_frame(result), hide_index=True, width="stretch", key=key,
        column_config={t("rank"): st.column_config.NumberColumn(t("rank"), width="small"),
                       t("cosine"): st.column_config.ProgressColumn(
                           t("cosine"), min_value=0.0, max_value=1.0, format="%.3f")})
    st.caption(t("Exact search over {n:,} rows in {time}.", n=result.candidates, time=ui.fmt_ms(result.search_ms)))
    if result.clamped:
        st.warning(t("Only {n} candidates exist here, fewer than k = {k}.", n=len(result.items), k=result.k_asked),
                   icon=":material/filter_list:")


def _query_vector(space: emb.Space, q: emb.Query, key: str) -> tuple[emb.QueryVector, str | None]:
    """The query in ``space`` and the piece chosen; for a word a static table splits, offer its pieces."""
    qv = embeddings_cache.query_vector(space, q)
    if space.kind in ("wordpiece", "bpe") and not q.is_sentence and len(qv.pieces) > 1 and qv.vector is not None:
        kind = "WordPiece" if space.kind == "wordpiece" else "BPE"  # i18n: skip (tokenizer names)
        word = q.cased if space.kind == "bpe" else q.text
        pieces = list(dict.fromkeys(qv.pieces))
        mean = t("mean of the pieces")
        choice = st.radio(
            t("“{word}” is not one {kind} token: it is split into {pieces}. Use", word=ui.escape(word),
              kind=kind, pieces=ui.escape(' · '.join(qv.pieces))),
            [mean, *pieces], key=key, horizontal=True)
        if choice != mean:
            return embeddings_cache.query_vector(space, q, choice), choice
    return qv, None


def _explain_missing(space_name: str, space: emb.Space, qv: emb.QueryVector) -> None:
    if qv.vector is None:
        text = t("**{space}** does not know {words}", space=ui.escape(space_name),
                 words=ui.escape(', '.join(qv.missing)))
        if space.kind in ("wordpiece", "bpe"):
            text += t(" (the tokenizer gives {pieces})", pieces=ui.escape(' · '.join(qv.pieces)))
        else:
            text += t(" ({n:,} words in its vocabulary)", n=len(space))
        if qv.suggestions:
            text += t(". Close matches: {words}", words=ui.escape(', '.join(qv.suggestions)))
        st.warning(text + t("."), icon=":material/search_off:")
    elif qv.missing:
        st.info(t("Not in the vocabulary, left out of the mean: {words}.", words=ui.escape(', '.join(qv.missing[:20]))),
                icon=":material/search_off:")


# ---------------------------------------------------------------- neighbours
def _pick_chinese_query() -> None:
    word = st.session_state.get("emb_zh_query")
    if word:
        st.session_state["emb_query"] = word


def _chinese_query_controls() -> None:
    """The spaces are English-centred: a note in every language, and Chinese queries to try."""
    cols = st.columns([3, 1.3])
    cols[0].caption(t("**The spaces here are English-centred.** MiniLM learned from English sentence pairs with "
                      "BERT's uncased English WordPiece vocabulary, SmolLM2 from mostly English text and code, "
                      "word2vec from the English Wikipedia sample. Try a Chinese query to see what that does to "
                      "the neighbours."))
    cols[1].selectbox(t("Chinese queries"), list(ZH_QUERIES), key="emb_zh_query", index=None,
                      on_change=_pick_chinese_query, placeholder=t("Try a Chinese query…"),
                      format_func={w: t("{word} ({english})", word=w, english=e) for w, e in ZH_QUERIES.items()}.get)


def _explain_chinese_query(q: emb.Query, spaces: dict) -> None:
    """What a Chinese query becomes in MiniLM's and SmolLM2's vocabularies, counted for this query."""
    text = q.cased or q.text
    han = CJK.findall(text)
    if not han:
        return
    pieces = embeddings_cache.wordpieces(text)
    lines = [t("**{query}** has {n} Chinese characters. Chinese puts no spaces between words, so the whole "
               "query counts as one word here (a query of several words needs spaces).",
               query=ui.escape(text), n=len(han))]
    if "static" in spaces:
        unknown = sum(p == "[UNK]" for p in pieces)
        lines.append(t("MiniLM's WordPiece vocabulary (BERT's, built for English) cuts Chinese into single "
                       "characters and has a token for only some of them: {unk} of the {n} pieces here are "
                       "[UNK] and are left out of the mean. With *Whole words* on, its candidates are English "
                       "words only, so the neighbours are whichever English words happen to lie nearest (rare "
                       "names and romanised Chinese, in our tries), not translations; switch *Whole words* off "
                       "and the nearest rows are other Chinese characters: the table groups them together, "
                       "apart from the English words.", unk=unknown, n=len(pieces)))
    if "smollm2" in spaces:
        bpe = embeddings_cache.bpe_pieces(text)
        partial = sum("�" in p for p in bpe)
        lines.append(t("SmolLM2's byte-level BPE cuts it into {n} pieces; {partial} of them are fragments of a "
                       "character's 3 UTF-8 bytes (shown as �), not characters. Their mean lands among rare "
                       "tokens (code identifiers, word fragments) that come up for almost any Chinese text: "
                       "the neighbours say nothing about the meaning.", n=len(bpe), partial=partial))
    st.info("\n\n".join(lines), icon=":material/translate:")


def _tab_neighbours() -> None:
    _chinese_query_controls()
    if query is None:
        st.info(t("Type a word or a sentence in the query box."), icon=":material/keyboard:")
    else:
        spaces = _word_spaces(with_context=not query.is_sentence)
        if query.is_sentence:
            pool_n = st.slider(t("Wikipedia sentences to search (encoded once, then cached)"), 50,
                               emb.MAX_POOL, 200, step=50, key="emb_pool_n")
            with ui.guard():
                bar, wait = st.empty(), st.empty()
                spaces = {"sentences": embeddings_cache.sentence_space(int(pool_n), device,
                                                                       _progress=ui.progress_callback(bar),
                                                                       _on_wait=ui.wait_callback(wait)),
                          **spaces}
                bar.empty()
                wait.empty()
        st.markdown(t("Nearest neighbours of **{query}** by cosine similarity, searched exhaustively in each "
                      "space's own dimensions.", query=ui.escape(query.text)))
        cols = st.columns(max(2, len(spaces)))
        found = {}
        for col, (key, space) in zip(cols, spaces.items(), strict=False):
            with col, ui.guard():
                label = tr(space.label)
                st.markdown(t("**{space}** · {d} dims", space=ui.escape(label), d=space.dim))
                qv, piece = _query_vector(space, query, key=f"emb_piece_{key}")
                _explain_missing(label, space, qv)
                if qv.vector is not None:
                    st.caption(t("Query vector: {how}.", how=ui.escape(tr(qv.how))))
                    found[key] = embeddings_cache.query_neighbours(space, query, k, piece)[1]
                    _show_neighbours(found[key], key=f"emb_nb_{key}")
        _explain_chinese_query(query, spaces)
        if not query.is_sentence and "smollm2" in found:
            _compare_static_tables(query, found)
        if "context" in spaces:
            st.caption(t("The contextual space searches the {n:,} words of the vocabulary slice, each run "
                         "alone through the whole model (mean pooling).", n=len(spaces['context'])))
        if len(spaces) == 1:
            with cols[1]:
                st.info(t("More spaces side by side: switch on **Contextual MiniLM** (top right) for "
                          "the full model's embedding of each word run alone through all six layers, "
                          "and train **word2vec** in the last tab (gensim's model comes with it). "
                          "A query of several words searches Wikipedia sentences."),
                        icon=":material/add_circle:")


def _compare_static_tables(q: emb.Query, found: dict) -> None:
    """What SmolLM2's table is, and how its cased BPE neighbours differ from MiniLM's, counted here."""
    word = q.cased or q.text
    smol = [n.item for n in found["smollm2"].items]
    variants = embeddings_cache.surface_variants(word, tuple(smol))
    st.caption(t("**SmolLM2's input table** is the real LLM's tied input/output matrix (576 dims): row *i* is "
                 "the vector token *i* enters the model with and also the direction the last hidden state is "
                 "scored against to predict token *i*. Its byte-level BPE is cased and marks a leading space "
                 "(␣king: the word after a space), so one word owns several rows; MiniLM's WordPiece table is "
                 "lower-cased, one row per word."))
    none = t("none")
    text = t("Here {n} of SmolLM2's {k} neighbours of “{word}” are the word itself in another case or number "
             "({variants})", n=len(variants), k=len(smol), word=ui.escape(word),
             variants=ui.escape(', '.join(variants[:6])) or none)
    if "static" in found:
        mini = [n.item for n in found["static"].items]
        same = embeddings_cache.surface_variants(q.text, tuple(mini))
        others = [w for w in mini if w not in same][:3]
        text += t("; in MiniLM's, {n} of {k} ({variants}), and its first other words are {others}", n=len(same),
                  k=len(mini), variants=ui.escape(', '.join(same[:6])) or none, others=ui.escape(', '.join(others)))
    st.caption(text + t("."))


# ---------------------------------------------------------------- projection
def _projection_figure(coords: np.ndarray, labels: list[str], roles: list[str], dims: int) -> go.Figure:
    fig = go.Figure()
    styles = {"slice": (t("slice"), "#adb5bd", 5, None), "neighbour": (t("neighbours"), "#F76707", 9, "top center"),
              "query": (t("query"), "#E64980", 14, "top center")}
    for role, (name, color, size, textpos) in styles.items():
        idx = [i for i, r in enumerate(roles) if r == role]
        if not idx:
            continue
        text = [ui.escape(_query_label(labels[i]) if role == "query" else labels[i]) for i in idx]
        common = {"name": name, "text": text, "hovertemplate": "%{text}<extra>" + name + "</extra>",
                  "mode": "markers+text" if textpos else "markers", "textposition": textpos}
        if dims == 3:
            fig.add_trace(go.Scatter3d(x=coords[idx, 0], y=coords[idx, 1], z=coords[idx, 2],
                                       marker={"size": size / 2, "color": color}, **common))
        else:
            fig.add_trace(go.Scatter(x=coords[idx, 0], y=coords[idx, 1],
                                     marker={"size": size, "color": color}, **common))
    return fig


def _projection_controls(word_spaces: dict) -> tuple[str, emb.ProjectionConfig]:
    """Space, method, dimensions and the method's own parameter."""
    pcols = st.columns([1.2, 1, 0.8, 1.4])
    space_key = pcols[0].selectbox(t("Space"), list(word_spaces), key="emb_proj_space",
                                   format_func={s: _space_name(s, sp) for s, sp in word_spaces.items()}.get)
    method = pcols[1].radio(t("Method"), ["pca", "tsne", "umap"], key="emb_proj_method", horizontal=True,
                            format_func={"pca": "PCA", "tsne": "t-SNE", "umap": "UMAP"}.get)  # i18n: skip (method names)
    dims = int(pcols[2].radio(t("Dimensions"), [2, 3], key="emb_proj_dims", horizontal=True))
    perplexity, n_neighbors = 30.0, 15
    with pcols[3]:
        if method == "tsne":
            perplexity = float(st.slider(t("Perplexity"), 5, 50, 30, key="emb_proj_perplexity"))
        elif method == "umap":
            n_neighbors = int(st.slider("UMAP n_neighbors", 5, 50, 15, key="emb_proj_nn"))  # i18n: skip (a parameter name)
    return space_key, emb.ProjectionConfig(method=method, dims=dims, perplexity=perplexity,
                                           n_neighbors=n_neighbors)


def _on_request(config: emb.ProjectionConfig, run_key: tuple) -> emb.ProjectionConfig:
    """t-SNE/UMAP only after their button was pressed for exactly these points; PCA until then."""
    if config.method == "pca":
        return config
    cost = (t("t-SNE (Barnes-Hut, sklearn) takes roughly 5-30 s for 1,000-3,000 points on a CPU core.")
            if config.method == "tsne" else
            t("UMAP compiles its numba kernels on first use (tens of seconds), then takes a few "
              "seconds for a few thousand points."))
    st.info(cost + t(" Up to {n:,} points.", n=emb.MAX_POINTS[config.method]), icon=":material/schedule:")
    name = "t-SNE" if config.method == "tsne" else "UMAP"  # i18n: skip (method names)
    if st.button(t("Run {method}", method=name), key="emb_proj_run"):
        st.session_state["emb_proj_requested"] = run_key
    if st.session_state.get("emb_proj_requested") != run_key:
        st.caption(t("Showing PCA until you press the button."))
        return emb.ProjectionConfig(method="pca", dims=config.dims)
    return config


def _show_projection(view: emb.ProjectionView, points: emb.ProjectionPoints, dims: int) -> None:
    projection = view.projection
    fig = _projection_figure(projection.coords, points.labels, points.roles, dims)
    axis = {"pca": "PC", "tsne": "t-SNE ", "umap": "UMAP "}[projection.method]  # i18n: skip (axis names)
    if dims == 3:
        fig.update_layout(scene={"xaxis_title": f"{axis}1", "yaxis_title": f"{axis}2",
                                 "zaxis_title": f"{axis}3"})
        ui.style_figure(fig, height=620)
    else:
        ui.style_figure(fig, x_title=t("{axis}1 (unitless)", axis=axis), y_title=t("{axis}2 (unitless)", axis=axis),
                        height=560)
    ui.plot(fig, key="emb_proj_fig")
    shares = (t(" · variance explained: {shares}", shares=", ".join(ui.fmt_pct(x) for x in projection.explained))
              if projection.explained else "")
    note = t(" Note: {note}.", note=tr(projection.note)) if projection.note else ""
    st.caption(t("{method} of {n:,} points in {time}{shares} · on average {kept} of each point's 10 nearest "
                 "neighbours (cosine, original space) are also among its 10 nearest in this picture.",
                 method=projection.method.upper(), n=len(points.vectors), time=ui.fmt_ms(projection.seconds * 1e3),
                 shares=shares, kept=ui.fmt_pct(view.kept)) + note)


def _tab_projection() -> None:
    word_spaces = _word_spaces()
    space_key, config = _projection_controls(word_spaces)
    space = word_spaces[space_key]
    points = embeddings_cache.projection_points(space, tuple(slice_words), query, k)
    if points.missing:
        st.caption(t("{n:,} slice words are not single rows of this space and are left out (e.g. {words}).",
                     n=len(points.missing), words=ui.escape(', '.join(points.missing[:8]))))
    run_key = (space_key, config, len(points.vectors), points.labels[:3], points.labels[-3:])
    config = _on_request(config, run_key)
    bar, wait = st.empty(), st.empty()
    view = embeddings_cache.projection(space, tuple(slice_words), query, k, config,
                                       _progress=ui.progress_callback(bar), _on_wait=ui.wait_callback(wait))
    bar.empty()
    wait.empty()
    _show_projection(view, points, config.dims)


# ---------------------------------------------------------------- kNN graph
def _graph_figure(g: emb.NeighbourGraph) -> go.Figure:
    pos, graph = g.positions, g.graph
    xs, ys = [], []
    for a, b in graph.edges():
        xs += [pos[a][0], pos[b][0], None]
        ys += [pos[a][1], pos[b][1], None]
    fig = go.Figure(go.Scatter(x=xs, y=ys, mode="lines", line={"width": 0.7, "color": "#ced4da"},
                               hoverinfo="skip", showlegend=False))
    for c, members in enumerate(g.communities):
        nodes = sorted(members)
        size = [22 if graph.nodes[n]["ring"] == 0 else (13 if graph.nodes[n]["ring"] == 1 else 8)
                for n in nodes]
        names = [ui.escape(_query_label(n) if n == g.query else n) for n in nodes]
        community = t("community {n}", n=c + 1)
        hover = [t("{node}<br>cosine to query {score:.3f}<br>{community}", node=name,
                   score=graph.nodes[n]['score'], community=community) for name, n in zip(names, nodes, strict=True)]
        fig.add_trace(go.Scatter(
            x=[pos[n][0] for n in nodes], y=[pos[n][1] for n in nodes], mode="markers+text",
            name=community, text=names, textposition="top center",
            hovertext=hover, hoverinfo="text",
            marker={"size": size, "color": ui.PALETTE[c % len(ui.PALETTE)],
                    "line": {"width": 1, "color": "white"}}))
    fig.update_xaxes(showticklabels=False, showgrid=False, zeroline=False)
    fig.update_yaxes(showticklabels=False, showgrid=False, zeroline=False)
    return fig


def _tab_graph() -> None:
    word_spaces = _word_spaces()
    gcols = st.columns(5)
    graph_space_key = gcols[0].selectbox(t("Space"), list(word_spaces), key="emb_graph_space",
                                         format_func={s: _space_name(s, sp) for s, sp in word_spaces.items()}.get)
    ring = gcols[1].slider(t("Neighbours of the query"), 3, emb.MAX_GRAPH_RING, 12, key="emb_graph_ring")
    second = gcols[2].slider(t("Neighbours of each"), 0, 10, 4, key="emb_graph_second")
    edges = gcols[3].slider(t("Edges per node"), 1, 10, 4, key="emb_graph_edges")
    methods = {"louvain": "Louvain", "greedy": t("Greedy modularity")}  # i18n: skip (Louvain: a method's name)
    method = gcols[4].radio(t("Communities"), list(methods), key="emb_graph_method", format_func=methods.get)
    if query is None:
        st.info(t("Type a word in the query box."), icon=":material/keyboard:")
    else:
        space = word_spaces[graph_space_key]
        qv, piece = _query_vector(space, query, key="emb_graph_piece")
        _explain_missing(_space_name(graph_space_key, space), space, qv)
        if qv.vector is not None:
            g = embeddings_cache.neighbour_graph(space, query, emb.GraphConfig(
                ring=int(ring), second=int(second), edges_per_node=int(edges), method=method), piece)
            fig = ui.style_figure(_graph_figure(g), height=600)
            ui.plot(fig, key="emb_graph_fig")
            st.caption(t("{nodes} nodes, {edges} edges, {n} communities, modularity {m:.3f}. Big node: the "
                         "query; medium: its nearest neighbours; small: their neighbours.",
                         nodes=g.graph.number_of_nodes(), edges=g.graph.number_of_edges(), n=len(g.communities),
                         m=g.modularity))
            for c, members in enumerate(g.communities[:8]):
                shown = [_query_label(n) if n == g.query else n for n in sorted(members)[:25]]
                st.markdown(f"<span style='color:{ui.PALETTE[c % len(ui.PALETTE)]}'>●</span> "  # i18n: skip (markup)
                            + t("community {n}: {members}", n=c + 1, members=ui.escape(', '.join(shown))),
                            unsafe_allow_html=True)


# ---------------------------------------------------------------- analogies
def _show_analogy(key: str, space: emb.Space, terms: tuple[str, str, str], expected: str,
                  exclude_inputs: bool) -> None:
    st.markdown(f"**{ui.escape(tr(SPACE_NAMES[key]))}**")
    result = embeddings_cache.analogy(space, *terms, k, expected.strip() or None, bool(exclude_inputs))
    if result.missing:
        no_match = t("no close match")
        hints = "; ".join(f"{ui.escape(w)}: {ui.escape(', '.join(h)) or no_match}"
                          for w, h in result.suggestions.items())
        st.warning(t("Not in the vocabulary: {words}. Close matches — {hints}.",
                     words=ui.escape(', '.join(result.missing)), hints=hints), icon=":material/search_off:")
        return
    if result.expected and result.expected_rank is None:
        st.info(t("“{word}” is not a candidate here (not a single row, or one of the inputs).",
                  word=ui.escape(result.expected)), icon=":material/help:")
    elif result.expected:
        st.metric(t("rank of {word}", word=ui.escape(result.expected)), f"#{result.expected_rank:,}",
                  t("cosine {x:.3f}", x=result.expected_score), delta_color="off")
    st.dataframe(pd.DataFrame({t("rank"): [n.rank for n in result.answers],
                               t("answer"): [n.item for n in result.answers],
                               t("cosine"): [round(n.score, 4) for n in result.answers]}),
                 hide_index=True, width="stretch", key=f"emb_an_table_{key}")
    pieces = [tr(h) for h in result.how if "mean" in h]   # core's English: "mean of the 2 WordPiece pieces ..."
    if pieces:
        st.caption(t("Some terms are several tokens: {how}", how=ui.escape("; ".join(pieces))))


def _tab_analogies() -> None:
    st.selectbox(t("Examples"), list(EXAMPLES), key="emb_an_example", on_change=_apply_example,
                 index=None, placeholder=t("Pick an example set…"),
                 help=t("English words: the vocabularies of these spaces are English."))
    acols = st.columns(5)
    a = acols[0].text_input("a", key="emb_an_a", max_chars=emb.MAX_WORD_CHARS)
    b = acols[1].text_input("− b", key="emb_an_b", max_chars=emb.MAX_WORD_CHARS)
    c = acols[2].text_input("+ c", key="emb_an_c", max_chars=emb.MAX_WORD_CHARS)
    expected = acols[3].text_input(t("expected (optional)"), key="emb_an_expected",
                                   max_chars=emb.MAX_WORD_CHARS)
    exclude_inputs = acols[4].toggle(t("Exclude a, b, c"), value=True, key="emb_an_exclude",
                                     help=t("The usual protocol. Without it, the answer is often "
                                            "a or c itself (Nissim et al. 2020)."))
    analogy_spaces = _word_spaces(with_context=False)
    cols = st.columns(max(2, len(analogy_spaces)))
    if len(analogy_spaces) == 1:
        cols[1].info(t("Train **word2vec** in the last tab to compare: on a corpus of 400 K words its "
                       "analogies are far weaker than those of MiniLM's table, learned from billions "
                       "of words. The contextual space is left out here: each word alone through the "
                       "model is not what sentence embeddings were trained for."),
                     icon=":material/compare_arrows:")
    for col, (key, space) in zip(cols, analogy_spaces.items(), strict=False):
        with col, ui.guard():
            _show_analogy(key, space, (a, b, c), expected, exclude_inputs)


# ---------------------------------------------------------------- sentences
def _apply_sentence_set() -> None:
    chosen = SENTENCE_SETS.get(st.session_state.get("emb_sent_example"))
    if chosen:
        st.session_state["emb_sentences"] = "\n".join(chosen[1])


def _topic_means(mat: np.ndarray, rows: list[int], cols: list[int]) -> tuple[float, float]:
    """Mean cosine of (rows[i], cols[j]) over the same topic (i // 2 == j // 2, i != j within a
    language) and over different topics; rows/cols index the six sentences of one language each."""
    same, other = [], []
    for i, r in enumerate(rows):
        for j, c in enumerate(cols):
            if r == c or (rows == cols and j <= i):
                continue
            (same if i // 2 == j // 2 else other).append(mat[r, c])
    return float(np.mean(same)), float(np.mean(other))


def _explain_chinese_sentences(sentences: list[str]) -> None:
    """MiniLM is English-only: what it does to Chinese sentences, measured on the example sets."""
    chinese = [s for s in sentences if CJK.search(s)]
    if not chinese:
        return
    pieces = [p for s in chinese for p in embeddings_cache.wordpieces(s)]
    unknown = sum(p == "[UNK]" for p in pieces)
    mat = embeddings_cache.sentence_matrices(MIXED_SENTENCES, device)["contextual"]     # (12, 12): zh, en, zh, en…
    zh, en = list(range(0, 12, 2)), list(range(1, 12, 2))
    stats = {"zh": _topic_means(mat, zh, zh), "en": _topic_means(mat, en, en), "cross": _topic_means(mat, zh, en)}
    own = float(np.mean([mat[z, e] for z, e in zip(zh, en, strict=True)]))             # a sentence and its translation
    st.warning(t(
        "**MiniLM is English-only.** all-MiniLM-L6-v2 was trained on English sentence pairs, and its WordPiece "
        "vocabulary (BERT's uncased English one) has no token for most Chinese characters: {unk:,} of the "
        "{tokens:,} tokens of the Chinese lines here are [UNK]. What is left is a few common characters and the "
        "punctuation, so unrelated Chinese sentences look far more alike to it than unrelated English ones. "
        "Measured on the example sets (table): two Chinese sentences on the same topic score a mean cosine of {zh_same:.2f}, on different topics {zh_other:.2f}; "
        "in English {en_same:.2f} against {en_other:.2f}. A Chinese sentence and its own English translation "
        "score {own:.2f}: the model does not put the two languages in one space. Chinese needs a multilingual or "
        "Chinese model (a multilingual MiniLM, a BGE or a text2vec model), which this offline atlas does not ship.",
        unk=unknown, tokens=len(pieces), zh_same=stats["zh"][0], zh_other=stats["zh"][1], en_same=stats["en"][0],
        en_other=stats["en"][1], own=own), icon=":material/translate:")
    names = {"zh": t("Chinese example, sentence with sentence"), "en": t("English example, sentence with sentence"),
             "cross": t("Chinese sentence with English sentence")}
    st.dataframe(pd.DataFrame([{t("sentences"): names[key], t("mean cosine, same topic"): f"{same:.3f}",
                                t("mean cosine, different topics"): f"{other:.3f}"}
                               for key, (same, other) in stats.items()]),
                 hide_index=True, width="stretch", key="emb_sent_zh_table")


def _tab_sentences() -> None:
    if "emb_sentences" not in st.session_state:     # set here, not as value=: the example sets set it too
        st.session_state["emb_sentences"] = DEFAULT_SENTENCES
    st.selectbox(t("Example sets"), list(SENTENCE_SETS), key="emb_sent_example", index=None,
                 on_change=_apply_sentence_set, placeholder=t("Pick an example set…"),
                 format_func={key: tr(label) for key, (label, _) in SENTENCE_SETS.items()}.get,
                 help=t("Three topics, two sentences each, in English and in Chinese (line for line "
                        "translations): MiniLM is an English model, and the Chinese sets show what that does."))
    text = st.text_area(t("Sentences, one per line"), key="emb_sentences", height=170)
    show_static = st.toggle(t("Also show the static table's bag of pieces (no context)"), value=True,
                            key="emb_sent_static")
    parsed = embeddings_cache.parse_sentences(text)
    if parsed.duplicates:
        st.info(t("{n} repeated line(s) dropped.", n=parsed.duplicates), icon=":material/content_copy:")
    if parsed.cut:
        st.warning(t("{n} sentence(s) cut at {cap} characters.", n=parsed.cut, cap=emb.MAX_SENTENCE_CHARS),
                   icon=":material/content_cut:")
    if parsed.truncated:
        st.warning(t("Only the first {n} sentences are used.", n=emb.MAX_SENTENCES), icon=":material/content_cut:")
    sentences = list(parsed.sentences)
    wait = st.empty()
    found = embeddings_cache.sentence_matrices(parsed.sentences, device, static_space if show_static else None,
                                               _on_wait=ui.wait_callback(wait))
    wait.empty()
    titles = {"contextual": t("MiniLM sentence embeddings (contextual)"),
              "static": t("MiniLM static table, mean of pieces")}
    mats = {titles[key]: mat for key, mat in found.items()}
    names = [f"S{i + 1}" for i in range(len(sentences))]
    short = [ui.escape(s if len(s) <= 80 else s[:77] + "…") for s in sentences]
    cols = st.columns(len(mats))
    line = t("{a}: {a_text}<br>{b}: {b_text}<br>cosine {x:.3f}")
    for i_fig, (col, (title, mat)) in enumerate(zip(cols, mats.items(), strict=True)):
        hover = [[line.format(a=names[i], a_text=short[i], b=names[j], b_text=short[j], x=mat[i, j])
                  for j in range(len(names))] for i in range(len(names))]
        fig = go.Figure(go.Heatmap(z=mat, x=names, y=names, zmin=-0.2, zmax=1.0, colorscale="Viridis",
                                   text=np.round(mat, 2), texttemplate="%{text}", hovertext=hover,
                                   hoverinfo="text", colorbar={"title": t("cosine")}))
        fig.update_yaxes(autorange="reversed")
        with col:
            ui.plot(ui.style_figure(fig, x_title=t("sentence"), y_title=t("sentence"), height=430, title=title),
                    key=f"emb_sent_fig_{i_fig}")
    st.markdown("\n".join(f"- **{names[i]}** {short[i]}" for i in range(len(sentences))))
    _explain_chinese_sentences(sentences)


# ---------------------------------------------------------------- train word2vec
CORPUS_SOURCES = (N_("Wikipedia sample"), N_("Upload a text file"))


def _training_inputs():
    """Widgets of the training tab; returns (config, source, upload, max_words, watch, with_gensim)."""
    cols = st.columns(4)
    source = cols[0].radio(t("Corpus"), CORPUS_SOURCES, key="emb_w2v_source",
                           format_func={m: tr(m) for m in CORPUS_SOURCES}.get)
    upload = None
    if source == "Upload a text file":
        upload = cols[0].file_uploader(t("Plain text (UTF-8 or UTF-16)"), type=["txt", "md", "csv"],
                                       key="emb_w2v_upload")
    max_words = cols[1].select_slider(
        t("Corpus words (at most)"), [5_000, 20_000, 50_000, 100_000, 200_000, 500_000, 1_000_000,
                                      w2v.MAX_CORPUS_WORDS],
        value=500_000, key="emb_w2v_words", format_func=ui.fmt_count,
        help=t("The Wikipedia sample has about 412 K words; 500 K takes all of it."))
    epochs = cols[1].slider(t("Epochs"), 1, w2v.MAX_EPOCHS, 5, key="emb_w2v_epochs")
    dim = cols[2].select_slider(t("Dimension"), [16, 32, 50, 64, 100, 128, 200, 300], value=100,
                                key="emb_w2v_dim")
    window = cols[2].slider(t("Window (max words each side)"), 1, w2v.MAX_WINDOW, 5, key="emb_w2v_window")
    negative = cols[3].slider(t("Negatives per pair"), 1, w2v.MAX_NEGATIVE, 5, key="emb_w2v_negative")
    min_count = cols[3].slider(t("Minimum count"), 1, 50, 5, key="emb_w2v_min_count")
    with st.expander(t("More settings")):
        more = st.columns(4)
        sample = more[0].select_slider(t("Subsampling threshold t"), [0.0, 1e-5, 1e-4, 1e-3, 1e-2],
                                       value=1e-3, key="emb_w2v_sample", format_func=lambda x: f"{x:g}")
        alpha = more[1].select_slider(t("Learning rate"), [0.005, 0.01, 0.025, 0.05, 0.1], value=0.025,
                                      key="emb_w2v_alpha")
        batch = more[2].select_slider(t("Pairs per SGD step"), [256, 1024, 2048, 4096, 8192, 16384],
                                      value=4096, key="emb_w2v_batch")
        seed = more[3].number_input(t("Seed"), 0, 2**31 - 1, 1, key="emb_w2v_seed")
    watch = st.text_input(t("Watched words (up to {n}): their neighbours are snapshotted during training",
                            n=w2v.MAX_WATCHED), DEFAULT_WATCH, key="emb_w2v_watch")
    with_gensim = st.toggle(t("Also train gensim's Word2Vec with the same settings (the reference)"),
                            value=True, key="emb_w2v_gensim")
    config = w2v.Word2VecConfig(dim=int(dim), window=int(window), negative=int(negative),
                                sample=float(sample), min_count=int(min_count), epochs=int(epochs),
                                alpha=float(alpha), batch_size=int(batch), seed=int(seed))
    return config, source, upload, int(max_words), watch, with_gensim


def _train(config, source, upload, max_words, watch, with_gensim) -> None:
    watched = embeddings_cache.parse_word_list(watch).words[: w2v.MAX_WATCHED] if watch.strip() else ()
    if source == "Upload a text file":
        if upload is None:
            st.warning(t("Choose a text file first."), icon=":material/upload_file:")
            return
        with st.spinner(t("Reading the file…")):
            corpus = embeddings_cache.upload_corpus(upload.getvalue(), max_words, upload.name)
    else:
        with st.spinner(t("Preparing the Wikipedia sample…")):
            corpus = embeddings_cache.wiki_corpus(max_words)
    bar, wait = st.progress(0.0, text=t("Waiting for the device…")), st.empty()
    result, space = embeddings_cache.trained_word2vec(config, corpus, device, tuple(watched),
                                                      _progress=ui.progress_callback(bar),
                                                      _on_wait=ui.wait_callback(wait))
    entry = {"result": result, "space": space, "gensim": None, "gensim_space": None,
             "corpus": (corpus.source, corpus.words, corpus.truncated), "watch": tuple(watched)}
    if with_gensim:
        workers = max(1, min(8, cache.device_info().cpu_threads))
        bar.progress(0.0, text=t("gensim reference…"))
        entry["gensim"], entry["gensim_space"] = embeddings_cache.trained_gensim(
            config, corpus, device, workers, _progress=ui.progress_callback(bar))
    bar.empty()
    wait.empty()
    st.session_state["emb_w2v"] = entry
    st.rerun()


def _snapshot_frame(result, word: str, gensim_space) -> pd.DataFrame:
    columns = {}
    for snap in result.snapshots:
        columns[t("epoch {e:.1f}", e=snap.epoch)] = [f"{w} ({s:.2f})" for w, s in snap.neighbours[word]]
    if gensim_space is not None and word in gensim_space.index:
        _, got = embeddings_cache.query_neighbours(gensim_space, embeddings_cache.parse_query(word),
                                                   len(next(iter(columns.values()))))
        columns["gensim"] = [f"{n.item} ({n.score:.2f})" for n in got.items]
    return pd.DataFrame(columns, index=pd.RangeIndex(1, len(next(iter(columns.values()))) + 1, name=t("rank")))


def _show_training(entry) -> None:
    result, gensim = entry["result"], entry["gensim"]
    source, words, truncated = entry["corpus"]
    m = st.columns(5)
    m[0].metric(t("Corpus words"), ui.fmt_count(words, 0), tr(source), delta_color="off")
    m[1].metric(t("Vocabulary"), f"{len(result.vocab):,}", t("min count {n}", n=result.config.min_count),
                delta_color="off")
    m[2].metric(t("Positive pairs"), ui.fmt_count(result.pairs, 1), t("{n} epochs", n=result.config.epochs),
                delta_color="off")
    m[3].metric(t("PyTorch SGNS, words/s"), ui.fmt_count(result.words_per_s, 0),
                t("{s:.1f} s on {device}", s=result.seconds, device=result.device), delta_color="off")
    if gensim is not None:
        m[4].metric(t("gensim (C), words/s"), ui.fmt_count(gensim.words_per_s, 0),
                    t("{s:.1f} s, {n} threads", s=gensim.seconds, n=gensim.workers), delta_color="off")
    if truncated:
        st.info(t("The corpus was cut to {n:,} words.", n=words), icon=":material/content_cut:")
    curve = pd.DataFrame(result.loss_curve, columns=["epoch", "loss"])
    fig = go.Figure(go.Scatter(x=curve["epoch"], y=curve["loss"], mode="lines", name=t("SGNS loss"),
                               hovertemplate=t("epoch %{x:.2f}<br>loss %{y:.3f} nats<extra></extra>")))
    ui.plot(ui.style_figure(fig, x_title=t("epoch"), y_title=t("loss per positive pair (nats)"), height=300,
                            title=t("Training loss: −log σ(u·v) − Σ log σ(−u·v_neg), mean per pair")),
            key="emb_w2v_loss")
    if result.workers > 1:
        st.caption(t("{n} worker threads update the shared tables without locks (Hogwild, as gensim's threads "
                     "do): the curve is a little noisier than one thread's, the result as good.", n=result.workers))
    if result.watched:
        st.markdown(t("**Neighbours of the watched words as training goes** (cosine in brackets; the "
                      "last column is gensim's model, trained on the same words with the same settings)."))
        if st.session_state.get("emb_w2v_watch_pick") not in result.watched:
            st.session_state.pop("emb_w2v_watch_pick", None)       # a new run watches other words
        word = st.radio(t("Watched word"), result.watched, key="emb_w2v_watch_pick", horizontal=True)
        st.dataframe(_snapshot_frame(result, word, entry["gensim_space"]), width="stretch",
                     key="emb_w2v_snap")
    missing_watch = [w for w in entry["watch"] if w not in result.watched]
    if missing_watch:
        st.info(t("Watched words not in the vocabulary: {words}.", words=ui.escape(', '.join(missing_watch))),
                icon=":material/search_off:")
    if gensim is not None:
        _show_analogy_scores(entry)


def _show_analogy_scores(entry) -> None:
    scores = embeddings_cache.analogy_scores((entry["space"], entry["gensim_space"]))
    ours, ref = scores
    st.markdown(t("**Analogy accuracy on questions-words** (Mikolov et al. 2013a; top-1 of "
                  "b − a + c with a, b, c excluded, as gensim's `evaluate_word_analogies`)"))
    section, questions, here = t("section"), t("questions"), t("word2vec (here)")
    rows = [{section: s, questions: n, here: ui.fmt_pct(c / n) if n else "—",
             "gensim": ui.fmt_pct(c2 / n) if n else "—"}
            for (s, c, n), (_, c2, _) in zip(ours.sections, ref.sections, strict=True) if n]
    rows.append({section: t("all covered"), questions: ours.covered,
                 here: ui.fmt_pct(ours.accuracy), "gensim": ui.fmt_pct(ref.accuracy)})
    st.dataframe(pd.DataFrame(rows), hide_index=True, width="stretch", key="emb_w2v_analogies")
    st.caption(t("Covered: {n:,} of {total:,} questions ({share}): those whose four words are in the vocabulary "
                 "both models share. A corpus of a few hundred thousand words is far too small for high scores "
                 "(Mikolov et al. trained on billions); what matters here is that both implementations land in "
                 "the same range.", n=ours.covered, total=ours.total, share=ui.fmt_pct(ours.coverage)))


def _tab_training() -> None:
    st.markdown(t(
        "**Skip-gram with negative sampling**: every word predicts the words around it "
        "(a window of 1…*window* words, drawn per word), and learns to score each true pair above "
        "*negatives* random words drawn ∝ count^¾ — noise-contrastive estimation in its simplest "
        "form. Frequent words are subsampled. Training is plain sparse SGD on the rows a batch "
        "touches, in PyTorch, on this machine's device."))
    with ui.guard():
        inputs = _training_inputs()
        if st.button(t("Train word2vec"), type="primary", key="emb_w2v_train", icon=":material/play_arrow:"):
            _train(*inputs)
    if trained:
        with ui.guard():
            _show_training(trained)
    else:
        st.info(t("Press **Train word2vec**: the default run (the whole Wikipedia sample, 5 epochs) "
                  "takes well under a minute on 2 CPU cores; gensim's run a few seconds."),
                icon=":material/model_training:")


TAB_NAMES = (t("Neighbours"), t("Projection"), t("kNN graph"), t("Analogies"), t("Sentences"), t("Train word2vec"))
tabs = st.tabs(TAB_NAMES, key="emb_tab", on_change="rerun")
for tab, render in zip(tabs, (_tab_neighbours, _tab_projection, _tab_graph, _tab_analogies,
                              _tab_sentences, _tab_training), strict=True):
    if tab.open is not False:        # only the open tab runs (None: state not tracked)
        with tab, ui.guard():
            render()


ui.page_footer(
    t("""
**Neighbours** are exact: the query's vector is compared with every row of the space by cosine
similarity (one matrix-vector product and a top-k), in the space's own dimensions (384 for MiniLM,
576 for SmolLM2, 100 by default for word2vec). They are not read off the 2-D picture.

**Spaces.** *MiniLM static table*: the 30,522 input vectors the model adds position vectors to
before any attention: no context, one vector per WordPiece token; a word split into pieces
(`tarkovsky` → `tar` · `##kovsky`) has no row of its own, so we use the mean of its pieces or one piece,
as you choose. *SmolLM2 input table*: the 49,152 × 576 matrix of the real LLM of this atlas
(SmolLM2-135M), the same matrix its last layer scores every next token with (tied embeddings). Its
byte-level BPE is cased and keeps the leading space (`␣king` is the word after a space, `king`
inside a word), so *king*, *King* and *kings* are separate rows: they fill each other's neighbour
lists, where MiniLM's lower-cased table has one row and neighbours that are other words. A word it
splits (`␣t` · `ark` · `ovsky`) is again the mean of its pieces or one of them. *MiniLM contextual*: the full model's sentence embedding (mean of the last layer's
token vectors, normalised) of each word run alone, or of whole sentences. *word2vec*: vectors trained
here from raw text in seconds; *gensim*: the same algorithm in gensim's C code, as the reference.

**Projection.** PCA keeps the directions of largest variance (a few percent of it in 2 components for
these spaces, so the picture is a shadow). t-SNE and UMAP keep local neighbourhoods instead and bend
global distances; the caption measures how many of each point's 10 true neighbours survive in the
picture. **kNN graph**: the query, its nearest items and theirs; each node is linked to its most
similar nodes and communities are found by modularity (Louvain or greedy). **Analogies**: the
vector offset a − b + c, answers ranked by cosine with the inputs excluded (the usual protocol;
switch it off to see how often the "answer" is just c). **Sentences**: cosine of sentence
embeddings; the static bag of pieces shows what context adds (word overlap vs meaning).

**Languages.** The spaces here are English-centred: MiniLM was trained on English sentence pairs with
BERT's uncased English WordPiece vocabulary (most Chinese characters are [UNK] to it), SmolLM2 on mostly
English text and code (its byte-level BPE splits many Chinese characters into byte fragments), word2vec
on the English Wikipedia sample. The Chinese queries and sentence sets show what that does; a Chinese
model (BGE, text2vec) or a multilingual one would be needed for Chinese, and this offline atlas ships none.
"""),
    [
        ("Mikolov et al. 2013a, Efficient Estimation of Word Representations in Vector Space (§3.2 skip-gram, §4 analogy set)",
         "https://arxiv.org/abs/1301.3781"),
        ("Mikolov et al. 2013b, Distributed Representations of Words and Phrases (§2.2 negative sampling, §2.3 subsampling)",
         "https://arxiv.org/abs/1310.4546"),
        ("Gutmann & Hyvärinen 2010, Noise-contrastive estimation (§2)",
         "https://proceedings.mlr.press/v9/gutmann10a.html"),
        ("Levy, Goldberg & Dagan 2015, Improving Distributional Similarity (§3.2 hyper-parameters)",
         "https://aclanthology.org/Q15-1016/"),
        ("Reimers & Gurevych 2019, Sentence-BERT (§3 pooling)", "https://arxiv.org/abs/1908.10084"),
        ("Wang et al. 2020, MiniLM: Deep Self-Attention Distillation (§3)", "https://arxiv.org/abs/2002.10957"),
        ("van der Maaten & Hinton 2008, Visualizing Data using t-SNE (§3)",
         "https://www.jmlr.org/papers/v9/vandermaaten08a.html"),
        ("McInnes, Healy & Melville 2018, UMAP (§2-3)", "https://arxiv.org/abs/1802.03426"),
        ("Blondel et al. 2008, Fast unfolding of communities in large networks (Louvain)",
         "https://arxiv.org/abs/0803.0476"),
        ("Nissim, van Noord & van der Goot 2020, Fair is Better than Sensational (§3)",
         "https://arxiv.org/abs/1905.09866"),
        ("Smilkov et al. 2016, Embedding Projector (the tool this page answers)",
         "https://arxiv.org/abs/1611.05469"),
    ],
)
