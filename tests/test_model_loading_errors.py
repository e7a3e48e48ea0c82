"""A hub model that cannot be fetched is a one-line error that says why and what to do.

The hub is a real HTTP server on loopback (``HF_ENDPOINT``) answering the way huggingface.co
answers a gated repo, a missing repo and a missing revision (status plus ``X-Error-Code``), so
transformers and huggingface_hub run their real code paths; the offline case sets
``HF_HUB_OFFLINE=1`` with an empty cache. Each runs in a subprocess because huggingface_hub
reads both variables at import.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from orbench_harness.cli import main
from orbench_harness.errors import HarnessError
from orbench_harness.models import resolve

ROOT = Path(__file__).resolve().parents[1]

# Loads each model through the hf backend; prints one JSON line per model: the error or "loaded".
PROBE = """
import json, sys
from orbench_harness.backends.hf import HFBackend
from orbench_harness.errors import HarnessError
from orbench_harness.models import resolve
for name in sys.argv[1:]:
    try:
        HFBackend(device="cpu").load(resolve(name))
        print(json.dumps({"name": name, "error": None}))
    except HarnessError as e:
        print(json.dumps({"name": name, "error": str(e)}))
"""


class FakeHub(BaseHTTPRequestHandler):
    """Answers every file request by repo: ``gated/*`` 401 GatedRepo, revision ``nope`` 404
    RevisionNotFound, anything else 404 RepoNotFound (what huggingface.co sends)."""

    def _answer(self) -> None:
        if self.path.startswith("/gated/"):
            status, code = 401, "GatedRepo"
        elif "/resolve/nope/" in self.path:
            status, code = 404, "RevisionNotFound"
        else:
            status, code = 404, "RepoNotFound"
        body = json.dumps({"error": code}).encode()
        self.send_response(status)
        self.send_header("X-Error-Code", code)
        self.send_header("X-Error-Message", code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command == "GET":
            self.wfile.write(body)

    do_HEAD = _answer
    do_GET = _answer

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def fake_hub() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), FakeHub)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def probe(names: list[str], env: dict[str, str]) -> dict[str, str | None]:
    """Run PROBE in a fresh interpreter with ``env`` on top of a clean hub environment."""
    base = {k: v for k, v in os.environ.items() if not k.startswith(("HF_", "HUGGINGFACE_"))}
    out = subprocess.run([sys.executable, "-c", PROBE, *names], cwd=ROOT, env={**base, **env},
                         capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    rows = [json.loads(line) for line in out.stdout.splitlines() if line.startswith("{")]
    return {r["name"]: r["error"] for r in rows}


def test_hub_refusals_name_the_cause_and_the_fix(fake_hub: str, tmp_path: Path) -> None:
    errors = probe(["gated/model", "nobody/model", "someone/model@nope"],
                   {"HF_ENDPOINT": fake_hub, "HF_HOME": str(tmp_path / "hf")})
    gated = errors["gated/model"]
    assert gated is not None and "'model' (gated/model@main) is gated" in gated
    assert "hf auth login" in gated
    missing = errors["nobody/model"]
    assert missing is not None and "was not found on the hub" in missing
    revision = errors["someone/model@nope"]
    assert revision is not None and "revision 'nope' does not exist" in revision


def test_offline_without_a_cached_copy_says_how_to_get_one(tmp_path: Path) -> None:
    errors = probe(["gemma-7b-it"], {"HF_HUB_OFFLINE": "1", "HF_HOME": str(tmp_path / "hf")})
    msg = errors["gemma-7b-it"]
    assert msg is not None
    assert "'gemma-7b-it' (google/gemma-7b-it@main) is not in the local Hugging Face cache" in msg
    assert "hf download google/gemma-7b-it" in msg


def test_the_cli_prints_it_as_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                       monkeypatch: pytest.MonkeyPatch) -> None:
    """In-process, through ``harness run``: exit 2, one ``error:`` line, no traceback.

    ``HF_HUB_OFFLINE`` is read at import, so the switch is flipped where huggingface_hub keeps it.
    """
    constants = pytest.importorskip("huggingface_hub.constants")
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    argv = ["run", "--model", "nobody-at-all/no-model", "--judge", "strmatch", "--benchmark", "demo",
            "--out", str(tmp_path / "r")]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err
    lines = [line for line in err.splitlines() if line.startswith("error: ")]
    assert len(lines) == 1 and "nobody-at-all/no-model@main" in lines[0], err


@pytest.mark.parametrize("name", ["./no-such-model", "runs/no/such/adapter", "~/nowhere-model"])
def test_a_missing_path_is_named_as_a_path(name: str) -> None:
    with pytest.raises(HarnessError, match=r"no such model directory or \.gguf file"):
        resolve(name)


def test_hub_ids_with_slashed_revisions_still_resolve() -> None:
    spec = resolve("org/model@refs/pr/3")
    assert spec is not None and (spec.source, spec.revision) == ("org/model", "refs/pr/3")
