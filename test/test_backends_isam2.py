"""The iSAM2 backend's gtsam factors equal the one numpy definition of each family."""

from __future__ import annotations

import gtsam
import numpy as np
import pytest

from tactile_estimator import geometry as se2
from tactile_estimator.backends.isam2 import Isam2Backend, gtsam_key, to_gtsam
from tactile_estimator.factors import Factor, ObjectModel, evaluate
from tactile_estimator.objects import Shape

RNG = np.random.default_rng(3)
MODEL = ObjectModel.for_shape(Shape("rect", (0.1, 0.08)))


def random_pose(scale: float = 0.1) -> np.ndarray:
    return np.array([RNG.normal(0, scale), RNG.normal(0, scale), RNG.uniform(-np.pi, np.pi)])


def touching_pair() -> tuple[np.ndarray, np.ndarray]:
    o = random_pose()
    return o, se2.compose(o, np.array([-0.05 - 0.001, 0.01, 0.1]))


def cases() -> list[Factor]:
    sig = np.array([0.01, 0.02, 0.03])
    o0, e0 = touching_pair()
    return [
        Factor("ee_prior", (("e", 0),), random_pose(), sig),
        Factor("camera", (("o", 0),), random_pose(), sig),
        Factor("first_pose", (("o", 0),), random_pose(), sig),
        Factor("motion_prior", (("o", 0), ("o", 1)), random_pose(0.01), sig),
        Factor("at_rest", (("o", 0), ("o", 1)), np.zeros(3), sig),
        Factor("tactile", (("o", 0), ("e", 0), ("o", 1), ("e", 1)), random_pose(0.01), sig),
        Factor("pushing", (("o", 0), ("o", 1), ("e", 0), ("e", 1)), np.zeros(0), sig, MODEL),
        Factor("contact", (("o", 0), ("e", 0)), np.zeros(0), np.array([0.001]), MODEL),
    ], (o0, e0)


@pytest.mark.parametrize("index", range(8))
def test_gtsam_factor_matches_numpy_definition(index: int) -> None:
    factors, (o0, e0) = cases()
    factor = factors[index]
    poses = {("o", 0): o0, ("e", 0): e0, ("o", 1): se2.compose(o0, random_pose(0.01) * [1, 1, 0.1]),
             ("e", 1): se2.compose(e0, random_pose(0.01) * [1, 1, 0.1])}
    values = gtsam.Values()
    for key, pose in poses.items():
        values.insert(gtsam_key(key), gtsam.Pose2(*pose))
    residual, jacobians = evaluate(factor, [poses[k] for k in factor.keys])
    linear = to_gtsam(factor).linearize(values)
    a, b = linear.jacobian()
    sigmas = np.asarray(factor.sigmas)
    # gtsam whitens: A = J / σ and b = -r / σ
    np.testing.assert_allclose(-b * sigmas, residual, atol=1e-9)
    np.testing.assert_allclose(a * sigmas[:, None], np.hstack(jacobians), atol=1e-6 if factor.family == "pushing"
                               else 1e-9)


def test_marginal_covariance_of_a_single_prior_is_its_covariance() -> None:
    backend = Isam2Backend()
    sig = np.array([0.01, 0.02, 0.03])
    backend.add([Factor("first_pose", (("o", 0),), np.zeros(3), sig)], {("o", 0): np.zeros(3)})
    np.testing.assert_allclose(backend.marginals([("o", 0)])[("o", 0)], np.diag(sig**2), atol=1e-12)
    samples = backend.sample(4000, [("o", 0)], np.random.default_rng(0))
    np.testing.assert_allclose(samples[:, 0].std(0), sig, rtol=0.05)
