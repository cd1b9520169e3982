"""Invisible-character handling shared by the detectors: Unicode tags, zero-width and bidi controls."""

from __future__ import annotations

import re
import unicodedata

TAG_FIRST = 0xE0000
TAG_LAST = 0xE007F

# Zero-width and format characters that render as nothing but can carry or split text.
ZERO_WIDTH = frozenset({0x200B, 0x200C, 0x200D, 0x2060, 0x2061, 0x2062, 0x2063, 0x2064, 0xFEFF, 0x180E, 0x00AD})
# Bidirectional embeddings, overrides and isolates (Trojan Source) and the implicit marks.
BIDI = frozenset({0x202A, 0x202B, 0x202C, 0x202D, 0x202E, 0x2066, 0x2067, 0x2068, 0x2069, 0x200E, 0x200F, 0x061C})


# Every character `strip_invisible` removes, as one class, so clean text costs one regex scan and no Python loop.
_INVISIBLE = re.compile(
    "[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f\u00ad\u061c\u180e\u200b-\u200f\u202a-\u202e\u2060-\u2064"
    "\u2066-\u2069\ufeff\U000e0000-\U000e007f]"
)
_TAGS = re.compile("[\U000e0000-\U000e007f]+")


def has_invisible(text: str) -> bool:
    """Whether `text` holds any character `strip_invisible` would remove (one regex scan)."""
    return _INVISIBLE.search(text) is not None


def is_tag(ch: str) -> bool:
    """True for a Unicode tag character (U+E0000 to U+E007F)."""
    return TAG_FIRST <= ord(ch) <= TAG_LAST


def decode_tags(text: str) -> str:
    """The ASCII text smuggled in Unicode tag characters (each tag maps to code point minus U+E0000)."""
    out = []
    for run in _TAGS.findall(text):
        for ch in run:
            code = ord(ch) - TAG_FIRST
            if 0x20 <= code < 0x7F:
                out.append(chr(code))
    return "".join(out)


def _emoji_joiner(text: str, index: int) -> bool:
    """A ZWJ between two symbols is an emoji sequence, not hidden text."""
    before = text[index - 1] if index > 0 else ""
    after = text[index + 1] if index + 1 < len(text) else ""
    symbol = ("So", "Sk", "Mn")
    return bool(before and after) and unicodedata.category(before) in symbol and unicodedata.category(after) in symbol


def _is_hidden(text: str, index: int) -> bool:
    ch = text[index]
    if ord(ch) in ZERO_WIDTH:
        return not (ord(ch) == 0x200D and _emoji_joiner(text, index))
    return unicodedata.category(ch) == "Cc" and ch not in "\n\r\t"


def invisible_controls(text: str) -> tuple[list[str], list[str]]:
    """Names (U+XXXX) of the zero-width and the bidi control characters in `text`, in order of appearance."""
    zero: list[str] = []
    bidi: list[str] = []
    for match in _INVISIBLE.finditer(text):
        i = match.start()
        cp = ord(text[i])
        if cp in BIDI:
            bidi.append(f"U+{cp:04X}")
        elif _is_hidden(text, i):
            zero.append(f"U+{cp:04X}")
    return zero, bidi


def strip_invisible(text: str) -> str:
    """`text` without tag, zero-width, bidi and non-whitespace control characters."""
    return _INVISIBLE.sub("", text)
