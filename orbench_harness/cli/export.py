"""``harness export``: write a model with a weight-level method applied to a directory.

For methods whose effect lives in the weights (``exportable = True``: none, actor, and the
weight forms of other methods), the method is prepared on the ``hf`` backend (training there
if needed), applied, and the changed model saved with its tokenizer. Any backend that loads a
model directory — vLLM on a GPU box — can then evaluate it with ``--method none``; export.json
records which method and fingerprint produced it.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from orbench_harness.backends.hf import HFBackend, HFModel
from orbench_harness.console import info
from orbench_harness.errors import CapabilityError, HarnessError
from orbench_harness.protocols import MethodContext, MethodEnv
from orbench_harness.registry import Registry
from orbench_harness.resolution import artifact_dir, train_sampler
from orbench_harness.spec import RunSpec, parse_kv


def add_parser(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    """Register ``export``."""
    p = sub.add_parser("export", help="save a model with a weight-level method applied", description=__doc__)
    p.add_argument("--model", default="smollm2-135m", help="alias, local dir or hub id")
    p.add_argument("--method", default="none", help="method whose edited weights are exported")
    p.add_argument("--method-arg", action="append", metavar="KEY=VALUE", help="method option (repeatable)")
    p.add_argument("--data-dir", type=Path, help="local data directory (env ORBENCH_DATA_DIR)")
    p.add_argument("--seed", type=int, default=0, help="seed the method trains with")
    p.add_argument("--out", type=Path, required=True, help="directory to write the exported model into")
    p.set_defaults(func=main)


def export(model_name: str, method_name: str, method_args: dict[str, str], out: Path, *,
           seed: int = 0, data_dir: Path | None = None) -> Path:
    """Prepare and apply the method on hf, then save the model; returns ``out``."""
    reg = Registry()
    backend = HFBackend()
    spec = backend.concrete(reg.resolve_model(model_name))
    run_spec = RunSpec(model=model_name, method=method_name, seed=seed, data_dir=data_dir)
    sampler = train_sampler(reg, run_spec)
    method = reg.create("methods", method_name, method_args, MethodEnv(spec, seed, sampler, data_dir))
    if not getattr(method, "exportable", False):
        raise CapabilityError(
            f"method {method_name!r} acts through hooks or logits, not weights, so it cannot be exported; "
            "run it with --backend hf"
        )
    if out.exists() and any(out.iterdir()):
        raise HarnessError(f"--out {out} exists and is not empty")
    handle = backend.load(spec)
    assert isinstance(handle, HFModel)
    ctx = MethodContext(seed=seed, artifact_dir=artifact_dir(spec, method), train_samples=sampler, log=info)
    artifact = method.prepare(handle, ctx)
    with method.apply(handle, artifact) as policy:
        target = policy if isinstance(policy, HFModel) else handle
        out.mkdir(parents=True, exist_ok=True)
        target.model.save_pretrained(out, safe_serialization=True)
        target.tokenizer.save_pretrained(out)
    meta = {"model": {"name": spec.name, **spec.key}, "method": method_name, "fingerprint": method.fingerprint(),
            "method_args": method_args, "seed": seed}
    (out / "export.json").write_text(json.dumps(meta, indent=2))
    info(f"exported {method_name} on {spec.name} to {out}")
    return out


def main(args: argparse.Namespace) -> int:
    """Run the export."""
    export(args.model, args.method, parse_kv(args.method_arg, "--method-arg"), args.out,
           seed=args.seed, data_dir=args.data_dir)
    return 0
