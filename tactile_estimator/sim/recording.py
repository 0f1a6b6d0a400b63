"""A simulated run written as a real rosbag2 recording, with the topics a robot cell would publish.

The end-effector is written as ``/ee_pose`` (PoseStamped of the gel), as ``/tf`` and
``/tf_static`` the way robot_state_publisher writes an arm (``world -> ee`` for the flange at
100 Hz, and the gel's mounting ``ee -> digit_gel`` once, latched), or both.
"""

from __future__ import annotations

import math
import os
from pathlib import Path

import numpy as np

from tactile_estimator.config import EstimatorConfig
from tactile_estimator.io import atomic, bags, messages
from tactile_estimator.sim.pushing import SimulatedRun
from tactile_estimator.tf_buffer import StampedTransform, Transform

EE_GROUND_TRUTH_TOPIC = "/ee_ground_truth"
EE_OUTPUTS = ("pose", "tf", "both")
SENSOR_FRAME = "digit_gel"  # the gel's frame in the simulated /tf_static, where frames.sensor is empty
# The gel's mounting on the flange: 12 cm below it, 1 cm off its axis and turned a quarter turn, so a
# reader that skips the mounting or composes it the wrong way round is centimetres and 90 degrees off.
MOUNTING = Transform(np.array([0.01, 0.0, -0.12]), np.array([0.0, 0.0, math.sin(math.pi / 4), math.cos(math.pi / 4)]))


def _planar(pose: np.ndarray) -> Transform:
    """A planar pose on the table plane (z = 0) as a 3-D transform."""
    x, y, theta = (float(v) for v in pose)
    return Transform(np.array([x, y, 0.0]), np.array([0.0, 0.0, math.sin(theta / 2), math.cos(theta / 2)]))


def ee_tf_records(run: SimulatedRun, config: EstimatorConfig) -> list[tuple[str, str, int, object]]:
    """The end-effector as robot_state_publisher would write it: the flange on /tf, the mounting on /tf_static."""
    t, frames = config.topics, config.frames
    world, ee = frames.world.lstrip("/"), frames.ee.lstrip("/")
    sensor = frames.sensor.lstrip("/") or SENSOR_FRAME
    first = min(s.stamp_ns for s in run.ee_poses)
    unmount = MOUNTING.inverse()
    records: list[tuple[str, str, int, object]] = [
        (t.tf_static, messages.TF_MESSAGE, first - 1, messages.tf_message(
            [StampedTransform(ee, sensor, first - 1, MOUNTING.translation, MOUNTING.rotation)]))]
    for s in run.ee_poses:
        flange = _planar(s.pose) * unmount  # world -> gel, then gel -> flange
        records.append((t.tf, messages.TF_MESSAGE, s.stamp_ns, messages.tf_message(
            [StampedTransform(world, ee, s.stamp_ns, flange.translation, flange.rotation)])))
    return records


def write_run_bag(run: SimulatedRun, path: str | os.PathLike[str], storage: str = "mcap",
                  topics: EstimatorConfig | None = None, jpeg_quality: int = 90, ee: str = "pose") -> None:
    """Tactile frames as CompressedImage (JPEG keeps a 300-step run near 6 MB), poses as PoseStamped,
    detections as PoseWithCovarianceStamped, the object's shape as a JSON String.

    The bag appears at ``path`` only when it was written whole (bags.BagWriter); a write that fails
    (a full disk) leaves nothing there and raises an OutputError naming the bag. ``ee``: the end-effector
    as ``pose`` (``topics.ee_pose``), ``tf`` (``/tf`` and ``/tf_static``, see :func:`ee_tf_records`) or both."""
    if ee not in EE_OUTPUTS:
        raise ValueError(f"ee output {ee!r} is not one of {', '.join(EE_OUTPUTS)}")
    t = (topics or EstimatorConfig()).topics
    frames = (topics or EstimatorConfig()).frames
    first = min(f.stamp_ns for f in run.tactile)
    info = messages.string_msg(messages.object_info_to_text(run.object_info))
    records = [(t.object_info, messages.STRING, first - 1, info)]
    records += [(t.tactile.rstrip("/") + "/compressed", messages.COMPRESSED_IMAGE, f.stamp_ns,
                 messages.compressed_image_msg(f, quality=jpeg_quality)) for f in run.tactile]
    if ee in ("pose", "both"):
        records += [(t.ee_pose, messages.POSE_STAMPED, s.stamp_ns,
                     messages.pose_stamped_msg(s.stamp_ns, s.pose, frames.world)) for s in run.ee_poses]
    if ee in ("tf", "both"):
        records += ee_tf_records(run, topics or EstimatorConfig())
    records += [(t.camera, messages.POSE_WITH_COVARIANCE_STAMPED, d.stamp_ns,
                 messages.pose_with_covariance_msg(d.stamp_ns, d.pose, d.covariance, frames.world)) for d in run.camera]
    records += [(t.ground_truth, messages.POSE_STAMPED, s.stamp_ns,
                 messages.pose_stamped_msg(s.stamp_ns, s.pose, frames.world)) for s in run.ground_truth]
    records += [(EE_GROUND_TRUTH_TOPIC, messages.POSE_STAMPED, s.stamp_ns,
                 messages.pose_stamped_msg(s.stamp_ns, s.pose, frames.world)) for s in run.ee_ground_truth]
    records.sort(key=lambda r: r[2])
    try:
        with bags.BagWriter(path, storage) as writer:
            for topic, msgtype, stamp, msg in records:
                writer.write(topic, msgtype, stamp, msg)
    except OSError as error:
        raise atomic.OutputError(f"cannot write bag {path}: {error.strerror or error}; no bag was left there",
                                 Path(path), error.errno) from error
