"""The shipped RViz and Foxglove layouts show the topics the estimator node really has.

Both files name topics by hand; these tests hold them to adapters/live.py's inputs() and outputs()
(private ``~/`` names expanded for the node's default name), so a renamed or added topic fails here
instead of leaving an empty display.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from tactile_estimator.adapters import live
from tactile_estimator.config import load_estimator_config
from tactile_estimator.io import messages

ROOT = Path(__file__).resolve().parents[1]
RVIZ = ROOT / "config" / "tactile_estimator.rviz"
FOXGLOVE = ROOT / "config" / "foxglove_layout.json"
NODE = "estimator_node"  # launch/estimator.launch.py's and run's default node name

RVIZ_CLASSES = {
    "rviz_default_plugins/PoseWithCovariance": messages.POSE_WITH_COVARIANCE_STAMPED,
    "rviz_default_plugins/Path": messages.PATH,
    "rviz_default_plugins/MarkerArray": live.MARKER_ARRAY,
    "rviz_default_plugins/Image": messages.IMAGE,
}


@pytest.fixture(scope="module")
def node_topics() -> dict[str, tuple[str, str]]:
    """Topic -> (message type, QoS kind) of everything the node publishes or reads, by default."""
    config = load_estimator_config()
    topics = {live.node_topic(o.topic, NODE): (o.msgtype, o.qos) for o in live.outputs(config)}
    for i in live.inputs(config):
        topics.setdefault(i.topic, (i.msgtypes[0], i.qos))
    return topics


def _published() -> set[str]:
    return {live.node_topic(o.topic, NODE) for o in live.outputs(load_estimator_config())}


def _rviz_displays() -> list[dict]:
    return yaml.safe_load(RVIZ.read_text())["Visualization Manager"]["Displays"]


def test_rviz_displays_name_real_topics_of_the_right_type(node_topics: dict[str, tuple[str, str]]) -> None:
    shown = set()
    for display in _rviz_displays():
        topic = display.get("Topic", {}).get("Value")
        if topic is None:
            continue
        assert topic in node_topics, f"{display['Name']}: {topic} is not a topic of the node"
        msgtype, qos = node_topics[topic]
        assert RVIZ_CLASSES[display["Class"]] == msgtype, display["Name"]
        expected = "Best Effort" if qos == "sensor" else "Reliable"
        assert display["Topic"]["Reliability Policy"] == expected, display["Name"]
        shown.add(topic)
    classes = {d["Class"] for d in _rviz_displays()}
    assert "rviz_default_plugins/TF" in classes and live.TF_OUT in _published()
    assert shown | {live.TF_OUT, live.DIAGNOSTICS_OUT} >= _published()  # every output but /diagnostics is drawn


def test_rviz_fixed_frame_is_the_world_frame() -> None:
    options = yaml.safe_load(RVIZ.read_text())["Visualization Manager"]["Global Options"]
    assert options["Fixed Frame"] == load_estimator_config().frames.world


def _foxglove() -> dict:
    return json.loads(FOXGLOVE.read_text())


def _foxglove_topics(layout: dict) -> dict[str, list[str]]:
    """Panel id -> the topics (or message paths) it names."""
    named: dict[str, list[str]] = {}
    for panel, config in layout["configById"].items():
        found = list(config.get("topics", {}))
        if "imageTopic" in config.get("imageMode", {}):
            found.append(config["imageMode"]["imageTopic"])
        if "topicToRender" in config:
            found.append(config["topicToRender"])
        found.extend(p["value"] for p in config.get("paths", []))
        named[panel] = found
    return named


def _field_path_exists(msgtype: str, path: list[str]) -> bool:
    for name in path:
        fields = dict(messages.TYPESTORE.fielddefs[msgtype][1])
        if name not in fields:
            return False
        kind, detail = fields[name]
        msgtype = detail if isinstance(detail, str) else ""
    return True


def test_foxglove_panels_name_real_topics_and_fields(node_topics: dict[str, tuple[str, str]]) -> None:
    layout = _foxglove()
    named = _foxglove_topics(layout)
    everything = [t for topics in named.values() for t in topics]
    assert everything
    for item in everything:
        topic, *path = item.split(".")
        assert topic in node_topics, f"{item} is not a topic of the node"
        assert _field_path_exists(node_topics[topic][0], path), f"{item}: no such field"
    topics = {t.split(".")[0] for t in everything}
    assert topics >= _published()  # every output, /diagnostics too
    assert layout["configById"]["3D!estimate"]["followTf"] == load_estimator_config().frames.world


def test_foxglove_layout_places_every_panel_once() -> None:
    layout = _foxglove()

    def leaves(node: object) -> list[str]:
        if isinstance(node, str):
            return [node]
        assert isinstance(node, dict) and {"first", "second", "direction"} <= node.keys()
        return leaves(node["first"]) + leaves(node["second"])

    placed = leaves(layout["layout"])
    assert sorted(placed) == sorted(layout["configById"])


def test_field_check_rejects_a_wrong_path() -> None:
    assert _field_path_exists(messages.POSE_WITH_COVARIANCE_STAMPED, ["pose", "pose", "position", "x"])
    assert not _field_path_exists(messages.POSE_WITH_COVARIANCE_STAMPED, ["pose", "position", "x"])


def test_both_files_are_installed_with_the_package() -> None:
    setup = (ROOT / "setup.py").read_text()
    assert 'glob("config/*.rviz")' in setup and 'glob("config/*.json")' in setup
