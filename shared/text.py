"""Untrusted text made safe to show: invisible and line-breaking characters become visible escapes.

Readings carry text from outside (device_id, host_name, gpu_model). Shown as
it is, a newline forges a log line, U+2028/U+2029 break lines in viewers, a
bidi override (U+202E) or a zero-width character makes `gpu-1` display as
something else, and a lone surrogate cannot even be written as UTF-8. Slack
messages and both log formats pass such text through `visible` first.
"""

from __future__ import annotations

import unicodedata
from typing import Final

# Control (Cc: C0, DEL, C1), format (Cf: bidi controls, zero-width characters, soft hyphen...), surrogates
# (Cs) and the line and paragraph separators (Zl, Zp).
UNSAFE_CATEGORIES: Final = frozenset({"Cc", "Cf", "Cs", "Zl", "Zp"})
_SHORT: Final = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}


def escape_char(char: str) -> str:
    """`\\n`, `\\x1b`, `\\u202e` or `\\U000e0001`: the code point written out, so nothing stays hidden."""
    short = _SHORT.get(char)
    if short is not None:
        return short
    code = ord(char)
    if code < 0x100:
        return f"\\x{code:02x}"
    return f"\\u{code:04x}" if code < 0x10000 else f"\\U{code:08x}"


def is_unsafe(char: str) -> bool:
    return unicodedata.category(char) in UNSAFE_CATEGORIES


def visible(text: str) -> str:
    """`text` with every control, format, surrogate and line/paragraph separator character escaped.

    Everything else (letters of any script, emoji, spaces) is left as it is.
    """
    if text.isprintable():  # false for every unsafe category: the common case costs one C-level scan
        return text
    return "".join(escape_char(char) if is_unsafe(char) else char for char in text)
