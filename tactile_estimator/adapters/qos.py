"""The QoS each topic gets, in one place for both transports (cyclonedds in dds.py, rclpy in ros_nodes.py).

ROS 2's profiles: sensor data (best effort, keep last N) for tactile images, reliable keep last N
for poses and detections, latched (reliable, transient local, keep last 1) for ``/object_info``
and the trainer's model announcements, reliable keep last 100 for ``/tf``, and for ``/tf_static``
reliable transient local keep last 100 (tf2's static listener: every static broadcaster's latched
message). Publishers are reliable, which best-effort and reliable subscribers both match.
"""

from __future__ import annotations

from dataclasses import dataclass

from tactile_estimator.config import EstimatorConfig


@dataclass(frozen=True)
class QosProfile:
    reliable: bool
    depth: int
    transient_local: bool = False

    def describe(self) -> str:
        return (f"{'reliable' if self.reliable else 'best effort'}, keep last {self.depth}"
                f"{', transient local' if self.transient_local else ''}")


SENSOR_DATA = QosProfile(reliable=False, depth=5)
RELIABLE = QosProfile(reliable=True, depth=10)
LATCHED = QosProfile(reliable=True, depth=1, transient_local=True)
TF = QosProfile(reliable=True, depth=100)
TF_STATIC = QosProfile(reliable=True, depth=100, transient_local=True)


def input_profile(kind: str, config: EstimatorConfig) -> QosProfile:
    """A subscription's QoS by its kind (live.Input.qos); the queue depths are the config's."""
    if kind == "sensor":
        return QosProfile(reliable=False, depth=config.live.image_queue_depth)
    if kind == "latched":
        return LATCHED
    if kind == "tf":
        return TF
    if kind == "tf_static":
        return TF_STATIC
    return QosProfile(reliable=True, depth=config.live.pose_queue_depth)


def output_profile(kind: str) -> QosProfile:
    """A publication's QoS by its kind (live.Output.qos); latched publishers name LATCHED themselves."""
    return TF if kind == "tf" else RELIABLE
