"""A real llama.cpp OpenAI-compatible server on loopback, serving the embedded SmolLM2 GGUF.

``llama-cpp-python[server]`` has no wheel: it is built from its source distribution (minutes;
``install.sh --with-llama-cpp``). Tests that need it skip with that hint when ``llama_cpp`` is
not importable. The bench ``bench/openai_vs_hf.py`` uses the same helper.
"""

from __future__ import annotations

import importlib.util
import json
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from orbench_harness.models import smollm2_gguf_path

ALIAS = "smollm2"
MISSING = ("llama-cpp-python[server] is not installed (it builds from source in minutes: "
           "./install.sh --with-llama-cpp)")


def available() -> bool:
    """Whether the llama.cpp server module can be imported."""
    return importlib.util.find_spec("llama_cpp") is not None and importlib.util.find_spec("uvicorn") is not None


def free_port() -> int:
    """A loopback port nothing listens on now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


@dataclass
class LlamaServer:
    """One server process; ``url`` is the base URL the harness takes."""

    proc: subprocess.Popen[bytes]
    port: int
    log: Path

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    def kill(self) -> None:
        """Stop it at once (SIGKILL), as a crashed server goes."""
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait(timeout=30)


def start(log: Path, *, port: int | None = None, api_key: str | None = None, threads: int = 1,
          timeout: float = 180.0) -> LlamaServer:
    """Start a server and wait until it lists its model."""
    port = port or free_port()
    cmd = [sys.executable, "-m", "llama_cpp.server", "--model", str(smollm2_gguf_path()), "--model_alias", ALIAS,
           "--host", "127.0.0.1", "--port", str(port), "--n_ctx", "2048", "--n_threads", str(threads),
           "--n_threads_batch", str(threads), "--verbose", "False"]
    if api_key:
        cmd += ["--api_key", api_key]
    with log.open("ab") as f:
        proc = subprocess.Popen(cmd, stdout=f, stderr=subprocess.STDOUT)
    server = LlamaServer(proc, port, log)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"llama.cpp server exited with {proc.returncode}: {log.read_text()[-2000:]}")
        if _lists_models(server.url, api_key):
            return server
        time.sleep(0.3)
    server.kill()
    raise RuntimeError(f"llama.cpp server did not come up in {timeout:g}s: {log.read_text()[-2000:]}")


def _lists_models(url: str, api_key: str | None) -> bool:
    req = urllib.request.Request(f"{url}/models", headers={"Authorization": f"Bearer {api_key or 'x'}"})
    try:
        with urllib.request.urlopen(req, timeout=2) as r:
            return bool(json.loads(r.read())["data"])
    except (OSError, urllib.error.URLError, ValueError, KeyError):
        return False


@contextmanager
def serving(log: Path, **kw: object) -> Iterator[LlamaServer]:
    """``start`` as a context manager that always stops the server."""
    server = start(log, **kw)  # type: ignore[arg-type]
    try:
        yield server
    finally:
        server.kill()
