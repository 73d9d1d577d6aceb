"""Untrusted text made visible: nothing hidden or line-breaking survives, everything else is left alone."""

from __future__ import annotations

import unicodedata

import pytest
from hypothesis import given
from hypothesis import strategies as st

from shared.text import UNSAFE_CATEGORIES, visible


@given(st.text())
def test_no_unsafe_character_survives(text: str) -> None:
    """Any text comes out with no control, format, surrogate or line/paragraph separator character."""
    assert [c for c in visible(text) if unicodedata.category(c) in UNSAFE_CATEGORIES] == []


@given(st.text(alphabet=st.characters(exclude_categories=("Cc", "Cf", "Cs", "Zl", "Zp"))))
def test_safe_text_is_left_as_it_is(text: str) -> None:
    """Letters of any script, emoji, spaces and symbols pass unchanged."""
    assert visible(text) == text


@pytest.mark.parametrize(
    ("raw", "shown"),
    [
        ("a\nb", "a\\nb"),
        ("\x1b[2J", "\\x1b[2J"),
        ("\x85", "\\x85"),
        ("gpu\u202e1", "gpu\\u202e1"),
        ("\u200b\u2028\u2029\ufeff", "\\u200b\\u2028\\u2029\\ufeff"),
        ("\U000e0041", "\\U000e0041"),
        ("\ud800", "\\ud800"),
        ("GPU 🔥 Größe", "GPU 🔥 Größe"),
    ],
)
def test_escapes_name_the_code_point(raw: str, shown: str) -> None:
    """Each hidden character is written as its code point, so an operator sees what was there."""
    assert visible(raw) == shown
