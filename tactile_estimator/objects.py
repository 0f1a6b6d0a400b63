"""Object and pusher geometry: planar shapes as signed distance functions (SDF).

The pushed object is a prism standing on the table; its footprint is a rectangle, a disc or an
ellipse centred on the object frame's origin. The pusher is the DIGIT's gel tip, modelled as a
circle of radius ``tip_radius`` whose apex is the end-effector origin and which faces the
end-effector's +x axis, so its centre is ``ee * (-tip_radius, 0)``. The contact factor and the
simulator both use these definitions.

The SDF is defined once, in torch (``sdf``); ``Shape.sdf`` is that on numpy arrays and
``foot_point`` its float form for the iSAM2 callbacks, which tests hold to it. torch is imported
inside the functions that use it: reading a bag's object (``info``) needs no torch.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from tactile_estimator.records import ObjectInfo

if TYPE_CHECKING:
    from torch import Tensor

SHAPES = ("rect", "disc", "ellipse")
DEFAULT_SIZES = {"rect": (0.10, 0.08), "disc": (0.05,), "ellipse": (0.065, 0.045)}
TIP_RADIUS = 0.012  # m, radius of the gel tip's circle in the table plane
_ELLIPSE_NEWTON_ITERATIONS = 16  # enough for 1e-6 m on semi-axis ratios up to 10


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
        """Signed distance of points (..., 2) in the object frame, and its gradient (..., 2): ``sdf`` on numpy."""
        import torch

        distance, gradient = sdf(self, torch.from_numpy(np.ascontiguousarray(points, dtype=float)))
        return distance.numpy(), gradient.numpy()

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


def sdf(shape: Shape, points: Tensor) -> tuple[Tensor, Tensor]:
    """Signed distance (...,) of points (..., 2) in the object frame and its gradient (..., 2), in torch.

    The one definition of the footprints' SDF: the factors, the batched solver and (through
    ``Shape.sdf``) the simulator all use it; ``foot_point`` is its float form for per-factor callbacks.
    """
    kind, size = shape.kind, shape.size
    if kind == "disc":
        return _disc_sdf(points, size[0])
    if kind == "rect":
        return _box_sdf(points, 0.5 * size[0], 0.5 * size[1])
    return _ellipse_sdf(points, size[0], size[1])


def near_vertex(shape: Shape, points: Tensor, margin: float = 0.0) -> Tensor:
    """Whether each point (..., 2) lies within ``margin`` along the boundary of a vertex (a rectangle's
    corner): margin 0 is where the closest boundary point is the corner itself and the SDF's gradient
    is the direction from it, not a face's normal. Smooth footprints have none."""
    import torch

    if shape.kind != "rect":
        return torch.zeros(points.shape[:-1], dtype=torch.bool, device=points.device)
    half = torch.tensor([0.5 * shape.size[0] - margin, 0.5 * shape.size[1] - margin], dtype=points.dtype,
                        device=points.device)
    return (points.abs() > half).all(-1)


def near_vertex_float(shape: Shape, x: float, y: float, margin: float = 0.0) -> bool:
    """``near_vertex`` for one point in plain floats (the iSAM2 callbacks)."""
    if shape.kind != "rect":
        return False
    return abs(x) > 0.5 * shape.size[0] - margin and abs(y) > 0.5 * shape.size[1] - margin


def _disc_sdf(p: Tensor, radius: float) -> tuple[Tensor, Tensor]:
    import torch

    norm = torch.linalg.norm(p, dim=-1)
    tiny = norm < 1e-12
    safe = torch.where(tiny, torch.ones_like(norm), norm)
    grad = torch.where(tiny[..., None], torch.tensor([1.0, 0.0], dtype=p.dtype, device=p.device), p / safe[..., None])
    return norm - radius, grad


def _box_sdf(p: Tensor, hx: float, hy: float) -> tuple[Tensor, Tensor]:
    import torch

    q = p.abs() - torch.tensor([hx, hy], dtype=p.dtype, device=p.device)
    sign = torch.where(p >= 0.0, 1.0, -1.0).to(p.dtype)
    outside = q.clamp(min=0.0)
    out_norm = torch.linalg.norm(outside, dim=-1)
    inside = torch.maximum(q[..., 0], q[..., 1]).clamp(max=0.0)
    is_out = out_norm > 0.0
    safe = torch.where(is_out, out_norm, torch.ones_like(out_norm))
    x_face = q[..., 0] >= q[..., 1]
    grad_in = torch.stack([x_face, ~x_face], -1).to(p.dtype)
    grad = torch.where(is_out[..., None], outside / safe[..., None], grad_in) * sign
    return out_norm + inside, grad


def _settled(converged: Tensor) -> bool:
    """Every point's root has converged, asked on the CPU only: the iterations left would add zero steps,
    so stopping changes neither the values nor their gradients. Under torch.func's vmap the question
    cannot be asked (no branch on data) and on CUDA it would wait for the device; there the fixed
    iterations run."""
    if converged.device.type != "cpu":
        return False
    try:
        return bool(converged.all())
    except RuntimeError:  # a batched tensor under vmap
        return False


def _ellipse_sdf(p: Tensor, a: float, b: float) -> tuple[Tensor, Tensor]:
    """Exact distance to the ellipse (Eberly, "Distance from a point to an ellipse, an ellipsoid, or a
    hyperellipsoid", 2013).

    In the first quadrant, with the major semi-axis along x, the closest boundary point is
    ``x_i = r_i y_i / (s + r_i)`` where s is the unique root of a function that is decreasing and
    convex for s > -1. Newton's method started at a lower bound of the root therefore climbs to it
    without overshooting, for points deep inside as well as outside. (Newton on the boundary angle
    converged to the wrong critical point for points inside the ellipse's evolute.) Each point stops
    where its root's residual is below 1e-12, and the loop ends once all have (``_settled``).
    """
    import torch

    px, py = p[..., 0], p[..., 1]
    swap = b > a
    if swap:
        px, py, a, b = py, px, b, a
    y0, y1 = px.abs(), py.abs()
    z0, z1 = y0 / a, y1 / b
    r0 = (a / b) ** 2
    # On the major axis the root is -1 when the point is inside the evolute; a tiny z1 keeps the
    # iteration finite there and the closest point's y comes from the ellipse equation below.
    on_axis = z1 < 1e-12
    z1 = torch.where(on_axis, torch.full_like(z1, 1e-12), z1)
    s = torch.maximum(z1 - 1.0, r0 * z0 - r0)  # both are lower bounds of the root
    for _ in range(_ELLIPSE_NEWTON_ITERATIONS):
        g0, g1 = r0 * z0 / (s + r0), z1 / (s + 1.0)
        residual = g0 * g0 + g1 * g1 - 1.0
        converged = residual < 1e-12
        if _settled(converged):
            break
        step = residual / (2.0 * (g0 * g0 / (s + r0) + g1 * g1 / (s + 1.0)))
        s = s + torch.where(converged, torch.zeros_like(step), step)
    qx = r0 * y0 / (s + r0)
    qy = torch.where(on_axis, b * torch.sqrt((1.0 - (qx / a) ** 2).clamp(0.0, 1.0)), y1 / (s + 1.0))
    # Put the closest point exactly on the boundary, whatever is left of the root's residual.
    scale = torch.hypot(qx / a, qy / b)
    qx, qy = qx / scale, qy / scale
    dist = torch.hypot(y0 - qx, y1 - qy)
    inside = (px / a) ** 2 + (py / b) ** 2 < 1.0
    # The gradient is the outward boundary normal at the closest point, parallel to p - q.
    nx, ny = qx / (a * a), qy / (b * b)
    nn = torch.hypot(nx, ny)
    gx = torch.where(px >= 0.0, 1.0, -1.0).to(p.dtype) * nx / nn
    gy = torch.where(py >= 0.0, 1.0, -1.0).to(p.dtype) * ny / nn
    grad = torch.stack([gy, gx] if swap else [gx, gy], -1)
    return torch.where(inside, -dist, dist), grad


@dataclass(frozen=True)
class Pusher:
    """The gel tip: a circle of ``radius`` with its apex at the end-effector origin."""

    radius: float = TIP_RADIUS

    def centre_in_ee(self) -> np.ndarray:
        return np.array([-self.radius, 0.0])


Foot = tuple[float, float, float, float, float, tuple[float, ...]]  # distance, gradient, foot point, d foot/d point


def foot_point(shape: Shape, x: float, y: float) -> Foot:
    """One point's SDF in plain floats, for per-factor callbacks where numpy's call overhead dominates.

    Returns (distance, gx, gy, fx, fy, J): the signed distance, its gradient, the closest boundary
    point f = p - distance * gradient, and J = df/dp row-major as (j00, j01, j10, j11). On a smooth
    boundary f slides along the tangent t by tᵀdp / (1 + distance * κ), κ the curvature at f; at a
    rectangle's corner f stays put. The same values as ``sdf``, which tests hold.
    """
    if shape.kind == "disc":
        radius = shape.size[0]
        norm = math.hypot(x, y)
        if norm < 1e-12:
            return -radius, 1.0, 0.0, radius, 0.0, (0.0, 0.0, 0.0, 1.0)
        gx, gy = x / norm, y / norm
        k = radius / norm
        return norm - radius, gx, gy, radius * gx, radius * gy, (k * gy * gy, -k * gx * gy, -k * gx * gy, k * gx * gx)
    if shape.kind == "rect":
        return _box_foot(x, y, 0.5 * shape.size[0], 0.5 * shape.size[1])
    return _ellipse_foot(x, y, shape.size[0], shape.size[1])


def _box_foot(x: float, y: float, hx: float, hy: float) -> Foot:
    sx, sy = (1.0 if x >= 0.0 else -1.0), (1.0 if y >= 0.0 else -1.0)
    qx, qy = abs(x) - hx, abs(y) - hy
    if qx > 0.0 and qy > 0.0:  # nearest a corner: the foot is the corner
        norm = math.hypot(qx, qy)
        return norm, sx * qx / norm, sy * qy / norm, sx * hx, sy * hy, (0.0, 0.0, 0.0, 0.0)
    if qx >= qy:  # the ±x face, from outside (qy <= 0) or nearest it from inside
        return qx, sx, 0.0, sx * hx, y, (0.0, 0.0, 0.0, 1.0)
    return qy, 0.0, sy, x, sy * hy, (1.0, 0.0, 0.0, 0.0)


def _ellipse_foot(x: float, y: float, a: float, b: float) -> Foot:
    """As _ellipse_sdf (same root-finding, same safeguards, the same stop per point), on floats."""
    swap = b > a
    px, py = (y, x) if swap else (x, y)
    if swap:
        a, b = b, a
    y0, y1 = abs(px), abs(py)
    z0, z1 = y0 / a, y1 / b
    r0 = (a / b) ** 2
    on_axis = z1 < 1e-12
    z1 = max(z1, 1e-12)
    s = max(z1 - 1.0, r0 * z0 - r0)
    for _ in range(_ELLIPSE_NEWTON_ITERATIONS):
        g0, g1 = r0 * z0 / (s + r0), z1 / (s + 1.0)
        residual = g0 * g0 + g1 * g1 - 1.0
        if residual < 1e-12:
            break
        s += residual / (2.0 * (g0 * g0 / (s + r0) + g1 * g1 / (s + 1.0)))
    qx = r0 * y0 / (s + r0)
    qy = b * math.sqrt(min(max(1.0 - (qx / a) ** 2, 0.0), 1.0)) if on_axis else y1 / (s + 1.0)
    scale = math.hypot(qx / a, qy / b)
    qx, qy = qx / scale, qy / scale
    distance = math.hypot(y0 - qx, y1 - qy)
    if (px / a) ** 2 + (py / b) ** 2 < 1.0:
        distance = -distance
    nx, ny = qx / (a * a), qy / (b * b)
    nn = math.hypot(nx, ny)
    sx, sy = (1.0 if px >= 0.0 else -1.0), (1.0 if py >= 0.0 else -1.0)
    gx, gy, fx, fy = sx * nx / nn, sy * ny / nn, sx * qx, sy * qy
    curvature = 1.0 / (a * a * b * b * nn**3)
    k = 1.0 / max(1.0 + distance * curvature, 1e-9)  # singular only at the centre of curvature, deep inside
    tx, ty = -gy, gx
    jac = (k * tx * tx, k * tx * ty, k * ty * tx, k * ty * ty)
    if swap:
        return distance, gy, gx, fy, fx, (jac[3], jac[2], jac[1], jac[0])
    return distance, gx, gy, fx, fy, jac
