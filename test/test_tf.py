"""The end-effector from /tf and /tf_static: the transform buffer, and replay of a bag that has no /ee_pose."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest

from tactile_estimator.adapters.replay import replay_bag
from tactile_estimator.config import ConfigError, load_estimator_config
from tactile_estimator.io import bags, messages
from tactile_estimator.networks.tactile import TactileModel
from tactile_estimator.sim.pushing import SimulatedRun
from tactile_estimator.sim.recording import MOUNTING, SENSOR_FRAME, write_run_bag
from tactile_estimator.tf_buffer import (
    EndEffectorFromTf,
    StampedTransform,
    StrayStamp,
    TfBuffer,
    Transform,
    TransformUnavailable,
)

TF_CONFIG = {"ee_source": "tf", "frames": {"sensor": SENSOR_FRAME}}


def _yaw(theta: float) -> np.ndarray:
    return np.array([0.0, 0.0, math.sin(theta / 2), math.cos(theta / 2)])


def _random_transform(rng: np.random.Generator) -> Transform:
    q = rng.normal(size=4)
    return Transform(rng.normal(size=3), q / np.linalg.norm(q))


def _matrix(t: Transform) -> np.ndarray:
    x, y, z, w = t.rotation
    r = np.array([[1 - 2 * (y * y + z * z), 2 * (x * y - z * w), 2 * (x * z + y * w)],
                  [2 * (x * y + z * w), 1 - 2 * (x * x + z * z), 2 * (y * z - x * w)],
                  [2 * (x * z - y * w), 2 * (y * z + x * w), 1 - 2 * (x * x + y * y)]])
    m = np.eye(4)
    m[:3, :3], m[:3, 3] = r, t.translation
    return m


def test_transforms_compose_and_invert_as_matrices() -> None:
    rng = np.random.default_rng(3)
    for _ in range(20):
        a, b = _random_transform(rng), _random_transform(rng)
        np.testing.assert_allclose(_matrix(a * b), _matrix(a) @ _matrix(b), atol=1e-12)
        np.testing.assert_allclose(_matrix(a.inverse()), np.linalg.inv(_matrix(a)), atol=1e-12)


def test_lookup_walks_the_tree_and_interpolates_in_time() -> None:
    buffer = TfBuffer()
    buffer.set_transform("world", "base", 0, [1.0, 0.0, 0.0], _yaw(0.0), static=True)
    buffer.set_transform("base", "flange", 100, [0.0, 0.0, 0.5], _yaw(0.0))
    buffer.set_transform("base", "flange", 200, [0.2, 0.0, 0.5], _yaw(math.pi / 2))
    buffer.set_transform("flange", "gel", 0, [0.0, 0.1, -0.5], _yaw(0.0), static=True)
    buffer.set_transform("world", "camera", 0, [0.0, 2.0, 0.0], _yaw(math.pi), static=True)

    mid = buffer.lookup("world", "gel", 150)  # half-way: 0.1 along x, a quarter of a half turn
    pose, tilt = mid.planar()
    yaw = math.pi / 4
    np.testing.assert_allclose(pose, [1.1 - 0.1 * math.sin(yaw), 0.1 * math.cos(yaw), yaw], atol=1e-12)
    assert tilt == pytest.approx(0.0, abs=1e-7)
    np.testing.assert_allclose(mid.translation[2], 0.0, atol=1e-12)
    # across branches: the camera -> gel is world -> camera inverted, then world -> gel
    across = buffer.lookup("camera", "gel", 150)
    np.testing.assert_allclose(_matrix(across), np.linalg.inv(_matrix(buffer.lookup("world", "camera", 150)))
                               @ _matrix(mid), atol=1e-12)
    for stamp, kind in ((50, "past"), (250, "future")):
        with pytest.raises(TransformUnavailable) as error:
            buffer.lookup("world", "gel", stamp)
        assert error.value.kind == kind
    with pytest.raises(TransformUnavailable) as error:
        buffer.lookup("world", "elsewhere", 150)
    assert error.value.kind == "not_connected"


def test_the_cache_keeps_ten_seconds_and_a_clock_going_back_clears_the_dynamic_part() -> None:
    buffer = TfBuffer(cache_s=10.0, jump_back_s=1.0)
    buffer.set_transform("flange", "gel", 0, [0.0, 0.0, 0.0], _yaw(0.0), static=True)
    for second in range(30):
        buffer.set_transform("world", "flange", second * 10**9, [float(second), 0.0, 0.0], _yaw(0.0))
    assert buffer.lookup("world", "gel", 25 * 10**9).translation[0] == pytest.approx(25.0)
    with pytest.raises(TransformUnavailable):
        buffer.lookup("world", "gel", 15 * 10**9)  # more than 10 s behind the newest
    assert not buffer.set_transform("world", "flange", 28_500_000_000, [0.0, 0.0, 0.0], _yaw(0.0))  # 0.5 s back
    for stamp in (1_800_000_000, 1_900_000_000):  # 27 s back: a stray stamp, until three in a row say so
        with pytest.raises(StrayStamp, match="taken as the clock going back once 3 in a row are"):
            buffer.set_transform("world", "flange", stamp, [7.0, 0.0, 0.0], _yaw(0.0))
    assert buffer.clock_jumps == 0
    assert buffer.set_transform("world", "flange", 2 * 10**9, [7.0, 0.0, 0.0], _yaw(0.0))  # the third: cleared
    assert buffer.clock_jumps == 1
    assert buffer.lookup("world", "gel", 2 * 10**9).translation[0] == pytest.approx(7.0)  # the static one stayed
    with pytest.raises(TransformUnavailable):
        buffer.lookup("world", "gel", 25 * 10**9)


def test_one_stray_transform_from_a_peer_changes_nothing() -> None:
    """A peer on /tf can send anything. A dynamic transform for the static mounting, a static one for
    the arm's link, or one old stamp would each have emptied the chain (the mounting, sent once, for
    good); each is refused with a reason, and the end-effector poses go on."""
    ee = EndEffectorFromTf("world", "flange", "gel")
    ee.add(StampedTransform("flange", "gel", 0, np.array([0.0, 0.0, -0.1]), _yaw(0.0)), static=True)
    stray = [(StampedTransform("flange", "gel", 3, np.zeros(3), _yaw(1.0)), False, "bad_transform"),
             (StampedTransform("base", "flange", 3, np.zeros(3), _yaw(1.0)), True, "bad_transform"),
             (StampedTransform("world", "flange", 3, np.zeros(3), _yaw(1.0)), False, "stamp_jump")]
    stamps = []
    for k in range(1, 40):
        stamp = 10**9 + k * 10**8
        ee.add(StampedTransform("world", "flange", stamp, np.array([k * 0.01, 0.0, 0.1]), _yaw(0.0)), static=False)
        if k in (10, 20, 30):
            transform, static, _ = stray[k // 10 - 1]
            assert not ee.add(transform, static)
        poses, rejected = ee.samples()
        stamps += [s for s, _ in poses]
        if k in (10, 20, 30):
            assert [reason for reason, _ in rejected] == [stray[k // 10 - 1][2]]
            assert "may not replace it" in rejected[0][1] or "behind the newest transform" in rejected[0][1]
    assert stamps == [10**9 + k * 10**8 for k in range(1, 40)]
    assert ee.buffer.lookup("world", "gel", stamps[-1]).translation[2] == pytest.approx(0.0)  # 0.1 - 0.1
    assert ee.buffer.clock_jumps == 0


def test_end_effector_poses_wait_for_every_dynamic_link() -> None:
    """Two dynamic links at different rates: a stamp is answered once both have reached it."""
    ee = EndEffectorFromTf("world", "flange", "gel")
    ee.add(StampedTransform("flange", "gel", 0, np.array([0.0, 0.0, -0.1]), _yaw(0.0)), static=True)
    for k in range(5):  # the arm's base on a slow link, the flange on a fast one
        ee.add(StampedTransform("base", "flange", k * 10, np.array([k * 0.01, 0.0, 0.1]), _yaw(0.0)), static=False)
    poses, rejected = ee.samples()
    assert poses == [] and rejected == []  # base unknown: not connected yet, and waiting
    ee.add(StampedTransform("world", "base", 0, np.zeros(3), _yaw(0.0)), static=False)
    ee.add(StampedTransform("world", "base", 25, np.array([0.0, 1.0, 0.0]), _yaw(0.0)), static=False)
    poses, rejected = ee.samples()
    assert [s for s, _ in poses] == [0, 10, 20, 25]  # 30 and 40 wait for base
    np.testing.assert_allclose(poses[2][1], [0.02, 0.8, 0.0], atol=1e-12)
    ee.add(StampedTransform("world", "base", 50, np.array([0.0, 2.0, 0.0]), _yaw(0.0)), static=False)
    poses, _ = ee.samples()
    assert [s for s, _ in poses] == [30, 40]  # 50 waits for the flange


def test_a_tilted_end_effector_is_dropped() -> None:
    ee = EndEffectorFromTf("world", "flange", max_tilt_rad=0.05)
    tilted = np.array([math.sin(0.1), 0.0, 0.0, math.cos(0.1)])  # 0.2 rad about x
    ee.add(StampedTransform("world", "flange", 5, np.zeros(3), tilted), static=False)
    poses, rejected = ee.samples()
    assert poses == [] and [reason for reason, _ in rejected] == ["non_planar_pose"]
    assert "world -> flange at 5 is tilted 11.46 deg" in rejected[0][1]


def test_bad_transforms_are_dropped_one_by_one() -> None:
    good = StampedTransform("world", "ee", 10, np.zeros(3), _yaw(0.3))
    msg = messages.tf_message([good, StampedTransform("world", "ee", 11, np.array([np.nan, 0, 0]), _yaw(0.0)),
                               StampedTransform("world", "ee", 12, np.zeros(3), np.array([0.0, 0.0, 0.0, 0.5])),
                               StampedTransform("ee", "ee", 13, np.zeros(3), _yaw(0.0))])
    data = messages.TYPESTORE.serialize_cdr(msg, messages.TF_MESSAGE)
    transforms, bad = messages.tf_transforms(messages.TYPESTORE.deserialize_cdr(data, messages.TF_MESSAGE), "/tf")
    assert [t.stamp_ns for t in transforms] == [10]
    np.testing.assert_allclose(transforms[0].rotation, good.rotation)
    assert [b.reason for b in bad] == ["bad_transform"] * 3
    assert "non-finite" in str(bad[0]) and "not a unit quaternion" in str(bad[1]) and "two different" in str(bad[2])
    assert all(str(b).startswith("/tf at ") for b in bad)


@pytest.mark.parametrize(("overrides", "message"), [
    ({"ee_source": "joints"}, "ee_source: 'joints' is unknown"),
    ({"ee_source": "tf", "frames": {"ee": ""}}, "frames.ee: ee_source tf needs a frame name"),
    ({"ee_source": "tf", "frames": {"sensor": "world"}}, "frames: ee_source tf needs different frames"),
    ({"clock_restart_s": 0.0}, r"clock_restart_s: 0.0 is outside \(0.0"),
])
def test_tf_parameters_are_checked(overrides: dict, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        load_estimator_config(None, overrides)


@pytest.fixture(scope="module")
def tf_bag(rect_run: SimulatedRun, tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("bags") / "rect_tf"
    write_run_bag(rect_run, path, ee="tf")
    return path


def test_simulate_writes_the_arm_as_tf(tf_bag: Path, rect_run: SimulatedRun) -> None:
    info = bags.bag_info(tf_bag)
    assert "/ee_pose" not in info
    assert info["/tf"].count == len(rect_run.ee_poses) and info["/tf_static"].count == 1
    (static,) = [m.msg for m in bags.read_messages(tf_bag, ["/tf_static"])]
    assert (static.transforms[0].header.frame_id, static.transforms[0].child_frame_id) == ("ee", SENSOR_FRAME)
    first = next(m.msg for m in bags.read_messages(tf_bag, ["/tf"]))
    flange = first.transforms[0].transform.translation
    assert flange.z == pytest.approx(-MOUNTING.translation[2])  # the flange is above the gel
    assert math.hypot(flange.x - rect_run.ee_poses[0].pose[0], flange.y - rect_run.ee_poses[0].pose[1]) \
        == pytest.approx(0.01)


def test_replay_from_tf_gives_the_estimates_of_ee_pose(rect_bag: Path, tf_bag: Path, tmp_path: Path) -> None:
    model = TactileModel.load(None)
    from_pose = replay_bag(rect_bag, load_estimator_config(None), model, tmp_path / "pose")
    from_tf = replay_bag(tf_bag, load_estimator_config(None, TF_CONFIG), model, tmp_path / "tf")
    assert len(from_tf.estimates) == len(from_pose.estimates) > 100
    assert sum(from_tf.metrics["dropped_inputs"].values()) == sum(from_pose.metrics["dropped_inputs"].values())
    np.testing.assert_allclose([e.pose for e in from_tf.estimates], [e.pose for e in from_pose.estimates],
                               atol=1e-6)
    # without the mounting the gel is taken to be the flange: 1 cm and a quarter turn off
    flange = replay_bag(tf_bag, load_estimator_config(None, {"ee_source": "tf"}), model, tmp_path / "flange")
    assert from_tf.metrics["rmse_translation_m"] < flange.metrics["rmse_translation_m"]


def test_replay_from_tf_needs_tf(rect_bag: Path, tmp_path: Path) -> None:
    with pytest.raises(bags.BagError, match="/tf"):
        replay_bag(rect_bag, load_estimator_config(None, TF_CONFIG), TactileModel.load(None), tmp_path)
