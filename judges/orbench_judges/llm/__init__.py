"""``llm``: a three-class refusal judge on any OpenAI-compatible chat endpoint.

OpenAI itself (the ACTOR paper judges with GPT-4o; docs/methods.md, LLM judges), or a local
server: vLLM's, llama.cpp's, or ``harness serve``. The prompt sets and their parsers are in
``judges/_prompts.py``; retries and fault handling in ``judges/_http.py``.

Arguments (``--judge-arg KEY=VALUE``): ``model`` (default gpt-4o), ``base_url`` (default: the
client's, i.e. ``$OPENAI_BASE_URL`` or OpenAI), ``api_key_env`` (default OPENAI_API_KEY; for a
local server set it to any value), ``prompt_set`` (``xstest`` default, or ``orbench``),
``concurrency`` (parallel requests, default 8), ``max_retries`` (default 6), ``timeout``
(seconds per request, default 60), ``backoff`` (first retry delay in seconds, default 1),
``max_wait`` (seconds one request may take in all, retries and waits included, default 180:
an endpoint that accepts connections and never answers fails the run after that long, and
every retry is announced on stderr with its reason),
``max_tokens`` (default: the prompt set's), ``max_response_chars`` (responses are cut to this
many characters before judging, default 16000, so one runaway generation cannot fail a batch
on the judge's context limit).

The judge is also MT-Bench's grader (``grade``, the ``Grader`` protocol of
``benchmarks/_mt_bench_prompts.py``): single-answer 1-10 grading with FastChat's rules in the
project's words; the last ``[[N]]`` is the rating, and an answer without one is ``None``
(reported as unparsed by the benchmark, never guessed).

``version`` is ``<model>:<prompt set>-<hash of prompt texts and limits>``: editing a prompt or
switching the judge model invalidates cached verdicts, changing concurrency does not.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

from orbench_harness.catalog import Register
from orbench_harness.chat_client import ChatClient, RetryPolicy
from orbench_harness.errors import HarnessError, JudgeUnavailable
from orbench_harness.grading import Turn, grading_messages, parse_rating
from orbench_harness.hookspecs import hookimpl
from orbench_harness.types import JudgeItem, Verdict
from orbench_judges.llm.rubrics import PROMPT_SETS, PromptSet

GRADE_MAX_TOKENS = 1024  # FastChat lets the grader explain before the rating; 2048 there for GPT-4
TRUNCATION_MARK = "\n[... response truncated for judging ...]"


@dataclass(frozen=True, slots=True)
class LLMJudgeConfig:
    """Everything the factory accepts, validated."""

    model: str = "gpt-4o"
    base_url: str | None = None
    api_key_env: str = "OPENAI_API_KEY"
    prompt_set: str = "xstest"
    concurrency: int = 8
    max_retries: int = 6
    timeout: float = 60.0
    backoff: float = 1.0
    max_wait: float = 180.0
    max_tokens: int | None = None
    max_response_chars: int = 16000

    @classmethod
    def from_args(cls, args: Mapping[str, str]) -> LLMJudgeConfig:
        """Parse string arguments; unknown keys and bad values are one-line user errors."""
        fields = set(cls.__dataclass_fields__)
        unknown = sorted(set(args) - fields)
        if unknown:
            raise HarnessError(
                f"judge 'llm' has no argument {unknown[0]!r} (known: {', '.join(sorted(fields))})"
            )
        kw: dict[str, object] = {}
        for key, value in args.items():
            if key in ("concurrency", "max_retries", "max_tokens", "max_response_chars"):
                kw[key] = _number(key, value, int, minimum=0 if key == "max_retries" else 1)
            elif key in ("timeout", "backoff", "max_wait"):
                kw[key] = _number(key, value, float, minimum=0.0)
            else:
                kw[key] = value
        cfg = cls(**kw)  # type: ignore[arg-type]
        if cfg.prompt_set not in PROMPT_SETS:
            raise HarnessError(
                f"judge 'llm': prompt_set must be one of {', '.join(PROMPT_SETS)} "
                f"(got {cfg.prompt_set!r})"
            )
        return cfg


def _number(key: str, value: str, kind: type[int] | type[float], *, minimum: float) -> int | float:
    try:
        num = kind(value)
    except ValueError:
        raise HarnessError(f"judge 'llm': {key} must be a number (got {value!r})") from None
    if num < minimum:
        raise HarnessError(f"judge 'llm': {key} must be >= {minimum} (got {value!r})")
    return num


class LLMJudge:
    """Asks a chat model to classify each (question, response) pair; parses the last label."""

    name = "llm"

    def __init__(self, config: LLMJudgeConfig) -> None:
        self.config = config
        self.prompts: PromptSet = PROMPT_SETS[config.prompt_set]
        self.max_tokens = config.max_tokens or self.prompts.max_tokens
        extra = hashlib.sha256(
            f"{self.prompts.digest}:{self.max_tokens}:{config.max_response_chars}".encode()
        ).hexdigest()[:12]
        self.version = f"{config.model}:{self.prompts.name}-{extra}"
        self._client: ChatClient | None = None

    def _api_key(self) -> str:
        key = os.environ.get(self.config.api_key_env)
        if not key:
            raise JudgeUnavailable(
                f"judge 'llm' needs an API key in ${self.config.api_key_env} "
                "(for a local server any non-empty value works; pick another variable with "
                "--judge-arg api_key_env=NAME)"
            )
        return key

    @property
    def client(self) -> ChatClient:
        """The chat client, created on first use (that is when ``openai`` is imported)."""
        if self._client is None:
            self._client = ChatClient(
                model=self.config.model,
                api_key=self._api_key(),
                base_url=self.config.base_url,
                timeout=self.config.timeout,
                policy=RetryPolicy(
                    max_retries=self.config.max_retries, base_delay=self.config.backoff,
                    max_wait=self.config.max_wait,
                ),
            )
        return self._client

    def preflight(self) -> None:
        """Key present, endpoint reachable and the key accepted: one model listing, or one
        1-token chat where the server has no /models route."""
        self._api_key()
        client = self.client
        try:
            client.list_models()
        except JudgeUnavailable as e:
            if "HTTP 404" not in str(e) and "HTTP 405" not in str(e):
                raise
            client.complete([{"role": "user", "content": "ping"}], max_tokens=1)

    def messages(self, item: JudgeItem) -> list[dict[str, str]]:
        """The chat messages sent for one item."""
        response = item.response
        if len(response) > self.config.max_response_chars:
            response = response[: self.config.max_response_chars] + TRUNCATION_MARK
        return [
            {"role": "system", "content": self.prompts.system},
            {"role": "user", "content": self.prompts.render(item.prompt, response)},
        ]

    def _one(self, item: JudgeItem) -> Verdict:
        text = self.client.complete(self.messages(item), max_tokens=self.max_tokens)
        return Verdict(self.prompts.parse(text), raw=text)

    @property
    def grade_concurrency(self) -> int:
        """MT-Bench runs this many ``grade`` calls at once (the judge's own concurrency)."""
        return self.config.concurrency

    def grade(
        self,
        question: str,
        answer: str,
        reference: str | None = None,
        turn: int = 1,
        history: Sequence[Turn] = (),
    ) -> float | None:
        """MT-Bench single-answer grading: the 1-10 rating, or None when there is no single
        ``[[N]]`` in the output. Transport failures raise ``JudgeUnavailable`` (nothing cached)."""
        messages = grading_messages(question, answer, reference=reference, history=history)
        text = self.client.complete(messages, max_tokens=GRADE_MAX_TOKENS)
        return parse_rating(text)

    def judge(self, items: Sequence[JudgeItem]) -> list[Verdict]:
        """Verdicts in input order, ``concurrency`` requests at a time. If any request fails
        for good, pending ones are cancelled and JudgeUnavailable propagates (nothing is
        stored for the batch, so a re-run resumes cleanly)."""
        if not items:
            return []
        self.client  # noqa: B018  # create it once, outside the worker threads
        workers = min(self.config.concurrency, len(items))
        pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="llm-judge")
        try:
            futures = [pool.submit(self._one, it) for it in items]
            return [f.result() for f in futures]
        finally:
            pool.shutdown(wait=True, cancel_futures=True)


def create(args: Mapping[str, str]) -> LLMJudge:
    """Factory: validates arguments, imports nothing heavy."""
    return LLMJudge(LLMJudgeConfig.from_args(args))


@hookimpl
def orbench_register_judges(register: Register) -> None:
    """Register ``llm``."""
    register(
        "llm",
        create,
        summary="three-class LLM judge on any OpenAI-compatible endpoint (XSTest or OR-Bench rubric)",
        aliases=("gpt",),
    )
