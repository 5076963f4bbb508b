"""`pr-creator`: reads code, creates feature branches and opens pull requests
whose diff stays out of sensitive places.

A port of the Rust policy in `../src/lib.rs`, decision for decision and reason
for reason; the two answer every request alike.

From the role definition: service `code`, actions `[read, create_branch,
create_pr]`, forbidden paths `auth/*`, `.ci/*`, `security/*`, at most 500
changed lines and 10 files per pull request, and existing tests are
read-only (an agent that may edit the tests can make any change pass).

The pull request's change arrives as a unified diff in the JSON body, and
the code service applies it the way `git apply` does. So this policy reads
the diff the way git will, and denies any diff whose file names git could
read differently from what this policy checked.
"""

import re

from airlock_policy import (
    BodyError,
    Description,
    Diff,
    DiffError,
    Policy,
    allow,
    body_json,
    deny,
    is_read,
    log,
    op,
    rust_debug,
)
from airlock_policy.paths import glob_match, has_prefix, normalize
from airlock_policy.rust import is_blank, lines, trim

SERVICE = "code"
TTL_SECONDS = 120

# Directories a pull request may not touch, anywhere below them. The role's
# `auth/*` is meant as the whole tree, not one level of it.
FORBIDDEN_DIRS = ("auth", ".ci", "security")
MAX_CHANGED_LINES = 500
MAX_FILES = 10

# The fields of a `pulls.create` body; `body` is the description.
PULL_FIELDS = ("title", "head", "base", "diff", "body")

# A quote, or a control character as Rust's `char::is_control` has them (category Cc).
_QUOTE_OR_CONTROL = re.compile(r'["\x00-\x1f\x7f-\x9f]')


class Refused(Exception):
    """A rule refused the request; the message is the reason."""


class WitWorld(Policy):
    def describe(self):
        return Description(name="pr-creator", version="0.1.0")

    def evaluate(self, request):
        action = request.action
        if action.service != SERVICE:
            return deny(f"pr-creator may only use the {SERVICE} service, not {action.service}")
        if is_read(action):
            return allow(["code:read"], TTL_SECONDS)
        try:
            scope = _write_scope(action)
        except Refused as e:
            return deny(f"pr-creator: {e}")
        # Writes are single-use: one token, one branch or pull request.
        return allow([scope], TTL_SECONDS, single_use=True)


def _write_scope(action) -> str:
    """The scope for an allowed write; raises `Refused` otherwise."""
    if action.method == "POST" and op(action) == "branches.create":
        _create_branch(action)
        return "branches:create"
    if action.method == "POST" and op(action) == "pulls.create":
        _create_pull(action)
        return "pulls:create"
    raise Refused(
        f"operation {op(action) or 'none'} ({action.method} {action.path}) is not allowed; "
        "pr-creator may only read, create branches (branches.create) and open pull requests (pulls.create)"
    )


def _create_branch(action) -> None:
    """`branches.create`: `{"name": ..., "from": ...}`, never a protected name."""
    body = _json(action, "branches.create")
    _only_fields(body, ("name", "from"), "branches.create")
    name = _required(body, "name", "branches.create")
    _required(body, "from", "branches.create")
    # Case-insensitive: on a case-insensitive file system `Main` and `main`
    # are the same ref file.
    lower = name.lower()
    short = lower.removeprefix("refs/heads/")
    if short in ("main", "master") or short.startswith("release"):
        raise Refused(f"branch name {name} is protected (main, master, release*); use a feature branch")


def _create_pull(action) -> None:
    """`pulls.create`: `{"title", "head", "base", "diff"}` and an optional
    `body` (the description); the diff is checked file by file."""
    body = _json(action, "pulls.create")
    _only_fields(body, PULL_FIELDS, "pulls.create")
    for name in ("title", "head", "base"):
        _required(body, name, "pulls.create")
    text = _required(body, "diff", "pulls.create")
    try:
        diff = Diff.parse(text)
    except DiffError as e:
        raise Refused(f"pulls.create: unreadable diff: {e}") from None
    _check_git_names(text, diff)
    # Blank diffs are refused above and the parser refuses text without a
    # file; this stays in case either changes.
    if not diff.files:
        raise Refused("pulls.create: the diff changes no files")

    # Every path the change touches: a rename out of `auth/` touches `auth/`.
    keys: dict[str, str] = {}
    for file in diff.files:
        for path in file.paths():
            key = keys[path] = _path_key(path)
            forbidden = next((d for d in FORBIDDEN_DIRS if has_prefix(key, d)), None)
            if forbidden is not None:
                raise Refused(f"path {path} is forbidden ({forbidden}/**)")
    for file in diff.files:
        # New tests are welcome; changing, deleting or renaming an existing
        # one is how an agent makes a failing change pass.
        if file.touches_existing:
            test = next((p for p in file.paths() if _is_test(keys[p])), None)
            if test is not None:
                raise Refused(
                    f"test file {test} may not be modified, deleted or renamed "
                    "(existing tests are read-only; adding new test files is allowed)"
                )
        # The line limit cannot measure a binary change.
        if file.binary:
            raise Refused(f"binary file {file.path} may not be changed")
    if len(diff.files) > MAX_FILES:
        raise Refused(f"the diff changes {len(diff.files)} files; at most {MAX_FILES} are allowed (max-files)")
    changed = diff.changed_lines()
    if changed > MAX_CHANGED_LINES:
        raise Refused(
            f"the diff changes {changed} lines (added + removed); at most {MAX_CHANGED_LINES} "
            "are allowed (max-changed-lines)"
        )
    log.info("pull request within limits", [("files", len(diff.files)), ("changed_lines", changed)])


def _json(action, op_name: str):
    try:
        return body_json(action)
    except BodyError as e:
        raise Refused(f"{op_name}: {e}") from None


def _only_fields(body, known: tuple[str, ...], op_name: str) -> None:
    """Refuse fields this policy does not check: the service might act on them
    (a `patch` next to the `diff`, say) in ways no rule here has looked at.
    Keys come sorted (see `airlock_policy.strict_json`), so the first unknown
    one named is the one the Rust policy names."""
    keys = body if isinstance(body, dict) else ()
    unknown = next((k for k in keys if k not in known), None)
    if unknown is not None:
        raise Refused(f"{op_name}: unknown field {rust_debug(unknown)} in the JSON body (known: {', '.join(known)})")


def _required(body, field: str, op_name: str) -> str:
    """A JSON body field that must be a non-empty string."""
    value = body.get(field) if isinstance(body, dict) else None
    if not isinstance(value, str) or is_blank(value):
        raise Refused(f'{op_name}: the JSON body needs a non-empty "{field}" string')
    return value


def _path_key(path: str) -> str:
    """The form of `path` that rules compare: normalised and case-folded (the
    repository may be checked out on a case-insensitive file system, where
    `Auth/login.rs` is `auth/login.rs`). A path that does not normalise is
    one this policy cannot place, so it is refused, and so is one with
    quotes or control characters, which git reads differently."""
    if _QUOTE_OR_CONTROL.search(path):
        raise Refused(f"path {rust_debug(path)} contains quotes or control characters")
    key = normalize(path)
    if key is None:
        raise Refused(
            f"path {path} does not normalise (absolute, climbs out of the repository, or has a backslash)"
        )
    # Upper- then lower-casing also folds `ſ` onto `s`, as case-insensitive
    # file systems do: `ſecurity/` would otherwise slip past `security/`.
    return key.upper().lower()


def _is_test(path_key: str) -> bool:
    """A test file: anything in a `tests` directory, `*_test.*` or `test_*.*`."""
    name = path_key.rsplit("/", 1)[-1]
    return "tests" in path_key.split("/") or glob_match("*_test.*", name) or glob_match("test_*.*", name)


def _check_git_names(text: str, diff: Diff) -> None:
    """Make sure git will read the same file names the rules above check.

    `git apply` takes a file's names from its `diff --git a/OLD b/NEW` header
    and from `rename`/`copy` lines, and strips the first directory from the
    `---`/`+++` names whatever it is. The SDK's parser reads names the same
    way and refuses `---`/`+++` names that disagree with the header; this
    policy asks for more on top, to leave no room between two readings: every
    file must have a plain `diff --git a/OLD b/NEW` header, and every
    `rename`/`copy` name must agree with it. Only regular files may be
    written: a symbolic link could point into a forbidden directory.

    Runs after `Diff.parse` succeeded: hunk lines then always start with
    ` `, `+`, `-` or `\\`, so the metadata lines matched here cannot be hunk
    content.
    """
    checked = list(_checked_lines(text))
    # Lines before the first header may only be blank.
    first_header = next((start for start, _, line in checked if line.startswith("diff --git ")), len(text))
    for at, line in enumerate(lines(text[:first_header]), start=1):
        if not is_blank(line):
            raise Refused(f"diff line {at}: the diff must be in `git diff` form, starting with `diff --git`")
    headers: list[tuple[str, str]] = []
    for _, at, line in checked:
        if line.startswith("diff --git "):
            names = _git_header(line[len("diff --git ") :])
            if names is None:
                raise Refused(f"diff line {at}: expected `diff --git a/PATH b/PATH`, got {rust_debug(line)}")
            headers.append(names)
            continue
        old, new = headers[-1]  # the lines before the first header are blank
        for prefix, expected in (("rename from ", old), ("copy from ", old), ("rename to ", new), ("copy to ", new)):
            if line.startswith(prefix) and line[len(prefix) :] != expected:
                raise Refused(f"diff line {at}: {rust_debug(line)} does not match its header `a/{old} b/{new}`")
        mode = _mode(line)
        if mode is not None and mode not in ("100644", "100755"):
            raise Refused(f"{new} would get mode {mode}; only regular files may be changed")
    # The parser starts a file at every header, so as many files as headers
    # means no file came in without one, and the two lists line up.
    if len(headers) != len(diff.files):
        raise Refused("the diff has a file section without a `diff --git` header; send `git diff` output")
    for file, (old, new) in zip(diff.files, headers):
        agrees = file.old_path in (None, old) and file.new_path in (None, new)
        if not agrees:
            raise Refused(f"the `---`/`+++` names of {file.path} do not match its header `a/{old} b/{new}`")


def _checked_lines(text: str):
    """`(offset, line number, line)` of every line that starts with one of
    the prefixes `_check_git_names` acts on, the line as Rust's
    `str::lines()` gives it. A search that jumps from line to line in C,
    rather than a Python loop over every line, keeps a long diff within the
    fuel budget."""
    starts = [0] if text.startswith(_CHECKED_PREFIXES) else []
    starts += [match.start() + 1 for match in _CHECKED_AFTER_NEWLINE.finditer(text)]
    at, counted = 1, 0
    for start in starts:
        at += text.count("\n", counted, start)
        counted = start
        end = text.find("\n", start)
        yield start, at, text[start:] if end < 0 else text[start:end].removesuffix("\r")


# Headers, rename/copy names and modes. The leading `\n` lets the regex
# engine skip from one newline to the next.
_CHECKED_PREFIXES = ("diff --git ", "rename ", "copy ", "new ", "index ")
_CHECKED_AFTER_NEWLINE = re.compile(r"\n(?:diff --git |rename |copy |new |index )")


def _mode(line: str) -> str | None:
    """The file mode a `new file mode`, `new mode` or `index` line sets, trimmed."""
    for prefix in ("new file mode ", "new mode "):
        if line.startswith(prefix):
            return trim(line[len(prefix) :])
    if line.startswith("index "):
        parts = line[len("index ") :].split(" ")
        return trim(parts[1]) if len(parts) > 1 else None
    return None


def _git_header(names: str) -> tuple[str, str] | None:
    """`a/OLD b/NEW` into `(OLD, NEW)`; `None` for quoted names, a missing prefix,
    or names that could be split in more than one place."""
    if not names.startswith("a/"):
        return None
    old, sep, new = names[len("a/") :].partition(" b/")
    if not sep or " b/" in new:
        return None
    return old, new
