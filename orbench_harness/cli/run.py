"""``harness run``: one model x method over benchmarks, judged, stored, resumable."""

from __future__ import annotations

import argparse
import sys
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

from orbench_harness.cli import setup_run
from orbench_harness.cli.report import collect_runs
from orbench_harness.console import out as stdout
from orbench_harness.console import print_json, table
from orbench_harness.errors import HarnessError
from orbench_harness.grid import method_args_for
from orbench_harness.paths import data_dir_from_env
from orbench_harness.registry import Registry
from orbench_harness.runner import run
from orbench_harness.spec import DEFAULT_JUDGE, RunSpec, parse_batch_size, parse_kv
from orbench_harness.types import DTYPES


def add_parser(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    """Register ``run``."""
    p = sub.add_parser("run", help="evaluate a method on a model", description=__doc__)
    add_run_arguments(p)
    setup_run.add_arguments(p)
    p.add_argument("--out", type=Path, help="run directory (default runs/<model>-<method>-<time>)")
    p.set_defaults(func=main)


def add_run_arguments(p: argparse.ArgumentParser) -> None:
    """The options ``run``, ``sweep`` and ``grid`` share."""
    p.add_argument("--model", default="smollm2-135m", help="alias, local dir, .gguf file or hub id")
    p.add_argument("--method", default="none",
                   help="method, or several as a,b (run: one run each, then the leaderboard; "
                   "per-method options as --method-arg actor:epochs=1)")
    p.add_argument("--method-arg", action="append", metavar="KEY=VALUE", help="method option (repeatable)")
    p.add_argument("--benchmark", action="append", metavar="NAME",
                   help="benchmark or suite (repeatable, or a,b; default: the demo suite)")
    p.add_argument("--suite", action="append", metavar="NAME", help="a benchmark suite (quick, paper, ...)")
    p.add_argument("--judge", default=DEFAULT_JUDGE, help=f"judge plugin (default {DEFAULT_JUDGE})")
    p.add_argument("--judge-arg", action="append", metavar="KEY=VALUE", help="judge option (repeatable)")
    p.add_argument("--judge-model", help="shorthand for --judge-arg model=...")
    p.add_argument("--backend", default="hf",
                   help="backend that loads and runs the model (hf, vllm), or openai for a served model")
    p.add_argument("--backend-arg", action="append", metavar="KEY=VALUE",
                   help="backend option, e.g. device=cuda:1 (repeatable)")
    served = p.add_argument_group("a served model (--backend openai; the key comes from $OPENAI_API_KEY)")
    served.add_argument("--base-url", help="the endpoint, e.g. http://127.0.0.1:8000/v1 (env OPENAI_BASE_URL)")
    served.add_argument("--model-revision", metavar="TAG",
                        help="your name for the build being served, part of the run's identity and cache key")
    served.add_argument("--concurrency", type=int, metavar="N", help="requests in flight at once (default 4)")
    served.add_argument("--requests-per-minute", type=float, metavar="N", help="cap on requests started a minute")
    p.add_argument("--split", default="test", choices=("test", "train", "all"), help="benchmark split to score")
    p.add_argument("--limit", type=int, help="at most N samples per benchmark (seeded sample)")
    p.add_argument("--seed", type=int, default=0, help="seed for sampling, splits and training")
    p.add_argument("--batch-size", type=parse_batch_size, default="auto",
                   help="generation batch size, or auto (default): measured once per model and device, "
                   "the largest that fits the free memory while throughput still rises")
    p.add_argument("--judge-batch-size", type=int, default=32, help="items per judge call (and per saved chunk)")
    p.add_argument("--max-new-tokens", type=int, help="override the per-kind default")
    p.add_argument("--data-dir", type=Path, help="local data directory (env ORBENCH_DATA_DIR)")
    p.add_argument("--chat-template", type=Path, help="Jinja chat template file for models without one")
    p.add_argument("--max-unparsed", type=int, metavar="N", help="fail when more than N verdicts are unparsed")
    p.add_argument("--json", action="store_true", help="print results.json's content instead of the tables")
    p.add_argument("--dtype", choices=DTYPES,
                   help="weights' precision (default: the model's; auto = bfloat16 on CUDA, float32 on CPU)")


def spec_from_args(args: argparse.Namespace) -> RunSpec:
    """Build a RunSpec from parsed arguments, rejecting conflicting flags."""
    judge_args = parse_kv(args.judge_arg, "--judge-arg")
    if args.judge_model:
        if "model" in judge_args:
            raise HarnessError("conflicting flags: --judge-model and --judge-arg model=...")
        judge_args["model"] = args.judge_model
    benchmarks = [*(args.benchmark or []), *(args.suite or [])] or ["demo"]
    template = None
    if args.chat_template:
        try:
            template = args.chat_template.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as e:
            raise HarnessError(f"cannot read --chat-template {args.chat_template}: {e}") from None
    data_dir = args.data_dir or data_dir_from_env()
    if data_dir is not None and not data_dir.is_dir():
        raise HarnessError(f"--data-dir {data_dir} is not a directory")
    return RunSpec(
        model=args.model,
        method=args.method,
        benchmarks=tuple(benchmarks),
        judge=args.judge,
        backend=args.backend,
        method_args=parse_kv(args.method_arg, "--method-arg"),
        judge_args=judge_args,
        backend_args=served_args(args, parse_kv(args.backend_arg, "--backend-arg")),
        split=args.split,
        limit=args.limit,
        seed=args.seed,
        batch_size=args.batch_size,
        judge_batch_size=args.judge_batch_size,
        max_new_tokens=args.max_new_tokens,
        data_dir=data_dir.resolve() if data_dir else None,
        chat_template=template,
        dtype=args.dtype,
        max_unparsed=args.max_unparsed,
    )


SERVED_FLAGS = {"base_url": "--base-url", "model_revision": "--model-revision", "concurrency": "--concurrency",
                "requests_per_minute": "--requests-per-minute"}


def served_args(args: argparse.Namespace, backend_args: dict[str, str]) -> dict[str, str]:
    """``--base-url`` and the other served-model flags as ``openai`` backend arguments."""
    for key, flag in SERVED_FLAGS.items():
        value = getattr(args, key, None)
        if value is None:
            continue
        if args.backend != "openai":
            raise HarnessError(f"{flag} is for --backend openai (got --backend {args.backend})")
        if key in backend_args:
            raise HarnessError(f"conflicting flags: {flag} and --backend-arg {key}=...")
        backend_args[key] = f"{value:g}" if isinstance(value, float) else str(value)
    return backend_args


def main(args: argparse.Namespace) -> int:
    """Run and print a summary table; with several methods, one run each and a leaderboard."""
    spec = spec_from_args(args)
    methods = [m.strip() for m in spec.method.split(",") if m.strip()]
    if not methods:
        raise HarnessError("--method is empty")
    spec, stop = setup_run.prepare(args, spec, methods)  # --setup / --dry-run; nothing loaded yet
    if stop is not None:
        return stop
    stamp = time.strftime("%Y%m%d-%H%M%S")
    if len(methods) == 1:
        out = args.out or Path("runs") / f"{spec.model.replace('/', '_')}-{spec.method}-{stamp}"
        results = run(spec, out)
        if args.json:
            print_json(results)
        else:
            print_summary(results, out)
        return 0
    if len(set(methods)) != len(methods):
        raise HarnessError(f"--method lists a method twice: {spec.method}")
    registry = Registry()
    for m in methods:  # every name checked before the first run starts
        registry.methods().get(m)
    root = args.out or Path("runs") / f"{spec.model.replace('/', '_')}-{stamp}"
    dirs, everything = [], []
    for m in methods:
        out = root / m
        mspec = replace(spec, method=m, method_args=method_args_for(m, spec.method_args))
        results = run(mspec, out, registry=registry)
        if not args.json:
            print_summary(results, out)
        dirs.append(out)
        everything.append(results)
    if args.json:
        print_json(everything)
        return 0
    print_leaderboard(dirs, registry)
    return 0


def print_leaderboard(dirs: list[Path], registry: Any) -> None:
    """The markdown leaderboard of finished runs (what ``harness report --format md`` prints)."""
    sys.stdout.write("\n" + registry.create("reporters", "md", {}).render(collect_runs(dirs)))
    sys.stdout.flush()


def print_summary(results: dict[str, Any], out: Path) -> None:
    """The end-of-run table."""
    rows = []
    for name, b in results["benchmarks"].items():
        if b["kind"] == "capability":
            metric = b.get("metric", "")
            value = "skipped" if b.get("skipped") else fmt_rate(b.get(metric))  # the reason is in results.json
            rows.append([name, b["kind"], b.get("n", ""), metric, value, "", ""])
        else:
            rows.append([name, b["kind"], b["n"], "compliance / refusal",
                         f"{fmt_rate(b['compliance_rate'])} / {fmt_rate(b['refusal_rate'])}",
                         b["partial_refusals"], b["unparsed"]])
    table(f"{results['model']} x {results['method']} (judge {results['judge']})",
          ["benchmark", "kind", "n", "metric", "value", "partial", "unparsed"], rows)
    s = results["summary"]
    stdout.print(
        f"avg compliance {fmt_rate(s['avg_compliance_rate'])}  safety score {fmt_rate(s['safety_score'])}"
        f"  trade-off {fmt_rate(s['trade_off_score'])}  ({results['timing']['seconds']:.1f}s)"
    )
    if s.get("broad_safety_score") is not None:
        lo, hi = s["broad_safety_ci"]
        stdout.print(
            f"broad safety score {fmt_rate(s['broad_safety_score'])} [95% {lo:.2f}-{hi:.2f}] over "
            f"{len(s['broad_safety_sets'])} harmful sets  broad trade-off {fmt_rate(s.get('broad_trade_off_score'))}"
            f"  (safety score = {s.get('safety_score_source') or 'none'} alone)"
        )
    stdout.print(f"results: {out / 'results.json'}")


def fmt_rate(v: Any) -> str:
    return "-" if v is None else f"{v:.2f}" if isinstance(v, float) else str(v)
