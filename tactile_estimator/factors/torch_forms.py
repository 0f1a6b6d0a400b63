"""The factor families in torch, for the batched Gauss-Newton backend and the LEO energy.

Each function mirrors its numpy definition in this package (geometry.py, factors/*.py); tests hold
the two equal (residuals and Jacobians, to 1e-9). Shapes: poses (N, 3), measurements (N, m),
residuals (N, d), Jacobians (N, d, 3) per pose, right perturbation ``T * Exp(delta)``, float64.
Families without a tidy closed form (pushing) get batched central differences, as in numpy.
``autodiff_jacobians`` gives any family's Jacobians by torch.func instead (AUTODIFF_JACOBIANS).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from functools import partial

import torch

from tactile_estimator.factors.contact import ObjectModel

Tensor = torch.Tensor
_SMALL = 1e-4


# ------------------------------------------------------------------------------------- SE(2)
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


# ------------------------------------------------------------------------------------- shapes
def sdf(model: ObjectModel, points: Tensor) -> tuple[Tensor, Tensor]:
    """Signed distance and gradient of the object's footprint, as objects.Shape.sdf."""
    kind, size = model.shape.kind, model.shape.size
    if kind == "disc":
        norm = torch.linalg.norm(points, dim=-1)
        tiny = norm < 1e-12
        safe = torch.where(tiny, torch.ones_like(norm), norm)
        grad = torch.where(tiny[..., None], torch.tensor([1.0, 0.0], dtype=points.dtype, device=points.device),
                           points / safe[..., None])
        return norm - size[0], grad
    if kind == "rect":
        return _box_sdf(points, 0.5 * size[0], 0.5 * size[1])
    return _ellipse_sdf(points, size[0], size[1])


def _box_sdf(p: Tensor, hx: float, hy: float) -> tuple[Tensor, Tensor]:
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


def _ellipse_sdf(p: Tensor, a: float, b: float, iterations: int = 16) -> tuple[Tensor, Tensor]:
    """Eberly's root-finding for the closest point, as objects._ellipse_sdf (fixed iterations here)."""
    px, py = p[..., 0], p[..., 1]
    swap = b > a
    if swap:
        px, py, a, b = py, px, b, a
    y0, y1 = px.abs(), py.abs()
    z0, z1 = y0 / a, y1 / b
    r0 = (a / b) ** 2
    on_axis = z1 < 1e-12
    z1 = torch.where(on_axis, torch.full_like(z1, 1e-12), z1)
    s = torch.maximum(z1 - 1.0, r0 * z0 - r0)
    for _ in range(iterations):
        g0, g1 = r0 * z0 / (s + r0), z1 / (s + 1.0)
        residual = g0 * g0 + g1 * g1 - 1.0
        step = residual / (2.0 * (g0 * g0 / (s + r0) + g1 * g1 / (s + 1.0)))
        s = s + torch.where(residual < 1e-12, torch.zeros_like(step), step)
    qx = r0 * y0 / (s + r0)
    qy = torch.where(on_axis, b * torch.sqrt((1.0 - (qx / a) ** 2).clamp(0.0, 1.0)), y1 / (s + 1.0))
    scale = torch.hypot(qx / a, qy / b)
    qx, qy = qx / scale, qy / scale
    dist = torch.hypot(y0 - qx, y1 - qy)
    inside = (px / a) ** 2 + (py / b) ** 2 < 1.0
    nx, ny = qx / (a * a), qy / (b * b)
    nn = torch.hypot(nx, ny)
    gx = torch.where(px >= 0.0, 1.0, -1.0).to(p.dtype) * nx / nn
    gy = torch.where(py >= 0.0, 1.0, -1.0).to(p.dtype) * ny / nn
    grad = torch.stack([gy, gx] if swap else [gx, gy], -1)
    return torch.where(inside, -dist, dist), grad


# ------------------------------------------------------------------------------------ families
Poses = Sequence[Tensor]


def prior_residual(poses: Poses, measured: Tensor, model: ObjectModel | None = None) -> Tensor:
    return log(between(measured, poses[0]))


def prior_jacobians(poses: Poses, measured: Tensor, model: ObjectModel | None = None):
    r = prior_residual(poses, measured)
    return r, [right_jacobian_inverse(r)]


def between_residual(poses: Poses, measured: Tensor, model: ObjectModel | None = None) -> Tensor:
    return log(between(measured, between(poses[0], poses[1])))


def between_jacobians(poses: Poses, measured: Tensor, model: ObjectModel | None = None):
    a, b = poses
    r = between_residual(poses, measured)
    jr_inv = right_jacobian_inverse(r)
    return r, [-jr_inv @ adjoint(between(b, a)), jr_inv]


def tactile_residual(poses: Poses, predicted: Tensor, model: ObjectModel | None = None) -> Tensor:
    o_i, e_i, o_j, e_j = poses
    return log(between(predicted, between(between(o_i, e_i), between(o_j, e_j))))


def tactile_jacobians(poses: Poses, predicted: Tensor, model: ObjectModel | None = None):
    o_i, e_i, o_j, e_j = poses
    s_i, s_j = between(o_i, e_i), between(o_j, e_j)
    r = log(between(predicted, between(s_i, s_j)))
    jr_inv = right_jacobian_inverse(r)
    ad_sj_inv = adjoint(inverse(s_j))
    ad_sj_inv_si = adjoint(between(s_j, s_i))
    return r, [jr_inv @ ad_sj_inv, -jr_inv @ ad_sj_inv_si, -jr_inv @ ad_sj_inv, jr_inv]


def _tip_centre_in_object(o: Tensor, e: Tensor, model: ObjectModel) -> Tensor:
    offset = torch.tensor(model.pusher.centre_in_ee(), dtype=o.dtype, device=o.device).expand(e.shape[:-1] + (2,))
    return transform_point_inverse(o, transform_point(e, offset))


def contact_residual(poses: Poses, measurement: Tensor, model: ObjectModel) -> Tensor:
    distance, _ = sdf(model, _tip_centre_in_object(poses[0], poses[1], model))
    return (distance - model.pusher.radius)[..., None]


def contact_jacobians(poses: Poses, measurement: Tensor, model: ObjectModel):
    o, e = poses
    centre = _tip_centre_in_object(o, e, model)
    distance, gradient = sdf(model, centre)
    n = centre.shape[:-1]
    eye = torch.eye(2, dtype=o.dtype, device=o.device).expand(n + (2, 2))
    cross_centre = torch.stack([-centre[..., 1], centre[..., 0]], -1)  # _CROSS @ centre
    d_o = torch.cat([-eye, -cross_centre[..., None]], -1)
    offset = model.pusher.centre_in_ee()
    lever = torch.tensor([-offset[1], offset[0]], dtype=o.dtype, device=o.device).expand(n + (2,))
    rel = between(o, e)
    c, s = torch.cos(rel[..., 2]), torch.sin(rel[..., 2])
    rot = torch.stack([torch.stack([c, -s], -1), torch.stack([s, c], -1)], -2)
    d_e = rot @ torch.cat([eye, lever[..., None]], -1)
    g = gradient[..., None, :]
    return (distance - model.pusher.radius)[..., None], [g @ d_o, g @ d_e]


def tactile_normal_residual(poses: Poses, measurement: Tensor, model: ObjectModel) -> Tensor:
    """wrap(ν − θ_s − π − δ̂), as factors/tactile_normal.py."""
    o, e = poses
    sensor_angle = e[..., 2] - o[..., 2]
    if model.shape.kind == "rect":  # the face that most squarely faces the sensor, modulo a quarter turn
        return _fold(-sensor_angle - torch.pi - measurement[..., 0], 4)[..., None]
    _, gradient = sdf(model, _tip_centre_in_object(o, e, model))
    normal = torch.atan2(gradient[..., 1], gradient[..., 0])
    return _fold(normal - sensor_angle - torch.pi - measurement[..., 0], 1)[..., None]


def _fold(angle: Tensor, period_count: int) -> Tensor:
    half = torch.pi / period_count
    return torch.remainder(angle + half, 2.0 * half) - half


def tactile_normal_jacobians(poses: Poses, measurement: Tensor, model: ObjectModel):
    return (tactile_normal_residual(poses, measurement, model),
            numerical_jacobians(tactile_normal_residual, poses, measurement, model))


def pushing_residual(poses: Poses, measurement: Tensor, model: ObjectModel) -> Tensor:
    o_prev, o_next, e_prev, e_next = poses
    twist = log(between(o_prev, o_next))
    centre = _tip_centre_in_object(o_prev, e_prev, model)
    distance, gradient = sdf(model, centre)
    p = centre - distance[..., None] * gradient
    c, s = torch.cos(o_prev[..., 2]), torch.sin(o_prev[..., 2])
    d = e_next[..., :2] - e_prev[..., :2]
    vp_x, vp_y = c * d[..., 0] + s * d[..., 1], -s * d[..., 0] + c * d[..., 1]
    vx, vy, w = twist[..., 0], twist[..., 1], twist[..., 2]
    px, py = p[..., 0], p[..., 1]
    ls_c = model.limit_surface_c
    return torch.stack([vx - py * w - vp_x, vy + px * w - vp_y, (-py * vx + px * vy) / ls_c - ls_c * w], -1)


def numerical_jacobians(residual: Callable, poses: Poses, measurement: Tensor, model: object,
                        step: float = 1e-6) -> list[Tensor]:
    """Central differences for all poses and directions in one batched evaluation (as factors.base)."""
    n_var, n = len(poses), poses[0].shape[0]
    eye = torch.eye(3, dtype=poses[0].dtype, device=poses[0].device) * step
    deltas = exp(torch.cat([eye, -eye]))  # (6, 3)
    perturbed = []
    for index, pose in enumerate(poses):
        block = pose.expand(n_var, 6, n, 3).clone()
        block[index] = compose(pose[None], deltas[:, None, :].expand(6, n, 3))
        perturbed.append(block.reshape(-1, 3))
    meas = measurement.expand((n_var * 6,) + measurement.shape).reshape((n_var * 6 * n,) + measurement.shape[1:])
    values = residual(perturbed, meas, model).reshape(n_var, 6, n, -1)
    jac = (values[:, :3] - values[:, 3:]) / (2.0 * step)
    return [jac[v].permute(1, 2, 0) for v in range(n_var)]


def pushing_jacobians(poses: Poses, measurement: Tensor, model: ObjectModel):
    return pushing_residual(poses, measurement, model), numerical_jacobians(pushing_residual, poses, measurement, model)


AUTODIFF_TRANSFORMS = ("jacrev", "vmap_jacrev", "vmap_jacfwd")


def autodiff_jacobians(residual: Callable, poses: Poses, measurement: Tensor, model: object,
                       transform: str = "jacrev") -> tuple[Tensor, list[Tensor]]:
    """Residuals (N, d) and Jacobians [(N, d, 3)] of any family by torch.func: the derivative of
    ``residual([pose_k * Exp(delta_k)])`` in the tangent perturbations delta at delta = 0.

    ``jacrev``: one reverse pass per residual dimension through the whole batch. Factor i's residual
    depends on factor i's poses only, so the Jacobian of the residuals summed over the batch with
    respect to all (N, n, 3) perturbations holds every factor's blocks. ``vmap_jacrev`` and
    ``vmap_jacfwd`` differentiate one factor and vmap over the batch (the same numbers, slower on CPU).
    """
    n, count = len(poses), poses[0].shape[0]
    zero = poses[0].new_zeros(count, n, 3)
    if transform == "jacrev":
        def summed(delta: Tensor) -> tuple[Tensor, Tensor]:
            r = residual([compose(p, exp(delta[:, k])) for k, p in enumerate(poses)], measurement, model)
            return r.sum(0), r

        jac, r = torch.func.jacrev(summed, has_aux=True)(zero)  # (d, N, n, 3)
        return r, list(jac.permute(2, 1, 0, 3))
    if transform not in AUTODIFF_TRANSFORMS:
        raise ValueError(f"transform '{transform}' is unknown; expected one of {AUTODIFF_TRANSFORMS}")

    def single(pose: tuple[Tensor, ...], meas: Tensor, delta: Tensor) -> tuple[Tensor, Tensor]:
        r = residual([compose(p, exp(delta[k]))[None] for k, p in enumerate(pose)], meas[None], model)[0]
        return r, r

    differentiate = torch.func.jacrev if transform == "vmap_jacrev" else torch.func.jacfwd
    jac, r = torch.func.vmap(differentiate(single, argnums=2, has_aux=True))(tuple(poses), measurement, zero)
    return r, [jac[:, :, k] for k in range(n)]  # jac (N, d, n, 3)


RESIDUALS: dict[str, Callable] = {
    "tactile": tactile_residual, "pushing": pushing_residual, "contact": contact_residual,
    "tactile_normal": tactile_normal_residual,
    "ee_prior": prior_residual, "camera": prior_residual, "first_pose": prior_residual,
    "at_rest": between_residual, "motion_prior": between_residual,
}
JACOBIANS: dict[str, Callable] = {
    "tactile": tactile_jacobians, "pushing": pushing_jacobians, "contact": contact_jacobians,
    "tactile_normal": tactile_normal_jacobians,
    "ee_prior": prior_jacobians, "camera": prior_jacobians, "first_pose": prior_jacobians,
    "at_rest": between_jacobians, "motion_prior": between_jacobians,
}
AUTODIFF_JACOBIANS: dict[str, Callable] = {family: partial(autodiff_jacobians, residual)
                                           for family, residual in RESIDUALS.items()}
