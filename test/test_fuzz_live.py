"""Fuzzing the live estimator's inputs from peers: a transform tree, ~/set_pose and ~/reset.

A peer on the same ROS graph can publish anything a message type allows on /tf, /tf_static,
~/set_pose and ~/reset: non-finite numbers, frame names that clash with the estimator's own,
stamps far in the future or at zero, covariances that are not covariances. Each property says what
the live estimator may do with such a message: use it, drop it with a counted reason, or start a new
graph (reset, set_pose, a clock that went back); never raise, and never stop estimating: the rest
of a real run played after the garbage still gives pose estimates (after a reset, from the next
camera detection, which the rest of the run has). See test_fuzz.py for how CI runs
these (a fixed, small number of examples; ``FUZZ_EXAMPLES`` for a longer run).
"""

from __future__ import annotations

import math
import os
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tactile_estimator.adapters import live as live_mod
from tactile_estimator.adapters.live import POSE_OUT, LiveEstimator
from tactile_estimator.config import load_estimator_config
from tactile_estimator.io import bags, messages
from tactile_estimator.networks.tactile import TactileModel

_EXAMPLES = os.environ.get("FUZZ_EXAMPLES")
FUZZ = settings(max_examples=int(_EXAMPLES) if _EXAMPLES else 8, derandomize=not _EXAMPLES, database=None,
                deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])

TF_CONFIG = {"ee_source": "tf", "frames": {"sensor": "digit_gel"}}
TYPES = messages.TYPESTORE.types

_SPECIAL = [0.0, -0.0, 1.0, -1.0, 0.5, 1e-300, 1e300, math.inf, -math.inf, math.nan]
numbers = st.one_of(st.floats(-2.0, 2.0), st.sampled_from(_SPECIAL))
frames = st.sampled_from(["world", "ee", "digit_gel", "object_estimate", "/world", "", "tag36h11:0", "é" * 300,
                          "x" * 5000])
# seconds around the run's own (the simulator starts at 1.7e9 s), and far from it
seconds = st.one_of(st.integers(0, 3), st.integers(1_700_000_000, 1_700_000_020),
                    st.sampled_from([2**31 - 1, 4_000_000_000]))
nanoseconds = st.one_of(st.integers(0, 999_999_999), st.sampled_from([1_000_000_000, 2**32 - 1]))


def _stamp(sec: int, nanosec: int) -> Any:
    return TYPES["builtin_interfaces/msg/Time"](sec=sec, nanosec=nanosec)


def _header(sec: int, nanosec: int, frame_id: str) -> Any:
    return TYPES["std_msgs/msg/Header"](stamp=_stamp(sec, nanosec), frame_id=frame_id)


@st.composite
def transforms(draw: st.DrawFn) -> Any:
    unit = draw(st.booleans())
    if unit:  # a proper rotation, so that a finite transform gets past the quaternion check
        yaw = draw(st.floats(-4.0, 4.0))
        q = (0.0, 0.0, math.sin(yaw / 2), math.cos(yaw / 2))
    else:
        q = tuple(draw(numbers) for _ in range(4))
    return TYPES["geometry_msgs/msg/TransformStamped"](
        header=_header(draw(seconds), draw(nanoseconds), draw(frames)), child_frame_id=draw(frames),
        transform=TYPES["geometry_msgs/msg/Transform"](
            translation=TYPES["geometry_msgs/msg/Vector3"](x=draw(numbers), y=draw(numbers), z=draw(numbers)),
            rotation=TYPES["geometry_msgs/msg/Quaternion"](x=q[0], y=q[1], z=q[2], w=q[3])))


@st.composite
def set_poses(draw: st.DrawFn) -> Any:
    pose = [draw(numbers), draw(numbers), draw(st.floats(-4.0, 4.0) | st.sampled_from([math.nan, math.inf]))]
    msg = messages.pose_with_covariance_msg(0, [0.0, 0.0, 0.0], np.eye(3), "world")
    msg.header = _header(draw(seconds), draw(nanoseconds), draw(frames))
    msg.pose.pose.position.x, msg.pose.pose.position.y = pose[0], pose[1]
    yaw = pose[2] if math.isfinite(pose[2]) else 0.0
    msg.pose.pose.orientation.z, msg.pose.pose.orientation.w = math.sin(yaw / 2), math.cos(yaw / 2)
    if not math.isfinite(pose[2]):
        msg.pose.pose.orientation.z = pose[2]
    if draw(st.booleans()):
        msg.pose.pose.orientation.x = draw(numbers)
    msg.pose.covariance = np.array([draw(numbers) if draw(st.integers(0, 5)) == 0 else 0.0 for _ in range(36)])
    return msg


@st.composite
def garbage(draw: st.DrawFn) -> tuple[str, str, Any]:
    kind = draw(st.sampled_from(["tf", "tf_static", "set_pose", "reset"]))
    if kind in ("tf", "tf_static"):
        msg = TYPES[messages.TF_MESSAGE](transforms=draw(st.lists(transforms(), min_size=0, max_size=3)))
        return f"/{kind}", messages.TF_MESSAGE, msg
    if kind == "set_pose":
        return live_mod.SET_POSE_IN, messages.POSE_WITH_COVARIANCE_STAMPED, draw(set_poses())
    return live_mod.RESET_IN, messages.EMPTY, TYPES[messages.EMPTY]()


@pytest.fixture(scope="module")
def model() -> TactileModel:
    return TactileModel.load(None)


@pytest.fixture(scope="module")
def tf_messages(rect_run: Any, tmp_path_factory: pytest.TempPathFactory) -> list[tuple[str, str, Any]]:
    """The first 120 tactile frames of a real run and what came with them, the end-effector on /tf with
    the gel's static mounting."""
    from tactile_estimator.sim.recording import write_run_bag

    path = tmp_path_factory.mktemp("fuzz_live") / "rect_tf"
    write_run_bag(rect_run, Path(path), ee="tf")
    config = load_estimator_config(None, TF_CONFIG)
    out, frames_seen = [], 0
    for m in bags.read_messages(path, [i.topic for i in live_mod.inputs(config)]):
        frames_seen += m.topic.startswith(config.topics.tactile)
        if frames_seen > 120:
            break
        out.append((m.topic, m.msgtype, m.msg))
    return out


@FUZZ
@given(noise=st.lists(garbage(), min_size=1, max_size=8), at=st.floats(0.2, 0.5))
def test_peers_garbage_never_stops_the_estimate(noise: list[tuple[str, str, Any]], at: float, model: TactileModel,
                                                 tf_messages: list[tuple[str, str, Any]]) -> None:
    live = LiveEstimator(load_estimator_config(None, TF_CONFIG), model)
    cut = int(at * len(tf_messages))
    for topic, msgtype, msg in tf_messages[:cut]:
        live.handle(topic, msgtype, msg)
    for topic, msgtype, msg in noise:
        live.handle(topic, msgtype, msg)  # may drop, reset or re-seed; never raises
    live.tick()
    live.diagnostics()
    after = []
    for topic, msgtype, msg in tf_messages[cut:]:
        after += [m for t, _, m in live.handle(topic, msgtype, msg) if t == POSE_OUT]
    after += [m for t, _, m in live.finish() if t == POSE_OUT]
    assert after, f"no estimate after {len(noise)} peer messages; dropped {dict(live.all_dropped())}"
    for pose in after:
        p = pose.pose.pose.position
        assert math.isfinite(p.x) and math.isfinite(p.y)
        assert np.isfinite(pose.pose.covariance).all()
