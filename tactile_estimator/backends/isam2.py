"""iSAM2 (GTSAM) backend.

Priors become gtsam's native PriorFactorPose2 and the relative-motion priors BetweenFactorPose2
(their errors are the same Log(p̂⁻¹x) and Log(m⁻¹a⁻¹b), held equal by tests). The tactile factor,
on the hot path with several per step, is a CustomFactor composed from gtsam's own Pose2 maps
and their Jacobians (tests hold it equal to factors/tactile.py). The pushing and contact factors
are CustomFactors that call the numpy definitions in factors/ directly. A CustomFactor calls back
into Python at every linearization, which iSAM2 keeps to the factors whose variables moved.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import gtsam
import numpy as np

from tactile_estimator import geometry as se2
from tactile_estimator.backends import BackendError
from tactile_estimator.factors import FAMILIES, Factor, Key

NATIVE_PRIORS = ("ee_prior", "camera", "first_pose")
NATIVE_BETWEEN = ("at_rest", "motion_prior")


def gtsam_key(key: Key) -> int:
    return gtsam.symbol(key[0], key[1])


def pose_array(pose: gtsam.Pose2) -> np.ndarray:
    return np.array([pose.x(), pose.y(), pose.theta()])


def _custom_error(factor: Factor, keys: list[int]):
    family = FAMILIES[factor.family]
    measurement = np.asarray(factor.measurement, dtype=float)[None]
    context = factor.context

    def error(this: gtsam.CustomFactor, values: gtsam.Values, jacobians: list | None) -> np.ndarray:
        poses = [pose_array(values.atPose2(k))[None] for k in keys]
        if jacobians is None:
            return family.residual(poses, measurement, context)[0]
        residual, jac = family.jacobians(poses, measurement, context)
        for index, j in enumerate(jac):
            jacobians[index] = j[0]
        return residual[0]

    return error


def _tactile_error(factor: Factor, keys: list[int]):
    """Log(T̂⁻¹ s_i⁻¹ s_j), s = o⁻¹e, by the chain rule through gtsam's Pose2 Jacobians."""
    predicted = gtsam.Pose2(*map(float, factor.measurement))
    o_i, e_i, o_j, e_j = keys
    a1, a2, b1, b2, c1, c2, d2, log_h = (np.zeros((3, 3), order="F") for _ in range(8))

    def error(this: gtsam.CustomFactor, values: gtsam.Values, jacobians: list | None) -> np.ndarray:
        s_i = values.atPose2(o_i).between(values.atPose2(e_i), a1, a2)
        s_j = values.atPose2(o_j).between(values.atPose2(e_j), b1, b2)
        rel = s_i.between(s_j, c1, c2)
        residual = gtsam.Pose2.Logmap(predicted.between(rel, None, d2), log_h)
        if jacobians is not None:
            left, right = log_h @ d2 @ c1, log_h @ d2 @ c2
            jacobians[0], jacobians[1], jacobians[2], jacobians[3] = left @ a1, left @ a2, right @ b1, right @ b2
        return residual

    return error


def to_gtsam(factor: Factor) -> gtsam.NonlinearFactor:
    noise = gtsam.noiseModel.Diagonal.Sigmas(np.asarray(factor.sigmas, dtype=float))
    keys = [gtsam_key(k) for k in factor.keys]
    m = factor.measurement
    if factor.family in NATIVE_PRIORS:
        return gtsam.PriorFactorPose2(keys[0], gtsam.Pose2(m[0], m[1], m[2]), noise)
    if factor.family in NATIVE_BETWEEN:
        return gtsam.BetweenFactorPose2(keys[0], keys[1], gtsam.Pose2(m[0], m[1], m[2]), noise)
    if factor.family == "tactile":
        return gtsam.CustomFactor(noise, keys, _tactile_error(factor, keys))
    return gtsam.CustomFactor(noise, keys, _custom_error(factor, keys))


class Isam2Backend:
    def __init__(self, relinearize_threshold: float = 0.01, relinearize_skip: int = 1) -> None:
        params = gtsam.ISAM2Params()
        params.setRelinearizeThreshold(relinearize_threshold)
        params.relinearizeSkip = relinearize_skip
        self._isam = gtsam.ISAM2(params)
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
