"""Messages to records to the estimator: the one path shared by bag replay and the live transports.

The router owns no ROS node; it takes deserialised messages (rosbags' classes, which the Cyclone
DDS transport also produces) with their topic and type, turns them into records, and hands
them to the Estimator. A message that cannot become a record is counted and dropped.
"""

from __future__ import annotations

import logging

from tactile_estimator.config import EstimatorConfig
from tactile_estimator.estimator import Estimator
from tactile_estimator.io import messages
from tactile_estimator.records import Estimate

log = logging.getLogger(__name__)


def tactile_topics(config: EstimatorConfig) -> list[str]:
    """The raw topic and its image_transport ``/compressed`` sibling."""
    return [config.topics.tactile, config.topics.tactile.rstrip("/") + "/compressed"]


class StreamRouter:
    def __init__(self, estimator: Estimator) -> None:
        self.estimator = estimator
        config = estimator.config
        self._tactile = set(tactile_topics(config))
        self._hw = (config.image_height, config.image_width)
        self._tilt = config.max_tilt_rad
        self._warned: set[tuple[str, str]] = set()

    @property
    def topics(self) -> list[str]:
        t = self.estimator.config.topics
        return [*sorted(self._tactile), t.ee_pose, t.camera]

    def handle(self, topic: str, msgtype: str, msg: object) -> list[Estimate]:
        topics = self.estimator.config.topics
        try:
            if topic in self._tactile:
                self._expect(topic, msgtype, messages.IMAGE_TYPES)
                return self.estimator.add_tactile(messages.image_to_frame(msg, msgtype, topic, self._hw))
            if topic == topics.ee_pose:
                self._expect(topic, msgtype, messages.POSE_TYPES)
                return self.estimator.add_ee_pose(messages.pose_to_sample(msg, msgtype, topic, self._tilt))
            if topic == topics.camera:
                self._expect(topic, msgtype, messages.POSE_TYPES)
                return self.estimator.add_camera(messages.detection_to_record(msg, msgtype, topic, self._tilt))
        except messages.InputRejected as rejected:
            self.estimator.reject(rejected.reason, str(rejected))
        return []

    def _expect(self, topic: str, msgtype: str, accepted: tuple[str, ...]) -> None:
        if msgtype not in accepted:
            raise messages.InputRejected(
                "unsupported_type", topic, None, f"type {msgtype} is not one of {', '.join(accepted)}"
            )
