"""The camera prior wired in: simulated images in bags, replay from images or tag frames, live detection
on a thread of its own, and bad camera input as counted drops. Real bags, real detector, real GTSAM."""

from __future__ import annotations

import dataclasses
import json
import logging
import math
from pathlib import Path

import numpy as np
import pytest

from tactile_estimator.adapters.live import LiveEstimator, inputs
from tactile_estimator.adapters.replay import OUTPUT_NAMESPACE, replay_bag
from tactile_estimator.camera.stream import matrix
from tactile_estimator.config import ConfigError, load_estimator_config
from tactile_estimator.io import bags, messages
from tactile_estimator.networks.tactile import TactileModel
from tactile_estimator.objects import DEFAULT_SIZES, Shape
from tactile_estimator.playback import camera_source, required_topics
from tactile_estimator.sim.camera import render_run
from tactile_estimator.sim.pushing import SimulatedRun, simulate_run
from tactile_estimator.sim.recording import CAMERA_FRAME, camera_renderer, write_run_bag
from tactile_estimator.tf_buffer import StampedTransform

SHARED = ("/object_info", "/digit/image_raw/compressed", "/ee_pose", "/object_detection", "/object_ground_truth",
          "/ee_ground_truth")
IMAGE_TOPIC, INFO_TOPIC = "/camera/image_raw/compressed", "/camera/camera_info"


@pytest.fixture(scope="module")
def model() -> TactileModel:
    return TactileModel.load()


@pytest.fixture(scope="module")
def run() -> SimulatedRun:
    return simulate_run(Shape("rect", DEFAULT_SIZES["rect"]), steps=90, seed=77)


@pytest.fixture(scope="module")
def camera_bags(run: SimulatedRun, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("camera_bags")
    paths = {name: root / name for name in ("plain", "images", "images_only")}
    write_run_bag(run, paths["plain"])
    write_run_bag(run, paths["images"], camera=camera_renderer(run))
    write_run_bag(run, paths["images_only"], camera=camera_renderer(run), detections=False)
    return paths


def _raw(path: Path, topics: tuple[str, ...]) -> dict[str, list[tuple[int, bytes]]]:
    out: dict[str, list[tuple[int, bytes]]] = {}
    for topic, _, stamp, data in bags.read_raw(path, list(topics)):
        out.setdefault(topic, []).append((stamp, bytes(data)))
    return out


def test_images_leave_every_other_topic_byte_identical(camera_bags: dict[str, Path]) -> None:
    plain, images = _raw(camera_bags["plain"], SHARED), _raw(camera_bags["images"], SHARED)
    assert set(plain) == set(SHARED)
    for topic in SHARED:
        assert images[topic] == plain[topic], topic
    topics = bags.bag_topics(camera_bags["images"])
    assert topics[IMAGE_TOPIC] == messages.COMPRESSED_IMAGE and topics[INFO_TOPIC] == messages.CAMERA_INFO
    assert "/object_detection" not in bags.bag_topics(camera_bags["images_only"])


def test_a_second_rendering_is_the_same_and_the_simulator_is_untouched(run: SimulatedRun) -> None:
    again = simulate_run(Shape("rect", DEFAULT_SIZES["rect"]), steps=90, seed=77)
    first = render_run(run, camera_renderer(run), 15.0)
    assert [f.stamp_ns for f in first] == [f.stamp_ns for f in render_run(again, camera_renderer(again), 15.0)]
    assert np.array_equal(first[3].image, render_run(again, camera_renderer(again), 15.0)[3].image)
    rerun = simulate_run(Shape("rect", DEFAULT_SIZES["rect"]), steps=90, seed=77)
    assert all(np.array_equal(a.image, b.image) for a, b in zip(run.tactile, rerun.tactile, strict=True))
    assert [d.pose.tolist() for d in run.camera] == [d.pose.tolist() for d in rerun.camera]


def test_camera_info_and_extrinsics_in_the_bag(camera_bags: dict[str, Path], run: SimulatedRun) -> None:
    info = next(iter(bags.read_messages(camera_bags["images"], [INFO_TOPIC]))).msg
    assert info.header.frame_id == CAMERA_FRAME and info.distortion_model == "plumb_bob"
    K = np.asarray(info.k).reshape(3, 3)
    np.testing.assert_allclose(np.asarray(info.p).reshape(3, 4), np.hstack([K, np.zeros((3, 1))]))
    static = [m.msg for m in bags.read_messages(camera_bags["images"], ["/tf_static"])]
    assert len(static) == 1
    (camera,) = [t for t in static[0].transforms if t.child_frame_id == CAMERA_FRAME]
    renderer = camera_renderer(run)
    q = camera.transform.rotation
    T = matrix(np.array([camera.transform.translation.x, camera.transform.translation.y,
                         camera.transform.translation.z]), np.array([q.x, q.y, q.z, q.w]))
    np.testing.assert_allclose(T, renderer.world_T_camera, atol=1e-9)
    images = [m for m in bags.read_messages(camera_bags["images"], [IMAGE_TOPIC])]
    assert 40 <= len(images) <= 50  # 3 s at 15 Hz
    assert images[0].msg.format == messages.CAMERA_PNG_FORMAT


def test_a_300_step_bag_with_images_stays_under_30_mb(tmp_path: Path) -> None:
    # a 100-step run's images scaled by three: the size grows with the frames, the rest is the same
    run = simulate_run(Shape("disc", DEFAULT_SIZES["disc"]), steps=100, seed=3)
    write_run_bag(run, tmp_path / "bag", camera=camera_renderer(run))
    size = sum(p.stat().st_size for p in (tmp_path / "bag").rglob("*") if p.is_file())
    assert size * 3 < 30e6, size


def test_replay_with_shipped_defaults_reads_images_when_there_is_no_detection_topic(
        camera_bags: dict[str, Path], model: TactileModel, tmp_path: Path) -> None:
    config = load_estimator_config()
    assert camera_source(config, bags.bag_topics(camera_bags["images_only"])) == "image"
    assert camera_source(config, bags.bag_topics(camera_bags["images"])) == "detection"
    result = replay_bag(camera_bags["images_only"], config, model, tmp_path, write_bag=True)
    events = result.metrics["events"]
    assert events["camera_detections"] >= 20
    assert result.metrics["dropped_inputs"] == {}
    assert result.metrics["final_rmse_translation_m"] < 0.003
    assert result.metrics["final_rmse_rotation_rad"] < math.radians(2.0)
    # --write-bag: one world -> object_estimate transform per estimate on /tf
    tf = [m.msg for m in bags.read_messages(result.written_bag, ["/tf"])]
    mine = [t for msg in tf for t in msg.transforms if t.child_frame_id == "object_estimate"]
    assert len(mine) == len(result.estimates) == len(list(bags.read_messages(
        result.written_bag, [f"{OUTPUT_NAMESPACE}/object_pose"])))
    assert mine[-1].transform.translation.x == pytest.approx(result.estimates[-1].pose[0])


def test_required_topics_follow_the_source() -> None:
    config = load_estimator_config(None, {"camera.source": "image"})
    assert ["/camera/camera_info"] in required_topics(config)
    assert ["/tf_static"] in required_topics(config)
    assert ["/object_detection"] in required_topics(load_estimator_config())
    assert ["/tf"] in required_topics(load_estimator_config(None, {"camera.source": "tf"}))


@pytest.mark.parametrize(("key", "value"), [("camera.source", "lidar"), ("camera.object_T_tag", [0, 0, 0.03]),
                                            ("camera.world_T_camera", [0, 0, 1, 0, 0, 0, 2]),
                                            ("camera.tag_id", 600), ("camera.tf_sigmas", [0.1, -1, 0.1])])
def test_bad_camera_parameters_are_refused_naming_the_key(key: str, value: object) -> None:
    with pytest.raises(ConfigError, match=key.replace(".", r"\.")):
        load_estimator_config(None, {key: value})


# ------------------------------------------------------------------------------------------- live


def _live(model: TactileModel, **overrides: object) -> LiveEstimator:
    config = load_estimator_config(None, {"object.shape": "rect", "object.size": list(DEFAULT_SIZES["rect"]),
                                          "camera.source": "image", **overrides})
    return LiveEstimator(config, model)


def _camera_messages(run: SimulatedRun, count: int) -> tuple[object, object, list[object]]:
    """(tf_static, camera_info, images) of a run, as a camera driver and tf2 would publish them."""
    renderer = camera_renderer(run)
    frames = render_run(run, renderer, 15.0)[:count]
    T = renderer.world_T_camera
    from tactile_estimator.tf_buffer import Transform

    static = messages.tf_message([StampedTransform("world", CAMERA_FRAME, 0, T[:3, 3].copy(),
                                                   Transform.from_matrix(T).rotation)])
    info = messages.camera_info_msg(frames[0].stamp_ns, renderer.info, CAMERA_FRAME)
    images = [messages.mono8_image_msg(f.stamp_ns, f.image, CAMERA_FRAME)[1] for f in frames]
    return static, info, images


def test_live_detects_on_its_own_thread_and_applies_on_the_next_tick(
        camera_bags: dict[str, Path], run: SimulatedRun, model: TactileModel) -> None:
    live = _live(model, **{"camera.rate_hz": 0.0})  # every image (the default caps live detection at 5 Hz)
    try:
        names = {i.topic: i.feeds for i in inputs(live.config)}
        assert names[IMAGE_TOPIC] == "camera" and names[INFO_TOPIC] == "camera_info"
        topics = [i.topic for i in inputs(live.config)]
        images = 0
        for m in bags.read_messages(camera_bags["images_only"], topics):
            live.handle(m.topic, m.msgtype, m.msg)
            if m.topic == IMAGE_TOPIC:
                images += 1
                assert live.wait_camera(10.0)  # the image is detected on the worker, not in handle
                live.tick()
        out = live.finish()
        events = live.all_events()
        assert events["camera_detections"] + events["camera_no_tag"] + events["camera_busy_skipped"] == images
        assert events["camera_detections"] >= 20
        assert any(topic == "~/object_pose" for topic, _, _ in out) or live.estimates > 0
        last = live.estimator.last_estimate
        truth = {s.stamp_ns: s.pose for s in run.ground_truth}[last.stamp_ns]
        assert np.linalg.norm(last.pose[:2] - truth[:2]) < 0.003
        assert len(live.estimator.camera_poses()) >= 10
    finally:
        live.close()


def test_live_images_without_camera_info_are_dropped_and_said_once(
        run: SimulatedRun, model: TactileModel, caplog: pytest.LogCaptureFixture) -> None:
    live = _live(model, **{"camera.threaded": False})
    static, info, images = _camera_messages(run, 4)
    live.handle("/tf_static", messages.TF_MESSAGE, static)
    with caplog.at_level(logging.WARNING):
        for image in images[:3]:
            live.handle(IMAGE_TOPIC, messages.COMPRESSED_IMAGE, image)
    assert live.all_dropped()["camera_no_info"] == 3
    assert sum("CameraInfo" in r.getMessage() for r in caplog.records) == 1
    # a CameraInfo of another size: the image is a counted drop, not a detection
    small = dataclasses.replace(camera_renderer(run).info, width=320, height=240)
    live.handle(INFO_TOPIC, messages.CAMERA_INFO, messages.camera_info_msg(0, small, CAMERA_FRAME))
    live.handle(IMAGE_TOPIC, messages.COMPRESSED_IMAGE, images[3])
    assert live.all_dropped()["camera_size_mismatch"] == 1
    diagnostics = live.diagnostics()
    values = {kv.key: kv.value for kv in diagnostics.status[0].values}
    assert values["dropped.camera_no_info"] == "3" and values["dropped.camera_size_mismatch"] == "1"


def test_live_bad_camera_input_is_dropped_by_reason(run: SimulatedRun, model: TactileModel) -> None:
    live = _live(model, **{"camera.threaded": False, "camera.rate_hz": 0.0})  # same-stamp images, each read
    static, info, images = _camera_messages(run, 1)
    live.handle("/tf_static", messages.TF_MESSAGE, static)
    bad_info = messages.camera_info_msg(0, camera_renderer(run).info, CAMERA_FRAME)
    bad_info.k = np.full(9, np.nan)
    live.handle(INFO_TOPIC, messages.CAMERA_INFO, bad_info)
    assert live.all_dropped()["camera_bad_info"] == 1
    live.handle(INFO_TOPIC, messages.CAMERA_INFO, info)
    raw = messages.TYPESTORE.types[messages.IMAGE](
        header=images[0].header, height=480, width=640, encoding="16UC1", is_bigendian=0, step=1280,
        data=np.zeros(480 * 1280, np.uint8))
    live.handle("/camera/image_raw", messages.IMAGE, raw)
    junk = messages.TYPESTORE.types[messages.COMPRESSED_IMAGE](header=images[0].header, format="png",
                                                               data=np.frombuffer(b"not a png", np.uint8))
    live.handle(IMAGE_TOPIC, messages.COMPRESSED_IMAGE, junk)
    assert live.all_dropped()["camera_bad_image"] == 2
    mono = messages.mono8_image_msg(0, np.zeros((480, 640), np.uint8), CAMERA_FRAME, png=False)[1]
    mono.header = images[0].header
    live.handle("/camera/image_raw", messages.IMAGE, mono)
    assert live.all_events()["camera_no_tag"] == 1


def test_live_without_extrinsics_drops_as_no_extrinsics(run: SimulatedRun, model: TactileModel) -> None:
    live = _live(model, **{"camera.threaded": False})
    _, info, images = _camera_messages(run, 1)
    live.handle(INFO_TOPIC, messages.CAMERA_INFO, info)
    live.handle(IMAGE_TOPIC, messages.COMPRESSED_IMAGE, images[0])
    assert live.all_dropped()["camera_no_extrinsics"] == 1


def test_apriltag_ros_tag_frames_become_detections(run: SimulatedRun, model: TactileModel) -> None:
    live = _live(model, **{"camera.source": "tf"})
    assert {i.topic for i in inputs(live.config)} >= {"/tf", "/tf_static"}
    renderer = camera_renderer(run)
    from tactile_estimator.camera.model import inverse, planar
    from tactile_estimator.tf_buffer import Transform

    T = renderer.world_T_camera
    live.handle("/tf_static", messages.TF_MESSAGE, messages.tf_message(
        [StampedTransform("world", CAMERA_FRAME, 0, T[:3, 3].copy(), Transform.from_matrix(T).rotation)]))
    truth = run.ground_truth[10]
    camera_T_tag = inverse(T) @ planar(truth.pose) @ renderer.options.mount.object_T_tag
    tag = StampedTransform(CAMERA_FRAME, "tag36h11:0", truth.stamp_ns, camera_T_tag[:3, 3].copy(),
                           Transform.from_matrix(camera_T_tag).rotation)
    outcome = live.router.camera.transform(tag, static=False)
    np.testing.assert_allclose(outcome.detection.pose, truth.pose, atol=1e-6)
    np.testing.assert_allclose(np.sqrt(np.diag(outcome.detection.covariance)), live.config.noise.camera)
    live.handle("/tf", messages.TF_MESSAGE, messages.tf_message([tag]))
    assert live.all_events()["camera_detections"] == 1
    # another id's frame is not the object
    live.handle("/tf", messages.TF_MESSAGE, messages.tf_message([StampedTransform(
        CAMERA_FRAME, "tag36h11:5", truth.stamp_ns + 10**8, camera_T_tag[:3, 3].copy(),
        Transform.from_matrix(camera_T_tag).rotation)]))
    assert live.all_events()["camera_detections"] == 1


def test_metrics_json_has_the_camera_counts(camera_bags: dict[str, Path], model: TactileModel,
                                            tmp_path: Path) -> None:
    config = load_estimator_config(None, {"camera.source": "image"})
    result = replay_bag(camera_bags["images"], config, model, tmp_path)
    metrics = json.loads((tmp_path / "metrics.json").read_text())
    assert metrics["events"]["camera_detections"] == result.metrics["events"]["camera_detections"] > 0


def test_live_detection_is_capped_at_camera_rate_hz(camera_bags: dict[str, Path], model: TactileModel) -> None:
    """15 Hz images, 5 Hz detected (the default): the rest are skipped before they reach the detector."""
    live = _live(model)
    try:
        assert live.config.camera.rate_hz == 5.0
        topics = [i.topic for i in inputs(live.config)]
        images = 0
        for m in bags.read_messages(camera_bags["images_only"], topics):
            live.handle(m.topic, m.msgtype, m.msg)
            if m.topic == IMAGE_TOPIC:
                images += 1
                assert live.wait_camera(10.0)
                live.tick()
        live.finish()
        events = live.all_events()
        tried = events["camera_detections"] + events["camera_no_tag"] + events["camera_busy_skipped"]
        assert images >= 40 and images / 3 - 2 <= tried <= images / 3 + 2
    finally:
        live.close()
