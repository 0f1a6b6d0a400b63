"""SE(2) in torch, batch first, for the factor definitions and the batched solver.

The same maps as geometry.py (numpy, the general-purpose library), with the same conventions: a pose
is (x, y, θ), tangent order (x, y, θ), right perturbation ``T * Exp(delta)`` as gtsam's ``Pose2``.
Every function takes poses (..., 3). test_geometry.py holds the two equal.

torch is imported on first use (``torch`` below): the configuration and the CLI's help read the
factor registry, and they must not wait for torch to load.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from torch import Tensor

_SMALL = 1e-4


class LazyModule:
    """A module imported when one of its attributes is first read; each attribute is then cached here."""

    def __init__(self, name: str) -> None:
        self._name = name

    def __getattr__(self, attribute: str) -> Any:
        value = getattr(importlib.import_module(self._name), attribute)
        setattr(self, attribute, value)
        return value


torch: Any = LazyModule("torch")


def wrap_angle(theta: Tensor) -> Tensor:
    return torch.atan2(torch.sin(theta), torch.cos(theta))


def compose(a: Tensor, b: Tensor) -> Tensor:
    c, s = torch.cos(a[..., 2]), torch.sin(a[..., 2])
    return torch.stack([a[..., 0] + c * b[..., 0] - s * b[..., 1], a[..., 1] + s * b[..., 0] + c * b[..., 1],
                        wrap_angle(a[..., 2] + b[..., 2])], -1)


def inverse(a: Tensor) -> Tensor:
    c, s = torch.cos(a[..., 2]), torch.sin(a[..., 2])
    return torch.stack([-c * a[..., 0] - s * a[..., 1], s * a[..., 0] - c * a[..., 1], wrap_angle(-a[..., 2])], -1)


def between(a: Tensor, b: Tensor) -> Tensor:
    return compose(inverse(a), b)


def transform_point(pose: Tensor, point: Tensor) -> Tensor:
    c, s = torch.cos(pose[..., 2]), torch.sin(pose[..., 2])
    return torch.stack([pose[..., 0] + c * point[..., 0] - s * point[..., 1],
                        pose[..., 1] + s * point[..., 0] + c * point[..., 1]], -1)


def transform_point_inverse(pose: Tensor, point: Tensor) -> Tensor:
    c, s = torch.cos(pose[..., 2]), torch.sin(pose[..., 2])
    dx, dy = point[..., 0] - pose[..., 0], point[..., 1] - pose[..., 1]
    return torch.stack([c * dx + s * dy, -s * dx + c * dy], -1)


def _v_coefficients(theta: Tensor) -> tuple[Tensor, Tensor]:
    small = theta.abs() < _SMALL
    safe = torch.where(small, torch.ones_like(theta), theta)
    t2 = theta * theta
    a = torch.where(small, 1.0 - t2 / 6.0, torch.sin(safe) / safe)
    b = torch.where(small, theta / 2.0 - theta * t2 / 24.0, (1.0 - torch.cos(safe)) / safe)
    return a, b


def exp(xi: Tensor) -> Tensor:
    a, b = _v_coefficients(xi[..., 2])
    return torch.stack([a * xi[..., 0] - b * xi[..., 1], b * xi[..., 0] + a * xi[..., 1], wrap_angle(xi[..., 2])], -1)


def log(pose: Tensor) -> Tensor:
    a, b = _v_coefficients(pose[..., 2])
    det = a * a + b * b
    x, y = pose[..., 0], pose[..., 1]
    return torch.stack([(a * x + b * y) / det, (-b * x + a * y) / det, pose[..., 2]], -1)


def adjoint(pose: Tensor) -> Tensor:
    c, s = torch.cos(pose[..., 2]), torch.sin(pose[..., 2])
    zero, one = torch.zeros_like(c), torch.ones_like(c)
    return torch.stack([torch.stack([c, -s, pose[..., 1]], -1), torch.stack([s, c, -pose[..., 0]], -1),
                        torch.stack([zero, zero, one], -1)], -2)


def right_jacobian_inverse(xi: Tensor) -> Tensor:
    """d Log(T * Exp(delta)) / d delta at delta = 0, the inverse of Pose2.ExpmapDerivative."""
    v1, v2, w = xi[..., 0], xi[..., 1], xi[..., 2]
    small = w.abs() < _SMALL
    ws = torch.where(small, torch.ones_like(w), w)
    s, c = torch.sin(ws), torch.cos(ws)
    zero, one = torch.zeros_like(w), torch.ones_like(w)
    j00 = torch.where(small, 1.0 - w * w / 6.0, s / ws)
    j01 = torch.where(small, w / 2.0, (1.0 - c) / ws)
    j02 = torch.where(small, -v2 / 2.0 + w * v1 / 6.0, (ws * v1 - v2 + v2 * c - v1 * s) / (ws * ws))
    j12 = torch.where(small, v1 / 2.0 + w * v2 / 6.0, (v1 + ws * v2 - v1 * c - v2 * s) / (ws * ws))
    jr = torch.stack([torch.stack([j00, j01, j02], -1), torch.stack([-j01, j00, j12], -1),
                      torch.stack([zero, zero, one], -1)], -2)
    return torch.linalg.inv(jr)
