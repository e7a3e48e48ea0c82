"""``openai``: score a model that someone else serves, behind an OpenAI-compatible API.

``vllm serve``, llama.cpp's server, Ollama, TGI and hosted providers all speak chat
completions. The harness sends each benchmark prompt as one chat request (temperature 0, the
run's seed, ``--max-new-tokens`` as ``max_tokens``) through the judge's client
(``chat_client.ChatClient``: one retry policy, backoff with jitter, ``Retry-After`` honoured),
from ``concurrency`` worker threads under a requests-per-minute cap. Each answer is handed to
the runner as it arrives, so a stopped run keeps every finished request and resumes with the
rest.

What is scored is whatever answers at that address, so the identity of a run (and its cache
key) is built from what the server says about itself: the base URL's host and port, the model
entry ``/models`` lists for the name (``id``, plus ``root`` and ``owned_by`` when given), the
``system_fingerprint`` of a one-token probe when the server sends one, and the user's
``--model-revision`` tag, which is the only thing that tells two builds behind the same alias
apart when the server reports nothing else. A fingerprint that changes during a run stops it.

The backend has no weights, hooks or log-probabilities (it declares no capability), so
methods that need them are refused before any request, with a message naming ``hf`` or
``vllm``. The API key comes from ``$OPENAI_API_KEY`` (or the variable ``api_key_env`` names)
and is never put in run.json, the cache, or a message.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import replace
from typing import Any
from urllib.parse import urlsplit

from orbench_harness.chat_client import ChatClient, ChatReply, RateLimit, RetryPolicy
from orbench_harness.errors import HarnessError
from orbench_harness.protocols import OnBatch
from orbench_harness.types import Capability, Completion, GenParams, ModelSpec, Prompt

DEFAULT_BASE_URL = "https://api.openai.com/v1"
# The openai client refuses an empty key; local servers without --api_key accept any string.
NO_KEY = "no-key-set"
# next-token alternatives asked for when scoring (vLLM's default cap on logprobs is 20)
TOP_LOGPROBS = 20
OPTIONS = ("base_url", "model_revision", "concurrency", "requests_per_minute", "timeout", "max_retries",
           "max_wait", "backoff", "api_key_env")


class EndpointUnavailable(HarnessError):
    """The served model could not be reached, refused the key, or kept failing."""


# the answers of an endpoint without (echoing) legacy completions
_NO_ENDPOINT = re.compile(r"HTTP (400|404|405|422|501)\b")


def _number(options: Mapping[str, str], key: str, default: float, *, integer: bool = False,
            minimum: float = 0.0) -> float:
    raw = options.get(key)
    if raw is None:
        return default
    try:
        value = int(raw) if integer else float(raw)
    except ValueError:
        raise HarnessError(f"backend 'openai': {key} must be a {'whole ' if integer else ''}number (got {raw!r})")\
            from None
    if value < minimum:
        raise HarnessError(f"backend 'openai': {key} must be at least {minimum:g} (got {raw})")
    return value


def endpoint_host(base_url: str) -> str:
    """``host:port`` of a base URL (the scheme's default port when none is written). A URL
    with a user name or password is refused: the URL is recorded, a credential must not be."""
    parts = urlsplit(base_url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise HarnessError(f"backend 'openai': base URL {base_url!r} is not an http(s) URL")
    if parts.username or parts.password:  # it would be recorded in run.json with the URL
        raise HarnessError("backend 'openai': the base URL holds credentials; put the key in $OPENAI_API_KEY")
    port = parts.port or (443 if parts.scheme == "https" else 80)
    return f"{parts.hostname}:{port}"


def served_revision(entry: Mapping[str, Any], fingerprint: str | None, tag: str | None) -> str:
    """The ``revision`` of a served model's spec: what the server says it serves, then the
    user's tag. ``created`` is left out on purpose: vLLM stamps the request time there."""
    parts = [f"served={entry['id']}"]
    for key in ("root", "owned_by"):
        value = entry.get(key)
        if isinstance(value, str) and value:
            parts.append(f"{key}={value}")
    if fingerprint:
        parts.append(f"fingerprint={fingerprint}")
    if tag:
        parts.append(f"tag={tag}")
    return ";".join(parts)


class OpenAIBackend:
    """A model behind an OpenAI-compatible endpoint (generation only)."""

    name = "openai"
    capabilities: frozenset[Capability] = frozenset()

    def __init__(self, options: Mapping[str, str]) -> None:
        unknown = set(options) - set(OPTIONS)
        if unknown:
            raise HarnessError(f"backend 'openai' has no argument {sorted(unknown)[0]!r} ({', '.join(OPTIONS)})")
        self.base_url = (options.get("base_url") or os.environ.get("OPENAI_BASE_URL") or DEFAULT_BASE_URL).rstrip("/")
        self.host = endpoint_host(self.base_url)
        self.tag = options.get("model_revision") or None
        self.concurrency = int(_number(options, "concurrency", 4, integer=True, minimum=1))
        self.rpm = _number(options, "requests_per_minute", 0)
        self.timeout = _number(options, "timeout", 120, minimum=0.1)
        self.policy = RetryPolicy(max_retries=int(_number(options, "max_retries", 6, integer=True)),
                                  base_delay=_number(options, "backoff", 1.0),
                                  max_wait=_number(options, "max_wait", 300, minimum=0.1))
        self.key_env = options.get("api_key_env") or "OPENAI_API_KEY"
        self._rate = RateLimit(self.rpm or None)
        self.served: dict[str, str] = {}

    # -- identity ------------------------------------------------------------------------
    def resolve_model(self, name: str) -> ModelSpec:
        """The served model called ``name`` at this endpoint, before asking the server (the
        runner's ``identify`` completes it once every user error has been ruled out)."""
        if not name.strip():
            raise HarnessError("backend 'openai' needs --model NAME, the name the server serves")
        revision = f"tag={self.tag}" if self.tag else "unidentified"
        return ModelSpec(name=name, source=f"openai://{self.host}/{name}", revision=revision)

    def identify(self, spec: ModelSpec) -> ModelSpec:
        """Ask the server what it serves under ``spec.name`` and fold the answer into the
        spec's revision; a name it does not list is an error naming those it does."""
        client = self.client(spec.name)
        entries = self._call(client.model_entries, "list the served models")
        entry = next((e for e in entries if e["id"] == spec.name), None)
        if entry is None:
            served = ", ".join(repr(e["id"]) for e in entries) or "none"
            raise EndpointUnavailable(f"{self.base_url} does not serve a model called {spec.name!r} "
                                      f"(it serves: {served}); pass one of those as --model")
        probe = self._call(lambda: client.chat([{"role": "user", "content": "Hi"}], max_tokens=1, seed=0),
                           "answer a one-token probe")
        self.served = {"endpoint": self.host, "served_model": entry["id"],
                        "system_fingerprint": probe.system_fingerprint or "", "model_revision": self.tag or ""}
        return replace(spec, revision=served_revision(entry, probe.system_fingerprint, self.tag))

    def describe(self) -> dict[str, str]:
        """Where the model runs, for run.json (no key, no path on the server's disk beyond
        what ``/models`` said)."""
        return {"backend": "openai", "base_url": self.base_url, "endpoint": self.host,
                "concurrency": str(self.concurrency), "requests_per_minute": f"{self.rpm:g}" if self.rpm else "",
                **self.served}

    # -- clients -------------------------------------------------------------------------
    def api_key(self) -> str:
        """The key from the environment (a placeholder for servers that take none)."""
        return os.environ.get(self.key_env) or NO_KEY

    def client(self, model: str) -> ChatClient:
        """A chat client for ``model`` with this backend's retry policy and rate cap."""
        return ChatClient(model=model, api_key=self.api_key(), base_url=self.base_url, timeout=self.timeout,
                          policy=self.policy, rate_limit=self._rate, unavailable=EndpointUnavailable,
                          owner="the backend's")

    def _call(self, fn: Any, doing: str) -> Any:
        try:
            return fn()
        except HarnessError as e:
            raise EndpointUnavailable(f"backend 'openai' could not {doing}: {e}{self._key_hint(e)}") from None

    def _key_hint(self, e: Exception) -> str:
        text = str(e)
        if "HTTP 401" in text or "HTTP 403" in text:
            return "" if self.key_env in os.environ else f" (${self.key_env} is not set)"
        return ""

    def load(self, spec: ModelSpec) -> OpenAIModel:
        """Nothing to load: a handle that sends requests (the server was asked in ``identify``)."""
        return OpenAIModel(spec, self)


class OpenAIModel:
    """A served model behind the harness's Policy interface."""

    capabilities = OpenAIBackend.capabilities
    # why capability benchmarks that need token ids and their log-probabilities (perplexity)
    # are skipped: an endpoint gives neither, and no number is made up in their place. MMLU
    # scores a served model by next-token log-probabilities or a generated letter.
    scoring_unavailable = ("backend 'openai' gives no token-level log-probabilities of a text it tokenises "
                           "itself; score it with --backend hf or vllm on the same weights")

    def __init__(self, spec: ModelSpec, backend: OpenAIBackend) -> None:
        self.spec = spec
        self.backend = backend
        self.client = backend.client(spec.name)
        self.fingerprint = backend.served.get("system_fingerprint") or None
        self.no_text_logprobs: str | None = None

    def generate(self, prompts: Sequence[Prompt], params: GenParams, *, batch_size: int = 8,
                 on_batch: OnBatch | None = None) -> list[Completion]:
        """One chat request per prompt from ``concurrency`` threads (``batch_size`` does not
        apply: the server batches); each answer goes to ``on_batch`` as it arrives. The first
        request that cannot be completed stops the run with one line; saved answers stay."""
        results: list[Completion | None] = [None] * len(prompts)
        done = 0
        with ThreadPoolExecutor(max_workers=self.backend.concurrency, thread_name_prefix="openai") as pool:
            pending: dict[Future[Completion], int] = {
                pool.submit(self._one, p, params): i for i, p in enumerate(prompts)}
            try:
                while pending:
                    finished, _ = wait(pending, return_when=FIRST_COMPLETED)
                    # successes first: answers that arrived with a failure are still saved
                    for fut in sorted(finished, key=lambda f: f.exception() is not None):
                        comp = fut.result()  # the first failure stops here
                        i = pending.pop(fut)
                        results[i] = comp
                        done += 1
                        if on_batch is not None:
                            on_batch([i], [comp])
            except HarnessError as e:
                for fut in pending:
                    fut.cancel()
                raise EndpointUnavailable(f"{e}; {done} of {len(prompts)} answers asked for here were saved: "
                                          "re-run the same command to resume") from None
            except BaseException:
                for fut in pending:
                    fut.cancel()
                raise
        return [c for c in results if c is not None]

    def next_token_logprobs(self, contexts: Sequence[str], candidates: Sequence[str] = (),
                            top: int = TOP_LOGPROBS) -> list[dict[str, float]] | None:
        """Per raw-text context, the ``top`` likeliest next tokens with their log-probabilities
        (the completions endpoint; vLLM and llama.cpp give them). None, and the reason in
        ``no_text_logprobs``, when this endpoint has none: the caller then uses another
        protocol and records which, never a number from nothing.

        Next-token log-probabilities rather than the prompt's echoed ones: those are what every
        such server computes the same way (llama-cpp-python's echoed prompt log-probabilities
        are shifted by one token for models without a BOS token, SmolLM2 among them). Where
        llama.cpp stops at once (the end of text likeliest) it reports nothing; that context is
        asked again with ``candidates`` forced as the generated token, which leaves the
        reported log-probabilities as they were. An empty dict means nothing is known."""
        if self.no_text_logprobs is not None:
            return None

        def one(context: str) -> dict[str, float] | None:
            got = self.client.next_token_logprobs(context, top)
            if got == {} and candidates:
                try:
                    got = self.client.next_token_logprobs(context, top, force=candidates)
                except EndpointUnavailable as e:  # a server without token-string biases
                    if not _NO_ENDPOINT.search(str(e)):
                        raise
            return got

        try:
            with ThreadPoolExecutor(max_workers=self.backend.concurrency, thread_name_prefix="openai") as pool:
                out = list(pool.map(one, contexts))
        except EndpointUnavailable as e:
            if not _NO_ENDPOINT.search(str(e)):
                raise
            self.no_text_logprobs = f"the completions endpoint refused a log-probability request ({e})"
            return None
        if all(d is None for d in out):
            self.no_text_logprobs = "the completions endpoint returned no top log-probabilities"
            return None
        return [d or {} for d in out]

    def _one(self, prompt: Prompt, params: GenParams) -> Completion:
        reply = self.client.chat(prompt.to_json(), max_tokens=params.max_new_tokens,
                                 temperature=params.temperature, top_p=params.top_p, seed=params.seed)
        self._check_fingerprint(reply)
        return completion_of(reply)

    def _check_fingerprint(self, reply: ChatReply) -> None:
        """A server whose fingerprint changes mid-run now serves something else: answers of
        two models must not be scored (or cached) as one."""
        got = reply.system_fingerprint
        if got and self.fingerprint and got != self.fingerprint:
            raise EndpointUnavailable(f"the server's system_fingerprint changed during the run ({self.fingerprint} "
                                      f"-> {got}): it now serves another build of {self.spec.name!r}")


def completion_of(reply: ChatReply) -> Completion:
    """A Completion from one chat reply (token counts as the server reported them)."""
    return Completion(
        text=reply.text,
        n_prompt_tokens=reply.prompt_tokens or 0,
        n_new_tokens=reply.completion_tokens or 0,
        finish_reason="length" if reply.finish_reason == "length" else "stop",
    )
