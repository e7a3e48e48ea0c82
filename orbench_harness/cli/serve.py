"""``harness serve``: an OpenAI-compatible endpoint for one of the harness's models.

    harness serve --model smollm2-135m --port 8000
    OPENAI_API_KEY=local harness judge-eval --judge llm \\
        --judge-arg base_url=http://127.0.0.1:8000/v1 --judge-arg model=smollm2-135m --labels ...

Serves /v1/models and non-streaming /v1/chat/completions (see orbench_harness/serve.py).
The first line on stdout is ``serving <name> at <url>`` once the port is bound, so scripts and
tests can start it with ``--port 0`` and read the URL.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence

from orbench_harness.console import info, out
from orbench_harness.errors import HarnessError
from orbench_harness.protocols import ModelHandle
from orbench_harness.registry import Registry
from orbench_harness.serve import ChatServer
from orbench_harness.spec import parse_kv
from orbench_harness.types import Completion, GenParams, Prompt


def add_parser(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    """Register ``serve``."""
    p = sub.add_parser("serve", help="serve a model over an OpenAI-compatible HTTP API", description=__doc__,
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", default="smollm2-135m", help="alias, local dir, .gguf file or hub id")
    p.add_argument("--served-name", help="model id clients must send (default: the --model value)")
    p.add_argument("--host", default="127.0.0.1", help="bind address (default loopback only)")
    p.add_argument("--port", type=int, default=8000, help="0 picks a free port")
    p.add_argument("--backend", default="hf", help="backend that loads and runs the model")
    p.add_argument("--backend-arg", action="append", metavar="KEY=VALUE", help="backend option (repeatable)")
    p.add_argument("--api-key-env", metavar="VAR", help="require 'Authorization: Bearer $VAR'")
    p.add_argument("--max-batch", type=int, default=8, help="requests generated together")
    p.add_argument("--max-tokens-cap", type=int, default=2048, help="largest max_tokens accepted")
    p.add_argument("--verbose", action="store_true", help="log every request to stderr")
    p.set_defaults(func=main)


def main(args: argparse.Namespace) -> int:
    """Load the model, bind, serve until interrupted."""
    api_key = None
    if args.api_key_env:
        api_key = os.environ.get(args.api_key_env)
        if not api_key:
            raise HarnessError(f"--api-key-env {args.api_key_env}: the variable is not set")
    reg = Registry()
    spec = reg.resolve_model(args.model)
    backend = reg.create("backends", args.backend, parse_kv(args.backend_arg, "--backend-arg"))
    info(f"loading {spec.name} with backend {args.backend}")
    handle: ModelHandle = backend.load(spec)

    def generate(prompts: Sequence[Prompt], params: GenParams) -> list[Completion]:
        return handle.generate(list(prompts), params, batch_size=max(1, len(prompts)))

    try:
        server = ChatServer(
            generate,
            model_name=args.served_name or args.model,
            host=args.host,
            port=args.port,
            api_key=api_key,
            max_batch=args.max_batch,
            max_tokens_cap=args.max_tokens_cap,
            verbose=args.verbose,
        )
    except OSError as e:
        raise HarnessError(f"cannot bind {args.host}:{args.port}: {e.strerror or e}") from None
    out.print(f"serving {server.model_name} at {server.url}", markup=False, highlight=False, soft_wrap=True)
    sys.stdout.flush()
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        info("stopping")
    finally:
        server.stop()
    return 0
