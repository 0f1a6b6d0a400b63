"""The live estimator behind the ROS 2 node and the DDS runner, driven here without a middleware."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
import yaml

from tactile_estimator.adapters import live as live_mod
from tactile_estimator.adapters.live import DIAGNOSTICS_OUT, PATH_OUT, POSE_OUT, TF_OUT, LiveEstimator
from tactile_estimator.adapters.replay import replay_bag
from tactile_estimator.config import ConfigError, load_estimator_config
from tactile_estimator.io import bags, messages
from tactile_estimator.networks.tactile import TactileModel
from tactile_estimator.records import TactileFrame

ROOT = Path(__file__).resolve().parents[1]


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture(scope="module")
def model() -> TactileModel:
    return TactileModel.load(None)


def _values(diagnostics: Any, name_suffix: str) -> dict[str, str]:
    (status,) = [s for s in diagnostics.status if s.name.endswith(name_suffix)]
    return {kv.key: kv.value for kv in status.values}


def _feed(live: LiveEstimator, bag: Path, topics: list[str] | None = None) -> list[tuple[str, str, Any]]:
    out = []
    wanted = topics or [i.topic for i in live_mod.inputs(live.config)]
    for m in bags.read_messages(bag, wanted):
        out += live.handle(m.topic, m.msgtype, m.msg)
    return out


def test_live_path_gives_the_replay_estimates(rect_bag: Path, model: TactileModel, tmp_path: Path) -> None:
    config = load_estimator_config(ROOT / "config" / "estimator.yaml")
    live = LiveEstimator(config, model)
    out = _feed(live, rect_bag) + live.finish()
    poses = [msg for topic, _, msg in out if topic == POSE_OUT]
    replay = replay_bag(rect_bag, config, model, tmp_path)
    assert len(poses) == len(replay.estimates) > 100
    for msg, estimate in zip(poses, replay.estimates, strict=True):
        assert messages.stamp_to_ns(msg.header.stamp) == estimate.stamp_ns
        assert msg.pose.pose.position.x == pytest.approx(estimate.pose[0], abs=1e-9)
        assert msg.pose.pose.position.y == pytest.approx(estimate.pose[1], abs=1e-9)
        assert msg.pose.covariance[0] == pytest.approx(estimate.covariance[0, 0], rel=1e-9)
    tfs = [msg for topic, _, msg in out if topic == TF_OUT]
    assert len(tfs) == len(poses)
    assert tfs[-1].transforms[0].header.frame_id == "world"
    assert tfs[-1].transforms[0].child_frame_id == "object_estimate"
    paths = [msg for topic, _, msg in out if topic == PATH_OUT]
    assert paths and len(paths[-1].poses) == len(replay.smoothed_stamps)  # finish() publishes the whole path
    assert live.summary().startswith(f"{live.received['tactile']} tactile frames, {len(poses)} estimates")


def test_the_live_graph_is_kept_out_of_full_garbage_collections(rect_bag: Path, model: TactileModel) -> None:
    import gc

    gc.unfreeze()
    live = LiveEstimator(load_estimator_config(None, {"freeze_gc": False}), model)
    _feed(live, rect_bag)
    assert live.estimates > 100 and gc.get_freeze_count() == 0
    live = LiveEstimator(load_estimator_config(None), model)
    _feed(live, rect_bag)
    frozen = gc.get_freeze_count()
    gc.unfreeze()
    # the graph's factors are tracked objects; after each estimate they sit in the permanent generation
    assert frozen > len(live.estimator.graph.factors)


def test_diagnostics_count_per_feed_and_per_period() -> None:
    diagnostics = live_mod.Diagnostics("estimator_node", started=10.0)
    for now in (10.1, 10.2):
        diagnostics.arrived("tactile", now)
    diagnostics.arrived("object_info", 10.3)  # counted, but not a sensor with a rate
    diagnostics.estimated(2.0)
    diagnostics.estimated(4.0)
    assert diagnostics.received == {"tactile": 2, "object_info": 1} and diagnostics.estimates == 2
    assert diagnostics.silent_for("tactile", 11.0) == pytest.approx(0.8)
    assert diagnostics.silent_for("camera", 11.0) == pytest.approx(1.0)  # never heard of: since the start
    values = diagnostics.estimate_values(None)
    assert values["update_ms_max"] == "4.00" and values["estimate_age_s"] == "none"
    msg = diagnostics.message(12.0, 7, (live_mod.OK, "tracking", {"steps": "2"}), {"tactile": ["/digit"]}, ["camera"])
    assert [s.name for s in msg.status] == ["estimator_node: estimator"] + [
        f"estimator_node: input {sensor}" for sensor in live_mod.SENSORS]
    tactile = {kv.key: kv.value for kv in msg.status[1].values}
    assert tactile == {"topics": "/digit", "rate_hz": "1.00", "messages": "2", "last_message_age_s": "1.800",
                       "stale": "false"}
    assert msg.status[3].level == live_mod.WARN and msg.status[3].message == "stale"
    assert diagnostics.estimate_values(None)["update_ms_p50"] == "none"  # the next period has no updates yet
    again = diagnostics.message(14.0, 8, (live_mod.OK, "tracking", {}), {}, [])
    assert {kv.key: kv.value for kv in again.status[1].values}["rate_hz"] == "0.00"


def test_inputs_wait_for_the_object_shape_and_a_changed_shape_starts_a_new_graph(
    rect_bag: Path, model: TactileModel
) -> None:
    config = load_estimator_config(None)
    live = LiveEstimator(config, model)
    topics = [t for t in (i.topic for i in live_mod.inputs(config)) if t != config.topics.object_info]
    _feed(live, rect_bag, topics)
    assert live.estimator is None and live.estimates == 0
    assert live.all_dropped()["no_object_info"] == live.received["tactile"] + live.received["ee_pose"] \
        + live.received["camera"]
    info = messages.string_msg(messages.object_info_to_text(messages.ObjectInfo("disc", (0.05,))))
    live.handle(config.topics.object_info, messages.STRING, info)
    assert live.shape is not None and live.shape.kind == "disc"
    first = live.estimator
    live.handle(config.topics.object_info, messages.STRING, info)  # the same shape again: the graph stays
    assert live.estimator is first
    other = messages.string_msg(messages.object_info_to_text(messages.ObjectInfo("rect", (0.1, 0.08))))
    live.handle(config.topics.object_info, messages.STRING, other)
    assert live.estimator is not first and live.all_events()["object_changed"] == 1
    live.handle(config.topics.object_info, messages.STRING, messages.string_msg("{not json"))
    assert live.all_dropped()["bad_object_info"] == 1


def test_configured_shape_needs_no_object_info(model: TactileModel) -> None:
    config = load_estimator_config(None, {"object": {"shape": "rect", "size": [0.1, 0.08]}})
    assert LiveEstimator(config, model).estimator is not None
    with pytest.raises(ConfigError, match="object: object size"):
        LiveEstimator(load_estimator_config(None, {"object": {"shape": "rect", "size": [0.1]}}), model)


def test_live_estimator_takes_the_configured_network_threads(model: TactileModel) -> None:
    before = torch.get_num_threads()
    try:
        torch.set_num_threads(2)
        LiveEstimator(load_estimator_config(None, {"network_threads": 1}), model)
        assert torch.get_num_threads() == 1
    finally:
        torch.set_num_threads(before)


def test_bad_inputs_are_counted_by_reason_and_cost_only_themselves(
    rect_bag: Path, model: TactileModel, tmp_path: Path
) -> None:
    config = load_estimator_config(None)
    live = LiveEstimator(config, model)
    good = list(bags.read_messages(rect_bag, [i.topic for i in live_mod.inputs(config)]))
    bad_image = messages.image_msg(TactileFrame(5, np.zeros((320, 240, 3), np.uint8)))
    bad_image.encoding = "mono8"
    nan_pose = messages.pose_stamped_msg(5, [np.nan, 0.0, 0.0], "world")
    raw = config.topics.tactile
    out = []
    for i, m in enumerate(good):
        out += live.handle(m.topic, m.msgtype, m.msg)
        if i % 50 == 25:
            out += live.handle(raw, messages.IMAGE, bad_image)
            out += live.handle(config.topics.ee_pose, messages.POSE_STAMPED, nan_pose)
        if m.topic == config.topics.ee_pose and i % 50 == 30:
            out += live.handle(m.topic, m.msgtype, m.msg)  # the same stamp again: a stamp that does not advance
    out += live.finish()
    dropped = live.all_dropped()
    n_bad = len([i for i in range(len(good)) if i % 50 == 25])
    assert dropped["bad_image_encoding"] == n_bad and dropped["nan_pose"] == n_bad
    assert dropped["duplicate_stamp"] >= 1
    replay = replay_bag(rect_bag, config, model, tmp_path)
    assert len([1 for topic, _, _ in out if topic == POSE_OUT]) == len(replay.estimates)
    diagnostics = live.diagnostics()
    values = _values(diagnostics, ": estimator")
    assert values["dropped.bad_image_encoding"] == str(n_bad)
    assert values["dropped.nan_pose"] == str(n_bad)
    assert int(values["dropped_total"]) == sum(dropped.values())


def test_stale_sensors_are_reported_and_the_last_estimate_is_held_with_growing_covariance(
    rect_bag: Path, model: TactileModel
) -> None:
    config = load_estimator_config(None, {"live": {"hold_random_walk": [0.01, 0.02, 0.1]}})
    clock = Clock()
    live = LiveEstimator(config, model, monotonic=clock, wall_ns=lambda: 7_000_000_000)
    clock.now += 0.2
    out = live.tick()  # before the first diagnostics period: nothing
    assert out == []
    clock.now += 1.0
    (diag,) = [msg for topic, _, msg in live.tick() if topic == DIAGNOSTICS_OUT]
    assert diag.status[0].level == live_mod.WARN and "object's shape" in diag.status[0].message
    _feed(live, rect_bag)
    last = live._last
    assert last is not None
    assert live.stale() == []
    clock.now += 0.1
    assert [topic for topic, _, _ in live.tick() if topic == POSE_OUT] == []  # fresh: nothing held
    clock.now += 2.0  # every stream silent for 2.1 s
    out = live.tick()
    held = [msg for topic, _, msg in out if topic == POSE_OUT]
    (diag,) = [msg for topic, _, msg in out if topic == DIAGNOSTICS_OUT]
    assert len(held) == 1
    elapsed = 2.1
    assert messages.stamp_to_ns(held[0].header.stamp) == pytest.approx(last.stamp_ns + elapsed * 1e9, abs=1e3)
    cov = np.asarray(held[0].pose.covariance).reshape(6, 6)
    q2 = np.array([0.01, 0.02, 0.1]) ** 2
    assert cov[0, 0] == pytest.approx(last.covariance[0, 0] + q2[0] * elapsed, rel=1e-6)
    assert cov[5, 5] == pytest.approx(last.covariance[2, 2] + q2[2] * elapsed, rel=1e-6)
    assert held[0].pose.pose.position.x == pytest.approx(last.pose[0])
    assert set(live.stale()) == {"tactile", "ee_pose"}  # the camera's timeout is 5 s
    assert "stale: tactile, ee_pose" in diag.status[0].message and "holding" in diag.status[0].message
    tactile = _values(diag, ": input tactile")
    assert tactile["stale"] == "true" and tactile["messages"] == str(live.received["tactile"])
    clock.now += 1.0
    again = [msg for topic, _, msg in live.tick() if topic == POSE_OUT]
    assert np.asarray(again[0].pose.covariance)[0] > cov[0, 0]  # it keeps growing


def test_reset_and_model_reload(rect_bag: Path, model: TactileModel, tmp_path: Path) -> None:
    config = load_estimator_config(None)
    live = LiveEstimator(config, model)
    _feed(live, rect_bag)
    steps = len(live.estimator.steps)
    assert steps > 100
    ok, text = live.reload_model(str(tmp_path / "missing"))
    assert not ok and "was not loaded" in text and live.all_events()["model_reload_failed"] == 1
    assert len(live.estimator.steps) == steps
    ok, _ = live.reload_model(str(ROOT / "models"))
    assert ok and live.all_events()["model_reloaded"] == 1 and len(live.estimator.steps) == steps
    message = live.reset()
    assert f"had {steps} steps" in message and len(live.estimator.steps) == 0
    assert live.all_events()["model_reloaded"] == 1 and live.all_events()["reset"] == 1  # counters survive a reset
    model_topic = config.topics.model_updated
    live.handle(model_topic, messages.STRING, messages.string_msg(str(tmp_path / "missing")))
    assert live.all_events()["model_reload_failed"] == 2


def _broken_copy(tmp_path: Path, edit) -> Path:
    broken = tmp_path / "broken_model"
    shutil.copytree(ROOT / "models", broken)
    description = yaml.safe_load((broken / "model.yaml").read_text())
    edit(description)
    (broken / "model.yaml").write_text(yaml.safe_dump(description, sort_keys=False))
    return broken


@pytest.mark.parametrize("edit", [
    lambda d: d["architecture"].update(downsample=0),  # a ZeroDivisionError once stopped the process
    lambda d: d["architecture"].update(image_height=480),  # loads, but cannot read this estimator's frames
    lambda d: d["architecture"].update(channels=[16, -2]),
    lambda d: d["factor_weights"].update(pushing=["wide", 1, 2]),
])
def test_an_announced_model_that_cannot_serve_is_refused_whole(rect_bag: Path, model: TactileModel, tmp_path: Path,
                                                               edit) -> None:
    """Any participant may announce any path: a bad model is counted, the old one keeps estimating."""
    config = load_estimator_config(None)
    live = LiveEstimator(config, model)
    _feed(live, rect_bag)
    before, codes = live.estimator.model, [s.code for s in live.estimator.steps]
    live.handle(config.topics.model_updated, messages.STRING, messages.string_msg(str(_broken_copy(tmp_path, edit))))
    assert live.all_events()["model_reload_failed"] == 1 and live.all_events().get("model_reloaded", 0) == 0
    assert live.estimator.model is before
    assert all(a is b for a, b in zip(codes, [s.code for s in live.estimator.steps], strict=True))
    steps = len(live.estimator.steps)
    live.reset()  # and the kept model estimates a fresh graph as before
    _feed(live, rect_bag)
    assert len(live.estimator.steps) == steps and sum(live.estimator.dropped.values()) == 0


def test_unsupported_publishers_are_reported(model: TactileModel) -> None:
    config = load_estimator_config(None)
    live = LiveEstimator(config, model)
    live.note_publisher("a", config.topics.ee_pose, messages.STRING)
    live.note_publisher("a", config.topics.ee_pose, messages.STRING)
    live.note_publisher("b", config.topics.ee_pose, messages.POSE_STAMPED)
    live.note_publisher("c", "/elsewhere", messages.STRING)
    values = _values(live.diagnostics(), ": estimator")
    assert values["unsupported_type_publishers"] == "1"
    assert values[f"unsupported_type.{config.topics.ee_pose}"] == messages.STRING


def test_node_private_topics_expand_like_ros() -> None:
    assert live_mod.node_topic("~/object_pose", "estimator_node") == "/estimator_node/object_pose"
    assert live_mod.node_topic("/tf", "estimator_node") == "/tf"
    config = load_estimator_config(None, {"live": {"publish_marker": False}})
    assert live_mod.MARKER_OUT not in {o.topic for o in live_mod.outputs(config)}
    with pytest.raises(ConfigError, match="live.stale_after_s"):
        load_estimator_config(None, {"live": {"stale_after_s": 0.0}})


def test_node_parameters_become_the_config(tmp_path: Path) -> None:
    """What the rclpy node does with its parameters: the file first, then the parameters over it."""
    config = live_mod.config_from_parameters({
        "config_file": str(ROOT / "config" / "estimator.yaml"), "use_sim_time": True,
        "qos_overrides./tf.publisher.depth": 10, "backend": "gn", "live.stale_after_s": 2.0, "model": "",
    })
    assert config.backend == "gn" and config.live.stale_after_s == 2.0 and config.model == ""
    with pytest.raises(ConfigError, match="live.stale_aftr_s: unknown parameter"):
        live_mod.config_from_parameters({"live.stale_aftr_s": 1.0})


def test_a_bag_played_again_starts_a_new_graph(rect_bag: Path, model: TactileModel) -> None:
    """ros2 bag play --loop, or a restarted publisher: the stamps go back for good, and the estimator
    starts over instead of dropping every message as out of order."""
    live = LiveEstimator(load_estimator_config(None), model)
    _feed(live, rect_bag)
    first = len(live.estimator.steps)
    _feed(live, rect_bag)
    assert live.all_events()["clock_restarted"] == 1
    # the messages that told the restart are lost, and the frames before the new graph's first
    # detection (it starts where the object was seen): no more
    waiting = live.estimator.dropped["no_initial_pose"]
    assert waiting <= 20 and len(live.estimator.steps) + waiting >= first - 3


def test_a_reloaded_model_is_told_and_counted_in_the_summary(model: TactileModel, tmp_path: Path) -> None:
    lines: list[str] = []
    config = load_estimator_config(None)
    live = LiveEstimator(config, model, notify=lines.append)
    assert "model reload" not in live.summary()
    live.handle(config.topics.model_updated, messages.STRING, messages.string_msg(str(ROOT / "models")))
    assert lines == [f"model reloaded from {ROOT / 'models'}"]
    live.handle(config.topics.model_updated, messages.STRING, messages.string_msg(str(tmp_path / "missing")))
    assert len(lines) == 1  # a refused model goes to the log's error line, not to notify
    assert "1 model reloads (1 refused)" in live.summary()


def _set_pose_msg(pose: list[float], variances: list[float] | None, stamp_ns: int = 0) -> Any:
    cov = np.diag(variances) if variances is not None else np.zeros((3, 3))
    msg = messages.pose_with_covariance_msg(stamp_ns, pose, np.eye(3), "world")
    full = np.zeros((6, 6))
    full[np.ix_([0, 1, 5], [0, 1, 5])] = cov
    msg.pose.covariance = full.reshape(36)
    return msg


def test_set_pose_starts_a_graph_from_the_given_pose(rect_bag: Path, model: TactileModel) -> None:
    """~/set_pose (robot_localization's SetPose): the next graph's first pose is the message's, with its sigmas."""
    config = load_estimator_config(None)
    live = LiveEstimator(config, model)
    set_pose = live_mod.node_topic(live_mod.SET_POSE_IN, "estimator_node")
    messages_ = list(bags.read_messages(rect_bag, [i.topic for i in live_mod.inputs(config)]))
    half = len(messages_) // 2
    for m in messages_[:half]:
        live.handle(m.topic, m.msgtype, m.msg)
    before = live.estimator
    assert before is not None and len(before.steps) > 10
    seeded = [before.last_estimate.pose[0] + 0.03, before.last_estimate.pose[1] - 0.02, 0.5]
    assert live.handle(set_pose, messages.POSE_WITH_COVARIANCE_STAMPED, _set_pose_msg(seeded, [1e-10] * 3)) == []
    assert live.estimator is not before and live.estimator.steps == []
    out = []
    for m in messages_[half:]:
        out += live.handle(m.topic, m.msgtype, m.msg)
    first = next(msg for topic, _, msg in out if topic == POSE_OUT)
    p = first.pose.pose
    assert (p.position.x, p.position.y) == (pytest.approx(seeded[0], abs=2e-4), pytest.approx(seeded[1], abs=2e-4))
    assert 2 * np.arctan2(p.orientation.z, p.orientation.w) == pytest.approx(0.5, abs=2e-3)
    assert first.pose.covariance[0] < 1e-6  # the seed's variance, not noise.first_pose's 2.5e-5
    assert live.all_events()["set_pose"] == 1 and live.all_events()["reset"] == 0

    # a later reset starts from the configuration (the first camera detection), not from the seed
    live.reset()
    assert live.estimator._initial_pose is None  # noqa: SLF001 - waiting for the camera, as configured


def test_a_bad_set_pose_is_dropped_and_changes_nothing(model: TactileModel) -> None:
    config = load_estimator_config(None, {"object": {"shape": "disc", "size": [0.04]}})
    live = LiveEstimator(config, model)
    graph = live.estimator
    for bad in (_set_pose_msg([np.nan, 0.0, 0.0], None), _set_pose_msg([0.0, 0.0, 0.0], [1e-4, -1e-4, 1e-4])):
        live.handle(live_mod.SET_POSE_IN, messages.POSE_WITH_COVARIANCE_STAMPED, bad)
    assert live.estimator is graph
    assert live.all_dropped()["bad_set_pose"] == 2 and live.all_events()["set_pose"] == 0
    values = _values(live.diagnostics(), ": estimator")
    assert values["dropped.bad_set_pose"] == "2"
    # an all-zero covariance means the configured first-pose sigmas
    live.handle(live_mod.SET_POSE_IN, messages.POSE_WITH_COVARIANCE_STAMPED, _set_pose_msg([0.1, 0.2, 0.3], None))
    assert live.estimator is not graph
    np.testing.assert_allclose(live.estimator._initial_pose, [0.1, 0.2, 0.3])  # noqa: SLF001
    np.testing.assert_allclose(live.estimator._initial_sigmas, config.noise.first_pose)  # noqa: SLF001


def test_set_pose_before_the_shape_waits_for_it(rect_bag: Path, model: TactileModel) -> None:
    config = load_estimator_config(None)
    live = LiveEstimator(config, model)
    text = live.set_pose(_set_pose_msg([0.1, 0.0, 0.2], [1e-6, 1e-6, 1e-5]))
    assert "once the object's shape is known" in text and live.estimator is None
    _feed(live, rect_bag, [config.topics.object_info])
    np.testing.assert_allclose(live.estimator._initial_pose, [0.1, 0.0, 0.2])  # noqa: SLF001
    np.testing.assert_allclose(live.estimator._initial_sigmas, [1e-3, 1e-3, np.sqrt(1e-5)])  # noqa: SLF001


def test_reset_over_a_topic(model: TactileModel) -> None:
    """run has no services: ~/reset is also a std_msgs/Empty topic."""
    config = load_estimator_config(None, {"object": {"shape": "disc", "size": [0.04]}})
    live = LiveEstimator(config, model, node_name="arm1_estimator")
    graph = live.estimator
    assert live.handle("/estimator_node/reset", messages.EMPTY, messages.TYPESTORE.types[messages.EMPTY]()) == []
    assert live.estimator is graph  # another node's
    live.handle("/arm1_estimator/reset", messages.EMPTY, messages.TYPESTORE.types[messages.EMPTY]())
    assert live.estimator is not graph and live.all_events()["reset"] == 1
    topics = {i.topic: i for i in live_mod.inputs(config)}
    assert topics[live_mod.RESET_IN].msgtypes == (messages.EMPTY,)
    assert topics[live_mod.SET_POSE_IN].msgtypes == (messages.POSE_WITH_COVARIANCE_STAMPED,)


@pytest.fixture(scope="module")
def tf_bag(rect_run: Any, tmp_path_factory: pytest.TempPathFactory) -> Path:
    from tactile_estimator.sim.recording import write_run_bag

    path = tmp_path_factory.mktemp("bags") / "rect_tf"
    write_run_bag(rect_run, path, ee="tf")
    return path


TF_CONFIG = {"ee_source": "tf", "frames": {"sensor": "digit_gel"}}


def test_live_from_tf_gives_the_estimates_of_ee_pose(rect_bag: Path, tf_bag: Path, model: TactileModel) -> None:
    from_pose = LiveEstimator(load_estimator_config(None), model)
    poses = [msg for topic, _, msg in _feed(from_pose, rect_bag) + from_pose.finish() if topic == POSE_OUT]
    config = load_estimator_config(None, TF_CONFIG)
    live = LiveEstimator(config, model)
    assert {i.topic for i in live_mod.inputs(config)} >= {"/tf", "/tf_static"}
    assert config.topics.ee_pose not in {i.topic for i in live_mod.inputs(config)}
    out = _feed(live, tf_bag) + live.finish()
    tf_poses = [msg for topic, _, msg in out if topic == POSE_OUT]
    assert len(tf_poses) == len(poses) > 100
    for a, b in zip(tf_poses, poses, strict=True):
        assert a.header.stamp == b.header.stamp
        assert a.pose.pose.position.x == pytest.approx(b.pose.pose.position.x, abs=1e-6)
    # its own world -> object_estimate, which it hears on /tf over DDS, is not an end-effector input
    received = live.received["ee_pose"]
    own = [msg for topic, _, msg in out if topic == TF_OUT][0]
    assert live.handle("/tf", live_mod.TF_MESSAGE, own) == [] and live.received["ee_pose"] == received


@pytest.mark.parametrize("source", ["topic", "tf"])
def test_a_bag_played_twice_is_told_once(source: str, rect_bag: Path, tf_bag: Path, model: TactileModel,
                                         caplog: pytest.LogCaptureFixture) -> None:
    """The second pass goes back in time: one new graph, told in one warning line, not one per message.
    With /tf the static mounting, sent once at the start of each pass, is kept across the new graph."""
    config = load_estimator_config(None, TF_CONFIG if source == "tf" else None)
    bag = tf_bag if source == "tf" else rect_bag
    live = LiveEstimator(config, model)
    _feed(live, bag)
    first = len(live.estimator.steps)
    caplog.clear()
    with caplog.at_level("WARNING"):
        _feed(live, bag)
    assert live.all_events()["clock_restarted"] == 1
    waiting = live.estimator.dropped["no_initial_pose"]  # before the new graph's first detection
    assert waiting <= 20 and len(live.estimator.steps) + waiting >= first - 3
    warnings = [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]
    # the first jumped stamp, the new graph, and the frames before its first detection (one line); from
    # /tf, also the first frame whose arm pose was among the transforms refused until three in a row
    # confirmed the clock going back (tf_buffer.CONFIRM_BACK)
    assert len(warnings) <= (4 if source == "tf" else 3), warnings
    assert any("the clock went back more than 1 s; new graph started" in w for w in warnings), warnings


def test_the_clock_restart_threshold_is_a_parameter(rect_bag: Path, model: TactileModel) -> None:
    """With clock_restart_s longer than the bag, a second pass is not a restart: its messages are out of order."""
    live = LiveEstimator(load_estimator_config(None, {"clock_restart_s": 60.0}), model)
    _feed(live, rect_bag)
    steps = len(live.estimator.steps)
    _feed(live, rect_bag)
    assert live.all_events()["clock_restarted"] == 0 and len(live.estimator.steps) == steps
    assert live.all_dropped()["out_of_order_stamp"] > 100


def test_a_nodes_setup_loads_its_config_and_model(tmp_path: Path) -> None:
    """What the node's start, and the managed node's configure, do with the parameters."""
    config, model = live_mod.estimator_setup({"config_file": str(ROOT / "config" / "estimator.yaml"),
                                              "backend": "gn"})
    assert config.backend == "gn" and isinstance(model, TactileModel)
    with pytest.raises(ConfigError, match="backend: 'quantum' is unknown"):
        live_mod.estimator_setup({"backend": "quantum"})
    from tactile_estimator.networks.tactile import ModelError

    with pytest.raises(ModelError):
        live_mod.estimator_setup({}, tmp_path / "no_model")
    assert live_mod.LIFECYCLE_FLAG == "--lifecycle"
