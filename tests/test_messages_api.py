"""The scripted Messages API speaks the public API's streaming shape, and its proxy refuses (and logs) the rest."""

from __future__ import annotations

import http.client
import json

import pytest

from healthchecks.testing.messages_api import BASH_COMMAND, MessagesAPI


@pytest.fixture
def api():
    server = MessagesAPI()
    yield server
    server.close()


def _post(api: MessagesAPI, body: dict, path: str = "/v1/messages?beta=true") -> tuple[int, bytes]:
    conn = http.client.HTTPConnection("127.0.0.1", api.api.server_address[1], timeout=10)
    conn.request("POST", path, json.dumps(body), {"content-type": "application/json"})
    response = conn.getresponse()
    return response.status, response.read()


def _events(raw: bytes) -> list[dict]:
    return [json.loads(line[6:]) for line in raw.decode().splitlines() if line.startswith("data: ")]


def test_done_streams_a_whole_text_turn(api):
    body = {"model": "m", "stream": True, "messages": [{"role": "user", "content": "hc-script:done"}]}
    status, raw = _post(api, body)
    kinds = [e["type"] for e in _events(raw)]
    assert status == 200
    assert kinds == ["message_start", "content_block_start", "ping", "content_block_delta", "content_block_stop",
                     "message_delta", "message_stop"]


def test_bash_streams_a_tool_use_whose_input_is_the_long_command_then_hangs_on_its_result(api):
    body = {"model": "m", "stream": True, "messages": [{"role": "user", "content": "hc-script:bash hc-label:x-1"}]}
    _, raw = _post(api, body)
    events = _events(raw)
    start = next(e for e in events if e["type"] == "content_block_start")
    assert start["content_block"]["type"] == "tool_use" and start["content_block"]["name"] == "Bash"
    partial = "".join(e["delta"]["partial_json"] for e in events if e["type"] == "content_block_delta")
    assert json.loads(partial)["command"] == BASH_COMMAND
    assert next(e for e in events if e["type"] == "message_delta")["delta"]["stop_reason"] == "tool_use"
    assert api.labels() == {"x-1"}
    assert api.seen.requests[-1][2] == "bash"


def test_other_requests_are_answered_and_logged(api):
    status, raw = _post(api, {"model": "m", "messages": [{"role": "user", "content": "hello"}]})
    assert status == 200 and json.loads(raw)["stop_reason"] == "end_turn"  # not streaming: one JSON message
    status, _ = _post(api, {}, "/api/oauth/profile")
    assert status == 404 and ("POST", "/api/oauth/profile", "", "") in api.seen.requests


def test_the_proxy_refuses_every_other_host_and_logs_it(api):
    conn = http.client.HTTPConnection("127.0.0.1", api.proxy.server_address[1], timeout=10)
    conn.request("CONNECT", "api.anthropic.com:443")
    assert conn.getresponse().status == 403
    assert api.refused.requests == [("CONNECT", "api.anthropic.com:443", "", "")]


def test_openai_and_gemini_dialects_stream_a_whole_text_answer(api):
    _, raw = _post(api, {"model": "m", "stream": True, "messages": [{"role": "user", "content": "hi"}]},
                   "/v1/chat/completions")
    assert raw.decode().rstrip().endswith("data: [DONE]")
    assert _events(raw.replace(b"data: [DONE]", b""))[-1]["choices"][0]["finish_reason"] == "stop"
    _, raw = _post(api, {"model": "m", "stream": True, "input": [{"role": "user", "content": "hc-label:c-1"}]},
                   "/v1/responses")
    assert [e["type"] for e in _events(raw)][-1] == "response.completed" and api.labels() == {"c-1"}
    _, raw = _post(api, {"contents": [{"parts": [{"text": "hi"}]}]},
                   "/v1beta/models/gemini-2.5-pro:streamGenerateContent?alt=sse")
    assert _events(raw)[0]["candidates"][0]["finishReason"] == "STOP"


def test_the_error_script_and_default_answer_500_so_programs_retry():
    server = MessagesAPI(default="error")
    try:
        status, raw = _post(server, {"contents": []}, "/v1beta/models/g:generateContent")
        assert status == 500 and json.loads(raw)["error"]["code"] == 500
        status, _ = _post(server, {"model": "m", "messages": [{"role": "user", "content": "hc-script:done"}]},
                          "/v1/chat/completions")
        assert status == 200
    finally:
        server.close()
