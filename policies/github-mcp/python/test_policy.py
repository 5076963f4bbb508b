"""Native tests for the Python github-mcp, covering the Rust policy's tests,
plus the shared case table (`../cases.toml`) that the component must pass too."""

from pathlib import Path

import pytest
from airlock_policy import Listing
from airlock_policy.testing import Harness, load_cases, mcp_request, request, tool_call
from policy import SERVICE, WitWorld

CASES = Path(__file__).resolve().parent.parent / "cases.toml"

REPO = {"owner": "acme", "repo": "shop"}


def call(tool: str, **arguments):
    return tool_call(SERVICE, tool, arguments)


def allowed(req):
    return Harness(WitWorld).expect_allow(req)


def denied(req) -> str:
    return Harness(WitWorld).expect_deny(req)


def test_describes_itself():
    description = WitWorld().describe()
    assert (description.name, description.version) == ("github-mcp", "0.1.0")


def test_only_its_own_service():
    assert denied(tool_call("github", "get_me")) == "github-mcp may only use the github-mcp service, not github"
    assert denied(request("code", "GET", "/x")) == "github-mcp may only use the github-mcp service, not code"


def test_mcp_only():
    reason = denied(request(SERVICE, "POST", "/mcp", body='{"jsonrpc": "2.0", "id": 1, "method": "ping"}'))
    assert reason == "github-mcp speaks MCP only: POST /mcp is not an MCP call"
    assert denied(request(SERVICE, "GET", "/repos/acme/shop")) == "github-mcp speaks MCP only: GET /repos/acme/shop is not an MCP call"


@pytest.mark.parametrize(
    "method", ["initialize", "notifications/initialized", "notifications/cancelled", "ping", "tools/list"]
)
def test_session_methods_are_allowed(method):
    arguments = {"protocolVersion": "2025-06-18"} if method == "initialize" else None
    grant = allowed(mcp_request(SERVICE, method, arguments=arguments))
    assert (grant.scopes, grant.ttl_seconds, grant.single_use) == (["mcp:session"], 60, False)
    assert (grant.max_response_bytes, grant.claims) == (None, [])


@pytest.mark.parametrize(
    "method, name",
    [
        ("resources/list", None),
        ("resources/read", "repo://acme/shop/README.md"),
        ("prompts/list", None),
        ("prompts/get", "triage"),
        ("completion/complete", None),
        ("logging/setLevel", None),
    ],
)
def test_other_methods_are_denied(method, name):
    assert denied(mcp_request(SERVICE, method, name)) == f"github-mcp does not use MCP method {method}"


def test_get_me():
    grant = allowed(call("get_me"))
    assert (grant.scopes, grant.ttl_seconds, grant.single_use) == (["user:read"], 60, False)


def test_list_issues_in_the_allowed_repository_only():
    grant = allowed(call("list_issues", state="open", **REPO))
    assert (grant.scopes, grant.ttl_seconds, grant.single_use) == (["issues:read"], 60, False)
    for owner, repo in [("acme", "api"), ("evil", "shop"), ("Acme", "shop"), ("acme", "shop/../api"), ("acme/shop", "")]:
        reason = denied(call("list_issues", owner=owner, repo=repo))
        assert reason == f"list_issues: repository {owner}/{repo} is not one github-mcp may use (acme/shop)"


def test_required_arguments_must_be_strings():
    assert denied(call("list_issues", repo="shop")) == "list_issues: argument `owner` must be a string"
    assert denied(call("list_issues", owner="acme")) == "list_issues: argument `repo` must be a string"
    assert denied(call("list_issues", owner="acme", repo=7)) == "list_issues: argument `repo` must be a string"
    assert denied(call("list_issues", owner=None, repo="shop")) == "list_issues: argument `owner` must be a string"
    assert denied(call("get_file_contents", **REPO)) == "get_file_contents: argument `path` must be a string"
    assert denied(call("get_file_contents", path=["README.md"], **REPO)) == "get_file_contents: argument `path` must be a string"
    assert denied(call("create_pull_request", base="main", **REPO)) == "create_pull_request: argument `head` must be a string"
    # The repository is checked first.
    assert denied(call("create_pull_request", head="main")) == "create_pull_request: argument `owner` must be a string"


@pytest.mark.parametrize("tool", ["list_issues", "get_file_contents", "create_pull_request"])
@pytest.mark.parametrize("arguments", ["[]", '"acme/shop"', "not json", '{"owner": "acme", "owner": "evil", "repo": "shop"}'])
def test_arguments_must_be_a_json_object(tool, arguments):
    assert denied(tool_call(SERVICE, tool, arguments)) == f"{tool}: arguments are not a JSON object"


@pytest.mark.parametrize(
    "path", ["README.md", "src/lib.rs", "src/a/b/c.rs", "docs/guide.md", "docs/img/logo.png", "src/.hidden", "src/..x"]
)
def test_reads_files_in_the_allowed_paths(path):
    grant = allowed(call("get_file_contents", path=path, **REPO))
    assert (grant.scopes, grant.ttl_seconds, grant.single_use) == (["contents:read"], 60, False)


@pytest.mark.parametrize(
    "path",
    [
        "/README.md",
        "/src/lib.rs",
        "src/../.env",
        "docs/../../etc/passwd",
        "src/..",
        "../README.md",
        "..",
        ".env",
        "README.md/x",
        "readme.md",
        "./README.md",
        "./src/lib.rs",
        "src",
        "src/",
        "docs",
        "docs/",
        "src//lib.rs",
        "src/./lib.rs",
        "docs/guide/",
        "src\\lib.rs",
        "src/a\\..\\..\\x",
        "srcs/lib.rs",
        "documents/x.md",
        ".github/workflows/ci.yml",
        "",
    ],
)
def test_other_paths_are_denied(path):
    reason = denied(call("get_file_contents", path=path, **REPO))
    assert reason == f"get_file_contents: path {path} is outside the allowed paths (README.md, src/, docs/)"


def test_reads_only_the_allowed_repository():
    reason = denied(call("get_file_contents", owner="acme", repo="api", path="README.md"))
    assert reason == "get_file_contents: repository acme/api is not one github-mcp may use (acme/shop)"


def test_opens_pull_requests_from_agent_branches():
    grant = allowed(call("create_pull_request", head="agent/fix-pager", base="main", title="Fix pager", **REPO))
    assert (grant.scopes, grant.ttl_seconds, grant.single_use) == (["pulls:write"], 60, True)
    allowed(call("create_pull_request", head="agent/x/y", base="main", **REPO))
    for head in ["main", "agent/", "agent", "Agent/fix", "feature/agent/fix", " agent/fix", "agents/fix"]:
        reason = denied(call("create_pull_request", head=head, base="main", **REPO))
        assert reason == f"create_pull_request: head branch {head} is not an agent/ branch"
    reason = denied(call("create_pull_request", head="agent/fix", owner="evil", repo="shop"))
    assert reason == "create_pull_request: repository evil/shop is not one github-mcp may use (acme/shop)"


APPROVAL = {"id": "apr_test", "approver": "alice@acme.example", "approved_at_ms": 1}


def test_pull_requests_into_another_base_need_a_human():
    args = dict(title="Fix", head="agent/fix-1", base="release", **REPO)
    reason = Harness(WitWorld).expect_escalate(call("create_pull_request", **args))
    assert reason == "create_pull_request: a pull request into release needs a human's approval"
    for base in ["Main", "main ", "", "develop"]:
        reason = Harness(WitWorld).expect_escalate(call("create_pull_request", **dict(args, base=base)))
        assert reason == f"create_pull_request: a pull request into {base} needs a human's approval"
    # With the human's approval of this call, as for main.
    grant = allowed(tool_call(SERVICE, "create_pull_request", args, approval=APPROVAL))
    assert (grant.scopes, grant.ttl_seconds, grant.single_use) == (["pulls:write"], 60, True)
    # The head branch and the repository are checked first, and the base must be a string.
    reason = denied(call("create_pull_request", head="main", base="release", **REPO))
    assert reason == "create_pull_request: head branch main is not an agent/ branch"
    for base in [None, 7, ["main"]]:
        reason = denied(call("create_pull_request", head="agent/x", base=base, **REPO))
        assert reason == "create_pull_request: argument `base` must be a string"
    assert denied(call("create_pull_request", head="agent/x", **REPO)) == "create_pull_request: argument `base` must be a string"
    reason = denied(tool_call(SERVICE, "create_pull_request", dict(args, base=7), approval=APPROVAL))
    assert reason == "create_pull_request: argument `base` must be a string"


def test_never_merges():
    assert denied(call("merge_pull_request", pullNumber=7, **REPO)) == "github-mcp never merges pull requests"
    # Whatever its arguments.
    assert denied(tool_call(SERVICE, "merge_pull_request", "[]")) == "github-mcp never merges pull requests"


@pytest.mark.parametrize("tool", ["delete_repository", "push_files", "create_issue", "GET_ME", "get_me "])
def test_other_tools_are_denied(tool):
    assert denied(call(tool, **REPO)) == f"tool {tool} is not one github-mcp may call"


def test_lists_only_the_tools_it_may_call():
    h = Harness(WitWorld)
    names = ["get_me", "merge_pull_request", "list_issues", "delete_repository", "get_file_contents", "create_pull_request", "GET_ME"]
    assert h.visible(SERVICE, Listing.TOOLS, names) == [True, False, True, False, True, True, False]
    assert h.visible_names(SERVICE, Listing.TOOLS, names) == ["get_me", "list_issues", "get_file_contents", "create_pull_request"]
    assert h.visible(SERVICE, Listing.TOOLS, []) == []
    for kind in [Listing.RESOURCES, Listing.RESOURCE_TEMPLATES, Listing.PROMPTS]:
        assert h.visible(SERVICE, kind, ["get_me", "repo://acme/shop"]) == [False, False]


@pytest.mark.parametrize("case", load_cases(CASES), ids=lambda case: case.name)
def test_shared_case_table(case):
    result = case.run(WitWorld)
    assert result.passed, result.problem
