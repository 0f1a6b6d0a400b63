"""Contact geometry: while the gel touches the object, the tip circle is tangent to its boundary.

Residual: signed distance from the tip circle's centre to the object's boundary minus the tip
radius, over keys (o_k, e_k). It is zero in contact and positive when the tip is off the object.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from tactile_estimator import geometry as se2
from tactile_estimator.objects import Pusher, Shape

_CROSS = np.array([[0.0, -1.0], [1.0, 0.0]])  # d R(θ)/dθ = R(θ) · _CROSS


@dataclass(frozen=True)
class ObjectModel:
    """What the pushing and contact factors know of the world: the shape, the tip and c of the limit surface."""

    shape: Shape
    pusher: Pusher
    limit_surface_c: float

    @classmethod
    def for_shape(cls, shape: Shape, pusher: Pusher | None = None) -> ObjectModel:
        return cls(shape, pusher or Pusher(), shape.limit_surface_c())


def tip_centre_in_object(object_pose: np.ndarray, ee_pose: np.ndarray, pusher: Pusher) -> np.ndarray:
    centre_world = se2.transform_point(ee_pose, pusher.centre_in_ee())
    return se2.transform_point_inverse(object_pose, centre_world)


def contact_residual(poses: Sequence[np.ndarray], measurement: np.ndarray, model: ObjectModel) -> np.ndarray:
    o, e = poses
    distance, _ = model.shape.sdf(tip_centre_in_object(o, e, model.pusher))
    return (distance - model.pusher.radius)[..., None]


def contact_jacobians(
    poses: Sequence[np.ndarray], measurement: np.ndarray, model: ObjectModel
) -> tuple[np.ndarray, list[np.ndarray]]:
    o, e = (np.atleast_2d(p) for p in poses)
    centre = tip_centre_in_object(o, e, model.pusher)
    distance, gradient = model.shape.sdf(centre)
    # d centre / d(o perturbation): translation -I, rotation -_CROSS @ centre.
    d_o = np.concatenate([-np.broadcast_to(np.eye(2), centre.shape[:-1] + (2, 2)), (-centre @ _CROSS.T)[..., None]], -1)
    # d centre / d(e perturbation): R_oᵀ R_e [I | _CROSS @ tip_offset].
    offset = model.pusher.centre_in_ee()
    rel = se2.between(o, e)
    c, s = np.cos(rel[..., 2]), np.sin(rel[..., 2])
    rot = np.stack([np.stack([c, -s], -1), np.stack([s, c], -1)], -2)
    lever = np.broadcast_to((_CROSS @ offset)[:, None], rot.shape[:-1] + (1,))
    d_e = rot @ np.concatenate([np.broadcast_to(np.eye(2), rot.shape), lever], -1)
    g = gradient[..., None, :]
    return (distance - model.pusher.radius)[..., None], [g @ d_o, g @ d_e]
