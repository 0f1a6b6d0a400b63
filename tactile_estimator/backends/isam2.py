"""iSAM2 (GTSAM) backend.

Priors become gtsam's native PriorFactorPose2 (its error is the same Log(p̂⁻¹x), held equal by a
test); the other families are CustomFactors that call the one numpy definition in factors/.
CustomFactor calls back into Python at every linearization, which iSAM2 keeps to the factors
whose variables moved.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import gtsam
import numpy as np

from tactile_estimator import geometry as se2
from tactile_estimator.backends import BackendError
from tactile_estimator.factors import FAMILIES, Factor, Key

NATIVE_PRIORS = ("ee_prior", "camera", "first_pose")


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


def to_gtsam(factor: Factor) -> gtsam.NonlinearFactor:
    noise = gtsam.noiseModel.Diagonal.Sigmas(np.asarray(factor.sigmas, dtype=float))
    keys = [gtsam_key(k) for k in factor.keys]
    if factor.family in NATIVE_PRIORS:
        m = factor.measurement
        return gtsam.PriorFactorPose2(keys[0], gtsam.Pose2(m[0], m[1], m[2]), noise)
    return gtsam.CustomFactor(noise, keys, _custom_error(factor, keys))


class Isam2Backend:
    def __init__(self, relinearize_threshold: float = 0.01, relinearize_skip: int = 1) -> None:
        params = gtsam.ISAM2Params()
        params.setRelinearizeThreshold(relinearize_threshold)
        params.relinearizeSkip = relinearize_skip
        self._isam = gtsam.ISAM2(params)
        self._keys: list[Key] = []

    def add(self, factors: Iterable[Factor], initial: dict[Key, np.ndarray]) -> None:
        graph = gtsam.NonlinearFactorGraph()
        for factor in factors:
            graph.add(to_gtsam(factor))
        values = gtsam.Values()
        for key, pose in initial.items():
            values.insert(gtsam_key(key), gtsam.Pose2(*map(float, pose)))
        try:
            self._isam.update(graph, values)
        except (RuntimeError, IndexError) as error:  # IndeterminantLinearSystemException is a RuntimeError
            raise BackendError(str(error).strip().splitlines()[0]) from error
        self._keys.extend(initial)

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
