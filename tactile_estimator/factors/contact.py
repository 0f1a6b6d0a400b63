"""Contact geometry: while the gel touches the object, the tip circle is tangent to its boundary.

Residual: signed distance from the tip circle's centre to the object's boundary minus the tip
radius, over keys (o_k, e_k). It is zero in contact and positive when the tip is off the object.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import TYPE_CHECKING

from tactile_estimator import objects
from tactile_estimator.factors import lie
from tactile_estimator.factors.base import Family, Poses
from tactile_estimator.factors.lie import torch
from tactile_estimator.objects import Pusher, Shape

if TYPE_CHECKING:
    from torch import Tensor


@dataclass(frozen=True)
class ObjectModel:
    """What the pushing and contact factors know of the world: the shape, the tip, c of the limit
    surface and the tip-object friction coefficient (inf: the contact sticks)."""

    shape: Shape
    pusher: Pusher
    limit_surface_c: float
    friction: float = math.inf

    @classmethod
    def for_shape(cls, shape: Shape, pusher: Pusher | None = None, friction: float = 0.0) -> ObjectModel:
        return cls(shape, pusher or Pusher(), shape.limit_surface_c()).with_friction(friction)

    def with_friction(self, friction: float) -> ObjectModel:
        """This model with friction μ as the estimator's ``pushing_friction`` gives it: 0, the contact sticks."""
        return dataclasses.replace(self, friction=friction if friction > 0.0 else math.inf)


def tip_centre_in_object(o: Tensor, e: Tensor, model: ObjectModel) -> Tensor:
    """c = o⁻¹(e · tip): the tip circle's centre in the object frame."""
    offset = torch.tensor(model.pusher.centre_in_ee(), dtype=o.dtype, device=o.device).expand(e.shape[:-1] + (2,))
    return lie.transform_point_inverse(o, lie.transform_point(e, offset))


def contact_error(poses: Poses, measurement: Tensor, model: ObjectModel) -> Tensor:
    distance, _ = objects.sdf(model.shape, tip_centre_in_object(poses[0], poses[1], model))
    return (distance - model.pusher.radius)[..., None]


def contact_jacobians(poses: Poses, measurement: Tensor, model: ObjectModel) -> tuple[Tensor, list[Tensor]]:
    """gradientᵀ dc: dc/d(o) = [-I | -× c], dc/d(e) = R_oᵀR_e [I | × tip]."""
    o, e = poses
    centre = tip_centre_in_object(o, e, model)
    distance, gradient = objects.sdf(model.shape, centre)
    n = centre.shape[:-1]
    eye = torch.eye(2, dtype=o.dtype, device=o.device).expand(n + (2, 2))
    cross_centre = torch.stack([-centre[..., 1], centre[..., 0]], -1)  # [[0, -1], [1, 0]] @ centre
    d_o = torch.cat([-eye, -cross_centre[..., None]], -1)
    offset = model.pusher.centre_in_ee()
    lever = torch.tensor([-offset[1], offset[0]], dtype=o.dtype, device=o.device).expand(n + (2,))
    rel = lie.between(o, e)
    c, s = torch.cos(rel[..., 2]), torch.sin(rel[..., 2])
    rot = torch.stack([torch.stack([c, -s], -1), torch.stack([s, c], -1)], -2)
    d_e = rot @ torch.cat([eye, lever[..., None]], -1)
    g = gradient[..., None, :]
    return (distance - model.pusher.radius)[..., None], [g @ d_o, g @ d_e]


FAMILY = Family("contact", ("o", "e"), 1, contact_error, contact_jacobians)
