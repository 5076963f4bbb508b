"""Building and reading verdicts (the generated `wit_world.imports.types.Verdict`)."""

import json

from wit_world.imports.types import Grant, Verdict_Allow, Verdict_Deny, Verdict_Escalate


def allow(scopes, ttl_seconds: int, single_use: bool = False, max_response_bytes: int | None = None, claims=()):
    """Let the request through with a token for `scopes` (a list, or one scope
    as a string) that lives `ttl_seconds`. `claims` are `(name, value)` pairs
    whose value is any JSON value, sent as compact JSON text like serde_json's."""
    if isinstance(scopes, str):
        scopes = [scopes]
    return Verdict_Allow(
        Grant(
            scopes=list(scopes),
            ttl_seconds=ttl_seconds,
            single_use=single_use,
            max_response_bytes=max_response_bytes,
            claims=[(name, _json_text(value)) for name, value in claims],
        )
    )


def deny(reason: str):
    """Refuse; the reason is shown to the agent and audited, so name the rule."""
    return Verdict_Deny(reason)


def escalate(reason: str):
    """Refuse for now and ask a human; the reason is shown to the approver."""
    return Verdict_Escalate(reason)


def kind(verdict) -> str:
    """`"allow"`, `"deny"` or `"escalate"`."""
    if isinstance(verdict, Verdict_Allow):
        return "allow"
    if isinstance(verdict, Verdict_Deny):
        return "deny"
    if isinstance(verdict, Verdict_Escalate):
        return "escalate"
    raise TypeError(f"not a verdict: {verdict!r}")


def reason(verdict) -> str | None:
    """The deny or escalate reason; `None` for an allow."""
    return None if kind(verdict) == "allow" else verdict.value


def _json_text(value) -> str:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"), sort_keys=True, allow_nan=False)
