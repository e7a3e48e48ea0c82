"""One quick decision per process: can the Hugging Face hub be reached at all?

Without a network, huggingface_hub retries every request five times with back-off, and a run
makes several requests (config, tokenizer, weights; each hub dataset), so a missing network
costs a minute of identical retry lines before the one-line error. Before the first hub call
the harness therefore opens one TCP connection to the hub's endpoint (``HF_ENDPOINT``, by
default huggingface.co:443) with a short timeout. If the name does not resolve, the
connection is refused or it times out, it says so once and sets ``HF_HUB_OFFLINE=1`` for the
rest of the process: everything already in the local cache still works, and everything else
fails at once with the usual "not in the local cache" error.

A proxy (``HTTPS_PROXY``, ``ALL_PROXY``) is trusted as configured: the probe is skipped, as a
direct connection proves nothing there. ``ORBENCH_HUB_PROBE_TIMEOUT`` sets the timeout
(seconds, default 3); ``0`` turns the probe off.
"""

from __future__ import annotations

import os
import socket
import sys
from urllib.parse import urlsplit

from orbench_harness.console import debug, warn

DEFAULT_ENDPOINT = "https://huggingface.co"
PROXY_VARS = ("HTTPS_PROXY", "https_proxy", "ALL_PROXY", "all_proxy")
_decided: bool | None = None  # None: not probed yet in this process


def offline_already() -> bool:
    """True when the user (or an earlier probe) set ``HF_HUB_OFFLINE``."""
    return os.environ.get("HF_HUB_OFFLINE", "").strip().lower() in ("1", "true", "yes", "on")


def probe_timeout() -> float:
    """``ORBENCH_HUB_PROBE_TIMEOUT`` in seconds (default 3; 0 or less: no probe)."""
    try:
        return float(os.environ.get("ORBENCH_HUB_PROBE_TIMEOUT", "3"))
    except ValueError:
        return 3.0


def endpoint() -> tuple[str, int]:
    """Host and port of the hub endpoint huggingface_hub will call."""
    url = urlsplit(os.environ.get("HF_ENDPOINT") or DEFAULT_ENDPOINT)
    port = url.port or (80 if url.scheme == "http" else 443)
    return url.hostname or "huggingface.co", port


def why_unreachable(host: str, port: int, timeout: float) -> str | None:
    """None when a TCP connection to ``host:port`` opens, else the reason in a few words."""
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return None
    except socket.gaierror:
        return f"the name {host} does not resolve"
    except ConnectionRefusedError:
        return f"{host}:{port} refuses connections"
    except TimeoutError:
        return f"{host}:{port} did not answer within {timeout:g}s"
    except OSError as e:
        return f"{host}:{port}: {e.strerror or e}"


def ensure_decided() -> bool:
    """Probe the hub once per process (see the module docstring); True when it may be used."""
    global _decided
    if _decided is not None:
        return _decided
    timeout = probe_timeout()
    if offline_already() or timeout <= 0 or any(os.environ.get(v) for v in PROXY_VARS):
        _decided = not offline_already()
        return _decided
    host, port = endpoint()
    reason = why_unreachable(host, port, timeout)
    if reason is None:
        debug(f"hub endpoint {host}:{port} reachable")
        _decided = True
        return True
    warn(f"the Hugging Face hub cannot be reached ({reason}): working offline for this run, from "
         "the local cache and data directory only")
    go_offline()
    _decided = False
    return False


def go_offline() -> None:
    """``HF_HUB_OFFLINE=1`` for this process, also in the libraries that read it at import."""
    os.environ["HF_HUB_OFFLINE"] = "1"
    constants = sys.modules.get("huggingface_hub.constants")
    if constants is not None:
        constants.HF_HUB_OFFLINE = True  # type: ignore[attr-defined]
    config = sys.modules.get("datasets.config")
    if config is not None:
        config.HF_HUB_OFFLINE = True  # type: ignore[attr-defined]
