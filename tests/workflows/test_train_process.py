"""The `mlops train` process (issue 14): its handler runs with few garbage collections in a one-command
process (it imports MLflow, its SQL store and scikit-learn, then exits), and a library call of the CLI
leaves the host's collector alone. No timings here: speed is measured by hack/bench-jobs.sh."""

from __future__ import annotations

import gc
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from mlops_workflows import cli, procgc


@pytest.fixture
def collector() -> Iterator[None]:
    """Whatever a test does to this process's collector is undone afterwards."""
    threshold, frozen = gc.get_threshold(), gc.get_freeze_count()
    try:
        yield
    finally:
        if gc.get_freeze_count() > frozen:
            gc.unfreeze()
        gc.set_threshold(*threshold)


@pytest.mark.usefixtures("collector")
def test_few_collections_only_in_a_one_command_process() -> None:
    threshold, frozen = gc.get_threshold(), gc.get_freeze_count()
    with procgc.few_collections():  # a library call: left alone
        assert gc.get_threshold() == threshold
    assert gc.get_threshold() == threshold and gc.get_freeze_count() == frozen

    with procgc.one_command_process():
        with procgc.few_collections():
            assert gc.get_threshold() == (procgc.FEW_COLLECTIONS_THRESHOLD, *threshold[1:])
            kept = [[n] for n in range(1000)]  # allocated in the block, alive at its end
        # the block's survivors are frozen, so the next allocation does not traverse them all
        assert gc.get_count()[0] < 1000 < gc.get_freeze_count() - frozen
        assert gc.get_threshold() == (procgc.YOUNGEST_GENERATION_THRESHOLD, *threshold[1:])
        del kept
    assert not procgc._one_command


@pytest.mark.usefixtures("collector")
def test_the_train_handler_runs_under_few_collections(monkeypatch: pytest.MonkeyPatch, tmp_path: Path,
                                                      capsys: pytest.CaptureFixture[str]) -> None:
    seen: list[tuple[int, int, int]] = []
    real = procgc.few_collections

    def recording() -> object:
        seen.append(gc.get_threshold())
        return real()

    monkeypatch.setattr(procgc, "few_collections", recording)
    monkeypatch.setattr(sys, "argv", ["mlops", "train", "--config", str(tmp_path / "missing.yaml")])
    assert cli.main() == 2  # the process entry; the config error still exits 2 with its message
    err = capsys.readouterr().err
    assert "training config" in err and "no such file" in err
    assert seen == [(procgc.YOUNGEST_GENERATION_THRESHOLD, *gc.get_threshold()[1:])]
    assert gc.get_threshold()[0] == procgc.YOUNGEST_GENERATION_THRESHOLD  # as before once the handler is done
