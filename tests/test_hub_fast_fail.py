"""Without a network the hub is given up on at once: one line, then the usual error.

The hub endpoint is pointed at a closed port on loopback (connection refused), the failure a
machine without a network or behind a firewall gives; the run must end within seconds, say
once that the hub cannot be reached, and print none of huggingface_hub's retry lines.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time

from orbench_harness.hubcheck import PROXY_VARS, why_unreachable


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _offline_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in (*PROXY_VARS, "HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE")}
    env["HF_ENDPOINT"] = f"http://127.0.0.1:{_closed_port()}"
    return env


def _timed(*args: str) -> tuple[float, subprocess.CompletedProcess[str]]:
    t0 = time.monotonic()
    r = subprocess.run([sys.executable, "-m", "orbench_harness.cli", *args], capture_output=True, text=True,
                       timeout=300, env=_offline_env())
    return time.monotonic() - t0, r


def test_a_hub_model_fails_in_seconds_without_retry_lines() -> None:
    seconds, r = _timed("run", "--model", "orbench-test-org/no-such-model", "--benchmark", "demo-benign",
                        "--limit", "1", "--judge", "strmatch")
    assert r.returncode == 2, r.stderr[-3000:]
    assert "Retrying" not in r.stderr and "thrown while requesting" not in r.stderr, r.stderr[-3000:]
    assert r.stderr.count("cannot be reached") >= 1
    assert r.stderr.count("warning: the Hugging Face hub cannot be reached") == 1
    assert "orbench-test-org/no-such-model" in r.stderr
    assert seconds < 30, seconds  # imports included; huggingface_hub's retries alone take about a minute


def test_a_hub_only_dataset_fails_in_seconds_without_retry_lines() -> None:
    seconds, r = _timed("run", "--benchmark", "phtest", "--limit", "1", "--judge", "strmatch")
    assert r.returncode == 2, r.stderr[-3000:]
    assert "Retrying" not in r.stderr, r.stderr[-3000:]
    assert "phtest" in r.stderr and "--data-dir" in r.stderr
    assert seconds < 30, seconds


def test_the_probe_names_the_cause() -> None:
    port = _closed_port()
    assert "refuses" in (why_unreachable("127.0.0.1", port, 2.0) or "")
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen()
        assert why_unreachable("127.0.0.1", server.getsockname()[1], 2.0) is None
