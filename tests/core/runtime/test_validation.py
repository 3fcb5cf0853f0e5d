"""core.runtime.validation: clear refusals for bad numbers, text and uploads."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from core.runtime.validation import (
    ValidationError,
    check_choice,
    check_float,
    check_int,
    check_text,
    decode_upload,
)


@pytest.mark.parametrize("value", [True, None, "abc", 1.5, float("nan"), float("inf"), "1e400"])
def test_check_int_refuses_junk(value):
    with pytest.raises(ValidationError):
        check_int("Steps", value, 1, 10)


@pytest.mark.parametrize("value, expected", [(3, 3), ("7", 7), (4.0, 4), ("1e1", 10)])
def test_check_int_accepts_whole_numbers(value, expected):
    assert check_int("Steps", value, 1, 10) == expected


def test_check_int_range_message_names_the_field():
    with pytest.raises(ValidationError, match="Steps must be between 1 and 10, got 11"):
        check_int("Steps", 11, 1, 10)


def test_check_float_open_interval():
    assert check_float("Temperature", 0.5, 0.0, 10.0, lo_open=True) == 0.5
    with pytest.raises(ValidationError):
        check_float("Temperature", 0.0, 0.0, 10.0, lo_open=True)
    with pytest.raises(ValidationError):
        check_float("Temperature", "nan", 0.0, 10.0)


def test_check_choice():
    assert check_choice("Mode", "full", ["none", "full"]) == "full"
    with pytest.raises(ValidationError, match="must be one of"):
        check_choice("Mode", "<script>", ["none", "full"])


def test_check_text_caps_and_flags():
    checked = check_text("x" * 50, max_chars=10)
    assert checked.text == "x" * 10 and checked.truncated and checked.original_chars == 50
    assert not check_text("hello", max_chars=10).truncated


@pytest.mark.parametrize("text", ["", "   ", "\n\t "])
def test_check_text_refuses_empty(text):
    with pytest.raises(ValidationError, match="empty"):
        check_text(text, max_chars=10)
    assert check_text(text, max_chars=10, allow_empty=True).text == text


def test_check_text_replaces_lone_surrogates():
    checked = check_text("a\ud800b", max_chars=10)
    checked.text.encode("utf-8")   # no longer raises
    assert checked.text.startswith("a") and checked.text.endswith("b")


@given(st.text(max_size=200))
def test_check_text_always_utf8_encodable(text):
    checked = check_text(text, max_chars=100, allow_empty=True)
    checked.text.encode("utf-8")
    assert len(checked.text) <= 100


def test_decode_upload_variants():
    assert decode_upload("héllo".encode(), max_bytes=100).text == "héllo"
    assert decode_upload(b"\xef\xbb\xbfhi there", max_bytes=100).text == "hi there"
    assert decode_upload("hi there".encode("utf-16"), max_bytes=100).text == "hi there"
    cut = decode_upload("ab€".encode(), max_bytes=3)      # cut inside the euro sign
    assert cut.text == "ab" and cut.truncated


@pytest.mark.parametrize("data, message", [
    (b"", "empty"),
    (b"\x00\x01\x02binary", "binary"),
    (b"   \n  ", "whitespace"),
    (b"caf\xe9 au lait and more text", "not UTF-8"),
])
def test_decode_upload_refusals(data, message):
    with pytest.raises(ValidationError, match=message):
        decode_upload(data, max_bytes=1000)
