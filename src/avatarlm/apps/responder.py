"""What the avatar says back: a ``Responder`` turns the conversation so far and the user's words into a reply.

- ``ScriptedResponder``: offline, no network; scripted lines, then echoes. Every reply is labelled
  ``[offline]`` so nobody mistakes it for a language model.
- ``OpenAICompatibleResponder``: any OpenAI-compatible ``/chat/completions`` endpoint, standard library
  only (urllib) with a timeout; URL, key and model from AVATARLM_CHAT_URL / _KEY / _MODEL. Every failure
  (unreachable, timeout, HTTP error, non-JSON, JSON without a reply) is one ``ResponderError``.
- ``FallbackResponder``: the endpoint, falling back to the offline responder with a logged warning and a
  ``notice`` the caller can show while the endpoint is unusable (retried after ``retry_after_s``).

History is a sequence of (role, text) messages, role "user" or "assistant", oldest first; ``text`` is the
user's newest words (not yet in the history).
"""

from __future__ import annotations

import http.client
import json
import logging
import math
import os
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

log = logging.getLogger(__name__)

Message = tuple[str, str]  # (role, text)
ROLES = ("user", "assistant")
ENV_URL, ENV_KEY, ENV_MODEL = "AVATARLM_CHAT_URL", "AVATARLM_CHAT_KEY", "AVATARLM_CHAT_MODEL"
MAX_RESPONSE_BYTES = 1 << 20
DEFAULT_SYSTEM_PROMPT = (
    "You are a friendly talking avatar in a live spoken conversation. Answer in one to three short "
    "sentences of plain text, without lists, markup or emoji, because your words are spoken aloud."
)


class ResponderError(RuntimeError):
    """A responder could not produce a reply (the fallback catches exactly this)."""


class Responder(Protocol):
    def reply(self, history: Sequence[Message], text: str) -> str: ...


def check_turn(history: Sequence[Message], text: str) -> None:
    """ValueError unless `history` is (role, text) pairs with known roles and `text` is a string."""
    for i, message in enumerate(history):
        if not (isinstance(message, tuple) and len(message) == 2 and message[0] in ROLES):
            raise ValueError(
                f"history[{i}] must be a (role, text) pair with role in {ROLES}, got {message!r}"
            )
        if not isinstance(message[1], str):
            raise ValueError(f"history[{i}] text must be a string, got {type(message[1]).__name__}")
    if not isinstance(text, str):
        raise ValueError(f"the user's text must be a string, got {type(text).__name__}")


class ScriptedResponder:
    """Offline replies: the scripted lines in order, then an echo of the user. Labelled in every reply."""

    offline = True

    def __init__(self, script: Sequence[str] = (), label: str = "[offline]") -> None:
        self.script = list(script)
        self.label = label
        self._next = 0

    def reply(self, history: Sequence[Message], text: str) -> str:
        check_turn(history, text)
        if self._next < len(self.script):
            line = self.script[self._next]
            self._next += 1
        else:
            heard = " ".join(text.split())
            line = f"I heard you say: {heard}" if heard else "I did not catch that."
        return f"{self.label} {line}" if self.label else line


@dataclass
class ChatEndpointConfig:
    url: str  # base URL (".../v1") or the full ".../chat/completions" URL
    api_key: str | None = None
    model: str = "default"
    timeout_s: float = 10.0
    system_prompt: str = DEFAULT_SYSTEM_PROMPT
    max_tokens: int = 150
    temperature: float = 0.7
    max_history: int = 20  # most recent messages sent along

    def __post_init__(self) -> None:
        if not self.url.startswith(("http://", "https://")):
            raise ValueError(f"chat endpoint url must start with http:// or https://, got {self.url!r}")
        if not (math.isfinite(self.timeout_s) and self.timeout_s > 0):
            raise ValueError(f"timeout_s must be a finite number of seconds > 0, got {self.timeout_s}")
        if self.max_tokens < 1 or self.max_history < 0 or not 0.0 <= self.temperature <= 2.0:
            raise ValueError(
                "need max_tokens >= 1, max_history >= 0 and temperature in 0..2, got "
                f"max_tokens={self.max_tokens}, max_history={self.max_history}, temperature={self.temperature}"
            )

    @property
    def endpoint(self) -> str:
        url = self.url.rstrip("/")
        return url if url.endswith("/chat/completions") else url + "/chat/completions"

    @classmethod
    def from_env(
        cls, environ: Mapping[str, str] | None = None, **overrides: Any
    ) -> ChatEndpointConfig | None:
        """The endpoint named by AVATARLM_CHAT_URL (None when unset), its key and model from the environment."""
        env = os.environ if environ is None else environ
        url = env.get(ENV_URL, "").strip()
        if not url:
            return None
        model = env.get(ENV_MODEL, "").strip() or "default"
        return cls(url=url, api_key=env.get(ENV_KEY, "").strip() or None, model=model, **overrides)


def reply_text(data: Any) -> str:
    """The assistant's words in a chat-completions response; ResponderError when there are none."""
    try:
        content = data["choices"][0]["message"]["content"]
    except (KeyError, IndexError, TypeError) as e:
        raise ResponderError(f"chat response has no choices[0].message.content ({e!r})") from None
    if isinstance(content, list):  # content parts: [{"type": "text", "text": ...}, ...]
        content = " ".join(p.get("text", "") for p in content if isinstance(p, dict))
    if not isinstance(content, str) or not content.strip():
        raise ResponderError(f"chat response has an empty or non-text reply: {content!r}")
    return content.strip()


class OpenAICompatibleResponder:
    """Replies from an OpenAI-compatible chat endpoint; raises ResponderError when it cannot."""

    offline = False

    def __init__(self, config: ChatEndpointConfig) -> None:
        self.config = config

    def messages(self, history: Sequence[Message], text: str) -> list[dict[str, str]]:
        cfg = self.config
        recent = list(history)[-cfg.max_history :] if cfg.max_history else []
        out = [{"role": "system", "content": cfg.system_prompt}] if cfg.system_prompt else []
        out += [{"role": role, "content": words} for role, words in recent]
        return [*out, {"role": "user", "content": text}]

    def reply(self, history: Sequence[Message], text: str) -> str:
        check_turn(history, text)
        cfg = self.config
        body = {
            "model": cfg.model,
            "messages": self.messages(history, text),
            "max_tokens": cfg.max_tokens,
            "temperature": cfg.temperature,
            "stream": False,
        }
        headers = {"Content-Type": "application/json", "Accept": "application/json"}
        if cfg.api_key:
            headers["Authorization"] = f"Bearer {cfg.api_key}"
        request = urllib.request.Request(
            cfg.endpoint, data=json.dumps(body).encode(), headers=headers, method="POST"
        )
        try:
            with urllib.request.urlopen(request, timeout=cfg.timeout_s) as response:
                raw = response.read(MAX_RESPONSE_BYTES + 1)
        except urllib.error.HTTPError as e:
            raise ResponderError(f"chat endpoint {cfg.endpoint} answered HTTP {e.code}") from None
        except urllib.error.URLError as e:
            raise ResponderError(f"chat endpoint {cfg.endpoint} unreachable: {e.reason}") from None
        except (OSError, http.client.HTTPException) as e:  # timeouts, resets, bad status lines
            raise ResponderError(f"chat endpoint {cfg.endpoint} failed: {e!r}") from None
        if len(raw) > MAX_RESPONSE_BYTES:
            raise ResponderError(f"chat response larger than {MAX_RESPONSE_BYTES} bytes")
        try:
            data = json.loads(raw.decode("utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError):
            raise ResponderError(f"chat endpoint returned non-JSON: {raw[:80]!r}") from None
        return reply_text(data)


class FallbackResponder:
    """The endpoint when it works, else the offline responder with a warning and a ``notice`` to show.

    After a failure the endpoint is skipped for ``retry_after_s`` seconds of ``clock`` (so a dead endpoint
    costs one timeout, not one per turn). ``degraded`` / ``notice`` describe the latest reply.
    """

    def __init__(
        self,
        primary: Responder | None,
        fallback: Responder | None = None,
        retry_after_s: float = 30.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if not (math.isfinite(retry_after_s) and retry_after_s >= 0):
            raise ValueError(f"retry_after_s must be a finite number of seconds >= 0, got {retry_after_s}")
        self.primary = primary
        self.fallback = fallback if fallback is not None else ScriptedResponder()
        self.retry_after_s = retry_after_s
        self.clock = clock
        self.degraded = False
        self.notice: str | None = None
        self.last_error: str | None = None
        self._retry_at = -math.inf
        self._warned_unconfigured = False

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None, **kwargs: Any) -> FallbackResponder:
        """The endpoint from AVATARLM_CHAT_* (offline only when AVATARLM_CHAT_URL is unset)."""
        config = ChatEndpointConfig.from_env(environ)
        return cls(OpenAICompatibleResponder(config) if config else None, **kwargs)

    def reply(self, history: Sequence[Message], text: str) -> str:
        check_turn(history, text)
        if self.primary is None:
            if not self._warned_unconfigured:
                log.warning("no chat endpoint configured (%s unset); the avatar replies offline", ENV_URL)
                self._warned_unconfigured = True
            return self._offline(history, text, f"no chat endpoint configured ({ENV_URL} unset)")
        if self.clock() < self._retry_at:
            return self._offline(history, text, f"chat endpoint unavailable ({self.last_error})")
        try:
            answer = self.primary.reply(history, text)
        except ResponderError as e:
            self.last_error = str(e)
            self._retry_at = self.clock() + self.retry_after_s
            log.warning("chat endpoint failed, replying offline: %s", e)
            return self._offline(history, text, f"chat endpoint unavailable ({e})")
        self.degraded, self.notice, self.last_error = False, None, None
        return answer

    def _offline(self, history: Sequence[Message], text: str, why: str) -> str:
        self.degraded = True
        self.notice = f"{why}; replying with offline scripted answers"
        return self.fallback.reply(history, text)
