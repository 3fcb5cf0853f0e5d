"""Embedding neighbourhoods: exact neighbours, projections, kNN graphs, analogies and
sentence similarity in MiniLM's spaces and SmolLM2's input table, plus word2vec trained live
(and gensim's reference)."""

import numpy as np
import pandas as pd
import plotly.graph_objects as go
import streamlit as st

from app import cache, ui
from app.cache import embeddings as embeddings_cache
from core.models import embeddings as emb
from core.models import word2vec as w2v

TITLE = "Embedding neighbourhoods"
EXAMPLES = {   # label -> (a, b, c, expected): a − b + c ≈ expected
    "king − man + woman ≈ queen": ("king", "man", "woman", "queen"),
    "paris − france + italy ≈ rome": ("paris", "france", "italy", "rome"),
    "berlin − germany + japan ≈ tokyo": ("berlin", "germany", "japan", "tokyo"),
    "walking − walk + swim ≈ swimming": ("walking", "walk", "swim", "swimming"),
    "went − go + see ≈ saw": ("went", "go", "see", "saw"),
    "bigger − big + small ≈ smaller": ("bigger", "big", "small", "smaller"),
}
DEFAULT_SENTENCES = (
    "The cat sat on the mat.\nA kitten was resting on the rug.\nThe stock market fell sharply "
    "today.\nShares dropped as investors panicked.\nPhotosynthesis turns light into chemical "
    "energy.\nPlants convert sunlight into sugar."
)
DEFAULT_WATCH = "king, war, music, river, france, einstein"

ui.page_header(
    TITLE,
    "Words and sentences as vectors, and which ones sit close together: **exact cosine "
    "neighbours** in the original spaces of real models (all-MiniLM-L6-v2: its static WordPiece "
    "table and its contextual sentence embeddings; the input table of the LLM SmolLM2-135M), "
    "projections that show the shape, a kNN graph with communities, analogies, and **word2vec "
    "trained live** on Wikipedia next to gensim's.",
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
top = st.columns([1.9, 0.8, 1.2, 1.35, 1.75])
query_text = top[0].text_input(
    "Query: a word or a sentence", value="king", key="emb_query", max_chars=emb.MAX_QUERY_CHARS,
    help="One word: its neighbours among words/tokens. Several words: a sentence query.")
k = int(top[1].number_input("Neighbours k", min_value=1, max_value=emb.MAX_K, value=10,
                            key="emb_k"))
whole_words = top[2].toggle(
    "Whole words", value=True, key="emb_whole",
    help="Static tables: search only whole-word tokens (MiniLM: not ##pieces, digits, signs, [unused]; "
         "SmolLM2: only a word after a space, ␣king).")
use_smollm2 = top[3].toggle(
    "SmolLM2 table", value=True, key="emb_smollm2",
    help="The input embedding table of SmolLM2-135M (49,152 cased BPE tokens × 576), read from its "
         "weights: the real LLM's own vectors, beside MiniLM's.")
use_context = top[4].toggle(
    "Contextual MiniLM", value=device != "cpu", key="emb_context",
    help="Runs every word of the vocabulary slice alone through the whole model: roughly 5-10 s per "
         "1,000 words on a 2-core CPU (once; cached), instant on a GPU. Off by default on a CPU.")

slice_words: tuple[str, ...] = ()
with st.expander("Vocabulary slice: the words projected, and the candidates of the contextual "
                 "space", expanded=False):
    slice_cols = st.columns([1.2, 2])
    slice_mode = slice_cols[0].radio("Slice", ["Most frequent Wikipedia words", "My word list"],
                                     key="emb_slice_mode")
    slice_n = slice_cols[1].slider("Most frequent words", 200, emb.MAX_LIST_WORDS, 2000, step=100,
                                   key="emb_slice_n", disabled=slice_mode != "Most frequent Wikipedia words")
    word_list_text = slice_cols[1].text_area(
        "My words (commas, spaces or lines)", "king, queen, prince, princess, man, woman, boy, girl, "
        "paris, france, rome, italy, berlin, germany, apple, banana, cherry, car, truck, bicycle",
        key="emb_word_list", height=90, disabled=slice_mode != "My word list")
    with ui.guard():
        if slice_mode == "My word list":
            listed = embeddings_cache.parse_word_list(word_list_text)
            slice_words = listed.words
            if listed.duplicates:
                st.info(f"Repeated words kept once: {ui.escape(', '.join(listed.duplicates[:20]))}.",
                        icon=":material/content_copy:")
            if listed.too_long:
                st.warning(f"{len(listed.too_long)} entries longer than {emb.MAX_WORD_CHARS} "
                           "characters were dropped.", icon=":material/content_cut:")
            if listed.truncated:
                st.warning(f"Only the first {emb.MAX_LIST_WORDS:,} distinct words are used "
                           f"(given: {listed.given:,}).", icon=":material/content_cut:")
        else:
            slice_words = embeddings_cache.frequent_words(int(slice_n))

query = None
with ui.guard():
    query = embeddings_cache.parse_query(query_text)
    if query.truncated:
        st.warning(f"The query is cut at {emb.MAX_QUERY_CHARS} characters.", icon=":material/content_cut:")

static_space = smollm2_space = None
with ui.guard():
    static_space = embeddings_cache.static_space(device, bool(whole_words))
if use_smollm2:
    with ui.guard():
        smollm2_space = embeddings_cache.smollm2_space(device, bool(whole_words))

trained = st.session_state.get("emb_w2v")     # dict set by the training tab
SPACE_NAMES = {"static": "MiniLM static table", "smollm2": "SmolLM2 input table",
               "context": "MiniLM contextual (words alone)",
               "word2vec": "word2vec (trained here)", "gensim": "gensim Word2Vec"}
if not trained:
    st.caption(":material/model_training: Train word2vec in the last tab to add it (and gensim's "
               "reference) as spaces everywhere on this page.")


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
    return pd.DataFrame({"rank": [n.rank for n in result.items],
                         "neighbour": [n.item for n in result.items],
                         "cosine": [round(n.score, 4) for n in result.items]})


def _show_neighbours(result: emb.Neighbours, key: str) -> None:
    st.dataframe(
        _neighbour_frame(result), hide_index=True, width="stretch", key=key,
        column_config={"rank": st.column_config.NumberColumn("rank", width="small"),
                       "cosine": st.column_config.ProgressColumn(
                           "cosine", min_value=0.0, max_value=1.0, format="%.3f")})
    st.caption(f"Exact search over {result.candidates:,} rows in {ui.fmt_ms(result.search_ms)}.")
    if result.clamped:
        st.warning(f"Only {len(result.items)} candidates exist here, fewer than k = {result.k_asked}.",
                   icon=":material/filter_list:")


def _query_vector(space: emb.Space, q: emb.Query, key: str) -> tuple[emb.QueryVector, str | None]:
    """The query in ``space`` and the piece chosen; for a word a static table splits, offer its pieces."""
    qv = embeddings_cache.query_vector(space, q)
    if space.kind in ("wordpiece", "bpe") and not q.is_sentence and len(qv.pieces) > 1 and qv.vector is not None:
        kind = "WordPiece" if space.kind == "wordpiece" else "BPE"
        word = q.cased if space.kind == "bpe" else q.text
        pieces = list(dict.fromkeys(qv.pieces))
        choice = st.radio(
            f"“{ui.escape(word)}” is not one {kind} token: it is split into "
            f"{ui.escape(' · '.join(qv.pieces))}. Use",
            ["mean of the pieces", *pieces], key=key, horizontal=True)
        if choice != "mean of the pieces":
            return embeddings_cache.query_vector(space, q, choice), choice
    return qv, None


def _explain_missing(space_name: str, space: emb.Space, qv: emb.QueryVector) -> None:
    if qv.vector is None:
        text = f"**{ui.escape(space_name)}** does not know {ui.escape(', '.join(qv.missing))}"
        if space.kind in ("wordpiece", "bpe"):
            text += f" (the tokenizer gives {ui.escape(' · '.join(qv.pieces))})"
        else:
            text += f" ({len(space):,} words in its vocabulary)"
        if qv.suggestions:
            text += f". Close matches: {ui.escape(', '.join(qv.suggestions))}"
        st.warning(text + ".", icon=":material/search_off:")
    elif qv.missing:
        st.info(f"Not in the vocabulary, left out of the mean: {ui.escape(', '.join(qv.missing[:20]))}.",
                icon=":material/search_off:")


# ---------------------------------------------------------------- neighbours
def _tab_neighbours() -> None:
    if query is None:
        st.info("Type a word or a sentence in the query box.", icon=":material/keyboard:")
    else:
        spaces = _word_spaces(with_context=not query.is_sentence)
        if query.is_sentence:
            pool_n = st.slider("Wikipedia sentences to search (encoded once, then cached)", 50,
                               emb.MAX_POOL, 200, step=50, key="emb_pool_n")
            with ui.guard():
                bar, wait = st.empty(), st.empty()
                spaces = {"sentences": embeddings_cache.sentence_space(int(pool_n), device,
                                                                       _progress=ui.progress_callback(bar),
                                                                       _on_wait=ui.wait_callback(wait)),
                          **spaces}
                bar.empty()
                wait.empty()
        st.markdown(f"Nearest neighbours of **{ui.escape(query.text)}** by cosine similarity, "
                    "searched exhaustively in each space's own dimensions.")
        cols = st.columns(max(2, len(spaces)))
        found = {}
        for col, (key, space) in zip(cols, spaces.items(), strict=False):
            with col, ui.guard():
                st.markdown(f"**{ui.escape(space.label)}** · {space.dim} dims")
                qv, piece = _query_vector(space, query, key=f"emb_piece_{key}")
                _explain_missing(space.label, space, qv)
                if qv.vector is not None:
                    st.caption(f"Query vector: {ui.escape(qv.how)}.")
                    found[key] = embeddings_cache.query_neighbours(space, query, k, piece)[1]
                    _show_neighbours(found[key], key=f"emb_nb_{key}")
        if not query.is_sentence and "smollm2" in found:
            _compare_static_tables(query, found)
        if "context" in spaces:
            st.caption(f"The contextual space searches the {len(spaces['context']):,} words of the "
                       "vocabulary slice, each run alone through the whole model (mean pooling).")
        if len(spaces) == 1:
            with cols[1]:
                st.info("More spaces side by side: switch on **Contextual MiniLM** (top right) for "
                        "the full model's embedding of each word run alone through all six layers, "
                        "and train **word2vec** in the last tab (gensim's model comes with it). "
                        "A query of several words searches Wikipedia sentences.",
                        icon=":material/add_circle:")


def _compare_static_tables(q: emb.Query, found: dict) -> None:
    """What SmolLM2's table is, and how its cased BPE neighbours differ from MiniLM's, counted here."""
    word = q.cased or q.text
    smol = [n.item for n in found["smollm2"].items]
    variants = embeddings_cache.surface_variants(word, tuple(smol))
    st.caption("**SmolLM2's input table** is the real LLM's tied input/output matrix (576 dims): row *i* is "
               "the vector token *i* enters the model with and also the direction the last hidden state is "
               "scored against to predict token *i*. Its byte-level BPE is cased and marks a leading space "
               "(␣king: the word after a space), so one word owns several rows; MiniLM's WordPiece table is "
               "lower-cased, one row per word.")
    text = (f"Here {len(variants)} of SmolLM2's {len(smol)} neighbours of “{ui.escape(word)}” are the word itself "
            f"in another case or number ({ui.escape(', '.join(variants[:6])) or 'none'})")
    if "static" in found:
        mini = [n.item for n in found["static"].items]
        same = embeddings_cache.surface_variants(q.text, tuple(mini))
        others = [w for w in mini if w not in same][:3]
        text += (f"; in MiniLM's, {len(same)} of {len(mini)} ({ui.escape(', '.join(same[:6])) or 'none'}), and "
                 f"its first other words are {ui.escape(', '.join(others))}")
    st.caption(text + ".")


# ---------------------------------------------------------------- projection
def _projection_figure(coords: np.ndarray, labels: list[str], roles: list[str], dims: int) -> go.Figure:
    fig = go.Figure()
    styles = {"slice": ("slice", "#adb5bd", 5, None), "neighbour": ("neighbours", "#F76707", 9, "top center"),
              "query": ("query", "#E64980", 14, "top center")}
    for role, (name, color, size, textpos) in styles.items():
        idx = [i for i, r in enumerate(roles) if r == role]
        if not idx:
            continue
        text = [ui.escape(labels[i]) for i in idx]
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
    space_key = pcols[0].selectbox("Space", list(word_spaces), key="emb_proj_space",
                                   format_func=lambda s: SPACE_NAMES.get(s, s))
    method = pcols[1].radio("Method", ["pca", "tsne", "umap"], key="emb_proj_method", horizontal=True,
                            format_func={"pca": "PCA", "tsne": "t-SNE", "umap": "UMAP"}.get)
    dims = int(pcols[2].radio("Dimensions", [2, 3], key="emb_proj_dims", horizontal=True))
    perplexity, n_neighbors = 30.0, 15
    with pcols[3]:
        if method == "tsne":
            perplexity = float(st.slider("Perplexity", 5, 50, 30, key="emb_proj_perplexity"))
        elif method == "umap":
            n_neighbors = int(st.slider("UMAP n_neighbors", 5, 50, 15, key="emb_proj_nn"))
    return space_key, emb.ProjectionConfig(method=method, dims=dims, perplexity=perplexity,
                                           n_neighbors=n_neighbors)


def _on_request(config: emb.ProjectionConfig, run_key: tuple) -> emb.ProjectionConfig:
    """t-SNE/UMAP only after their button was pressed for exactly these points; PCA until then."""
    if config.method == "pca":
        return config
    cost = ("t-SNE (Barnes-Hut, sklearn) takes roughly 5-30 s for 1,000-3,000 points on a CPU core."
            if config.method == "tsne" else
            "UMAP compiles its numba kernels on first use (tens of seconds), then takes a few "
            "seconds for a few thousand points.")
    st.info(cost + f" Up to {emb.MAX_POINTS[config.method]:,} points.", icon=":material/schedule:")
    if st.button(f"Run {'t-SNE' if config.method == 'tsne' else 'UMAP'}", key="emb_proj_run"):
        st.session_state["emb_proj_requested"] = run_key
    if st.session_state.get("emb_proj_requested") != run_key:
        st.caption("Showing PCA until you press the button.")
        return emb.ProjectionConfig(method="pca", dims=config.dims)
    return config


def _show_projection(view: emb.ProjectionView, points: emb.ProjectionPoints, dims: int) -> None:
    projection = view.projection
    fig = _projection_figure(projection.coords, points.labels, points.roles, dims)
    axis = {"pca": "PC", "tsne": "t-SNE ", "umap": "UMAP "}[projection.method]
    if dims == 3:
        fig.update_layout(scene={"xaxis_title": f"{axis}1", "yaxis_title": f"{axis}2",
                                 "zaxis_title": f"{axis}3"})
        ui.style_figure(fig, height=620)
    else:
        ui.style_figure(fig, x_title=f"{axis}1 (unitless)", y_title=f"{axis}2 (unitless)", height=560)
    ui.plot(fig, key="emb_proj_fig")
    shares = (" · variance explained: " + ", ".join(ui.fmt_pct(x) for x in projection.explained)
              if projection.explained else "")
    st.caption(f"{projection.method.upper()} of {len(points.vectors):,} points in "
               f"{ui.fmt_ms(projection.seconds * 1e3)}{shares} · on average {ui.fmt_pct(view.kept)} of "
               "each point's 10 nearest neighbours (cosine, original space) are also among its 10 "
               "nearest in this picture." + (f" Note: {projection.note}." if projection.note else ""))


def _tab_projection() -> None:
    word_spaces = _word_spaces()
    space_key, config = _projection_controls(word_spaces)
    space = word_spaces[space_key]
    points = embeddings_cache.projection_points(space, tuple(slice_words), query, k)
    if points.missing:
        st.caption(f"{len(points.missing):,} slice words are not single rows of this space and are left "
                   f"out (e.g. {ui.escape(', '.join(points.missing[:8]))}).")
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
        hover = [f"{ui.escape(n)}<br>cosine to query {graph.nodes[n]['score']:.3f}<br>"
                 f"community {c + 1}" for n in nodes]
        fig.add_trace(go.Scatter(
            x=[pos[n][0] for n in nodes], y=[pos[n][1] for n in nodes], mode="markers+text",
            name=f"community {c + 1}", text=[ui.escape(n) for n in nodes], textposition="top center",
            hovertext=hover, hoverinfo="text",
            marker={"size": size, "color": ui.PALETTE[c % len(ui.PALETTE)],
                    "line": {"width": 1, "color": "white"}}))
    fig.update_xaxes(showticklabels=False, showgrid=False, zeroline=False)
    fig.update_yaxes(showticklabels=False, showgrid=False, zeroline=False)
    return fig


def _tab_graph() -> None:
    word_spaces = _word_spaces()
    gcols = st.columns(5)
    graph_space_key = gcols[0].selectbox("Space", list(word_spaces), key="emb_graph_space",
                                         format_func=lambda s: SPACE_NAMES.get(s, s))
    ring = gcols[1].slider("Neighbours of the query", 3, emb.MAX_GRAPH_RING, 12, key="emb_graph_ring")
    second = gcols[2].slider("Neighbours of each", 0, 10, 4, key="emb_graph_second")
    edges = gcols[3].slider("Edges per node", 1, 10, 4, key="emb_graph_edges")
    method = gcols[4].radio("Communities", ["louvain", "greedy"], key="emb_graph_method",
                            format_func={"louvain": "Louvain", "greedy": "Greedy modularity"}.get)
    if query is None:
        st.info("Type a word in the query box.", icon=":material/keyboard:")
    else:
        space = word_spaces[graph_space_key]
        qv, piece = _query_vector(space, query, key="emb_graph_piece")
        _explain_missing(SPACE_NAMES.get(graph_space_key, space.label), space, qv)
        if qv.vector is not None:
            g = embeddings_cache.neighbour_graph(space, query, emb.GraphConfig(
                ring=int(ring), second=int(second), edges_per_node=int(edges), method=method), piece)
            fig = ui.style_figure(_graph_figure(g), height=600)
            ui.plot(fig, key="emb_graph_fig")
            st.caption(f"{g.graph.number_of_nodes()} nodes, {g.graph.number_of_edges()} edges, "
                       f"{len(g.communities)} communities, modularity {g.modularity:.3f}. Big node: "
                       "the query; medium: its nearest neighbours; small: their neighbours.")
            for c, members in enumerate(g.communities[:8]):
                st.markdown(f"<span style='color:{ui.PALETTE[c % len(ui.PALETTE)]}'>●</span> "
                            f"community {c + 1}: {ui.escape(', '.join(sorted(members)[:25]))}",
                            unsafe_allow_html=True)


# ---------------------------------------------------------------- analogies
def _show_analogy(key: str, space: emb.Space, terms: tuple[str, str, str], expected: str,
                  exclude_inputs: bool) -> None:
    st.markdown(f"**{ui.escape(SPACE_NAMES[key])}**")
    result = embeddings_cache.analogy(space, *terms, k, expected.strip() or None, bool(exclude_inputs))
    if result.missing:
        hints = "; ".join(f"{ui.escape(w)}: {ui.escape(', '.join(h)) or 'no close match'}"
                          for w, h in result.suggestions.items())
        st.warning(f"Not in the vocabulary: {ui.escape(', '.join(result.missing))}. "
                   f"Close matches — {hints}.", icon=":material/search_off:")
        return
    if result.expected and result.expected_rank is None:
        st.info(f"“{ui.escape(result.expected)}” is not a candidate here (not a single "
                "row, or one of the inputs).", icon=":material/help:")
    elif result.expected:
        st.metric(f"rank of {ui.escape(result.expected)}", f"#{result.expected_rank:,}",
                  f"cosine {result.expected_score:.3f}", delta_color="off")
    st.dataframe(pd.DataFrame({"rank": [n.rank for n in result.answers],
                               "answer": [n.item for n in result.answers],
                               "cosine": [round(n.score, 4) for n in result.answers]}),
                 hide_index=True, width="stretch", key=f"emb_an_table_{key}")
    pieces = [h for h in result.how if "mean" in h]
    if pieces:
        st.caption("Some terms are several tokens: " + ui.escape("; ".join(pieces)))


def _tab_analogies() -> None:
    st.selectbox("Examples", list(EXAMPLES), key="emb_an_example", on_change=_apply_example,
                 index=None, placeholder="Pick an example set…")
    acols = st.columns(5)
    a = acols[0].text_input("a", key="emb_an_a", max_chars=emb.MAX_WORD_CHARS)
    b = acols[1].text_input("− b", key="emb_an_b", max_chars=emb.MAX_WORD_CHARS)
    c = acols[2].text_input("+ c", key="emb_an_c", max_chars=emb.MAX_WORD_CHARS)
    expected = acols[3].text_input("expected (optional)", key="emb_an_expected",
                                   max_chars=emb.MAX_WORD_CHARS)
    exclude_inputs = acols[4].toggle("Exclude a, b, c", value=True, key="emb_an_exclude",
                                     help="The usual protocol. Without it, the answer is often "
                                          "a or c itself (Nissim et al. 2020).")
    analogy_spaces = _word_spaces(with_context=False)
    cols = st.columns(max(2, len(analogy_spaces)))
    if len(analogy_spaces) == 1:
        cols[1].info("Train **word2vec** in the last tab to compare: on a corpus of 400 K words its "
                     "analogies are far weaker than those of MiniLM's table, learned from billions "
                     "of words. The contextual space is left out here: each word alone through the "
                     "model is not what sentence embeddings were trained for.",
                     icon=":material/compare_arrows:")
    for col, (key, space) in zip(cols, analogy_spaces.items(), strict=False):
        with col, ui.guard():
            _show_analogy(key, space, (a, b, c), expected, exclude_inputs)


# ---------------------------------------------------------------- sentences
def _tab_sentences() -> None:
    text = st.text_area("Sentences, one per line", DEFAULT_SENTENCES, key="emb_sentences", height=170)
    show_static = st.toggle("Also show the static table's bag of pieces (no context)", value=True,
                            key="emb_sent_static")
    parsed = embeddings_cache.parse_sentences(text)
    if parsed.duplicates:
        st.info(f"{parsed.duplicates} repeated line(s) dropped.", icon=":material/content_copy:")
    if parsed.cut:
        st.warning(f"{parsed.cut} sentence(s) cut at {emb.MAX_SENTENCE_CHARS} characters.",
                   icon=":material/content_cut:")
    if parsed.truncated:
        st.warning(f"Only the first {emb.MAX_SENTENCES} sentences are used.", icon=":material/content_cut:")
    sentences = list(parsed.sentences)
    wait = st.empty()
    found = embeddings_cache.sentence_matrices(parsed.sentences, device, static_space if show_static else None,
                                               _on_wait=ui.wait_callback(wait))
    wait.empty()
    titles = {"contextual": "MiniLM sentence embeddings (contextual)", "static": "MiniLM static table, mean of pieces"}
    mats = {titles[key]: mat for key, mat in found.items()}
    names = [f"S{i + 1}" for i in range(len(sentences))]
    short = [ui.escape(s if len(s) <= 80 else s[:77] + "…") for s in sentences]
    cols = st.columns(len(mats))
    for i_fig, (col, (title, mat)) in enumerate(zip(cols, mats.items(), strict=True)):
        hover = [[f"{names[i]}: {short[i]}<br>{names[j]}: {short[j]}<br>cosine {mat[i, j]:.3f}"
                  for j in range(len(names))] for i in range(len(names))]
        fig = go.Figure(go.Heatmap(z=mat, x=names, y=names, zmin=-0.2, zmax=1.0, colorscale="Viridis",
                                   text=np.round(mat, 2), texttemplate="%{text}", hovertext=hover,
                                   hoverinfo="text", colorbar={"title": "cosine"}))
        fig.update_yaxes(autorange="reversed")
        with col:
            ui.plot(ui.style_figure(fig, x_title="sentence", y_title="sentence", height=430, title=title),
                    key=f"emb_sent_fig_{i_fig}")
    st.markdown("\n".join(f"- **{names[i]}** {short[i]}" for i in range(len(sentences))))


# ---------------------------------------------------------------- train word2vec
def _training_inputs():
    """Widgets of the training tab; returns (config, source, upload, max_words, watch, with_gensim)."""
    cols = st.columns(4)
    source = cols[0].radio("Corpus", ["Wikipedia sample", "Upload a text file"], key="emb_w2v_source")
    upload = None
    if source == "Upload a text file":
        upload = cols[0].file_uploader("Plain text (UTF-8 or UTF-16)", type=["txt", "md", "csv"],
                                       key="emb_w2v_upload")
    max_words = cols[1].select_slider(
        "Corpus words (at most)", [5_000, 20_000, 50_000, 100_000, 200_000, 500_000, 1_000_000,
                                   w2v.MAX_CORPUS_WORDS],
        value=500_000, key="emb_w2v_words", format_func=ui.fmt_count,
        help="The Wikipedia sample has about 412 K words; 500 K takes all of it.")
    epochs = cols[1].slider("Epochs", 1, w2v.MAX_EPOCHS, 5, key="emb_w2v_epochs")
    dim = cols[2].select_slider("Dimension", [16, 32, 50, 64, 100, 128, 200, 300], value=100,
                                key="emb_w2v_dim")
    window = cols[2].slider("Window (max words each side)", 1, w2v.MAX_WINDOW, 5, key="emb_w2v_window")
    negative = cols[3].slider("Negatives per pair", 1, w2v.MAX_NEGATIVE, 5, key="emb_w2v_negative")
    min_count = cols[3].slider("Minimum count", 1, 50, 5, key="emb_w2v_min_count")
    with st.expander("More settings"):
        more = st.columns(4)
        sample = more[0].select_slider("Subsampling threshold t", [0.0, 1e-5, 1e-4, 1e-3, 1e-2],
                                       value=1e-3, key="emb_w2v_sample", format_func=lambda x: f"{x:g}")
        alpha = more[1].select_slider("Learning rate", [0.005, 0.01, 0.025, 0.05, 0.1], value=0.025,
                                      key="emb_w2v_alpha")
        batch = more[2].select_slider("Pairs per SGD step", [256, 1024, 2048, 4096, 8192, 16384],
                                      value=4096, key="emb_w2v_batch")
        seed = more[3].number_input("Seed", 0, 2**31 - 1, 1, key="emb_w2v_seed")
    watch = st.text_input(f"Watched words (up to {w2v.MAX_WATCHED}): their neighbours are "
                          "snapshotted during training", DEFAULT_WATCH, key="emb_w2v_watch")
    with_gensim = st.toggle("Also train gensim's Word2Vec with the same settings (the reference)",
                            value=True, key="emb_w2v_gensim")
    config = w2v.Word2VecConfig(dim=int(dim), window=int(window), negative=int(negative),
                                sample=float(sample), min_count=int(min_count), epochs=int(epochs),
                                alpha=float(alpha), batch_size=int(batch), seed=int(seed))
    return config, source, upload, int(max_words), watch, with_gensim


def _train(config, source, upload, max_words, watch, with_gensim) -> None:
    watched = embeddings_cache.parse_word_list(watch).words[: w2v.MAX_WATCHED] if watch.strip() else ()
    if source == "Upload a text file":
        if upload is None:
            st.warning("Choose a text file first.", icon=":material/upload_file:")
            return
        corpus = embeddings_cache.upload_corpus(upload.getvalue(), max_words, upload.name)
    else:
        corpus = embeddings_cache.wiki_corpus(max_words)
    bar, wait = st.progress(0.0, text="Waiting for the device…"), st.empty()
    result, space = embeddings_cache.trained_word2vec(config, corpus, device, tuple(watched),
                                                      _progress=ui.progress_callback(bar),
                                                      _on_wait=ui.wait_callback(wait))
    entry = {"result": result, "space": space, "gensim": None, "gensim_space": None,
             "corpus": (corpus.source, corpus.words, corpus.truncated), "watch": tuple(watched)}
    if with_gensim:
        workers = max(1, min(8, cache.device_info().cpu_threads))
        bar.progress(0.0, text="gensim reference…")
        entry["gensim"], entry["gensim_space"] = embeddings_cache.trained_gensim(
            config, corpus, device, workers, _progress=ui.progress_callback(bar))
    bar.empty()
    wait.empty()
    st.session_state["emb_w2v"] = entry
    st.rerun()


def _snapshot_frame(result, word: str, gensim_space) -> pd.DataFrame:
    columns = {}
    for snap in result.snapshots:
        columns[f"epoch {snap.epoch:.1f}"] = [f"{w} ({s:.2f})" for w, s in snap.neighbours[word]]
    if gensim_space is not None and word in gensim_space.index:
        _, got = embeddings_cache.query_neighbours(gensim_space, embeddings_cache.parse_query(word),
                                                   len(next(iter(columns.values()))))
        columns["gensim"] = [f"{n.item} ({n.score:.2f})" for n in got.items]
    return pd.DataFrame(columns, index=pd.RangeIndex(1, len(next(iter(columns.values()))) + 1, name="rank"))


def _show_training(entry) -> None:
    result, gensim = entry["result"], entry["gensim"]
    source, words, truncated = entry["corpus"]
    m = st.columns(5)
    m[0].metric("Corpus words", ui.fmt_count(words, 0), source, delta_color="off")
    m[1].metric("Vocabulary", f"{len(result.vocab):,}", f"min count {result.config.min_count}",
                delta_color="off")
    m[2].metric("Positive pairs", ui.fmt_count(result.pairs, 1), f"{result.config.epochs} epochs",
                delta_color="off")
    m[3].metric("PyTorch SGNS, words/s", ui.fmt_count(result.words_per_s, 0),
                f"{result.seconds:.1f} s on {result.device}", delta_color="off")
    if gensim is not None:
        m[4].metric("gensim (C), words/s", ui.fmt_count(gensim.words_per_s, 0),
                    f"{gensim.seconds:.1f} s, {gensim.workers} threads", delta_color="off")
    if truncated:
        st.info(f"The corpus was cut to {words:,} words.", icon=":material/content_cut:")
    curve = pd.DataFrame(result.loss_curve, columns=["epoch", "loss"])
    fig = go.Figure(go.Scatter(x=curve["epoch"], y=curve["loss"], mode="lines", name="SGNS loss",
                               hovertemplate="epoch %{x:.2f}<br>loss %{y:.3f} nats<extra></extra>"))
    ui.plot(ui.style_figure(fig, x_title="epoch", y_title="loss per positive pair (nats)", height=300,
                            title="Training loss: −log σ(u·v) − Σ log σ(−u·v_neg), mean per pair"),
            key="emb_w2v_loss")
    if result.workers > 1:
        st.caption(f"{result.workers} worker threads update the shared tables without locks "
                   "(Hogwild, as gensim's threads do): the curve is a little noisier than one "
                   "thread's, the result as good.")
    if result.watched:
        st.markdown("**Neighbours of the watched words as training goes** (cosine in brackets; the "
                    "last column is gensim's model, trained on the same words with the same settings).")
        if st.session_state.get("emb_w2v_watch_pick") not in result.watched:
            st.session_state.pop("emb_w2v_watch_pick", None)       # a new run watches other words
        word = st.radio("Watched word", result.watched, key="emb_w2v_watch_pick", horizontal=True)
        st.dataframe(_snapshot_frame(result, word, entry["gensim_space"]), width="stretch",
                     key="emb_w2v_snap")
    missing_watch = [w for w in entry["watch"] if w not in result.watched]
    if missing_watch:
        st.info(f"Watched words not in the vocabulary: {ui.escape(', '.join(missing_watch))}.",
                icon=":material/search_off:")
    if gensim is not None:
        _show_analogy_scores(entry)


def _show_analogy_scores(entry) -> None:
    scores = embeddings_cache.analogy_scores((entry["space"], entry["gensim_space"]))
    ours, ref = scores
    st.markdown("**Analogy accuracy on questions-words** (Mikolov et al. 2013a; top-1 of "
                "b − a + c with a, b, c excluded, as gensim's `evaluate_word_analogies`)")
    rows = [{"section": s, "questions": n, "word2vec (here)": ui.fmt_pct(c / n) if n else "—",
             "gensim": ui.fmt_pct(c2 / n) if n else "—"}
            for (s, c, n), (_, c2, _) in zip(ours.sections, ref.sections, strict=True) if n]
    rows.append({"section": "all covered", "questions": ours.covered,
                 "word2vec (here)": ui.fmt_pct(ours.accuracy), "gensim": ui.fmt_pct(ref.accuracy)})
    st.dataframe(pd.DataFrame(rows), hide_index=True, width="stretch", key="emb_w2v_analogies")
    st.caption(f"Covered: {ours.covered:,} of {ours.total:,} questions ({ui.fmt_pct(ours.coverage)}): "
               "those whose four words are in the vocabulary both models share. A corpus of a few "
               "hundred thousand words is far too small for high scores (Mikolov et al. trained on "
               "billions); what matters here is that both implementations land in the same range.")


def _tab_training() -> None:
    st.markdown(
        "**Skip-gram with negative sampling**: every word predicts the words around it "
        "(a window of 1…*window* words, drawn per word), and learns to score each true pair above "
        "*negatives* random words drawn ∝ count^¾ — noise-contrastive estimation in its simplest "
        "form. Frequent words are subsampled. Training is plain sparse SGD on the rows a batch "
        "touches, in PyTorch, on this machine's device.")
    with ui.guard():
        inputs = _training_inputs()
        if st.button("Train word2vec", type="primary", key="emb_w2v_train", icon=":material/play_arrow:"):
            _train(*inputs)
    if trained:
        with ui.guard():
            _show_training(trained)
    else:
        st.info("Press **Train word2vec**: the default run (the whole Wikipedia sample, 5 epochs) "
                "takes well under a minute on 2 CPU cores; gensim's run a few seconds.",
                icon=":material/model_training:")


TAB_NAMES = ("Neighbours", "Projection", "kNN graph", "Analogies", "Sentences", "Train word2vec")
tabs = st.tabs(TAB_NAMES, key="emb_tab", on_change="rerun")
for tab, render in zip(tabs, (_tab_neighbours, _tab_projection, _tab_graph, _tab_analogies,
                              _tab_sentences, _tab_training), strict=True):
    if tab.open is not False:        # only the open tab runs (None: state not tracked)
        with tab, ui.guard():
            render()


ui.page_footer(
    """
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
""",
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
