"""Path matching for policies: globs, prefixes and normalisation.

A port of the Rust SDK's `paths` module, with the same results for every input.

Glob syntax: `*` matches any run of characters within one path segment, `?`
one byte other than `/` (as in Rust, bytes of the UTF-8 form: `?` does not
match `é`), and `**` any number of whole segments (including none). So
`src/*.rs` matches `src/lib.rs` but not `src/a/b.rs`, and `auth/**` matches
everything below `auth/`.
"""


def glob_match(pattern: str, path: str) -> bool:
    """Whether `path` matches the glob `pattern`."""
    return _match_segments(pattern.split("/"), path.split("/"))


def _match_segments(pattern: list[str], path: list[str]) -> bool:
    if not pattern:
        return not path
    first, rest = pattern[0], pattern[1:]
    if first == "**":
        return any(_match_segments(rest, path[skip:]) for skip in range(len(path) + 1))
    if not path:
        return False
    return _match_segment(first.encode(), path[0].encode()) and _match_segments(rest, path[1:])


def _match_segment(pattern: bytes, text: bytes) -> bool:
    # The stars cut the pattern into parts that must appear in order: the
    # first at the start of the text, the last at its end, and each one
    # between at its leftmost place after the one before (leftmost never
    # loses a match: it leaves the most text for the rest). Same answers as
    # the Rust SDK's backtracking loop, never exponential either, and the
    # searching happens in `bytes.find`, not byte by byte in Python.
    parts = pattern.split(b"*")
    if len(parts) == 1:
        return len(text) == len(pattern) and _fits(pattern, text, 0)
    first, last = parts[0], parts[-1]
    start, end = len(first), len(text) - len(last)
    if end < start or not _fits(first, text, 0) or not _fits(last, text, end):
        return False
    for part in parts[1:-1]:
        found = _find(part, text, start, end)
        if found < 0:
            return False
        start = found + len(part)
    return True


def _fits(part: bytes, text: bytes, at: int) -> bool:
    """Whether `part` (`?` matching any byte) matches `text` at `at`; the
    caller makes sure `text` is long enough."""
    if b"?" not in part:
        return text.startswith(part, at)
    return all(p in (t, ord("?")) for p, t in zip(part, text[at : at + len(part)]))


def _find(part: bytes, text: bytes, start: int, end: int) -> int:
    """The first place at or after `start` where `part` fits within `text[:end]`, or -1."""
    if b"?" not in part:
        return text.find(part, start, end)
    return next((at for at in range(start, end - len(part) + 1) if _fits(part, text, at)), -1)


def has_prefix(path: str, dir: str) -> bool:
    """Whether `path` is `dir` itself or lies below it, by whole segments:
    `has_prefix("auth/login.rs", "auth")` is true, `has_prefix("authz.rs", "auth")` is not."""
    dir = dir.rstrip("/")
    return path == dir or (path.startswith(dir) and path[len(dir) : len(dir) + 1] == "/")


def normalize(path: str) -> str | None:
    """Normalise a relative path: drop `.` segments, empty segments and a
    leading `./`; resolve `..`. Returns `None` for an absolute path or one
    that climbs above its root, which a policy should treat as hostile."""
    if path.startswith("/") or "\\" in path or "\0" in path:
        return None
    out: list[str] = []
    for segment in path.split("/"):
        if segment in ("", "."):
            continue
        if segment == "..":
            if not out:
                return None
            out.pop()
        else:
            out.append(segment)
    return "/".join(out) if out else None
