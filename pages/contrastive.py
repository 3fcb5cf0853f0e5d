"""Contrastive learning: InfoNCE on MiniLM sentence pairs, the log N bound, and CPC trained live."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import plotly.graph_objects as go
import streamlit as st

from app import cache, ui
from app.cache import contrastive as contrastive_cache
from app.i18n import N_, t, tr
from core.models import contrastive

POOL_SIZES = [16, 32, 64, 128, 256]
TEMPERATURES = [0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0, 2.0]
CURVE_SIZES = (2, 4, 8, 16, 32, 64, 128, 256)
CURVE_TAUS = (0.02, 0.05, 0.1, 0.2, 0.5, 1.0)
TRAINING_ITEMS = {"tokens": N_("Training tokens"), "bytes": N_("Training bytes")}
SOURCES = {"wiki": N_("Wikipedia sample"), "zh": N_("Chinese examples"),
           "text": N_("Your own text")}
ZH_EXAMPLES = (   # (topic, Chinese sentence, the next Chinese sentence, their English translations)
    ("长城", "长城是中国古代修建的军事防御工程，总长度超过两万公里。", "它现存的墙体大多建于明朝，用砖石砌成。",
     "The Great Wall is a military defence work built in ancient China, more than twenty thousand kilometres long.",  # i18n: skip
     "Most of its surviving walls were built under the Ming dynasty, of brick and stone."),  # i18n: skip
    ("大熊猫", "大熊猫主要生活在四川、陕西和甘肃的山区竹林中。", "它们每天要花十几个小时进食，几乎只吃竹子。",
     "Giant pandas live mainly in the mountain bamboo forests of Sichuan, Shaanxi and Gansu.",  # i18n: skip
     "They spend more than ten hours a day eating, and eat almost nothing but bamboo."),  # i18n: skip
    ("长江", "长江是亚洲最长的河流，发源于青藏高原。", "它自西向东流经十一个省级行政区，在上海注入东海。",
     "The Yangtze is the longest river in Asia and rises on the Tibetan Plateau.",  # i18n: skip
     "It flows from west to east through eleven provincial-level regions and enters the East China Sea at "  # i18n: skip
     "Shanghai."),
    ("围棋", "围棋起源于中国，至今已有四千多年的历史。", "棋盘由纵横各十九条线组成，黑白双方轮流落子。",
     "Go originated in China and has a history of more than four thousand years.",  # i18n: skip
     "The board has nineteen lines in each direction, and Black and White place their stones in turn."),  # i18n: skip
    ("光合作用", "光合作用是植物利用阳光把二氧化碳和水转化为糖的过程。", "这个过程同时释放出氧气，供大多数生物呼吸。",
     "Photosynthesis is the process by which plants use sunlight to turn carbon dioxide and water into sugar.",  # i18n: skip
     "The process also releases oxygen, which most living things breathe."),  # i18n: skip
    ("造纸术", "造纸术是东汉时期由蔡伦改进并推广的。", "他用树皮、麻头和破布等廉价材料造出了轻便的纸。",
     "Papermaking was improved and spread by Cai Lun in the Eastern Han dynasty.",  # i18n: skip
     "He made light paper from cheap materials such as tree bark, hemp and old rags."),  # i18n: skip
    ("高铁", "高铁把北京到上海的旅行时间缩短到大约四个半小时。", "列车的最高运营时速可以达到三百五十公里。",
     "High-speed rail has cut the journey from Beijing to Shanghai to about four and a half hours.",  # i18n: skip
     "The trains run at up to three hundred and fifty kilometres an hour."),  # i18n: skip
    ("月球", "月球是地球唯一的天然卫星，距离地球约三十八万公里。", "它总是以同一面朝向地球，因为它的自转周期和公转周期相同。",
     "The Moon is Earth's only natural satellite, about 380,000 kilometres away.",  # i18n: skip
     "It always shows the same face to Earth, because it turns once on its axis in each orbit."),  # i18n: skip
    ("茶", "到了唐朝，茶已经成为普通百姓的日常饮品。", "陆羽写的《茶经》是世界上第一部关于茶的专著。",
     "By the Tang dynasty tea had become an everyday drink of ordinary people.",  # i18n: skip
     "The Classic of Tea by Lu Yu is the world's first book devoted to tea."),  # i18n: skip
    ("深度学习", "深度学习模型用反向传播算法调整数以百万计的参数。", "训练需要大量带标注的数据和强大的图形处理器。",
     "Deep learning models adjust millions of parameters with the backpropagation algorithm.",  # i18n: skip
     "Training needs large amounts of labelled data and powerful graphics processors."),  # i18n: skip
    ("珠穆朗玛峰", "珠穆朗玛峰海拔八千八百四十八米，是世界最高峰。", "每年春天都有许多登山者从南坡和北坡尝试登顶。",
     "Mount Everest is 8,848 metres high, the highest mountain in the world.",  # i18n: skip
     "Every spring many climbers try to reach the summit from the south and north sides."),  # i18n: skip
    ("春节", "春节是中国最重要的传统节日，通常在一月或二月。", "除夕夜人们和家人团聚，一起吃年夜饭。",
     "The Spring Festival is China's most important traditional holiday, usually in January or February.",  # i18n: skip
     "On New Year's Eve people gather with their families for the reunion dinner."),  # i18n: skip
    ("太阳能", "太阳能电池板把阳光直接转换成电能。", "近十年来，它的价格下降了百分之八十以上。",
     "Solar panels turn sunlight directly into electricity.",  # i18n: skip
     "Over the last ten years their price has fallen by more than eighty percent."),  # i18n: skip
    ("足球", "一场足球比赛由两支各有十一名球员的队伍进行。", "除了守门员，球员在比赛中不能用手触球。",
     "A football match is played by two teams of eleven players each.",  # i18n: skip
     "Apart from the goalkeeper, players may not touch the ball with their hands."),  # i18n: skip
    ("青霉素", "青霉素是弗莱明在一九二八年偶然发现的。", "它是第一种被广泛使用的抗生素，挽救了无数生命。",
     "Penicillin was discovered by chance by Fleming in 1928.",  # i18n: skip
     "It was the first widely used antibiotic and has saved countless lives."),  # i18n: skip
    ("莫高窟", "敦煌莫高窟保存了四世纪到十四世纪的大量壁画和佛像。", "这些洞窟开凿在鸣沙山东麓的崖壁上。",
     "The Mogao Caves at Dunhuang hold a great many murals and Buddhist statues from the fourth to the "  # i18n: skip
     "fourteenth century.",
     "The caves are cut into the cliff at the eastern foot of Mingsha Mountain."),  # i18n: skip
    ("蜜蜂", "蜜蜂用“摇摆舞”告诉同伴花丛的方向和距离。", "一个蜂群里通常只有一只蜂王负责产卵。",
     "Bees tell their nestmates the direction and distance of flowers with a waggle dance.",  # i18n: skip
     "A colony usually has only one queen, who lays the eggs."),  # i18n: skip
    ("活字印刷", "活字印刷术由北宋的毕昇发明，比欧洲早约四百年。", "他用胶泥刻字，每个字是一个单独的字印。",
     "Movable-type printing was invented by Bi Sheng in the Northern Song, about four hundred years before "  # i18n: skip
     "Europe.",
     "He carved the characters in clay, each character a separate piece of type."),  # i18n: skip
    ("火山", "火山喷发时，炽热的岩浆从地下涌出地表。", "火山灰可以飘到几千公里之外，影响航班和气候。",
     "When a volcano erupts, hot magma rises from underground to the surface.",  # i18n: skip
     "Volcanic ash can drift thousands of kilometres and disrupt flights and the climate."),  # i18n: skip
    ("钢琴", "钢琴有八十八个琴键，音域跨越七个多八度。", "按下琴键时，琴槌敲击琴弦发出声音。",
     "A piano has eighty-eight keys, spanning more than seven octaves.",  # i18n: skip
     "When a key is pressed, a hammer strikes the strings to make the sound."),  # i18n: skip
)

ui.page_header(
    t("Contrastive learning"),
    t("Learn by telling the true partner from the rest of the batch. **InfoNCE** scores every anchor against "
      "every candidate (an N × N matrix of similarities / τ) and asks for the diagonal: it is a "
      "cross-entropy, and log N − loss is a lower bound on the mutual information that can never exceed "
      "log N. First on **real all-MiniLM-L6-v2 embeddings** of Wikipedia sentence pairs, then in a small "
      "**CPC** model (encoder + GRU + k-step predictors) trained here on the same corpus."),
)
device = cache.device_name()
tab_nce, tab_bound, tab_cpc = st.tabs([t("InfoNCE on sentence pairs"), t("The bound vs N and τ"),
                                       t("CPC trained live")])


# ---------------------------------------------------------------- pool of pairs
def pool_settings() -> dict:
    c1, c2, c3, c4 = st.columns([1, 1.6, 1.6, 1])
    source = c1.radio(t("Sentences from"), list(SOURCES), format_func={k: tr(v) for k, v in SOURCES.items()}.get, key="cl_source")
    fixed = source == "zh"
    kind = c2.selectbox(t("Positive pair"), list(contrastive.PAIR_KINDS),
                        format_func={k: tr(v) for k, v in contrastive.PAIR_KINDS.items()}.get, key="cl_kind", disabled=fixed,
                        help=t("The Chinese examples are pairs of consecutive sentences.") if fixed else None)
    negatives = c3.selectbox(t("Negative pairs"), list(contrastive.NEGATIVES),
                             format_func={k: tr(v) for k, v in contrastive.NEGATIVES.items()}.get, key="cl_negatives",
                             disabled=source != "wiki")
    pool = c4.select_slider(t("Pairs embedded"), POOL_SIZES, value=64, key="cl_pool", disabled=fixed,
                            help=t("Each pair is two sentences for MiniLM (at most {n} pairs).",
                                   n=contrastive.MAX_PAIRS))
    text = ""
    if source == "text":
        text = st.text_area(t("Your text (sentences of 6–60 words; consecutive sentences become pairs)"),
                            key="cl_text", height=120, max_chars=contrastive.MAX_TEXT_CHARS)
        st.caption(t("Sentences end at . ! or ? before a capital letter, and words are counted between "
                     "spaces, so Chinese text gives no pairs here: the *Chinese examples* show what MiniLM "
                     "does with Chinese."))
    return {"source": source, "kind": kind, "negatives": negatives, "pool": pool, "text": text}


def example_pairs(lang: str) -> tuple[contrastive.Pair, ...]:
    """The Chinese examples (``lang="zh"``) or their English translations (``"en"``) as pairs."""
    return tuple(contrastive.Pair(zh_a, zh_b, topic) if lang == "zh" else contrastive.Pair(en_a, en_b, topic)
                 for topic, zh_a, zh_b, en_a, en_b in ZH_EXAMPLES)


def load_pool(s: dict, source: str | None = None):
    source = source or s["source"]
    if source == "text" and not s["text"].strip():
        st.info(t("Type some sentences to make pairs from."), icon=":material/edit:")
        return None
    if source in ("zh", "en"):
        with st.spinner(t("Embedding {n} sentences with MiniLM…", n=2 * len(ZH_EXAMPLES))):
            return contrastive_cache.example_pool(example_pairs(source), device)
    bar = st.progress(0.0)
    try:
        return contrastive_cache.pool(source, s["kind"], s["negatives"], s["pool"], 0, s["text"],
                                      device, _progress=ui.progress_callback(bar))
    finally:
        bar.empty()


# ---------------------------------------------------------------- tab 1
def short(text: str, n: int = 90) -> str:
    return text if len(text) <= n else text[: n - 1] + "…"


def logits_figure(res, pairs, idx) -> go.Figure:
    n = res.n
    anchors = [ui.escape(short(pairs[i].anchor)) for i in idx]
    cands = [ui.escape(short(pairs[i].positive)) for i in idx]
    line = t("anchor {r}: {anchor}<br>candidate {c}: {candidate}<br>{kind}")
    positive, negative = t("POSITIVE"), t("negative")
    hover = [[line.format(r=r, anchor=anchors[r], c=c, candidate=cands[c], kind=positive if r == c else negative)
              for c in range(n)] for r in range(n)]
    fig = go.Figure(go.Heatmap(z=res.logits, colorscale="RdBu", zmid=0, text=hover,
                               colorbar={"title": "cos / τ"},  # i18n: skip (a formula)
                               hovertemplate=t("%{text}<br>logit %{z:.2f}<extra></extra>")))
    fig.add_scatter(x=res.logits.argmax(1).tolist(), y=list(range(n)), mode="markers", showlegend=False,
                    marker={"symbol": "x", "color": "black", "size": 6}, hoverinfo="skip")
    fig.update_yaxes(autorange="reversed", scaleanchor="x", constrain="domain")
    fig.update_xaxes(constrain="domain")
    return ui.style_figure(fig, x_title=t("candidate j (positive of pair j)"), y_title=t("anchor i"),
                           height=520)


def batch_controls(pool_n: int) -> tuple[int, float, bool, int]:
    c1, c2, c3, c4 = st.columns([2, 2, 1.3, 1])
    n = c1.slider(t("Batch size N"), 2, max(2, pool_n), min(16, pool_n), key="cl_n",
                  help=t("N pairs: each anchor's positive plus N − 1 negatives."))
    tau = c2.select_slider(t("Temperature τ"), TEMPERATURES, value=0.05, key="cl_tau")
    symmetric = c3.toggle(t("Symmetric"), key="cl_sym", help=t("CLIP's loss: the average of the anchor→candidate "
                                                               "and candidate→anchor cross-entropies."))
    seed = c4.number_input(t("Batch seed"), 0, 10_000, 0, key="cl_seed")
    return n, tau, symmetric, int(seed)


def render_nce_tab():
    settings = pool_settings()
    pool = load_pool(settings)
    if pool is None:
        return None
    pairs, a, b = pool
    n, tau, symmetric, seed = batch_controls(len(pairs))
    res, idx = contrastive_cache.batch(a, b, n, tau, seed, symmetric)
    m = st.columns(4)
    m[0].metric(t("InfoNCE loss"), t("{x:.3f} nats", x=res.loss))
    m[1].metric(t("Top-1 accuracy"), ui.fmt_pct(res.accuracy), help=t("chance: {p}", p=ui.fmt_pct(1 / res.n)))
    m[2].metric("log N", t("{x:.3f} nats", x=res.log_n))  # i18n: skip (a formula)
    m[3].metric(t("MI bound log N − L"), t("{x:.3f} nats", x=res.bound), help=t("A lower bound on I(x; y); ≤ log N."))
    if settings["source"] == "zh":
        chinese_vs_english(settings, pool, n, tau, seed, symmetric)
    ui.titled_plot(logits_figure(res, pairs, idx), "cl_heatmap",
                   t("Logits cos(aᵢ, bⱼ) / τ — × marks each row's top pick"))
    st.dataframe(pd.DataFrame(pair_rows(settings["source"], res, pairs, idx)), hide_index=True, width="stretch")
    return pool


def pair_rows(source: str, res, pairs, idx) -> list[dict]:
    """The batch as a table; the Chinese examples also show their English translations."""
    rows = []
    for r, i in enumerate(idx):
        row = {"#": r, t("anchor"): pairs[i].anchor, t("positive"): pairs[i].positive,
               t("article"): t("your text") if source == "text" else pairs[i].source}
        if source == "zh":
            row[t("in English")] = f"{ZH_EXAMPLES[i][3]} / {ZH_EXAMPLES[i][4]}"
        row[t("picked")] = int(res.logits[r].argmax())
        row[t("rank of positive")] = int((res.logits[r] > res.logits[r, r]).sum()) + 1
        rows.append(row)
    return rows


def mean_cosines(a, b) -> tuple[float, float]:
    """Mean cosine of the true pairs and of all other (anchor, candidate) pairs of the pool."""
    cos = contrastive_cache.batch(a, b, len(a), 1.0, 0, False)[0].logits      # (P, P): cos / 1
    n = len(cos)
    return float(np.trace(cos)) / n, float(cos.sum() - np.trace(cos)) / (n * (n - 1))


def chinese_vs_english(settings: dict, pool, n: int, tau: float, seed: int, symmetric: bool) -> None:
    """What MiniLM makes of the Chinese examples, beside the same pairs in English."""
    stats = {}
    for lang, (pairs, a, b) in (("zh", pool), ("en", load_pool(settings, "en"))):
        res, _ = contrastive_cache.batch(a, b, n, tau, seed, symmetric)
        pieces = [tok for p in pairs for text in (p.anchor, p.positive) for tok in contrastive_cache.wordpiece(text)]
        unknown = sum(tok.bytes == b"[UNK]" for tok in pieces)
        stats[lang] = (res, *mean_cosines(a, b), unknown, len(pieces))
    zh, en = stats["zh"], stats["en"]
    st.warning(t(
        "**MiniLM is English-only.** all-MiniLM-L6-v2 was trained on English sentence pairs, and its "
        "WordPiece vocabulary (BERT's uncased English one) knows few Chinese characters: {unk:,} of the "
        "{tokens:,} tokens of these Chinese sentences are the one unknown token [UNK]. What is left is a "
        "few common characters and the punctuation, so every Chinese sentence gets much the same "
        "embedding: a true pair has a mean cosine of {zh_pos:.2f}, two unrelated sentences {zh_neg:.2f}. "
        "The same pairs in English: {en_pos:.2f} against {en_neg:.2f}. So InfoNCE can hardly tell the "
        "partners apart in Chinese (top-1 {zh_acc} against {en_acc} in English, at this N and τ), and its "
        "loss can exceed log N: the bound goes negative and says nothing. Chinese needs a multilingual or "
        "Chinese model (a multilingual MiniLM, a BGE or a text2vec model), which this offline atlas does "
        "not ship.", unk=zh[3], tokens=zh[4], zh_pos=zh[1], zh_neg=zh[2], en_pos=en[1], en_neg=en[2],
        zh_acc=ui.fmt_pct(zh[0].accuracy), en_acc=ui.fmt_pct(en[0].accuracy)), icon=":material/translate:")
    names = {"zh": t("Chinese examples"), "en": t("their English translations")}
    st.dataframe(pd.DataFrame([{
        t("sentences"): names[lang], t("[UNK] tokens"): f"{s[3]:,} / {s[4]:,}",
        t("mean cos, true pairs"): f"{s[1]:.3f}", t("mean cos, other pairs"): f"{s[2]:.3f}",
        t("InfoNCE loss"): f"{s[0].loss:.3f}", t("top-1"): ui.fmt_pct(s[0].accuracy),
        "log N − L": f"{s[0].bound:.3f}",  # i18n: skip (a formula)
    } for lang, s in stats.items()]), hide_index=True, width="stretch")
    first = ZH_EXAMPLES[0][1]
    st.caption(t("What MiniLM reads of “{text}”: {tokens}", text=first,
                 tokens=" ".join(tok.bytes.decode("utf-8", "replace") for tok in contrastive_cache.wordpiece(first))))


pool_state = None
with tab_nce, ui.guard():
    pool_state = render_nce_tab()


# ---------------------------------------------------------------- tab 2
def bound_figure(points) -> go.Figure:
    fig = go.Figure()
    sizes = sorted({p.n for p in points})
    fig.add_scatter(x=sizes, y=[math.log(n) for n in sizes], name=t("log N (the ceiling)"),
                    line={"dash": "dash", "color": "#495057"},
                    hovertemplate=t("N = %{x}: log N = %{y:.3f} nats<extra></extra>"))
    for i, tau in enumerate(sorted({p.temperature for p in points})):
        pts = [p for p in points if p.temperature == tau]
        fig.add_scatter(x=[p.n for p in pts], y=[p.bound for p in pts], name=f"τ = {tau:g}",
                        mode="lines+markers", line={"color": ui.PALETTE[i % len(ui.PALETTE)]},
                        error_y={"type": "data", "array": [p.loss_std for p in pts], "thickness": 1},
                        customdata=[[p.loss, p.accuracy, p.batches] for p in pts],
                        hovertemplate=t("N = %{x}: bound %{y:.3f} nats, loss %{customdata[0]:.3f}, "
                                        "top-1 %{customdata[1]:.1%} (%{customdata[2]} batches)<extra></extra>"))
    fig.update_xaxes(type="log", dtick=math.log10(2))
    return ui.style_figure(fig, x_title=t("batch size N (log scale)"), y_title=t("log N − InfoNCE (nats)"),
                           height=440)


def best_table(points) -> pd.DataFrame:
    rows = []
    for n in sorted({p.n for p in points}):
        best = max((p for p in points if p.n == n), key=lambda p: p.bound)
        rows.append({"N": n, "log N": f"{math.log(n):.3f}", t("best τ"): f"{best.temperature:g}",  # i18n: skip (log N)
                     t("best bound (nats)"): f"{best.bound:.3f}", t("loss"): f"{best.loss:.3f}",
                     t("top-1"): ui.fmt_pct(best.accuracy), t("bound / log N"): ui.fmt_pct(best.bound / math.log(n))})
    return pd.DataFrame(rows)


def render_bound_tab(pool) -> None:
    if pool is None:
        st.info(t("The pairs of the first tab are needed here."), icon=":material/info:")
        return
    pairs, a, b = pool
    sizes = tuple(n for n in CURVE_SIZES if n <= len(pairs))
    draws = st.slider(t("Random batches per point"), 1, 32, 8, key="cl_draws")
    points = contrastive_cache.curve(a, b, sizes, CURVE_TAUS, draws, 0)
    ui.titled_plot(bound_figure(points), "cl_bound",
                   t("MI lower bound from batches of the {n} embedded pairs", n=len(pairs)))
    st.dataframe(best_table(points), hide_index=True, width="stretch")
    st.caption(t("Error bars: standard deviation of the loss over the random batches. At N = the whole pool "
                 "there is one batch. Embed more pairs in the first tab to extend the curve."))


with tab_bound, ui.guard():
    render_bound_tab(pool_state)


# ---------------------------------------------------------------- tab 3
def cpc_settings() -> contrastive.CPCConfig:
    c1, c2, c3, c4 = st.columns(4)
    unit = c1.selectbox(t("Sequence"), list(contrastive.CPC_UNITS), format_func={k: tr(v) for k, v in contrastive.CPC_UNITS.items()}.get,
                        key="cl_cpc_unit")
    steps = c2.select_slider(t("Training steps"), [20, 50, 100, 200, 300, 500, 1000, 2000], value=300,
                             key="cl_cpc_steps")
    k_max = c3.slider(t("Predict up to k steps ahead"), 2, 16, 8, key="cl_cpc_k")
    batch = c4.select_slider(t("Windows per batch"), [8, 16, 32, 64, 128], value=32, key="cl_cpc_batch")
    lr = 1e-2 if unit == "tokens" else 3e-3
    return contrastive.CPCConfig(unit=unit, steps=steps, k_max=k_max, batch_size=batch, lr=lr,
                       eval_every=max(10, steps // 12))


def accuracy_figure(result) -> go.Figure:
    ks = list(range(1, result.config.k_max + 1))
    fig = go.Figure()
    fig.add_scatter(x=ks, y=result.evals[-1].accuracy, name=t("trained ({n} steps)", n=result.evals[-1].step),
                    mode="lines+markers", line={"color": ui.PALETTE[0], "width": 3},
                    hovertemplate=t("k = %{x}: %{y:.1%} picked the true future<extra></extra>"))
    fig.add_scatter(x=ks, y=result.evals[0].accuracy, name=t("untrained"), mode="lines+markers",
                    line={"color": ui.PALETTE[8]}, hovertemplate="k = %{x}: %{y:.1%}<extra></extra>")
    fig.add_hline(y=result.chance, line_dash="dash", line_color=ui.PALETTE[1],
                  annotation_text=t("chance 1/{m}", m=result.config.eval_candidates))
    fig.update_yaxes(type="log", tickformat=".0%")
    return ui.style_figure(fig, x_title=t("steps ahead k"), y_title=t("held-out accuracy (log)"), height=380)


def bound_k_figure(result) -> go.Figure:
    ks = list(range(1, result.config.k_max + 1))
    fig = go.Figure(go.Bar(x=ks, y=[result.log_candidates - lo for lo in result.evals[-1].loss],
                           marker_color=ui.PALETTE[2],
                           hovertemplate=t("k = %{x}: log M − L = %{y:.3f} nats<extra></extra>")))
    return ui.style_figure(fig, x_title=t("steps ahead k"), y_title=t("log M − InfoNCE (nats)"), height=380)


def history_figure(result) -> go.Figure:
    fig = go.Figure()
    losses = np.asarray(result.losses)
    step_hover = t("step %{x}: %{y:.3f} nats<extra></extra>")
    if len(losses):
        fig.add_scatter(x=np.arange(1, len(losses) + 1), y=cache.smoothed(losses),
                        name=t("training loss (1 + {n} candidates, mean over k)", n=result.config.negatives),
                        line={"color": ui.PALETTE[0]}, hovertemplate=step_hover)
    steps = [e.step for e in result.evals]
    for k in sorted({1, max(1, result.config.k_max // 2), result.config.k_max}):
        fig.add_scatter(x=steps, y=[e.loss[k - 1] for e in result.evals], name=t("held-out loss, k = {k}", k=k),
                        mode="lines+markers", hovertemplate=step_hover)
    fig.add_hline(y=result.log_candidates, line_dash="dot", line_color="#868E96",
                  annotation_text=t("log {m} (uniform guess)", m=result.config.eval_candidates))
    return ui.style_figure(fig, x_title=t("training step"), y_title=t("InfoNCE (nats)"), height=380)


def show_cpc(result) -> None:
    cfg = result.config
    m = st.columns(4)
    m[0].metric(t("Parameters"), ui.fmt_count(result.n_params))
    m[1].metric(tr(TRAINING_ITEMS[cfg.unit]), ui.fmt_count(result.train_items))
    m[2].metric(t("k = 1 accuracy"), ui.fmt_pct(result.evals[-1].accuracy[0]),
                help=t("chance {p}", p=ui.fmt_pct(result.chance)))
    m[3].metric(t("Training time"), f"{result.seconds:.1f} s", help=t("on {device}", device=result.device))
    c1, c2 = st.columns(2)
    with c1:
        ui.titled_plot(accuracy_figure(result), "cl_cpc_acc",
                       t("Held-out: pick z(t+k) among {m} candidates", m=cfg.eval_candidates))
    with c2:
        ui.titled_plot(bound_k_figure(result), "cl_cpc_bound",
                       t("MI lower bound per k: log {m} − L", m=cfg.eval_candidates))
    ui.titled_plot(history_figure(result), "cl_cpc_hist", t("Training loss and held-out loss"))
    st.markdown(t("**What the model picks** (held-out text; the context ends where the prediction starts):"))
    st.dataframe(pd.DataFrame([{"k": e.k, t("context …"): e.context, t("true future"): e.truth,
                                t("model's pick"): e.picked, t("rank of truth"): f"{e.rank} / {e.candidates}"}
                               for e in result.examples]), hide_index=True, width="stretch")


def render_cpc_tab() -> None:
    st.markdown(t(
        "An encoder turns each token (or each 4 bytes) into a latent **z**, a GRU summarises the past into a "
        "context **c**, and one linear map **W_k** per step scores z(t+k)ᵀ W_k c(t). InfoNCE trains all three: "
        "every position must pick its true z(t+k) among the futures of other positions of the batch. "
        "Every 10th article is held out; accuracy is measured there."))
    cfg = cpc_settings()
    run_key = (cfg, device)
    if st.button(t("Train CPC"), key="cl_cpc_train", type="primary"):
        ui.run_with_progress(contrastive_cache.cpc, cfg, device)
        st.session_state["cl_cpc_done"] = run_key
    if st.session_state.get("cl_cpc_done") == run_key:
        show_cpc(contrastive_cache.cpc(cfg, device))
    else:
        st.info(t("Press **Train CPC**: {steps} steps of {batch} windows × {window} latents "
                  "(about 40 s for 300 steps on a 2-core CPU, seconds on a GPU).", steps=cfg.steps,
                  batch=cfg.batch_size, window=cfg.window), icon=":material/model_training:")


with tab_cpc, ui.guard():
    render_cpc_tab()


ui.page_footer(
    t("""
**The heatmap.** Row i is anchor aᵢ, column j is candidate bⱼ (the positive of pair j); the cell is
cos(aᵢ, bⱼ) / τ. InfoNCE is the cross-entropy of each row with its diagonal cell as the target, so a
dark diagonal and pale rest means a low loss. × marks each row's highest logit (top-1 pick).
*Next sentence* pairs share topic and entities; *two crops* of one sentence share most words, so they
are easier. *Hard negatives* (all pairs from one article) share the topic too: accuracy drops.

**The bound.** InfoNCE ≥ log N − I(x; y), i.e. I(x; y) ≥ log N − L. Since L ≥ 0 the bound can never
say more than log N: with small batches it saturates (the dashed line), which is why contrastive
learning wants large batches. The temperature is part of the critic: too high and all logits look
alike (L → log N, bound → 0); too low and a few confident mistakes dominate. The best τ gives the
tightest bound.

**CPC.** Accuracy is measured on held-out articles: each of M positions must pick its own z(t+k)
among the M futures (chance 1/M). It falls with k: the next token is constrained by syntax, eight
tokens ahead mostly by topic. log M − L per k is the model's MI lower bound between context and the
future latent. A few hundred CPU steps give a small model; more steps keep improving it.

**Chinese examples.** Twenty pairs of consecutive Chinese sentences on twenty topics, each with its
English translation. MiniLM is an English model: most Chinese characters are [UNK] to it, so the
Chinese sentences crowd together (high cosine between any two) and InfoNCE barely beats chance, while
the English translations of the same pairs separate well. The note and the table above the heatmap are
measured on the spot.
"""),
    [
        ("van den Oord, Li, Vinyals 2018, Representation Learning with Contrastive Predictive Coding, "
         "sections 2.1–2.3", "https://arxiv.org/abs/1807.03748"),
        ("Poole et al. 2019, On Variational Bounds of Mutual Information, section 2.3 (InfoNCE ≤ log N)",
         "https://arxiv.org/abs/1905.06922"),
        ("Chen et al. 2020, SimCLR, section 2.1 (NT-Xent, temperature)", "https://arxiv.org/abs/2002.05709"),
        ("Radford et al. 2021, CLIP, section 2.3 (symmetric loss)", "https://arxiv.org/abs/2103.00020"),
        ("Logeswaran & Lee 2018, Quick-Thoughts (neighbouring sentences as positives)",
         "https://arxiv.org/abs/1803.02893"),
        ("Giorgi et al. 2021, DeCLUTR (spans of one document as positives)", "https://arxiv.org/abs/2006.03659"),
        ("Reimers & Gurevych 2019, Sentence-BERT; all-MiniLM-L6-v2 model card",
         "https://huggingface.co/sentence-transformers/all-MiniLM-L6-v2"),
    ],
)
