"""Training from bags whose end-effector is on /tf and /tf_static (ee_source: tf), as a robot cell
records an arm: pretraining's trajectories and the trainer's graphs equal those of the same run
recorded with /ee_pose."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from tactile_estimator import bag_info
from tactile_estimator.config import load_estimator_config
from tactile_estimator.io import bags
from tactile_estimator.learning.datasets import DatasetError, load_trajectory, training_topics
from tactile_estimator.learning.runs import build_run, require_training_topics
from tactile_estimator.networks.tactile import Architecture, TactileModel
from tactile_estimator.sim.pushing import SimulatedRun
from tactile_estimator.sim.recording import SENSOR_FRAME, write_run_bag

TF_CONFIG = {"ee_source": "tf", "frames": {"sensor": SENSOR_FRAME}}


@pytest.fixture(scope="module")
def tf_bag(rect_run: SimulatedRun, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The run of ``rect_bag``, with the arm on /tf (flange) and /tf_static (the gel's mounting) only."""
    path = tmp_path_factory.mktemp("bags") / "rect_tf"
    write_run_bag(rect_run, path, ee="tf")
    assert "/ee_pose" not in bags.bag_info(path)
    return path


def test_pretraining_reads_the_end_effector_from_tf(rect_bag: Path, tf_bag: Path) -> None:
    arch = Architecture()
    from_pose = load_trajectory(rect_bag, load_estimator_config(), arch)
    from_tf = load_trajectory(tf_bag, load_estimator_config(None, TF_CONFIG), arch)
    assert len(from_tf.stamps) == len(from_pose.stamps) > 100
    np.testing.assert_array_equal(from_tf.stamps, from_pose.stamps)
    np.testing.assert_allclose(from_tf.ee_measured, from_pose.ee_measured, atol=1e-6)
    np.testing.assert_array_equal(from_tf.in_contact, from_pose.in_contact)
    # the mounting matters: read as the flange, the gel is a centimetre and a quarter turn away
    flange = load_trajectory(tf_bag, load_estimator_config(None, {"ee_source": "tf"}), arch)
    assert np.abs(flange.ee_measured[:, :2] - from_pose.ee_measured[:, :2]).max() > 5e-3


def test_the_trainer_builds_the_same_graph_from_tf(rect_bag: Path, tf_bag: Path) -> None:
    model = TactileModel.load(None)
    from_pose = build_run(rect_bag, load_estimator_config(), model)
    from_tf = build_run(tf_bag, load_estimator_config(None, TF_CONFIG), model)
    assert from_tf.keys == from_pose.keys and from_tf.steps > 100
    assert sorted(from_tf.groups) == sorted(from_pose.groups)
    np.testing.assert_allclose(from_tf.truth, from_pose.truth, atol=1e-6)
    np.testing.assert_allclose(from_tf.warm, from_pose.warm, atol=1e-6)


def test_a_bag_without_the_configured_end_effector_is_refused_naming_it_and_the_source_that_reads_it(
        rect_bag: Path, tf_bag: Path) -> None:
    hint = r"lacks /ee_pose;.*to read the end-effector from /tf, set ee_source: tf in --config"
    with pytest.raises(DatasetError, match=hint) as pose:
        load_trajectory(tf_bag, load_estimator_config(), Architecture())
    with pytest.raises(DatasetError) as trainer:
        require_training_topics(tf_bag, load_estimator_config())
    assert str(trainer.value) == str(pose.value) and "\n" not in str(pose.value)
    with pytest.raises(DatasetError, match=r"lacks /tf;.*from /ee_pose, set ee_source: pose"):
        load_trajectory(rect_bag, load_estimator_config(None, TF_CONFIG), Architecture())
    with pytest.raises(DatasetError, match=r"lacks /tf;"):
        require_training_topics(rect_bag, load_estimator_config(None, TF_CONFIG))


@pytest.mark.parametrize("overrides", [{}, TF_CONFIG])
def test_info_asks_of_a_training_bag_what_training_checks(overrides: dict) -> None:
    config = load_estimator_config(None, overrides)
    assert bag_info.requirements(config)["train"] == training_topics(config)
    assert (["/tf"] in training_topics(config)) == bool(overrides)
