"""Pretraining and training show progress bars on a terminal's stderr and nothing elsewhere, draw
nothing that changes their numbers, and write learning curves that mark the epoch they kept."""

from __future__ import annotations

import contextlib
import io
import os
import pty
import sys
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import torch

from tactile_estimator import progress as P
from tactile_estimator.config import load_estimator_config, load_trainer_config
from tactile_estimator.learning.checkpoint import CURVES, kept_epoch, kept_row
from tactile_estimator.learning.pretrain import pretrain
from tactile_estimator.learning.runs import load_runs
from tactile_estimator.learning.trainer import train
from tactile_estimator.networks.tactile import TactileModel
from tactile_estimator.objects import DEFAULT_SIZES, Shape
from tactile_estimator.plotting import learning_curves_png
from tactile_estimator.sim.pushing import simulate_run
from tactile_estimator.sim.recording import write_run_bag


@pytest.fixture(scope="module")
def short_bags(tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    out = tmp_path_factory.mktemp("progress_bags")
    paths = []
    for seed, kind in ((7300, "rect"), (7301, "disc")):
        path = out / f"run_{seed}_{kind}"
        write_run_bag(simulate_run(Shape(kind, DEFAULT_SIZES[kind]), steps=60, seed=seed), path)
        paths.append(path)
    return paths


@contextlib.contextmanager
def terminal_stderr(monkeypatch: pytest.MonkeyPatch) -> Iterator[Callable[[], str]]:
    """sys.stderr on a pseudo-terminal for the block; yields what the terminal received (read after it)."""
    controller, terminal_fd = pty.openpty()
    seen = bytearray()

    def read() -> None:
        while True:
            try:
                chunk = os.read(controller, 4096)
            except OSError:  # EIO: the terminal side was closed
                return
            if not chunk:
                return
            seen.extend(chunk)

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    terminal = os.fdopen(terminal_fd, "w")
    monkeypatch.delenv("TERM", raising=False)
    monkeypatch.setattr(sys, "stderr", terminal)
    try:
        yield lambda: seen.decode(errors="replace")
    finally:
        monkeypatch.setattr(sys, "stderr", sys.__stderr__)
        terminal.close()
        reader.join(timeout=30)
        os.close(controller)


def _trainer_config(**values: object):
    base = {"epochs": 2, "samples": 4, "runs_per_update": 1, "solver_iterations": 5, "threads": 1, "sampler": "gn"}
    base.update(values)
    return load_trainer_config(None, base)


def test_training_draws_bars_on_a_terminal_and_marks_the_kept_epoch(
        short_bags: list[Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    lines: list[str] = []
    out = tmp_path / "leo"
    with terminal_stderr(monkeypatch) as received:
        result = train(short_bags, short_bags[:1], out, load_estimator_config(), _trainer_config(),
                       progress=lines.append)
    terminal = received()
    # each bar is drawn at its start with its total (its last count may fall between refreshes)
    assert "building graphs:   0% 0/2" in terminal and "bag/s" in terminal
    assert "building validation graphs:   0% 0/1" in terminal
    assert "train:   0% 0/2" in terminal and "epoch/s" in terminal
    assert "<" in terminal  # tqdm's [elapsed<remaining]: the ETA
    assert [line.split(":")[0] for line in lines] == ["start", "epoch 1", "epoch 2"]  # the lines are not the bar's
    # learning_curves.png marks the epoch whose model was written, and only that one
    kept = result.kept["epoch"]
    written = (out / CURVES).read_bytes()
    assert written == learning_curves_png(result.history, "leo", kept)
    assert all(written != learning_curves_png(result.history, "leo", other) for other in {0, 1, 2} - {kept})


def test_no_bar_where_stderr_is_not_a_terminal_or_with_quiet(
        short_bags: list[Path], monkeypatch: pytest.MonkeyPatch) -> None:
    model, config = TactileModel.load(None), load_estimator_config()
    pipe = io.StringIO()
    monkeypatch.setattr(sys, "stderr", pipe)
    assert len(load_runs(short_bags, config, model)) == 2
    assert pipe.getvalue() == ""
    monkeypatch.setattr(sys, "stderr", sys.__stderr__)
    P.set_quiet(True)
    try:
        with terminal_stderr(monkeypatch) as received:
            assert len(load_runs(short_bags[:1], config, model)) == 1
        assert received() == ""
    finally:
        P.set_quiet(False)


def test_pretraining_draws_a_bar_that_changes_no_number(
        short_bags: list[Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The bar draws no random number and reorders nothing: the weights are those of a run without it."""
    config = load_estimator_config()
    with terminal_stderr(monkeypatch) as received:
        shown = pretrain(short_bags[:1], [], tmp_path / "shown", config, epochs=2, command="test")
    terminal = received()
    assert "pretrain:   0% 0/2" in terminal and "epoch/s" in terminal
    P.set_quiet(True)
    try:
        hidden = pretrain(short_bags[:1], [], tmp_path / "hidden", config, epochs=2, command="test")
    finally:
        P.set_quiet(False)
    assert shown["history"] == hidden["history"]
    a = torch.load(tmp_path / "shown" / "weights.pt", weights_only=True)
    b = torch.load(tmp_path / "hidden" / "weights.pt", weights_only=True)
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_the_kept_epoch_follows_keep_and_blackbox_keeps_its_best_point() -> None:
    def row(epoch: int, t_mm: float, r_deg: float, loss: float = 0.0) -> dict:
        return {"epoch": epoch, "loss": loss, "val_rmse_translation_m": t_mm / 1e3, "val_rmse_rotation_rad": r_deg}

    history = [row(0, 2.0, 2.0), row(1, 1.0, 1.0), row(2, 1.5, 1.5)]
    assert kept_epoch(history, "leo", "best") == 1
    assert kept_epoch(history, "leo", "last") == 2
    # blackbox's rows carry the best point so far: the first row with the best score is where it was found
    search = [row(0, 2.0, 2.0, 2.0), row(1, 1.0, 1.0, 1.0), row(2, 1.0, 1.0, 1.0)]
    assert kept_epoch(search, "blackbox", "last") == 1 == kept_row(search, "best")["epoch"]
