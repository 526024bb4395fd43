import json
import logging
import socket
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from avatarlm.apps.responder import (
    ChatEndpointConfig,
    FallbackResponder,
    OpenAICompatibleResponder,
    ResponderError,
    ScriptedResponder,
)

GOOD = {"choices": [{"index": 0, "message": {"role": "assistant", "content": "  Hello from the model. "}}]}
PARTS = {
    "choices": [
        {"message": {"content": [{"type": "text", "text": "In"}, {"type": "text", "text": "parts."}]}}
    ]
}
HISTORY = [("user", "hi"), ("assistant", "hello"), ("user", "how are you?"), ("assistant", "fine")]


class ChatHandler(BaseHTTPRequestHandler):
    """/<mode>/v1/chat/completions: good, parts, garbage, empty, blank, error (HTTP 500) or slow."""

    requests: list[dict] = []

    def do_POST(self) -> None:  # noqa: N802 (the http.server spelling)
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        mode = self.path.split("/")[1]
        type(self).requests.append(
            {"mode": mode, "path": self.path, "auth": self.headers["Authorization"], **body}
        )
        if mode == "error":
            self.send_error(500, "model crashed")
            return
        if mode == "slow":
            time.sleep(1.0)
        payload = {
            "good": json.dumps(GOOD),
            "slow": json.dumps(GOOD),
            "parts": json.dumps(PARTS),
            "garbage": "<html>502 Bad Gateway</html>",
            "empty": json.dumps({"choices": []}),
            "blank": json.dumps({"choices": [{"message": {"content": "   "}}]}),
        }[mode].encode()
        try:
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)
        except (BrokenPipeError, ConnectionResetError):  # the client gave up (the slow mode's timeout)
            pass

    def log_message(self, format: str, *args: object) -> None:  # keep the test output quiet
        pass


@pytest.fixture(scope="module")
def server():
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), ChatHandler)
    httpd.daemon_threads = True
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()
    httpd.server_close()


@pytest.fixture
def requests():
    ChatHandler.requests = []
    return ChatHandler.requests


def closed_port_url() -> str:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return f"http://127.0.0.1:{port}/v1"


def endpoint(url: str, **kwargs) -> OpenAICompatibleResponder:
    return OpenAICompatibleResponder(ChatEndpointConfig(url=url, timeout_s=0.3, **kwargs))


def test_endpoint_reply_and_request(server, requests):
    chat = endpoint(
        f"{server}/good/v1", api_key="sk-test", model="tiny", max_history=2, system_prompt="Be brief."
    )
    assert chat.reply(HISTORY, "tell me a joke") == "Hello from the model."
    (sent,) = requests
    assert sent["path"] == "/good/v1/chat/completions" and sent["auth"] == "Bearer sk-test"
    assert sent["model"] == "tiny" and sent["stream"] is False and sent["max_tokens"] == 150
    assert sent["messages"] == [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "how are you?"},  # only the 2 most recent history messages
        {"role": "assistant", "content": "fine"},
        {"role": "user", "content": "tell me a joke"},
    ]
    assert endpoint(f"{server}/parts/v1/chat/completions").reply([], "x") == "In parts."
    assert requests[-1]["auth"] is None  # no key, no Authorization header


@pytest.mark.parametrize(
    "mode, message",
    [
        ("garbage", "non-JSON"),
        ("error", "HTTP 500"),
        ("empty", "no choices"),
        ("blank", "empty or non-text reply"),
        ("slow", "timed out"),
        ("closed", "unreachable"),
    ],
)
def test_endpoint_failures_are_responder_errors(server, requests, mode, message):
    url = closed_port_url() if mode == "closed" else f"{server}/{mode}/v1"
    started = time.monotonic()
    with pytest.raises(ResponderError, match=message):
        endpoint(url).reply(HISTORY, "hello?")
    assert time.monotonic() - started < 0.9  # the 0.3 s timeout holds even for the 1 s slow server


@pytest.mark.parametrize("mode", ["garbage", "error", "empty", "slow", "closed"])
def test_fallback_replies_offline_with_a_notice(server, requests, caplog, mode):
    url = closed_port_url() if mode == "closed" else f"{server}/{mode}/v1"
    responder = FallbackResponder(endpoint(url))
    with caplog.at_level(logging.WARNING, logger="avatarlm.apps.responder"):
        answer = responder.reply(HISTORY, "are you there?")
    assert answer == "[offline] I heard you say: are you there?"
    assert responder.degraded and "chat endpoint unavailable" in (responder.notice or "")
    assert "offline" in (responder.notice or "") and responder.last_error
    assert any("replying offline" in r.getMessage() for r in caplog.records)


def test_fallback_uses_the_endpoint_when_it_works_and_retries_after_a_failure(server, requests):
    now = [0.0]
    chat = endpoint(f"{server}/error/v1")
    responder = FallbackResponder(
        chat, ScriptedResponder(["One.", "Two."]), retry_after_s=10, clock=lambda: now[0]
    )
    assert responder.reply([], "a") == "[offline] One." and len(requests) == 1
    now[0] = 5.0  # within the retry delay: the endpoint is not asked again
    assert responder.reply([], "b") == "[offline] Two." and len(requests) == 1 and responder.degraded
    now[0] = 11.0
    chat.config.url = f"{server}/good/v1"  # the endpoint came back
    assert responder.reply([], "c") == "Hello from the model." and len(requests) == 2
    assert not responder.degraded and responder.notice is None and responder.last_error is None


def test_from_env(server, requests, caplog):
    env = {"AVATARLM_CHAT_URL": f"{server}/good/v1", "AVATARLM_CHAT_KEY": "k", "AVATARLM_CHAT_MODEL": "m"}
    config = ChatEndpointConfig.from_env(env, timeout_s=2.0)
    assert config is not None and (config.api_key, config.model, config.timeout_s) == ("k", "m", 2.0)
    assert config.endpoint == f"{server}/good/v1/chat/completions"
    assert FallbackResponder.from_env(env).reply([], "hi") == "Hello from the model."
    assert requests[-1]["auth"] == "Bearer k" and requests[-1]["model"] == "m"

    assert ChatEndpointConfig.from_env({"AVATARLM_CHAT_URL": "  "}) is None
    offline = FallbackResponder.from_env({})
    with caplog.at_level(logging.WARNING, logger="avatarlm.apps.responder"):
        assert offline.reply([], "hi") == "[offline] I heard you say: hi"
        offline.reply([], "again")
    assert offline.degraded and "AVATARLM_CHAT_URL unset" in (offline.notice or "")
    assert sum("no chat endpoint configured" in r.getMessage() for r in caplog.records) == 1  # warned once


def test_scripted_responder_and_history_checks():
    scripted = ScriptedResponder(["Hi there.", "Bye."], label="")
    assert [scripted.reply([], t) for t in ("a", "b", " c  d ", "  ")] == [
        "Hi there.",
        "Bye.",
        "I heard you say: c d",
        "I did not catch that.",
    ]
    with pytest.raises(ValueError, match="role in"):
        scripted.reply([("system", "x")], "hi")
    with pytest.raises(ValueError, match="must be a string"):
        scripted.reply([], None)


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"url": "localhost:8000"}, "must start with http"),
        ({"url": "http://h", "timeout_s": 0.0}, "timeout_s"),
        ({"url": "http://h", "temperature": 3.0}, "temperature in 0..2"),
        ({"url": "http://h", "max_tokens": 0}, "max_tokens >= 1"),
    ],
)
def test_endpoint_config_rejects_bad_values(kwargs, message):
    with pytest.raises(ValueError, match=message):
        ChatEndpointConfig(**kwargs)


def test_fallback_rejects_a_bad_retry_delay():
    with pytest.raises(ValueError, match="retry_after_s"):
        FallbackResponder(None, retry_after_s=-1.0)
