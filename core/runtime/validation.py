"""Input checks shared by every core module: one error type, clear messages.

Every value a user can give (text, numbers, uploads, URL query parameters) is
checked here, in core/, so a crafted request cannot bypass a widget's limits.
Pages catch :class:`ValidationError` and show its message (see app/ui.py).
Does not handle: sanitising HTML (pages escape user text when they render it).
"""

from __future__ import annotations

import math
import re
import unicodedata
from dataclasses import dataclass

# Defined in kernels/errors.py (kernels/ imports nothing from core/), re-exported here:
# one class each, so a kernel's refusal is a core.runtime.validation.ValidationError too.
from kernels.errors import ResourceError as ResourceError
from kernels.errors import ValidationError


@dataclass(frozen=True)
class CheckedText:
    text: str          # the text to use (possibly truncated)
    truncated: bool    # True when the input was longer than the cap
    original_chars: int  # length of the input before capping


def check_int(name: str, value, lo: int, hi: int) -> int:
    """An integer in [lo, hi]; bools, floats with a fraction and junk are refused."""
    if isinstance(value, bool) or value is None:
        raise ValidationError(f"{name} must be a whole number between {lo:,} and {hi:,}.")
    try:
        as_float = float(value)
    except (TypeError, ValueError):
        raise ValidationError(f"{name} must be a whole number, got {str(value)[:40]!r}.") from None
    if not math.isfinite(as_float) or as_float != int(as_float):
        raise ValidationError(f"{name} must be a whole number, got {str(value)[:40]!r}.")
    ivalue = int(as_float)
    if not lo <= ivalue <= hi:
        raise ValidationError(f"{name} must be between {lo:,} and {hi:,}, got {ivalue:,}.")
    return ivalue


def check_float(name: str, value, lo: float, hi: float, *, lo_open: bool = False) -> float:
    """A finite float in [lo, hi] (or (lo, hi] with ``lo_open``)."""
    try:
        fvalue = float(value)
    except (TypeError, ValueError):
        raise ValidationError(f"{name} must be a number, got {str(value)[:40]!r}.") from None
    if isinstance(value, bool) or not math.isfinite(fvalue):
        raise ValidationError(f"{name} must be a finite number.")
    too_low = fvalue <= lo if lo_open else fvalue < lo
    if too_low or fvalue > hi:
        left = "(" if lo_open else "["
        raise ValidationError(f"{name} must be in {left}{lo:g}, {hi:g}], got {fvalue:g}.")
    return fvalue


def check_choice(name: str, value, choices) -> str:
    """One of ``choices`` (compared as strings)."""
    options = [str(c) for c in choices]
    if str(value) not in options:
        shown = ", ".join(options[:12])
        raise ValidationError(f"{name} must be one of: {shown}; got {str(value)[:40]!r}.")
    return str(value)


def check_text(text, *, max_chars: int, allow_empty: bool = False, name: str = "Text") -> CheckedText:
    """Text capped at ``max_chars`` characters; lone surrogates are replaced.

    Raises ValidationError for non-strings and (unless allowed) empty or
    whitespace-only text.
    """
    if not isinstance(text, str):
        raise ValidationError(f"{name} must be text.")
    # Lone surrogates cannot be encoded as UTF-8: replace them with U+FFFD.
    clean = _SURROGATE_RE.sub("\ufffd", text) if has_surrogates(text) else text
    if not allow_empty and not clean.strip():
        raise ValidationError(f"{name} is empty: type or paste something.")
    truncated = len(clean) > max_chars
    return CheckedText(clean[:max_chars] if truncated else clean, truncated, len(clean))


_SURROGATE_RE = re.compile("[\ud800-\udfff]")


def has_surrogates(text: str) -> bool:
    """True when ``text`` holds lone surrogates (it cannot be encoded as UTF-8)."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return True
    return False


def decode_upload(data: bytes, *, max_bytes: int, name: str = "The upload") -> CheckedText:
    """Decode an uploaded text file (UTF-8, UTF-8 with BOM, or UTF-16 with BOM).

    Binary files (NUL bytes, mostly control characters) and empty files are
    refused with a message; files over ``max_bytes`` are cut (truncated=True).
    """
    if not isinstance(data, (bytes, bytearray)):
        raise ValidationError(f"{name} must be a file.")
    if len(data) == 0:
        raise ValidationError(f"{name} is empty.")
    truncated = len(data) > max_bytes
    raw = bytes(data[:max_bytes])
    text = _decode_bytes(raw, name)
    if _looks_binary(text):
        raise ValidationError(f"{name} looks like a binary file, not text.")
    if not text.strip():
        raise ValidationError(f"{name} holds only whitespace.")
    return CheckedText(text, truncated, len(data))


def _decode_bytes(raw: bytes, name: str) -> str:
    if raw.startswith((b"\xff\xfe", b"\xfe\xff")):
        return raw.decode("utf-16", errors="replace")
    if b"\x00" in raw[:4096]:
        raise ValidationError(f"{name} looks like a binary file, not text.")
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError as err:
        # A cut in the middle of a multi-byte character at the cap is fine.
        if err.start >= len(raw) - 3:
            return raw[: err.start].decode("utf-8-sig")
        raise ValidationError(
            f"{name} is not UTF-8 text (invalid byte at position {err.start:,}). "
            "Save it as UTF-8 and try again."
        ) from None


def _looks_binary(text: str) -> bool:
    sample = text[:8192]
    if not sample:
        return False
    controls = sum(
        1 for ch in sample if unicodedata.category(ch) == "Cc" and ch not in "\n\r\t\f\v"
    )
    return controls / len(sample) > 0.05
