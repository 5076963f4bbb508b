"""`github-mcp`: an agent working on one repository through GitHub's MCP
server: it may read its issues and some of its files and open pull
requests from `agent/` branches, and never merges. A pull request into
`main` is allowed; one into any other base branch escalates to a human, and
once approved the identical call (carrying the approval) is allowed, once.

A port of the Rust policy in `../src/lib.rs`, decision for decision and
reason for reason; the two answer every request alike.

Every JSON-RPC message the agent sends is one decision. The session's own
housekeeping (`initialize`, `ping`, notifications, `tools/list`) is allowed;
each `tools/call` is decided by its tool and its arguments; `tools/list`
shows only the tools some call could be allowed.
"""

from airlock_policy import Description, Listing, McpError, Policy, allow, deny, escalate, hide_all, mcp, show_only

SERVICE = "github-mcp"
TTL_SECONDS = 60

# The repositories, as `owner/repo`, the tools may name.
ALLOWED_REPOS = ["acme/shop"]

# Methods of the MCP session itself: they name no repository and change nothing.
SESSION_METHODS = frozenset(
    {"initialize", "notifications/initialized", "notifications/cancelled", "ping", "tools/list"}
)

# The tools some call may be allowed, which are all `tools/list` shows.
VISIBLE_TOOLS = frozenset({"get_me", "list_issues", "get_file_contents", "create_pull_request"})

# Files `get_file_contents` may read: these, and anything under `READABLE_DIRS`.
READABLE_FILES = ("README.md",)
READABLE_DIRS = ("src/", "docs/")

AGENT_BRANCH_PREFIX = "agent/"

# The base branch a pull request may target without a human's approval.
DEFAULT_BASE = "main"


class Refused(Exception):
    """A rule refused the call; the message is the reason."""


class WitWorld(Policy):
    def describe(self):
        return Description(name="github-mcp", version="0.1.0")

    def evaluate(self, request):
        action = request.action
        if action.service != SERVICE:
            return deny(f"github-mcp may only use the {SERVICE} service, not {action.service}")
        call = mcp(action)
        if call is None:
            return deny(f"github-mcp speaks MCP only: {action.method} {action.path} is not an MCP call")
        if call.method in SESSION_METHODS:
            return allow(["mcp:session"], TTL_SECONDS)
        if call.method != "tools/call":
            return deny(f"github-mcp does not use MCP method {call.method}")
        tool = call.tool or ""
        try:
            return _tool_call(tool, call, request.approval is not None)
        except McpError as e:
            # "list_issues: argument `owner` must be a string",
            # "list_issues: arguments are not a JSON object"
            return deny(str(e))
        except Refused as e:
            return deny(str(e))

    def visible(self, principal, service, kind, names):
        if kind != Listing.TOOLS:
            return hide_all(names)
        return show_only(names, VISIBLE_TOOLS)


def _tool_call(tool: str, call, approved: bool):
    """The verdict on a `tools/call` of `tool`; raises `McpError` for an
    argument that cannot be read and `Refused` for one a rule refuses.
    `approved`: the request carries a human's approval of exactly this call."""
    if tool == "get_me":
        return allow(["user:read"], TTL_SECONDS)
    if tool == "list_issues":
        _check_repo(tool, call)
        return allow(["issues:read"], TTL_SECONDS)
    if tool == "get_file_contents":
        _check_repo(tool, call)
        path = call.arg_str("path")
        if not _readable(path):
            raise Refused(
                f"get_file_contents: path {path} is outside the allowed paths (README.md, src/, docs/)"
            )
        return allow(["contents:read"], TTL_SECONDS)
    if tool == "create_pull_request":
        _check_repo(tool, call)
        head = call.arg_str("head")
        if not (head.startswith(AGENT_BRANCH_PREFIX) and len(head) > len(AGENT_BRANCH_PREFIX)):
            raise Refused(f"create_pull_request: head branch {head} is not an agent/ branch")
        # Into any branch but main only with a human's approval of this very
        # call (the host checks it is for this request).
        base = call.arg_str("base")
        if base != DEFAULT_BASE and not approved:
            return escalate(f"create_pull_request: a pull request into {base} needs a human's approval")
        # One token, one pull request.
        return allow(["pulls:write"], TTL_SECONDS, single_use=True)
    if tool == "merge_pull_request":
        return deny("github-mcp never merges pull requests")
    return deny(f"tool {tool} is not one github-mcp may call")


def _check_repo(tool: str, call) -> None:
    """The call's `owner` and `repo` arguments must name an allowed repository."""
    owner = call.arg_str("owner")
    repo = call.arg_str("repo")
    if f"{owner}/{repo}" not in ALLOWED_REPOS:
        raise Refused(
            f"{tool}: repository {owner}/{repo} is not one github-mcp may use ({', '.join(ALLOWED_REPOS)})"
        )


def _readable(path: str) -> bool:
    """A relative path with no `..`, `.` or empty segment and no backslash,
    that is an allowed file or lies under an allowed directory."""
    clean = (
        not path.startswith("/")
        and "\\" not in path
        and all(segment not in ("", ".", "..") for segment in path.split("/"))
    )
    return clean and (path in READABLE_FILES or any(path.startswith(d) and len(path) > len(d) for d in READABLE_DIRS))
