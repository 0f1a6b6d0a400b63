"""A simulated run written as a real rosbag2 recording, with the topics a robot cell would publish.

The end-effector is written as ``/ee_pose`` (PoseStamped of the gel), as ``/tf`` and
``/tf_static`` the way robot_state_publisher writes an arm (``world -> ee`` for the flange at
100 Hz, and the gel's mounting ``ee -> digit_gel`` once, latched), or both.

With a :class:`~tactile_estimator.sim.camera.CameraRenderer`, the camera's frames go on
``topics.camera_image`` (PNG ``CompressedImage`` on ``/compressed``, or raw mono8), each with its
``CameraInfo`` on ``topics.camera_info``, and the camera's pose on ``/tf_static`` (``world ->
camera_optical_frame``). The renderer draws from a generator of its own (:func:`camera_renderer`),
so the other topics of a run are the same with images as without.
"""

from __future__ import annotations

import math
import os
from pathlib import Path

import numpy as np

from tactile_estimator.config import EstimatorConfig
from tactile_estimator.io import atomic, bags, messages
from tactile_estimator.sim.camera import CameraOptions, CameraRenderer, render_run
from tactile_estimator.sim.pushing import SimulatedRun
from tactile_estimator.tf_buffer import StampedTransform, Transform

EE_GROUND_TRUTH_TOPIC = "/ee_ground_truth"
EE_OUTPUTS = ("pose", "tf", "both")
SENSOR_FRAME = "digit_gel"  # the gel's frame in the simulated /tf_static, where frames.sensor is empty
# The gel's mounting on the flange: 12 cm below it, 1 cm off its axis and turned a quarter turn, so a
# reader that skips the mounting or composes it the wrong way round is centimetres and 90 degrees off.
CAMERA_FRAME = "camera_optical_frame"
CAMERA_RATE_HZ = 15.0
CAMERA_STREAM = 0xCA3E8A  # the camera's generator: SeedSequence([run seed, CAMERA_STREAM])
MOUNTING = Transform(np.array([0.01, 0.0, -0.12]), np.array([0.0, 0.0, math.sin(math.pi / 4), math.cos(math.pi / 4)]))


def _planar(pose: np.ndarray) -> Transform:
    """A planar pose on the table plane (z = 0) as a 3-D transform."""
    x, y, theta = (float(v) for v in pose)
    return Transform(np.array([x, y, 0.0]), np.array([0.0, 0.0, math.sin(theta / 2), math.cos(theta / 2)]))


def camera_renderer(run: SimulatedRun, options: CameraOptions | None = None) -> CameraRenderer:
    """A renderer for ``run`` seeded from the run's seed through a SeedSequence of its own, so rendering
    draws nothing from the simulator's generator."""
    seed = int(run.params.get("seed", 0))
    return CameraRenderer(options, np.random.default_rng(np.random.SeedSequence([seed, CAMERA_STREAM])))


def camera_records(run: SimulatedRun, renderer: CameraRenderer, config: EstimatorConfig, png: bool = True,
                   rate_hz: float = CAMERA_RATE_HZ) -> tuple[list[tuple[str, str, int, object]], StampedTransform]:
    """The camera's images and CameraInfos at ``rate_hz``, and its pose in world for /tf_static."""
    t = config.topics
    records: list[tuple[str, str, int, object]] = []
    for frame in render_run(run, renderer, rate_hz):
        msgtype, msg = messages.mono8_image_msg(frame.stamp_ns, frame.image, CAMERA_FRAME, png=png)
        topic = t.camera_image.rstrip("/") + "/compressed" if png else t.camera_image
        # the CameraInfo is logged a nanosecond ahead of its image (same header stamp), as a driver sends it first
        records.append((t.camera_info, messages.CAMERA_INFO, frame.stamp_ns - 1,
                        messages.camera_info_msg(frame.stamp_ns, renderer.info, CAMERA_FRAME)))
        records.append((topic, msgtype, frame.stamp_ns, msg))
    T = renderer.world_T_camera
    first = min(f.stamp_ns for f in run.tactile)
    camera = Transform.from_matrix(T)
    pose = StampedTransform(config.frames.world.lstrip("/"), CAMERA_FRAME, first - 1, camera.translation,
                            camera.rotation)
    return records, pose


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
                  topics: EstimatorConfig | None = None, jpeg_quality: int = 90, ee: str = "pose",
                  camera: CameraRenderer | None = None, camera_png: bool = True, detections: bool = True) -> None:
    """Tactile frames as CompressedImage (JPEG keeps a 300-step run near 6 MB), poses as PoseStamped,
    detections as PoseWithCovarianceStamped, the object's shape as a JSON String. ``/object_info`` and
    ``/tf_static`` carry offered QoS profiles (reliable, transient local), so a plain ``ros2 bag play``
    publishes them latched.

    The bag appears at ``path`` only when it was written whole (bags.BagWriter); a write that fails
    (a full disk) leaves nothing there and raises an OutputError naming the bag. ``ee``: the end-effector
    as ``pose`` (``topics.ee_pose``), ``tf`` (``/tf`` and ``/tf_static``, see :func:`ee_tf_records`) or both.
    ``camera``: renders the camera's images (:func:`camera_records`; PNG unless ``camera_png`` is False);
    ``detections``: False leaves the detection topic out (a bag from a camera with no tracker)."""
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
    if camera is not None:
        images, camera_pose = camera_records(run, camera, topics or EstimatorConfig(), png=camera_png)
        records = _with_static(records, camera_pose, t.tf_static)
        records += images
    if detections:
        records += [(t.camera, messages.POSE_WITH_COVARIANCE_STAMPED, d.stamp_ns,
                     messages.pose_with_covariance_msg(d.stamp_ns, d.pose, d.covariance, frames.world))
                    for d in run.camera]
    records += [(t.ground_truth, messages.POSE_STAMPED, s.stamp_ns,
                 messages.pose_stamped_msg(s.stamp_ns, s.pose, frames.world)) for s in run.ground_truth]
    records += [(EE_GROUND_TRUTH_TOPIC, messages.POSE_STAMPED, s.stamp_ns,
                 messages.pose_stamped_msg(s.stamp_ns, s.pose, frames.world)) for s in run.ee_ground_truth]
    records.sort(key=lambda r: r[2])  # stable: records of one stamp keep their order
    try:
        # latched, as play's publishers and tf2's static broadcaster offer them: ros2 bag play offers what the bag says
        latched = {t.object_info: [bags.latched_qos()], t.tf_static: [bags.latched_qos()]}
        with bags.BagWriter(path, storage, offered_qos=latched) as writer:
            for topic, msgtype, stamp, msg in records:
                writer.write(topic, msgtype, stamp, msg)
    except OSError as error:
        raise atomic.OutputError(f"cannot write bag {path}: {error.strerror or error}; no bag was left there",
                                 Path(path), error.errno) from error


def _with_static(records: list[tuple[str, str, int, object]], transform: StampedTransform,
                 topic: str) -> list[tuple[str, str, int, object]]:
    """``transform`` added to the one /tf_static message (a latched topic keeps one message, as tf2's
    static broadcaster sends all its transforms together), stamped at the earlier of the two."""
    for i, (name, msgtype, stamp, msg) in enumerate(records):
        if name == topic:
            existing, _ = messages.tf_transforms(msg, topic)
            first = min(stamp, transform.stamp_ns)
            items = [StampedTransform(x.parent, x.child, first, x.translation, x.rotation)
                     for x in [*existing, transform]]
            return [*records[:i], (name, msgtype, first, messages.tf_message(items)), *records[i + 1:]]
    return [*records, (topic, messages.TF_MESSAGE, transform.stamp_ns, messages.tf_message([transform]))]
