"""Progress away from a terminal: a run logged to a file shows where it is in every phase.

``harness run`` runs in a subprocess with stdout and stderr redirected to files (as under
nohup or Slurm), with a tiny real model, ACTOR training on the demo data, and the ``llm``
judge talking to a deliberately slow OpenAI-compatible server on loopback, so each phase
(method training, generation, judging) lasts longer than the progress interval, which the
test sets to a fraction of a second. The CI's ``ORBENCH_NO_PROGRESS=1`` stays set: it turns
off the live bars, not these log lines.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from orbench_harness.console import progress_line

pytest.importorskip("openai")

KEY_ENV = "ORBENCH_TEST_PROGRESS_JUDGE_KEY"
LINE = re.compile(r"^progress: (?P<phase>.+?): (?P<done>\d+)(?:/(?P<total>\d+))?", re.M)


class SlowJudge(BaseHTTPRequestHandler):
    """An OpenAI-compatible endpoint that takes 0.1 s per verdict and always says compliance."""

    def log_message(self, format: str, *args: object) -> None:
        return

    def _send(self, body: dict[str, object]) -> None:
        data = json.dumps(body).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self) -> None:
        self._send({"object": "list", "data": [{"id": "judge", "object": "model", "created": 0, "owned_by": "t"}]})

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("Content-Length", "0")))
        time.sleep(0.1)
        self._send({"id": "x", "object": "chat.completion", "created": 0, "model": "judge",
                    "choices": [{"index": 0, "finish_reason": "stop",
                                 "message": {"role": "assistant", "content": "1_full_compliance"}}]})


@pytest.fixture
def slow_judge() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), SlowJudge)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/v1"
    finally:
        server.shutdown()
        server.server_close()


def _run_logged(args: list[str], tmp_path: Path, **env_extra: str) -> tuple[int, str, str]:
    """``harness ARGS`` with stdout and stderr going to files, as a batch job's would."""
    env = {**os.environ, "ORBENCH_PROGRESS_INTERVAL": "0.05", KEY_ENV: "k", "OMP_NUM_THREADS": "1", **env_extra}
    out_file, err_file = tmp_path / "job.out", tmp_path / "job.err"
    with out_file.open("w") as out, err_file.open("w") as err:
        code = subprocess.run([sys.executable, "-m", "orbench_harness.cli", *args], stdout=out, stderr=err,
                              env=env, timeout=600).returncode
    return code, out_file.read_text(), err_file.read_text()


def test_every_long_phase_logs_plain_progress_lines_when_output_is_a_file(
        tiny_model_dir: Path, tmp_path: Path, slow_judge: str) -> None:
    limit = 6
    code, out, err = _run_logged(
        ["run", "--model", str(tiny_model_dir), "--method", "actor", "--method-arg", "epochs=3",
         "--method-arg", "layer=1", "--method-arg", "batch_size=2", "--benchmark", "demo-benign",
         "--limit", str(limit), "--batch-size", "1", "--max-new-tokens", "24",
         "--judge", "llm", "--judge-arg", f"base_url={slow_judge}", "--judge-arg", f"api_key_env={KEY_ENV}",
         "--judge-arg", "concurrency=1", "--judge-arg", "model=judge", "--judge-batch-size", "1",
         "--out", str(tmp_path / "run")], tmp_path)
    assert code == 0, err[-3000:]
    assert "\x1b[" not in err  # plain text: no escape codes, no live display in a log file
    lines = [(m.group("phase"), int(m.group("done")), m.group("total")) for m in LINE.finditer(err)]
    phases = [p for p, _, _ in lines]
    training = [i for i, p in enumerate(phases) if p.startswith("actor: training")]
    generating = [i for i, p in enumerate(phases) if p == "generating"]
    judging = [i for i, p in enumerate(phases) if p == "judging (llm)"]
    assert training and generating and judging, err[-3000:]
    # in the order the phases run, each line while its phase runs
    assert max(training) < min(generating) and max(generating) < min(judging), phases
    for group in (generating, judging):
        counts = [lines[i][1] for i in group]
        assert counts == sorted(counts) and counts[-1] == limit
        assert {lines[i][2] for i in group} == {str(limit)}
    gen_lines = [ln for ln in err.splitlines() if ln.startswith("progress: generating:")]
    assert any("/s" in ln and "ETA" in ln for ln in gen_lines), gen_lines
    assert gen_lines[-1].count(f"{limit}/{limit}") == 1 and "done in" in gen_lines[-1]
    assert "progress:" not in out  # progress goes to stderr; stdout keeps only the results
    assert str(tmp_path / "run" / "results.json") in out


def test_quiet_after_the_subcommand_silences_progress_and_info(tiny_model_dir: Path, tmp_path: Path) -> None:
    code, out, err = _run_logged(
        ["run", "--model", str(tiny_model_dir), "--benchmark", "demo-benign", "--limit", "2",
         "--batch-size", "1", "--max-new-tokens", "8", "--judge", "strmatch", "--out", str(tmp_path / "run"),
         "--quiet"], tmp_path, ORBENCH_PROGRESS_INTERVAL="0.01")
    assert code == 0, err[-3000:]
    assert "progress:" not in err and "loading" not in err, err
    assert "results.json" in out

    code, _, loud = _run_logged(
        ["run", "--model", str(tiny_model_dir), "--benchmark", "demo-benign", "--limit", "2",
         "--batch-size", "1", "--max-new-tokens", "8", "--judge", "strmatch", "--out", str(tmp_path / "run2"),
         "--seed", "1"], tmp_path, ORBENCH_PROGRESS_INTERVAL="0.01")
    assert code == 0 and "progress: generating:" in loud and "loading" in loud, loud


def test_progress_line_reports_rate_and_eta_from_the_work_done_since_the_start() -> None:
    line = progress_line("judging", done=30, total=90, seconds=20.0, start=10)
    assert "30/90 (33%)" in line and "1.00/s" in line and "ETA 1m00s" in line
    assert "done in" in progress_line("judging", done=90, total=90, seconds=80.0)
    assert "ETA" not in progress_line("scoring", done=5, total=None, seconds=1.0)
