"""Rust's string semantics, for policies that must decide exactly like a Rust twin.

Python's look-alikes differ at the edges: `str.splitlines()` also splits on
`\\r`, `\\x0b`, `\\x1c`..., `str.strip()` and `str.split()` treat `\\x1c`-`\\x1f`
as whitespace, and `int()` accepts `_`, spaces and non-ASCII digits. A rule
that reads attacker-controlled text the Python way can then see something
other than what its Rust twin (or git) sees.
"""

import re
from bisect import bisect_right

from ._unicode import ESCAPED_BOUNDS

# Rust's `char::is_whitespace`: the Unicode White_Space property.
WHITESPACE = (
    "\t\n\x0b\x0c\r \x85\xa0\u1680\u2000\u2001\u2002\u2003\u2004\u2005\u2006"
    "\u2007\u2008\u2009\u200a\u2028\u2029\u202f\u205f\u3000"
)
_WHITESPACE_RUN = re.compile("[" + re.escape(WHITESPACE) + "]+")
_ASCII_LOWER = str.maketrans("ABCDEFGHIJKLMNOPQRSTUVWXYZ", "abcdefghijklmnopqrstuvwxyz")
_SHORT_ESCAPES = {"\0": "\\0", "\t": "\\t", "\n": "\\n", "\r": "\\r", "\\": "\\\\", '"': '\\"'}
_U32 = re.compile(r"\+?[0-9]+")
_I64 = re.compile(r"[+-]?[0-9]+")


def debug(s: str) -> str:
    """`s` quoted as Rust's `format!("{s:?}")` quotes it."""
    return '"' + "".join(_debug_char(c) for c in s) + '"'


def _debug_char(c: str) -> str:
    short = _SHORT_ESCAPES.get(c)
    if short is not None:
        return short
    cp = ord(c)
    if bisect_right(ESCAPED_BOUNDS, cp) % 2:
        return f"\\u{{{cp:x}}}"
    return c


def lines(text: str) -> list[str]:
    """Rust's `str::lines()`: split on `\\n`, drop one `\\r` before it, and no
    final empty line. A `\\r` not followed by `\\n` stays in the line."""
    parts = text.split("\n")
    last = parts.pop()  # the text after the last `\n`, if any
    if "\r" in text:
        parts = [p[:-1] if p.endswith("\r") else p for p in parts]
    if last:
        parts.append(last)
    return parts


def trim(s: str) -> str:
    """Rust's `str::trim()`."""
    return s.strip(WHITESPACE)


def trim_end(s: str) -> str:
    """Rust's `str::trim_end()`."""
    return s.rstrip(WHITESPACE)


def is_blank(s: str) -> bool:
    """Rust's `s.trim().is_empty()`."""
    return not trim(s)


def split_whitespace(s: str) -> list[str]:
    """Rust's `str::split_whitespace()`."""
    return [part for part in _WHITESPACE_RUN.split(s) if part]


def to_ascii_lowercase(s: str) -> str:
    """Rust's `str::to_ascii_lowercase()`: only `A`-`Z` change."""
    return s.translate(_ASCII_LOWER)


def parse_u32(s: str) -> int | None:
    """Rust's `s.parse::<u32>().ok()`: ASCII digits, an optional `+`."""
    if not _U32.fullmatch(s):
        return None
    n = _magnitude(s, 10)
    return n if n is not None and n <= 0xFFFF_FFFF else None


def parse_i64(s: str) -> int | None:
    """Rust's `s.parse::<i64>().ok()`."""
    if not _I64.fullmatch(s):
        return None
    n = _magnitude(s, 19)
    if n is None:
        return None
    n = -n if s.startswith("-") else n
    return n if -(2**63) <= n < 2**63 else None


def _magnitude(s: str, max_digits: int) -> int | None:
    """The value of a signed run of ASCII digits, ignoring the sign; `None`
    past `max_digits` significant digits. Leading zeros are dropped first:
    Rust accepts any number of them, and `int()` refuses over 4300 digits."""
    digits = s.lstrip("+-").lstrip("0")
    return int(digits or "0") if len(digits) <= max_digits else None
