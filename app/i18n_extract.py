"""Babel extraction of the messages core/ and kernels/ raise, as the templates they are written with.

core/ stays language-free: it raises ``ValidationError(f"{name} must be between {lo:,} and
{hi:,}, got {value:,}.")``. This extractor (registered in babel.cfg as ``atlas_core``) turns
each such f-string into a catalog entry whose placeholders are the f-string's own fields:
a simple name or attribute keeps its text ("{name}", "{cfg.seq}"), any other expression
becomes "{v0}", "{v1}" ... in order. app/i18n.translate_message matches a raised message
against these templates at display time. Also extracted, since they end up inside messages:
the setting names given to core.runtime.validation's check_* helpers, the ``what`` and ``hint``
of oom_guard, and the names of heavy jobs.
Does not handle: messages assembled in a variable before the raise (write them inline), or
built with ``%`` / ``.format`` (write f-strings).
"""

from __future__ import annotations

import ast
import re

EXCEPTIONS = {"ValidationError", "ResourceError", "DeviceOutOfMemory", "JobTimeout", "QueueTimeout",
              "QueueFull", "ValueError"}
NAMED = {"check_int": 0, "check_float": 0, "check_choice": 0, "oom_guard": 0, "heavy_job": 0}
NAME_KWARGS = {"name", "hint", "what"}
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
        if not isinstance(node, ast.Call):
            continue
        name = _callee(node)
        args = []
        if (name in EXCEPTIONS or name.endswith("Error")) and node.args:
            args.append(node.args[0])
        if name in NAMED and len(node.args) > NAMED[name]:
            args.append(node.args[NAMED[name]])
        if name.startswith("check_") or name in NAMED:
            args += [kw.value for kw in node.keywords if kw.arg in NAME_KWARGS]
        for arg in args:
            text = template(arg, source)
            if text and any(c.isalpha() for c in text):
                found.append((node.lineno, text))
    return found


def extract_core(fileobj, keywords, comment_tags, options):
    """Babel extraction method: yields (lineno, funcname, message, comments)."""
    source = fileobj.read().decode(options.get("encoding", "utf-8"))
    for lineno, text in messages(source):
        yield lineno, None, text, []
