"""``tactile-estimator info BAG`` on simulated bags and on real rosbag2 recordings."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tactile_estimator import bag_info, cli
from tactile_estimator.config import load_estimator_config
from tactile_estimator.io import bags
from tactile_estimator.objects import DEFAULT_SIZES
from tactile_estimator.sim.pushing import SimulatedRun

FIXTURES = Path(__file__).resolve().parent / "fixtures" / "ros2-bags"

INFO_WITHOUT_TORCH = """
import sys
from tactile_estimator import cli
code = cli.main(sys.argv[1:])
print("exit", code)
print("torch imported:", "torch" in sys.modules)
"""


def _info_json(capsys: pytest.CaptureFixture[str], *argv: str) -> list[dict]:
    assert cli.main(["info", "--json", *argv]) == 0
    return json.loads(capsys.readouterr().out)


def _keep_only(bag: Path, out: Path, topics: set[str]) -> Path:
    with bags.BagWriter(out) as writer:
        for topic, msgtype, stamp, raw in bags.read_raw(bag):
            if topic in topics:
                writer.write_raw(topic, msgtype, stamp, raw)
    return out


def test_simulated_bag_topics_counts_rates_and_object(rect_bag: Path, rect_run: SimulatedRun,
                                                      capsys: pytest.CaptureFixture[str]) -> None:
    [info] = _info_json(capsys, str(rect_bag))
    topics = info["topics"]
    assert topics["/digit/image_raw/compressed"]["count"] == len(rect_run.tactile)
    assert topics["/object_detection"]["count"] == len(rect_run.camera)
    assert topics["/digit/image_raw/compressed"]["type"] == "sensor_msgs/msg/CompressedImage"
    assert topics["/digit/image_raw/compressed"]["rate_hz"] == pytest.approx(30.0, rel=0.02)
    assert info["messages"] == sum(t["count"] for t in topics.values())
    span = (rect_run.tactile[-1].stamp_ns - rect_run.tactile[0].stamp_ns) * 1e-9
    assert info["duration_s"] >= span
    assert info["object"]["shape"] == "rect" and info["object"]["from"] == "/object_info"
    assert info["object"]["size"] == pytest.approx(list(DEFAULT_SIZES["rect"]))
    assert info["usable"] == {"replay": {"ok": True, "missing": []}, "train": {"ok": True, "missing": []}}

    assert cli.main(["info", str(rect_bag)]) == 0
    text = capsys.readouterr().out
    assert "object:    rect (length x 100.0 mm" in text
    assert "replay:    yes (" in text and "train:     yes (" in text
    row = next(line for line in text.splitlines() if line.strip().startswith("/digit/image_raw/compressed"))
    assert f" {len(rect_run.tactile)} " in row and "30.0 Hz" in row


def test_bag_without_ground_truth_or_camera_says_what_each_command_lacks(
        rect_bag: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from tactile_estimator.adapters.replay import replay_bag
    from tactile_estimator.learning.runs import require_training_topics
    from tactile_estimator.networks.tactile import TactileModel

    stripped = _keep_only(rect_bag, tmp_path / "stripped", {"/digit/image_raw/compressed", "/ee_pose"})
    [info] = _info_json(capsys, str(stripped))
    assert info["usable"]["replay"] == {"ok": False, "missing": ["/object_detection", "object"]}
    assert info["usable"]["train"] == {"ok": False, "missing": ["/object_ground_truth", "object"]}
    assert info["object"] is None and "no /object_info" in info["object_problem"]
    # the commands themselves refuse the same bag
    config = load_estimator_config()
    with pytest.raises(bags.MissingTopicsError, match="/object_detection"):
        replay_bag(stripped, config, TactileModel.load(None), tmp_path / "out")
    with pytest.raises(Exception, match="/object_ground_truth"):
        require_training_topics(stripped, config)

    # with the object in the config and an initial pose, replay needs no camera
    path = tmp_path / "estimator.yaml"
    path.write_text("estimator_node:\n  ros__parameters:\n    initial_object_pose: [0.0, 0.0, 0.0]\n"
                    "    object: {shape: disc, size: [0.05]}\n")
    [info] = _info_json(capsys, str(stripped), "--config", str(path))
    assert info["usable"]["replay"] == {"ok": True, "missing": []}
    assert info["object"] == {"shape": "disc", "size": [0.05], "from": "the config's object"}


@pytest.mark.parametrize("overrides", [{}, {"initial_object_pose": [0.0, 0.0, 0.0]}, {"ee_source": "tf"}])
def test_required_topics_are_the_ones_replay_checks(overrides: dict) -> None:
    from tactile_estimator.playback import required_topics

    config = load_estimator_config(None, overrides)
    assert bag_info.requirements(config)["replay"] == required_topics(config)


@pytest.mark.parametrize("name", ["talker_mcap", "talker_sqlite3"])
def test_real_talker_recordings(name: str, capsys: pytest.CaptureFixture[str]) -> None:
    [info] = _info_json(capsys, str(FIXTURES / name))
    assert info["storage"] == ("mcap" if name == "talker_mcap" else "sqlite3")
    assert info["topics"]["/topic"] == {"type": "std_msgs/msg/String", "count": 10,
                                        "rate_hz": pytest.approx(2.0, rel=0.05), "readable": True}
    assert info["topics"]["/parameter_events"]["count"] == 0
    assert info["messages"] == 20
    assert info["duration_s"] == pytest.approx(4.531, abs=0.001)
    assert info["start_ns"] == 1585866235112411371
    assert not info["usable"]["replay"]["ok"] and not info["usable"]["train"]["ok"]


def test_real_bag_of_types_the_typestore_lacks(capsys: pytest.CaptureFixture[str]) -> None:
    [info] = _info_json(capsys, str(FIXTURES / "cdr_test_mcap"))
    assert info["topics"]["/test_topic"]["type"] == "test_msgs/msg/BasicTypes"
    assert info["topics"]["/test_topic"]["count"] == 3 and not info["topics"]["/test_topic"]["readable"]
    assert cli.main(["info", str(FIXTURES / "cdr_test_mcap")]) == 0
    assert "type not readable" in capsys.readouterr().out


def test_several_bags_in_one_call(rect_bag: Path, capsys: pytest.CaptureFixture[str]) -> None:
    found = _info_json(capsys, str(rect_bag), str(FIXTURES / "talker_mcap" / "talker.mcap"))
    assert [Path(i["bag"]).name for i in found] == ["rect_run", "talker.mcap"]


@pytest.mark.parametrize("make", ["missing", "text_file", "empty_dir"])
def test_bad_paths_are_one_line_exit_2_without_torch(make: str, tmp_path: Path) -> None:
    path = tmp_path / "bag"
    if make == "text_file":
        path = tmp_path / "notes.txt"
        path.write_text("not a bag\n")
    elif make == "empty_dir":
        path.mkdir()
    done = subprocess.run([sys.executable, "-c", INFO_WITHOUT_TORCH, "info", str(path)], capture_output=True,
                          text=True, timeout=120)
    assert done.stdout.splitlines()[-2:] == ["exit 2", "torch imported: False"]
    assert len(done.stderr.splitlines()) == 1, done.stderr
    assert done.stderr.startswith("tactile-estimator: error: ") and str(path) in done.stderr


def test_a_directory_of_bags_is_each_of_its_bags(rect_bag: Path, tmp_path: Path,
                                                 capsys: pytest.CaptureFixture[str]) -> None:
    """As pretrain, train and replay take it: a directory that is not a bag stands for the bags in it."""
    import shutil

    folder = tmp_path / "session"
    folder.mkdir()
    shutil.copytree(rect_bag, folder / "run_a")
    shutil.copy(FIXTURES / "talker_mcap" / "talker.mcap", folder / "run_b.mcap")
    (folder / "notes.txt").write_text("not a bag\n")
    found = _info_json(capsys, str(folder))
    assert [Path(i["bag"]).name for i in found] == ["run_a", "run_b.mcap"]
