"""``--batch-size auto``: the doubling search, the remembered answer, the tiny model's choice
and the command line."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from orbench_harness.backends._autobatch import auto_batch_size, measured_on
from orbench_harness.backends._batching import GAIN, remember_size, remembered_size, search_batch_size
from orbench_harness.backends.hf import HFModel
from orbench_harness.cli import main
from orbench_harness.errors import HarnessError
from orbench_harness.spec import RunSpec
from orbench_harness.types import Prompt


def _cost(overhead: float, per_row: float) -> tuple[list[int], object]:
    """A probe whose seconds follow a fixed cost per call plus a cost per row, as a CPU's
    batched forward pass roughly does; records the sizes it was asked."""
    asked: list[int] = []

    def probe(size: int) -> float:
        asked.append(size)
        return overhead + per_row * size

    return asked, probe


def test_the_search_doubles_while_throughput_rises_enough_and_stops_at_the_cap() -> None:
    asked, probe = _cost(0.1, 0.01)  # rows/s: 4/0.14, 8/0.18, ... flattening out near 100
    size, rates = search_batch_size(probe, cap=1024)  # type: ignore[arg-type]
    assert asked[::2] == asked[1::2]  # every size timed twice
    asked = asked[::2]
    assert asked == [4 * 2**k for k in range(len(asked))]
    assert rates[size] >= max(rates.values()) / GAIN  # nothing measured was much faster
    nxt = asked[-1]
    assert nxt == size * 2 and rates[nxt] < rates[size] * GAIN  # stopped because the gain fell short
    asked, probe = _cost(1.0, 0.0)  # throughput grows without end: the cap decides
    assert search_batch_size(probe, cap=48)[0] == 48 and asked[-1] == 48  # type: ignore[arg-type]


def test_one_slow_pass_does_not_end_the_search() -> None:
    """A pass slowed by other work on the machine (every third here) is outvoted by the repeat."""
    calls = []

    def probe(size: int) -> float:
        calls.append(size)
        return (0.1 + 0.01 * size) * (5.0 if len(calls) % 3 == 0 else 1.0)

    assert search_batch_size(probe, cap=1024)[0] == 128  # as without the slow passes


def test_the_search_keeps_the_last_size_that_fitted_on_out_of_memory() -> None:
    released = []

    def probe(size: int) -> float:
        if size >= 32:
            raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")
        return 1.0

    assert search_batch_size(probe, cap=256, release=lambda: released.append(1))[0] == 16
    assert released == [1]

    def broken(size: int) -> float:
        raise RuntimeError("shape mismatch")

    with pytest.raises(RuntimeError, match="shape mismatch"):  # only memory errors end the search quietly
        search_batch_size(broken, cap=8)


def test_a_measured_size_is_remembered_per_model_and_device(isolated_cache: Path) -> None:
    facts = {"model": {"source": "x"}, "device": {"device": "cpu", "threads": "2"}, "dtype": "torch.float32"}
    assert remembered_size(facts) is None
    remember_size(facts, 24, {4: 10.0, 8: 19.0})
    assert remembered_size(facts) == (24, False)
    assert remembered_size({**facts, "dtype": "torch.bfloat16"}) is None
    (isolated_cache / "batch-sizes.json").write_text("{not json")
    assert remembered_size(facts) is None  # a damaged file costs a new probe, not an error
    remember_size(facts, 12, {}, at_least=True)
    assert remembered_size(facts) == (12, True)


def test_the_tiny_model_chooses_a_size_and_later_runs_reuse_it(hf: HFModel, isolated_cache: Path) -> None:
    few = [Prompt.user("Hello there")] * 3
    assert auto_batch_size(hf, few, 8) == 3  # one batch, no probe
    assert not (isolated_cache / "batch-sizes.json").exists()
    many = [Prompt.user("Tell me a story about " + "a fox " * k) for k in range(40)]
    size = auto_batch_size(hf, many, 8)
    assert 1 <= size <= 40
    table = isolated_cache / "batch-sizes.json"
    (entry,) = json.loads(table.read_text()).values()  # remembered with what was measured
    assert entry["size"] == size and entry["tokens_per_s"] and entry["at_least"] == (size == 40)
    remember_size(measured_on(hf), 5, {})
    assert hf.auto_batch_size(many, 8) == 5  # remembered: no new measurement
    assert hf.auto_batch_size(many[:6], 8) == 6  # never more than the prompts
    remember_size(measured_on(hf), 12, {}, at_least=True)  # a lower bound: enough for a run of 12
    assert hf.auto_batch_size(many[:12], 8) == 12 and remembered_size(measured_on(hf)) == (12, True)
    assert 1 <= hf.auto_batch_size(many, 8) <= 40  # a run with room for more measures again
    assert remembered_size(measured_on(hf)) != (12, True)


def test_the_command_line_takes_auto_by_default_and_refuses_nonsense(
        tiny_model_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert RunSpec(model="m").batch_size == "auto"
    with pytest.raises(HarnessError, match="positive integer or auto"):
        RunSpec(model="m", batch_size=0)
    argv = ["run", "--model", str(tiny_model_dir), "--benchmark", "demo", "--limit", "3", "--judge", "strmatch",
            "--max-new-tokens", "4"]
    with pytest.raises(SystemExit) as e:
        main([*argv, "--batch-size", "0", "--out", str(tmp_path / "bad")])
    assert e.value.code == 2 and "positive integer or auto" in capsys.readouterr().err
    assert main([*argv, "--out", str(tmp_path / "r")]) == 0
    assert json.loads((tmp_path / "r" / "run.json").read_text())["spec"]["batch_size"] == "auto"
    assert "(--batch-size auto)" in capsys.readouterr().err
