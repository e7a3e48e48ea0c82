"""``wikitext2``: token perplexity on the WikiText-2 (raw) test set, with strided windows.

Data:

- local: ``<data-dir>/wikitext-2/wiki.test.raw``. The copy in our development data directory is a
  re-export of ``wikitext-2-raw-v1`` test with blank lines dropped and CRLF line ends.
- hub: ``Salesforce/wikitext`` (formerly ``wikitext``), config ``wikitext-2-raw-v1``, split
  ``test``, revision ``b08601e04326c79dfdd32d625aee71d232d685c3`` (a pin used by several
  third-party evaluation scripts; not checked from here, which has no hub access). Each row is
  one line of the original file, blank lines as empty rows.

Both sources are normalised to the same text (``normalise``): CRLF becomes LF, blank lines are
dropped, and every kept line ends with one newline. So the local copy and the hub give the same
tokens and the same perplexity. This differs from Hugging Face's perplexity guide, which joins
the hub rows with ``"\\n\\n"`` (keeping the blank rows), so numbers are close to, not identical
with, the guide's; lm-eval's ``wikitext`` reports word perplexity on a detokenised document
split, which is a different quantity again.

Scoring follows the strided-window recipe of the transformers guide "Perplexity of fixed-length
models": the whole text is tokenised once, as raw text (no chat template, no BOS added);
windows of ``window = min(model context, max_window)`` tokens start every ``stride`` tokens
(default ``window // 2``), and each window scores only the tokens not scored by an earlier
window, each conditioned on everything before it inside the window. The first token of the
text has no context and is never scored. Perplexity = exp(total NLL / scored tokens).

``ctx.limit`` is a number of windows: the first ``limit`` windows (a prefix of the text).
Each window's NLL is cached, keyed by a hash of the text, the window size, stride and index.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from orbench_harness.benchkit import HubSource, hub_rows
from orbench_harness.catalog import Register
from orbench_harness.data import DataSource, data_file, read_text
from orbench_harness.errors import DataError
from orbench_harness.hookspecs import hookimpl
from orbench_harness.protocols import EvalContext, ScoringPolicy, Split
from orbench_harness.types import BenchmarkKind, DataFile, Sample

LOCAL = "wikitext-2/wiki.test.raw"
HUB = HubSource(
    "Salesforce/wikitext", "b08601e04326c79dfdd32d625aee71d232d685c3",
    split="test", config="wikitext-2-raw-v1",
)
PUBLISHED_LINES = 2891  # non-blank lines of the test split
DEFAULT_MAX_WINDOW = 1024


def normalise(lines: Iterable[str]) -> str:
    """One canonical text: LF line ends, no blank lines, every line newline-terminated."""
    kept = []
    for chunk in lines:
        for line in chunk.replace("\r\n", "\n").replace("\r", "\n").split("\n"):
            if line.strip():
                kept.append(line + "\n")
    return "".join(kept)


@dataclass(frozen=True, slots=True)
class Window:
    """Tokens ``[begin, end)`` go through the model; the last ``scored`` of them are scored."""

    begin: int
    end: int
    scored: int


def windows(n_tokens: int, window: int, stride: int) -> list[Window]:
    """The strided windows covering ``n_tokens`` tokens (every token but the first scored once)."""
    if window < 2 or stride < 1 or stride > window:
        raise ValueError(f"need window >= 2 and 1 <= stride <= window (got {window}, {stride})")
    out: list[Window] = []
    prev_end = 0
    begin = 0
    while n_tokens >= 2:
        end = min(begin + window, n_tokens)
        # a token is scored only with a predecessor inside the window
        out.append(Window(begin, end, min(end - prev_end, end - begin - 1)))
        prev_end = end
        if end == n_tokens:
            break
        begin += stride
    return out


@dataclass
class WikiText2:
    """Perplexity of the policy on the WikiText-2 test text."""

    data: DataSource
    max_window: int = DEFAULT_MAX_WINDOW
    stride: int | None = None
    name: str = "wikitext2"
    kind: BenchmarkKind = "capability"
    metric: str = "perplexity"
    _loaded: tuple[str, list[DataFile]] | None = field(default=None, init=False, repr=False)

    def _local_path(self) -> Path | None:
        path = self.data.local(LOCAL)
        return path if path is not None and path.is_file() else None

    def _load(self) -> tuple[str, list[DataFile]]:
        if self._loaded is None:
            path = self._local_path()
            if path is not None:
                text, files = normalise([read_text(path)]), [data_file(path)]
            else:
                try:
                    rows = hub_rows(HUB)
                except DataError as e:
                    where = f"{self.data.local(LOCAL)} not found" if self.data.data_dir else "no --data-dir"
                    raise DataError(f"wikitext2: {where} and {e}; provide {LOCAL} under --data-dir") from None
                text = normalise(str(r.get("text") or "") for r in rows)
                files = [DataFile(HUB.label, hashlib.sha256(text.encode()).hexdigest())]
            if not text:
                raise DataError(f"wikitext2: {files[0].path}: no text")
            self._loaded = (text, files)
        return self._loaded

    def text(self) -> str:
        """The normalised test text."""
        return self._load()[0]

    def samples(self, split: Split = "test", *, limit: int | None = None, seed: int = 0) -> list[Sample]:
        """None: perplexity scores a text, not prompts (and gives methods nothing to train on)."""
        return []

    def data_files(self) -> list[DataFile]:
        """The file read (or the hub table, hashed as normalised text)."""
        return list(self._load()[1])

    def size(self) -> int:
        """Non-blank lines: counted when the local file is there, else the published count."""
        if self._local_path() is not None:
            return self.text().count("\n")
        return PUBLISHED_LINES

    def geometry(self, policy: ScoringPolicy) -> tuple[int, int]:
        """(window, stride) for this policy's context length."""
        window = max(2, min(policy.max_length, self.max_window))
        return window, self.stride or max(1, window // 2)

    def evaluate(self, policy: ScoringPolicy, ctx: EvalContext) -> dict[str, Any]:
        """Perplexity over the first ``ctx.limit`` windows (all when None)."""
        text = self.text()
        ids = policy.encode(text)
        window, stride = self.geometry(policy)
        plan = windows(len(ids), window, stride)
        if ctx.limit is not None:
            plan = plan[: max(0, ctx.limit)]
        if not plan:
            raise DataError("wikitext2: the text has fewer than two tokens")
        digest = hashlib.sha256(text.encode()).hexdigest()[:16]
        nll, n = 0.0, 0
        ctx.progress(0, len(plan))
        for i, w in enumerate(plan):
            key = f"{digest}/w{window}/s{stride}/{i}"
            hit = ctx.kv.get(key)
            if not isinstance(hit, dict):
                hit = {"nll": window_nll(policy, ids[w.begin : w.end], w.scored), "n": w.scored}
                ctx.kv.put(key, hit)
            nll += float(hit["nll"])
            n += int(hit["n"])
            ctx.progress(i + 1, len(plan))
        return {"perplexity": round(math.exp(nll / n), 4), "n_tokens": n, "n_windows": len(plan),
                "n": len(plan)}


def window_nll(policy: ScoringPolicy, ids: Sequence[int], scored: int) -> float:
    """Summed negative log-likelihood of the last ``scored`` tokens of one window."""
    lps = policy.token_logprobs([list(ids)])[0]
    return -sum(lps[len(lps) - scored :])


def create(data: DataSource) -> WikiText2:
    """Factory: window min(context, 1024), stride half the window."""
    return WikiText2(data)


@hookimpl
def orbench_register_benchmarks(register: Register) -> None:
    """Register ``wikitext2``."""
    register(
        "wikitext2", create, summary="WikiText-2 test perplexity (strided windows, raw text)",
        aliases=("wikitext-2",), kind="capability", metric="perplexity", size=PUBLISHED_LINES,
        local=[LOCAL], hub=[HUB.label],
    )
