"""The coloured token view: text cut into its tokens as HTML, every piece of user text escaped.

A page-only view model (pure string work, no Streamlit, so bench/tokenizers.py can time it):
each token a coloured span with its id on hover, special tokens outlined, bytes that are not
whole characters shown as hex, whitespace made visible on request, a cap on the tokens drawn.
Used by the tokenization page and the real-LLM page (its own colours and notes per token).
Also the tokenization page's two view models: a tokenizer's view of a text (:func:`token_view`:
the HTML, ids, the bytes it drops) and a trained BPE before/after one merge (:func:`merge_view`).
Does not handle: right-to-left layout, fonts without the glyphs (the browser's fallback).
"""

from __future__ import annotations

import html
import re
from dataclasses import dataclass

from core import tokenizers
from core.models import bpe
from core.tokenizers import DroppedBytes, Token

# ---------------------------------------------------------------- coloured view (pure HTML, escaped)
VIEW_CSS = """<style>
.tkv{font-family:ui-monospace,SFMono-Regular,Menlo,monospace;font-size:14px;line-height:2.1;
 white-space:pre-wrap;word-break:break-word;tab-size:4;max-height:460px;overflow:auto;padding:6px;
 border:1px solid rgba(128,128,128,.3);border-radius:6px}
.tkv .t{border-radius:3px;padding:1px 0;margin-right:1px}
.tkv .c0{background:#dbe4ff}.tkv .c1{background:#ffe8cc}.tkv .c2{background:#d3f9d8}.tkv .c3{background:#ffdeeb}
.tkv .c4{background:#e5dbff}.tkv .c5{background:#fff3bf}.tkv .c6{background:#c5f6fa}.tkv .c7{background:#e9fac8}
.tkv .t,.tkv .g{color:#1a1a1a}
.tkv .sp{outline:2px solid #5f3dc4;font-weight:600}
.tkv .unk{outline:2px solid #e03131}
.tkv .gap{color:#adb5bd}
.tkv .ws{color:#868e96}
.tkv .inv{font-size:10px;color:#c92a2a;border:1px dashed #c92a2a;border-radius:3px;padding:0 2px}
.tkv .g{display:inline-flex;flex-direction:column;align-items:center;vertical-align:top;line-height:1.3;
 border:1px dashed #868e96;border-radius:4px;padding:1px 2px;margin:0 1px;background:#f8f9fa}
.tkv .g .gb{display:flex;gap:1px;font-size:10px}
.tkv .hex{font-size:10px;color:#495057}
</style>"""

_WS_MAP = str.maketrans({" ": "·", "\n": "↵\n", "\t": "⇥\t", "\r": "␍"})


@dataclass(frozen=True)
class ViewOptions:
    show_whitespace: bool = False    # draw spaces, newlines, tabs as ·, ↵, ⇥
    max_tokens: int = 30_000         # tokens drawn at most (a notice says how many were left out)


def render_html(text: str, tokens: list[Token], special_ids: frozenset[int] = frozenset(),
                options: ViewOptions = ViewOptions(), unk_id: int | None = None,
                colours: list[str] | None = None, notes: list[str] | None = None) -> str:
    """Tokens as coloured, hoverable spans (HTML, every piece of text escaped).

    Tokens that share a character (byte-level BPE cutting a UTF-8 character)
    are drawn as one group: the character(s) on top, the byte pieces below.
    Text no token covers (WordPiece drops whitespace) is drawn grey.
    ``colours`` (one hex colour per token, "#ffd8a8") replaces the cycling palette and
    ``notes`` (one line per token) extends each hover text: a generation coloured by
    each token's probability, say.
    """
    esc = html.escape
    shown = tokens[: options.max_tokens]
    style = _TokenStyle([_hex_colour(c) for c in colours] if colours is not None else None,
                        [esc(str(n), quote=True) for n in notes] if notes is not None else None)
    has_invisible = not _all_visible(text)
    titles: dict[int, str] = {}                 # id -> escaped hover text (ids repeat: cache)
    spans: dict[tuple, str] = {}                # (text, id, colour) -> finished span
    out, pos, i, n = [VIEW_CSS, '<div class="tkv">'], 0, 0, len(shown)
    while i < n:
        tok = shown[i]
        if tok.start > pos:
            out.append(f'<span class="gap">{_show(text[pos:tok.start], options, has_invisible, esc)}</span>')
        j, end = i + 1, tok.end
        while j < n and shown[j].start < end:     # tokens sharing a character form one group
            end = max(end, shown[j].end)
            j += 1
        if j == i + 1:
            key = (text[tok.start:tok.end], tok.id, *style.key(i))
            span = spans.get(key)
            if span is None:
                label = _show(key[0], options, has_invisible, esc)
                span = spans[key] = _span(i, tok, label, special_ids, unk_id, titles, style)
            out.append(span)
        else:
            chips = "".join(_span(k, shown[k], _piece_label(shown[k].bytes, esc), special_ids, unk_id, titles,
                                  style) for k in range(i, j))
            chars = _show(text[tok.start:end], options, has_invisible, esc)
            out.append(f'<span class="g"><span>{chars}</span><span class="gb">{chips}</span></span>')
        pos, i = max(pos, end), j
    if len(tokens) > n:
        out.append(f'<span class="gap"> … {len(tokens) - n:,} more tokens not drawn</span>')
    elif pos < len(text):
        out.append(f'<span class="gap">{_show(text[pos:], options, has_invisible, esc)}</span>')
    out.append("</div>")
    return "".join(out)


def _span(index: int, tok: Token, label: str, special_ids, unk_id, titles: dict[int, str],
          style: _TokenStyle | None = None) -> str:
    cls = "sp" if tok.id in special_ids else ("unk" if tok.id == unk_id else _COLOURS[index % 8])
    title = titles.get(tok.id)
    if title is None:
        title = titles[tok.id] = _title(tok)
    if style is None or (style.colours is None and style.notes is None):
        return f'<span class="t {cls}" title="{title}">{label}</span>'
    colour, note = style.key(index)
    css = f' style="background:{colour}"' if isinstance(colour, str) and cls.startswith("c") else ""
    return f'<span class="t {cls}"{css} title="{title}{" · " + note if note else ""}">{label}</span>'


_COLOURS = tuple(f"c{k}" for k in range(8))
_HEX_COLOUR = re.compile(r"#[0-9a-fA-F]{3,8}")


@dataclass(frozen=True)
class _TokenStyle:
    colours: list[str] | None    # per token: a background, or None (the cycling palette)
    notes: list[str] | None      # per token: extra hover text, already escaped

    def key(self, index: int) -> tuple:
        """(colour, note) of token ``index``; (index % 8, None) without colours (the palette)."""
        colour = self.colours[index] if self.colours is not None and index < len(self.colours) else index & 7
        note = self.notes[index] if self.notes is not None and index < len(self.notes) else None
        return colour, note


def _hex_colour(value) -> str:
    """Only "#rgb" ... "#rrggbbaa" reach a style attribute; anything else is a ValueError."""
    if not isinstance(value, str) or not _HEX_COLOUR.fullmatch(value):
        raise ValueError(f"not a hex colour: {value!r}")
    return value


def _title(tok: Token) -> str:
    """Hover text: id, bytes in hex, and the string (escaped for an attribute)."""
    try:
        piece = repr(tok.bytes.decode("utf-8"))
    except UnicodeDecodeError:
        piece = "part of a UTF-8 character"
    return html.escape(f"id {tok.id} · {len(tok.bytes)} B: {tok.bytes.hex(' ')} · {piece}", quote=True)


def _show(segment: str, options: ViewOptions, has_invisible: bool, esc) -> str:
    """Escaped text; whitespace drawn visibly if asked; invisible characters as U+XXXX chips."""
    if has_invisible and not _all_visible(segment):
        return "".join(_show(ch, options, False, esc) if _all_visible(ch)
                       else f'<span class="inv">U+{ord(ch):04X}</span>' for ch in segment)
    shown = esc(segment, quote=False)
    if options.show_whitespace:
        shown = shown.translate(_WS_MAP)
        if not segment.strip():
            shown = f'<span class="ws">{shown}</span>'
    return shown


def _all_visible(text: str) -> bool:
    """No zero-width, control or format characters (ordinary whitespace is fine)."""
    return text.isprintable() or text.translate(_PLAIN_WS).isprintable()


_PLAIN_WS = str.maketrans("", "", "\n\t\r")


def utf8_runs(data: bytes) -> list[str | bytes]:
    """``data`` cut into runs: whole UTF-8 characters as str, bytes that do not form a character
    (a character cut across tokens, stray continuation bytes) as bytes; joined back they are ``data``."""
    runs: list[str | bytes] = []
    while data:
        try:
            good, bad, data = data.decode("utf-8"), b"", b""
        except UnicodeDecodeError as exc:
            good, bad, data = data[: exc.start].decode("utf-8"), data[exc.start: exc.end], data[exc.end:]
        if good:
            runs.append(good)
        if bad:
            if runs and isinstance(runs[-1], bytes):
                runs[-1] += bad
            else:
                runs.append(bad)
    return runs


def byte_text(data: bytes) -> str:
    """A token's bytes as plain text: whole characters as they are, the bytes of a cut character as
    ⟨e5 9b⟩ (U+FFFD would make every such piece look the same)."""
    return "".join(r if isinstance(r, str) else f"⟨{r.hex(' ')}⟩" for r in utf8_runs(data))


def is_piece(data: bytes) -> bool:
    """Whether a token's bytes are not whole UTF-8 characters."""
    return any(isinstance(r, bytes) for r in utf8_runs(data))


def _piece_label(data: bytes, esc) -> str:
    """A byte piece as HTML: whole characters as escaped text, bytes of a cut character as small hex."""
    return "".join(esc(r, quote=False) if isinstance(r, str) else f'<span class="hex">{r.hex(" ")}</span>'
                   for r in utf8_runs(data))


# ---------------------------------------------------------------- the tokenization page's views
TABLE_TOKENS = 2_000     # Token objects a view keeps for the page's table


@dataclass(frozen=True)
class TokenView:
    html: str                       # the coloured spans (render_html)
    ids: tuple[int, ...]            # every token id
    tokens: tuple[Token, ...]       # the first TABLE_TOKENS tokens
    n: int                          # tokens in all
    decoded: str                    # decode(encode(text))
    shown: str                      # the text as the tokenizer saw it (core.tokenizers.prepare)
    utf8_bytes: int                 # UTF-8 bytes of ``shown``
    dropped: DroppedBytes           # bytes the vocabulary has no token for (dropped by encoding)


def token_view(name: str, text: str, show_whitespace: bool = False, allow_special: bool = False) -> TokenView:
    """``text`` through tokenizer ``name``: coloured HTML (special tokens outlined, [UNK] in red),
    ids, the round trip and the bytes it drops."""
    toks = tokenizers.encode(name, text, allow_special=allow_special)
    specials = tokenizers.special_tokens(name)
    shown = tokenizers.prepare(name, text)
    html_text = render_html(shown, toks, frozenset(specials.values()), ViewOptions(show_whitespace=show_whitespace),
                            unk_id=specials.get("[UNK]"))
    ids = tuple(t.id for t in toks)
    return TokenView(html_text, ids, tuple(toks[:TABLE_TOKENS]), len(toks), tokenizers.decode(name, ids), shown,
                     len(shown.encode("utf-8")), tokenizers.dropped_bytes(name, text))


@dataclass(frozen=True)
class MergeView:
    before: int          # tokens of the sample before merge k
    before_html: str
    after: int           # ... and after it
    after_html: str


def merge_view(model: bpe.TrainedBPE, sample: str, k: int, show_whitespace: bool = False) -> MergeView:
    """A sample sentence cut by the first ``k - 1`` and the first ``k`` merges of ``model``."""
    options = ViewOptions(show_whitespace=show_whitespace)
    before = bpe.segment_tokens(model, sample, k - 1)
    after = bpe.segment_tokens(model, sample, k)
    return MergeView(len(before), render_html(sample, before, options=options),
                     len(after), render_html(sample, after, options=options))
