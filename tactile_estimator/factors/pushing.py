"""Quasi-static pushing with an ellipsoidal limit surface (Lynch 1992; Zhou et al. 2017; docs/design.md).

Over keys (o_{k-1}, o_k, e_{k-1}, e_k): V = Log(o_{k-1}⁻¹ o_k) is the object's motion in its own
frame, p the contact point in that frame and V_p the pusher's motion there. For a sticking
contact, D·V = V_p with D = [[1, 0, -p_y], [0, 1, p_x], [-p_y, p_x, -c²]] and V_p = (v_px, v_py, 0).
The third row is divided by c so every component is in metres (per step). Sliding contacts break
the first two rows along the tangent; that model error is what the learned covariance absorbs.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from tactile_estimator import geometry as se2
from tactile_estimator.factors.base import numerical_jacobians
from tactile_estimator.factors.contact import ObjectModel, tip_centre_in_object


def contact_point_in_object(object_pose: np.ndarray, ee_pose: np.ndarray, model: ObjectModel) -> np.ndarray:
    """The boundary point closest to the tip circle's centre."""
    centre = tip_centre_in_object(object_pose, ee_pose, model.pusher)
    distance, gradient = model.shape.sdf(centre)
    return centre - distance[..., None] * gradient


def pushing_residual(poses: Sequence[np.ndarray], measurement: np.ndarray, model: ObjectModel) -> np.ndarray:
    o_prev, o_next, e_prev, e_next = poses
    twist = se2.log(se2.between(o_prev, o_next))
    p = contact_point_in_object(o_prev, e_prev, model)
    o_prev = np.asarray(o_prev, dtype=float)
    c, s = np.cos(o_prev[..., 2]), np.sin(o_prev[..., 2])
    d = np.asarray(e_next, dtype=float)[..., :2] - np.asarray(e_prev, dtype=float)[..., :2]
    vp_x, vp_y = c * d[..., 0] + s * d[..., 1], -s * d[..., 0] + c * d[..., 1]
    vx, vy, w = twist[..., 0], twist[..., 1], twist[..., 2]
    px, py = p[..., 0], p[..., 1]
    ls_c = model.limit_surface_c
    return np.stack([vx - py * w - vp_x, vy + px * w - vp_y, (-py * vx + px * vy) / ls_c - ls_c * w], axis=-1)


def pushing_jacobians(
    poses: Sequence[np.ndarray], measurement: np.ndarray, model: ObjectModel
) -> tuple[np.ndarray, list[np.ndarray]]:
    """Numerical, batched. The contact point's derivative is the closest point's slide along the tangent,
    1/(1 + d·κ); the iSAM2 callback (backends/isam2.py) has that closed form on floats, tested against this."""
    return pushing_residual(poses, measurement, model), numerical_jacobians(pushing_residual, poses, measurement, model)
