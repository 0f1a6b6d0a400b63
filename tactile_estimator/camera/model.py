"""Pinhole camera model: intrinsics as a camera_info record, extrinsics as the camera's pose in ``world``.

Frames follow ROS's optical-frame convention, which is OpenCV's: the camera's z looks forward, x to
the image's right, y down. ``world_T_camera`` maps points from the camera frame to ``world`` (z up,
the table's top at z = 0). Nothing here imports ROS.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np


@dataclass(frozen=True)
class CameraInfo:
    """What a ``sensor_msgs/CameraInfo`` carries that the detector uses: the image size, K and D.

    Constructing one never raises, since a camera_info arrives from outside; ``problem()`` says what
    is wrong with it, and the detector turns that into a dropped frame.
    """

    width: int
    height: int
    K: np.ndarray  # 3x3
    D: np.ndarray = field(default_factory=lambda: np.zeros(5))  # plumb_bob (k1, k2, p1, p2, k3) or longer

    @classmethod
    def from_fov(cls, width: int = 640, height: int = 480, horizontal_fov_deg: float = 60.0) -> CameraInfo:
        """Square pixels, the principal point at the image's centre, no distortion."""
        f = 0.5 * width / math.tan(0.5 * math.radians(horizontal_fov_deg))
        K = np.array([[f, 0.0, 0.5 * (width - 1)], [0.0, f, 0.5 * (height - 1)], [0.0, 0.0, 1.0]])
        return cls(int(width), int(height), K, np.zeros(5))

    def problem(self) -> str | None:
        """None for usable intrinsics, else a one-line reason."""
        try:
            K = np.asarray(self.K, dtype=float)
            D = np.asarray(self.D, dtype=float).ravel()
        except (TypeError, ValueError):
            return "camera_info K or D is not numeric"
        if not (isinstance(self.width, int | np.integer) and isinstance(self.height, int | np.integer)):
            return f"camera_info size {self.width}x{self.height} is not integer"
        if self.width <= 0 or self.height <= 0:
            return f"camera_info size {self.width}x{self.height} is not positive"
        if K.shape != (3, 3):
            return f"camera_info K has shape {K.shape}, expected (3, 3)"
        if not np.all(np.isfinite(K)) or not np.all(np.isfinite(D)):
            return "camera_info K or D holds NaN or infinity"
        if K[0, 0] <= 0.0 or K[1, 1] <= 0.0:
            return f"camera_info focal lengths fx={K[0, 0]:g}, fy={K[1, 1]:g} must be > 0"
        if not np.allclose(K[2], [0.0, 0.0, 1.0]) or K[1, 0] != 0.0:
            return "camera_info K's last row is not (0, 0, 1) or K[1, 0] is not 0"
        if D.size not in (0, 4, 5, 8, 12, 14):
            return f"camera_info D has {D.size} coefficients; OpenCV takes 0, 4, 5, 8, 12 or 14"
        return None


def transform(rotation: np.ndarray, translation: np.ndarray) -> np.ndarray:
    """A 4x4 homogeneous transform."""
    T = np.eye(4)
    T[:3, :3] = rotation
    T[:3, 3] = translation
    return T


def translation(x: float, y: float, z: float) -> np.ndarray:
    return transform(np.eye(3), np.array([x, y, z], dtype=float))


def planar(pose: np.ndarray, z: float = 0.0) -> np.ndarray:
    """The 4x4 transform of a table-plane pose (x, y, yaw) lifted to height z."""
    c, s = math.cos(pose[2]), math.sin(pose[2])
    return transform(np.array([[c, -s, 0.0], [s, c, 0.0], [0.0, 0.0, 1.0]]), np.array([pose[0], pose[1], z]))


def inverse(T: np.ndarray) -> np.ndarray:
    R = T[:3, :3]
    return transform(R.T, -R.T @ T[:3, 3])


def look_at(eye: np.ndarray, target: np.ndarray, up: np.ndarray | None = None) -> np.ndarray:
    """``world_T_camera`` for a camera at ``eye`` looking at ``target``, with ``up`` towards the image's top.

    ``up`` defaults to world +z, or world +y when the camera looks straight down.
    """
    eye, target = np.asarray(eye, dtype=float), np.asarray(target, dtype=float)
    z = target - eye
    if not np.all(np.isfinite(z)) or np.linalg.norm(z) < 1e-9:
        raise ValueError(f"camera eye {eye.tolist()} and target {target.tolist()} must be distinct finite points")
    z /= np.linalg.norm(z)
    if up is not None:
        candidates = [np.asarray(up, dtype=float)]
    else:
        candidates = [np.array([0.0, 0.0, 1.0]), np.array([0.0, 1.0, 0.0])]
    for hint in candidates:
        down = -(hint - (hint @ z) * z)
        if np.linalg.norm(down) > 1e-6:
            y = down / np.linalg.norm(down)
            return transform(np.stack([np.cross(y, z), y, z], axis=1), eye)
    raise ValueError(f"camera up {candidates[0].tolist()} is parallel to the viewing direction")


def extrinsics_problem(world_T_camera: np.ndarray) -> str | None:
    """None for a rigid 4x4 transform, else a one-line reason."""
    T = np.asarray(world_T_camera, dtype=float)
    if T.shape != (4, 4) or not np.all(np.isfinite(T)):
        return f"camera extrinsics must be a finite 4x4 transform, got shape {T.shape}"
    R = T[:3, :3]
    if not np.allclose(R.T @ R, np.eye(3), atol=1e-6) or np.linalg.det(R) < 0.0 or not np.allclose(T[3], [0, 0, 0, 1]):
        return "camera extrinsics' rotation is not a proper rotation matrix"
    return None


def project(K: np.ndarray, camera_T_points: np.ndarray, points: np.ndarray) -> np.ndarray:
    """Pixel coordinates (n, 2) of points (n, 3) given in the frame that ``camera_T_points`` maps to the camera.

    No distortion: the renderer's camera has none. Points behind the camera get NaN.
    """
    p = points @ camera_T_points[:3, :3].T + camera_T_points[:3, 3]
    z = np.where(p[:, 2] > 1e-6, p[:, 2], np.nan)
    uv = p[:, :2] / z[:, None]
    return uv @ K[:2, :2].T + K[:2, 2]
