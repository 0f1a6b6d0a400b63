"""The plain records passed between layers (docs/design.md, "Layers").

Adapters turn ROS messages into these; nothing below the adapters sees a ROS type. Stamps are
integer nanoseconds; poses are planar (x, y, theta) in the ``world`` frame.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np


@dataclass(frozen=True)
class TactileFrame:
    """One tactile image: RGB, uint8, shape (height, width, 3)."""

    stamp_ns: int
    image: np.ndarray
    frame_id: str = "digit"


@dataclass(frozen=True)
class PoseSample:
    """A planar pose at a time: end-effector kinematics or motion-capture ground truth."""

    stamp_ns: int
    pose: np.ndarray  # (x, y, theta)
    frame_id: str = "world"


@dataclass(frozen=True)
class CameraDetection:
    """A camera tracker's planar object pose, with an optional 3x3 (x, y, theta) covariance."""

    stamp_ns: int
    pose: np.ndarray
    covariance: np.ndarray | None = None
    frame_id: str = "world"


@dataclass(frozen=True)
class ObjectInfo:
    """The pushed object's shape, as the simulator records it on ``/object_info``."""

    shape: str  # rect | disc | ellipse
    size: tuple[float, ...]  # rect: (length_x, length_y); disc: (radius,); ellipse: (semi_a, semi_b)


@dataclass(frozen=True)
class Estimate:
    """The estimator's output after one step."""

    stamp_ns: int
    step: int
    pose: np.ndarray  # object pose (x, y, theta)
    covariance: np.ndarray  # 3x3 marginal covariance of the object pose
    in_contact: bool
    ee_pose: np.ndarray | None = None
    update_ms: float = 0.0
    events: tuple[str, ...] = field(default=())
