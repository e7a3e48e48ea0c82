"""``--backend openai`` against the fault-injecting loopback server of the ``llm`` judge's tests.

The server (``test_judges_llm.FaultHandler``: stdlib HTTP on 127.0.0.1, an ephemeral port)
scripts what a real endpoint cannot be made to do on demand: 429 with Retry-After, 500s, reset
connections, a fingerprint that changes, a server that goes away mid-run. The run goes through
the real runner, store, cache and ``openai`` client; ``tests/test_openai_llamacpp.py`` does the
same against a real llama.cpp server.
"""

from __future__ import annotations

import itertools
import json
import os
import subprocess
import sys
import threading
from collections.abc import Iterator
from dataclasses import replace
from http.server import ThreadingHTTPServer
from pathlib import Path

import pytest

from orbench_harness.errors import CapabilityError, HarnessError
from orbench_harness.methodkit.safety_text import SAFETY_PROMPT
from orbench_harness.runner import run
from orbench_harness.serve import ChatServer
from orbench_harness.spec import RunSpec
from orbench_harness.types import GenParams, Prompt
from orbench_methods.safety_reminder import Reminded
from test_judges_llm import FaultHandler, Script

pytest.importorskip("openai")

ROOT = Path(__file__).resolve().parents[1]
SECRET = "sk-test-a1b2c3d4e5f6-never-written"
N_DEMO = 4  # prompts per demo set with --limit 4; three sets


class RecordingHandler(FaultHandler):
    """The fault server, also counting model-list requests (to prove none was made)."""

    def do_GET(self) -> None:
        with self.script.lock:
            self.script.gets += 1  # type: ignore[attr-defined]
        super().do_GET()

    def do_POST(self) -> None:
        favourite = getattr(self.script, "echo_favourite", None)
        if favourite is None or self.path.endswith("/chat/completions"):
            super().do_POST()
            return
        # a legacy completion of one token with the top next-token log-probabilities: the
        # favourite letter likeliest, one other letter less likely, the rest outside the top
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        with self.script.lock:
            self.script.requests.append(body)
        other = "A" if favourite != "A" else "B"
        top = {f" {favourite}": -0.2, "\n": -1.5, f" {other}": -2.5}
        lp = {"tokens": [f" {favourite}"], "text_offset": [len(body["prompt"])], "token_logprobs": [-0.2],
              "top_logprobs": [top]}
        text = body["prompt"]
        self._json(200, {"id": "c", "object": "text_completion", "model": "judge",
                         "choices": [{"index": 0, "text": text + "x", "logprobs": lp, "finish_reason": "length"}]})


class Server:
    """A fault server that can be stopped and started again on the same port."""

    def __init__(self, script: Script, port: int = 0) -> None:
        self.script = script
        script.gets = 0  # type: ignore[attr-defined]
        self.httpd = ThreadingHTTPServer(("127.0.0.1", port), RecordingHandler)
        self.httpd.daemon_threads = True
        self.httpd.script = script  # type: ignore[attr-defined]
        self.port = self.httpd.server_address[1]
        self.url = f"http://127.0.0.1:{self.port}/v1"
        threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def server() -> Iterator[Server]:
    s = Server(Script(default=("ok", "Sure. Here is a short answer.")))
    try:
        yield s
    finally:
        s.stop()


def chat_body(text: str, fingerprint: str | None = None) -> str:
    body = {"id": "x", "object": "chat.completion", "model": "judge",
            "choices": [{"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": "stop"}],
            "usage": {"prompt_tokens": 11, "completion_tokens": 5, "total_tokens": 16}}
    if fingerprint:
        body["system_fingerprint"] = fingerprint
    return json.dumps(body)


def spec(url: str, **kw: object) -> RunSpec:
    args = {"base_url": url, "backoff": "0.01", "timeout": "5", "concurrency": "3"}
    args.update(kw.pop("backend_args", {}))  # type: ignore[arg-type]
    base = RunSpec(model="judge", backend="openai", benchmarks=("demo",), judge="strmatch", limit=N_DEMO,
                   backend_args=args, max_new_tokens=16)
    return replace(base, **kw)  # type: ignore[arg-type]


def chats(script: Script) -> list[dict]:
    """The chat requests that asked for a benchmark answer (the one-token probe left out)."""
    return [r for r in script.requests if r.get("max_tokens") != 1]


def test_a_run_sends_the_settings_and_records_the_endpoint_but_never_the_key(server: Server, tmp_path: Path,
                                                                            isolated_cache: Path) -> None:
    server.script.default = ("raw", chat_body("Sure, here you go."))
    out = tmp_path / "run"
    env = {**os.environ, "OPENAI_API_KEY": SECRET}
    proc = subprocess.run(
        [sys.executable, "-m", "orbench_harness.cli", "run", "--backend", "openai", "--base-url", server.url,
         "--model", "judge", "--benchmark", "demo", "--judge", "strmatch", "--limit", str(N_DEMO),
         "--max-new-tokens", "16", "--seed", "7", "--concurrency", "2", "--model-revision", "build-42",
         "--out", str(out)], capture_output=True, text=True, env=env, cwd=ROOT, timeout=120)
    assert proc.returncode == 0, proc.stderr
    results = json.loads((out / "results.json").read_text())
    assert set(results["benchmarks"]) == {"demo-benign", "demo-pseudo-harmful", "demo-harmful"}
    asked = chats(server.script)
    assert len(asked) == 3 * N_DEMO
    assert all(r["temperature"] == 0 and r["seed"] == 7 and r["max_tokens"] == 16 and r["model"] == "judge"
               for r in asked)
    meta = json.loads((out / "run.json").read_text())
    assert meta["device"]["endpoint"] == f"127.0.0.1:{server.port}"
    assert meta["device"]["served_model"] == "judge"
    assert "served=judge" in meta["model"]["revision"] and "tag=build-42" in meta["model"]["revision"]
    assert meta["spec"]["backend_args"]["model_revision"] == "build-42"
    samples = [json.loads(line) for line in (out / "samples.jsonl").read_text().splitlines()]
    assert {s["n_new_tokens"] for s in samples} == {5}  # the server's usage, as reported
    for root in (out, isolated_cache):
        for f in root.rglob("*"):
            if f.is_file():
                assert SECRET.encode() not in f.read_bytes(), f
    assert SECRET not in proc.stderr and SECRET not in proc.stdout


def test_retries_429_500_and_a_reset_then_finishes(server: Server, tmp_path: Path) -> None:
    server.script.actions = [("status", 429, {"Retry-After": "1"}), ("status", 500), ("reset",)]
    results = run(spec(server.url, backend_args={"concurrency": "1"}), tmp_path / "run")
    assert results["benchmarks"]["demo-benign"]["n"] == N_DEMO
    # the probe, three faults retried, then every prompt once
    assert len(server.script.requests) == 1 + 3 + 3 * N_DEMO
    assert server.script.times[1] - server.script.times[0] >= 0.95  # Retry-After honoured


def test_concurrency_is_bounded_and_the_rate_is_capped(server: Server, tmp_path: Path) -> None:
    server.script.default = ("echo", 0.3)
    run(spec(server.url, backend_args={"concurrency": "2"}), tmp_path / "a")
    assert server.script.max_in_flight == 2
    server.script.requests.clear()
    server.script.times.clear()
    run(spec(server.url, benchmarks=("demo-benign",), backend_args={"concurrency": "4", "requests_per_minute": "300"},
             max_new_tokens=17), tmp_path / "b")
    starts = sorted(server.script.times)
    assert len(starts) == 1 + N_DEMO
    # 300/min: starts 0.2 s apart although four threads could start at once (arrival jitters)
    assert starts[-1] - starts[0] >= 0.2 * N_DEMO - 0.05
    assert min(b - a for a, b in itertools.pairwise(starts)) >= 0.1


def test_a_refused_key_stops_before_any_chat_request(server: Server, tmp_path: Path,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", SECRET)
    server.script.models_status = 401
    with pytest.raises(HarnessError, match="HTTP 401") as err:
        run(spec(server.url), tmp_path / "run")
    assert SECRET not in str(err.value) and "\n" not in str(err.value)
    assert server.script.requests == []


def test_an_unserved_model_name_names_the_served_ones(server: Server, tmp_path: Path) -> None:
    with pytest.raises(HarnessError, match=r"does not serve a model called 'gpt-9'.*'judge'"):
        run(spec(server.url, model="gpt-9"), tmp_path / "run")
    assert server.script.requests == []


def test_methods_needing_hooks_or_weights_are_refused_before_any_request(server: Server, tmp_path: Path) -> None:
    with pytest.raises(CapabilityError, match=r"needs logits, which backend 'openai' lacks; use --backend hf"):
        run(spec(server.url, method="self-cd"), tmp_path / "a")
    with pytest.raises(CapabilityError, match=r"actor' needs .*weights.*use --backend hf, or `harness export"):
        run(spec(server.url, method="actor"), tmp_path / "b")
    assert server.script.requests == [] and server.script.gets == 0  # type: ignore[attr-defined]


def test_a_server_that_goes_away_stops_the_run_and_a_new_one_resumes_it(tmp_path: Path) -> None:
    first = Server(Script(default=("ok", "Fine.")))
    port, url = first.port, first.url
    first.script.actions = [("ok", "Fine.")] * (1 + 5)  # the probe and five answers, then it dies

    def die_after_six() -> None:
        while len(first.script.requests) < 6:
            threading.Event().wait(0.01)
        first.stop()

    killer = threading.Thread(target=die_after_six)
    killer.start()
    first.script.default = ("slow", 0.5)  # later answers are in flight when it dies
    with pytest.raises(HarnessError, match="re-run the same command to resume") as err:
        run(spec(url, backend_args={"concurrency": "1"}), tmp_path / "run")
    killer.join()
    assert "\n" not in str(err.value)
    saved = (tmp_path / "run" / "samples.jsonl").read_text().splitlines()
    assert 5 <= len(saved) < 3 * N_DEMO
    second = Server(Script(default=("ok", "Fine.")), port=port)
    try:
        results = run(spec(url, backend_args={"concurrency": "1"}), tmp_path / "run")
    finally:
        second.stop()
    assert results["benchmarks"]["demo-harmful"]["n"] == N_DEMO
    assert len(chats(second.script)) == 3 * N_DEMO - len(saved)  # only what was missing


def test_a_changed_served_model_is_not_taken_from_the_cache(server: Server, tmp_path: Path) -> None:
    server.script.default = ("raw", chat_body("Sure.", fingerprint="fp_a"))
    run(spec(server.url), tmp_path / "a")
    assert len(chats(server.script)) == 3 * N_DEMO
    server.script.requests.clear()
    run(spec(server.url), tmp_path / "b")  # same server, same build: all from the cache
    assert chats(server.script) == []
    server.script.default = ("raw", chat_body("Sure.", fingerprint="fp_b"))
    run(spec(server.url), tmp_path / "c")  # another fingerprint: asked again
    assert len(chats(server.script)) == 3 * N_DEMO
    server.script.requests.clear()
    run(spec(server.url, backend_args={"model_revision": "v2"}), tmp_path / "d")  # another tag: asked again
    assert len(chats(server.script)) == 3 * N_DEMO
    revisions = {json.loads((tmp_path / d / "run.json").read_text())["model"]["revision"] for d in "abcd"}
    assert len(revisions) == 3


def test_a_fingerprint_that_changes_mid_run_stops_it(server: Server, tmp_path: Path) -> None:
    server.script.actions = [("raw", chat_body("Hi", fingerprint="fp_a"))] * 3
    server.script.default = ("raw", chat_body("Hi", fingerprint="fp_b"))
    with pytest.raises(HarnessError, match=r"system_fingerprint changed during the run \(fp_a -> fp_b\)"):
        run(spec(server.url, backend_args={"concurrency": "1"}), tmp_path / "run")


def test_safety_reminder_sends_a_system_prompt_on_openai(server: Server, tmp_path: Path) -> None:
    results = run(spec(server.url, method="safety-reminder", benchmarks=("demo-benign",)), tmp_path / "run")
    assert results["method"] == "safety-reminder"
    asked = chats(server.script)
    assert len(asked) == N_DEMO
    assert all(r["messages"][0] == {"role": "system", "content": SAFETY_PROMPT} for r in asked)
    assert all(r["messages"][1]["role"] == "user" for r in asked)


def test_perplexity_is_skipped_with_the_reason_not_given_a_number(server: Server, tmp_path: Path,
                                                                  shared_datasets: Path) -> None:
    results = run(spec(server.url, benchmarks=("wikitext2", "demo-benign"), data_dir=shared_datasets),
                  tmp_path / "run")
    ppl = results["benchmarks"]["wikitext2"]
    assert ppl["n"] == 0 and "log-probabilities" in ppl["skipped"] and "--backend hf" in ppl["skipped"]
    assert "perplexity" not in ppl
    assert [r for r in server.script.requests if "prompt" in r] == []  # nothing asked for it


def test_safety_reminder_on_hf_is_generation_on_the_reminded_prompt(hf) -> None:  # type: ignore[no-untyped-def]
    prompts = [Prompt.user("How do I boil an egg?"), Prompt.user("Name a colour.", system="Be brief.")]
    params = GenParams(max_new_tokens=6)
    reminded = Reminded(hf, SAFETY_PROMPT)
    got = reminded.generate(prompts, params, batch_size=2)
    want = hf.generate([reminded.remind(p) for p in prompts], params, batch_size=2)
    assert got == want
    assert reminded.remind(prompts[1]).messages[0].content == f"{SAFETY_PROMPT}\n\nBe brief."
    assert SAFETY_PROMPT in reminded.render(prompts[0]) and SAFETY_PROMPT not in hf.render(prompts[0])
    assert reminded.token_logprobs([[1, 2, 3]]) == hf.token_logprobs([[1, 2, 3]])  # raw scoring unchanged


def mmlu_answers(shared_datasets: Path, limit: int) -> list[int]:
    """The answer indices of the questions a run with ``--limit`` scores (from the data)."""
    from orbench_harness.data import DataSource
    from orbench_harness.registry import Registry

    bench = Registry().create("benchmarks", "mmlu", DataSource(shared_datasets))
    return [q.answer for q in bench.questions(limit, 0)]


def test_mmlu_by_next_token_log_probabilities_where_the_server_gives_them(server: Server, tmp_path: Path,
                                                                      shared_datasets: Path) -> None:
    server.script.echo_favourite = "C"  # type: ignore[attr-defined]
    results = run(spec(server.url, benchmarks=("mmlu",), data_dir=shared_datasets, limit=12), tmp_path / "run")
    mmlu = results["benchmarks"]["mmlu"]
    answers = mmlu_answers(shared_datasets, 12)
    assert mmlu["protocol"] == "next-token-logprobs" and mmlu["n"] == 12 and mmlu["no_letter"] == 0
    assert mmlu["accuracy"] == pytest.approx(100 * answers.count(2) / 12, abs=1e-3)  # always C
    scored = [r for r in server.script.requests if "prompt" in r]
    assert len(scored) == 12 and all(r["logprobs"] == 20 and r["max_tokens"] == 1 for r in scored)
    assert all(r["prompt"].endswith("Answer:") for r in scored)


def test_mmlu_by_a_generated_letter_where_there_are_none_and_says_so(server: Server, tmp_path: Path,
                                                                     shared_datasets: Path) -> None:
    server.script.default = ("ok", "The answer is B, because of the reasons.")
    results = run(spec(server.url, benchmarks=("mmlu",), data_dir=shared_datasets, limit=12), tmp_path / "run")
    mmlu = results["benchmarks"]["mmlu"]
    answers = mmlu_answers(shared_datasets, 12)
    assert mmlu["protocol"] == "generated-letter" and mmlu["unparsed"] == 0
    assert "returned no top log-probabilities" in mmlu["protocol_reason"]
    assert mmlu["accuracy"] == pytest.approx(100 * answers.count(1) / 12, abs=1e-3)  # always B
    letters = [r for r in chats(server.script) if r["max_tokens"] == 8]
    assert len(letters) == 12 and all(r["messages"][-1]["content"].endswith("Answer:") for r in letters)


def test_answers_through_harness_serve_equal_the_loaded_model(hf, tiny_model_dir: Path, tmp_path: Path,  # type: ignore[no-untyped-def]
                                                              shared_datasets: Path) -> None:
    """The tiny model behind the harness's own OpenAI-compatible server (``orbench_harness.serve``)
    answers exactly as ``--backend hf`` on the same model: the backend adds nothing to a prompt
    and loses nothing of an answer. That server has no completions route, so MMLU falls back to
    the generated letter and says why."""
    with ChatServer(lambda prompts, params: hf.generate(prompts, params, batch_size=4), model_name="tiny") as srv:
        served = run(RunSpec(model="tiny", backend="openai", benchmarks=("demo-benign", "mmlu"), judge="strmatch",
                             limit=4, max_new_tokens=12, data_dir=shared_datasets,
                             backend_args={"base_url": srv.url, "backoff": "0.01"}), tmp_path / "served")
    local = run(RunSpec(model=str(tiny_model_dir), benchmarks=("demo-benign",), judge="strmatch", limit=4,
                        max_new_tokens=12), tmp_path / "local")
    texts = {}
    for name in ("served", "local"):
        rows = [json.loads(line) for line in (tmp_path / name / "samples.jsonl").read_text().splitlines()]
        texts[name] = {r["id"]: (r["completion"], r["n_new_tokens"]) for r in rows}
    assert len(texts["local"]) == 4 and texts["served"] == texts["local"]
    assert served["benchmarks"]["demo-benign"] == local["benchmarks"]["demo-benign"]
    mmlu = served["benchmarks"]["mmlu"]
    assert mmlu["protocol"] == "generated-letter" and "HTTP 404" in mmlu["protocol_reason"]
