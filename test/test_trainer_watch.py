"""The trainer's watch mode: new bags in, model directories out, published over real DDS.

Bags are real rosbag2 recordings from the simulator; a bag without ground truth and a truncated
one are rejected with their reasons while the others train; an interrupted round resumes at the
next start; the DDS trainer publishes ``/trainer_node/model_updated`` and a live estimator that
receives it reloads the model.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from tactile_estimator.adapters import dds
from tactile_estimator.adapters.live import LiveEstimator, watch_from_parameters
from tactile_estimator.config import ConfigError, load_estimator_config, load_trainer_config
from tactile_estimator.io import bags, messages
from tactile_estimator.learning.watch import LATEST, STATE, ModelWatch
from tactile_estimator.networks.tactile import TactileModel
from tactile_estimator.objects import DEFAULT_SIZES, Shape
from tactile_estimator.sim.pushing import simulate_run
from tactile_estimator.sim.recording import write_run_bag

ROOT = Path(__file__).resolve().parents[1]
TOPIC = "/trainer_node/model_updated"


@pytest.fixture(scope="module")
def source_bags(tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    """Three 60-step runs, written once; tests copy them into the directory being watched."""
    out = tmp_path_factory.mktemp("watch_source")
    paths = []
    for seed, kind in ((7200, "rect"), (7201, "disc"), (7202, "ellipse")):
        path = out / f"run_{seed}_{kind}"
        write_run_bag(simulate_run(Shape(kind, DEFAULT_SIZES[kind]), steps=60, seed=seed), path)
        paths.append(path)
    return paths


def _config(**values: object):
    base = {"epochs": 1, "samples": 4, "runs_per_update": 1, "solver_iterations": 5, "threads": 1, "sampler": "gn",
            "watch.settle_s": 0.0, "watch.accept": "always"}
    base.update(values)
    return load_trainer_config(None, base)


def _state(out: Path) -> dict:
    return json.loads((out / STATE).read_text())


def test_new_bags_start_rounds_that_build_on_the_last_model(source_bags: list[Path], tmp_path: Path) -> None:
    watched, out = tmp_path / "bags", tmp_path / "models"
    watched.mkdir()
    shutil.copytree(source_bags[0], watched / source_bags[0].name)
    watch = ModelWatch([watched], out, load_estimator_config(), _config())
    first = watch.poll()
    assert first == out / "model_0001" and (first / "weights.pt").is_file()
    assert (out / LATEST).resolve() == first.resolve()
    TactileModel.load(out / LATEST)  # the estimator loads what the symlink names
    assert watch.poll() is None, "no new bag, no round"

    # a bag being recorded (no metadata.yaml yet) is left alone until the recorder closes it
    recording = watched / source_bags[1].name
    shutil.copytree(source_bags[1], recording)
    (recording / "metadata.yaml").rename(tmp_path / "metadata.yaml")
    assert watch.poll() is None and watch.scan() == []
    (tmp_path / "metadata.yaml").rename(recording / "metadata.yaml")

    second = watch.poll()
    assert second == out / "model_0002"
    state = _state(out)
    last = state["rounds"][-1]
    assert last["init"] == str(first) and last["new_bags"] == [str(recording.resolve())]
    assert len(last["bags"]) == 2, "cumulative: every accepted bag so far"
    description = TactileModel.load(second).description
    assert description["training"]["init"] == str(first)
    assert "round 2" in description["training"]["command"]
    # a new watcher over the same output carries on where this one stopped
    again = ModelWatch([watched], out, load_estimator_config(), _config())
    assert again.latest_model == second and again.poll() is None


def test_bad_bags_are_rejected_with_their_reason_and_the_others_train(source_bags: list[Path],
                                                                      tmp_path: Path) -> None:
    watched, out = tmp_path / "bags", tmp_path / "models"
    watched.mkdir()
    with bags.BagWriter(watched / "chatter") as writer:  # a real bag without the estimator's topics
        writer.write("/chatter", messages.STRING, 1_000, messages.string_msg("hello"))
    mcap = next(source_bags[0].glob("*.mcap"))
    (watched / "truncated.mcap").write_bytes(mcap.read_bytes()[: mcap.stat().st_size // 3])
    shutil.copytree(source_bags[2], watched / source_bags[2].name)
    progress: list[str] = []
    watch = ModelWatch([watched], out, load_estimator_config(), _config(), progress=progress.append)
    model = watch.poll()
    assert model == out / "model_0001"
    rejected = _state(out)["rejected"]
    assert set(rejected) == {str((watched / "chatter").resolve()), str((watched / "truncated.mcap").resolve())}
    assert "/object_ground_truth" in rejected[str((watched / "chatter").resolve())]
    assert "truncated.mcap" in rejected[str((watched / "truncated.mcap").resolve())]
    assert all("\n" not in reason for reason in rejected.values())
    assert sum("bag rejected" in line for line in progress) == 2
    assert watch.poll() is None, "rejected bags are not retried"


def test_a_bare_bag_file_counts_once_it_stops_changing(source_bags: list[Path], tmp_path: Path) -> None:
    watched = tmp_path / "bags"
    watched.mkdir()
    now = [1000.0]
    watch = ModelWatch([watched], tmp_path / "models", load_estimator_config(), _config(**{"watch.settle_s": 5.0}),
                       clock=lambda: now[0])
    target = watched / "run.mcap"
    data = next(source_bags[0].glob("*.mcap")).read_bytes()
    target.write_bytes(data[:1000])
    assert watch.scan() == []
    now[0] += 10
    target.write_bytes(data)  # still growing
    assert watch.scan() == []
    now[0] += 4
    assert watch.scan() == []
    now[0] += 2
    assert watch.scan() == [target]


def test_a_round_that_does_not_improve_is_kept_but_not_published(source_bags: list[Path], tmp_path: Path) -> None:
    watched, out = tmp_path / "bags", tmp_path / "models"
    watched.mkdir()
    shutil.copytree(source_bags[0], watched / source_bags[0].name)
    watch = ModelWatch([watched], out, load_estimator_config(), _config(epochs=0, **{"watch.accept": "improved"}))
    assert watch.poll() is None, "zero epochs: the validation error cannot have gone down"
    state = _state(out)
    assert state["rounds"][0]["accepted"] is False and (out / "model_0001" / "weights.pt").is_file()
    assert watch.latest_model is None and not (out / LATEST).exists()


def test_watch_configuration_is_checked(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="watch.accept"):
        load_trainer_config(None, {"watch.accept": "sometimes"})
    with pytest.raises(ConfigError, match="poll_s"):
        load_trainer_config(None, {"watch.poll_s": 0})
    # the trainer node's parameters, as ROS hands them over (dotted names over the parameter file)
    params = {"bag_dir": str(tmp_path), "out_dir": str(tmp_path / "models"), "use_sim_time": False,
              "config_file": str(ROOT / "config" / "trainer.yaml"), "epochs": 3, "watch.poll_s": 2.5}
    watch = watch_from_parameters(params)
    assert watch.config.epochs == 3 and watch.config.watch.poll_s == 2.5 and watch.config.sampler == "gn"
    assert watch.watch_dirs == [tmp_path]
    with pytest.raises(ConfigError, match="epohcs"):
        watch_from_parameters({**params, "epohcs": 3})
    with pytest.raises(ConfigError, match="bag_dir"):
        watch_from_parameters({k: v for k, v in params.items() if k != "bag_dir"})
    with pytest.raises(bags.BagError, match="missing"):
        watch_from_parameters({**params, "bag_dir": str(tmp_path / "missing")})


def _cli(args: list[str], **kwargs) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "CYCLONEDDS_URI": dds.localhost_config()}
    return subprocess.Popen([sys.executable, "-m", "tactile_estimator.cli", *args], env=env, cwd=ROOT,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, **kwargs)


def _trainer_file(tmp_path: Path, **values: object) -> Path:
    params = {"epochs": 4, "samples": 4, "runs_per_update": 1, "solver_iterations": 5, "threads": 1, "sampler": "gn",
              "watch": {"settle_s": 0.0, "accept": "always", "poll_s": 0.5}}
    params.update(values)
    path = tmp_path / "trainer.yaml"
    path.write_text(json.dumps({"trainer_node": {"ros__parameters": params}}))
    return path


def test_an_interrupted_round_resumes_at_the_next_start(source_bags: list[Path], tmp_path: Path) -> None:
    watched = tmp_path / "bags"
    watched.mkdir()
    for bag in source_bags[:2]:
        shutil.copytree(bag, watched / bag.name)
    config = _trainer_file(tmp_path)
    args = ["train", str(watched), "--once", "--trainer-config", str(config)]
    # uninterrupted, for reference
    reference = _cli([*args, "--out", str(tmp_path / "reference")])
    out, err = reference.communicate(timeout=300)
    assert reference.returncode == 0, err

    proc = _cli([*args, "--out", str(tmp_path / "models")])
    assert proc.stdout is not None
    deadline = time.monotonic() + 300
    for line in proc.stdout:
        if "epoch 1:" in line or time.monotonic() > deadline:
            break
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, err
    assert "interrupted" in err and "checkpoint" in err
    state = _state(tmp_path / "models")
    assert state["in_progress"]["number"] == 1 and state["rounds"] == []
    assert (tmp_path / "models" / "model_0001.partial" / "checkpoint.pt").is_file()

    resumed = _cli([*args, "--out", str(tmp_path / "models")])
    out, err = resumed.communicate(timeout=300)
    assert resumed.returncode == 0, err
    assert "resuming" in out and "new model" in out
    got = torch.load(tmp_path / "models" / "model_0001" / "weights.pt", weights_only=True)
    want = torch.load(tmp_path / "reference" / "model_0001" / "weights.pt", weights_only=True)
    assert got.keys() == want.keys()
    for name in want:
        assert torch.equal(got[name], want[name]), name


def test_the_trainer_publishes_new_models_over_dds_and_the_estimator_reloads(source_bags: list[Path],
                                                                             tmp_path: Path) -> None:
    domain = 1 + (os.getpid() + 41) % 97
    watched = tmp_path / "bags"
    watched.mkdir()
    config = _trainer_file(tmp_path, epochs=1)
    proc = _cli(["train", str(watched), "--watch", "--out", str(tmp_path / "models"), "--trainer-config", str(config),
                 "--domain", str(domain), "--localhost", "--duration", "240"])
    bus = dds.DdsBus(domain, dds.localhost_config())
    try:
        bus.subscribe(TOPIC, messages.STRING, dds.LATCHED)
        live = LiveEstimator(load_estimator_config(), TactileModel.load())
        received: list[str] = []

        def wait_for(count: int, timeout_s: float) -> None:
            deadline = time.monotonic() + timeout_s
            while len(received) < count and time.monotonic() < deadline and proc.poll() is None:
                bus.wait(0.1)
                for m in bus.take():
                    received.append(m.msg.data)
                    live.handle(m.topic, m.msgtype, m.msg)

        wait_for(1, 20)
        assert received == [], "nothing to publish before a bag arrives"
        shutil.copytree(source_bags[0], watched / source_bags[0].name)
        wait_for(1, 200)
        assert received == [str((tmp_path / "models" / "model_0001").resolve())], proc.stderr
        assert live.all_events()["model_reloaded"] == 1
        shutil.copytree(source_bags[1], watched / source_bags[1].name)
        wait_for(2, 200)
        assert received[1] == str((tmp_path / "models" / "model_0002").resolve())
        assert live.all_events()["model_reloaded"] == 2
    finally:
        bus.close()
        if proc.poll() is None:
            proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err
    assert "2 models published" in out


def test_an_unreadable_watch_state_is_a_clear_error_and_is_left_as_it_is(tmp_path: Path) -> None:
    from tactile_estimator.learning.datasets import DatasetError

    out = tmp_path / "models"
    out.mkdir()
    (out / STATE).write_text('{"accepted": [')  # cut short, as by a full disk
    with pytest.raises(DatasetError, match=STATE) as raised:
        ModelWatch([tmp_path], out, load_estimator_config(), _config())
    assert "\n" not in str(raised.value) and "move it away" in str(raised.value)
    assert (out / STATE).read_text() == '{"accepted": ['
