"""A bag through the estimator (playback.feed_bag): what replay and the trainer's run building share."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from tactile_estimator.config import load_estimator_config
from tactile_estimator.estimator import Estimator
from tactile_estimator.factors import ObjectModel
from tactile_estimator.io import bags, messages
from tactile_estimator.networks.tactile import TactileModel
from tactile_estimator.playback import bag_config, feed_bag
from tactile_estimator.router import StreamRouter


@pytest.fixture(scope="module")
def model() -> TactileModel:
    return TactileModel.load()


def _play(bag: Path, model: TactileModel, record: list[str]):
    info, config = bag_config(bag, load_estimator_config())
    estimator = Estimator(config, model, ObjectModel.for_shape(bags.object_shape(bag, config)))
    return estimator, feed_bag(bag, StreamRouter(estimator), record, info=info)


def test_the_bag_is_estimated_and_its_ground_truth_recorded_beside(rect_bag: Path, model: TactileModel) -> None:
    truth_topic = "/object_ground_truth"
    estimator, played = _play(rect_bag, model, [truth_topic])
    recorded = list(bags.read_messages(rect_bag, [truth_topic]))
    assert len(played.recorded[truth_topic]) == len(recorded) > 100
    stamps, poses = played.poses(truth_topic)
    assert stamps.shape == (len(recorded),) and poses.shape == (len(recorded), 3) and (np.diff(stamps) > 0).all()
    assert len(played.estimates) == len(estimator.steps) == 150  # one estimate a step, the last ones by the flush
    assert [e.step for e in played.estimates] == list(range(150))
    assert played.poses("/not_recorded") is None


def test_a_ground_truth_pose_that_is_not_clean_is_dropped_and_counted(
    rect_bag: Path, model: TactileModel, tmp_path: Path
) -> None:
    truth_topic = "/object_ground_truth"
    first = next(iter(bags.read_messages(rect_bag, [truth_topic])))
    nan = messages.pose_stamped_msg(messages.stamp_to_ns(first.msg.header.stamp) + 1000, [np.nan, 0.0, 0.0], "world")
    dirty = tmp_path / "dirty"
    bags.copy_bag_with(rect_bag, dirty, [(truth_topic, messages.POSE_STAMPED, first.log_time_ns + 1, nan)])
    _, clean = _play(rect_bag, model, [truth_topic])
    estimator, played = _play(dirty, model, [truth_topic])
    assert estimator.dropped == {"bad_ground_truth": 1}
    assert len(played.recorded[truth_topic]) == len(clean.recorded[truth_topic])
    np.testing.assert_array_equal(played.poses(truth_topic)[1], clean.poses(truth_topic)[1])
    np.testing.assert_array_equal([e.pose for e in played.estimates], [e.pose for e in clean.estimates])

