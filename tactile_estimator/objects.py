"""Object and pusher geometry: planar shapes as signed distance functions (SDF).

The pushed object is a prism standing on the table; its footprint is a rectangle, a disc or an
ellipse centred on the object frame's origin. The pusher is the DIGIT's gel tip, modelled as a
circle of radius ``tip_radius`` whose apex is the end-effector origin and which faces the
end-effector's +x axis, so its centre is ``ee * (-tip_radius, 0)``. The contact factor and the
simulator both use these definitions.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from tactile_estimator.records import ObjectInfo

SHAPES = ("rect", "disc", "ellipse")
DEFAULT_SIZES = {"rect": (0.10, 0.08), "disc": (0.05,), "ellipse": (0.065, 0.045)}
TIP_RADIUS = 0.012  # m, radius of the gel tip's circle in the table plane


@dataclass(frozen=True)
class Shape:
    """A planar footprint with its SDF (negative inside) and the SDF's gradient."""

    kind: str
    size: tuple[float, ...]

    def __post_init__(self) -> None:
        if self.kind not in SHAPES:
            raise ValueError(f"object shape '{self.kind}' is unknown; expected one of {', '.join(SHAPES)}")
        expected = len(DEFAULT_SIZES[self.kind])
        if len(self.size) != expected or not all(np.isfinite(s) and s > 0 for s in self.size):
            raise ValueError(f"object size {self.size} for shape '{self.kind}' needs {expected} positive number(s)")

    @classmethod
    def from_info(cls, info: ObjectInfo) -> Shape:
        return cls(info.shape, tuple(float(s) for s in info.size))

    def info(self) -> ObjectInfo:
        return ObjectInfo(self.kind, self.size)

    def sdf(self, points: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Signed distance of points (..., 2) in the object frame, and its gradient (..., 2)."""
        points = np.asarray(points, dtype=float)
        if self.kind == "disc":
            return _disc_sdf(points, self.size[0])
        if self.kind == "rect":
            return _box_sdf(points, 0.5 * self.size[0], 0.5 * self.size[1])
        return _ellipse_sdf(points, self.size[0], self.size[1])

    def footprint(self, n: int = 64) -> np.ndarray:
        """Boundary polygon (n, 2) in the object frame, for plots."""
        if self.kind == "rect":
            hx, hy = 0.5 * self.size[0], 0.5 * self.size[1]
            return np.array([[hx, hy], [-hx, hy], [-hx, -hy], [hx, -hy], [hx, hy]])
        a, b = (self.size[0], self.size[0]) if self.kind == "disc" else self.size
        t = np.linspace(0.0, 2.0 * np.pi, n)
        return np.stack([a * np.cos(t), b * np.sin(t)], axis=-1)

    def limit_surface_c(self, resolution: int = 200) -> float:
        """c = m_max / f_max of the ellipsoidal limit surface for a uniform pressure footprint.

        m_max / f_max is the mean distance of the support points from the centre (Lynch 1992).
        """
        extent = max(self.size) if self.kind != "rect" else 0.5 * max(self.size)
        g = np.linspace(-extent, extent, resolution)
        xx, yy = np.meshgrid(g, g)
        pts = np.stack([xx.ravel(), yy.ravel()], axis=-1)
        inside = self.sdf(pts)[0] < 0.0
        return float(np.linalg.norm(pts[inside], axis=-1).mean())


def _disc_sdf(p: np.ndarray, radius: float) -> tuple[np.ndarray, np.ndarray]:
    norm = np.linalg.norm(p, axis=-1)
    safe = np.where(norm < 1e-12, 1.0, norm)
    grad = np.where((norm < 1e-12)[..., None], np.array([1.0, 0.0]), p / safe[..., None])
    return norm - radius, grad


def _box_sdf(p: np.ndarray, hx: float, hy: float) -> tuple[np.ndarray, np.ndarray]:
    q = np.abs(p) - np.array([hx, hy])
    sign = np.where(p >= 0.0, 1.0, -1.0)
    outside = np.maximum(q, 0.0)
    out_norm = np.linalg.norm(outside, axis=-1)
    inside = np.minimum(np.maximum(q[..., 0], q[..., 1]), 0.0)
    dist = out_norm + inside
    is_out = out_norm > 0.0
    safe = np.where(is_out, out_norm, 1.0)
    grad_out = outside / safe[..., None]
    x_face = q[..., 0] >= q[..., 1]
    grad_in = np.stack([np.where(x_face, 1.0, 0.0), np.where(x_face, 0.0, 1.0)], axis=-1)
    grad = np.where(is_out[..., None], grad_out, grad_in) * sign
    return dist, grad


def _ellipse_sdf(p: np.ndarray, a: float, b: float) -> tuple[np.ndarray, np.ndarray]:
    """Exact distance to the ellipse by Newton's method on the boundary parameter."""
    px, py = p[..., 0], p[..., 1]
    ax, ay = np.abs(px), np.abs(py)
    t = np.arctan2(a * ay, b * ax)
    for _ in range(8):
        ct, st = np.cos(t), np.sin(t)
        # d/dt of 0.5 |p - q(t)|^2 with q(t) = (a cos t, b sin t)
        f = (a * a - b * b) * st * ct - ax * a * st + ay * b * ct
        df = (a * a - b * b) * (ct * ct - st * st) - ax * a * ct - ay * b * st
        t = np.clip(t - f / np.where(np.abs(df) < 1e-15, 1e-15, df), 0.0, np.pi / 2.0)
    qx, qy = a * np.cos(t), b * np.sin(t)
    dx, dy = ax - qx, ay - qy
    dist = np.hypot(dx, dy)
    inside = (px / a) ** 2 + (py / b) ** 2 < 1.0
    # Normal of the boundary at q, pointing outwards; it is parallel to p - q away from the boundary.
    nx, ny = qx / (a * a), qy / (b * b)
    nn = np.hypot(nx, ny)
    sx, sy = np.where(px >= 0.0, 1.0, -1.0), np.where(py >= 0.0, 1.0, -1.0)
    grad = np.stack([sx * nx / nn, sy * ny / nn], axis=-1)
    return np.where(inside, -dist, dist), grad


@dataclass(frozen=True)
class Pusher:
    """The gel tip: a circle of ``radius`` with its apex at the end-effector origin."""

    radius: float = TIP_RADIUS

    def centre_in_ee(self) -> np.ndarray:
        return np.array([-self.radius, 0.0])
