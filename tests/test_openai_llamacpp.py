"""``--backend openai`` end to end against a real llama.cpp server serving the embedded model.

Each test drives the real CLI in a subprocess against ``llama_cpp.server`` on loopback (the
SmolLM2 GGUF the harness ships with, under the alias ``smollm2``, with an API key): a run and
its leaderboard row, a re-run from the cache, a SIGKILL and resume, a server that dies
mid-run, a wrong key and a model name the server does not serve. Faults a real server cannot
be made to produce (429, 500, a changed fingerprint) are in ``test_openai_backend.py``.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

import _llamacpp
from _runfixtures import line_count

if not _llamacpp.available():
    pytest.skip(_llamacpp.MISSING, allow_module_level=True)

ROOT = Path(__file__).resolve().parents[1]
KEY = "llama-test-key-9f8e7d"


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[_llamacpp.LlamaServer]:
    with _llamacpp.serving(tmp_path_factory.mktemp("llama") / "server.log", api_key=KEY) as s:
        yield s


def harness(url: str, out: Path, *extra: str, key: str = KEY, limit: int = 3, wait: bool = True,
            ) -> subprocess.CompletedProcess[str] | subprocess.Popen[str]:
    cmd = [sys.executable, "-m", "orbench_harness.cli", "run", "--backend", "openai", "--base-url", url,
           "--model", "smollm2", "--method", "none", "--benchmark", "demo", "--limit", str(limit),
           "--judge", "strmatch", "--max-new-tokens", "24", "--out", str(out), *extra]
    env = {**os.environ, "OPENAI_API_KEY": key}
    if wait:
        return subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=ROOT, timeout=600)
    return subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env, cwd=ROOT)


def records(out: Path) -> list[dict]:
    return [json.loads(line) for line in (out / "samples.jsonl").read_text().splitlines()]


def wait_for_lines(path: Path, n: int, proc: subprocess.Popen[str], timeout: float = 300) -> None:
    deadline = time.monotonic() + timeout
    while line_count(path) < n:
        assert proc.poll() is None, proc.communicate()[1]
        assert time.monotonic() < deadline, f"no {n} records in {timeout}s"
        time.sleep(0.05)


def test_a_run_gives_a_leaderboard_row_and_a_rerun_is_free(server: _llamacpp.LlamaServer, tmp_path: Path) -> None:
    out = tmp_path / "run"
    first = harness(server.url, out)
    assert first.returncode == 0, first.stderr
    results = json.loads((out / "results.json").read_text())
    assert results["model"] == "smollm2" and results["benchmarks"]["demo-benign"]["n"] == 3
    assert any(r["completion"].strip() for r in records(out))
    assert all(0 < r["n_new_tokens"] <= 24 for r in records(out))  # the server's counts, capped by max_tokens
    meta = json.loads((out / "run.json").read_text())
    assert meta["device"]["served_model"] == "smollm2" and meta["device"]["endpoint"] == f"127.0.0.1:{server.port}"
    report = subprocess.run([sys.executable, "-m", "orbench_harness.cli", "report", str(out), "--format", "md"],
                            capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert report.returncode == 0 and "smollm2" in report.stdout
    assert KEY not in first.stderr + first.stdout
    assert not [f for f in out.rglob("*") if f.is_file() and KEY.encode() in f.read_bytes()]

    again = harness(server.url, tmp_path / "again")  # another directory, same cache: no generation
    assert again.returncode == 0, again.stderr
    assert f"{3 * 3} generations from cache" in again.stderr
    def answers(d: Path) -> dict[tuple[str, str], str]:
        return {(r["benchmark"], r["id"]): r["completion"] for r in records(d)}

    assert answers(tmp_path / "again") == answers(out)


def test_sigkill_then_resume_repeats_no_finished_request(server: _llamacpp.LlamaServer, tmp_path: Path) -> None:
    out = tmp_path / "run"
    proc = harness(server.url, out, "--concurrency", "1", limit=6, wait=False)
    assert isinstance(proc, subprocess.Popen)
    wait_for_lines(out / "samples.jsonl", 3, proc)
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)
    before = records(out)
    assert 3 <= len(before) < 18
    done = harness(server.url, out, "--concurrency", "1", limit=6)
    assert done.returncode == 0, done.stderr
    assert "resuming" in done.stderr
    after = records(out)
    assert after[: len(before)] == before  # kept as they were
    assert len(after) == 18 and len({(r["benchmark"], r["id"]) for r in after}) == 18  # nothing asked twice


def test_a_server_that_dies_mid_run_stops_it_in_one_line_and_it_resumes(tmp_path: Path) -> None:
    port = _llamacpp.free_port()
    server = _llamacpp.start(tmp_path / "server.log", port=port, api_key=KEY)
    out = tmp_path / "run"
    try:
        proc = harness(server.url, out, "--concurrency", "1", limit=6, wait=False)
        assert isinstance(proc, subprocess.Popen)
        wait_for_lines(out / "samples.jsonl", 2, proc)
        server.kill()
        _, stderr = proc.communicate(timeout=300)
    finally:
        server.kill()
    assert proc.returncode == 2, stderr
    last = stderr.strip().splitlines()[-1]
    assert last.startswith("error: ") and "re-run the same command to resume" in last
    assert 2 <= line_count(out / "samples.jsonl") < 18
    with _llamacpp.serving(tmp_path / "server2.log", port=port, api_key=KEY) as again:
        done = harness(again.url, out, "--concurrency", "1", limit=6)
    assert done.returncode == 0, done.stderr
    assert len(records(out)) == 18


def test_a_wrong_key_is_refused_before_any_generation(server: _llamacpp.LlamaServer, tmp_path: Path) -> None:
    wrong = "sk-wrong-0000-value"
    res = harness(server.url, tmp_path / "run", key=wrong)
    assert res.returncode == 2
    assert "HTTP 401" in res.stderr and wrong not in res.stderr
    assert not (tmp_path / "run" / "samples.jsonl").exists()


def test_a_model_the_server_does_not_serve_is_named(server: _llamacpp.LlamaServer, tmp_path: Path) -> None:
    res = harness(server.url, tmp_path / "run", "--model", "gpt-4o")
    assert res.returncode == 2
    assert "does not serve a model called 'gpt-4o'" in res.stderr and "'smollm2'" in res.stderr


def test_mmlu_is_scored_from_the_servers_next_token_log_probabilities(server: _llamacpp.LlamaServer,
                                                                       tmp_path: Path, shared_datasets: Path) -> None:
    out = tmp_path / "run"
    res = harness(server.url, out, "--benchmark", "mmlu", "--data-dir", str(shared_datasets), limit=8)
    assert res.returncode == 0, res.stderr
    mmlu = json.loads((out / "results.json").read_text())["benchmarks"]["mmlu"]
    assert mmlu["protocol"] == "next-token-logprobs" and mmlu["n"] == 8
    # where the end of text was likeliest llama.cpp reports nothing until a letter is forced
    assert mmlu["no_letter"] == 0
    assert 0 <= mmlu["accuracy"] <= 100
