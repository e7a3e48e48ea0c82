"""Calling an OpenAI-compatible chat endpoint without losing a run to a passing fault.

The ``openai`` client does the HTTP; its own retries are switched off (``max_retries=0``) so
that one policy, ours, decides: exponential backoff with jitter on 429, 408/409, 5xx other
than 501/505 (not implemented: no retry changes that), timeouts, dropped connections and
malformed bodies; ``Retry-After`` (or OpenAI's ``retry-after-ms``) is honoured as a minimum
wait. Every retry is announced on stderr with its reason, so a stuck endpoint is never silence.
One request gives up after ``max_retries`` retries or ``max_wait`` seconds in all, whichever
comes first (each attempt's timeout is cut to the time left), with a :class:`JudgeUnavailable`
saying what kept failing. Client errors that a retry cannot fix (401, 403, 404, 400, 422, 501)
and a refused connection (nothing listens on that port) fail at once. We read the raw body
ourselves, so an endpoint that answers 200 with broken JSON or no choices is a retryable fault
rather than a crash deep in a parser.

Two callers share it: the ``llm`` judge and the ``openai`` backend (a served model being
scored). The backend also needs what the judge ignores (finish reason, token counts, the
``system_fingerprint``), a requests-per-minute cap shared by its worker threads, and its own
error type and wording, so those are parameters rather than a second client.
"""

from __future__ import annotations

import email.utils
import json
import random
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

from orbench_harness.console import warn
from orbench_harness.errors import HarnessError, JudgeUnavailable

T = TypeVar("T")

# 501 Not Implemented and 505 HTTP Version Not Supported say the server never will
RETRYABLE_STATUS = frozenset({408, 409, 429}) | (frozenset(range(500, 600)) - {501, 505})


class MalformedResponse(Exception):
    """The endpoint answered 2xx with a body that is not a usable chat completion."""


@dataclass(frozen=True, slots=True)
class ChatReply:
    """One chat completion as the endpoint reported it (the fields a scored model needs)."""

    text: str
    finish_reason: str | None = None
    prompt_tokens: int | None = None
    completion_tokens: int | None = None
    system_fingerprint: str | None = None
    model: str | None = None


class RateLimit:
    """At most ``per_minute`` request starts a minute, shared by every thread of one client:
    starts are spaced ``60 / per_minute`` seconds apart (a steady pace rather than bursts, which
    is what a provider's per-minute quota tolerates best). ``None`` or 0 means no cap."""

    def __init__(self, per_minute: float | None, sleep: Callable[[float], None] = time.sleep) -> None:
        self.interval = 60.0 / per_minute if per_minute else 0.0
        self._sleep = sleep
        self._lock = threading.Lock()
        self._next = 0.0

    def wait(self) -> None:
        """Block until this caller's turn to start a request."""
        if not self.interval:
            return
        with self._lock:
            now = time.monotonic()
            start = max(now, self._next)
            self._next = start + self.interval
        if start > now:
            self._sleep(start - now)


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """How often and how long to wait between attempts."""

    max_retries: int = 6
    base_delay: float = 1.0
    max_delay: float = 60.0
    max_wait: float = 180.0  # seconds one request may take in all, attempts and waits together

    def delay(self, retry: int, retry_after: float | None, rng: random.Random) -> float:
        """Seconds before retry number ``retry`` (0-based): half the exponential step plus a
        random half ("equal jitter"), never less than the server's Retry-After, capped."""
        step = min(self.max_delay, self.base_delay * (2.0**retry))
        wait = step / 2 + rng.uniform(0, step / 2)
        if retry_after is not None:
            wait = max(wait, retry_after)
        return min(wait, self.max_delay)


@dataclass(frozen=True, slots=True)
class Failure:
    """What went wrong with one attempt and whether trying again can help."""

    retryable: bool
    reason: str
    retry_after: float | None = None


def parse_retry_after(headers: Mapping[str, str] | None) -> float | None:
    """Seconds from ``retry-after-ms``, or ``Retry-After`` as seconds or an HTTP date."""
    if not headers:
        return None
    lower = {k.lower(): v for k, v in headers.items()}
    ms = lower.get("retry-after-ms")
    if ms is not None:
        try:
            return max(0.0, float(ms) / 1000.0)
        except ValueError:
            pass
    value = lower.get("retry-after")
    if value is None:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())


def classify_failure(exc: BaseException) -> Failure:
    """Map an exception from one attempt to a retry decision."""
    import openai

    if isinstance(exc, MalformedResponse):
        return Failure(True, f"malformed response: {exc}")
    if isinstance(exc, openai.APITimeoutError):
        return Failure(True, "request timed out")
    if isinstance(exc, openai.APIConnectionError):
        cause = exc.__cause__ or exc
        if _refused(exc):  # nothing listens there: waiting does not start a server
            return Failure(False, "connection refused (no server listens at that address; check base_url)")
        return Failure(True, f"connection error: {type(cause).__name__}: {cause}")
    if isinstance(exc, openai.APIStatusError):
        status = exc.status_code
        detail = _error_detail(exc)
        if status in RETRYABLE_STATUS:
            return Failure(True, f"HTTP {status}{detail}", parse_retry_after(exc.response.headers))
        hint = " (check the API key variable)" if status in (401, 403) else ""
        return Failure(False, f"HTTP {status}{detail}{hint}")
    if isinstance(exc, (json.JSONDecodeError, openai.APIResponseValidationError)):
        return Failure(True, f"malformed response: {exc}")
    return Failure(False, f"{type(exc).__name__}: {exc}")


def _refused(exc: BaseException) -> bool:
    """Whether a ``ConnectionRefusedError`` is in the exception's chain."""
    seen: set[int] = set()
    cur: BaseException | None = exc
    while cur is not None and id(cur) not in seen:
        if isinstance(cur, ConnectionRefusedError):
            return True
        seen.add(id(cur))
        cur = cur.__cause__ or cur.__context__
    return False


def _error_detail(exc: Any) -> str:
    body = getattr(exc, "body", None)
    if isinstance(body, dict):
        err = body.get("error", body)
        msg = err.get("message") if isinstance(err, dict) else None
        if isinstance(msg, str) and msg:
            return f": {msg[:200]}"
    return ""


def parse_chat_body(text: str) -> str:
    """The first choice's message content; MalformedResponse if the body is not one."""
    return parse_chat_reply(text).text


def parse_chat_reply(text: str) -> ChatReply:
    """The first choice with its finish reason, usage and fingerprint; MalformedResponse if the
    body is not a chat completion."""
    try:
        obj = json.loads(text)
    except json.JSONDecodeError as e:
        raise MalformedResponse(f"body is not JSON ({e.msg} at {e.pos})") from None
    if not isinstance(obj, dict):
        raise MalformedResponse("body is not a JSON object")
    choices = obj.get("choices")
    if not isinstance(choices, list) or not choices:
        raise MalformedResponse("no choices in body")
    first = choices[0]
    message = first.get("message") if isinstance(first, dict) else None
    if not isinstance(message, dict):
        raise MalformedResponse("choice has no message")
    content = message.get("content")
    if content is None:
        content = ""
    if not isinstance(content, str):
        raise MalformedResponse("message content is not a string")
    usage: dict[str, Any] = obj["usage"] if isinstance(obj.get("usage"), dict) else {}
    return ChatReply(
        text=content,
        finish_reason=_str_or_none(first.get("finish_reason")),
        prompt_tokens=_int_or_none(usage.get("prompt_tokens")),
        completion_tokens=_int_or_none(usage.get("completion_tokens")),
        system_fingerprint=_str_or_none(obj.get("system_fingerprint")),
        model=_str_or_none(obj.get("model")),
    )


def _str_or_none(value: Any) -> str | None:
    return value if isinstance(value, str) and value else None


def _int_or_none(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


class ChatClient:
    """A thread-safe chat-completions caller with our retry policy.

    ``sleep`` and ``seed`` are injectable so tests can observe waits without real clocks
    being the only witness; production uses ``time.sleep`` and an unseeded RNG.
    """

    def __init__(
        self,
        *,
        model: str,
        api_key: str,
        base_url: str | None = None,
        timeout: float = 60.0,
        policy: RetryPolicy | None = None,
        sleep: Callable[[float], None] = time.sleep,
        seed: int | None = None,
        notify: Callable[[str], None] = warn,
        rate_limit: RateLimit | None = None,
        unavailable: type[HarnessError] = JudgeUnavailable,
        owner: str = "the judge's",
    ) -> None:
        """``rate_limit`` paces every attempt; ``unavailable`` is the error raised when an
        endpoint cannot be used, and ``owner`` names whose ``max_wait`` ran out in it."""
        import openai

        self.model = model
        self.base_url = base_url
        self.timeout = timeout
        self.policy = policy or RetryPolicy()
        self._sleep = sleep
        self._notify = notify
        self._rng = random.Random(seed)
        self._lock = threading.Lock()
        self._rate = rate_limit or RateLimit(None)
        self._unavailable = unavailable
        self._owner = owner
        self._client = openai.OpenAI(
            api_key=api_key, base_url=base_url, timeout=timeout, max_retries=0
        )
        self.attempts = 0

    @property
    def where(self) -> str:
        """The endpoint, for messages."""
        return str(self._client.base_url).rstrip("/")

    def _with_retries(self, what: str, call: Callable[[float], T]) -> T:
        """``call(timeout)`` until it succeeds, a failure cannot be retried, or the policy's
        retries or ``max_wait`` run out; each retry is announced with its reason."""
        policy = self.policy
        deadline = time.monotonic() + policy.max_wait
        last: Failure | None = None
        for attempt in range(policy.max_retries + 1):
            self._rate.wait()
            with self._lock:
                self.attempts += 1
            try:
                return call(max(0.1, min(self.timeout, deadline - time.monotonic())))
            except Exception as exc:  # classified below; non-retryable ones are re-raised
                last = classify_failure(exc)
                if not last.retryable:
                    raise self._unavailable(
                        f"{what} at {self.where} failed: {last.reason}"
                    ) from exc
            if attempt == policy.max_retries:
                break
            with self._lock:
                wait = policy.delay(attempt, last.retry_after, self._rng)
            if time.monotonic() + wait >= deadline:
                raise self._unavailable(
                    f"{what} at {self.where} failed for {policy.max_wait:g}s ({attempt + 1} attempts; "
                    f"{self._owner} max_wait); last error: {last.reason}"
                )
            self._notify(f"{what} at {self.where}: {last.reason}; retrying in {wait:.1f}s "
                         f"(retry {attempt + 1} of {policy.max_retries}, {policy.max_wait:g}s at most in all)")
            self._sleep(wait)
        assert last is not None
        raise self._unavailable(
            f"{what} at {self.where} failed after {policy.max_retries + 1} attempts "
            f"({policy.max_retries} retries); last error: {last.reason}"
        )

    def complete(
        self, messages: Sequence[Mapping[str, str]], *, max_tokens: int, temperature: float = 0.0
    ) -> str:
        """The assistant's text for one chat request (temperature 0, top_p 1 by default)."""

        def call(timeout: float) -> str:
            raw = self._client.chat.completions.with_raw_response.create(
                model=self.model,
                messages=[dict(m) for m in messages],  # type: ignore[misc]
                max_tokens=max_tokens,
                temperature=temperature,
                top_p=1.0,
                timeout=timeout,
            )
            return parse_chat_body(raw.text)

        return self._with_retries(f"chat completion with model {self.model!r}", call)

    def chat(self, messages: Sequence[Mapping[str, str]], *, max_tokens: int, temperature: float = 0.0,
             top_p: float = 1.0, seed: int | None = None, extra: Mapping[str, Any] | None = None) -> ChatReply:
        """One chat request with everything the endpoint reported about it. ``seed`` is sent
        as the API's ``seed`` (servers that ignore it are deterministic at temperature 0
        anyway); ``extra`` goes into the request body as given."""

        optional: dict[str, Any] = {"seed": seed} if seed is not None else {}
        if extra:
            optional["extra_body"] = dict(extra)

        def call(timeout: float) -> ChatReply:
            raw = self._client.chat.completions.with_raw_response.create(
                model=self.model,
                messages=[dict(m) for m in messages],  # type: ignore[misc]
                max_tokens=max_tokens,
                temperature=temperature,
                top_p=top_p,
                timeout=timeout,
                **optional,
            )
            return parse_chat_reply(raw.text)

        return self._with_retries(f"chat completion with model {self.model!r}", call)

    def next_token_logprobs(self, text: str, top: int, force: Sequence[str] = ()) -> dict[str, float] | None:
        """The ``top`` likeliest next tokens after raw ``text`` with their log-probabilities,
        from a legacy completions request (one token, ``logprobs=top``; vLLM and llama.cpp
        answer it, chat-only providers do not, and that error is the caller's to read). None
        when the answer has no ``logprobs`` at all (the server does not give them); an empty
        dict when it has them for no token (llama.cpp stopped at once: the end of text was the
        likeliest next token, and a stop token's alternatives are not reported). ``force``
        biases the generated token towards those strings (llama.cpp's ``logit_bias_type:
        tokens``), which makes llama.cpp report the alternatives; the log-probabilities it
        reports are the model's own, before the bias."""
        extra: dict[str, Any] = {}
        if force:
            extra["extra_body"] = {"logit_bias": {t: 100 for t in force}, "logit_bias_type": "tokens"}

        def call(timeout: float) -> dict[str, float] | None:
            raw = self._client.completions.with_raw_response.create(
                model=self.model, prompt=text, max_tokens=1, logprobs=top, temperature=0.0, timeout=timeout, **extra)
            try:
                first = json.loads(raw.text)["choices"][0]
            except (json.JSONDecodeError, KeyError, IndexError, TypeError) as e:
                raise MalformedResponse(f"not a completion ({type(e).__name__}: {e})") from None
            lp = first.get("logprobs") if isinstance(first, dict) else None
            tops = lp.get("top_logprobs") if isinstance(lp, dict) else None
            if not isinstance(tops, list):
                return None
            if not tops or not isinstance(tops[0], dict):
                return {}
            try:
                return {str(k): float(v) for k, v in tops[0].items()}
            except (TypeError, ValueError):
                return None

        return self._with_retries(f"next-token log-probabilities from model {self.model!r}", call)

    def list_models(self) -> list[str]:
        """Model ids the endpoint serves (GET /models), with the same retry policy."""
        return [str(m["id"]) for m in self.model_entries()]

    def model_entries(self) -> list[dict[str, Any]]:
        """The endpoint's model list as it sent it (``id`` always; ``owned_by``, vLLM's
        ``root`` and others when given), with the same retry policy."""

        def call(timeout: float) -> list[dict[str, Any]]:
            raw = self._client.models.with_raw_response.list(timeout=timeout)
            try:
                obj = json.loads(raw.text)
                entries = [dict(m) for m in obj["data"]]
                for m in entries:
                    m["id"] = str(m["id"])
            except (json.JSONDecodeError, KeyError, TypeError, ValueError) as e:
                raise MalformedResponse(f"model list unreadable ({e})") from None
            return entries

        return self._with_retries("listing models", call)
