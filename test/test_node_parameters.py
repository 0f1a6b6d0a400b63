"""What the nodes declare as parameters and how they refuse a runtime change, and the one type each
live pose input takes; the rclpy side is in test_ros_nodes.py."""

from __future__ import annotations

from pathlib import Path

import pytest

from tactile_estimator.adapters.live import inputs, parameters_in_force, runtime_set_refusal
from tactile_estimator.config import ConfigError, load_estimator_config
from tactile_estimator.io import messages

ROOT = Path(__file__).resolve().parents[1]


def test_parameters_in_force_are_the_config_and_load_back_to_it() -> None:
    config = load_estimator_config(ROOT / "config" / "estimator.yaml", {"live.stale_after_s": 0.75})
    values = parameters_in_force(config)
    assert values["live.stale_after_s"] == 0.75 and values["backend"] == config.backend
    assert values["tactile_offsets"] == [1, 2, 4, 8] and values["noise.ee_prior"] == config.noise.ee_prior
    assert "disabled_factors" not in values  # an empty list has no ROS parameter type
    for value in values.values():  # each is one ROS parameter type
        assert isinstance(value, (bool, int, float, str)) or len({type(v) for v in value}) == 1
    assert load_estimator_config(None, values) == config


def test_a_mixed_number_list_is_declared_as_floats() -> None:
    config = load_estimator_config(None, {"camera.object_T_tag": [0, 0, 0.03, 0, 0, 0, 1]})
    assert parameters_in_force(config)["camera.object_T_tag"] == [0.0, 0.0, 0.03, 0.0, 0.0, 0.0, 1.0]


def test_a_runtime_set_is_refused_with_what_to_do() -> None:
    reason = runtime_set_refusal("live.stale_after_s", "estimator_node")
    assert "'live.stale_after_s'" in reason and "read at start" in reason and "restart" in reason
    assert "-p live.stale_after_s:=VALUE" in reason and "\n" not in reason
    managed = runtime_set_refusal("backend", "estimator_node", "at configure")
    assert "read at configure" in managed and "configure again" in managed


def test_each_pose_input_is_subscribed_as_one_type_chosen_by_a_parameter() -> None:
    def types(config: object) -> dict[str, tuple[str, ...]]:
        return {i.topic: i.msgtypes for i in inputs(config)}

    shipped = types(load_estimator_config(ROOT / "config" / "estimator.yaml"))
    # what simulate writes: the end-effector as PoseStamped, the detections with their covariance
    assert shipped["/ee_pose"] == (messages.POSE_STAMPED,)
    assert shipped["/object_detection"] == (messages.POSE_WITH_COVARIANCE_STAMPED,)
    other = types(load_estimator_config(None, {"topics.ee_pose_type": "PoseWithCovarianceStamped",
                                               "topics.camera_type": "PoseStamped"}))
    assert other["/ee_pose"] == (messages.POSE_WITH_COVARIANCE_STAMPED,)
    assert other["/object_detection"] == (messages.POSE_STAMPED,)
    with pytest.raises(ConfigError, match=r"topics.ee_pose_type: .*Pose\b.*expected one of PoseStamped"):
        load_estimator_config(None, {"topics.ee_pose_type": "Pose"})
