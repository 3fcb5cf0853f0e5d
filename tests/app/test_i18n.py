"""The translation catalogs (app/locale/<lang>/*.po) and app.i18n's rendering of them."""

from __future__ import annotations

import re
import shutil
import string
from pathlib import Path

import pytest
from babel.messages.extract import extract_from_dir
from babel.messages.frontend import parse_mapping_cfg
from babel.messages.pofile import read_po

from app import i18n

ROOT = Path(__file__).resolve().parents[2]
LOCALE = ROOT / "app" / "locale"
CJK = re.compile(r"[\u4e00-\u9fff]")


def _fields(text: str) -> set[tuple[str, str, str]] | str:
    """The placeholders of a msgid or msgstr as (name, format spec, conversion)."""
    try:
        return {(f, spec or "", conv or "") for _, f, spec, conv in string.Formatter().parse(text)
                if f is not None}
    except ValueError:
        return "not a format string"


def _po_entries():
    """(file name, msgid, msgstr) of every translated entry of every app/locale/zh/*.po."""
    for path in sorted((LOCALE / "zh").glob("*.po")):
        with path.open("rb") as fh:
            for msg in read_po(fh, locale="zh"):
                if msg.id and msg.string:
                    yield path.name, msg.id, msg.string


@pytest.mark.parametrize("entry", list(_po_entries()), ids=lambda e: f"{e[0]}:{e[1][:40]}")
def test_placeholders_are_the_same_in_both_languages(entry):
    name, msgid, msgstr = entry
    assert _fields(msgstr) == _fields(msgid), f"{name}: {msgid!r} -> {msgstr!r}"


# ---- core messages
# What core/ and kernels/ say to a user (messages they raise, setting names, oom_guard's what
# and hint, heavy job names), catalogued by app/i18n_extract.py and translated in zh/core.po.

@pytest.fixture(scope="module")
def zh_catalog(tmp_path_factory):
    """The zh catalog compiled into a temporary folder; app.i18n reads it for these tests."""
    locale_dir = tmp_path_factory.mktemp("locale")
    for po in LOCALE.glob("*/*.po"):
        (locale_dir / po.parent.name).mkdir(exist_ok=True)
        shutil.copy(po, locale_dir / po.parent.name / po.name)
    written = i18n.compile_catalogs(locale_dir)
    assert written, "no catalog compiled"
    caches = (i18n.translations, i18n._templates, i18n._catalog_keys)
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(i18n, "LOCALE_DIR", locale_dir)
        for cached in caches:
            cached.cache_clear()
        yield i18n.translations("zh")
        for cached in caches:
            cached.cache_clear()
    for cached in caches:
        cached.cache_clear()


def _core_msgids() -> dict[str, str]:
    """Every message app/i18n_extract.py extracts from core/ and kernels/, with where it is."""
    with (ROOT / "babel.cfg").open() as fh:
        method_map, options_map = parse_mapping_cfg(fh)
    core_map = [(pattern, method) for pattern, method in method_map if pattern.startswith(("core/", "kernels/"))]
    assert core_map, "babel.cfg maps no extractor onto core/ and kernels/"

    def only_core(dirpath: str) -> bool:
        rel = Path(dirpath).relative_to(ROOT).parts
        return not rel or rel[0] in ("core", "kernels") and not any(p.startswith((".", "_")) for p in rel)

    out = {}
    for filename, lineno, message, _comments, _context in extract_from_dir(
            ROOT, core_map, options_map, directory_filter=only_core):
        out.setdefault(message, f"{filename}:{lineno}")
    return out


CORE_MSGIDS = _core_msgids()


def _sample(template: str) -> tuple[str, dict[str, str]]:
    """``template`` formatted with distinct dummy values (a number where the spec asks for one)."""
    values, out = {}, []
    for i, (literal, field, spec, _conv) in enumerate(string.Formatter().parse(template)):
        out.append(literal)
        if field is not None:
            if field not in values:
                if spec and spec[-1] in "fgeE%":
                    values[field] = format(1234.5 + i, spec)
                elif spec:
                    values[field] = format(12345 + i, spec)
                else:
                    values[field] = f"w{i}x"
            out.append(values[field])
    return "".join(out), values


def test_core_catalogues_its_messages():
    assert len(CORE_MSGIDS) > 400
    assert "{name} must be between {lo:,} and {hi:,}, got {ivalue:,}." in CORE_MSGIDS
    assert "Sequence length" in CORE_MSGIDS                       # a check_int setting name
    assert "Lower the sequence length." in CORE_MSGIDS            # an oom_guard hint given by position
    assert "The upload" in CORE_MSGIDS                            # a name parameter's default


def test_every_core_message_has_a_chinese_translation(zh_catalog):
    missing = {msgid: where for msgid, where in CORE_MSGIDS.items() if not zh_catalog._catalog.get(msgid)}
    assert not missing, f"{len(missing)} core messages lack a zh translation: {missing}"


@pytest.mark.parametrize("template", sorted(m for m in CORE_MSGIDS if "{" in m))
def test_each_core_template_renders_its_own_translation(zh_catalog, template):
    """A message made from a template is matched to that template (not a more general one that
    happens to match too) and rendered with the same values."""
    message, values = _sample(template)
    expected = "".join(literal + (values[field] if field is not None else "")
                       for literal, field, _spec, _conv in string.Formatter().parse(zh_catalog._catalog[template]))
    assert i18n.translate_message(message, "zh") == expected


def test_a_message_nested_in_another_is_translated_too(zh_catalog):
    """core puts one message inside another ("...: {err} Using the defaults."): both read in Chinese,
    while a value that is no catalogued text (a number, the user's words) stays as it is."""
    from core.runtime.validation import check_int

    inner = _raised(check_int, "Sequence length", 99999, 1, 4096)
    outer = f"The settings in the URL do not work together: {inner} Using the defaults."
    shown = i18n.translate_message(outer, "zh")
    assert shown.startswith(zh_catalog.gettext("The settings in the URL do not work together: {err} Using the defaults.")
                            .split("{err}")[0])
    assert i18n.translate_message(inner, "zh") in shown and "Sequence length" not in shown
    assert "99,999" in shown
    typed = i18n.translate_message("Unknown preset the cat sat; choose one of gpt2-small, llama-7b.", "zh")
    assert typed == "未知的预设 the cat sat；请从以下选项中选择：gpt2-small, llama-7b。"


def _raised(fn, *args, **kwargs) -> str:
    with pytest.raises(Exception) as info:
        fn(*args, **kwargs)
    return str(info.value)


def test_validation_errors_read_in_chinese(zh_catalog):
    from core.runtime.validation import (
        check_choice,
        check_float,
        check_int,
        check_text,
        decode_upload,
    )

    cases = [
        (_raised(check_int, "Sequence length", 0, 1, 4096), "“序列长度”必须介于 1 和 4,096 之间，当前为 0。"),
        (_raised(check_int, "Hidden size", "abc", 1, 4096), "“隐藏维度”必须是整数，当前为 'abc'。"),
        (_raised(check_int, "Top-k", True, 1, 50), "“Top-k”必须是介于 1 和 50 之间的整数。"),
        (_raised(check_float, "Temperature", -1, 0.0, 2.0, lo_open=True), "“温度”必须在 (0, 2] 内，当前为 -1。"),
        (_raised(check_choice, "Attention backend", "flash", ("sdpa", "naive")),
         "“注意力后端”必须是以下之一：sdpa, naive；当前为 'flash'。"),
        (_raised(check_text, "  ", max_chars=10, name="The prompt"), "“提示词”为空：请输入或粘贴一些内容。"),
        (_raised(decode_upload, b"\x00\x01", max_bytes=100), "“上传的文件”看起来是二进制文件，不是文本。"),
    ]
    for english, chinese in cases:
        assert i18n.translate_message(english, "zh") == chinese, english
        assert i18n.translate_message(english, "en") == english


def test_finetune_and_model_file_errors_read_in_chinese(zh_catalog, monkeypatch, tmp_path):
    from core import llm
    from core.measure.llm_runs import FinetuneConfig, check_finetune

    english = _raised(check_finetune, FinetuneConfig(seq=4), "cpu")
    assert english == "Sequence length must be between 8 and 512, got 4."
    assert i18n.translate_message(english, "zh") == "“序列长度”必须介于 8 和 512 之间，当前为 4。"
    english = _raised(check_finetune, FinetuneConfig(lr=1.0), "cpu")
    assert i18n.translate_message(english, "zh") == "学习率必须在 (0, 0.01] 内。"

    missing = tmp_path / "missing.gguf"
    monkeypatch.setenv("ATLAS_LLM_GGUF", str(missing))
    english = _raised(llm.load_pretrained)
    assert i18n.translate_message(english, "zh") == f"ATLAS_LLM_GGUF={str(missing)!r} 不是一个文件。"


def test_out_of_memory_says_gpu_memory_on_cuda_and_translates_the_hint(zh_catalog):
    from core.runtime.device import oom_guard

    def run_out(device, hint=""):
        with oom_guard("Naive attention", device, hint=hint):
            raise RuntimeError("CUDA out of memory. Tried to allocate 2.00 GiB")

    english = _raised(run_out, "cuda", "Lower N, batch or heads.")
    assert english == "Naive attention ran out of memory on cuda. Lower N, batch or heads."
    assert i18n.translate_message(english, "zh") == "朴素注意力：在 cuda 上显存不足。请降低 N、批大小或头数。"
    assert i18n.translate_message(_raised(run_out, "cpu"), "zh") == "朴素注意力：在 cpu 上内存不足。"


def test_an_unknown_message_stays_english_and_is_recorded(zh_catalog):
    message = "Something core never says."
    assert i18n.translate_message(message, "zh") == message
    assert ("zh", message) in i18n.MISSING
    i18n.MISSING.discard(("zh", message))
    assert CJK.search(i18n.translate_message("The prompt is empty.", "zh"))


# ---- pages and the app shell
# Every string a person reads on a page goes through t("...") (a literal, so Babel extracts
# it), N_("...") where it is defined away from where it is shown, or tr(value) for text that
# core/ returned. The lint below finds literals that escape all three; text that is the same in
# every language (paper titles, units, HTML, code) carries `# i18n: skip` on its line.
import ast  # noqa: E402  (this section's own tools)

I18N_SOURCES = sorted([*ROOT.glob("pages/*.py"),
                       *(p for p in ROOT.glob("app/**/*.py") if p.name not in ("i18n.py", "i18n_extract.py"))])
NON_TEXT_KWARGS = {
    "key", "icon", "type", "mode", "format", "hovermode", "barmode", "colorscale", "color", "line_dash", "dash",
    "symbol", "orientation", "textposition", "xref", "yref", "anchor", "side", "layout", "width", "height",
    "fill", "template", "textinfo", "hoverinfo", "xaxis", "yaxis", "legendgroup", "tickformat",
    "label_visibility", "marker_symbol", "line_shape", "histnorm", "align", "valign", "file_name", "mime",
    "language", "on_change", "page", "url", "yanchor", "xanchor", "theme", "selection_mode", "on_select",
    "color_continuous_scale", "ticksuffix", "tickprefix", "axis", "gap", "vertical_alignment", "border",
    "source", "engine", "layer", "stackgroup", "groupnorm", "fillcolor", "hoveron", "points", "boxpoints",
    "textfont_family", "font_family", "name_key", "sort", "method", "split", "dtype", "device"}
TEXTY = re.compile(r"[A-Za-z]{2,}")
IDENTIFIER = re.compile(r"^[a-z0-9_.\-/:%#+*=<>|\[\](){}, ]*$")     # keys, modes, dtypes, formats
ACRONYM = re.compile(r"^[A-Z0-9_\-]{2,6}$")                           # GPU, CPU, KV, MLA
HEX_COLOUR = re.compile(r"^#[0-9A-Fa-f]{3,8}$")
CSS = re.compile(r"[a-z-]+:[^;\"]*;|^\s*<|[\"']?\s*(title|style)=\"?$")       # inline style and markup
MARKERS = {"t", "N_", "tr"}


def _docstrings(tree: ast.AST) -> set[int]:
    out = set()
    for node in ast.walk(tree):
        body = getattr(node, "body", None)
        if isinstance(node, (ast.Module, ast.FunctionDef, ast.ClassDef)) and body and isinstance(body[0], ast.Expr) \
                and isinstance(body[0].value, ast.Constant) and isinstance(body[0].value.value, str):
            out.add(id(body[0].value))
    return out


def unmarked_text(source: str) -> list[tuple[int, str]]:
    """(line, text) of string literals that read as words and are not marked for translation."""
    tree, lines = ast.parse(source), source.splitlines()
    fine = _docstrings(tree)
    for node in ast.walk(tree):
        if isinstance(node, ast.Call):
            f = node.func
            name = f.id if isinstance(f, ast.Name) else f.attr if isinstance(f, ast.Attribute) else ""
            covered = [node] if name in MARKERS else [kw.value for kw in node.keywords if kw.arg in NON_TEXT_KWARGS]
            fine |= {id(sub) for c in covered for sub in ast.walk(c)}
        elif isinstance(node, ast.Subscript):
            fine |= {id(sub) for sub in ast.walk(node.slice)}      # st.session_state["x"], row["col"]
        elif isinstance(node, ast.Compare):
            fine |= {id(sub) for sub in ast.walk(node)}            # mode == "naive"
        elif isinstance(node, ast.Tuple) and any(isinstance(e, ast.Constant) and isinstance(e.value, str)
                                                 and e.value.startswith("http") for e in node.elts):
            fine |= {id(sub) for sub in ast.walk(node)}            # (paper title, URL): references stay as published
    found = []
    for node in ast.walk(tree):
        if not (isinstance(node, ast.Constant) and isinstance(node.value, str)) or id(node) in fine:
            continue
        text = node.value
        if not TEXTY.search(text) or IDENTIFIER.match(text) or text.startswith(("http", ":material/")) \
                or ACRONYM.match(text.strip()) or HEX_COLOUR.match(text) or CSS.search(text):
            continue
        if "i18n: skip" not in lines[node.lineno - 1]:
            found.append((node.lineno, text[:80]))
    return found


def test_the_lint_finds_unmarked_text():
    src = ('"""Doc."""\nimport streamlit as st\nst.title("Hello world")\nst.title(t("Marked text"))\n'
           'st.button("Go", key="go_button")\nx = {"Model": 1}\nif mode == "Some mode":\n    pass\n'
           'st.caption("Vaswani et al. 2017")  # i18n: skip\nst.write(f"{n} tokens")\n')
    assert [text for _, text in unmarked_text(src)] == ["Hello world", "Go", "Model"] or \
        sorted(text for _, text in unmarked_text(src)) == sorted(["Hello world", "Go", "Model", " tokens"])


@pytest.mark.parametrize("path", I18N_SOURCES, ids=lambda p: str(p.relative_to(ROOT)))
def test_page_text_is_marked_for_translation(path):
    found = unmarked_text(path.read_text(encoding="utf-8"))
    assert not found, f"{len(found)} unmarked strings in {path.relative_to(ROOT)}: {found[:20]}"


def _app_msgids() -> dict[str, str]:
    """Every t("...") / N_("...") msgid in pages/ and app/, with where it is."""
    with (ROOT / "babel.cfg").open() as fh:
        method_map, options_map = parse_mapping_cfg(fh)
    app_map = [(pattern, method) for pattern, method in method_map if pattern.startswith(("pages/", "app/"))]

    def only_app(dirpath: str) -> bool:
        rel = Path(dirpath).relative_to(ROOT).parts
        return not rel or rel[0] in ("pages", "app") and not any(p.startswith((".", "_")) for p in rel)

    out = {}
    for filename, lineno, message, _comments, _context in extract_from_dir(
            ROOT, app_map, options_map, keywords={"t": None, "N_": None}, directory_filter=only_app):
        if isinstance(message, str):
            out.setdefault(message, f"{filename}:{lineno}")
    return out


def test_every_page_string_has_a_chinese_translation(zh_catalog):
    msgids = _app_msgids()
    assert "How to read this" in msgids and "Inside a real LLM" in msgids
    missing = {m: where for m, where in msgids.items() if not zh_catalog._catalog.get(m)}
    assert not missing, f"{len(missing)} page strings lack a zh translation: {dict(list(missing.items())[:30])}"


def test_t_takes_a_literal_so_it_can_be_extracted():
    bad = []
    for path in I18N_SOURCES:
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id in ("t", "N_") \
                    and not (node.args and isinstance(node.args[0], ast.Constant) and isinstance(node.args[0].value, str)):
                bad.append(f"{path.relative_to(ROOT)}:{node.lineno}")
    assert not bad, bad


def test_language_from_the_header():
    assert i18n.language_from_header("zh-CN,zh;q=0.9,en;q=0.8") == "zh"
    assert i18n.language_from_header("en-GB,en;q=0.9,zh;q=0.8") == "en"
    assert i18n.language_from_header("de;q=0.9,zh-TW;q=0.5") == "zh"
    assert i18n.language_from_header("fr,de") is None and i18n.language_from_header(None) is None
