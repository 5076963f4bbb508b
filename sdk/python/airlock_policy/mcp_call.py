"""Reading an MCP call (`action.mcp`, contract 0.2.0).

For a service of kind `mcp` every JSON-RPC message an agent sends is one
action: its route operation is `method` or `method:name`
(`tools/call:create_pull_request`), and `action.mcp` carries the call as the
host parsed it. `mcp(action)` gives it with the arguments parsed strictly:

    call = mcp(action)
    if call is None:
        return deny("MCP only")
    if call.is_tool_call("read_file"):
        try:
            path = call.arg_path("path")
        except McpError as e:
            return deny(str(e))  # "read_file: argument `path` must be a string"
        if not paths.has_prefix(path, "src"):
            return deny(f"read_file: {path} is outside src/")

A port of the Rust SDK's `McpCall` (`sdk/src/mcp.rs`), messages included:
an error names what the call names (the tool, prompt or resource), else
its method. `arguments` is the Rust SDK's `args()` (also here under that
name); `arg_path` has no Rust twin.
"""

from . import paths, rust
from .strict_json import parse_strict


class McpError(ValueError):
    """An MCP call's arguments cannot be read as asked. The message says why
    and starts with what the call names, the tool, prompt or resource, else
    the method ("list_issues: argument `owner` must be a string"), so it
    can be the deny reason as it is."""


def mcp(action) -> "Mcp | None":
    """The MCP call this action is, or `None` for a REST call."""
    call = action.mcp
    return None if call is None else Mcp(call)


class Mcp:
    """One JSON-RPC message an agent sent to an MCP service.

    `method` is the JSON-RPC method (`tools/call`, `resources/read`,
    `initialize`...); `name` what the call names (the tool or prompt name,
    the resource URI) or `None`; `id` the JSON-RPC id as JSON text (`7`,
    `"a-1"`), `None` for a notification; `arguments_text` the arguments as
    the host sent them, JSON text of an object.
    """

    __slots__ = ("method", "name", "id", "arguments_text", "_arguments")

    def __init__(self, call):
        self.method: str = call.method
        self.name: str | None = call.name
        self.id: str | None = call.id
        self.arguments_text: str = call.arguments
        self._arguments: dict | None = None

    def __repr__(self) -> str:
        return f"Mcp(method={self.method!r}, name={self.name!r}, id={self.id!r}, arguments={self.arguments_text!r})"

    @property
    def tool(self) -> str | None:
        """The tool's name when this is a `tools/call`, else `None`."""
        return self.name if self.method == "tools/call" else None

    def is_tool_call(self, name: str) -> bool:
        """Whether this is a `tools/call` of the tool `name`."""
        return self.method == "tools/call" and self.name == name

    @property
    def arguments(self) -> dict:
        """The arguments, parsed as strictly as `body_json` parses a body (see
        `strict_json`: a duplicate key is an error, not a guess). Raises
        `McpError` ("NAME: arguments are not a JSON object") when they are
        not valid JSON or not an object; the parser's reason is its
        `__cause__`."""
        if self._arguments is None:
            try:
                value = parse_strict(self.arguments_text)
            except ValueError as e:
                raise McpError(f"{self._subject()}: arguments are not a JSON object") from e
            if not isinstance(value, dict):
                raise McpError(f"{self._subject()}: arguments are not a JSON object")
            self._arguments = value
        return self._arguments

    def args(self) -> dict:
        """`arguments`, under the Rust SDK's name."""
        return self.arguments

    def arg(self, key: str):
        """The argument `key` as parsed JSON, or `None` when absent (or JSON
        `null`). Raises `McpError` when the arguments are not a JSON object."""
        return self.arguments.get(key)

    def arg_str(self, key: str) -> str:
        """The argument `key`, which must be a string. Raises `McpError`
        ("NAME: argument `key` must be a string") when it is absent or of
        another type, or when the arguments are not a JSON object."""
        value = self.arg(key)
        if not isinstance(value, str):
            raise McpError(f"{self._subject()}: argument `{key}` must be a string")
        return value

    def arg_matching(self, key: str, patterns) -> str:
        """The string argument `key`, which must match one of the globs
        `patterns` (see `paths.glob_match`); raises `McpError` naming the
        argument, its value and the patterns otherwise. The value is matched
        as it is: `src/**` matches `src/../.env`, so for paths prefer
        `arg_path` and match what it returns."""
        value = self.arg_str(key)
        if any(paths.glob_match(p, value) for p in patterns):
            return value
        raise McpError(f"{self._subject()}: argument `{key}` = {value} matches none of {', '.join(patterns)}")

    def arg_path(self, key: str) -> str:
        """The argument `key` as a relative path, normalised by
        `paths.normalize` (`./src//a.rs` is `src/a.rs`), ready for
        `paths.has_prefix` and `paths.glob_match`. Raises `McpError` when it
        is not a string, or is a path that does not normalise: absolute,
        empty, climbing above its root, or with a backslash or NUL."""
        value = self.arg_str(key)
        path = paths.normalize(value)
        if path is None:
            raise McpError(
                f"{self._subject()}: argument `{key}` is {rust.debug(value)}, not a relative path inside its root "
                "(absolute, empty, climbing out with `..`, or with a backslash)"
            )
        return path

    def _subject(self) -> str:
        """What error messages name: the tool, prompt or resource, else the method."""
        return self.method if self.name is None else self.name
