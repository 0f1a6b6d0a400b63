"""The pose priors and the relative-motion priors (factors/priors.py): Jacobians exact."""

from __future__ import annotations

import numpy as np
import pytest
from test_factors import FAMILIES, assert_jacobians_agree, random_poses, tensors

from tactile_estimator import geometry as se2
from tactile_estimator.factors import numerical_jacobians


@pytest.mark.parametrize("family", ["ee_prior", "camera", "first_pose"])
def test_pose_factor_jacobians_match_numerical(family: str) -> None:
    fam = FAMILIES[family]
    poses = [random_poses(20)]
    measurement = random_poses(20, 0.02)
    as_t, m = tensors(poses, measurement)
    r, analytic = fam.jacobians(as_t, m, None)
    numeric = numerical_jacobians(fam.error, as_t, m, None)
    assert r.shape == (20, 3)
    for a, n in zip(analytic, numeric, strict=True):
        np.testing.assert_allclose(a.numpy(), n.numpy(), atol=1e-6)


@pytest.mark.parametrize("family", ["at_rest", "motion_prior"])
def test_between_jacobians_match_numerical(family: str) -> None:
    fam = FAMILIES[family]
    poses = [random_poses(10), random_poses(10)]
    measurement = random_poses(10, 0.01)
    as_t, m = tensors(poses, measurement)
    _, analytic = fam.jacobians(as_t, m, None)
    numeric = numerical_jacobians(fam.error, as_t, m, None)
    for a, n in zip(analytic, numeric, strict=True):
        np.testing.assert_allclose(a.numpy(), n.numpy(), atol=1e-6)


@pytest.mark.parametrize("family", ["ee_prior", "camera", "first_pose", "at_rest", "motion_prior"])
def test_jacobians_equal_numerical_and_torch_func(family: str) -> None:
    assert_jacobians_agree(family, "rect", numerical_atol=1e-6, autodiff_atol=1e-9)
    assert_jacobians_agree(family, "ellipse", numerical_atol=1e-6, autodiff_atol=1e-9)


def test_errors_are_the_log_of_the_numpy_library() -> None:
    """Log(p̂⁻¹x) and Log(m⁻¹a⁻¹b), as gtsam's PriorFactorPose2 and BetweenFactorPose2 have them."""
    a, b, m = random_poses(10), random_poses(10), random_poses(10, 0.02)
    np.testing.assert_allclose(FAMILIES["camera"].residual([a], m), se2.log(se2.between(m, a)), atol=1e-12)
    np.testing.assert_allclose(FAMILIES["motion_prior"].residual([a, b], m),
                               se2.log(se2.between(m, se2.between(a, b))), atol=1e-12)
