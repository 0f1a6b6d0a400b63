"""The offered QoS that a bag from `simulate` carries, so that a plain `ros2 bag play` offers the latched
topics latched (it offers what the bag's metadata says, and volatile where it says nothing)."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from rosbags.interfaces import QosDurability, QosReliability
from rosbags.rosbag2 import Reader

from tactile_estimator.io import bags
from tactile_estimator.io.messages import STRING, string_msg
from tactile_estimator.sim.pushing import SimulatedRun
from tactile_estimator.sim.recording import write_run_bag

LATCHED = ("/object_info", "/tf_static")


@pytest.fixture(scope="module")
def tf_bag(rect_run: SimulatedRun, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The rect run with the end-effector as /ee_pose and as /tf + /tf_static."""
    path = tmp_path_factory.mktemp("bags") / "rect_both"
    write_run_bag(rect_run, path, ee="both")
    return path


def _profiles(bag: Path) -> dict[str, list[dict]]:
    """topic -> its offered profiles, as rosbag2 reads metadata.yaml (version 8: a YAML string)."""
    info = yaml.safe_load((bag / "metadata.yaml").read_text())["rosbag2_bagfile_information"]
    assert info["version"] == 8
    out = {}
    for entry in info["topics_with_message_count"]:
        meta = entry["topic_metadata"]
        text = meta.get("offered_qos_profiles", "")
        out[meta["name"]] = yaml.safe_load(text) if text else []
    return out


def test_simulated_bag_offers_its_latched_topics_transient_local(tf_bag: Path) -> None:
    profiles = _profiles(tf_bag)
    assert set(LATCHED) <= set(profiles)
    for topic in LATCHED:
        (profile,) = profiles[topic]
        # rosbag2's v8 encoding: the rmw enums' values
        assert (profile["history"], profile["depth"], profile["reliability"], profile["durability"]) == (1, 1, 1, 1)
        assert profile["deadline"] == {"sec": 9223372036, "nsec": 854775807}
    assert all(not p for topic, p in profiles.items() if topic not in LATCHED)
    with Reader(tf_bag) as reader:
        qos = {c.topic: c.ext.offered_qos_profiles for c in reader.connections}
    assert qos["/object_info"][0].durability is QosDurability.TRANSIENT_LOCAL
    assert qos["/object_info"][0].reliability is QosReliability.RELIABLE


def test_a_copied_bag_keeps_the_offered_qos_and_the_added_topics_have_none(tf_bag: Path, tmp_path: Path) -> None:
    out = tmp_path / "copy"
    bags.copy_bag_with(tf_bag, out, [("/note", STRING, 1, string_msg("hello"))])
    profiles = _profiles(out)
    assert profiles["/object_info"][0]["durability"] == 1 and profiles["/tf_static"][0]["durability"] == 1
    assert profiles["/note"] == []
    # and it reads as before
    assert [m.msg.data for m in bags.read_messages(out, ["/note"])] == ["hello"]
