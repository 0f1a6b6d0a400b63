"""Messages to records to the estimator: the one path shared by bag replay and the live transports.

The router owns no ROS node; it takes deserialised messages (rosbags' classes, which the Cyclone
DDS transport also produces) with their topic and type, turns them into records, and hands
them to the Estimator. A message that cannot become a record is counted and dropped.

With ``ee_source: tf`` the end-effector comes from ``/tf`` and ``/tf_static`` instead of
``topics.ee_pose``: the transforms go into a :class:`~tactile_estimator.tf_buffer.EndEffectorFromTf`
and each end-effector pose it can look up goes to the estimator as a pose sample would.

The camera prior comes from ``camera.source`` (docs/camera.md): a tracker's detections on
``topics.camera``, the AprilTag detector on ``topics.camera_image`` with ``topics.camera_info`` (and
the extrinsics from ``/tf_static``), apriltag_ros-style tag frames on ``/tf``, or (``auto``) the
detections and the images both, the images only until a detection arrives. Each image is handed
to ``detect`` (in place by default; a live transport puts it on a thread of its own and applies the
outcomes with :meth:`StreamRouter.apply`).
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from tactile_estimator.camera.stream import CameraInput, Job, Outcome, image_topics, run_job
from tactile_estimator.config import EstimatorConfig
from tactile_estimator.estimator import Estimator
from tactile_estimator.io import messages
from tactile_estimator.records import Estimate, PoseSample
from tactile_estimator.tf_buffer import EndEffectorFromTf

log = logging.getLogger(__name__)


def tactile_topics(config: EstimatorConfig) -> list[str]:
    """The raw topic and its image_transport ``/compressed`` sibling."""
    return [config.topics.tactile, config.topics.tactile.rstrip("/") + "/compressed"]


def ee_topics(config: EstimatorConfig) -> list[str]:
    """Where the end-effector comes from: its pose topic, or /tf and /tf_static."""
    t = config.topics
    return [t.tf, t.tf_static] if config.ee_source == "tf" else [t.ee_pose]


def camera_topics(config: EstimatorConfig, source: str | None = None) -> list[str]:
    """The topics the camera prior is read from with ``source`` (default: ``camera.source``)."""
    t, source = config.topics, source or config.camera.source
    topics = [t.camera] if source in ("detection", "auto") else []
    if source in ("image", "auto"):
        topics += [*image_topics(config), t.camera_info]
    if source == "tf" or (source in ("image", "auto") and not config.camera.world_T_camera):
        topics += [t.tf, t.tf_static]
    return topics


def camera_input(config: EstimatorConfig) -> CameraInput | None:
    """The camera's state for a source that needs one (images or tag frames), else None."""
    source = config.camera.source
    return CameraInput(config, "tf" if source == "tf" else "image") if source in ("image", "tf", "auto") else None


def ee_from_tf(config: EstimatorConfig) -> EndEffectorFromTf:
    frames = config.frames
    return EndEffectorFromTf(frames.world.lstrip("/"), frames.ee.lstrip("/"), frames.sensor.lstrip("/"),
                             max_tilt_rad=config.max_tilt_rad, jump_back_s=config.clock_restart_s,
                             wait_s=config.max_pending_s)


class StreamRouter:
    def __init__(self, estimator: Estimator, ee_tf: EndEffectorFromTf | None = None,
                 camera: CameraInput | None = None, detect: Callable[[Job], Outcome | None] | None = None) -> None:
        """``ee_tf``, ``camera``: the transform buffer to use with ``ee_source: tf`` and the camera's state (a
        live estimator keeps them across graphs, since ``/tf_static`` and the CameraInfo may come once);
        None: new ones. ``detect``: runs an image's job and returns its outcome, or None when the outcome
        comes later through :meth:`apply`; default: in place."""
        self.estimator = estimator
        config = estimator.config
        self._tactile = set(tactile_topics(config))
        self._hw = (config.image_height, config.image_width)
        self._tilt = config.max_tilt_rad
        self._warned: set[tuple[str, str]] = set()
        self.ee_tf = (ee_tf or ee_from_tf(config)) if config.ee_source == "tf" else None
        self.camera = camera or camera_input(config)
        self._detect = detect or run_job
        t = config.topics
        source = config.camera.source
        self._detections = source in ("detection", "auto")
        self._images = set(image_topics(config)) if source in ("image", "auto") else set()
        self._camera_tf = self.camera is not None and bool(set(camera_topics(config)) & {t.tf, t.tf_static})

    @property
    def topics(self) -> list[str]:
        config = self.estimator.config
        return list(dict.fromkeys([*sorted(self._tactile), *ee_topics(config), *camera_topics(config)]))

    def handle(self, topic: str, msgtype: str, msg: object) -> list[Estimate]:
        topics = self.estimator.config.topics
        try:
            if topic in self._tactile:
                self._expect(topic, msgtype, messages.IMAGE_TYPES)
                return self.estimator.add_tactile(messages.image_to_frame(msg, msgtype, topic, self._hw))
            if topic in self._images:
                self._expect(topic, msgtype, messages.IMAGE_TYPES)
                return self._image(topic, msgtype, msg)
            if self.camera is not None and topic == topics.camera_info and self._images:
                self._expect(topic, msgtype, (messages.CAMERA_INFO,))
                return self.apply(self.camera.camera_info(msg, topic))
            if (self.ee_tf is not None or self._camera_tf) and topic in (topics.tf, topics.tf_static):
                self._expect(topic, msgtype, (messages.TF_MESSAGE,))
                return self._tf(topic, msg, static=topic == topics.tf_static)
            if topic == topics.ee_pose and self.ee_tf is None:
                self._expect(topic, msgtype, messages.POSE_TYPES)
                return self.estimator.add_ee_pose(messages.pose_to_sample(msg, msgtype, topic, self._tilt))
            if topic == topics.camera and self._detections:
                self._expect(topic, msgtype, messages.POSE_TYPES)
                detection = messages.detection_to_record(msg, msgtype, topic, self._tilt)
                if self.camera is not None:
                    self.camera.detection_seen = True
                return self.estimator.add_camera(detection)
        except messages.InputRejected as rejected:
            self.estimator.reject(rejected.reason, str(rejected))
        return []

    def _image(self, topic: str, msgtype: str, msg: object) -> list[Estimate]:
        assert self.camera is not None
        if self.camera.detection_seen:  # auto: a tracker's detections are the prior, the images are not read
            self.estimator.events["camera_images_ignored"] += 1
            return []
        prepared = self.camera.prepare(msg, msgtype, topic)
        if prepared is None:
            self.estimator.events["camera_rate_skipped"] += 1
            return []
        if isinstance(prepared, Outcome):
            return self.apply(prepared)
        return self.apply(self._detect(prepared))

    def apply(self, outcome: Outcome | None) -> list[Estimate]:
        """A camera outcome: its detection to the estimator, its drop or event counted."""
        if outcome is None:
            return []
        estimator = self.estimator
        if outcome.detection is not None:
            estimator.events["camera_detections"] += 1
            return estimator.add_camera(outcome.detection)
        if outcome.event is not None:
            estimator.events[outcome.event] += 1
        elif outcome.drop == "camera_no_info":  # said once, counted always
            estimator.dropped[outcome.drop] += 1
            if self.camera is None or self.camera.tell_once(outcome.drop):
                log.warning("dropped input: %s", outcome.message)
        elif outcome.drop is not None:
            estimator.reject(outcome.drop, outcome.message)
        return []

    def _tf(self, topic: str, msg: object, static: bool) -> list[Estimate]:
        transforms, bad = messages.tf_transforms(msg, topic)
        for rejected in bad:
            self.estimator.reject(rejected.reason, str(rejected))
        estimates: list[Estimate] = []
        for transform in transforms:
            if self.ee_tf is not None:
                self.ee_tf.add(transform, static)
            if self._camera_tf and self.camera is not None:
                estimates += self.apply(self.camera.transform(transform, static))
        return estimates + (self._ee_samples(final=False) if self.ee_tf is not None else [])

    def _ee_samples(self, final: bool) -> list[Estimate]:
        assert self.ee_tf is not None
        poses, rejected = self.ee_tf.samples(final)
        for reason, text in rejected:
            self.estimator.reject(reason, text)
        estimates: list[Estimate] = []
        for stamp_ns, pose in poses:
            estimates += self.estimator.add_ee_pose(PoseSample(stamp_ns, pose, self.ee_tf.world))
        return estimates

    def flush(self) -> list[Estimate]:
        """The streams ended: the end-effector poses still waiting for transforms, then the estimator's."""
        estimates = self._ee_samples(final=True) if self.ee_tf is not None else []
        return estimates + self.estimator.flush()

    def _expect(self, topic: str, msgtype: str, accepted: tuple[str, ...]) -> None:
        if msgtype not in accepted:
            raise messages.InputRejected(
                "unsupported_type", topic, None, f"type {msgtype} is not one of {', '.join(accepted)}"
            )
