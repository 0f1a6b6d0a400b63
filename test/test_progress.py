"""Progress bars: drawn on a terminal's stderr, never into a pipe or a log, never with --quiet."""

from __future__ import annotations

import io
import os
import pty
import subprocess
import sys
from pathlib import Path

import pytest

from tactile_estimator import progress as P

SIMULATE = [sys.executable, "-m", "tactile_estimator.cli"]


def _simulate(out: Path, *flags: str) -> list[str]:
    return [*SIMULATE, *flags, "simulate", "--out", str(out), "--runs", "2", "--steps", "5"]


def _run_with_terminal_stderr(argv: list[str]) -> tuple[int, str, str]:
    """Run ``argv`` with stderr on a pseudo-terminal and stdout on a pipe; (status, stdout, terminal)."""
    controller, terminal = pty.openpty()
    env = {k: v for k, v in os.environ.items() if k != "TERM"}
    done = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=terminal, stdin=subprocess.DEVNULL, env=env)
    os.close(terminal)
    seen = bytearray()
    while True:
        try:
            chunk = os.read(controller, 4096)
        except OSError:  # EIO: every writer of the terminal closed it
            break
        if not chunk:
            break
        seen += chunk
    os.close(controller)
    stdout = done.stdout.read().decode()
    done.stdout.close()
    return done.wait(timeout=120), stdout, seen.decode(errors="replace")


def test_no_bar_when_stderr_is_a_pipe(tmp_path: Path) -> None:
    done = subprocess.run(_simulate(tmp_path / "bags"), capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stderr == ""
    assert len(done.stdout.splitlines()) == 2 and "\r" not in done.stdout


def test_bar_with_eta_when_stderr_is_a_terminal(tmp_path: Path) -> None:
    status, stdout, terminal = _run_with_terminal_stderr(_simulate(tmp_path / "bags"))
    assert status == 0, terminal
    assert "simulate:" in terminal and "2/2" in terminal and "run/s" in terminal
    assert "<" in terminal  # tqdm's [elapsed<remaining]: the ETA
    assert [line.split()[1] for line in stdout.splitlines()] == ["rect", "rect"]  # the results stay on stdout


@pytest.mark.parametrize("where", ["before", "after"])
def test_quiet_silences_the_bar_on_a_terminal(tmp_path: Path, where: str) -> None:
    argv = _simulate(tmp_path / "bags", "--quiet") if where == "before" else [*_simulate(tmp_path / "bags"), "-q"]
    status, stdout, terminal = _run_with_terminal_stderr(argv)
    assert status == 0, terminal
    assert terminal == "" and len(stdout.splitlines()) == 2


def test_progress_yields_every_item_unchanged_without_a_terminal() -> None:
    items = [object() for _ in range(5)]
    assert list(P.progress(items, "x")) == items
    assert list(P.progress(iter(items), "x")) == items  # no len: no total, same items


def test_enabled_follows_quiet_and_the_stream(monkeypatch: pytest.MonkeyPatch) -> None:
    controller, terminal_fd = pty.openpty()
    with os.fdopen(terminal_fd, "w") as terminal, open(os.devnull, "w") as null:
        monkeypatch.delenv("TERM", raising=False)
        assert P.enabled(terminal) and not P.enabled(null) and not P.enabled(io.StringIO())
        monkeypatch.setenv("TERM", "dumb")
        assert not P.enabled(terminal)
        monkeypatch.delenv("TERM")
        try:
            P.set_quiet(True)
            assert not P.enabled(terminal)
        finally:
            P.set_quiet(False)
        assert P.enabled(terminal)
    os.close(controller)
    assert not P.enabled(terminal)  # closed
