"""Native test harness: run a policy's `evaluate` under plain pytest.

The harness plays the host's part for the imports: an in-memory workflow
state whose writes commit only when the verdict is allow (as the real host
does), and a log recorder. Requests are built from the same JSON form that
`airlock policy eval` and the case tables use, and a whole case table runs
natively with the same checks as `airlock policy test`.

    from airlock_policy.testing import Harness, request
    from policy import WitWorld

    def test_reads():
        h = Harness(WitWorld)
        grant = h.expect_allow(request("code", "GET", "/x"))
        assert grant.scopes == ["read"]

This module is for native tests only: it needs the generated bindings
(`componentize-py -d wit -w policy bindings DIR`) on the path, and a policy
must not import it.
"""

import base64
import json
import time
import tomllib
from dataclasses import dataclass

from wit_world.imports import log as _host_log
from wit_world.imports import state as _host_state
from wit_world.imports.types import Action, Approval, Listing, McpCall, Principal, Request, Usage

from .rust import parse_i64, to_ascii_lowercase
from .verdicts import kind, reason

_I64_MIN, _I64_MAX = -(2**63), 2**63 - 1


@dataclass(frozen=True)
class LogRecord:
    """One log record a policy wrote."""

    level: object  # wit_world.imports.log.Level
    message: str
    fields: list[tuple[str, str]]


class Harness:
    """Runs a policy natively, with an in-memory workflow state.

    `policy` is the `WitWorld` class or an instance of it; `state` the
    committed workflow state to start from.
    """

    def __init__(self, policy, state: dict[str, str] | None = None):
        self.policy = policy() if isinstance(policy, type) else policy
        self.state: dict[str, str] = dict(state or {})
        self.logs: list[LogRecord] = []

    def evaluate(self, request: Request):
        """Evaluate one request. The policy's state writes are committed when
        the verdict is allow and discarded otherwise, as in the host."""
        writes: dict[str, str] = {}
        verdict = self._run(writes, lambda: self.policy.evaluate(request))
        if kind(verdict) == "allow":
            self.state.update(writes)
        return verdict

    def visible(self, service: str, kind, names, *, principal: dict | None = None) -> list[bool]:
        """Ask the policy's `visible` which of `names` (of `kind`: a
        `Listing` or its WIT name, `"tools"`, `"resources"`,
        `"resource-templates"`, `"prompts"`) on MCP `service` the principal
        (the `request` default, overridden by `principal={...}`) may see.
        Its state writes are discarded, as in the host. An answer that is not
        one bool per name fails the test (the host would hide everything)."""
        names = list(names)
        who = _principal(_test_principal(principal))
        listing = _listing(kind)
        answer = self._run({}, lambda: self.policy.visible(who, service, listing, list(names)))
        if not isinstance(answer, list) or len(answer) != len(names) or not all(isinstance(b, bool) for b in answer):
            raise AssertionError(f"visible must answer one bool per name ({len(names)}), got {answer!r}")
        return answer

    def visible_names(self, service: str, kind, names, *, principal: dict | None = None) -> list[str]:
        """The names `visible` lets the principal see, in order."""
        names = list(names)
        return [name for name, seen in zip(names, self.visible(service, kind, names, principal=principal)) if seen]

    def _run(self, writes: dict[str, str], call):
        """Run `call` with the host imports played by this harness: state
        reads see the committed state plus `writes`, which collects the
        writes; log records join `self.logs` once `call` returns."""
        logs: list[LogRecord] = []

        def get(key: str) -> str | None:
            return writes[key] if key in writes else self.state.get(key)

        def set_(key: str, value: str) -> None:
            writes[key] = value

        def incr(key: str, delta: int) -> int:
            value = get(key)
            current = parse_i64(value) if value is not None else None
            # The host saturates at the i64 bounds.
            new = min(max((current or 0) + delta, _I64_MIN), _I64_MAX)
            writes[key] = str(new)
            return new

        def log(level, message: str, fields: list[tuple[str, str]]) -> None:
            logs.append(LogRecord(level, message, list(fields)))

        fakes = {
            (_host_state, "get"): get,
            (_host_state, "set"): set_,
            (_host_state, "incr"): incr,
            (_host_log, "log"): log,
        }
        saved = {target: getattr(*target) for target in fakes}
        for (module, name), fake in fakes.items():
            setattr(module, name, fake)
        try:
            result = call()
        finally:
            for (module, name), original in saved.items():
                setattr(module, name, original)
        self.logs.extend(logs)
        return result

    def expect_allow(self, request: Request):
        """Evaluate and return the grant; fails the test with the verdict otherwise."""
        return self._expect(request, "allow")

    def expect_deny(self, request: Request) -> str:
        """Evaluate and return the deny reason; fails the test on any other verdict."""
        return self._expect(request, "deny")

    def expect_escalate(self, request: Request) -> str:
        """Evaluate and return the escalation reason; fails the test on any other verdict."""
        return self._expect(request, "escalate")

    def _expect(self, request: Request, expected: str):
        verdict = self.evaluate(request)
        if kind(verdict) != expected:
            raise AssertionError(f"expected {expected}, got {verdict!r}")
        return verdict.value


# --- Requests from JSON ----------------------------------------------------


def request(service: str, method: str, path: str, *, principal: dict | None = None, usage: dict | None = None, approval: dict | None = None, **action) -> Request:
    """A request for `method path` on `service`, as agent `test-agent` in role
    `test-role`, session `test-session`, workflow `wf-test` (override any of
    them with `principal={...}`). Further keywords are action fields in the
    JSON form (`operation`, `params`, `query`, `headers`, `body`,
    `body_base64`, `body_truncated`); `body` may also be bytes.
    """
    data = {
        "principal": _test_principal(principal),
        "action": {"service": service, "method": method, "path": path, **action},
        "usage": {"window_seconds": 60, **(usage or {})},
    }
    if approval is not None:
        data["approval"] = approval
    return request_from_json(data)


def _test_principal(overrides: dict | None) -> dict:
    return {"agent": "test-agent", "role": "test-role", "session": "test-session", "workflow": "wf-test", **(overrides or {})}


# What an MCP call's `name` is, by method, as the host reads it from `params`.
_MCP_NAME_KEYS = {
    "tools/call": "name",
    "prompts/get": "name",
    "resources/read": "uri",
    "resources/subscribe": "uri",
    "resources/unsubscribe": "uri",
}
_NOTIFICATION = object()


def mcp_request(service: str, method: str, name: str | None = None, arguments=None, id=_NOTIFICATION, **fields) -> Request:
    """The request the host makes of one JSON-RPC message to MCP service
    `service`: operation `method`, or `method:name` when the call names
    something; `POST /mcp`; the message (`{"jsonrpc": "2.0", "id", "method",
    "params"}`) as the body; and `action.mcp` set as the host sets it.

    `name` is the tool or prompt name (`tools/call`, `prompts/get`) or the
    resource URI (`resources/read`, `resources/subscribe`,
    `resources/unsubscribe`), required for those methods and refused for the
    others. `arguments` (a dict, default `{}`) are `params.arguments` for
    `tools/call` and `prompts/get`, and the other `params` for any other
    method; as a string it is used verbatim as `mcp.arguments` and spliced
    into the body, to test text the host never sends (not JSON, not an
    object). `id` is the JSON-RPC id (an int or a string); it defaults to 1,
    or to none (a notification) for `notifications/...` methods; pass
    `id=None` for a notification. Further keywords are those of `request`
    (`principal`, `usage`, `approval`, `headers`...).
    """
    if id is _NOTIFICATION:
        id = None if method.startswith("notifications/") else 1
    if id is not None and (isinstance(id, bool) or not isinstance(id, int | str)):
        raise ValueError(f"mcp_request: the JSON-RPC id must be an int or a string, not {id!r}")
    key = _MCP_NAME_KEYS.get(method)
    if key is None and name is not None:
        raise ValueError(f"mcp_request: {method} names nothing, so it takes no name")
    if key is not None and not name:
        raise ValueError(f"mcp_request: {method} needs a name (`params.{key}`)")
    raw = arguments if isinstance(arguments, str) else None
    if raw is None:
        arguments = dict(arguments or {})
        if not all(isinstance(k, str) for k in arguments):
            raise ValueError("mcp_request: argument names must be strings")
    # The host's `mcp.arguments`: `params.arguments` for a tool or prompt,
    # else the params (the URI included) but `_meta`; compact, keys sorted.
    if raw is not None:
        params = seen = None
    elif method in ("tools/call", "prompts/get"):
        params = {key: name, "arguments": arguments}
        seen = arguments
    else:
        params = {**({key: name} if key else {}), **arguments}
        seen = {k: v for k, v in params.items() if k != "_meta"}
    message = {"jsonrpc": "2.0", **({} if id is None else {"id": id}), "method": method}
    if raw is not None:
        # Text the host never produces, spliced in as it is.
        head = _json(message)[:-1]
        if method in ("tools/call", "prompts/get"):
            body = f'{head},"params":{{{_json(key)}:{_json(name)},"arguments":{raw}}}}}'
        else:
            body = f'{head},"params":{raw}}}'
        mcp = {"method": method, "name": name, "arguments": {}, "id": id}
    else:
        if params or method in ("tools/call", "prompts/get"):
            message["params"] = params
        body = _json(message)
        mcp = {"method": method, "name": name, "arguments": seen, "id": id}
    operation = method if name is None else f"{method}:{name}"
    req = request(service, "POST", "/mcp", operation=operation, body=body, mcp=mcp, **fields)
    if raw is not None:
        req.action.mcp.arguments = raw
    return req


def tool_call(service: str, tool: str, arguments=None, **fields) -> Request:
    """The request of a `tools/call` of `tool` with `arguments` (see `mcp_request`)."""
    return mcp_request(service, "tools/call", tool, arguments, **fields)


def _json(value) -> str:
    """Compact JSON text with sorted keys, as serde_json writes a value."""
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"), sort_keys=True)


def request_from_json(data: dict) -> Request:
    """A request from its JSON form, the one `airlock policy eval --request`
    reads, checked as the host checks it: unknown fields, missing fields and
    wrong types are errors, pairs (`params`, `query`, `headers`) are objects
    of strings or lists of strings and come sorted by name, header names are
    lower-cased and the method upper-cased."""
    data = _fields(data, "request", required=("principal", "action"), optional=("usage", "approval"))
    approval = data.get("approval")
    return Request(
        principal=_principal(data["principal"]),
        action=_action(data["action"]),
        usage=_usage(data.get("usage") or {}),
        approval=None if approval is None else _approval(approval),
    )


def _principal(data) -> Principal:
    data = _fields(data, "principal", required=("agent", "role", "session", "workflow"), optional=("on_behalf_of", "intent"))
    return Principal(
        agent=_str(data, "agent", "principal"),
        role=_str(data, "role", "principal"),
        session=_str(data, "session", "principal"),
        workflow=_str(data, "workflow", "principal"),
        on_behalf_of=_str(data, "on_behalf_of", "principal", optional=True),
        intent=_str(data, "intent", "principal", optional=True),
    )


def _action(data) -> Action:
    data = _fields(
        data,
        "action",
        required=("service", "method", "path"),
        optional=("operation", "params", "query", "headers", "body", "body_base64", "body_truncated", "mcp"),
    )
    if data.get("body") is not None and data.get("body_base64") is not None:
        raise ValueError("action: give `body` or `body_base64`, not both")
    body = data.get("body")
    if isinstance(body, str):
        body = body.encode("utf-8")
    elif data.get("body_base64") is not None:
        body = base64.b64decode(_str(data, "body_base64", "action").strip(), validate=True)
    elif body is None:
        body = b""
    elif not isinstance(body, bytes):
        raise ValueError("action.body: expected a string")
    method = _str(data, "method", "action")
    if not method or not (method.isascii() and method.isalpha()):
        raise ValueError(f"action.method: {method!r} is not an HTTP method")
    path = _str(data, "path", "action")
    if not path.startswith("/"):
        raise ValueError(f"action.path: {path!r} must start with `/`")
    truncated = data.get("body_truncated", False)
    if not isinstance(truncated, bool):
        raise ValueError("action.body_truncated: expected a boolean")
    return Action(
        service=_str(data, "service", "action"),
        operation=_str(data, "operation", "action", optional=True),
        params=_pairs(data.get("params"), "action.params"),
        method=method.upper(),
        path=path,
        query=_pairs(data.get("query"), "action.query"),
        headers=[(to_ascii_lowercase(k), v) for k, v in _pairs(data.get("headers"), "action.headers")],
        body=body,
        body_truncated=truncated,
        mcp=None if data.get("mcp") is None else _mcp(data["mcp"]),
    )


def _mcp(data) -> McpCall:
    """`action.mcp` from its JSON form, `{"method", "name", "arguments", "id"}`:
    `arguments` an object (default `{}`) and `id` any JSON value, both
    turned into compact JSON text with sorted keys, as the host turns them."""
    data = _fields(data, "action.mcp", required=("method",), optional=("name", "arguments", "id"))
    method = _str(data, "method", "action.mcp")
    if not method:
        raise ValueError("action.mcp.method is empty")
    arguments = data.get("arguments")
    if arguments is None:
        arguments = {}
    if not isinstance(arguments, dict):
        raise ValueError("action.mcp.arguments: expected an object")
    id = data.get("id")
    return McpCall(
        method=method,
        name=_str(data, "name", "action.mcp", optional=True),
        arguments=_json(arguments),
        id=None if id is None else _json(id),
    )


def _listing(kind) -> Listing:
    if isinstance(kind, Listing):
        return kind
    names = {"tools": Listing.TOOLS, "resources": Listing.RESOURCES, "resource-templates": Listing.RESOURCE_TEMPLATES, "prompts": Listing.PROMPTS}
    if kind not in names:
        raise ValueError(f"listing: {kind!r} is not one of {', '.join(names)}")
    return names[kind]


def _usage(data) -> Usage:
    names = ("requests_total", "requests_in_window", "window_seconds", "session_started_ms", "now_ms")
    data = _fields(data, "usage", required=(), optional=(*names, "grants"))
    numbers = {name: _uint(data.get(name, 0), f"usage.{name}") for name in names}
    grants = data.get("grants") or {}
    if not isinstance(grants, dict):
        raise ValueError("usage.grants: expected an object of counts")
    return Usage(grants=[(op, _uint(n, f"usage.grants.{op}")) for op, n in sorted(grants.items())], **numbers)


def _approval(data) -> Approval:
    data = _fields(data, "approval", required=("id", "approver", "approved_at_ms"), optional=())
    return Approval(
        id=_str(data, "id", "approval"),
        approver=_str(data, "approver", "approval"),
        approved_at_ms=_uint(data["approved_at_ms"], "approval.approved_at_ms"),
    )


def _fields(data, where: str, required: tuple[str, ...], optional: tuple[str, ...]) -> dict:
    if not isinstance(data, dict):
        raise ValueError(f"{where}: expected an object")
    for name in data:
        if name not in required and name not in optional:
            raise ValueError(f"{where}: unknown field `{name}`")
    for name in required:
        if name not in data:
            raise ValueError(f"{where}: missing field `{name}`")
    return data


def _str(data: dict, name: str, where: str, optional: bool = False) -> str | None:
    value = data.get(name)
    if value is None and optional:
        return None
    if not isinstance(value, str):
        raise ValueError(f"{where}.{name}: expected a string")
    return value


def _uint(value, where: str) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or value < 0:
        raise ValueError(f"{where}: expected a non-negative integer")
    return value


def _pairs(data, where: str) -> list[tuple[str, str]]:
    """Name/value pairs from an object of strings, or of lists of strings for
    a name that repeats, sorted by name as the host sorts them."""
    if data is None:
        return []
    if not isinstance(data, dict):
        raise ValueError(f"{where}: expected an object")
    pairs = []
    for name, value in sorted(data.items()):
        values = value if isinstance(value, list) else [value]
        if not all(isinstance(v, str) for v in values):
            raise ValueError(f"{where}.{name}: expected a string or a list of strings")
        pairs += [(name, v) for v in values]
    return pairs


def merge(base, over):
    """`over` merged onto `base` as the case tables merge `[defaults]` under a
    case's request: objects key by key, recursively; anything else replaces."""
    if isinstance(base, dict) and isinstance(over, dict):
        merged = dict(base)
        for key, value in over.items():
            merged[key] = merge(merged[key], value) if key in merged else value
        return merged
    return over


# --- Case tables -----------------------------------------------------------

_EXPECTS = ("allow", "deny", "escalate")
_CASE_FIELDS = ("name", "expect", "reason", "scopes", "state", "request")


@dataclass(frozen=True)
class CaseResult:
    """How one case went; `problem` says why it failed (empty when it passed)."""

    name: str
    passed: bool
    verdict: object
    problem: str = ""


@dataclass(frozen=True)
class Case:
    """One case of a table, its request already merged onto the defaults."""

    name: str
    expect: str
    reason: str | None
    scopes: list[str] | None
    state: dict[str, str]
    request: dict

    def run(self, policy) -> CaseResult:
        """Evaluate the case against `policy` (the `WitWorld` class or an
        instance) and check it as `airlock policy test` does: the verdict
        kind, the reason containing `reason`, and the grant's exact `scopes`."""
        req = request_from_json(self.request)
        if req.usage.now_ms == 0:
            req.usage.now_ms = time.time_ns() // 1_000_000
        verdict = Harness(policy, state=self.state).evaluate(req)
        got = kind(verdict)
        why = reason(verdict)
        shown = got if why is None else f"{got} {why!r}"
        if got != self.expect:
            return CaseResult(self.name, False, verdict, f"expected {self.expect}, got {shown}")
        if self.reason is not None and self.reason not in (why or ""):
            return CaseResult(self.name, False, verdict, f"reason {why!r} does not contain {self.reason!r}")
        if self.scopes is not None and got == "allow" and verdict.value.scopes != self.scopes:
            return CaseResult(self.name, False, verdict, f"scopes {verdict.value.scopes!r}, expected {self.scopes!r}")
        return CaseResult(self.name, True, verdict)


def load_cases(path) -> list[Case]:
    """The cases of a case table (TOML), checked as `airlock policy test`
    checks it: unknown keys and an unknown `expect` are errors."""
    with open(path, "rb") as f:
        table = tomllib.load(f)
    for key in table:
        if key not in ("defaults", "case"):
            raise ValueError(f"malformed case table: unknown key `{key}`")
    cases = table.get("case") or []
    if not cases:
        raise ValueError("case table has no [[case]] entries")
    defaults = table.get("defaults", {})
    return [_case(defaults, case) for case in cases]


def _case(defaults: dict, case: dict) -> Case:
    for key in case:
        if key not in _CASE_FIELDS:
            raise ValueError(f"malformed case table: unknown case key `{key}`")
    name, expect = case.get("name"), case.get("expect")
    if not isinstance(name, str):
        raise ValueError("malformed case table: a case needs a `name`")
    if expect not in _EXPECTS:
        raise ValueError(f"malformed case table: case {name!r}: `expect` is {expect!r}, not one of allow, deny, escalate")
    return Case(
        name=name,
        expect=expect,
        reason=case.get("reason"),
        scopes=case.get("scopes"),
        state=dict(case.get("state", {})),
        request=merge(defaults, case.get("request", {})),
    )


def run_cases(policy, path) -> list[CaseResult]:
    """Run every case of the table at `path` against `policy`."""
    return [case.run(policy) for case in load_cases(path)]
