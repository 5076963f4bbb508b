"""Workflow-scoped key/value state, shared by every session of a workflow.

Reads see the committed state plus this evaluation's own writes; the host
commits the writes only if the verdict is allow. That makes "at most one
ticket per workflow" a two-liner:

    if state.incr("tickets") > 1:
        return deny("only one ticket per workflow")

The calls go through the `wit_world.imports.state` module at call time, so
`airlock_policy.testing` can stand in for the host in native tests.
"""

from wit_world.imports import state as _host

from .rust import parse_i64


def get(key: str) -> str | None:
    """The value of `key`, if set."""
    return _host.get(key)


def set(key: str, value: str) -> None:
    """Set `key` to `value` (committed only on allow)."""
    _host.set(key, value)


def incr(key: str, delta: int = 1) -> int:
    """Add `delta` to the integer at `key` (absent counts as 0) and return the
    new value (committed only on allow)."""
    return _host.incr(key, delta)


def get_int(key: str) -> int:
    """The integer at `key`, 0 when absent or not an integer."""
    value = get(key)
    n = parse_i64(value) if value is not None else None
    return 0 if n is None else n
