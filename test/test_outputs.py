"""What the package writes, when the place it writes to fails it: a full disk, a read-only or unusable
output directory, an unreadable bag directory, ground truth too thin for error figures, and the
temporary files of a process killed while writing.

A full disk is injected at the atomic writer's own file object (the bytes before the failure reach
the temporary file, as on a disk that fills up), or at the bag writer's write; a directory that
refuses new files or reads, at the system calls that would refuse them, since root (as tests often
run) is refused by no file mode. Where the real file mode can be tested (not root), it is too.
"""

from __future__ import annotations

import builtins
import errno
import io
import json
import os
import stat
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

from tactile_estimator.adapters import replay
from tactile_estimator.cli import main
from tactile_estimator.config import load_estimator_config, load_trainer_config
from tactile_estimator.io import atomic, bags
from tactile_estimator.learning.checkpoint import CHECKPOINT, CURVES, LOG_CSV
from tactile_estimator.learning.trainer import Trainer
from tactile_estimator.learning.watch import STATE, ModelWatch
from tactile_estimator.metrics import error_figures, interpolate_poses
from tactile_estimator.networks.tactile import TactileModel
from tactile_estimator.objects import DEFAULT_SIZES, Shape
from tactile_estimator.sim.pushing import simulate_run
from tactile_estimator.sim.recording import write_run_bag

ROOT = Path(__file__).resolve().parents[1]
TRUTH = "/object_ground_truth"


def _modes_bind() -> bool:
    """Whether file modes refuse this process anything (not so for root with CAP_DAC_OVERRIDE)."""
    with tempfile.TemporaryDirectory() as scratch:
        locked = Path(scratch) / "locked"
        locked.mkdir(mode=0)
        try:
            os.listdir(locked)
        except PermissionError:
            return True
        finally:
            locked.chmod(0o700)
    return False


MODES_BIND = _modes_bind()
ROOT_REASON = "file modes refuse this process nothing (root); the tests beside this one deny the system calls instead"


@pytest.fixture(scope="module")
def small_bag(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 30-step rect run: enough for a replay with error figures and a two-epoch training."""
    path = tmp_path_factory.mktemp("outputs") / "run_small"
    write_run_bag(simulate_run(Shape("rect", DEFAULT_SIZES["rect"]), steps=30, seed=7300), path)
    return path


@pytest.fixture(scope="module")
def model() -> TactileModel:
    return TactileModel.load()


def _one_error_line(capsys: pytest.CaptureFixture[str]) -> str:
    err = capsys.readouterr().err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("tactile-estimator: error: "), err
    assert "Traceback" not in err
    return lines[0]


def _temporaries(directory: Path) -> list[str]:
    return sorted(p.name for p in directory.iterdir() if p.name.endswith(atomic.TEMP_SUFFIX) or p.name.startswith("."))


@pytest.fixture
def umask_022() -> Iterator[None]:
    previous = os.umask(0o022)
    yield
    os.umask(previous)


class _FullDisk:
    """The atomic writer's files for targets named in ``names`` take ``room`` bytes, then ENOSPC."""

    def __init__(self, names: set[str], room: int = 10, after: int = 0) -> None:
        self.names, self.room, self.after, self.failures = names, room, after, 0
        self._seen: dict[str, int] = {}

    def open(self, file: os.PathLike[str] | str, mode: str = "r", *args: object, **kwargs: object) -> io.IOBase:
        handle = builtins.open(file, mode, *args, **kwargs)
        target = Path(file).name[1:].rsplit(".", 2)[0]  # .<name>.<random>.tmp
        if target not in self.names:
            return handle
        self._seen[target] = self._seen.get(target, 0) + 1
        if self._seen[target] <= self.after:
            return handle
        disk = self

        class Filling:
            def __init__(self) -> None:
                self.left = disk.room

            def write(self, data: bytes | str) -> int:
                if len(data) > self.left:
                    handle.write(data[: self.left])
                    handle.flush()
                    self.left = 0
                    disk.failures += 1
                    raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
                self.left -= len(data)
                return handle.write(data)

            def __getattr__(self, name: str) -> object:
                return getattr(handle, name)

            def __enter__(self) -> Filling:
                return self

            def __exit__(self, *exc: object) -> None:
                handle.close()

        return Filling()  # type: ignore[return-value]


def _fill_disk(monkeypatch: pytest.MonkeyPatch, *names: str, room: int = 10, after: int = 0) -> _FullDisk:
    disk = _FullDisk(set(names), room, after)
    monkeypatch.setattr(atomic, "open", disk.open, raising=False)
    return disk


def _refuse_new_files(monkeypatch: pytest.MonkeyPatch, directory: Path, code: int = errno.EROFS) -> None:
    """Creating a file in ``directory`` fails as on a read-only mount (or, EACCES, a read-only mode)."""
    real = tempfile.mkstemp

    def mkstemp(*args: object, dir: str | os.PathLike[str] | None = None, **kwargs: object) -> tuple[int, str]:
        if dir is not None and Path(dir).resolve() == directory.resolve():
            raise OSError(code, os.strerror(code), str(Path(dir) / "x"))
        return real(*args, dir=dir, **kwargs)

    monkeypatch.setattr(tempfile, "mkstemp", mkstemp)


# ------------------------------------------------------------------------------ the atomic writer
def test_a_full_disk_leaves_the_earlier_file_and_no_temporary(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    target = tmp_path / "metrics.json"
    target.write_text("earlier\n")
    disk = _fill_disk(monkeypatch, "metrics.json", "fresh.json", room=4)
    with pytest.raises(atomic.OutputError) as caught:
        atomic.atomic_write_text(target, "a new and longer content\n")
    assert disk.failures == 1
    assert str(caught.value) == (f"cannot write {target}: No space left on device; the previous metrics.json is kept")
    assert caught.value.errno == errno.ENOSPC
    assert target.read_text() == "earlier\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["metrics.json"]
    with pytest.raises(atomic.OutputError, match="; no fresh.json was written$"):
        atomic.atomic_write_text(tmp_path / "fresh.json", "x" * 20)  # no earlier file: nothing is left
    monkeypatch.undo()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["metrics.json"]


def test_files_get_the_mode_open_gives_them(tmp_path: Path) -> None:
    previous = os.umask(0o027)
    try:
        atomic.atomic_write_bytes(tmp_path / "a", b"1")
        with atomic.atomic_path(tmp_path / "b") as tmp:
            torch.save({"x": torch.zeros(1)}, tmp)
        os.umask(0o022)
        atomic.atomic_write_bytes(tmp_path / "c", b"1")
        os.chmod(tmp_path / "a", 0o600)  # a file that is replaced keeps its mode
        atomic.atomic_write_bytes(tmp_path / "a", b"2")
    finally:
        os.umask(previous)
    modes = {name: stat.S_IMODE((tmp_path / name).stat().st_mode) for name in "abc"}
    assert modes == {"a": 0o600, "b": 0o640, "c": 0o644}


def test_a_saved_model_gets_the_mode_open_gives_files(tmp_path: Path, model: TactileModel, umask_022: None) -> None:
    model.save(tmp_path / "model")
    for name in ("weights.pt", "model.yaml"):
        assert stat.S_IMODE((tmp_path / "model" / name).stat().st_mode) == 0o644, name


def test_the_rename_follows_an_fsync_and_the_directory_is_fsynced_after(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    events: list[tuple[str, int, bool]] = []
    real_fsync, real_replace = os.fsync, os.replace

    def fsync(fd: int) -> None:
        info = os.fstat(fd)
        events.append(("fsync", info.st_ino, stat.S_ISDIR(info.st_mode)))
        real_fsync(fd)

    def replace(src: str, dst: str, **kwargs: object) -> None:
        events.append(("replace", os.stat(src).st_ino, False))
        real_replace(src, dst, **kwargs)

    monkeypatch.setattr(os, "fsync", fsync)
    monkeypatch.setattr(os, "replace", replace)
    model_dir = tmp_path / "model"
    TactileModel.load().save(model_dir)  # the model writer: weights.pt (torch.save to a path) and model.yaml
    atomic.atomic_write_text(tmp_path / "state.json", "{}")
    monkeypatch.undo()
    replaces = [i for i, e in enumerate(events) if e[0] == "replace"]
    assert len(replaces) == 3
    for i in replaces:
        inode = events[i][1]
        assert any(e == ("fsync", inode, False) for e in events[:i]), "the file is fsynced before its rename"
        assert i + 1 < len(events) and events[i + 1][0] == "fsync" and events[i + 1][2], "then its directory"


def test_only_our_stale_temporaries_are_removed(tmp_path: Path) -> None:
    ours = [".checkpoint.pt.k3j4h5g6", ".checkpoint.pt.a_b9x2qz.tmp", ".write-test.12345678.tmp"]
    theirs = [".checkpoint.pt.notes", "checkpoint.pt.k3j4h5g6", ".weights.pt.k3j4h5g6", ".checkpoint.pt.K3J4H5G6",
              "checkpoint.pt", "notes.txt"]
    for name in ours + theirs:
        (tmp_path / name).write_text("x")
    (tmp_path / ".checkpoint.pt.dir12345").mkdir()
    removed = atomic.remove_stale_temps(tmp_path, ["checkpoint.pt"])
    assert sorted(p.name for p in removed) == sorted(ours)
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([*theirs, ".checkpoint.pt.dir12345"])


# ------------------------------------------------------------------------------ ground truth
def test_interpolation_takes_zero_or_one_ground_truth_pose() -> None:
    query = np.array([10, 20, 30])
    poses, covered = interpolate_poses(np.zeros(0, dtype=np.int64), np.zeros((0, 3)), query)
    assert poses.shape == (3, 3) and np.isnan(poses).all() and not covered.any()
    poses, covered = interpolate_poses(np.array([20]), np.array([[0.1, 0.2, 0.3]]), query)
    np.testing.assert_array_equal(poses, np.tile([0.1, 0.2, 0.3], (3, 1)))
    assert covered.tolist() == [False, True, False]
    online = (query, np.zeros((3, 3)))
    one = error_figures((np.array([20]), np.array([[0.1, 0.2, 0.3]])), online, online, TRUTH)
    assert one == {"ground_truth_poses": 1, "no_error_figures": f"{TRUTH} has 1 usable pose; the errors need at "
                                                                "least 2 to interpolate the ground truth at the "
                                                                "estimates' stamps"}
    apart = error_figures((np.array([100, 200]), np.zeros((2, 3))), online, online, TRUTH)
    assert "rmse_translation_m" not in apart and "cover no estimate's stamp" in apart["no_error_figures"]


def _with_truth(bag: Path, out: Path, keep: int) -> Path:
    """A copy of ``bag`` with only its first ``keep`` ground-truth poses."""
    kept = 0
    with bags.BagWriter(out) as writer:
        for message in bags.read_messages(bag):
            if message.topic == TRUTH:
                kept += 1
                if kept > keep:
                    continue
            writer.write(message.topic, message.msgtype, message.log_time_ns, message.msg)
    return out


@pytest.mark.parametrize("keep", [1, 0])
def test_replay_with_too_little_ground_truth_writes_metrics_saying_why(
    small_bag: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], keep: int
) -> None:
    bag = _with_truth(small_bag, tmp_path / f"truth_{keep}", keep)
    out = tmp_path / "out"
    assert main(["replay", str(bag), "--out", str(out)]) == 0
    row = next(line for line in capsys.readouterr().out.splitlines() if line.startswith(bag.name))
    assert row.split()[3:7] == ["-"] * 4  # the table shows no error figures
    figures = json.loads((out / bag.name / "metrics.json").read_text())
    assert figures["steps"] == 30 and figures["ground_truth_poses"] == keep
    assert not any(key.startswith(("rmse", "final_")) for key in figures)
    assert figures["no_error_figures"] == (
        f"{TRUTH} has 1 usable pose; the errors need at least 2 to interpolate the ground truth at the estimates' "
        "stamps" if keep else f"no usable pose on {TRUTH}")
    assert len((out / bag.name / "estimates.csv").read_text().splitlines()) == 31
    assert (out / bag.name / "paths.png").read_bytes()[:4] == b"\x89PNG"


# ------------------------------------------------------------------------------ replay's places
def _deny_reads(monkeypatch: pytest.MonkeyPatch, directory: Path) -> None:
    """The system calls refuse what a directory of mode 0 refuses a user: its listing, and any path inside."""
    inside = str(directory.resolve()) + os.sep

    def denied(path: object) -> bool:
        try:
            name = os.fspath(path)  # type: ignore[arg-type]
        except TypeError:
            return False
        if isinstance(name, bytes):
            name = os.fsdecode(name)
        return os.path.abspath(name).startswith(inside)

    def refuse(path: object) -> OSError:
        return PermissionError(errno.EACCES, os.strerror(errno.EACCES), os.fspath(path))  # type: ignore[arg-type]

    def guard(real, listing: bool = False):  # noqa: ANN001, ANN202
        def call(path: object = ".", *args: object, **kwargs: object) -> object:
            if denied(path) or (listing and denied(os.path.join(os.fspath(path), "x"))):  # type: ignore[arg-type]
                raise refuse(path)
            return real(path, *args, **kwargs)
        return call

    for name in ("stat", "lstat", "open"):
        monkeypatch.setattr(os, name, guard(getattr(os, name)))
    for name in ("listdir", "scandir"):
        monkeypatch.setattr(os, name, guard(getattr(os, name), listing=True))
    monkeypatch.setattr(builtins, "open", guard(builtins.open))
    monkeypatch.setattr(io, "open", guard(io.open))


def test_an_unreadable_bag_directory_gets_one_line(small_bag: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                   capsys: pytest.CaptureFixture[str]) -> None:
    _deny_reads(monkeypatch, small_bag)
    assert main(["replay", str(small_bag), "--out", str(tmp_path / "out")]) == 2
    monkeypatch.undo()
    line = _one_error_line(capsys)
    assert str(small_bag) in line and "Permission denied" in line


@pytest.mark.skipif(not MODES_BIND, reason=ROOT_REASON)
def test_an_unreadable_bag_directory_by_its_mode_gets_one_line(small_bag: Path, tmp_path: Path) -> None:
    bag = tmp_path / "locked"
    bags.copy_bag_with(small_bag, bag, [])
    bag.chmod(0)
    try:
        result = subprocess.run([sys.executable, "-m", "tactile_estimator.cli", "replay", str(bag), "--out",
                                 str(tmp_path / "out")], capture_output=True, text=True, timeout=120)
    finally:
        bag.chmod(0o755)
    assert result.returncode == 2 and len(result.stderr.strip().splitlines()) == 1, result.stderr
    assert str(bag) in result.stderr and "Traceback" not in result.stderr


def test_replay_to_an_out_that_cannot_be_made_fails_before_reading_a_bag(
    small_bag: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    replayed: list[Path] = []
    monkeypatch.setattr(replay, "replay_bag", lambda bag, *args, **kwargs: replayed.append(bag))
    blocker = tmp_path / "a_file"
    blocker.write_text("not a directory")
    assert main(["replay", str(small_bag), "--out", str(blocker / "out")]) == 2
    line = _one_error_line(capsys)
    assert f"--out {blocker / 'out'} cannot be created: Not a directory" in line
    assert main(["replay", str(small_bag), "--out", str(blocker)]) == 2
    assert f"--out {blocker} exists and is not a directory" in _one_error_line(capsys)
    read_only = tmp_path / "read_only"
    read_only.mkdir()
    _refuse_new_files(monkeypatch, read_only)
    assert main(["replay", str(small_bag), "--out", str(read_only)]) == 2
    assert f"--out {read_only} is not writable: Read-only file system" in _one_error_line(capsys)
    assert replayed == []


@pytest.mark.skipif(not MODES_BIND, reason=ROOT_REASON)
def test_replay_to_a_read_only_out_by_its_mode_gets_one_line(small_bag: Path, tmp_path: Path,
                                                              capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "out"
    out.mkdir(mode=0o555)
    try:
        assert main(["replay", str(small_bag), "--out", str(out)]) == 2
    finally:
        out.chmod(0o755)
    assert f"--out {out} is not writable: Permission denied" in _one_error_line(capsys)


def test_a_full_disk_at_the_end_of_a_replay_keeps_the_earlier_metrics(
    small_bag: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "out"
    assert main(["replay", str(small_bag), "--out", str(out), "--disable-factor", "tactile"]) == 0
    capsys.readouterr()
    bag_out = out / small_bag.name
    earlier = {name: (bag_out / name).read_bytes() for name in ("estimates.csv", "metrics.json")}
    disk = _fill_disk(monkeypatch, "metrics.json", room=100)
    assert main(["replay", str(small_bag), "--out", str(out)]) == 2
    assert disk.failures == 1
    line = _one_error_line(capsys)
    assert line.endswith(f"cannot write {bag_out / 'metrics.json'}: No space left on device; "
                         "the previous metrics.json is kept")
    assert (bag_out / "metrics.json").read_bytes() == earlier["metrics.json"]
    assert (bag_out / "estimates.csv").read_bytes() != earlier["estimates.csv"]  # written whole before the failure
    assert _temporaries(bag_out) == []


def test_a_full_disk_while_writing_the_bag_copy_gets_one_line(
    small_bag: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    real = bags.BagWriter.write_raw
    written = {"n": 0}

    def write_raw(self: bags.BagWriter, *args: object) -> None:
        written["n"] += 1
        if written["n"] > 50:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        real(self, *args)

    monkeypatch.setattr(bags.BagWriter, "write_raw", write_raw)
    out = tmp_path / "out"
    assert main(["replay", str(small_bag), "--out", str(out), "--write-bag"]) == 2
    bag_out = out / small_bag.name
    copy = bag_out / f"{small_bag.name}_with_estimates"
    assert _one_error_line(capsys).endswith(f"cannot write bag {copy}: No space left on device; estimates.csv, "
                                            "metrics.json and paths.png were written")
    assert sorted(p.name for p in bag_out.iterdir()) == ["estimates.csv", "metrics.json", "paths.png"]
    assert "rmse_translation_m" in json.loads((bag_out / "metrics.json").read_text())


# ------------------------------------------------------------------------------ training and simulation
def _trainer_config(**values: object):
    base = {"epochs": 2, "samples": 2, "runs_per_update": 1, "solver_iterations": 3, "threads": 1, "sampler": "gn",
            "keep": "last"}
    base.update(values)
    return load_trainer_config(None, base)


def test_a_full_disk_at_a_checkpoint_stops_training_and_resume_removes_the_killed_writers_temporaries(
    small_bag: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
    umask_022: None
) -> None:
    trainer_yaml = tmp_path / "trainer.yaml"
    trainer_yaml.write_text(yaml.safe_dump({"trainer_node": {"ros__parameters": {
        "epochs": 1, "samples": 2, "runs_per_update": 1, "solver_iterations": 3, "threads": 1, "sampler": "gn",
        "keep": "last"}}}))
    out = tmp_path / "out"
    args = ["train", str(small_bag), "--out", str(out), "--trainer-config", str(trainer_yaml)]
    disk = _fill_disk(monkeypatch, CHECKPOINT, room=1000, after=1)  # the start's checkpoint, then a full disk
    assert main(args) == 2
    monkeypatch.undo()
    assert disk.failures == 1
    assert _one_error_line(capsys) == (f"tactile-estimator: error: cannot write {out / CHECKPOINT}: No space left "
                                       "on device; the previous checkpoint.pt is kept; training stopped, --resume "
                                       "continues from it")
    state = torch.load(out / CHECKPOINT, weights_only=True)
    assert (state["epoch"], state["update"]) == (0, 0)
    assert _temporaries(out) == []
    for name in (CHECKPOINT, LOG_CSV, CURVES, "weights.pt", "model.yaml"):
        assert stat.S_IMODE((out / name).stat().st_mode) == 0o644, name
    # a process killed while writing leaves its temporaries; the next start removes those, and only those
    for name in (".checkpoint.pt.k3j4h5g6", ".weights.pt.a1b2c3d4.tmp", ".training_log.csv.zz99yy88.tmp"):
        (out / name).write_bytes(b"half")
    (out / "notes.txt").write_text("mine")
    assert main([*args, "--resume"]) == 0
    assert len((out / LOG_CSV).read_text().splitlines()) == 1 + 2  # the start and epoch 1
    assert _temporaries(out) == []
    assert (out / "notes.txt").read_text() == "mine"


def test_training_to_an_out_that_cannot_take_files_fails_before_reading_a_bag(
    small_bag: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from tactile_estimator.learning import runs

    loaded: list[object] = []
    monkeypatch.setattr(runs, "load_runs", lambda *args, **kwargs: loaded.append(args))
    blocker = tmp_path / "a_file"
    blocker.write_text("not a directory")
    assert main(["train", str(small_bag), "--out", str(blocker / "out")]) == 2
    assert f"--out {blocker / 'out'} cannot be created: Not a directory" in _one_error_line(capsys)
    read_only = tmp_path / "read_only"
    read_only.mkdir()
    _refuse_new_files(monkeypatch, read_only, errno.EACCES)
    assert main(["train", str(small_bag), "--out", str(read_only)]) == 2
    assert f"--out {read_only} is not writable: Permission denied" in _one_error_line(capsys)
    with pytest.raises(atomic.OutputError, match=f"output directory {read_only} is not writable"):
        Trainer([small_bag], [], read_only, load_estimator_config(), _trainer_config())
    assert loaded == []


def test_simulate_to_an_out_that_cannot_take_files_or_a_full_disk_gets_one_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from tactile_estimator.sim import pushing

    simulated: list[object] = []
    real_simulate = pushing.simulate_run
    monkeypatch.setattr(pushing, "simulate_run", lambda *a, **k: simulated.append(a) or real_simulate(*a, **k))
    blocker = tmp_path / "a_file"
    blocker.write_text("not a directory")
    assert main(["simulate", "--out", str(blocker / "out"), "--steps", "5"]) == 2
    assert f"--out {blocker / 'out'} cannot be created: Not a directory" in _one_error_line(capsys)
    read_only = tmp_path / "read_only"
    read_only.mkdir()
    _refuse_new_files(monkeypatch, read_only)
    assert main(["simulate", "--out", str(read_only), "--steps", "5"]) == 2
    assert f"--out {read_only} is not writable: Read-only file system" in _one_error_line(capsys)
    assert simulated == []

    def write_raw(self: bags.BagWriter, *args: object) -> None:
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(bags.BagWriter, "write_raw", write_raw)
    out = tmp_path / "sim"
    assert main(["simulate", "--out", str(out), "--steps", "5"]) == 2
    bag = out / "run_0000_rect"
    assert _one_error_line(capsys).endswith(f"cannot write bag {bag}: No space left on device; no bag was left there")
    assert list(out.iterdir()) == []


def test_the_watcher_checks_its_out_and_removes_its_killed_writers_temporaries(tmp_path: Path) -> None:
    watched = tmp_path / "bags"
    watched.mkdir()
    blocker = tmp_path / "a_file"
    blocker.write_text("not a directory")
    with pytest.raises(atomic.OutputError, match=f"--out {blocker / 'out'} cannot be created"):
        ModelWatch([watched], blocker / "out", load_estimator_config(), _trainer_config())
    out = tmp_path / "out"
    out.mkdir()
    (out / f".{STATE}.q1w2e3r4.tmp").write_text('{"accepted": [')
    watch = ModelWatch([watched], out, load_estimator_config(), _trainer_config())
    assert watch.poll() is None
    assert sorted(p.name for p in out.iterdir()) == []


def test_a_model_saved_twice_is_the_same_bytes_as_the_shipped_one(tmp_path: Path) -> None:
    """make model can reproduce models/ byte for byte: the weights file does not carry the random
    name of the temporary file it was written through."""
    from tactile_estimator.networks.tactile import DEFAULT_MODEL_DIR, WEIGHTS, TactileModel

    model = TactileModel.load()
    model.save(tmp_path / "a")
    model.save(tmp_path / "b")
    first = (tmp_path / "a" / WEIGHTS).read_bytes()
    assert first == (tmp_path / "b" / WEIGHTS).read_bytes() == (Path(DEFAULT_MODEL_DIR) / WEIGHTS).read_bytes()
