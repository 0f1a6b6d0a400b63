"""Messages to records to the estimator: the one path shared by bag replay and the live transports.

The router owns no ROS node; it takes deserialised messages (rosbags' classes, which the Cyclone
DDS transport also produces) with their topic and type, turns them into records, and hands
them to the Estimator. A message that cannot become a record is counted and dropped.

With ``ee_source: tf`` the end-effector comes from ``/tf`` and ``/tf_static`` instead of
``topics.ee_pose``: the transforms go into a :class:`~tactile_estimator.tf_buffer.EndEffectorFromTf`
and each end-effector pose it can look up goes to the estimator as a pose sample would.
"""

from __future__ import annotations

import logging

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


def ee_from_tf(config: EstimatorConfig) -> EndEffectorFromTf:
    frames = config.frames
    return EndEffectorFromTf(frames.world.lstrip("/"), frames.ee.lstrip("/"), frames.sensor.lstrip("/"),
                             max_tilt_rad=config.max_tilt_rad, jump_back_s=config.clock_restart_s,
                             wait_s=config.max_pending_s)


class StreamRouter:
    def __init__(self, estimator: Estimator, ee_tf: EndEffectorFromTf | None = None) -> None:
        """``ee_tf``: the transform buffer to use with ``ee_source: tf`` (a live estimator keeps one across
        graphs, since ``/tf_static`` comes once); None: a new one."""
        self.estimator = estimator
        config = estimator.config
        self._tactile = set(tactile_topics(config))
        self._hw = (config.image_height, config.image_width)
        self._tilt = config.max_tilt_rad
        self._warned: set[tuple[str, str]] = set()
        self.ee_tf = (ee_tf or ee_from_tf(config)) if config.ee_source == "tf" else None

    @property
    def topics(self) -> list[str]:
        t = self.estimator.config.topics
        return [*sorted(self._tactile), *ee_topics(self.estimator.config), t.camera]

    def handle(self, topic: str, msgtype: str, msg: object) -> list[Estimate]:
        topics = self.estimator.config.topics
        try:
            if topic in self._tactile:
                self._expect(topic, msgtype, messages.IMAGE_TYPES)
                return self.estimator.add_tactile(messages.image_to_frame(msg, msgtype, topic, self._hw))
            if self.ee_tf is not None and topic in (topics.tf, topics.tf_static):
                self._expect(topic, msgtype, (messages.TF_MESSAGE,))
                return self._tf(topic, msg, static=topic == topics.tf_static)
            if topic == topics.ee_pose and self.ee_tf is None:
                self._expect(topic, msgtype, messages.POSE_TYPES)
                return self.estimator.add_ee_pose(messages.pose_to_sample(msg, msgtype, topic, self._tilt))
            if topic == topics.camera:
                self._expect(topic, msgtype, messages.POSE_TYPES)
                return self.estimator.add_camera(messages.detection_to_record(msg, msgtype, topic, self._tilt))
        except messages.InputRejected as rejected:
            self.estimator.reject(rejected.reason, str(rejected))
        return []

    def _tf(self, topic: str, msg: object, static: bool) -> list[Estimate]:
        assert self.ee_tf is not None
        transforms, bad = messages.tf_transforms(msg, topic)
        for rejected in bad:
            self.estimator.reject(rejected.reason, str(rejected))
        for transform in transforms:
            self.ee_tf.add(transform, static)
        return self._ee_samples(final=False)

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
