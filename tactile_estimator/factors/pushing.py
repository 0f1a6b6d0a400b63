"""Quasi-static pushing with an ellipsoidal limit surface (Lynch 1992; Zhou et al. 2017; docs/design.md).

Over keys (o_{k-1}, o_k, e_{k-1}, e_k): V = Log(o_{k-1}⁻¹ o_k) is the object's motion in its own
frame, p the contact point in that frame and V_p the pusher's motion there. For a sticking
contact, D·V = V_p with D = [[1, 0, -p_y], [0, 1, p_x], [-p_y, p_x, -c²]] and V_p = (v_px, v_py, 0).
The third row is divided by c so every component is in metres (per step).

With a friction coefficient μ (``ObjectModel.friction``) the contact may slide (Mason's motion
cone). The sticking force f = A⁻¹v, A = I + r rᵀ/c², r = (p_y, -p_x), is the force whose twist
moves the object's surface at p with the tip. Inside the friction cone (f·n > 0, |f·t| ≤ μ f·n,
n the inward normal, t = (-n_y, n_x)) the contact sticks and the first two rows are as above.
Outside it the force lies on the cone's edge e = n ± μt, on the side of f, and the surface at p
moves at s·A e with s = n·v_p / (n·A e): with the tip along the normal, free along the tangent.
The first two rows then hold the object's velocity at p to that instead of v_p; the third row
(the limit surface) holds in both modes. A tip moving out of the surface leaves the object at rest.

The mode is decided on v, the pusher's mean motion per step over the last steps of the episode
(the measurement, world frame; ``mean_pusher_motion``), not on the one step's v_p: a step moves the
pusher about 1 mm and its measured pose is noisy by 0.5 mm, so a per-step decision would clip the
noise at the cone's edge on one side only and bias the object's motion (measured: a rect run that
slides 15 % of the time drifted to 12 mm). An empty measurement decides on v_p. μ = inf is the
sticking contact alone, and needs no measurement.

Within ``VERTEX_MARGIN`` of a vertex (a rectangle's corner, measured along the faces from the tip's
centre) the contact is held sticking. There the normal is the face's or the direction from the
corner to the tip, up to 90° apart, and the pose estimate picks which: a first pose from the camera
(σ 5 mm) put a corner contact 4 mm along a face, where the push read as sliding, and the estimate
then slid away from the corner (the tests' rect run, the tip on a corner for 80 steps: 14.3 mm
against 1.46 mm sticking; with a 10 mm margin the mode is sticking throughout, as at the truth).
A false slide lets the object lag the tip without bound; a false stick costs the slip's bias.

Jacobians: central differences, or torch.func for large groups in the batched solver. The contact
point's derivative is the closest point's slide along the tangent, 1/(1 + d·κ); the iSAM2 callback
(backends/isam2.py) has that closed form on floats, held to this definition by tests.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

import numpy as np

from tactile_estimator import objects
from tactile_estimator.factors import lie
from tactile_estimator.factors.base import Family, Poses
from tactile_estimator.factors.contact import ObjectModel, tip_centre_in_object
from tactile_estimator.factors.lie import torch

if TYPE_CHECKING:
    from torch import Tensor


MODE_STEPS = 6  # steps of pusher motion the contact mode is decided on: 0.2 s at 30 Hz
VERTEX_MARGIN = 0.01  # m along a face from a corner where the contact is held sticking (2σ of a camera pose)


def mean_pusher_motion(ee_now: np.ndarray, ee_then: np.ndarray, steps: int) -> np.ndarray:
    """The pushing factor's measurement: the end-effector's mean displacement per step (world x, y)
    from a measured pose ``steps`` steps back in the same contact episode (at most ``MODE_STEPS``)."""
    return (np.asarray(ee_now[:2], dtype=float) - np.asarray(ee_then[:2], dtype=float)) / steps


def surface_target(p: Tensor, inward: Tensor, vp: Tensor, ls_c: float, friction: float,
                   decide: Tensor | None = None, vertex: Tensor | None = None) -> Tensor:
    """The object's velocity at the contact point p under a tip moving at vp: vp while the contact
    sticks, s·A e on the friction cone's edge while it slides, zero while the tip moves out. The mode
    and the edge's side are decided on ``decide`` (the mean motion; default vp); where ``vertex`` is
    true (near a corner) it sticks."""
    decide = vp if decide is None else decide
    px, py, nx, ny = p[..., 0], p[..., 1], inward[..., 0], inward[..., 1]
    c2 = ls_c * ls_c
    r_v = py * decide[..., 0] - px * decide[..., 1]
    rr = px * px + py * py
    fx, fy = decide[..., 0] - py * r_v / (c2 + rr), decide[..., 1] + px * r_v / (c2 + rr)
    f_n, f_t = fx * nx + fy * ny, -fx * ny + fy * nx
    side = torch.where(f_t >= 0.0, 1.0, -1.0)
    ex, ey = nx - side * friction * ny, ny + side * friction * nx
    r_e = py * ex - px * ey
    ax, ay = ex + py * r_e / c2, ey - px * r_e / c2
    moving_in = nx * decide[..., 0] + ny * decide[..., 1] > 0.0
    scale = torch.where(moving_in, (nx * vp[..., 0] + ny * vp[..., 1]) / (nx * ax + ny * ay), 0.0)
    sticks = (f_n > 0.0) & (f_t.abs() <= friction * f_n)
    if vertex is not None:
        sticks = sticks | vertex
    return torch.where(sticks[..., None], vp, torch.stack([scale * ax, scale * ay], -1))


def pushing_error(poses: Poses, measurement: Tensor, model: ObjectModel) -> Tensor:
    o_prev, o_next, e_prev, e_next = poses
    twist = lie.log(lie.between(o_prev, o_next))
    centre = tip_centre_in_object(o_prev, e_prev, model)
    distance, gradient = objects.sdf(model.shape, centre)
    p = centre - distance[..., None] * gradient
    c, s = torch.cos(o_prev[..., 2]), torch.sin(o_prev[..., 2])

    def in_object(v: Tensor) -> Tensor:  # a world vector in o_prev's frame
        return torch.stack([c * v[..., 0] + s * v[..., 1], -s * v[..., 0] + c * v[..., 1]], -1)

    vp = in_object(e_next[..., :2] - e_prev[..., :2])
    if math.isfinite(model.friction):
        # the mode on the mean motion (the measurement), or on v_p without one
        decide = in_object(measurement.expand(vp.shape)) if measurement.shape[-1] == 2 else None
        vertex = objects.near_vertex(model.shape, centre, VERTEX_MARGIN)
        vp = surface_target(p, -gradient, vp, model.limit_surface_c, model.friction, decide, vertex)
    vp_x, vp_y = vp[..., 0], vp[..., 1]
    vx, vy, w = twist[..., 0], twist[..., 1], twist[..., 2]
    px, py = p[..., 0], p[..., 1]
    ls_c = model.limit_surface_c
    return torch.stack([vx - py * w - vp_x, vy + px * w - vp_y, (-py * vx + px * vy) / ls_c - ls_c * w], -1)


FAMILY = Family("pushing", ("o", "o", "e", "e"), 3, pushing_error, autodiff_from=2048)
