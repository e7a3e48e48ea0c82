"""Training pools shared by the fine-tuning methods (ACTOR, SFT): harmful, benign and
pseudo-harmful queries from the benchmarks' *train* splits, plus the refusal-vector anchors.

Both methods draw the same prompts from the same options and seed, so their rows on the
leaderboard differ by method, not by data. The options are read from any config that has the
``PoolOptions`` fields (``ActorConfig`` and ``SftConfig`` both do).
"""

from __future__ import annotations

import hashlib
import json
import random
from dataclasses import dataclass
from typing import Protocol

from orbench_harness.console import warn
from orbench_harness.errors import HarnessError
from orbench_harness.protocols import MethodEnv
from orbench_harness.types import Sample


class PoolOptions(Protocol):
    """The data options a config carries (field names as in ``ActorConfig``)."""

    @property
    def data(self) -> str: ...
    @property
    def n_benign(self) -> int: ...
    @property
    def n_pseudo(self) -> int: ...
    @property
    def n_harmful(self) -> int: ...
    @property
    def n_anchors(self) -> int: ...
    @property
    def pseudo_sources(self) -> str: ...
    @property
    def harmful_pool(self) -> str: ...
    @property
    def benign_classes(self) -> str: ...


@dataclass(frozen=True, slots=True)
class Pools:
    """``PoolOptions`` on their own, with ACTOR's defaults (for a method without ACTOR's config)."""

    data: str = "auto"
    n_benign: int = 210
    n_pseudo: int = 100
    n_harmful: int = 330
    n_anchors: int = 64
    pseudo_sources: str = "xstest,scope,orbench-hard,phtest"
    harmful_pool: str = "hexphi"
    benign_classes: str = ""


@dataclass(frozen=True, slots=True)
class TrainData:
    """Training queries with their direction (+1 harmful, -1 benign/pseudo) and anchors."""

    queries: tuple[Sample, ...]
    signs: tuple[int, ...]
    harmful_anchors: tuple[Sample, ...]
    benign_anchors: tuple[Sample, ...]
    sources: tuple[str, ...]

    def digest(self) -> str:
        """Hash of every prompt and label, for the fingerprint."""
        blob = json.dumps([[s.prompt for s in self.queries], list(self.signs),
                           [s.prompt for s in self.harmful_anchors], [s.prompt for s in self.benign_anchors]])
        return hashlib.sha256(blob.encode()).hexdigest()


def _take(samples: list[Sample], n: int, rng: random.Random) -> list[Sample]:
    return samples if n >= len(samples) else rng.sample(samples, n)


def benign_pool(samples: list[Sample], classes: str) -> list[Sample]:
    """UltraChat questions of the named classes (``a|b|c``; empty: every class). The paper
    draws 30 from each of 7 topic categories; the seven 30-question classes of UltraChat's
    labelled file are such a set (``docs/paper-setup.md``)."""
    wanted = [c.strip() for c in classes.split("|") if c.strip()]
    if not wanted:
        return samples
    found = {str(s.meta.get("class", "")) for s in samples}
    unknown = [c for c in wanted if c not in found]
    if unknown:
        raise HarnessError(f"benign_classes: no UltraChat class {', '.join(map(repr, unknown))} "
                           f"(classes: {', '.join(sorted(found))})")
    return [s for s in samples if str(s.meta.get("class", "")) in wanted]


def build_data(cfg: PoolOptions, env: MethodEnv, method: str = "actor") -> TrainData:
    """Assemble the training pools from benchmark train splits (seeded); ``method`` names the
    caller in warnings (ACTOR and SFT share these pools)."""
    rng = random.Random(env.seed)
    mode = cfg.data if cfg.data != "auto" else ("paper" if env.data_dir else "demo")
    if mode == "demo":
        harmful = env.train_samples("demo-harmful")
        benign = env.train_samples("demo-benign")
        pseudo = env.train_samples("demo-pseudo-harmful")
        sources = ["demo-harmful", "demo-benign", "demo-pseudo-harmful"]
        h_anchor, b_anchor = harmful, benign
    else:
        harmful = env.train_samples(cfg.harmful_pool)
        benign = benign_pool(env.train_samples("ultrachat"), cfg.benign_classes)
        pseudo, sources = [], [cfg.harmful_pool, "ultrachat"]
        names = [n.strip() for n in cfg.pseudo_sources.split(",") if n.strip()]
        per = max(1, cfg.n_pseudo // max(1, len(names)))
        for name in names:
            try:
                pool = env.train_samples(name)
            except HarnessError as e:
                warn(f"{method}: pseudo-harmful pool {name!r} unavailable ({e}); training without it")
                continue
            pseudo += _take(pool, per, rng)
            sources.append(name)
        h_anchor = env.train_samples("hexphi")  # the anchors are HEx-PHI's whatever the pool
        b_anchor = env.train_samples("truthfulqa")
        if cfg.harmful_pool != "hexphi":
            sources.append("hexphi")
        sources.append("truthfulqa")
    harmful_q = _take(harmful, cfg.n_harmful, rng)
    benign_q = _take(benign, cfg.n_benign, rng)
    pseudo_q = _take(pseudo, cfg.n_pseudo, rng)
    queries = harmful_q + benign_q + pseudo_q
    signs = [1] * len(harmful_q) + [-1] * (len(benign_q) + len(pseudo_q))
    return TrainData(
        tuple(queries), tuple(signs),
        tuple(_take(h_anchor, cfg.n_anchors, rng)), tuple(_take(b_anchor, cfg.n_anchors, rng)), tuple(sources),
    )
