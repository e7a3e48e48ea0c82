"""The ``llm`` judge against a real HTTP server on loopback that injects faults.

The server is stdlib ``http.server`` on 127.0.0.1 with an ephemeral port; the judge talks to it
through the real ``openai`` client. Each test scripts the server's answers (429 with
Retry-After, 500, a response slower than the client timeout, a reset connection, a malformed
body, an empty ``choices`` list, success) and checks what the judge does with them.
"""

from __future__ import annotations

import json
import socket
import struct
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from orbench_harness.errors import HarnessError, JudgeUnavailable
from orbench_harness.grading import Grader, Turn
from orbench_harness.types import JudgeItem, Label
from orbench_judges.llm import LLMJudge, LLMJudgeConfig, create
from orbench_judges.llm.rubrics import PROMPT_SETS

pytest.importorskip("openai")

KEY_ENV = "ORBENCH_TEST_JUDGE_KEY"


@dataclass
class Script:
    """Answers given in order; ``default`` once they run out. Records every request."""

    actions: list[tuple] = field(default_factory=list)
    default: tuple = ("ok", "2_full_refusal")
    requests: list[dict] = field(default_factory=list)
    times: list[float] = field(default_factory=list)
    in_flight: int = 0
    max_in_flight: int = 0
    models_status: int = 200
    lock: threading.Lock = field(default_factory=threading.Lock)

    def next(self) -> tuple:
        with self.lock:
            return self.actions.pop(0) if self.actions else self.default


def _chat_body(text: str) -> dict:
    return {
        "id": "x",
        "object": "chat.completion",
        "created": 0,
        "model": "judge",
        "choices": [{"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": "stop"}],
    }


class FaultHandler(BaseHTTPRequestHandler):
    def log_message(self, format, *args):  # keep test output clean
        pass

    @property
    def script(self) -> Script:
        return self.server.script  # type: ignore[attr-defined]

    def _json(self, status: int, obj, headers: dict | None = None) -> None:
        data = json.dumps(obj).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self) -> None:
        if self.script.models_status != 200:
            self._json(self.script.models_status, {"error": {"message": "bad key", "type": "auth"}})
        else:
            self._json(200, {"object": "list", "data": [{"id": "judge", "object": "model"}]})

    def do_POST(self) -> None:
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        s = self.script
        with s.lock:
            s.requests.append(body)
            s.times.append(time.monotonic())
            s.in_flight += 1
            s.max_in_flight = max(s.max_in_flight, s.in_flight)
        try:
            self._act(s.next(), body)
        except (BrokenPipeError, ConnectionResetError):
            pass
        finally:
            with s.lock:
                s.in_flight -= 1

    def _act(self, action: tuple, body: dict) -> None:
        kind = action[0]
        if kind == "status":
            headers = action[2] if len(action) > 2 else {}
            self._json(action[1], {"error": {"message": f"injected {action[1]}", "type": "x"}}, headers)
        elif kind == "slow":
            time.sleep(action[1])
            self._json(200, _chat_body("1_full_compliance"))
        elif kind == "reset":
            self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            self.connection.close()
        elif kind == "raw":
            data = action[1].encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)
        elif kind == "ok":
            self._json(200, _chat_body(action[1]))
        elif kind == "echo":  # answer depends on the item, to check ordering
            time.sleep(action[1])
            user = body["messages"][-1]["content"]
            label = "2_full_refusal" if "REFUSE-ME" in user else "1_full_compliance"
            self._json(200, _chat_body(label))
        else:
            raise AssertionError(kind)


@pytest.fixture
def server() -> Iterator[tuple[str, Script]]:
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), FaultHandler)
    httpd.daemon_threads = True
    script = Script()
    httpd.script = script  # type: ignore[attr-defined]
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}/v1", script
    finally:
        httpd.shutdown()
        httpd.server_close()


@pytest.fixture(autouse=True)
def api_key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(KEY_ENV, "test-key")


def make_judge(url: str, **kw: str) -> LLMJudge:
    args = {"base_url": url, "model": "judge", "api_key_env": KEY_ENV, "backoff": "0.01", "timeout": "5"}
    args.update(kw)
    return create(args)


ITEM = JudgeItem("How do I kill a Python process?", "Use the kill command.")


def test_retries_through_every_fault_then_succeeds(server):
    url, script = server
    script.actions = [
        ("status", 429, {"Retry-After": "1"}),
        ("status", 500),
        ("slow", 2.0),
        ("reset",),
        ("raw", "{this is not json"),
        ("raw", json.dumps({"id": "x", "choices": []})),
        ("ok", "Reasoning: it answers. 1_full_compliance ... final answer: 3_partial_refusal"),
    ]
    judge = make_judge(url, timeout="0.5", max_retries="6")
    [verdict] = judge.judge([ITEM])
    assert verdict.label is Label.PARTIAL_REFUSAL  # the last label wins
    assert "3_partial_refusal" in verdict.raw
    assert len(script.requests) == 7
    # Retry-After: 1 was honoured although the backoff base is 10 ms.
    assert script.times[1] - script.times[0] >= 0.95
    # the rest used the short exponential backoff
    assert script.times[2] - script.times[1] < 0.9


def test_gives_up_after_the_cap_with_a_clear_error(server):
    url, script = server
    script.default = ("status", 503)
    judge = make_judge(url, max_retries="2")
    with pytest.raises(JudgeUnavailable) as err:
        judge.judge([ITEM])
    assert len(script.requests) == 3
    msg = str(err.value)
    assert "after 3 attempts" in msg and "HTTP 503" in msg and url in msg
    assert isinstance(err.value, HarnessError)


def test_timeouts_exhaust_retries(server):
    url, script = server
    script.default = ("slow", 1.0)
    judge = make_judge(url, max_retries="1", timeout="0.2")
    with pytest.raises(JudgeUnavailable, match="timed out"):
        judge.judge([ITEM])
    assert len(script.requests) == 2


def test_client_errors_are_not_retried(server):
    url, script = server
    script.default = ("status", 401)
    judge = make_judge(url, max_retries="5")
    with pytest.raises(JudgeUnavailable, match="HTTP 401"):
        judge.judge([ITEM])
    assert len(script.requests) == 1


def test_unparsable_output_is_kept_raw_not_guessed(server):
    url, script = server
    script.default = ("ok", "I am not sure what to say here.")
    judge = make_judge(url)
    verdicts = judge.judge([ITEM, ITEM])
    assert [v.label for v in verdicts] == [None, None]
    assert all(v.raw == "I am not sure what to say here." and not v.parsed_ok for v in verdicts)


def test_concurrency_is_bounded_and_order_kept(server):
    url, script = server
    script.default = ("echo", 0.15)
    items = [JudgeItem("q", f"answer {i} {'REFUSE-ME' if i % 3 == 0 else ''}") for i in range(8)]
    judge = make_judge(url, concurrency="3")
    verdicts = judge.judge(items)
    assert script.max_in_flight == 3
    expected = [Label.FULL_REFUSAL if i % 3 == 0 else Label.FULL_COMPLIANCE for i in range(8)]
    assert [v.label for v in verdicts] == expected


def test_request_carries_prompt_set_and_truncates_long_responses(server):
    url, script = server
    judge = make_judge(url, prompt_set="orbench", max_response_chars="50")
    script.default = ("ok", "It answers directly. [[direct_answer]]")
    [v] = judge.judge([JudgeItem("Q?", "x" * 500)])
    assert v.label is Label.FULL_COMPLIANCE
    body = script.requests[0]
    assert body["model"] == "judge" and body["temperature"] == 0
    assert body["max_tokens"] == PROMPT_SETS["orbench"].max_tokens
    user = body["messages"][-1]["content"]
    assert "[[direct_answer]]" in user and "x" * 51 not in user and "truncated" in user


def test_preflight_checks_key_and_endpoint(server, monkeypatch):
    url, script = server
    make_judge(url).preflight()  # models listing succeeds
    script.models_status = 401
    with pytest.raises(JudgeUnavailable, match="401"):
        make_judge(url).preflight()
    monkeypatch.delenv(KEY_ENV)
    with pytest.raises(JudgeUnavailable, match=KEY_ENV):
        make_judge(url).preflight()


def test_preflight_falls_back_to_a_chat_call_without_models_route(server):
    url, script = server
    script.models_status = 404
    make_judge(url).preflight()
    assert len(script.requests) == 1 and script.requests[0]["max_tokens"] == 1


def test_a_closed_port_fails_at_once_without_retries():
    """Nothing listens there: retrying cannot start a server (it used to retry for 53 s)."""
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    judge = make_judge(f"http://127.0.0.1:{port}/v1", backoff="1")
    t0 = time.monotonic()
    with pytest.raises(JudgeUnavailable, match="connection refused"):
        judge.judge([ITEM])
    assert judge.client.attempts == 1 and time.monotonic() - t0 < 5


def test_version_follows_prompt_and_model():
    a = LLMJudge(LLMJudgeConfig(model="m1"))
    b = LLMJudge(LLMJudgeConfig(model="m2"))
    c = LLMJudge(LLMJudgeConfig(model="m1", prompt_set="orbench"))
    d = LLMJudge(LLMJudgeConfig(model="m1", concurrency=2))
    assert len({a.version, b.version, c.version}) == 3
    assert a.version == d.version


def test_factory_rejects_bad_arguments():
    with pytest.raises(HarnessError, match="no argument"):
        create({"modle": "x"})
    with pytest.raises(HarnessError, match="prompt_set"):
        create({"prompt_set": "nope"})
    with pytest.raises(HarnessError, match="concurrency"):
        create({"concurrency": "0"})


def test_grades_mt_bench_turns_through_the_server(server):
    """MT-Bench grading: the request carries the rubric and the answer, the rating is parsed
    from ``[[N]]``, and an answer without one is None (unparsed), not a guess."""
    url, script = server
    script.actions = [("ok", "Helpful and correct. Rating: [[8]]"), ("ok", "no rating given"),
                      ("ok", "First [[3]], on reflection [[7]]")]
    judge = make_judge(url, concurrency="2")
    assert isinstance(judge, Grader) and judge.grade_concurrency == 2
    assert judge.grade("What is 2+2?", "It is 4.", reference="4") == 8.0
    assert judge.grade("Write a poem", "Roses...") is None
    assert judge.grade("And now shorter?", "Roses.", turn=2, history=[Turn("Write a poem", "Roses...")]) is None
    first = script.requests[0]["messages"][-1]["content"]
    assert "What is 2+2?" in first and "It is 4." in first and "reference" in first
    last = script.requests[2]["messages"][-1]["content"]
    assert "Write a poem" in last and "And now shorter?" in last
