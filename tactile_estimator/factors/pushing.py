"""Quasi-static pushing with an ellipsoidal limit surface (Lynch 1992; Zhou et al. 2017; docs/design.md).

Over keys (o_{k-1}, o_k, e_{k-1}, e_k): V = Log(o_{k-1}⁻¹ o_k) is the object's motion in its own
frame, p the contact point in that frame and V_p the pusher's motion there. For a sticking
contact, D·V = V_p with D = [[1, 0, -p_y], [0, 1, p_x], [-p_y, p_x, -c²]] and V_p = (v_px, v_py, 0).
The third row is divided by c so every component is in metres (per step). Sliding contacts break
the first two rows along the tangent; that model error is what the learned covariance absorbs.

Jacobians: central differences, or torch.func for large groups in the batched solver. The contact
point's derivative is the closest point's slide along the tangent, 1/(1 + d·κ); the iSAM2 callback
(backends/isam2.py) has that closed form on floats, held to this definition by tests.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from tactile_estimator import objects
from tactile_estimator.factors import lie
from tactile_estimator.factors.base import Family, Poses
from tactile_estimator.factors.contact import ObjectModel, tip_centre_in_object
from tactile_estimator.factors.lie import torch

if TYPE_CHECKING:
    from torch import Tensor


def contact_point(o: Tensor, e: Tensor, model: ObjectModel) -> Tensor:
    """The boundary point closest to the tip circle's centre, in the object frame."""
    centre = tip_centre_in_object(o, e, model)
    distance, gradient = objects.sdf(model.shape, centre)
    return centre - distance[..., None] * gradient


def pushing_error(poses: Poses, measurement: Tensor, model: ObjectModel) -> Tensor:
    o_prev, o_next, e_prev, e_next = poses
    twist = lie.log(lie.between(o_prev, o_next))
    p = contact_point(o_prev, e_prev, model)
    c, s = torch.cos(o_prev[..., 2]), torch.sin(o_prev[..., 2])
    d = e_next[..., :2] - e_prev[..., :2]
    vp_x, vp_y = c * d[..., 0] + s * d[..., 1], -s * d[..., 0] + c * d[..., 1]
    vx, vy, w = twist[..., 0], twist[..., 1], twist[..., 2]
    px, py = p[..., 0], p[..., 1]
    ls_c = model.limit_surface_c
    return torch.stack([vx - py * w - vp_x, vy + px * w - vp_y, (-py * vx + px * vy) / ls_c - ls_c * w], -1)


FAMILY = Family("pushing", ("o", "o", "e", "e"), 3, pushing_error, autodiff_from=2048)
