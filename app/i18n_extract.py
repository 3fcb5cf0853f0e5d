"""Babel extraction of the messages core/ and kernels/ raise, as the templates they are written with.

core/ stays language-free: it raises ``ValidationError(f"{name} must be between {lo:,} and
{hi:,}, got {value:,}.")``. This extractor (registered in babel.cfg as ``atlas_core``) turns
each such f-string into a catalog entry whose placeholders are the f-string's own fields:
a simple name or attribute keeps its text ("{name}", "{cfg.seq}"), any other expression
becomes "{v0}", "{v1}" ... in order. app/i18n.translate_message matches a raised message
against these templates at display time. Also extracted, since they end up inside messages:
the setting names given to core.runtime.validation's check_* helpers and decode_upload, the
``what`` and ``hint`` of oom_guard (by keyword or position), the names of heavy jobs, and the
str defaults of ``name``/``what``/``hint`` parameters.
Does not handle: messages assembled in a variable before the raise (write them inline), or
built with ``%`` / ``.format`` (write f-strings).
"""

from __future__ import annotations

import ast
import re

EXCEPTIONS = {"ValidationError", "ResourceError", "DeviceOutOfMemory", "JobTimeout", "QueueTimeout",
              "QueueFull", "ValueError"}
NAMED = {"check_int": 0, "check_float": 0, "check_choice": 0, "oom_guard": 0, "heavy_job": 0}
POSITIONAL_HINTS = {"oom_guard": 2}   # oom_guard(what, device, hint): a hint given without its keyword
NAME_KWARGS = {"name", "hint", "what"}
NAME_CALLS = {"decode_upload"}   # also take their name=... (like the check_* helpers)
SIMPLE = re.compile(r"^[A-Za-z_][\w.]*$")


def template(node: ast.AST, source: str) -> str | None:
    """The catalog form of a str constant or f-string node; None for anything else."""
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return node.value
    if not isinstance(node, ast.JoinedStr):
        return None
    out, counter = [], 0
    for part in node.values:
        if isinstance(part, ast.Constant):
            out.append(part.value.replace("{", "{{").replace("}", "}}"))
            continue
        expr = ast.get_source_segment(source, part.value) or ""
        if SIMPLE.match(expr):
            name = expr
        else:
            name, counter = f"v{counter}", counter + 1
        spec = ""
        if part.format_spec is not None and all(isinstance(v, ast.Constant) for v in part.format_spec.values):
            spec = ":" + "".join(v.value for v in part.format_spec.values)
        out.append("{" + name + spec + "}")
    return "".join(out)


def _callee(call: ast.Call) -> str:
    f = call.func
    return f.id if isinstance(f, ast.Name) else f.attr if isinstance(f, ast.Attribute) else ""


def messages(source: str) -> list[tuple[int, str]]:
    """(line, message template) of every catalogued message in one module's source."""
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            found += _default_names(node)
        if not isinstance(node, ast.Call):
            continue
        name = _callee(node)
        args = []
        if (name in EXCEPTIONS or name.endswith("Error") or name == "N_") and node.args:
            args.append(node.args[0])
        if name in NAMED and len(node.args) > NAMED[name]:
            args.append(node.args[NAMED[name]])
        if name in POSITIONAL_HINTS and len(node.args) > POSITIONAL_HINTS[name]:
            args.append(node.args[POSITIONAL_HINTS[name]])
        if name.startswith("check_") or name in NAMED or name in NAME_CALLS:
            args += [kw.value for kw in node.keywords if kw.arg in NAME_KWARGS]
        for arg in args:
            text = template(arg, source)
            if text and any(c.isalpha() for c in text):
                found.append((node.lineno, text))
    return found


def _default_names(func: ast.FunctionDef | ast.AsyncFunctionDef) -> list[tuple[int, str]]:
    """The str defaults of a function's name/what/hint parameters (``name="The upload"``):
    they end up inside its messages when a caller gives none."""
    a = func.args
    positional = a.posonlyargs + a.args
    pairs = list(zip(positional[len(positional) - len(a.defaults):], a.defaults, strict=True))
    pairs += [(arg, d) for arg, d in zip(a.kwonlyargs, a.kw_defaults, strict=True) if d is not None]
    return [(func.lineno, d.value) for arg, d in pairs
            if arg.arg in NAME_KWARGS and isinstance(d, ast.Constant) and isinstance(d.value, str)
            and any(c.isalpha() for c in d.value)]


def extract_core(fileobj, keywords, comment_tags, options):
    """Babel extraction method: yields (lineno, funcname, message, comments)."""
    source = fileobj.read().decode(options.get("encoding", "utf-8"))
    for lineno, text in messages(source):
        yield lineno, None, text, []
