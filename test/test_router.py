"""The router: messages to records to the estimator, the path replay and every live transport share."""

from __future__ import annotations

import numpy as np
import pytest

from tactile_estimator.config import load_estimator_config
from tactile_estimator.estimator import Estimator
from tactile_estimator.factors import ObjectModel
from tactile_estimator.io import messages
from tactile_estimator.networks.tactile import TactileModel
from tactile_estimator.objects import DEFAULT_SIZES, Shape
from tactile_estimator.records import TactileFrame
from tactile_estimator.router import StreamRouter, camera_topics, ee_topics, tactile_topics


@pytest.fixture(scope="module")
def model() -> TactileModel:
    return TactileModel.load()


def _router(model: TactileModel, **overrides) -> StreamRouter:
    config = load_estimator_config(None, overrides)
    return StreamRouter(Estimator(config, model, ObjectModel.for_shape(Shape("rect", DEFAULT_SIZES["rect"]))))


def test_the_router_reads_the_topics_its_sources_name() -> None:
    config = load_estimator_config()
    assert tactile_topics(config) == ["/digit/image_raw", "/digit/image_raw/compressed"]
    assert ee_topics(config) == ["/ee_pose"]
    assert ee_topics(load_estimator_config(None, {"ee_source": "tf"})) == ["/tf", "/tf_static"]
    assert camera_topics(config, "detection") == ["/object_detection"]
    assert camera_topics(config, "tf") == ["/tf", "/tf_static"]
    image = camera_topics(config, "image")
    assert "/camera/camera_info" in image and "/tf_static" in image


def test_a_message_of_the_wrong_type_is_a_counted_drop(model: TactileModel) -> None:
    router = _router(model)
    pose = messages.pose_stamped_msg(1_000_000, [0.1, 0.0, 0.0], "world")
    assert router.handle("/digit/image_raw", messages.POSE_STAMPED, pose) == []
    assert router.handle("/ee_pose", messages.IMAGE, pose) == []
    assert router.estimator.dropped == {"unsupported_type": 2}


def test_a_topic_the_router_does_not_read_is_ignored_uncounted(model: TactileModel) -> None:
    router = _router(model)
    assert "/elsewhere" not in router.topics
    assert router.handle("/elsewhere", messages.POSE_STAMPED, messages.pose_stamped_msg(1, [0, 0, 0], "world")) == []
    assert not router.estimator.dropped and not router.estimator.events


def test_end_effector_poses_from_tf_reach_the_estimator_once_the_streams_end(model: TactileModel) -> None:
    """With ee_source tf the end-effector is looked up in the transforms; poses still waiting when the
    streams end come out of flush."""
    router = _router(model, ee_source="tf", initial_object_pose=[0.0, 0.0, 0.0])
    assert {"/tf", "/tf_static"} <= set(router.topics) and "/ee_pose" not in router.topics
    received = []
    add = router.estimator.add_ee_pose
    router.estimator.add_ee_pose = lambda sample: received.append(sample) or add(sample)  # the real one, seen
    config = router.estimator.config
    world, ee = config.frames.world.lstrip("/"), config.frames.ee.lstrip("/")
    stamps = [1_000_000_000 + k * 10_000_000 for k in range(5)]
    for k, stamp in enumerate(stamps):
        router.handle("/tf", messages.TF_MESSAGE, messages.tf_msg(stamp, world, ee, [0.01 * k, 0.0, 0.0]))
    before_flush = len(received)
    router.flush()
    assert [s.stamp_ns for s in received] == stamps and before_flush <= len(stamps)
    np.testing.assert_allclose([s.pose[0] for s in received], [0.0, 0.01, 0.02, 0.03, 0.04], atol=1e-12)
    assert not router.estimator.dropped


def test_an_image_after_a_tracker_detection_is_ignored_and_counted(model: TactileModel) -> None:
    """camera.source auto: the tracker's detections are the prior once one has arrived."""
    router = _router(model, **{"camera.source": "auto"})
    detection = messages.pose_stamped_msg(1_000_000_000, [0.0, 0.0, 0.0], "world")
    router.handle("/object_detection", messages.POSE_STAMPED, detection)
    msgtype, image = messages.mono8_image_msg(1_100_000_000, np.zeros((48, 64), np.uint8), "camera")
    router.handle("/camera/image_raw/compressed", msgtype, image)
    assert router.estimator.events["camera_images_ignored"] == 1


def test_a_tactile_frame_of_the_wrong_size_is_dropped_naming_it(model: TactileModel) -> None:
    router = _router(model)
    small = messages.image_msg(TactileFrame(1_000_000, np.zeros((10, 10, 3), np.uint8)))
    assert router.handle("/digit/image_raw", messages.IMAGE, small) == []
    assert router.estimator.dropped == {"bad_image_size": 1}
