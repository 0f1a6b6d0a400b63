"""The learned per-frame tactile factor: the object's surface normal at the contact, seen by the sensor.

A tactile frame shows the object's rim pressed into the gel: a face as a line at the face's
angle, a disc or an ellipse as an arc. That angle is the object's outward normal at the contact,
in the sensor frame. It is absolute (it says how the object is turned against the sensor now, not
how far it turned since another frame), so its error does not add up over a push, and it is blind
to exactly what the image is blind to: sliding along a face and a disc's spin leave it unchanged.

With c = o⁻¹(e · tip) the tip circle's centre in the object frame, g = ∇sdf(c) the outward normal
at c's closest boundary point, ν = atan2(g) and θ_s = θ_e − θ_o the sensor's angle in the object
frame, the normal in the sensor frame is ν − θ_s. Pushing square onto a face it points back at the
sensor (angle π), so the measured quantity is its deviation δ = wrap(ν − θ_s − π), and the
residual over keys (o_k, e_k) is ``wrap(ν − θ_s − π − δ̂)``, δ̂ predicted by the network from frame k.

A rectangle's corner has no normal of its own, and the normal of the gradient there (the direction
from the corner to the tip) turns by 1/d per metre of position: a first pose a few millimetres off
put the estimate on a face where the truth was a corner, and the factor then turned the object by
10°. But a corner's frame shows both of its edges. So for a rectangle ν is the normal of the face
that most squarely faces the sensor, whether the tip is on that face or at one of its corners: a
reading of the object's angle against the sensor that does not depend on where along the face the
contact is, known modulo the quarter turn between faces. Corners are often pushed near 45°, where
"most squarely" changes face, so the reading and its residual are folded into [−π/4, π/4), and the
network reads it as the angle of (cos 4δ, sin 4δ) (networks/tactile.py), continuous across the fold.

Jacobians (disc, ellipse): the normal turns as c slides along the tangent t by dν/dc = (tᵀ − tᵀJ) / d, where
d = sdf(c) and J = df/dc is the closest point's derivative (objects.foot_point): on a curve of
curvature κ, 1 − tᵀJt = dκ / (1 + dκ) (a disc: dν/dc = tᵀ / |c|). A rectangle's is ±1 in θ_o
and θ_e alone. The torch form here is the definition (central-difference Jacobians); the iSAM2
callback computes the analytic form, held to it by tests.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from tactile_estimator import objects
from tactile_estimator.factors.base import Family, Poses, as_tensor
from tactile_estimator.factors.contact import ObjectModel, tip_centre_in_object
from tactile_estimator.factors.lie import torch

if TYPE_CHECKING:
    from torch import Tensor


def symmetry(kind: str) -> int:
    """How many times a turn of the sensor maps the reading onto itself: a rectangle's faces are a
    quarter turn apart, so its reading is known modulo π/2; a smooth shape's normal is one."""
    return 4 if kind == "rect" else 1


def fold(angle: Tensor, period_count: int | Tensor) -> Tensor:
    """An angle folded into [−π/m, π/m) for m = ``period_count`` (m = 1: wrapped to [−π, π)); m may
    be one per angle."""
    half = torch.pi / period_count
    return torch.remainder(angle + half, 2.0 * half) - half


def normal_deviation(o: Tensor, e: Tensor, model: ObjectModel) -> Tensor:
    """δ = ν − θ_s − π for poses (..., 3), folded by the shape's symmetry. A rectangle's ν is the normal
    of the face that most squarely faces the sensor, so its δ lies in [−π/4, π/4)."""
    sensor_angle = e[..., 2] - o[..., 2]
    if model.shape.kind == "rect":
        return fold(-sensor_angle - torch.pi, 4)
    _, gradient = objects.sdf(model.shape, tip_centre_in_object(o, e, model))
    normal = torch.atan2(gradient[..., 1], gradient[..., 0])
    return fold(normal - sensor_angle - torch.pi, 1)


def contact_normal_deviation(object_pose: np.ndarray, ee_pose: np.ndarray, model: ObjectModel) -> np.ndarray:
    """``normal_deviation`` on numpy poses: what the network learns to predict (its training target)."""
    return normal_deviation(as_tensor(object_pose), as_tensor(ee_pose), model).numpy()


def at_corner(object_pose: np.ndarray, ee_pose: np.ndarray, model: ObjectModel) -> np.ndarray:
    """(...,) True where the tip's centre is nearer a rectangle's corner than any of its faces."""
    if model.shape.kind != "rect":
        return np.zeros(np.shape(object_pose)[:-1], bool)
    centre = tip_centre_in_object(as_tensor(object_pose), as_tensor(ee_pose), model).numpy()
    return (np.abs(centre) > 0.5 * np.asarray(model.shape.size)).all(-1)


def tactile_normal_error(poses: Poses, measurement: Tensor, model: ObjectModel) -> Tensor:
    """fold(ν − θ_s − π − δ̂): the deviation and the reading, folded by the shape's symmetry."""
    o, e = poses
    sensor_angle = e[..., 2] - o[..., 2]
    if model.shape.kind == "rect":  # the face that most squarely faces the sensor, modulo a quarter turn
        return fold(-sensor_angle - torch.pi - measurement[..., 0], 4)[..., None]
    _, gradient = objects.sdf(model.shape, tip_centre_in_object(o, e, model))
    normal = torch.atan2(gradient[..., 1], gradient[..., 0])
    return fold(normal - sensor_angle - torch.pi - measurement[..., 0], 1)[..., None]


FAMILY = Family("tactile_normal", ("o", "e"), 1, tactile_normal_error)
