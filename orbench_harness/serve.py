"""A small OpenAI-compatible HTTP server around any ``generate(prompts, params)`` function.

Why: the ``llm`` judge (and the ``openai`` target backend) speak the OpenAI chat protocol.
Serving the harness's own models that way gives every machine — CI included, with no network —
a real endpoint to judge against, and lets the judge's HTTP code be tested end to end.

Routes: ``GET /v1/models``, ``GET /v1/models/{id}``, ``POST /v1/chat/completions``
(non-streaming, ``n=1``), ``GET /health``. Errors use OpenAI's ``{"error": {...}}`` shape with
the status codes clients branch on (400, 401, 404, 500), so the judge's retry policy sees what
it would see from a real provider.

Concurrency: HTTP requests are handled on threads; generation runs on one worker thread that
gathers requests arriving together (up to ``max_batch``, waiting ``batch_wait`` seconds) and
sends those with equal generation parameters as one batch — a model on one device is not
thread-safe and is faster batched. The model call is a plain function passed in, so this
module imports no model code (``orbench_harness/cli/serve.py`` wires in a backend).
"""

from __future__ import annotations

import json
import queue
import sys
import threading
import time
import traceback
import uuid
from collections.abc import Callable, Sequence
from concurrent.futures import Future
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from orbench_harness.types import Completion, GenParams, Message, Prompt

GenerateFn = Callable[[Sequence[Prompt], GenParams], list[Completion]]
ROLES = ("system", "user", "assistant")


class RequestError(Exception):
    """A client error: HTTP status, OpenAI error type, message."""

    def __init__(self, status: int, kind: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.kind = kind


@dataclass(frozen=True, slots=True)
class ChatRequest:
    """A validated chat-completions request."""

    prompt: Prompt
    params: GenParams
    stop: tuple[str, ...]


def _content_text(content: Any) -> str:
    """A message's content: a string, or a list of ``{"type": "text", "text": ...}`` parts."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        parts = []
        for p in content:
            if not (isinstance(p, dict) and p.get("type") == "text" and isinstance(p.get("text"), str)):
                raise RequestError(400, "invalid_request_error", "only text content parts are supported")
            parts.append(p["text"])
        return "".join(parts)
    raise RequestError(400, "invalid_request_error", "message content must be a string")


def _num(body: dict[str, Any], key: str, default: float, lo: float, hi: float) -> float:
    value = body.get(key, default)
    if value is None:
        return default
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not lo <= value <= hi:
        raise RequestError(400, "invalid_request_error", f"{key} must be a number in [{lo}, {hi}]")
    return float(value)


def parse_chat_request(body: Any, *, served: str, max_tokens_cap: int) -> ChatRequest:
    """Validate a request body (raises RequestError with OpenAI-style status and type)."""
    if not isinstance(body, dict):
        raise RequestError(400, "invalid_request_error", "request body must be a JSON object")
    model = body.get("model")
    if model != served:
        raise RequestError(404, "not_found_error", f"model {model!r} is not served here (serving {served!r})")
    if body.get("stream"):
        raise RequestError(400, "invalid_request_error", "streaming is not supported by this server")
    if body.get("n", 1) != 1:
        raise RequestError(400, "invalid_request_error", "only n=1 is supported")
    msgs = body.get("messages")
    if not isinstance(msgs, list) or not msgs:
        raise RequestError(400, "invalid_request_error", "messages must be a non-empty list")
    messages: list[Message] = []
    for m in msgs:
        if not isinstance(m, dict) or m.get("role") not in ROLES:
            raise RequestError(400, "invalid_request_error", f"message roles must be one of {', '.join(ROLES)}")
        messages.append(Message(m["role"], _content_text(m.get("content"))))
    max_tokens = body.get("max_completion_tokens", body.get("max_tokens"))
    if max_tokens is None:
        max_tokens = min(256, max_tokens_cap)
    if isinstance(max_tokens, bool) or not isinstance(max_tokens, int) or not 1 <= max_tokens <= max_tokens_cap:
        raise RequestError(400, "invalid_request_error", f"max_tokens must be an integer in [1, {max_tokens_cap}]")
    stop = body.get("stop") or ()
    stop = (stop,) if isinstance(stop, str) else stop
    if not isinstance(stop, (list, tuple)) or not all(isinstance(s, str) and s for s in stop):
        raise RequestError(400, "invalid_request_error", "stop must be a string or a list of strings")
    seed = body.get("seed")
    params = GenParams(
        max_new_tokens=max_tokens,
        temperature=_num(body, "temperature", 1.0, 0.0, 2.0),
        top_p=_num(body, "top_p", 1.0, 0.0, 1.0) or 1.0,
        seed=seed if isinstance(seed, int) and not isinstance(seed, bool) else 0,
    )
    return ChatRequest(Prompt(tuple(messages)), params, tuple(stop))


def apply_stop(completion: Completion, stop: Sequence[str]) -> tuple[str, str]:
    """(text cut at the first stop string, finish reason)."""
    text, reason = completion.text, completion.finish_reason
    cuts = [i for i in (text.find(s) for s in stop) if i >= 0]
    if cuts:
        return text[: min(cuts)], "stop"
    return text, reason


class _Batcher:
    """One worker thread that runs ``generate`` on gathered requests."""

    def __init__(self, generate: GenerateFn, max_batch: int, batch_wait: float) -> None:
        self.generate = generate
        self.max_batch = max(1, max_batch)
        self.batch_wait = batch_wait
        self.q: queue.Queue[tuple[ChatRequest, Future[Completion]] | None] = queue.Queue()
        self.thread = threading.Thread(target=self._loop, name="serve-generate", daemon=True)
        self.thread.start()

    def submit(self, req: ChatRequest) -> Future[Completion]:
        fut: Future[Completion] = Future()
        self.q.put((req, fut))
        return fut

    def close(self) -> None:
        self.q.put(None)
        self.thread.join(timeout=5)

    def _loop(self) -> None:
        while True:
            first = self.q.get()
            if first is None:
                return
            batch = [first]
            deadline = time.monotonic() + self.batch_wait
            while len(batch) < self.max_batch:
                try:
                    nxt = self.q.get(timeout=max(0.0, deadline - time.monotonic()))
                except queue.Empty:
                    break
                if nxt is None:
                    self.q.put(None)
                    break
                batch.append(nxt)
            groups: dict[GenParams, list[tuple[ChatRequest, Future[Completion]]]] = {}
            for req, fut in batch:
                groups.setdefault(req.params, []).append((req, fut))
            for params, group in groups.items():
                try:
                    outs = self.generate([r.prompt for r, _ in group], params)
                    if len(outs) != len(group):
                        raise RuntimeError(f"generate returned {len(outs)} completions for {len(group)} prompts")
                except BaseException as exc:  # the request threads report it as a 500
                    for _, fut in group:
                        fut.set_exception(exc)
                    continue
                for (_, fut), out in zip(group, outs, strict=True):
                    fut.set_result(out)


class ChatServer:
    """The server. ``port=0`` picks a free port; :attr:`url` is the ``/v1`` base URL."""

    def __init__(
        self,
        generate: GenerateFn,
        *,
        model_name: str,
        host: str = "127.0.0.1",
        port: int = 0,
        api_key: str | None = None,
        max_tokens_cap: int = 2048,
        max_batch: int = 8,
        batch_wait: float = 0.02,
        verbose: bool = False,
    ) -> None:
        self.model_name = model_name
        self.api_key = api_key
        self.max_tokens_cap = max_tokens_cap
        self.verbose = verbose
        self.created = int(time.time())
        self._batcher = _Batcher(generate, max_batch, batch_wait)
        self.httpd = ThreadingHTTPServer((host, port), _Handler)
        self.httpd.daemon_threads = True
        self.httpd.app = self  # type: ignore[attr-defined]
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        """Base URL for OpenAI clients, e.g. ``http://127.0.0.1:54321/v1``."""
        host, port = self.httpd.server_address[:2]
        return f"http://{host!s}:{port}/v1"

    def serve_forever(self) -> None:
        """Block serving requests until :meth:`stop` (or Ctrl-C in the caller)."""
        self.httpd.serve_forever(poll_interval=0.2)

    def start(self) -> ChatServer:
        """Serve on a background thread (tests, in-process use)."""
        self._thread = threading.Thread(target=self.serve_forever, name="serve-http", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving and release the port."""
        self.httpd.shutdown()
        self.httpd.server_close()
        self._batcher.close()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def __enter__(self) -> ChatServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def model_card(self) -> dict[str, Any]:
        """One entry of ``/v1/models``."""
        return {"id": self.model_name, "object": "model", "created": self.created, "owned_by": "orbench-harness"}

    def chat(self, body: Any) -> dict[str, Any]:
        """Handle one chat-completions body; RequestError for client errors."""
        req = parse_chat_request(body, served=self.model_name, max_tokens_cap=self.max_tokens_cap)
        completion = self._batcher.submit(req).result()
        text, reason = apply_stop(completion, req.stop)
        return {
            "id": f"chatcmpl-{uuid.uuid4().hex}",
            "object": "chat.completion",
            "created": int(time.time()),
            "model": self.model_name,
            "choices": [
                {
                    "index": 0,
                    "message": {"role": "assistant", "content": text},
                    "finish_reason": reason,
                    "logprobs": None,
                }
            ],
            "usage": {
                "prompt_tokens": completion.n_prompt_tokens,
                "completion_tokens": completion.n_new_tokens,
                "total_tokens": completion.n_prompt_tokens + completion.n_new_tokens,
            },
        }


class _Handler(BaseHTTPRequestHandler):
    server_version = "orbench-serve/1"
    protocol_version = "HTTP/1.1"

    @property
    def app(self) -> ChatServer:
        app: ChatServer = self.server.app  # type: ignore[attr-defined]
        return app

    def log_message(self, format: str, *args: Any) -> None:
        if self.app.verbose:
            sys.stderr.write(f"[serve] {self.address_string()} {format % args}\n")

    def _send(self, status: int, obj: Any) -> None:
        data = json.dumps(obj).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _error(self, status: int, kind: str, message: str) -> None:
        self._send(status, {"error": {"message": message, "type": kind, "param": None, "code": None}})

    def _authorised(self) -> bool:
        key = self.app.api_key
        if key is None or self.headers.get("Authorization", "") == f"Bearer {key}":
            return True
        self._error(401, "authentication_error", "invalid or missing API key")
        return False

    def do_GET(self) -> None:
        path = self.path.split("?", 1)[0].rstrip("/")
        if path == "/health":
            self._send(200, {"status": "ok"})
        elif not self._authorised():
            return
        elif path == "/v1/models":
            self._send(200, {"object": "list", "data": [self.app.model_card()]})
        elif path == f"/v1/models/{self.app.model_name}":
            self._send(200, self.app.model_card())
        else:
            self._error(404, "not_found_error", f"no route GET {path}")

    def do_POST(self) -> None:
        path = self.path.split("?", 1)[0].rstrip("/")
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length > 0 else b""
        if not self._authorised():
            return
        if path != "/v1/chat/completions":
            self._error(404, "not_found_error", f"no route POST {path}")
            return
        try:
            body = json.loads(raw or b"null")
            self._send(200, self.app.chat(body))
        except json.JSONDecodeError as e:
            self._error(400, "invalid_request_error", f"body is not JSON: {e.msg}")
        except RequestError as e:
            self._error(e.status, e.kind, str(e))
        except Exception as e:  # a bug or a model failure: report it, keep serving
            traceback.print_exc(file=sys.stderr)
            self._error(500, "server_error", f"generation failed: {type(e).__name__}: {e}")
