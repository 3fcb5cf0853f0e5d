"""Shared UI pieces: page header/footer, error display, number formatting, plot theme.

Pages call these so every page looks and behaves the same: a title with a
two-line "what you are looking at", errors shown as messages (never a
traceback), numbers always with units, and plotly charts in one theme.
"""

from __future__ import annotations

import contextlib
import html
import logging
import math
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass

import plotly.colors as pc
import plotly.graph_objects as go
import streamlit as st

from app import cache
from app.i18n import t, tr
from core.runtime.validation import CheckedText, ResourceError, ValidationError

log = logging.getLogger("atlas.ui")

UNEXPECTED = "Unexpected error"   # tests look for this marker: it must never show  # i18n: skip (the same in every language)
PALETTE = ("#4C6EF5", "#F76707", "#12B886", "#E64980", "#7950F2", "#FAB005",
           "#15AABF", "#82C91E", "#868E96", "#BE4BDB")


# ---------------------------------------------------------------- page frame
def page_header(title: str, what: str) -> None:
    """Title and a short "what you are looking at" (our text, markdown allowed)."""
    st.title(title)
    st.markdown(what)


def page_footer(how_to_read: str, references: list[tuple[str, str]]) -> None:
    """"How to read this" and the references (label, URL) at the bottom of a page."""
    st.divider()
    with st.expander(t("How to read this"), expanded=False):
        st.markdown(how_to_read)
    if references:
        with st.expander(t("References"), expanded=False):
            st.markdown("\n".join(f"- [{label}]({url})" for label, url in references))


# ---------------------------------------------------------------- errors
def show_error(exc: BaseException) -> None:
    """Show an exception as a message: validation/resource errors as they are (in the session's
    language: core's message templates are catalogued), others generic. The generic one keeps
    the English marker UNEXPECTED in every language, for the tests."""
    if isinstance(exc, ValidationError):
        st.error(tr(str(exc)), icon=":material/error:")
    elif isinstance(exc, ResourceError):
        st.error(tr(str(exc)), icon=":material/memory:")
    else:
        log.exception("page error", exc_info=exc)
        st.error(
            t("{marker} ({kind}): {detail}. The details are in the server log; try other settings.",
              marker=UNEXPECTED, kind=type(exc).__name__, detail=escape(str(exc))[:300]),
            icon=":material/bug_report:",
        )


@contextlib.contextmanager
def guard() -> Iterator[None]:
    """``with ui.guard(): ...``: any error inside becomes a message; the page goes on."""
    try:
        yield
    except Exception as exc:
        show_error(exc)


def run_safely(page) -> None:
    """Run the navigation's current page; a stray exception becomes a message."""
    try:
        page.run()
    except Exception as exc:
        show_error(exc)


def notice_truncated(checked: CheckedText, cap: int, unit: str = "characters") -> None:
    """A visible notice when user input was cut to ``cap``."""
    if checked.truncated:
        st.warning(
            t("Input is {n:,} {unit}; only the first {cap:,} are used.", n=checked.original_chars,
              unit=tr(unit), cap=cap),
            icon=":material/content_cut:",
        )


# ---------------------------------------------------------------- text
def escape(text: str) -> str:
    """HTML-escape user text for st.markdown(..., unsafe_allow_html=True)."""
    return html.escape(str(text), quote=True)


# ---------------------------------------------------------------- numbers
def fmt_bytes(n: float | None, *, binary: bool = False, digits: int = 2) -> str:
    """1.50 GB (decimal) or 1.40 GiB (binary=True); None -> "—"."""
    if n is None or (isinstance(n, float) and math.isnan(n)):
        return "—"
    base, units = (1024.0, ("B", "KiB", "MiB", "GiB", "TiB", "PiB")) if binary else (  # i18n: skip (units)
        1000.0, ("B", "KB", "MB", "GB", "TB", "PB"))  # i18n: skip (units)
    value, unit = float(n), units[0]
    for unit in units:
        if abs(value) < base or unit == units[-1]:
            break
        value /= base
    return f"{value:,.0f} {unit}" if unit == "B" else f"{value:,.{digits}f} {unit}"


def fmt_count(n: float | None, digits: int = 2) -> str:
    """124.44 M, 6.74 B, 671.03 B; None -> "—"."""
    if n is None:
        return "—"
    for div, suffix in ((1e12, " T"), (1e9, " B"), (1e6, " M"), (1e3, " K")):
        if abs(n) >= div:
            return f"{n / div:,.{digits}f}{suffix}"
    return f"{n:,.0f}" if float(n).is_integer() else f"{n:,.{digits}f}"


def fmt_ms(ms: float | None) -> str:
    """0.123 ms, 12.3 ms, 1.23 s; None -> "—"."""
    if ms is None:
        return "—"
    if ms >= 1000:
        return f"{ms / 1000:,.2f} s"
    return f"{ms:,.3f} ms" if ms < 1 else f"{ms:,.1f} ms"


def fmt_pct(x: float | None, digits: int = 1) -> str:
    """0.123 -> 12.3 %; None -> "—"."""
    return "—" if x is None else f"{100 * x:,.{digits}f} %"


# ---------------------------------------------------------------- plots
def style_figure(fig: go.Figure, *, x_title: str | None = None, y_title: str | None = None,
                 height: int | None = None, title: str | None = None) -> go.Figure:
    """The atlas look: palette, compact margins, unified hover, axis titles with units."""
    fig.update_layout(
        colorway=list(PALETTE),
        margin={"l": 10, "r": 10, "t": 40 if title else 10, "b": 10},
        hovermode="closest",
        legend={"orientation": "h", "yanchor": "bottom", "y": 1.02, "x": 0},
        font={"size": 13},
    )
    if title:   # title on the left, legend moved to the right so they never overlap
        fig.update_layout(title={"text": title, "x": 0},
                          legend={"x": 1, "xanchor": "right"})
    if height:
        fig.update_layout(height=height)
    if x_title is not None:
        fig.update_xaxes(title_text=x_title)
    if y_title is not None:
        fig.update_yaxes(title_text=y_title)
    return fig


def plot(fig: go.Figure, key: str) -> None:
    """Show a plotly figure full width (keyed, so reruns keep zoom state)."""
    st.plotly_chart(fig, width="stretch", key=key)


def titled_plot(fig: go.Figure, key: str, title: str) -> None:
    """A bold title line above a chart (plotly titles collide with the top legend)."""
    st.markdown(f"**{title}**")
    plot(fig, key=key)


def plot_pair(left: go.Figure, right: go.Figure, keys: tuple[str, str]) -> None:
    """Two figures side by side in two equal columns (``keys``: left's, right's)."""
    col_left, col_right = st.columns(2)
    with col_left:
        plot(left, key=keys[0])
    with col_right:
        plot(right, key=keys[1])


# ---------------------------------------------------------------- run buttons
def last_run(pressed: bool, key: str, settings, *, idle: str | None = None, changed: str | None = None):
    """The settings a run button last ran (None before the first press): a press stores ``settings``
    under ``key``; before any press ``idle`` is shown under it, and ``changed`` (or a default) when the
    widgets have moved since, so the last result stays on screen until the next press."""
    if pressed:
        st.session_state[key] = settings
    ran = st.session_state.get(key)
    if ran is None:
        if idle:
            st.caption(idle)
    elif ran != settings:
        st.caption(changed or t("Settings changed: press the button to measure them. Showing the last run."))
    return ran


# ---------------------------------------------------------------- progress
def progress_callback(bar, *, translate: bool = True) -> Callable[[float, str], None]:
    """Adapter from core's ``progress(fraction, message)`` to an st.progress bar; core's messages
    are shown in the session's language (``translate=False``: the page's own, already translated)."""

    def update(fraction: float, message: str = "") -> None:
        shown = (tr(message) if translate else message) if message else None
        with _not_replayed():
            bar.progress(min(max(float(fraction), 0.0), 1.0), text=shown)

    return update


def run_with_progress(fn: Callable, *args, text: str | None = None, **kwargs):
    """``fn(*args, _progress=..., _on_wait=..., **kwargs)`` under a progress bar and a queue notice,
    both removed once it returns (a cached call in app/cache.py takes the two callbacks)."""
    bar, wait = st.progress(0.0, text=text), st.empty()
    try:
        return fn(*args, _progress=progress_callback(bar), _on_wait=wait_callback(wait), **kwargs)
    finally:
        bar.empty()
        wait.empty()


def wait_callback(placeholder) -> Callable[[int, float], None]:
    """Adapter for the scheduler's ``on_wait(ahead, waited_s)``: a visible queue notice."""
    label = "GPU" if cache.device_name().startswith("cuda") else "CPU"
    waiting = t("Waiting for the {device} ({ahead} ahead): another session's heavy job is running; "
                "yours starts when it is done. Waited {waited:.0f} s.")

    def update(ahead: int, waited: float) -> None:
        with _not_replayed():
            if ahead == 0:                 # the scheduler says: your job starts now
                placeholder.empty()
                return
            placeholder.info(waiting.format(device=label, ahead=ahead, waited=waited),
                             icon=":material/hourglass_top:")

    return update


@contextlib.contextmanager
def _not_replayed() -> Iterator[None]:
    """Updates of an element made *outside* a cached function must not be recorded for cache replay:
    on a cache hit Streamlit would replay them onto an element of an old run (CacheReplayClosureError)."""
    from streamlit.runtime.scriptrunner_utils.script_run_context import in_cached_function

    token = in_cached_function.set(False)
    try:
        yield
    finally:
        in_cached_function.reset(token)


def recorded_caption(meta: dict) -> str:
    """"recorded on <device>, <date>" for results loaded from bench/results/."""
    device = meta.get("device", {}).get("name") or t("unknown device")
    return t("Recorded on {device}, {date} (bench/results/).", device=device,
             date=meta.get("date") or t("unknown date"))


# ---------------------------------------------------------------- device
def device_label(info) -> str:
    """"NVIDIA H200 · 139.8 GiB" or "CPU – timings are CPU timings"."""
    if info.kind == "cuda":
        return f"{info.name} · {fmt_bytes(info.total_memory, binary=True, digits=1)}"
    if info.kind == "mps":
        return t("{name} (unified memory)", name=info.name)
    return t("CPU – timings are CPU timings")


def sidebar_device_badge(info) -> None:
    """Device and software versions at the bottom of the sidebar."""
    with st.sidebar:
        st.divider()
        icon = ":material/memory:" if info.kind != "cpu" else ":material/computer:"
        st.markdown(f"{icon} **{escape(device_label(info))}**")
        triton = info.triton_version or t("not installed")
        mode = t(" (interpreter)") if info.triton_interpreted and info.triton_version else ""
        st.caption(f"torch {info.torch_version} · triton {triton}{mode}")  # i18n: skip (package names)


# ---------------------------------------------------------------- whitespace
WHITESPACE_MARKS = {" ": "␣", "\n": "⏎", "\t": "⇥", "\r": "␍"}   # characters as labels
TOKEN_WHITESPACE_MARKS = {" ": "·", "\n": "↵", "\t": "⇥", "\r": "␍"}   # as the token view draws them


def visible_whitespace(text: str, marks: dict[str, str] = WHITESPACE_MARKS) -> str:
    """``text`` with its spaces, newlines, tabs and carriage returns drawn as ``marks`` (a plain
    label for plots and tables, not HTML: escape it where it goes into HTML)."""
    return text.translate(str.maketrans(marks))


# ---------------------------------------------------------------- coloured text (HTML)
def category_colors(n: int) -> list[str]:
    """``n`` distinguishable colours: the palette, plotly's qualitative sets, then evenly spaced hues."""
    base = [*PALETTE, *pc.qualitative.Dark24, *pc.qualitative.Light24]
    if n <= len(base):
        return base[:n]
    return [f"hsl({int(360 * i / n)}, 70%, 50%)" for i in range(n)]


def text_color_on(color: str) -> str | None:
    """Black or white text, whichever reads better on the hex ``color`` ("#rrggbb"); None otherwise."""
    if not color.startswith("#") or len(color) != 7:
        return None
    r, g, b = (int(color[i:i + 2], 16) for i in (1, 3, 5))
    return "#000" if 0.299 * r + 0.587 * g + 0.114 * b > 150 else "#fff"


@dataclass(frozen=True)
class Mark:
    """One piece of text of :func:`marked_text`."""
    text: str              # the piece (user text welcome: it is escaped when drawn)
    color: str = ""        # background colour ("" = none)
    tip: str = ""          # hover text (escaped when drawn)
    dotted: bool = False   # a dotted underline (say, a character the model does not know)
    muted: bool = False    # grey text (say, the prompt before the generated text)


def marked_text(marks: Iterable[Mark]) -> str:
    """Pieces of text on coloured backgrounds with hover tips, one monospace block of HTML for
    ``st.markdown(..., unsafe_allow_html=True)``. Every piece is escaped; spaces are kept, a
    newline shows as ⏎ and breaks the line, and a line may break between any two pieces."""
    spans = []
    for m in marks:
        fg = "#868E96" if m.muted else (text_color_on(m.color) if m.color else None)
        style = "".join((f"background:{escape(m.color)};" if m.color else "",
                         f"color:{fg};" if fg else "",
                         "text-decoration:underline dotted;" if m.dotted else "",
                         "padding:0 1px;border-radius:3px;white-space:pre-wrap"))
        label = escape(m.text).replace("\r", "␍").replace("\n", "⏎<br>")  # i18n: skip (markup)
        tip = f' title="{escape(m.tip)}"' if m.tip else ""
        spans.append(f'<span{tip} style="{style}">{label}</span><wbr>')
    return ('<div style="font-family:monospace;font-size:1.05rem;line-height:2.1">'
            + "".join(spans) + "</div>")


def legend_chips(items: Iterable[tuple[str, str]]) -> str:
    """(label, colour) pairs as small rounded chips, HTML for a line of st.markdown (labels escaped)."""
    chips = []
    for label, color in items:
        fg = text_color_on(color)
        chips.append(f'<span style="background:{escape(color)};{f"color:{fg};" if fg else ""}'
                     f'padding:1px 6px;border-radius:8px;margin-right:4px;font-size:0.8rem">'
                     f"{escape(label)}</span>")
    return "".join(chips)


# ---------------------------------------------------------------- shared by the real-model sections
def map_with_progress(fn: Callable, items, *args, text: Callable[[object], str] | None = None) -> list:
    """``[fn(*args, item, _on_wait=...) for item in items]`` under one progress bar that moves on
    per item, and a queue notice; both removed once done. For cached calls that each measure one
    item (one sequence length, one setting) and report no progress of their own."""
    items = list(items)
    bar, wait = st.progress(0.0), st.empty()
    update, on_wait = progress_callback(bar, translate=False), wait_callback(wait)
    try:
        out = []
        for i, item in enumerate(items):
            update(i / max(len(items), 1), text(item) if text else "")
            out.append(fn(*args, item, _on_wait=on_wait))
        return out
    finally:
        bar.empty()
        wait.empty()


def graph_points(graph, fields: tuple[str, ...] = ()) -> tuple[list[tuple], list[tuple]]:
    """A networkx graph whose nodes carry ``pos`` = (x, y), flattened for a plotly figure:
    nodes as (id, x, y, *fields) and edges as ((x0, y0), (x1, y1))."""
    nodes = [(n, *d["pos"], *(d[f] for f in fields)) for n, d in graph.nodes(data=True)]
    edges = [(graph.nodes[u]["pos"], graph.nodes[v]["pos"]) for u, v in graph.edges()]
    return nodes, edges


def visible_token(text: str, max_len: int | None = None) -> str:
    """A token as plain text: whitespace made visible ("∅" if empty), cut to ``max_len``."""
    shown = visible_whitespace(text) or "∅"
    return shown if max_len is None or len(shown) <= max_len else shown[: max_len - 1] + "…"


def token_label(text: str, max_len: int | None = None) -> str:
    """A token as a chart label: :func:`visible_token`, HTML-escaped (plotly reads <b>, <br> in
    labels and hover text)."""
    return html.escape(visible_token(text, max_len), quote=False)
