"""A scripted model API on 127.0.0.1, for running the real agent programs in tests: Claude Code, Codex, Gemini CLI,
opencode and Aider.

One server speaks each program's dialect (a ``Dialect`` per route): Anthropic's Messages API (``/v1/messages``,
Claude Code), OpenAI's Responses API (``/v1/responses``, Codex) and Chat Completions (``/v1/chat/completions``,
opencode, Aider), and Gemini's ``models/<m>:streamGenerateContent`` / ``:generateContent`` (Gemini CLI). Every
dialect answers by the same scripts, chosen by a marker in the prompt (``hc-script:<name>``), else by the server's
``default``:
- ``hang``: the answer's stream opens and never ends (keep-alives hold it open): the program waits, like a model
  thinking — a busy agent;
- ``bash`` (Messages API only; elsewhere ``done``): the answer is a Bash tool_use running ``echo waiting && sleep
  600`` (Claude refuses a bare sleep); the next request, carrying the tool's result, hangs;
- ``error``: HTTP 500: the program retries, alive and waiting;
- ``done``: a short text answer, then end of turn.
Streams follow the public APIs' server-sent events (Anthropic: message_start … message_stop, ping; OpenAI chat:
``chat.completion.chunk`` then ``[DONE]``; Responses: response.created … response.completed; Gemini: one
``GenerateContentResponse`` per event). Every request is logged (method, path, script, label): a test proves the
program reached this server and nothing else.

A refusing proxy sits beside it: every proxy variable points there, so a connection a program tries to any other
host is logged (a CONNECT or a plain request) and refused with 403.
"""

from __future__ import annotations

import json
import re
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

SCRIPT = re.compile(r"hc-script:([a-z]+)")
LABEL = re.compile(r"hc-label:([\w.-]+)")  # who asked: the world waits until each of its Claudes has
SCRIPTS = ("done", "hang", "bash", "error")
BASH_COMMAND = "echo waiting && sleep 600"
PING_EVERY = 2.0  # seconds between keep-alives on a hanging stream
ERROR = {"type": "error", "error": {"type": "api_error", "code": 500, "status": "INTERNAL",
                                   "message": "scripted error: try again"}}  # read alike by every dialect's client
KEEPALIVE = b": keep-alive\n\n"  # an SSE comment: every client ignores it, the connection stays open


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


def _data(data: dict[str, Any] | str) -> bytes:
    return f"data: {data if isinstance(data, str) else json.dumps(data)}\n\n".encode()


# -- Anthropic's Messages API ------------------------------------------------------------------------------------------
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


def _anthropic_answer(model: str, msg_id: str) -> dict[str, Any]:
    message = _message(model, msg_id)
    message.update(content=[{"type": "text", "text": "done"}], stop_reason="end_turn")
    return message


def _anthropic_events(model: str, msg_id: str, script: str) -> Iterator[bytes]:
    return bash_events(model, msg_id) if script == "bash" else text_events(model, msg_id, "done")


# -- OpenAI's Chat Completions and Responses ---------------------------------------------------------------------------
def _chunk(model: str, msg_id: str, delta: dict[str, Any], finish: str | None) -> dict[str, Any]:
    return {"id": msg_id, "object": "chat.completion.chunk", "created": int(time.time()), "model": model,
            "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]}


def _chat_answer(model: str, msg_id: str) -> dict[str, Any]:
    return {"id": msg_id, "object": "chat.completion", "created": int(time.time()), "model": model,
            "choices": [{"index": 0, "message": {"role": "assistant", "content": "done"}, "finish_reason": "stop"}],
            "usage": {"prompt_tokens": 10, "completion_tokens": 1, "total_tokens": 11}}


def _chat_events(model: str, msg_id: str, script: str) -> Iterator[bytes]:
    yield _data(_chunk(model, msg_id, {"role": "assistant", "content": "done"}, None))
    last = _chunk(model, msg_id, {}, "stop")
    last["usage"] = {"prompt_tokens": 10, "completion_tokens": 1, "total_tokens": 11}
    yield _data(last)
    yield _data("[DONE]")


def _response(model: str, msg_id: str, status: str, output: list[dict[str, Any]]) -> dict[str, Any]:
    return {"id": msg_id, "object": "response", "created_at": int(time.time()), "model": model, "status": status,
            "output": output, "usage": {"input_tokens": 10, "output_tokens": 1, "total_tokens": 11,
                                        "input_tokens_details": {"cached_tokens": 0},
                                        "output_tokens_details": {"reasoning_tokens": 0}}}


def _output_message(msg_id: str) -> dict[str, Any]:
    return {"id": f"{msg_id}_0", "type": "message", "role": "assistant", "status": "completed",
            "content": [{"type": "output_text", "text": "done", "annotations": []}]}


def _responses_answer(model: str, msg_id: str) -> dict[str, Any]:
    return _response(model, msg_id, "completed", [_output_message(msg_id)])


def _responses_events(model: str, msg_id: str, script: str) -> Iterator[bytes]:
    item = _output_message(msg_id)
    yield _responses_opening(model, msg_id)
    yield _sse("response.output_item.added", {"type": "response.output_item.added", "output_index": 0,
                                              "item": {**item, "status": "in_progress", "content": []}})
    yield _sse("response.output_text.delta", {"type": "response.output_text.delta", "item_id": item["id"],
                                              "output_index": 0, "content_index": 0, "delta": "done"})
    yield _sse("response.output_item.done", {"type": "response.output_item.done", "output_index": 0, "item": item})
    yield _sse("response.completed", {"type": "response.completed",
                                      "response": _response(model, msg_id, "completed", [item])})


def _responses_opening(model: str, msg_id: str) -> bytes:
    return _sse("response.created", {"type": "response.created",
                                     "response": _response(model, msg_id, "in_progress", [])})


# -- Gemini ------------------------------------------------------------------------------------------------------------
def _gemini_answer(model: str, msg_id: str) -> dict[str, Any]:
    return {"candidates": [{"content": {"parts": [{"text": "done"}], "role": "model"}, "finishReason": "STOP",
                            "index": 0}], "modelVersion": model, "responseId": msg_id,
            "usageMetadata": {"promptTokenCount": 10, "candidatesTokenCount": 1, "totalTokenCount": 11}}


def _gemini_events(model: str, msg_id: str, script: str) -> Iterator[bytes]:
    yield _data(_gemini_answer(model, msg_id))


@dataclass(frozen=True)
class Dialect:
    """One route of the API: how its requests are recognised, where their prompt is, and how each script is said."""

    name: str
    suffixes: tuple[str, ...]  # the path (without its query) ends with one of these
    prompt: str  # the body's key holding the conversation (searched for the markers)
    answer: Callable[[str, str], dict[str, Any]]  # (model, id) -> a whole answer, not streamed
    events: Callable[[str, str, str], Iterator[bytes]] | None = None  # (model, id, script) -> a streamed answer
    opening: Callable[[str, str], bytes] = lambda model, msg_id: KEEPALIVE  # a hanging stream's first event
    keepalive: bytes = KEEPALIVE
    streams_by_path: bool = False  # Gemini: the method says it (``:streamGenerateContent``), not the body

    def streams(self, path: str, body: dict[str, Any]) -> bool:
        if self.events is None:
            return False
        return "stream" in path.rsplit(":", 1)[-1].lower() if self.streams_by_path else bool(body.get("stream"))


DIALECTS = (
    Dialect("anthropic-count", ("/v1/messages/count_tokens",), "messages", lambda m, i: {"input_tokens": 10}),
    Dialect("anthropic", ("/v1/messages",), "messages", _anthropic_answer, _anthropic_events,
            lambda m, i: _sse("message_start", {"type": "message_start", "message": _message(m, i)}),
            _sse("ping", {"type": "ping"})),
    Dialect("openai-chat", ("/chat/completions",), "messages", _chat_answer, _chat_events),
    Dialect("openai-responses", ("/responses",), "input", _responses_answer, _responses_events, _responses_opening),
    Dialect("gemini-count", (":countTokens",), "contents", lambda m, i: {"totalTokens": 10}),
    Dialect("gemini", (":generateContent", ":streamGenerateContent"), "contents", _gemini_answer, _gemini_events,
            streams_by_path=True),
)
MODELS = {"object": "list", "data": [{"id": name, "object": "model", "owned_by": "hc"} for name in (
    "gpt-4o-mini", "gpt-5-codex", "gemini-2.5-pro", "gemini-2.5-flash")]}


def dialect_of(path: str) -> Dialect | None:
    return next((d for d in DIALECTS if path.endswith(d.suffixes)), None)


def _model(path: str, body: dict[str, Any]) -> str:
    found = re.search(r"models/([^:/]+):", path)
    return str(body.get("model") or (found.group(1) if found else "model"))


class MessagesAPI:
    """The scripted API and the refusing proxy, each on its own port of 127.0.0.1; ``close()`` ends both.
    ``default``: the script for a request whose prompt names none (``error`` keeps a program retrying)."""

    def __init__(self, default: str = "done") -> None:
        if default not in SCRIPTS:
            raise ValueError(f"unknown script {default!r} (known: {', '.join(SCRIPTS)})")
        self.default = default
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
    """The API's requests, answered for ``api`` (set on the subclass each server makes)."""

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
        if self.path.split("?")[0].endswith("/models"):  # OpenAI's model list
            self._json(200, MODELS)
            return
        self._json(404, {"type": "error", "error": {"type": "not_found_error", "message": "not here"}})

    def do_HEAD(self) -> None:
        self.api.seen.add("HEAD", self.path)
        self.send_response(404)
        self.send_header("content-length", "0")
        self.end_headers()

    def do_POST(self) -> None:
        body = self._body()
        path = self.path.split("?")[0]
        dialect = dialect_of(path)
        if dialect is None:
            self.api.seen.add("POST", self.path)
            self._json(404, {"type": "error", "error": {"type": "not_found_error", "message": "not here"}})
            return
        text = json.dumps(body.get(dialect.prompt, ""))
        found, label = SCRIPT.search(text), LABEL.search(text)
        script = found.group(1) if found else self.api.default
        if script == "bash" and _has_tool_result(body):
            script = "hang"
        self.api.seen.add("POST", self.path, script if found else "", label.group(1) if label else "")
        model, msg_id = _model(path, body), f"msg_{time.monotonic_ns():x}"
        if script == "error":
            self._json(500, ERROR)
        elif dialect.streams(path, body):
            self._stream(dialect, script, model, msg_id)
        else:
            self._json(200, dialect.answer(model, msg_id))

    def _stream(self, dialect: Dialect, script: str, model: str, msg_id: str) -> None:
        """The answer as server-sent events: the script's events, or (hang) an answer kept open by keep-alives."""
        self.send_response(200)
        self.send_header("content-type", "text/event-stream")
        self.send_header("cache-control", "no-cache")
        self.send_header("connection", "close")
        self.end_headers()
        self.close_connection = True
        try:
            if script == "hang":
                self.wfile.write(dialect.opening(model, msg_id))
                self.wfile.flush()
                while not self.api.stopping.wait(PING_EVERY):
                    self.wfile.write(dialect.keepalive)
                    self.wfile.flush()
                return
            assert dialect.events is not None  # streams() said so
            for event in dialect.events(model, msg_id, script):
                self.wfile.write(event)
            self.wfile.flush()
        except OSError:  # the program went away
            pass

    def _json(self, status: int, data: dict[str, Any]) -> None:
        raw = json.dumps(data).encode()
        self.send_response(status)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(raw)))
        self.end_headers()
        self.wfile.write(raw)
