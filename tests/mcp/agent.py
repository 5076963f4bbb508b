"""The agent of tests/mcp_sdk.rs: the official MCP Python SDK's client
(Streamable HTTP transport + `ClientSession`), driven by a script.

    python agent.py --url URL [--handle HANDLE] --script JSON|-

With `--handle`, every HTTP request carries `Proxy-Authorization: Bearer
HANDLE` (how Airlock knows the agent's session); without it the agent talks
to the server directly. The script is a JSON list of steps:

    {"op": "list_tools"}
    {"op": "call_tool", "name": "get_me", "arguments": {}, "meta": {...}}   # meta: params._meta, optional
    {"op": "ping"}
    {"op": "raw", "body": "<text>", "headers": {...}}   # urllib, same session

It prints one JSON object: the MCP session id the agent was given, the
negotiated protocol version, one entry per step, and every HTTP exchange
(method, status, content type). A step is `{"ok": true, ...}` with its
result, or `{"ok": false, "error": {"code", "message", "data"}}` for the
JSON-RPC error the SDK raised (`MCPError`), or `{"ok": false, "exception"}`
for anything else.
"""

import argparse
import asyncio
import json
import sys
import urllib.error
import urllib.request

import httpx2
from mcp import ClientSession
from mcp.client.streamable_http import streamable_http_client
from mcp.shared._httpx_utils import create_mcp_http_client
from mcp.shared.exceptions import MCPError
from mcp.types import Implementation


def text_of(result) -> str:
    return "\n".join(c.text for c in result.content if getattr(c, "type", None) == "text")


def raw_post(url: str, headers: dict, body: str) -> dict:
    request = urllib.request.Request(url, data=body.encode(), method="POST", headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=30) as r:
            status, got, text = r.status, dict(r.headers), r.read().decode("utf-8", "replace")
    except urllib.error.HTTPError as e:
        status, got, text = e.code, dict(e.headers), e.read().decode("utf-8", "replace")
    try:
        parsed = json.loads(text)
    except ValueError:
        parsed = None
    return {"ok": True, "status": status, "headers": {k.lower(): v for k, v in got.items()}, "body": text, "json": parsed}


async def run(url: str, handle: str | None, script: list) -> dict:
    report: dict = {"session_id": None, "protocol_version": None, "steps": [], "http": []}
    headers = {"proxy-authorization": f"Bearer {handle}"} if handle else {}

    async def on_response(response: httpx2.Response) -> None:
        sid = response.headers.get("mcp-session-id")
        if sid:
            report["session_id"] = sid
        report["http"].append(
            {
                "method": response.request.method,
                "status": response.status_code,
                "content_type": response.headers.get("content-type"),
            }
        )

    client = create_mcp_http_client(headers=headers)
    client.event_hooks["response"].append(on_response)
    async with client:
        async with streamable_http_client(url, http_client=client, terminate_on_close=False) as (read, write):
            async with ClientSession(
                read, write, read_timeout_seconds=30, client_info=Implementation(name="airlock-test-agent", version="1")
            ) as session:
                init = await session.initialize()
                report["protocol_version"] = init.protocol_version
                report["server_name"] = init.server_info.name
                for step in script:
                    report["steps"].append(await run_step(session, url, headers, report, step))
    return report


async def run_step(session: ClientSession, url: str, headers: dict, report: dict, step: dict) -> dict:
    op = step.get("op")
    try:
        if op == "list_tools":
            result = await session.list_tools()
            return {"ok": True, "op": op, "tools": [t.name for t in result.tools]}
        if op == "call_tool":
            result = await session.call_tool(step["name"], step.get("arguments") or {}, meta=step.get("meta"))
            return {
                "ok": True,
                "op": op,
                "name": step["name"],
                "isError": result.is_error,
                "text": text_of(result),
                "result": result.model_dump(mode="json", by_alias=True, exclude_none=True),
            }
        if op == "ping":
            await session.send_ping()
            return {"ok": True, "op": op}
        if op == "raw":
            h = {
                "content-type": "application/json",
                "accept": "application/json, text/event-stream",
                **headers,
            }
            if report["session_id"]:
                h["mcp-session-id"] = report["session_id"]
            if report["protocol_version"]:
                h["mcp-protocol-version"] = report["protocol_version"]
            h.update(step.get("headers") or {})
            out = await asyncio.to_thread(raw_post, url, h, step["body"])
            return dict(out, op=op)
        return {"ok": False, "op": op, "exception": f"unknown op {op!r}"}
    except MCPError as e:
        return {
            "ok": False,
            "op": op,
            "name": step.get("name"),
            "error": {"code": e.error.code, "message": e.error.message, "data": e.error.data},
        }
    except Exception as e:  # noqa: BLE001 (reported, not hidden)
        return {"ok": False, "op": op, "name": step.get("name"), "exception": f"{type(e).__name__}: {e}"}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", required=True)
    parser.add_argument("--handle")
    parser.add_argument("--script", default="-", help="the steps as JSON, or - for stdin")
    args = parser.parse_args()
    script = json.loads(sys.stdin.read() if args.script == "-" else args.script)
    try:
        report = asyncio.run(run(args.url, args.handle, script))
    except BaseException as e:  # noqa: BLE001 (the test prints it)
        print(json.dumps({"fatal": f"{type(e).__name__}: {e!r}"}))
        sys.exit(1)
    print(json.dumps(report))


if __name__ == "__main__":
    main()
