"""Reading a request's action (`wit_world.imports.types.Action`), as the Rust
SDK's `Action` methods do."""

from .rust import to_ascii_lowercase
from .strict_json import parse_strict


class BodyError(ValueError):
    """The body cannot be read as asked; the message says why, in the Rust SDK's words."""


def op(action) -> str:
    """The operation, or `""` when the request matched no route."""
    return action.operation or ""


def is_read(action) -> bool:
    return action.method in ("GET", "HEAD")


def param(action, name: str) -> str | None:
    """A route parameter, e.g. `param(action, "repo")`."""
    return _lookup(action.params, name)


def query(action, name: str) -> str | None:
    """The first value of a query parameter."""
    return _lookup(action.query, name)


def header(action, name: str) -> str | None:
    """A header, by case-insensitive (ASCII) name."""
    name = to_ascii_lowercase(name)
    return next((v for k, v in action.headers if to_ascii_lowercase(k) == name), None)


def body_str(action) -> str:
    """The body as UTF-8 text; raises `BodyError` when it is not."""
    try:
        return action.body.decode("utf-8")
    except UnicodeDecodeError as e:
        # Rust's `Utf8Error` wording: a sequence cut short by the end of the
        # body is "incomplete", anything else "invalid".
        if e.reason == "unexpected end of data":
            detail = f"incomplete utf-8 byte sequence from index {e.start}"
        else:
            detail = f"invalid utf-8 sequence of {e.end - e.start} bytes from index {e.start}"
        raise BodyError(f"body is not UTF-8: {detail}") from None


def body_json(action):
    """The body parsed as JSON (see `strict_json`). A truncated body, or one with
    a duplicate key (which servers resolve differently), raises `BodyError`:
    a policy must not decide on half a document or on a guess."""
    if action.body_truncated:
        raise BodyError("body was truncated at the size limit")
    try:
        return parse_strict(action.body)
    except ValueError as e:
        raise BodyError(f"body is not valid JSON: {e}") from None


def _lookup(pairs: list[tuple[str, str]], name: str) -> str | None:
    return next((v for k, v in pairs if k == name), None)
