"""A small MCP server mimicking the GitHub MCP server, built with the
official MCP Python SDK (mcp 2.x: `MCPServer`, formerly `FastMCP`), served
over Streamable HTTP on loopback. The upstream of tests/mcp_sdk.rs.

    python server.py --log FILE [--port 0] [--chunk 5-7] [--json]

It binds 127.0.0.1:PORT itself (0: any free port) and prints
`LISTENING <port>` once uvicorn has started, so the caller waits for that
line instead of sleeping.

Every HTTP request to /mcp is logged as one JSON line per JSON-RPC message
it carries (`kind: "request"`: HTTP method, JSON-RPC method, tool name and
arguments, the Authorization and Mcp-Session-Id headers), and, once the
answer is sent, one `kind: "response"` line (status, content type, how many
body pieces went on the wire and their sizes). Response bodies are written
in small pieces (5 to 7 bytes, a millisecond apart), so a token echoed in an
answer is split across chunks on the wire. Answers are SSE streams (the
SDK's default) unless `--json`.
"""

import argparse
import asyncio
import itertools
import json
import socket
import sys

import uvicorn
from mcp.server.mcpserver import Context, MCPServer

mcp = MCPServer("github-mcp-mimic", version="1.0.0", log_level="WARNING")


def _authorization(ctx: Context) -> str:
    headers = ctx.headers or {}
    return headers.get("authorization", "")


@mcp.tool()
def get_me(ctx: Context) -> str:
    """The authenticated user; echoes the Authorization header it received."""
    return f"login=octocat; you sent Authorization: {_authorization(ctx)}"


@mcp.tool()
def list_issues(owner: str, repo: str) -> str:
    """Open issues of a repository."""
    return json.dumps([{"number": 7, "title": f"crash in {owner}/{repo} checkout", "state": "open"}])


@mcp.tool()
def get_file_contents(owner: str, repo: str, path: str) -> str:
    """A file's contents."""
    return f"contents of {owner}/{repo}/{path}"


@mcp.tool()
def create_pull_request(owner: str, repo: str, title: str, head: str, base: str) -> str:
    """Open a pull request from head into base."""
    return json.dumps({"number": 42, "title": title, "head": head, "base": base, "repo": f"{owner}/{repo}"})


@mcp.tool()
def merge_pull_request(owner: str, repo: str, pullNumber: int) -> str:  # noqa: N803 (GitHub's name)
    """Merge a pull request."""
    return f"merged {owner}/{repo}#{pullNumber}"


@mcp.tool()
def delete_repo(owner: str, repo: str) -> str:
    """Delete a repository."""
    return f"deleted {owner}/{repo}"


class Logged:
    """ASGI wrapper: logs what reaches /mcp and cuts response bodies into pieces."""

    def __init__(self, app, log_path: str, chunk: tuple[int, int]):
        self.app = app
        self.log_path = log_path
        self.chunk = chunk

    def _write(self, record: dict) -> None:
        with open(self.log_path, "a", encoding="utf-8") as f:
            f.write(json.dumps(record) + "\n")
            f.flush()

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope.get("headers", [])}

        # Read the whole request body, log its messages, then replay it.
        body = b""
        more = True
        while more:
            message = await receive()
            if message["type"] != "http.request":
                break
            body += message.get("body", b"")
            more = message.get("more_body", False)
        try:
            parsed = json.loads(body) if body else None
        except ValueError:
            parsed = None
        messages = parsed if isinstance(parsed, list) else [parsed]
        common = {
            "kind": "request",
            "http_method": scope["method"],
            "path": scope["path"],
            "authorization": headers.get("authorization"),
            "mcp_session_id": headers.get("mcp-session-id"),
            "protocol_version": headers.get("mcp-protocol-version"),
        }
        first = None
        for m in messages:
            m = m if isinstance(m, dict) else {}
            params = m.get("params") if isinstance(m.get("params"), dict) else {}
            record = dict(
                common,
                method=m.get("method"),
                id=m.get("id"),
                tool=params.get("name") if m.get("method") == "tools/call" else None,
                arguments=params.get("arguments") if m.get("method") == "tools/call" else None,
                batch=isinstance(parsed, list),
            )
            first = first or record
            self._write(record)

        replayed = False

        async def replay():
            nonlocal replayed
            if not replayed:
                replayed = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()

        sizes = itertools.cycle(range(self.chunk[0], self.chunk[1] + 1))
        response = {"status": None, "content_type": None, "pieces": []}

        async def chunked_send(message):
            if message["type"] == "http.response.start":
                response["status"] = message["status"]
                for k, v in message.get("headers", []):
                    if k.decode("latin-1").lower() == "content-type":
                        response["content_type"] = v.decode("latin-1")
                await send(message)
                return
            if message["type"] != "http.response.body":
                await send(message)
                return
            data = message.get("body", b"")
            more_body = message.get("more_body", False)
            pos = 0
            while len(data) - pos > self.chunk[1]:
                n = next(sizes)
                await send({"type": "http.response.body", "body": data[pos : pos + n], "more_body": True})
                response["pieces"].append(n)
                pos += n
                await asyncio.sleep(0.001)
            rest = data[pos:]
            await send({"type": "http.response.body", "body": rest, "more_body": more_body})
            if rest:
                response["pieces"].append(len(rest))

        try:
            await self.app(scope, replay, chunked_send)
        finally:
            self._write(
                {
                    "kind": "response",
                    "http_method": scope["method"],
                    "method": (first or {}).get("method"),
                    "id": (first or {}).get("id"),
                    "tool": (first or {}).get("tool"),
                    "status": response["status"],
                    "content_type": response["content_type"],
                    "pieces": len(response["pieces"]),
                    "largest_piece": max(response["pieces"], default=0),
                    "bytes": sum(response["pieces"]),
                }
            )


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--log", required=True, help="JSON-lines file of every request received")
    parser.add_argument("--chunk", default="5-7", help="response piece sizes, LOW-HIGH bytes")
    parser.add_argument("--json", action="store_true", help="answer application/json instead of SSE")
    args = parser.parse_args()
    low, _, high = args.chunk.partition("-")
    chunk = (int(low), int(high or low))

    app = Logged(mcp.streamable_http_app(json_response=args.json), args.log, chunk)
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", args.port))
    port = sock.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan="on"))
    serving = asyncio.create_task(server.serve(sockets=[sock]))
    while not server.started:
        if serving.done():
            await serving  # startup failed: raise its error
            sys.exit("the MCP server stopped during start-up")
        await asyncio.sleep(0.01)
    print(f"LISTENING {port}", flush=True)
    await serving


if __name__ == "__main__":
    asyncio.run(main())
