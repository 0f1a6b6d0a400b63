"""Training data from bags: tactile frames aligned with end-effector poses and ground truth.

Each bag becomes a ``Trajectory``: per tactile frame, the image's network input, the end-effector
pose (interpolated from the pose stream, as the estimator does), the ground-truth object pose
and contact as the estimator reads it from the image. The end-effector comes from where the
estimator's config says (``ee_source``): ``topics.ee_pose``, or ``/tf`` and ``/tf_static`` through
the estimator's own transform buffer (router.ee_from_tf), so training sees the poses
replay and the live node see. Pairs (i, j) within a contact episode at the
estimator's tactile offsets are the supervised examples; their target is s_i⁻¹ s_j.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from tactile_estimator.config import EstimatorConfig
from tactile_estimator.contact_detection import ContactDetector
from tactile_estimator.factors.tactile import relative_sensor_motion
from tactile_estimator.io import bags, messages
from tactile_estimator.io.bags import expand_bag_paths  # noqa: F401 - where the trainer's callers find it
from tactile_estimator.metrics import interpolate_poses
from tactile_estimator.networks.tactile import Architecture, preprocess
from tactile_estimator.objects import Shape
from tactile_estimator.router import ee_from_tf, ee_topics, tactile_topics

EE_TRUTH_TOPIC = "/ee_ground_truth"  # recorded by the simulator; real bags fall back on the measured poses


class DatasetError(ValueError):
    """Bags that cannot be used for training; the message names the bag and what it lacks."""


@dataclass
class Trajectory:
    bag: Path
    shape: Shape | None
    stamps: np.ndarray  # (T,) ns
    inputs: np.ndarray  # (T, 3, h, w) float32 network input
    ee: np.ndarray  # (T, 3) end-effector: true where the bag records it (for targets), else measured
    ee_measured: np.ndarray  # (T, 3) end-effector as the estimator sees it
    truth: np.ndarray  # (T, 3)
    in_contact: np.ndarray  # (T,) bool
    episode: np.ndarray  # (T,) int, -1 out of contact


def training_topics(config: EstimatorConfig) -> list[list[str]]:
    """The topic groups a training bag needs (one topic of each with messages): tactile frames, the
    end-effector (``topics.ee_pose``, or ``/tf`` with ``ee_source: tf``, as replay asks) and ground truth."""
    t = config.topics
    return [tactile_topics(config), [t.tf] if config.ee_source == "tf" else [t.ee_pose], [t.ground_truth]]


def require_training_topics(bag: str | os.PathLike[str], config: EstimatorConfig) -> None:
    """A bag training can use has the topics of :func:`training_topics`.

    Raises DatasetError naming what is missing (and, where the bag has the end-effector on the other
    source, the ``ee_source`` that reads it), and BagError when the bag cannot be read.
    """
    try:
        bags.require_topics(bag, training_topics(config))
    except bags.MissingTopicsError as error:
        t = config.topics
        hint = ""
        other = {t.ee_pose: (t.tf, "tf"), t.tf: (t.ee_pose, "pose")}
        for group in error.missing:
            if group and group[0] in other and other[group[0]][0] in error.available:
                topic, source = other[group[0]]
                hint = f"; to read the end-effector from {topic}, set ee_source: {source} in --config"
                if source == "tf":
                    hint += " (and frames.sensor, the gel's frame, where its mounting is on /tf_static)"
        raise DatasetError(f"training needs tactile frames, the end-effector and ground truth ({t.ground_truth}): "
                           f"{error}{hint}") from None


def load_trajectory(bag: str | os.PathLike[str], config: EstimatorConfig, arch: Architecture) -> Trajectory:
    bag = bags.resolve_bag(bag)
    topics = config.topics
    tactile = tactile_topics(config)
    require_training_topics(bag, config)
    # The simulator also records the end-effector's true pose; where a bag has it, the targets use it,
    # since the measured pose's noise (0.5 mm) is as large as the sensor motion being learned.
    frames, ee, ee_truth, truth = [], [], [], []
    shape = None
    hw = (arch.image_height, arch.image_width)
    from_tf = ee_from_tf(config) if config.ee_source == "tf" else None
    wanted = [*tactile, *ee_topics(config), EE_TRUTH_TOPIC, topics.ground_truth, topics.object_info]
    for message in bags.read_messages(bag, wanted):
        try:
            if message.topic in tactile:
                frames.append(messages.image_to_frame(message.msg, message.msgtype, message.topic, hw))
            elif from_tf is not None and message.topic in (topics.tf, topics.tf_static):
                if message.msgtype == messages.TF_MESSAGE:  # bad transforms and look-ups are left out, as below
                    for transform in messages.tf_transforms(message.msg, message.topic)[0]:
                        from_tf.add(transform, static=message.topic == topics.tf_static)
                    ee.extend(from_tf.samples()[0])
            elif message.topic == topics.ee_pose and from_tf is None:
                s = messages.pose_to_sample(message.msg, message.msgtype, message.topic, config.max_tilt_rad)
                ee.append((s.stamp_ns, s.pose))
            elif message.topic == EE_TRUTH_TOPIC:
                s = messages.pose_to_sample(message.msg, message.msgtype, message.topic, np.pi)
                ee_truth.append((s.stamp_ns, s.pose))
            elif message.topic == topics.ground_truth:
                s = messages.pose_to_sample(message.msg, message.msgtype, message.topic, np.pi)
                truth.append((s.stamp_ns, s.pose))
            elif message.topic == topics.object_info and shape is None:
                shape = Shape.from_info(messages.object_info_from_text(message.msg.data, message.topic))
        except messages.InputRejected:
            continue  # training uses what is clean; the estimator's replay reports what is not
    if from_tf is not None:
        ee.extend(from_tf.samples(final=True)[0])  # the bag ended: nothing more will come for the stamps waiting
    if not frames or len(ee) < 2 or len(truth) < 2:
        raise DatasetError(f"bag {bag}: too few usable tactile frames, end-effector poses or ground-truth poses")
    frames.sort(key=lambda f: f.stamp_ns)
    stamps = np.array([f.stamp_ns for f in frames])
    measured_at, ee_ok = interpolate_poses(np.array([t for t, _ in ee]), np.array([p for _, p in ee]), stamps)
    ee_at = measured_at
    if len(ee_truth) >= 2:
        ee_at, _ = interpolate_poses(np.array([t for t, _ in ee_truth]), np.array([p for _, p in ee_truth]), stamps)
    truth_at, truth_ok = interpolate_poses(np.array([t for t, _ in truth]), np.array([p for _, p in truth]), stamps)
    keep = ee_ok & truth_ok
    detector = ContactDetector(config.contact)
    contact = np.array([bool(detector.update(f.image)) for f in frames])
    background = detector.background if detector.background is not None else frames[0].image
    inputs = np.concatenate([
        preprocess(np.stack([f.image for f in frames[i:i + 64]]), background, arch) for i in range(0, len(frames), 64)
    ])
    episode = np.full(len(frames), -1)
    current = -1
    for i, c in enumerate(contact):
        if c:
            if i == 0 or not contact[i - 1]:
                current += 1
            episode[i] = current
    return Trajectory(bag, shape, stamps[keep], inputs[keep], ee_at[keep], measured_at[keep], truth_at[keep],
                      contact[keep], episode[keep])


def tactile_pairs(trajectory: Trajectory, offsets: list[int]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Indices (i, j) of frames in the same contact episode at the given offsets, and targets s_i⁻¹ s_j."""
    i_idx, j_idx = [], []
    n = len(trajectory.stamps)
    for d in offsets:
        i = np.arange(max(n - d, 0))
        same = (trajectory.episode[i] >= 0) & (trajectory.episode[i] == trajectory.episode[i + d])
        i_idx.append(i[same])
        j_idx.append(i[same] + d)
    i_all = np.concatenate(i_idx) if i_idx else np.zeros(0, int)
    j_all = np.concatenate(j_idx) if j_idx else np.zeros(0, int)
    t = trajectory
    targets = relative_sensor_motion(t.truth[i_all], t.ee[i_all], t.truth[j_all], t.ee[j_all]).reshape(-1, 3)
    return i_all, j_all, targets
