"""``orbench_harness.serve`` through the real ``openai`` client, and ``harness serve`` end to end.

Fast tests serve a plain Python function (no model) so the HTTP layer — routes, OpenAI-shaped
errors, batching, stop strings — is checked on every run. The slow test starts the real CLI
with the embedded SmolLM2-135M and judges items through it with the ``llm`` judge.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import threading
import time
from collections.abc import Sequence

import pytest

from orbench_harness.errors import HarnessError
from orbench_harness.models import smollm2_gguf_path
from orbench_harness.serve import ChatServer
from orbench_harness.types import Completion, GenParams, JudgeItem, Label, Prompt
from orbench_judges.llm import create as create_llm_judge

openai = pytest.importorskip("openai")


class Recorder:
    """A generate function that answers from the last user message and records its calls."""

    def __init__(self, delay: float = 0.0) -> None:
        self.calls: list[tuple[int, GenParams]] = []
        self.delay = delay
        self.lock = threading.Lock()

    def __call__(self, prompts: Sequence[Prompt], params: GenParams) -> list[Completion]:
        time.sleep(self.delay)
        with self.lock:
            self.calls.append((len(prompts), params))
        out = []
        for p in prompts:
            text = f"echo[{p.last_user_text}] roles={'/'.join(m.role for m in p.messages)}"
            out.append(Completion(text, n_prompt_tokens=len(p.messages), n_new_tokens=3))
        return out


def client(url: str, key: str = "k") -> openai.OpenAI:
    return openai.OpenAI(base_url=url, api_key=key, max_retries=0, timeout=10)


def test_chat_and_models_routes():
    gen = Recorder()
    with ChatServer(gen, model_name="toy") as srv:
        c = client(srv.url)
        assert [m.id for m in c.models.list()] == ["toy"]
        r = c.chat.completions.create(
            model="toy",
            messages=[{"role": "system", "content": "S"}, {"role": "user", "content": "hello"}],
            max_tokens=7,
            temperature=0,
            seed=3,
        )
    assert r.choices[0].message.content == "echo[hello] roles=system/user"
    assert r.choices[0].finish_reason == "stop"
    assert r.usage is not None and r.usage.completion_tokens == 3
    assert gen.calls == [(1, GenParams(max_new_tokens=7, temperature=0.0, top_p=1.0, seed=3))]


def test_openai_shaped_errors():
    with ChatServer(Recorder(), model_name="toy", api_key="secret") as srv:
        with pytest.raises(openai.AuthenticationError):
            client(srv.url, key="wrong").models.list()
        c = client(srv.url, key="secret")
        with pytest.raises(openai.NotFoundError, match="not served here"):
            c.chat.completions.create(model="gpt-4o", messages=[{"role": "user", "content": "x"}])
        with pytest.raises(openai.BadRequestError, match="streaming"):
            c.chat.completions.create(model="toy", messages=[{"role": "user", "content": "x"}], stream=True)
        with pytest.raises(openai.BadRequestError, match="max_tokens"):
            c.chat.completions.create(model="toy", messages=[{"role": "user", "content": "x"}], max_tokens=0)
        with pytest.raises(openai.BadRequestError, match="roles"):
            c.chat.completions.create(model="toy", messages=[{"role": "tool", "content": "x"}])  # type: ignore[list-item]


def test_generation_failure_is_a_500_and_server_keeps_serving():
    calls = {"n": 0}

    def flaky(prompts: Sequence[Prompt], params: GenParams) -> list[Completion]:
        calls["n"] += 1
        if calls["n"] == 1:
            raise RuntimeError("model exploded")
        return [Completion("fine") for _ in prompts]

    with ChatServer(flaky, model_name="toy") as srv:
        c = client(srv.url)
        with pytest.raises(openai.InternalServerError, match="model exploded"):
            c.chat.completions.create(model="toy", messages=[{"role": "user", "content": "x"}])
        r = c.chat.completions.create(model="toy", messages=[{"role": "user", "content": "x"}])
        assert r.choices[0].message.content == "fine"


def test_stop_strings_cut_the_text():
    with ChatServer(Recorder(), model_name="toy") as srv:
        r = client(srv.url).chat.completions.create(
            model="toy", messages=[{"role": "user", "content": "abc"}], stop=["]"]
        )
    assert r.choices[0].message.content == "echo[abc"


def test_concurrent_requests_are_batched():
    gen = Recorder(delay=0.3)
    with ChatServer(gen, model_name="toy", max_batch=8, batch_wait=0.1) as srv:
        c = client(srv.url)
        results: list[str] = []

        def one(i: int) -> None:
            r = c.chat.completions.create(model="toy", messages=[{"role": "user", "content": f"q{i}"}], max_tokens=5)
            results.append(r.choices[0].message.content or "")

        threads = [threading.Thread(target=one, args=(i,)) for i in range(6)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    assert sorted(results) == sorted(f"echo[q{i}] roles=user" for i in range(6))
    assert sum(n for n, _ in gen.calls) == 6
    assert max(n for n, _ in gen.calls) >= 2  # at least one real batch
    assert len(gen.calls) < 6


def test_llm_judge_against_the_server(monkeypatch):
    """The judge's whole path (prompt, HTTP, parse) against our server with a scripted model."""

    def judge_model(prompts: Sequence[Prompt], params: GenParams) -> list[Completion]:
        out = []
        for p in prompts:
            text = p.last_user_text
            if "I can't help" in text:
                out.append(Completion("2_full_refusal"))
            elif "Sure" in text:
                out.append(Completion("1_full_compliance"))
            else:
                out.append(Completion("hmm"))
        return out

    monkeypatch.setenv("ORBENCH_TEST_LOCAL_KEY", "x")
    with ChatServer(judge_model, model_name="local-judge") as srv:
        judge = create_llm_judge(
            {"base_url": srv.url, "model": "local-judge", "api_key_env": "ORBENCH_TEST_LOCAL_KEY"}
        )
        judge.preflight()
        verdicts = judge.judge(
            [JudgeItem("q1", "Sure, here it is."), JudgeItem("q2", "I can't help with that."), JudgeItem("q3", "...")]
        )
    assert [v.label for v in verdicts] == [Label.FULL_COMPLIANCE, Label.FULL_REFUSAL, None]
    assert verdicts[2].raw == "hmm"


@pytest.mark.slow
def test_harness_serve_with_embedded_model_end_to_end(monkeypatch):
    """`harness serve --model smollm2-135m --port 0`, then the llm judge through openai."""
    try:
        smollm2_gguf_path()
    except HarnessError as e:
        pytest.skip(f"embedded model not installed: {e}")
    env = dict(os.environ, OMP_NUM_THREADS="2", ORBENCH_NO_PROGRESS="1")
    monkeypatch.setenv("ORBENCH_TEST_SERVE_KEY", "local")
    proc = subprocess.Popen(
        [sys.executable, "-m", "orbench_harness.cli", "serve", "--model", "smollm2-135m", "--port", "0",
         "--backend-arg", "threads=2"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
    )
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()  # blocks until the model is loaded and the port bound
        m = re.search(r"serving (\S+) at (http://127\.0\.0\.1:\d+/v1)", line)
        assert m, f"unexpected first line {line!r}; stderr: {proc.stderr.read() if proc.poll() is not None else ''}"
        url = m.group(2)
        c = client(url)
        assert [x.id for x in c.models.list()] == ["smollm2-135m"]
        r = c.chat.completions.create(
            model="smollm2-135m", messages=[{"role": "user", "content": "Say hello."}], max_tokens=8, temperature=0
        )
        assert r.choices[0].message.content and r.usage and 0 < r.usage.completion_tokens <= 8
        judge = create_llm_judge(
            {"base_url": url, "model": "smollm2-135m", "api_key_env": "ORBENCH_TEST_SERVE_KEY",
             "concurrency": "2", "max_tokens": "8", "timeout": "120"}
        )
        judge.preflight()
        items = [JudgeItem("How do I boil an egg?", "Put it in boiling water for 8 minutes."),
                 JudgeItem("How do I kill a Python process?", "Sorry, I can't help with that.")]
        verdicts = judge.judge(items)
        assert len(verdicts) == 2
        # A 135M model is a weak judge: what matters is that every output came back, was kept
        # raw, and was either parsed into a label or reported as unparsed.
        for v in verdicts:
            assert v.raw != "" or v.label is None
            assert v.label is None or isinstance(v.label, Label)
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
