"""A scripted Messages API on 127.0.0.1, for running the real Claude Code in tests.

Claude Code talks to ``ANTHROPIC_BASE_URL``; this server answers it by script, chosen by a marker in the
prompt (``hc-script:<name>``):
- ``hang``: the answer's stream opens and never ends (pings keep it alive): Claude waits, like a model thinking;
- ``bash``: the answer is a Bash tool_use running ``echo waiting && sleep 600`` (Claude refuses a bare sleep);
  the next request, carrying the tool's result, hangs;
- ``done`` (also any request without a marker, e.g. start-up calls): a short text answer, then end of turn.
Streaming follows the public Messages API's server-sent events: message_start, content_block_start,
content_block_delta (text_delta / input_json_delta), content_block_stop, message_delta, message_stop, ping.
Every request is logged (method, path, script): a test proves Claude reached this server and nothing else.

A refusing proxy sits beside it: every proxy variable points there, so a connection Claude tries to any other
host is logged (a CONNECT or a plain request) and refused with 403.
"""

from __future__ import annotations

import json
import re
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

SCRIPT = re.compile(r"hc-script:([a-z]+)")
LABEL = re.compile(r"hc-label:([\w.-]+)")  # who asked: the world waits until each of its Claudes has
BASH_COMMAND = "echo waiting && sleep 600"
PING_EVERY = 2.0  # seconds between pings on a hanging stream


@dataclass
class Seen:
    """What a server was asked, in order: (method, path, script, label)."""

    requests: list[tuple[str, str, str, str]] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def add(self, method: str, path: str, script: str = "", label: str = "") -> None:
        with self.lock:
            self.requests.append((method, path, script, label))

    def labels(self) -> set[str]:
        with self.lock:
            return {r[3] for r in self.requests if r[3]}


def _sse(event: str, data: dict[str, Any]) -> bytes:
    return f"event: {event}\ndata: {json.dumps(data)}\n\n".encode()


def _message(model: str, msg_id: str) -> dict[str, Any]:
    return {"id": msg_id, "type": "message", "role": "assistant", "model": model, "content": [],
            "stop_reason": None, "stop_sequence": None, "usage": {"input_tokens": 10, "output_tokens": 1}}


def text_events(model: str, msg_id: str, text: str) -> Iterator[bytes]:
    yield _sse("message_start", {"type": "message_start", "message": _message(model, msg_id)})
    yield _sse("content_block_start", {"type": "content_block_start", "index": 0,
                                       "content_block": {"type": "text", "text": ""}})
    yield _sse("ping", {"type": "ping"})
    yield _sse("content_block_delta", {"type": "content_block_delta", "index": 0,
                                       "delta": {"type": "text_delta", "text": text}})
    yield _sse("content_block_stop", {"type": "content_block_stop", "index": 0})
    yield _sse("message_delta", {"type": "message_delta", "delta": {"stop_reason": "end_turn", "stop_sequence": None},
                                 "usage": {"output_tokens": 5}})
    yield _sse("message_stop", {"type": "message_stop"})


def bash_events(model: str, msg_id: str) -> Iterator[bytes]:
    yield _sse("message_start", {"type": "message_start", "message": _message(model, msg_id)})
    yield _sse("content_block_start", {"type": "content_block_start", "index": 0, "content_block": {
        "type": "tool_use", "id": f"toolu_{msg_id}", "name": "Bash", "input": {}}})
    arguments = json.dumps({"command": BASH_COMMAND, "description": "wait", "timeout": 600000})
    for start in range(0, len(arguments), 24):  # in pieces, as the API streams a tool's input
        yield _sse("content_block_delta", {"type": "content_block_delta", "index": 0, "delta": {
            "type": "input_json_delta", "partial_json": arguments[start:start + 24]}})
    yield _sse("content_block_stop", {"type": "content_block_stop", "index": 0})
    yield _sse("message_delta", {"type": "message_delta", "delta": {"stop_reason": "tool_use", "stop_sequence": None},
                                 "usage": {"output_tokens": 20}})
    yield _sse("message_stop", {"type": "message_stop"})


def _has_tool_result(body: dict[str, Any]) -> bool:
    messages = body.get("messages") or []
    last = messages[-1] if messages else {}
    content = last.get("content") if isinstance(last, dict) else None
    return isinstance(content, list) and any(isinstance(c, dict) and c.get("type") == "tool_result" for c in content)


class MessagesAPI:
    """The scripted API and the refusing proxy, each on its own port of 127.0.0.1; ``close()`` ends both."""

    def __init__(self) -> None:
        self.seen = Seen()
        self.refused = Seen()  # what reached the proxy: any host but this server
        self.stopping = threading.Event()
        self.api = ThreadingHTTPServer(("127.0.0.1", 0), self._api_handler())
        self.proxy = ThreadingHTTPServer(("127.0.0.1", 0), self._proxy_handler())
        for server in (self.api, self.proxy):
            server.daemon_threads = True
            threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True).start()

    def labels(self) -> set[str]:
        return self.seen.labels()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.api.server_address[1]}"

    @property
    def proxy_url(self) -> str:
        return f"http://127.0.0.1:{self.proxy.server_address[1]}"

    def close(self) -> None:
        self.stopping.set()
        for server in (self.api, self.proxy):
            server.shutdown()
            server.server_close()

    def _api_handler(self) -> type[BaseHTTPRequestHandler]:
        return type("Handler", (_APIHandler,), {"api": self})

    def _proxy_handler(self) -> type[BaseHTTPRequestHandler]:
        api = self

        class Refuse(BaseHTTPRequestHandler):
            def log_message(self, *args: object) -> None:
                pass

            def _refuse(self) -> None:
                api.refused.add(self.command, self.path)
                self.send_response(403)
                self.send_header("content-length", "0")
                self.send_header("connection", "close")
                self.end_headers()
                self.close_connection = True

            do_CONNECT = do_GET = do_POST = do_HEAD = do_PUT = _refuse

        return Refuse


class _APIHandler(BaseHTTPRequestHandler):
    """The Messages API's requests, answered for ``api`` (set on the subclass each server makes)."""

    api: MessagesAPI

    protocol_version = "HTTP/1.1"

    def log_message(self, *args: object) -> None:  # the log is api.seen
        pass

    def _body(self) -> dict[str, Any]:
        length = int(self.headers.get("content-length") or 0)
        try:
            body = json.loads(self.rfile.read(length) or b"{}")
        except ValueError:
            return {}
        return body if isinstance(body, dict) else {}

    def do_GET(self) -> None:
        self.api.seen.add("GET", self.path)
        self._json(404, {"type": "error", "error": {"type": "not_found_error", "message": "not here"}})

    def do_HEAD(self) -> None:
        self.api.seen.add("HEAD", self.path)
        self.send_response(404)
        self.send_header("content-length", "0")
        self.end_headers()

    def do_POST(self) -> None:
        body = self._body()
        path = self.path.split("?")[0]
        if not path.endswith("/v1/messages") and not path.endswith("/v1/messages/count_tokens"):
            self.api.seen.add("POST", self.path)
            self._json(404, {"type": "error", "error": {"type": "not_found_error", "message": "not here"}})
            return
        text = json.dumps(body.get("messages", ""))
        found, label = SCRIPT.search(text), LABEL.search(text)
        script = found.group(1) if found else "done"
        if script == "bash" and _has_tool_result(body):
            script = "hang"
        self.api.seen.add("POST", self.path, script if found else "", label.group(1) if label else "")
        if path.endswith("count_tokens"):
            self._json(200, {"input_tokens": 10})
            return
        model = str(body.get("model", "claude"))
        msg_id = f"msg_{time.monotonic_ns():x}"
        if not body.get("stream"):
            message = _message(model, msg_id)
            message.update(content=[{"type": "text", "text": "done"}], stop_reason="end_turn")
            self._json(200, message)
            return
        self._stream(script, model, msg_id)

    def _stream(self, script: str, model: str, msg_id: str) -> None:
        """The answer as server-sent events: the script's events, or (hang) a message kept open with pings."""
        self.send_response(200)
        self.send_header("content-type", "text/event-stream")
        self.send_header("cache-control", "no-cache")
        self.send_header("connection", "close")
        self.end_headers()
        self.close_connection = True
        try:
            if script == "hang":
                self.wfile.write(_sse("message_start", {"type": "message_start",
                                                        "message": _message(model, msg_id)}))
                while not self.api.stopping.wait(PING_EVERY):
                    self.wfile.write(_sse("ping", {"type": "ping"}))
                    self.wfile.flush()
                return
            events = bash_events(model, msg_id) if script == "bash" else text_events(model, msg_id, "done")
            for event in events:
                self.wfile.write(event)
            self.wfile.flush()
        except OSError:  # Claude went away
            pass

    def _json(self, status: int, data: dict[str, Any]) -> None:
        raw = json.dumps(data).encode()
        self.send_response(status)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(raw)))
        self.end_headers()
        self.wfile.write(raw)
