"""iSAM2 (GTSAM) backend.

Each factor is built as its family says (``Family.gtsam``): the priors as gtsam's native
PriorFactorPose2 and the relative-motion priors as BetweenFactorPose2 (their errors are the same
Log(p̂⁻¹x) and Log(m⁻¹a⁻¹b), held equal by tests); every other family as a CustomFactor, which calls
back into Python at every linearization. iSAM2 keeps that to the factors whose variables moved, but a
relinearization burst re-evaluates hundreds at once, and the family's batched torch definition costs
tens of times a float computation for one factor. So the tactile, contact-normal, pushing and
contact factors have a float form here (``CALLBACKS``): gtsam's Pose2 maps and their Jacobians,
objects.foot_point for the contact point, geometry.log_derivative for Log, and a few 3x3 products.
Tests hold each to its family's definition (residuals and Jacobians) on every shape. A family
without a float form calls its definition on a batch of one (``definition_callback``).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence

import gtsam
import numpy as np

from tactile_estimator import geometry as se2
from tactile_estimator.backends import BackendError, BatchSolution, Graph
from tactile_estimator.factors import FAMILIES, Factor, Key, as_tensor
from tactile_estimator.factors.pushing import VERTEX_MARGIN
from tactile_estimator.objects import foot_point, near_vertex_float


def gtsam_key(key: Key) -> int:
    return gtsam.symbol(key[0], key[1])


def pose_array(pose: gtsam.Pose2) -> np.ndarray:
    return np.array([pose.x(), pose.y(), pose.theta()])


def _tactile_error(factor: Factor, keys: list[int]):
    """Log(T̂⁻¹ s_i⁻¹ s_j), s = o⁻¹e, by the chain rule through gtsam's Pose2 Jacobians."""
    predicted = gtsam.Pose2(*map(float, factor.measurement))
    o_i, e_i, o_j, e_j = keys
    a1, a2, b1, b2, c1, c2, d2 = (np.zeros((3, 3), order="F") for _ in range(7))

    def error(this: gtsam.CustomFactor, values: gtsam.Values, jacobians: list | None) -> np.ndarray:
        s_i = values.atPose2(o_i).between(values.atPose2(e_i), a1, a2)
        s_j = values.atPose2(o_j).between(values.atPose2(e_j), b1, b2)
        rel = s_i.between(s_j, c1, c2)
        residual = gtsam.Pose2.Logmap(predicted.between(rel, None, d2))
        if jacobians is not None:
            log_h = se2.log_derivative(residual[0], residual[1], residual[2]) @ d2
            left, right = log_h @ c1, log_h @ c2
            jacobians[0], jacobians[1], jacobians[2], jacobians[3] = left @ a1, left @ a2, right @ b1, right @ b2
        return residual

    return error


def _tip_centre(o: gtsam.Pose2, e: gtsam.Pose2, tip: np.ndarray, d_o: np.ndarray, d_e: np.ndarray, d_w: np.ndarray):
    """The tip circle's centre in the object frame, c = o⁻¹(e·tip), with dc/d(o) and dc/d(e)."""
    centre = o.transformTo(e.transformFrom(tip, d_w, None), d_o, d_e)
    return centre, d_e @ d_w  # d_e held dc/d(world point); now dc/d(e)


def _contact_error(factor: Factor, keys: list[int]):
    """contact_error on floats: sdf(c) - r with gradientᵀ dc as its Jacobians."""
    model = factor.context
    tip, radius = model.pusher.centre_in_ee(), model.pusher.radius
    o_key, e_key = keys
    d_o, d_e, d_w = (np.zeros((2, 3), order="F"), np.zeros((2, 2), order="F"), np.zeros((2, 3), order="F"))

    def error(this: gtsam.CustomFactor, values: gtsam.Values, jacobians: list | None) -> np.ndarray:
        centre, dc_e = _tip_centre(values.atPose2(o_key), values.atPose2(e_key), tip, d_o, d_e, d_w)
        distance, gx, gy, *_ = foot_point(model.shape, centre[0], centre[1])
        if jacobians is not None:
            g = np.array([[gx, gy]])
            jacobians[0], jacobians[1] = g @ d_o, g @ dc_e
        return np.array([distance - radius])

    return error


def _tactile_normal_error(factor: Factor, keys: list[int]):
    """tactile_normal_error on floats: dν/dc = (tᵀ − tᵀJ) / d through the tip centre's Jacobians,
    and ±1 in θ_o, θ_e from θ_s = θ_e − θ_o; a rectangle's face reading has the ±1 alone
    (factors/tactile_normal.py)."""
    model = factor.context
    tip, measured = model.pusher.centre_in_ee(), float(factor.measurement[0])
    o_key, e_key = keys

    def face_error(this: gtsam.CustomFactor, values: gtsam.Values, jacobians: list | None) -> np.ndarray:
        o, e = values.atPose2(o_key), values.atPose2(e_key)
        angle = -(e.theta() - o.theta()) - math.pi - measured
        if jacobians is not None:
            jacobians[0], jacobians[1] = np.array([[0.0, 0.0, 1.0]]), np.array([[0.0, 0.0, -1.0]])
        return np.array([(angle + math.pi / 4) % (math.pi / 2) - math.pi / 4])

    if model.shape.kind == "rect":
        return face_error
    d_o, d_e, d_w = (np.zeros((2, 3), order="F"), np.zeros((2, 2), order="F"), np.zeros((2, 3), order="F"))

    def error(this: gtsam.CustomFactor, values: gtsam.Values, jacobians: list | None) -> np.ndarray:
        o, e = values.atPose2(o_key), values.atPose2(e_key)
        centre, dc_e = _tip_centre(o, e, tip, d_o, d_e, d_w)
        distance, gx, gy, _, _, jf = foot_point(model.shape, centre[0], centre[1])
        angle = math.atan2(gy, gx) - (e.theta() - o.theta()) - math.pi - measured
        residual = np.array([(angle + math.pi) % (2.0 * math.pi) - math.pi])
        if jacobians is not None:
            tx, ty = -gy, gx
            scale = 1.0 / distance if abs(distance) > 1e-9 else 0.0
            dnu = np.array([[(tx - tx * jf[0] - ty * jf[2]) * scale, (ty - tx * jf[1] - ty * jf[3]) * scale]])
            jacobians[0] = dnu @ d_o + np.array([[0.0, 0.0, 1.0]])
            jacobians[1] = dnu @ dc_e - np.array([[0.0, 0.0, 1.0]])
        return residual

    return error


def _surface_target(p: np.ndarray, n: np.ndarray, vp: np.ndarray, decide: np.ndarray, ls_c: float, friction: float):
    """factors.pushing.surface_target on floats: the target T and its Jacobians in v_p, p and n (None
    while the contact sticks, where T = v_p). The mode is decided on ``decide``, so it has none.
    Sliding, T = s·a with a = A e, q = n·a, s = n·v_p / q: dT/dv_p = a nᵀ/q; dT/da = s(I − a nᵀ/q)
    takes da/dp = ((r·e)I + r eᵀ) R / c², r = R p, and da/dn = A(I ± μK) with e = (I ± μK) n; n also
    enters s directly, by a(v_pᵀ − s aᵀ)/q."""
    c2 = ls_c * ls_c
    r = np.array([p[1], -p[0]])
    force = decide - r * (r @ decide) / (c2 + r @ r)
    f_n, f_t = force @ n, n[0] * force[1] - n[1] * force[0]
    if f_n > 0.0 and abs(f_t) <= friction * f_n:
        return vp, None
    if n @ decide <= 0.0:
        return np.zeros(2), (np.zeros((2, 2)),) * 3
    side = 1.0 if f_t >= 0.0 else -1.0
    turn = np.array([[1.0, -side * friction], [side * friction, 1.0]])  # e = (I ± μK) n
    edge = turn @ n
    a_mat = np.eye(2) + np.outer(r, r) / c2
    a = a_mat @ edge
    q = n @ a
    scale = (n @ vp) / q
    along = scale * (np.eye(2) - np.outer(a, n) / q)
    da_dp = ((r @ edge) * np.eye(2) + np.outer(r, edge)) @ np.array([[0.0, 1.0], [-1.0, 0.0]]) / c2
    d_n = along @ a_mat @ turn + np.outer(a, vp - scale * a) / q
    return scale * a, (np.outer(a, n) / q, along @ da_dp, d_n)


def _pushing_error(factor: Factor, keys: list[int]):
    """pushing_error on floats, with analytic Jacobians (tests hold both to factors/pushing.py).

    r = D'·V + ∂r/∂p · p + (−T, 0): the object twist V = Log(o₀⁻¹o₁) through gtsam's Logmap and
    between Jacobians, the contact point p = foot(c) through foot_point's dp/dc, and the pusher's
    motion v_p = R₀ᵀ(e₁ − e₀) in the object frame directly. T is v_p for the sticking contact; with
    friction it is ``_surface_target``, whose normal n = −g moves with c by dg/dc = (I − ggᵀ)(I − J)/d,
    its mode decided on the measured mean motion (the measurement) or, without one, on v_p. Within
    VERTEX_MARGIN of a rectangle's corner the contact sticks (factors/pushing.py says why).
    """
    model = factor.context
    tip, ls_c, friction = model.pusher.centre_in_ee(), model.limit_surface_c, model.friction
    slides = math.isfinite(friction)
    mean = np.asarray(factor.measurement, dtype=float) if len(factor.measurement) == 2 else None
    b0, b1 = np.zeros((3, 3), order="F"), np.zeros((3, 3), order="F")
    d_o, d_e, d_w = (np.zeros((2, 3), order="F"), np.zeros((2, 2), order="F"), np.zeros((2, 3), order="F"))

    def error(this: gtsam.CustomFactor, values: gtsam.Values, jacobians: list | None) -> np.ndarray:
        o0, o1, e0, e1 = (values.atPose2(k) for k in keys)
        vx, vy, w = gtsam.Pose2.Logmap(o0.between(o1, b0, b1))
        centre, dc_e = _tip_centre(o0, e0, tip, d_o, d_e, d_w)
        distance, gx, gy, px, py, jf = foot_point(model.shape, centre[0], centre[1])
        c, s = math.cos(o0.theta()), math.sin(o0.theta())
        dx, dy = e1.x() - e0.x(), e1.y() - e0.y()
        vpx, vpy = c * dx + s * dy, -s * dx + c * dy
        target, parts = (vpx, vpy), None
        if slides and not near_vertex_float(model.shape, centre[0], centre[1], VERTEX_MARGIN):  # else sticks
            vp = np.array([vpx, vpy])
            decide = vp if mean is None else np.array([c * mean[0] + s * mean[1], -s * mean[0] + c * mean[1]])
            target, parts = _surface_target(np.array([px, py]), np.array([-gx, -gy]), vp, decide, ls_c, friction)
        residual = np.array([vx - py * w - target[0], vy + px * w - target[1], (-py * vx + px * vy) / ls_c - ls_c * w])
        if jacobians is None:
            return residual
        d_twist = np.array([[1.0, 0.0, -py], [0.0, 1.0, px], [-py / ls_c, px / ls_c, -ls_c]])
        foot_j = np.array([[jf[0], jf[1]], [jf[2], jf[3]]])
        d_point = np.array([[0.0, -w], [w, 0.0], [vy / ls_c, -vx / ls_c]]) @ foot_j
        # v_p under right perturbations: o₀'s rotation turns it by −δθ; e's translations enter through R₀ᵀR_e.
        ce0, se0 = math.cos(e0.theta() - o0.theta()), math.sin(e0.theta() - o0.theta())
        ce1, se1 = math.cos(e1.theta() - o0.theta()), math.sin(e1.theta() - o0.theta())
        twist_o = d_twist @ se2.log_derivative(vx, vy, w)
        # −dT/d(pose) in rows 1-2; sticking, T = v_p (the pusher's motion alone, as 3x3 blocks).
        minus_o = np.array([[0.0, 0.0, -vpy], [0.0, 0.0, vpx], [0.0, 0.0, 0.0]])
        minus_e0 = np.array([[ce0, -se0, 0.0], [se0, ce0, 0.0], [0.0, 0.0, 0.0]])
        minus_e1 = np.array([[-ce1, se1, 0.0], [-se1, -ce1, 0.0], [0.0, 0.0, 0.0]])
        if parts is not None:  # sliding: through dT/dv_p, and through p and n, which move with c
            d_vp, d_p, d_n = parts
            g = np.array([gx, gy])
            d_normal = -(np.eye(2) - np.outer(g, g)) @ (np.eye(2) - foot_j) / distance  # dn/dc
            d_target_c = d_p @ foot_j + d_n @ d_normal
            minus_o[:2] = d_vp @ minus_o[:2] - d_target_c @ d_o
            minus_e0[:2] = d_vp @ minus_e0[:2] - d_target_c @ dc_e
            minus_e1[:2] = d_vp @ minus_e1[:2]
        jacobians[0] = twist_o @ b0 + d_point @ d_o + minus_o
        jacobians[1] = twist_o @ b1
        jacobians[2] = d_point @ dc_e + minus_e0
        jacobians[3] = minus_e1
        return residual

    return error


def definition_callback(factor: Factor, keys: list[int]):
    """Any family's definition (``Family.jacobians``) on a batch of one, for the families without a float form."""
    family = FAMILIES[factor.family]
    measurement = as_tensor(np.asarray(factor.measurement, dtype=float).reshape(1, -1))

    def error(this: gtsam.CustomFactor, values: gtsam.Values, jacobians: list | None) -> np.ndarray:
        poses = [as_tensor(pose_array(values.atPose2(k))[None]) for k in keys]
        residual, jac = family.jacobians(poses, measurement, factor.context)
        if jacobians is not None:
            for index, block in enumerate(jac):
                jacobians[index] = block[0].numpy()
        return residual[0].numpy()

    return error


# The float forms, by family: 30-100x faster per callback than the definition on a batch of one
# (python -m benchmarks.callbacks).
CALLBACKS = {
    "tactile": _tactile_error, "pushing": _pushing_error, "contact": _contact_error,
    "tactile_normal": _tactile_normal_error,
}


def to_gtsam(factor: Factor) -> gtsam.NonlinearFactor:
    noise = gtsam.noiseModel.Diagonal.Sigmas(np.asarray(factor.sigmas, dtype=float))
    keys = [gtsam_key(k) for k in factor.keys]
    m = factor.measurement
    kind = FAMILIES[factor.family].gtsam
    if kind == "prior":
        return gtsam.PriorFactorPose2(keys[0], gtsam.Pose2(m[0], m[1], m[2]), noise)
    if kind == "between":
        return gtsam.BetweenFactorPose2(keys[0], keys[1], gtsam.Pose2(m[0], m[1], m[2]), noise)
    return gtsam.CustomFactor(noise, keys, CALLBACKS.get(factor.family, definition_callback)(factor, keys))


class Isam2Backend:
    def __init__(self, relinearize_threshold: float = 0.01, relinearize_skip: int = 1) -> None:
        params = gtsam.ISAM2Params()
        params.setRelinearizeThreshold(relinearize_threshold)
        params.relinearizeSkip = relinearize_skip
        self._isam = gtsam.ISAM2(params)
        # CustomFactor hands each callback the Values it is linearized at. pybind copies a C++ object
        # with no Python wrapper, and iSAM2's linearization point has none, so every callback copied
        # all poses: O(run length) per callback, 30-140 ms updates at 3,000 steps. This live reference
        # (it follows every update) registers one, and callbacks then receive it without a copy.
        self._theta = self._isam.getLinearizationPoint()
        self._keys: list[Key] = []
        self.relinearized = 0  # variables the last update relinearized (for latency diagnostics)

    def add(self, factors: Iterable[Factor], initial: dict[Key, np.ndarray]) -> None:
        graph = gtsam.NonlinearFactorGraph()
        for factor in factors:
            graph.add(to_gtsam(factor))
        values = gtsam.Values()
        for key, pose in initial.items():
            values.insert(gtsam_key(key), gtsam.Pose2(*map(float, pose)))
        try:
            self.relinearized = self._isam.update(graph, values).getVariablesRelinearized()
        except (RuntimeError, IndexError) as error:  # IndeterminantLinearSystemException is a RuntimeError
            raise BackendError(str(error).strip().splitlines()[0]) from error
        self._keys.extend(initial)

    def refine(self, iterations: int) -> None:
        """More iSAM2 updates with no new factors: each relinearizes what moved and re-solves."""
        try:
            for _ in range(iterations):
                self._isam.update()
        except (RuntimeError, IndexError) as error:
            raise BackendError(str(error).strip().splitlines()[0]) from error

    def estimate(self, keys: Sequence[Key] | None = None) -> dict[Key, np.ndarray]:
        keys = self._keys if keys is None else keys
        try:
            return {k: pose_array(self._isam.calculateEstimatePose2(gtsam_key(k))) for k in keys}
        except (RuntimeError, IndexError) as error:
            raise BackendError(str(error).strip().splitlines()[0]) from error

    def marginals(self, keys: Sequence[Key]) -> dict[Key, np.ndarray]:
        try:
            return {k: np.asarray(self._isam.marginalCovariance(gtsam_key(k))) for k in keys}
        except (RuntimeError, IndexError) as error:
            raise BackendError(str(error).strip().splitlines()[0]) from error

    def sample(self, n: int, keys: Sequence[Key], rng: np.random.Generator) -> np.ndarray:
        """Joint samples (n, len(keys), 3) of the Laplace approximation, on the manifold: x * Exp(δ)."""
        joint = self._isam.jointMarginalCovariance([gtsam_key(k) for k in keys]).fullMatrix()
        mean = np.stack([self.estimate([k])[k] for k in keys])
        chol = np.linalg.cholesky(joint + 1e-12 * np.eye(joint.shape[0]))
        deltas = (rng.standard_normal((n, joint.shape[0])) @ chol.T).reshape(n, len(keys), 3)
        return se2.compose(mean[None], se2.exp(deltas))

    def factor_count(self) -> int:
        return self._isam.getFactorsUnsafe().size()


def solve_batch(graphs: Sequence[Graph], keys: Sequence[Sequence[Key]], iterations: int, samples: int = 0,
                seeds: Sequence[int] = ()) -> list[BatchSolution]:
    """backends.solve_batch by a fresh iSAM2 per graph with relinearization threshold 0: its first
    update is one Gauss-Newton iteration over every factor, each further update one more."""
    out = []
    for b, ((factors, initial), wanted) in enumerate(zip(graphs, keys, strict=True)):
        try:
            backend = Isam2Backend(relinearize_threshold=0.0)
            backend.add(factors, initial)
            backend.refine(iterations - 1)
            solved = backend.estimate(wanted)
            drawn = backend.sample(samples, wanted, np.random.default_rng(seeds[b])) if samples else None
        except BackendError as error:
            raise BackendError(str(error), graph=b) from error
        out.append(BatchSolution(np.stack([solved[k] for k in wanted]), drawn))
    return out
