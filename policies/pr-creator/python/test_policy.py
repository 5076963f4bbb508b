"""Native tests for the Python pr-creator, ported from the Rust policy's tests,
plus the shared case table (`../cases.toml`) that the component must pass too."""

import json
from pathlib import Path

import pytest
from airlock_policy.testing import Harness, load_cases, request
from policy import SERVICE, WitWorld

CASES = Path(__file__).resolve().parent.parent / "cases.toml"


def lines(*items: str) -> str:
    """Diff text from its lines."""
    return "".join(f"{line}\n" for line in items)


def modify(path: str, removed: int, added: int) -> str:
    """A `git diff` section modifying `path`: `removed` lines out, `added` in."""
    d = lines(
        f"diff --git a/{path} b/{path}",
        "index 83db48f..bf269f4 100644",
        f"--- a/{path}",
        f"+++ b/{path}",
        f"@@ -1,{removed + 1} +1,{added + 1} @@",
        " fn keep() {}",
    )
    d += "".join(f"-let old_{i} = {i};\n" for i in range(removed))
    return d + "".join(f"+let new_{i} = {i};\n" for i in range(added))


def add(path: str, count: int) -> str:
    """A `git diff` section adding the new file `path` with `count` lines."""
    d = lines(
        f"diff --git a/{path} b/{path}",
        "new file mode 100644",
        "index 0000000..3b18e51",
        "--- /dev/null",
        f"+++ b/{path}",
        f"@@ -0,0 +1,{count} @@",
    )
    return d + "".join(f"+// line {i}\n" for i in range(count))


def delete(path: str) -> str:
    return lines(
        f"diff --git a/{path} b/{path}",
        "deleted file mode 100644",
        "index 3b18e51..0000000",
        f"--- a/{path}",
        "+++ /dev/null",
        "@@ -1 +0,0 @@",
        "-gone",
    )


def rename(old: str, new: str) -> str:
    return lines(f"diff --git a/{old} b/{new}", "similarity index 100%", f"rename from {old}", f"rename to {new}")


def binary(path: str) -> str:
    return lines(
        f"diff --git a/{path} b/{path}",
        "index 1111111..2222222 100644",
        f"Binary files a/{path} and b/{path} differ",
    )


def pull(diff: str):
    return pull_with_body(json.dumps({"title": "Fix pager", "head": "fix-pager", "base": "main", "diff": diff}))


def pull_with_body(body: str | bytes, **action):
    return request(
        SERVICE,
        "POST",
        "/repos/acme/api/pulls",
        operation="pulls.create",
        params={"owner": "acme", "repo": "api"},
        body=body,
        **action,
    )


def branch_with_body(body: str):
    return request(SERVICE, "POST", "/repos/acme/api/branches", operation="branches.create", body=body)


def branch(name: str):
    return branch_with_body(json.dumps({"name": name, "from": "main"}))


def denied(diff: str) -> str:
    return Harness(WitWorld).expect_deny(pull(diff))


def test_describes_itself():
    description = WitWorld().describe()
    assert (description.name, description.version) == ("pr-creator", "0.1.0")


def test_opens_a_small_pull_request():
    h = Harness(WitWorld)
    grant = h.expect_allow(pull(modify("src/lib.rs", 10, 10)))
    assert grant.scopes == ["pulls:create"]
    assert grant.single_use
    assert grant.ttl_seconds == 120
    assert (grant.max_response_bytes, grant.claims) == (None, [])
    [log] = h.logs
    assert log.message == "pull request within limits"
    assert log.fields == [("files", "1"), ("changed_lines", "20")]


def test_reads_anything_in_code():
    h = Harness(WitWorld)
    grant = h.expect_allow(request(SERVICE, "GET", "/repos/acme/api/contents/auth/login.rs", operation="contents.read"))
    assert grant.scopes == ["code:read"]
    assert not grant.single_use
    reason = h.expect_deny(request("analytics", "GET", "/dashboards"))
    assert reason == "pr-creator may only use the code service, not analytics"


def test_creates_feature_branches_only():
    h = Harness(WitWorld)
    grant = h.expect_allow(branch("fix-pager"))
    assert grant.scopes == ["branches:create"]
    assert grant.single_use
    assert grant.ttl_seconds == 120
    for name in ["main", "master", "Main", "release", "release/2.1", "refs/heads/main"]:
        reason = h.expect_deny(branch(name))
        assert f"pr-creator: branch name {name} is protected" in reason
    reason = h.expect_deny(branch_with_body('{"name": "fix-pager"}'))
    assert 'needs a non-empty "from" string' in reason


@pytest.mark.parametrize(
    "method, path, op",
    [
        ("PUT", "/repos/acme/api/pulls/7/merge", "pulls.merge"),
        ("PUT", "/repos/acme/api/contents/src/lib.rs", "contents.write"),
        ("PATCH", "/repos/acme/api/pulls/7", "pulls.update"),
        # The right operation under the wrong method is still denied.
        ("PUT", "/repos/acme/api/pulls", "pulls.create"),
    ],
)
def test_other_writes_are_denied(method, path, op):
    reason = Harness(WitWorld).expect_deny(request(SERVICE, method, path, operation=op))
    assert reason.startswith(f"pr-creator: operation {op} ({method} {path}) is not allowed")


def test_a_write_without_an_operation_names_none():
    reason = Harness(WitWorld).expect_deny(request(SERVICE, "DELETE", "/x"))
    assert reason.startswith("pr-creator: operation none (DELETE /x) is not allowed")


def test_forbidden_directories():
    assert denied(modify("auth/login.rs", 1, 1)) == "pr-creator: path auth/login.rs is forbidden (auth/**)"
    # The whole tree, any case, however the path is spelled.
    for path, dir in [
        ("auth/oauth/google.rs", "auth"),
        ("Auth/login.rs", "auth"),
        ("src/../auth/login.rs", "auth"),
        ("./security/keys.rs", "security"),
        (".CI/deploy.yml", ".ci"),
        # `ſ` (long s) is `s` to a case-insensitive file system.
        ("\u017fecurity/keys.rs", "security"),
    ]:
        assert f"path {path} is forbidden ({dir}/**)" in denied(modify(path, 1, 1))
    # Same name elsewhere is fine.
    Harness(WitWorld).expect_allow(pull(modify("src/auth/session.rs", 1, 1)))
    Harness(WitWorld).expect_allow(pull(modify("authz.rs", 1, 1)))


def test_renames_are_checked_on_both_sides():
    assert "path auth/tokens.rs is forbidden (auth/**)" in denied(rename("auth/tokens.rs", "src/tokens.rs"))
    assert "path security/tokens.rs is forbidden" in denied(rename("src/tokens.rs", "security/tokens.rs"))


def test_paths_that_do_not_normalise_are_denied():
    for path in ["../outside.rs", "src/../../x.rs", "src\\lib.rs"]:
        assert "does not normalise" in denied(modify(path, 1, 1))
    reason = denied(add("src/bad\x07name.rs", 1))
    # Quoted as Rust's `{:?}` quotes it.
    assert reason == 'pr-creator: path "src/bad\\u{7}name.rs" contains quotes or control characters'


def test_at_most_500_changed_lines():
    h = Harness(WitWorld)
    h.expect_allow(pull(modify("src/lib.rs", 250, 250)))
    reason = h.expect_deny(pull(modify("src/lib.rs", 250, 251)))
    assert "the diff changes 501 lines (added + removed); at most 500" in reason
    # Summed over files.
    reason = h.expect_deny(pull(modify("src/a.rs", 0, 300) + add("src/b.rs", 201)))
    assert "changes 501 lines" in reason


def test_at_most_10_files():
    ten = "".join(modify(f"src/m{i}.rs", 1, 1) for i in range(10))
    Harness(WitWorld).expect_allow(pull(ten))
    assert "the diff changes 11 files; at most 10" in denied(ten + add("src/m10.rs", 1))


@pytest.mark.parametrize(
    "diff, path",
    [
        (modify("tests/api_test.rs", 1, 1), "tests/api_test.rs"),
        (modify("src/parser_test.go", 1, 1), "src/parser_test.go"),
        (modify("pkg/test_util.py", 1, 1), "pkg/test_util.py"),
        (modify("crates/x/Tests/fixtures.json", 1, 1), "crates/x/Tests/fixtures.json"),
        (delete("tests/api.rs"), "tests/api.rs"),
        (rename("tests/old.rs", "tests/new.rs"), "tests/old.rs"),
        # Renaming a file into the tests counts too.
        (rename("src/helpers.rs", "tests/helpers.rs"), "tests/helpers.rs"),
    ],
)
def test_existing_tests_are_read_only(diff, path):
    assert f"test file {path} may not be modified, deleted or renamed" in denied(diff)


def test_new_tests_are_welcome():
    diff = modify("src/lib.rs", 2, 3) + add("tests/pager_test.rs", 12) + add("src/test_pager.py", 4)
    assert Harness(WitWorld).expect_allow(pull(diff)).scopes == ["pulls:create"]


def test_body_must_be_whole_json_with_every_field():
    h = Harness(WitWorld)
    assert "pulls.create: body is not valid JSON" in h.expect_deny(pull_with_body("diff --git a/x b/x"))
    reason = h.expect_deny(pull_with_body('{"title": "x", "head": "h", "diff": ""}'))
    assert 'needs a non-empty "base" string' in reason
    reason = h.expect_deny(pull_with_body('{"title": "x", "head": "h", "base": "main", "diff": 7}'))
    assert 'needs a non-empty "diff" string' in reason
    whole = json.dumps({"title": "Fix pager", "head": "fix-pager", "base": "main", "diff": modify("src/lib.rs", 1, 1)})
    reason = h.expect_deny(pull_with_body(whole[:60], body_truncated=True))
    assert reason == "pr-creator: pulls.create: body was truncated at the size limit"


def test_ambiguous_json_is_denied():
    h = Harness(WitWorld)
    diff = json.dumps(modify("src/lib.rs", 1, 1))
    body = f'{{"title": "t", "head": "h", "base": "main", "diff": {diff}, "diff": {diff}}}'
    reason = h.expect_deny(pull_with_body(body))
    assert reason.startswith('pr-creator: pulls.create: body is not valid JSON: duplicate key "diff"')
    # Numbers serde_json refuses, and bytes that are not UTF-8.
    for bad in ['{"title": NaN}', '{"title": 1e400}', b'{"title": "\xff"}']:
        assert "pulls.create: body is not valid JSON: " in h.expect_deny(pull_with_body(bad))


def test_unknown_body_fields_are_denied():
    h = Harness(WitWorld)
    fields = {"title": "t", "head": "h", "base": "main", "diff": modify("src/lib.rs", 1, 1)}
    reason = h.expect_deny(pull_with_body(json.dumps({**fields, "patch": "x"})))
    assert 'pulls.create: unknown field "patch" in the JSON body' in reason
    # The first unknown field in sorted order is named, as serde_json's map has them.
    reason = h.expect_deny(pull_with_body(json.dumps({**fields, "zzz": 1, "aaa": 2})))
    assert 'unknown field "aaa" in the JSON body (known: title, head, base, diff, body)' in reason
    # The description is a known field.
    h.expect_allow(pull_with_body(json.dumps({**fields, "body": "Fixes #41"})))
    reason = h.expect_deny(branch_with_body('{"name": "fix", "from": "main", "force": true}'))
    assert 'unknown field "force"' in reason


def test_unreadable_diffs_are_denied():
    assert "pulls.create: unreadable diff" in denied("this is not a diff")
    # A hunk that claims more lines than it has.
    short = modify("src/lib.rs", 3, 3).replace("@@ -1,4 +1,4 @@", "@@ -1,9 +1,9 @@")
    assert "unreadable diff" in denied(short)
    assert "binary file assets/logo.png" in denied(binary("assets/logo.png"))


def test_git_reads_the_same_names():
    """Names git reads differently from a parser that only strips `a/`."""
    # `---`/`+++` with another prefix: git applies this to auth/login.rs.
    other_prefix = (
        modify("src/lib.rs", 1, 1)
        .replace("--- a/src/lib.rs", "--- x/auth/login.rs")
        .replace("+++ b/src/lib.rs", "+++ y/auth/login.rs")
    )
    assert "disagree with the `diff --git` header" in denied(other_prefix)
    # No `diff --git` header at all.
    plain = lines("--- x/auth/login.rs", "+++ y/auth/login.rs", "@@ -1 +1 @@", "-a", "+b")
    assert "must be in `git diff` form" in denied(plain)
    # A second file smuggled in after the first one's hunks.
    smuggled = modify("src/lib.rs", 1, 1) + lines("--- a/auth/login.rs", "+++ b/auth/login.rs", "@@ -1 +1 @@", "-a", "+b")
    assert "without a `diff --git` header" in denied(smuggled)
    # Quoted names.
    quoted = lines(
        'diff --git "a/auth/login.rs" "b/auth/login.rs"',
        '--- "a/auth/login.rs"',
        '+++ "b/auth/login.rs"',
        "@@ -1 +1 @@",
        "-a",
        "+b",
    )
    assert "quoted file names are not supported" in denied(quoted)
    # A copy whose target disagrees with its header.
    copy = lines(
        "diff --git a/src/lib.rs b/src/lib.rs",
        "similarity index 100%",
        "copy from src/lib.rs",
        "copy to auth/new.rs",
    )
    assert '"copy to auth/new.rs" does not match its header' in denied(copy)
    # Preamble text before the first header.
    assert "diff line 1: the diff must be in `git diff` form" in denied("Subject: fix\n\n" + modify("src/lib.rs", 1, 1))


def test_crlf_diffs_read_like_git_diff_output():
    # `\r\n` line ends are `\n` ones to Rust's `str::lines()`, and so here.
    h = Harness(WitWorld)
    h.expect_allow(pull(modify("src/lib.rs", 1, 1).replace("\n", "\r\n")))
    assert "path auth/x.rs is forbidden" in h.expect_deny(pull(modify("auth/x.rs", 1, 1).replace("\n", "\r\n")))


def test_only_regular_files():
    symlink = lines(
        "diff --git a/src/link b/src/link",
        "new file mode 120000",
        "index 0000000..1111111",
        "--- /dev/null",
        "+++ b/src/link",
        "@@ -0,0 +1 @@",
        "+../auth/login.rs",
        "\\ No newline at end of file",
    )
    assert "src/link would get mode 120000; only regular files" in denied(symlink)
    assert "mode 120000" in denied(modify("src/link", 1, 1).replace("100644", "120000"))
    # An executable script is a regular file.
    Harness(WitWorld).expect_allow(pull(add("scripts/gen.sh", 2).replace("100644", "100755")))


@pytest.mark.parametrize("blank", ["", "\n\n"])
def test_empty_diff_is_denied(blank):
    assert 'needs a non-empty "diff" string' in denied(blank)


@pytest.mark.parametrize("case", load_cases(CASES), ids=lambda case: case.name)
def test_shared_case_table(case):
    result = case.run(WitWorld)
    assert result.passed, result.problem
