"""JSON parsing that accepts exactly what the Rust SDK's `json::parse_strict` accepts.

`{"diff": good, "diff": evil}` is read as `evil` by some parsers and as
`good` by others. A policy must judge the document the upstream will act on,
so an ambiguous document is an error, not a guess.

On top of the standard library's parser this refuses what serde_json refuses
and Python would take: duplicate keys at any depth, `NaN`/`Infinity`, numbers
out of the f64 range, lone UTF-16 surrogates in `\\u` escapes, nesting deeper
than serde_json's limit, and bytes that are not UTF-8. Objects come back with
their keys sorted, in the order serde_json's map keeps them, so a policy that
walks keys meets them in the same order as its Rust twin. Integers outside
the 64-bit range, and `-0`, come back as floats, as in serde_json.

Error messages follow Python's parser; only the fact of an error matches serde_json.
"""

import json
import math
import re

from . import rust

# serde_json refuses the 128th level of nesting.
_MAX_DEPTH = 127
_BRACKET = re.compile(r"[][{}]")
# A `\u` escape of a UTF-16 surrogate, which only a valid pair may use.
_SURROGATE_ESCAPE = re.compile(r"\\u[dD][89a-fA-F]")


def parse_strict(data: bytes | str):
    """Parse `data` as JSON; raises `ValueError` for anything serde_json refuses."""
    if isinstance(data, bytes):
        try:
            data = data.decode("utf-8")
        except UnicodeDecodeError as e:
            raise ValueError(f"invalid UTF-8 at byte {e.start}") from None
    _check_depth(data)
    value = json.loads(
        data,
        object_pairs_hook=_object,
        parse_constant=_constant,
        parse_float=_float,
        parse_int=_int,
    )
    if _SURROGATE_ESCAPE.search(data):
        try:
            json.dumps(value, ensure_ascii=False).encode("utf-8")
        except UnicodeEncodeError:
            raise ValueError("lone surrogate in a \\u escape") from None
    return value


def _check_depth(text: str) -> None:
    # CPython's parser would overflow the WebAssembly stack long before its
    # recursion limit, so the nesting is measured first, with C-level string
    # operations rather than a loop over every character. Fewer opening
    # brackets than the limit cannot nest past it.
    if text.count("[") + text.count("{") <= _MAX_DEPTH:
        return
    # Without its escaped backslashes and quotes (paired left to right, as
    # JSON pairs them), every other `"`-delimited piece is string content.
    # An invalid document reads the same as the parser reads it up to its
    # first error, so the parser never nests deeper than measured here.
    outside = "".join(text.replace("\\\\", "").replace('\\"', "").split('"')[::2])
    if outside.count("[") + outside.count("{") <= _MAX_DEPTH:
        return
    depth = 0
    for bracket in _BRACKET.findall(outside):
        depth += 1 if bracket in "[{" else -1
        if depth > _MAX_DEPTH:
            raise ValueError("recursion limit exceeded")


def _object(pairs: list[tuple[str, object]]) -> dict:
    seen = {}
    for key, value in pairs:
        if key in seen:
            raise ValueError(f"duplicate key {rust.debug(key)}")
        seen[key] = value
    return dict(sorted(seen.items()))


def _constant(name: str):
    raise ValueError(f"{name} is not JSON")


def _float(text: str) -> float:
    value = float(text)
    if math.isinf(value):
        raise ValueError("number out of range")
    return value


def _int(text: str) -> int | float:
    # serde_json reads `-0` as a float, and so a number past 64 bits; past 20
    # digits the value cannot fit 64 bits, and `int()` would refuse past 4300.
    if text == "-0":
        return -0.0
    if len(text.lstrip("-")) > 20:
        return _float(text)
    value = int(text)
    return value if -(2**63) <= value < 2**64 else _float(text)
