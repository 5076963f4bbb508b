"""Write Airlock policies in Python, for componentize-py.

A policy is a `policy.py` that defines `class WitWorld(Policy)` with
`evaluate(self, request)` and `describe(self)`, and `visible(self,
principal, service, kind, names)` if it shows MCP listings (`Policy`'s
default hides every item):

    from airlock_policy import Description, Policy, allow, deny, is_read

    class WitWorld(Policy):
        def describe(self):
            return Description(name="read-only", version="1.0.0")

        def evaluate(self, request):
            if is_read(request.action):
                return allow(["code:read"], 60)
            return deny("read-only: only GET and HEAD are allowed")

The helpers mirror the Rust SDK, result for result: verdicts (`allow`,
`deny`, `escalate`), the action (`op`, `param`, `query`, `header`,
`body_str`, strict `body_json`), MCP calls (`mcp`: method, name, tool,
strictly parsed arguments), `paths` (globs, prefixes, normalisation),
`diff` (unified diffs into files and line counts), `rust` (Rust's string
semantics, e.g. `rust_debug` for reasons that quote like `{:?}`), and the
host imports `state` (workflow-scoped, committed only on allow) and `log`.
`airlock_policy.testing` runs a policy natively, under pytest.
"""

from wit_world.imports.types import Description, Listing

from . import log, paths, rust, state
from .action import BodyError, body_json, body_str, header, is_read, op, param, query
from .diff import Diff, DiffError, FileChange, FileStatus
from .mcp_call import Mcp, McpError, mcp
from .rust import debug as rust_debug
from .strict_json import parse_strict
from .verdicts import allow, deny, escalate, kind, reason
from .world import Policy, hide_all, show_only

__all__ = [
    "BodyError",
    "Description",
    "Diff",
    "DiffError",
    "FileChange",
    "FileStatus",
    "Listing",
    "Mcp",
    "McpError",
    "Policy",
    "allow",
    "body_json",
    "body_str",
    "deny",
    "escalate",
    "header",
    "hide_all",
    "is_read",
    "kind",
    "log",
    "mcp",
    "op",
    "param",
    "parse_strict",
    "paths",
    "query",
    "reason",
    "rust",
    "rust_debug",
    "show_only",
    "state",
]
