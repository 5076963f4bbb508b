"""Tests of the Python SDK, ported from the Rust SDK's tests where there is one
(the two must agree result for result), plus the Rust string semantics."""

import pytest
from airlock_policy import (
    BodyError,
    Description,
    Diff,
    DiffError,
    FileStatus,
    allow,
    body_json,
    body_str,
    deny,
    header,
    kind,
    log,
    parse_strict,
    query,
    reason,
    rust,
    state,
)
from airlock_policy.paths import glob_match, has_prefix, normalize
from airlock_policy.testing import Harness, load_cases, merge, request, request_from_json

# --- paths ---------------------------------------------------------------


def test_single_star_stays_in_segment():
    assert glob_match("src/*.rs", "src/lib.rs")
    assert not glob_match("src/*.rs", "src/a/lib.rs")
    assert glob_match("*_test.*", "parser_test.go")
    assert not glob_match("*_test.*", "parser.go")
    assert glob_match("test_?.py", "test_a.py")
    # `?` is one byte, as in Rust: `é` is two.
    assert not glob_match("test_?.py", "test_é.py")


def test_double_star_crosses_segments():
    assert glob_match("auth/**", "auth/login.rs")
    assert glob_match("auth/**", "auth/a/b/c.rs")
    assert glob_match("**/*_test.rs", "a/b/x_test.rs")
    assert glob_match("**/*_test.rs", "x_test.rs")
    assert not glob_match("auth/**", "authz/login.rs")


def test_pathological_pattern_is_fast():
    assert not glob_match(("*a" * 50).replace("**", "*b*"), "a" * 200 + "c")


def test_prefix_is_by_segment():
    assert has_prefix("auth/login.rs", "auth/")
    assert has_prefix("auth", "auth")
    assert not has_prefix("authz.rs", "auth")


def test_normalize_refuses_escapes():
    assert normalize("./src//lib.rs") == "src/lib.rs"
    assert normalize("src/../auth/x") == "auth/x"
    assert normalize("../etc/passwd") is None
    assert normalize("/etc/passwd") is None
    assert normalize("src\\lib.rs") is None
    assert normalize(".") is None


# --- diff ----------------------------------------------------------------

MODIFY = """diff --git a/src/lib.rs b/src/lib.rs
index 83db48f..bf269f4 100644
--- a/src/lib.rs
+++ b/src/lib.rs
@@ -1,3 +1,4 @@
 fn a() {}
-fn b() {}
+fn b() { 1 }
+--- not a header
 fn c() {}
"""


def summary(diff: Diff) -> list[tuple]:
    return [(f.path, f.status, f.added, f.removed) for f in diff.files]


def test_counts_modified_lines_by_hunk():
    d = Diff.parse(MODIFY)
    assert summary(d) == [("src/lib.rs", FileStatus.MODIFIED, 2, 1)]
    assert d.changed_lines() == 3


def test_new_deleted_and_renamed_files():
    text = """diff --git a/tests/new_test.rs b/tests/new_test.rs
new file mode 100644
index 0000000..1111111
--- /dev/null
+++ b/tests/new_test.rs
@@ -0,0 +1,2 @@
+#[test]
+fn t() {}
diff --git a/old.rs b/old.rs
deleted file mode 100644
--- a/old.rs
+++ /dev/null
@@ -1 +0,0 @@
-gone
diff --git a/auth/x.rs b/src/x.rs
similarity index 100%
rename from auth/x.rs
rename to src/x.rs
"""
    d = Diff.parse(text)
    assert summary(d) == [
        ("tests/new_test.rs", FileStatus.ADDED, 2, 0),
        ("old.rs", FileStatus.DELETED, 0, 1),
        ("src/x.rs", FileStatus.RENAMED, 0, 0),
    ]
    assert d.files[2].paths() == ["auth/x.rs", "src/x.rs"]


def test_plain_unified_diff_without_git_header():
    text = "--- a/a.txt\n+++ b/a.txt\n@@ -1 +1 @@\n-x\n+y\n--- a/b.txt\n+++ b/b.txt\n@@ -1 +1,2 @@\n x\n+z\n"
    d = Diff.parse(text)
    assert len(d.files) == 2
    assert d.changed_lines() == 3


def test_paths_are_read_as_git_apply_reads_them():
    # git strips any first component, not only `a/` and `b/`.
    assert Diff.parse("--- x/auth/login.rs\n+++ y/auth/login.rs\n@@ -1 +1 @@\n-a\n+b\n").files[0].path == "auth/login.rs"
    # A header naming one file and ---/+++ naming another is refused.
    text = "diff --git a/src/lib.rs b/src/lib.rs\n--- x/auth/login.rs\n+++ b/auth/login.rs\n@@ -1 +1 @@\n-a\n+b\n"
    with pytest.raises(DiffError, match="disagree"):
        Diff.parse(text)
    # `copy to` creates a file; its source is a path it touches too.
    text = "diff --git a/auth/key.rs b/src/key.rs\nsimilarity index 100%\ncopy from auth/key.rs\ncopy to src/key.rs\n"
    f = Diff.parse(text).files[0]
    assert f.status == FileStatus.COPIED
    assert f.paths() == ["auth/key.rs", "src/key.rs"]
    assert not f.touches_existing
    # Quoted names are refused rather than misread.
    with pytest.raises(DiffError, match="quoted"):
        Diff.parse('diff --git "a/auth/l\\303\\266.rs" "b/auth/l\\303\\266.rs"\n')
    with pytest.raises(DiffError, match="quoted"):
        Diff.parse('--- "a/auth/x"\n+++ "b/auth/x"\n@@ -1 +1 @@\n-a\n+b\n')


def test_malformed_diffs_are_errors():
    with pytest.raises(DiffError):
        Diff.parse("@@ -1 +1 @@\n-x\n+y\n")
    with pytest.raises(DiffError) as e:
        Diff.parse("--- a/a\n+++ b/a\n@@ -1,3 +1,3 @@\n x\n")
    assert (e.value.line, e.value.message) == (5, "diff ends inside a hunk")
    assert str(e.value) == "diff line 5: diff ends inside a hunk"
    with pytest.raises(DiffError, match="no file headers found"):
        Diff.parse("just some prose")
    with pytest.raises(DiffError, match="expected a `\\+\\+\\+ ` line"):
        Diff.parse("--- a/a\n@@ -1 +1 @@\n")


def test_hunk_counts_are_read_as_rust_reads_a_u32():
    # Rust's `parse::<u32>` takes a `+` and leading zeros, not `_`, spaces or other digits.
    assert Diff.parse("--- a/a\n+++ b/a\n@@ -1,+1 +1,0001 @@\n-x\n+y\n").changed_lines() == 2
    for count in ["1_0", "٣", "-1", "4294967296"]:
        with pytest.raises(DiffError, match="malformed hunk header"):
            Diff.parse(f"--- a/a\n+++ b/a\n@@ -1,{count} +1 @@\n-x\n+y\n")


def test_crlf_lines_are_read_as_rust_reads_them():
    d = Diff.parse(MODIFY.replace("\n", "\r\n"))
    assert summary(d) == [("src/lib.rs", FileStatus.MODIFIED, 2, 1)]


# --- JSON ----------------------------------------------------------------


def test_refuses_duplicate_keys_at_any_depth():
    assert parse_strict(b'{"a": 1, "b": [1, {"c": null}]}') == {"a": 1, "b": [1, {"c": None}]}
    with pytest.raises(ValueError, match='duplicate key "diff"'):
        parse_strict(b'{"diff": "x", "diff": "y"}')
    with pytest.raises(ValueError):
        parse_strict(b'{"a": [{"k": 1, "k": 2}]}')
    with pytest.raises(ValueError):
        parse_strict(b"{} trailing")


@pytest.mark.parametrize(
    "text",
    ["NaN", "[Infinity]", "-Infinity", "1e400", "1" * 400, '"\\ud800"', '"\\udc00x"', "\ufeff{}", "[" * 128 + "]" * 128],
)
def test_refuses_what_serde_json_refuses(text):
    with pytest.raises(ValueError):
        parse_strict(text.encode())


def test_reads_numbers_and_nesting_as_serde_json_does():
    assert parse_strict(b'"\\ud83d\\ude00"') == "\U0001f600"
    assert parse_strict(b"18446744073709551615") == 2**64 - 1
    assert parse_strict(b"18446744073709551616") == float(2**64)
    assert str(parse_strict(b"-0")) == "-0.0"
    assert parse_strict(("[" * 127 + "]" * 127).encode()) is not None
    # Brackets inside strings are text, not nesting.
    assert parse_strict(('["' + "[" * 200 + '"]').encode()) == ["[" * 200]
    # Keys come back sorted, as serde_json's map keeps them.
    assert list(parse_strict(b'{"b": 1, "a": 2}')) == ["a", "b"]


def test_body_helpers():
    action = request("code", "POST", "/x", body=b'{"a": 1}', headers={"X-Trace": "t"}, query={"q": ["1", "2"]}).action
    assert body_json(action) == {"a": 1}
    assert body_str(action) == '{"a": 1}'
    assert header(action, "x-TRACE") == "t"
    assert query(action, "q") == "1"
    truncated = request("code", "POST", "/x", body="{}", body_truncated=True).action
    with pytest.raises(BodyError, match="^body was truncated at the size limit$"):
        body_json(truncated)
    with pytest.raises(BodyError, match="^body is not valid JSON: "):
        body_json(request("code", "POST", "/x", body="{").action)
    # Rust's `Utf8Error` wording.
    with pytest.raises(BodyError, match="^body is not UTF-8: invalid utf-8 sequence of 1 bytes from index 1$"):
        body_str(request("code", "POST", "/x", body=b"a\xffb").action)
    with pytest.raises(BodyError, match="^body is not UTF-8: incomplete utf-8 byte sequence from index 1$"):
        body_str(request("code", "POST", "/x", body=b"a\xe2\x82").action)


# --- Rust string semantics -------------------------------------------------


def test_debug_quotes_as_rust_does():
    assert rust.debug('a"b\\c') == '"a\\"b\\\\c"'
    assert rust.debug("\0\t\r\n\x07\x7f") == '"\\0\\t\\r\\n\\u{7}\\u{7f}"'
    assert rust.debug("é ſ \u00a0 \u200b e\u0301") == '"é ſ \\u{a0} \\u{200b} e\\u{301}"'
    assert rust.debug("'") == "\"'\""


def test_lines_are_rust_lines():
    assert rust.lines("") == []
    assert rust.lines("\n") == [""]
    assert rust.lines("a\r\nb\rc\n\nd\r") == ["a", "b\rc", "", "d\r"]
    # Not Python's line breaks: `\x0b`, `\x1c` and U+2028 stay in the line.
    assert rust.lines("a\x0bb\x1cc\u2028d") == ["a\x0bb\x1cc\u2028d"]


def test_whitespace_is_rust_whitespace():
    assert rust.trim("\u2000 a \x85") == "a"
    # Python strips these file/group separators; Rust does not.
    assert rust.trim("\x1ca\x1f") == "\x1ca\x1f"
    assert rust.split_whitespace(" a\u3000b\x1cc ") == ["a", "b\x1cc"]
    assert rust.is_blank("\t\u2028 ") and not rust.is_blank("\x1c")


def test_integers_are_parsed_as_rust_parses_them():
    assert rust.parse_u32("+0004294967295") == 4294967295
    assert rust.parse_u32("4294967296") is None
    assert rust.parse_u32("0" * 5000 + "7") == 7
    assert [rust.parse_u32(s) for s in ["", "+", "-1", " 1", "1_0", "٣"]] == [None] * 6
    assert rust.parse_i64("-9223372036854775808") == -(2**63)
    assert rust.parse_i64("9223372036854775808") is None


# --- verdicts and the harness ------------------------------------------------


def test_verdict_helpers():
    grant = allow("a:read", 30, single_use=True, max_response_bytes=10, claims=[("ticket", {"b": 1, "a": [1, "é"]})]).value
    assert (grant.scopes, grant.ttl_seconds, grant.single_use, grant.max_response_bytes) == (["a:read"], 30, True, 10)
    # Compact JSON text with sorted keys, as serde_json writes a value.
    assert grant.claims == [("ticket", '{"a":[1,"é"],"b":1}')]
    assert (kind(deny("no")), reason(deny("no"))) == ("deny", "no")
    assert reason(allow([], 1)) is None


class TwoTickets:
    """Counts grants in state and allows at most two."""

    def describe(self):
        return Description(name="two-tickets", version="0")

    def evaluate(self, request):
        n = state.incr("tickets", 1)
        log.info("ticket", [("n", n)])
        if n > 2:
            return deny(f"ticket {n} over the limit of 2")
        return allow([], 30)


def test_writes_commit_only_on_allow():
    h = Harness(TwoTickets)
    r = request("issues", "POST", "/tickets")
    h.expect_allow(r)
    h.expect_allow(r)
    assert h.state["tickets"] == "2"
    assert "ticket 3" in h.expect_deny(r)
    # The denied evaluation's increment was discarded.
    assert h.state["tickets"] == "2"
    assert [rec.fields for rec in h.logs] == [[("n", "1")], [("n", "2")], [("n", "3")]]
    assert h.logs[0].level == log.Level.INFO


def test_starts_from_given_state():
    h = Harness(TwoTickets, state={"tickets": "2"})
    h.expect_deny(request("issues", "POST", "/tickets"))
    # A value that is not an integer counts as 0, as in the host.
    h = Harness(TwoTickets, state={"tickets": "x"})
    h.expect_allow(request("issues", "POST", "/tickets"))
    assert h.state["tickets"] == "1"


class ReadsState:
    def evaluate(self, request):
        return deny(f"{state.get_int('n')} {state.get('s')}")


def test_state_reads():
    h = Harness(ReadsState, state={"n": "-12", "s": "x"})
    assert h.expect_deny(request("x", "GET", "/")) == "-12 x"
    assert Harness(ReadsState, state={"n": " 1"}).expect_deny(request("x", "GET", "/")) == "0 None"


def test_requests_from_json_are_checked_as_the_host_checks_them():
    r = request_from_json(
        {
            "principal": {"agent": "a", "role": "r", "session": "s", "workflow": "w"},
            "action": {"service": "code", "method": "get", "path": "/x", "headers": {"X-B": "2", "A": "1"}, "body_base64": "e30="},
        }
    )
    assert (r.action.method, r.action.headers, r.action.body) == ("GET", [("a", "1"), ("x-b", "2")], b"{}")
    for broken, message in [
        ({"action": {}}, "missing field `principal`"),
        ({"principal": {}, "action": {}, "extra": 1}, "unknown field `extra`"),
    ]:
        with pytest.raises(ValueError, match=message):
            request_from_json(broken)
    with pytest.raises(ValueError, match="must start with"):
        request("code", "GET", "x")
    with pytest.raises(ValueError, match="not both"):
        request("code", "GET", "/x", body="a", body_base64="YQ==")


def test_defaults_merge_under_cases(tmp_path):
    assert merge({"a": {"b": 1, "c": 2}, "d": 3}, {"a": {"b": 9}, "d": {"e": 1}}) == {"a": {"b": 9, "c": 2}, "d": {"e": 1}}
    table = tmp_path / "cases.toml"
    table.write_text(
        """
[defaults.principal]
agent = "a"
role = "r"
session = "s"
workflow = "w"
[defaults.action]
service = "issues"
method = "GET"
path = "/x"

[[case]]
name = "third ticket"
expect = "deny"
reason = "ticket 3"
state = { tickets = "2" }
[case.request.action]
method = "POST"
query = { page = "2" }

[[case]]
name = "wrong expectation"
expect = "allow"
scopes = ["nope"]
"""
    )
    passed, failed = [case.run(TwoTickets) for case in load_cases(table)]
    assert passed.passed, passed.problem
    assert not failed.passed
    assert failed.problem == "scopes [], expected ['nope']"


def test_typos_in_case_tables_are_errors(tmp_path):
    table = tmp_path / "cases.toml"
    table.write_text('[[case]]\nname = "n"\nexpect = "alow"\n')
    with pytest.raises(ValueError, match="alow"):
        load_cases(table)
    table.write_text('[[case]]\nname = "n"\nexpect = "allow"\nreasn = "x"\n')
    with pytest.raises(ValueError, match="reasn"):
        load_cases(table)
