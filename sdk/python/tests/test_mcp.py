"""Tests of the MCP helpers (`mcp`, `Mcp`), the `Policy` base class's
default `visible`, and the harness's MCP requests and `visible`."""

import json

import pytest
from airlock_policy import (
    Description,
    Listing,
    Mcp,
    McpError,
    Policy,
    allow,
    deny,
    hide_all,
    log,
    mcp,
    show_only,
    state,
)
from airlock_policy.paths import has_prefix
from airlock_policy.testing import Harness, mcp_request, request, request_from_json, tool_call
from wit_world.imports.types import McpCall

# --- reading a call ----------------------------------------------------------


def call(method="tools/call", name="read_file", arguments="{}", id="7") -> Mcp:
    return Mcp(McpCall(method=method, name=name, arguments=arguments, id=id))


def test_rest_calls_have_no_mcp():
    assert mcp(request("code", "GET", "/x").action) is None


def test_method_name_id_and_tool():
    c = call(arguments='{"path": "src/lib.rs"}')
    assert (c.method, c.name, c.id, c.tool) == ("tools/call", "read_file", "7", "read_file")
    assert c.is_tool_call("read_file")
    assert not c.is_tool_call("write_file")
    # Only a `tools/call` names a tool: a prompt or a resource is no tool.
    prompt = call(method="prompts/get", name="read_file")
    assert prompt.tool is None
    assert not prompt.is_tool_call("read_file")
    assert call(method="resources/read", name="repo://a").tool is None
    ping = call(method="ping", name=None, id=None)
    assert (ping.tool, ping.id) == (None, None)
    assert not ping.is_tool_call(None)


def test_arguments_are_parsed_strictly():
    c = call(arguments='{"b": [1, {"c": null}], "a": "x"}')
    assert c.arguments == {"a": "x", "b": [1, {"c": None}]}
    # Keys come sorted, as serde_json's map keeps them.
    assert list(c.arguments) == ["a", "b"]
    assert c.arguments_text == '{"b": [1, {"c": null}], "a": "x"}'
    assert c.args() == c.arguments
    for bad in ['{"path": "src/a", "path": "/etc/passwd"}', '{"a": {"x": 1, "x": 2}}', "[1]", '"x"', "null", "{", "", '{"n": NaN}']:
        with pytest.raises(McpError, match=r"^read_file: arguments are not a JSON object$"):
            call(arguments=bad).arguments
    # Errors name what the call names, else its method.
    with pytest.raises(McpError, match=r"^repo://a: arguments are not a JSON object$"):
        call(method="resources/read", name="repo://a", arguments="[]").args()
    with pytest.raises(McpError, match=r"^initialize: arguments are not a JSON object$"):
        call(method="initialize", name=None, arguments="[]").args()
    # The parser's reason stays at hand for debugging.
    with pytest.raises(McpError) as e:
        call(arguments='{"a": 1, "a": 2}').arguments
    assert 'duplicate key "a"' in str(e.value.__cause__)


def test_string_arguments():
    c = call(arguments='{"owner": "acme", "n": 7, "none": null, "list": ["a"]}')
    assert c.arg_str("owner") == "acme"
    assert c.arg("n") == 7
    assert c.arg("none") is None
    assert c.arg("missing") is None
    for key in ["n", "none", "list", "missing"]:
        with pytest.raises(McpError, match=rf"^read_file: argument `{key}` must be a string$"):
            c.arg_str(key)
    with pytest.raises(McpError, match=r"^ping: argument `owner` must be a string$"):
        call(method="ping", name=None).arg_str("owner")
    # Unreadable arguments are reported as such, whatever was asked.
    with pytest.raises(McpError, match="^read_file: arguments are not a JSON object$"):
        call(arguments="[]").arg_str("owner")
    with pytest.raises(McpError, match="^read_file: arguments are not a JSON object$"):
        call(arguments="[]").arg("owner")
    # The errors are ValueErrors, like the body's.
    assert issubclass(McpError, ValueError)


def test_path_arguments_are_normalised():
    c = call(arguments=json.dumps({"a": "./src//lib.rs", "b": "src/../docs/x.md", "c": "../x", "d": "/etc/passwd", "e": "src\\x", "f": ".", "g": 1}))
    assert c.arg_path("a") == "src/lib.rs"
    assert c.arg_path("b") == "docs/x.md"
    assert has_prefix(c.arg_path("a"), "src")
    for key in "cdef":
        with pytest.raises(McpError, match=rf"^read_file: argument `{key}` is \".*\", not a relative path inside its root"):
            c.arg_path(key)
    with pytest.raises(McpError, match="^read_file: argument `g` must be a string$"):
        c.arg_path("g")


def test_glob_arguments():
    c = call(arguments=json.dumps({"path": "src/a/lib.rs", "sneaky": "src/../.env", "n": 1}))
    assert c.arg_matching("path", ["docs/**", "src/**"]) == "src/a/lib.rs"
    with pytest.raises(McpError, match=r"^read_file: argument `path` = src/a/lib.rs matches none of docs/\*\*, \*.md$"):
        c.arg_matching("path", ["docs/**", "*.md"])
    with pytest.raises(McpError, match="^read_file: argument `n` must be a string$"):
        c.arg_matching("n", ["**"])
    # The value is matched as it is, `..` and all; `arg_path` resolves it first.
    assert c.arg_matching("sneaky", ["src/**"]) == "src/../.env"
    assert c.arg_path("sneaky") == ".env"


# --- visible -------------------------------------------------------------------


class Plain(Policy):
    """A policy that never thought about MCP."""

    def describe(self):
        return Description(name="plain", version="1")

    def evaluate(self, request):
        return deny("no")


class ShowsTools(Policy):
    """Shows two tools to one agent; counts the listings it answered (writes
    must be discarded) and logs."""

    def describe(self):
        return Description(name="shows-tools", version="1")

    def evaluate(self, request):
        return allow([], 1)

    def visible(self, principal, service, kind, names):
        state.incr("listings")
        log.info("listing", [("kind", kind.name), ("n", len(names)), ("seen", state.get("listings"))])
        if principal.agent != "test-agent" or service != "tools" or kind != Listing.TOOLS:
            return hide_all(names)
        return show_only(names, {"get_me", "list_issues"})


def test_the_default_hides_everything():
    h = Harness(Plain)
    assert h.visible("tools", Listing.TOOLS, ["a", "b", "c"]) == [False, False, False]
    assert h.visible("tools", "prompts", []) == []
    assert Plain().visible(None, "tools", Listing.RESOURCES, ["x"]) == [False]


def test_visible_answers_one_bool_per_name():
    h = Harness(ShowsTools)
    names = ["get_me", "merge", "list_issues", "get_me"]
    assert h.visible("tools", Listing.TOOLS, names) == [True, False, True, True]
    assert h.visible_names("tools", "tools", names) == ["get_me", "list_issues", "get_me"]
    assert h.visible("tools", "resource-templates", names) == [False] * 4
    assert h.visible("other", Listing.TOOLS, names) == [False] * 4
    assert h.visible("tools", Listing.TOOLS, names, principal={"agent": "intruder"}) == [False] * 4
    # Writes are discarded, reads see them within the call; logs are kept.
    assert "listings" not in h.state
    assert [r.fields for r in h.logs][:2] == [
        [("kind", "TOOLS"), ("n", "4"), ("seen", "1")],
        [("kind", "TOOLS"), ("n", "4"), ("seen", "1")],
    ]
    with pytest.raises(ValueError, match="not one of"):
        h.visible("tools", "tool", names)


class WrongLength(Plain):
    def visible(self, principal, service, kind, names):
        return [True]


def test_a_wrong_answer_fails_the_test():
    with pytest.raises(AssertionError, match="one bool per name"):
        Harness(WrongLength).visible("tools", Listing.TOOLS, ["a", "b"])


# --- harness requests ---------------------------------------------------------


def test_tool_calls_are_built_as_the_host_builds_them():
    r = tool_call("github", "create_pull_request", {"repo": "shop", "owner": "acme", "draft": True})
    a = r.action
    assert (a.service, a.operation, a.method, a.path) == ("github", "tools/call:create_pull_request", "POST", "/mcp")
    assert json.loads(a.body) == {
        "jsonrpc": "2.0",
        "id": 1,
        "method": "tools/call",
        "params": {"name": "create_pull_request", "arguments": {"owner": "acme", "repo": "shop", "draft": True}},
    }
    assert a.mcp == McpCall(
        method="tools/call",
        name="create_pull_request",
        arguments='{"draft":true,"owner":"acme","repo":"shop"}',
        id="1",
    )
    c = mcp(a)
    assert c.tool == "create_pull_request"
    assert c.arg_str("owner") == "acme"
    assert mcp(tool_call("github", "get_me").action).arguments == {}
    assert tool_call("github", "get_me", id="a-1").action.mcp.id == '"a-1"'


def test_other_methods():
    init = mcp_request("github", "initialize", arguments={"protocolVersion": "2025-06-18", "_meta": {"x": 1}})
    assert init.action.operation == "initialize"
    assert init.action.mcp.name is None
    assert init.action.mcp.id == "1"
    # The params are the arguments, but `_meta`, which stays in the body.
    assert mcp(init.action).arguments == {"protocolVersion": "2025-06-18"}
    assert json.loads(init.action.body)["params"]["_meta"] == {"x": 1}
    notification = mcp_request("github", "notifications/initialized")
    assert notification.action.mcp.id is None
    assert json.loads(notification.action.body) == {"jsonrpc": "2.0", "method": "notifications/initialized"}
    # A resource is named by its URI, which is among the arguments too.
    read = mcp_request("github", "resources/read", "repo://acme/shop/README.md")
    assert read.action.operation == "resources/read:repo://acme/shop/README.md"
    assert mcp(read.action).arguments == {"uri": "repo://acme/shop/README.md"}
    assert mcp_request("github", "ping", id=None).action.mcp.id is None
    for method, name, message in [
        ("tools/call", None, "needs a name"),
        ("ping", "x", "takes no name"),
    ]:
        with pytest.raises(ValueError, match=message):
            mcp_request("github", method, name)
    with pytest.raises(ValueError, match="int or a string"):
        mcp_request("github", "ping", id=1.5)


def test_arguments_the_host_never_sends():
    r = tool_call("github", "list_issues", "[1, 2]")
    assert r.action.mcp.arguments == "[1, 2]"
    assert json.loads(r.action.body)["params"] == {"name": "list_issues", "arguments": [1, 2]}
    with pytest.raises(McpError):
        mcp(r.action).arguments
    dup = tool_call("github", "list_issues", '{"owner": "acme", "owner": "evil"}')
    with pytest.raises(McpError, match="not a JSON object"):
        mcp(dup.action).arg_str("owner")


def test_mcp_in_the_json_form():
    base = {"principal": {"agent": "a", "role": "r", "session": "s", "workflow": "w"}}
    r = request_from_json(
        {
            **base,
            "action": {
                "service": "github",
                "method": "POST",
                "path": "/mcp",
                "mcp": {"method": "tools/call", "name": "get_me", "arguments": {"b": 1, "a": "é"}, "id": 7},
            },
        }
    )
    assert r.action.mcp == McpCall(method="tools/call", name="get_me", arguments='{"a":"é","b":1}', id="7")
    r = request_from_json({**base, "action": {"service": "g", "method": "POST", "path": "/mcp", "mcp": {"method": "ping"}}})
    assert r.action.mcp == McpCall(method="ping", name=None, arguments="{}", id=None)
    for mcp_json, message in [
        ({"name": "x"}, "missing field `method`"),
        ({"method": ""}, "method is empty"),
        ({"method": "ping", "args": {}}, "unknown field `args`"),
        ({"method": "ping", "arguments": []}, "expected an object"),
    ]:
        with pytest.raises(ValueError, match=message):
            request_from_json({**base, "action": {"service": "g", "method": "POST", "path": "/mcp", "mcp": mcp_json}})
