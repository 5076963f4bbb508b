"""Parse a unified diff (`git diff` form) into files and line counts.

A port of the Rust SDK's `diff` module: the same files, counts and error
messages (`diff line N: message`) for every input, so a Python policy and its
Rust twin read a diff the same way.

Counting follows the hunk headers (`@@ -a,b +c,d @@`), so a removed line
that itself starts with `--- ` or `+++ ` is counted as content, not taken
for a file header. Anything that does not parse is an error: a policy must
deny a change it cannot read.

Paths are read the way `git apply` reads them, so that a policy checks the
files git would really touch: the first path component is stripped from
`---`/`+++` names whatever it is (`x/auth/login.rs` is `auth/login.rs`),
`copy to` creates a file, and names that disagree between the
`diff --git` header and the `---`/`+++` lines are an error, as are quoted
(C-escaped) names.
"""

import enum
from dataclasses import dataclass, field

from . import rust


class FileStatus(enum.Enum):
    """What happened to one file."""

    ADDED = "added"
    DELETED = "deleted"
    MODIFIED = "modified"
    RENAMED = "renamed"
    COPIED = "copied"  # `copy from`/`copy to`: a new file with the content of another


@dataclass
class FileChange:
    """One file of a diff."""

    old_path: str | None  # before the change; None for a new file
    new_path: str | None  # after the change; None for a deleted file
    status: FileStatus = FileStatus.MODIFIED
    added: int = 0
    removed: int = 0
    binary: bool = False  # `Binary files ... differ`, whose lines are not counted

    @property
    def path(self) -> str:
        """The path after the change, or before it for a deletion."""
        return self.new_path if self.new_path is not None else self.old_path or ""

    def paths(self) -> list[str]:
        """Every path this change touches: both sides of a rename."""
        return [p for p in (self.old_path, self.new_path) if p is not None]

    @property
    def touches_existing(self) -> bool:
        """Whether the change modifies, deletes or moves a file that existed
        before (a copy leaves its source as it was)."""
        return self.status not in (FileStatus.ADDED, FileStatus.COPIED)


@dataclass
class Diff:
    """A parsed diff."""

    files: list[FileChange] = field(default_factory=list)

    @staticmethod
    def parse(text: str) -> "Diff":
        """Parse `text`; raises `DiffError` when it does not read as a diff."""
        return _Parser().parse(text)

    def changed_lines(self) -> int:
        """Added plus removed lines over all files."""
        return sum(f.added + f.removed for f in self.files)


class DiffError(ValueError):
    """Why a diff could not be read, with the 1-based line where it went wrong."""

    def __init__(self, line: int, message: str):
        super().__init__(f"diff line {line}: {message}")
        self.line = line
        self.message = message


def _error(index: int, message: str) -> DiffError:
    return DiffError(index + 1, message)


def _patch_name(raw: str, index: int) -> str | None:
    """A name from a `---`/`+++` line as `git apply -p1` reads it: `None` for
    `/dev/null`, the name without its first component otherwise."""
    name = rust.trim_end(raw.split("\t", 1)[0])
    if name == "/dev/null":
        return None
    if name.startswith('"'):
        raise _error(index, "quoted file names are not supported")
    _, slash, rest = name.partition("/")
    if not slash or not rest:
        raise _error(index, "file name has no leading directory to strip (expected a/PATH or b/PATH)")
    return rest


def _header_names(rest: str, index: int) -> tuple[str, str]:
    """`a/X b/Y` from a `diff --git` line. Ambiguous when a name contains
    ` b/`; git then relies on the other lines, and so do we (both must agree)."""
    if rest.startswith('"') or rest.endswith('"'):
        raise _error(index, "quoted file names are not supported")
    a, sep, b = rest.partition(" b/")
    if not sep or not a.startswith("a/"):
        raise _error(index, "expected `diff --git a/PATH b/PATH`")
    a = a[2:]
    if not a or not b:
        raise _error(index, "empty file name in `diff --git` header")
    return a, b


def _parse_range(range_: str) -> int | None:
    # "12,5" -> 5 lines, "12" -> 1 line.
    _, comma, count = range_.partition(",")
    if comma:
        return rust.parse_u32(count)
    return None if rust.parse_u32(range_) is None else 1


# Lines that change no counts.
_METADATA = ("\\", "index ", "similarity index", "dissimilarity index", "old mode", "new mode")


class _Parser:
    def __init__(self) -> None:
        self.files: list[FileChange] = []
        self.current: FileChange | None = None
        # Names from the current `diff --git a/X b/Y` header, if any.
        self.header: tuple[str, str] | None = None
        self.copied = False

    def _new_file(self) -> FileChange:
        self._finish()
        self.copied = False
        self.current = FileChange(old_path=None, new_path=None)
        return self.current

    def _finish(self) -> None:
        file, self.current = self.current, None
        if file is None:
            return
        old, new = file.old_path, file.new_path
        if self.copied:
            file.status = FileStatus.COPIED
        elif old is None and new is not None:
            file.status = FileStatus.ADDED
        elif old is not None and new is None:
            file.status = FileStatus.DELETED
        elif old is not None and new is not None and old != new:
            file.status = FileStatus.RENAMED
        else:
            file.status = FileStatus.MODIFIED
        self.files.append(file)

    def _in_file(self, index: int, message: str) -> FileChange:
        """The current file; `message` is the error when there is none."""
        if self.current is None:
            raise _error(index, message)
        return self.current

    def parse(self, text: str) -> Diff:
        lines = rust.lines(text)
        i = 0
        while i < len(lines):
            line = lines[i]
            # No line starts with two of these prefixes, so the order of the
            # tests changes no result; the frequent ones go first.
            if line.startswith("@@ "):
                i = self._hunk(lines, i)
            elif line.startswith("--- "):
                self._names(lines, i)
                i += 1
            elif line.startswith("diff --git "):
                a, b = _header_names(line[len("diff --git ") :], i)
                file = self._new_file()
                file.old_path, file.new_path = a, b
                self.header = (a, b)
            elif line.startswith(_METADATA):
                pass
            elif line.startswith("new file mode"):
                self._in_file(i, "file mode outside a file").old_path = None
            elif line.startswith("deleted file mode"):
                self._in_file(i, "file mode outside a file").new_path = None
            elif line.startswith("copy from "):
                self.copied = True
                self._in_file(i, "copy outside a file").old_path = line[len("copy from ") :]
            elif line.startswith("copy to "):
                self.copied = True
                self._in_file(i, "copy outside a file").new_path = line[len("copy to ") :]
            elif line.startswith("rename from "):
                self._in_file(i, "rename outside a file").old_path = line[len("rename from ") :]
            elif line.startswith("rename to "):
                self._in_file(i, "rename outside a file").new_path = line[len("rename to ") :]
            elif line.startswith("Binary files "):
                self._in_file(i, "binary marker outside a file").binary = True
            elif rust.is_blank(line) or self.current is None:
                pass  # Text before the first file (a commit message, say) is allowed.
            else:
                raise _error(i, "unexpected line between hunks")
            i += 1
        self._finish()
        if not self.files and not rust.is_blank(text):
            raise _error(0, "no file headers found")
        return Diff(self.files)

    def _names(self, lines: list[str], i: int) -> None:
        """The `---` line at `i` and the `+++` line after it."""
        if i + 1 >= len(lines) or not lines[i + 1].startswith("+++ "):
            raise _error(i + 1, "expected a `+++ ` line after `--- `")
        old = _patch_name(lines[i][len("--- ") :], i)
        new = _patch_name(lines[i + 1][len("+++ ") :], i + 1)
        # A plain unified diff without `diff --git` starts a file here.
        if self.current is None or self.current.added + self.current.removed > 0:
            self.header = None
            self._new_file()
        # git takes the names from these lines; they must name the files the
        # header named, or a reviewer and git disagree.
        if self.header is not None:
            a, b = self.header
            if (old is not None and old != a) or (new is not None and new != b):
                raise _error(i, "`---`/`+++` names disagree with the `diff --git` header")
        self.current.old_path, self.current.new_path = old, new

    def _hunk(self, lines: list[str], i: int) -> int:
        """Count the hunk whose header is at `i`; returns its last line's index."""
        file = self._in_file(i, "hunk before any file header")
        parts = rust.split_whitespace(lines[i][len("@@ ") :])
        old_left = _parse_range(parts[0][1:]) if parts and parts[0].startswith("-") else None
        new_left = _parse_range(parts[1][1:]) if len(parts) > 1 and parts[1].startswith("+") else None
        if old_left is None or new_left is None:
            raise _error(i, "malformed hunk header")
        # The hot loop of a long diff: counts stay in locals until the end.
        added = removed = 0
        end = len(lines)
        while old_left > 0 or new_left > 0:
            i += 1
            if i >= end:
                raise _error(i, "diff ends inside a hunk")
            first = lines[i][:1]
            if first == "+" and new_left > 0:
                added += 1
                new_left -= 1
            elif first == "-" and old_left > 0:
                removed += 1
                old_left -= 1
            # An empty line is a context line whose space was trimmed.
            elif first in (" ", "") and old_left > 0 and new_left > 0:
                old_left -= 1
                new_left -= 1
            elif first == "\\":
                pass
            else:
                raise _error(i, "hunk line does not fit the hunk header")
        file.added += added
        file.removed += removed
        return i
