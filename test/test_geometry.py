"""SE(2): the torch maps (factors/lie.py) equal the numpy library (geometry.py), and both equal gtsam."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from tactile_estimator import geometry as se2
from tactile_estimator.factors import lie

RNG = np.random.default_rng(5)


def _poses(n: int, scale: float = 0.3) -> np.ndarray:
    return np.column_stack([RNG.normal(0, scale, (n, 2)), RNG.uniform(-np.pi, np.pi, n)])


def test_torch_maps_equal_the_numpy_library() -> None:
    a, b = _poses(200), _poses(200)
    xi = np.concatenate([_poses(100), _poses(100) * [1, 1, 1e-5]])  # both sides of the small-angle branch
    point = RNG.normal(0, 0.2, (200, 2))
    ta, tb, txi, tp = (torch.from_numpy(x) for x in (a, b, xi, point))
    pairs = [(lie.compose(ta, tb), se2.compose(a, b)), (lie.inverse(ta), se2.inverse(a)),
             (lie.between(ta, tb), se2.between(a, b)), (lie.exp(txi), se2.exp(xi)), (lie.log(ta), se2.log(a)),
             (lie.adjoint(ta), se2.adjoint(a)), (lie.right_jacobian_inverse(txi), se2.right_jacobian_inverse(xi)),
             (lie.transform_point(ta, tp), se2.transform_point(a, point)),
             (lie.transform_point_inverse(ta, tp), se2.transform_point_inverse(a, point))]
    for ours, reference in pairs:
        np.testing.assert_allclose(ours.numpy(), reference, atol=1e-12)
    np.testing.assert_allclose(lie.wrap_angle(torch.tensor([3 * np.pi - 0.1, -7.0])).numpy(),
                               se2.wrap_angle(np.array([3 * np.pi - 0.1, -7.0])), atol=1e-12)


@pytest.mark.parametrize("w", [0.0, 5e-5, -9e-5, 2e-4, 0.7])
def test_right_jacobian_equals_gtsam_on_both_sides_of_the_small_angle_branch(w: float) -> None:
    """Below |w| = 1e-4 a series is used; gtsam's closed form is exact there down to ~1e-5 (1e-7: its rounding)."""
    gtsam = pytest.importorskip("gtsam")
    xi = np.array([0.3, -0.2, w])
    reference = gtsam.Pose2.ExpmapDerivative(xi)
    np.testing.assert_allclose(se2.right_jacobian(xi), reference, atol=1e-7)
    np.testing.assert_allclose(lie.right_jacobian_inverse(torch.from_numpy(xi)).numpy(),
                               np.linalg.inv(reference), atol=1e-7)


@pytest.mark.parametrize("w", [0.0, 3e-5, -9e-5, 2e-4, 0.7, -3.0])
def test_log_derivative_on_floats_is_the_inverse_right_jacobian(w: float) -> None:
    xi = np.array([0.3, -0.2, w])
    np.testing.assert_allclose(se2.log_derivative(*xi), se2.right_jacobian_inverse(xi), atol=1e-12)
    # And the derivative of Log itself, by central differences of Log(Exp(xi) * Exp(delta)).
    h = 1e-6
    numeric = np.stack([(se2.log(se2.compose(se2.exp(xi), se2.exp(d))) - se2.log(se2.compose(se2.exp(xi), se2.exp(-d))))
                        / (2 * h) for d in np.eye(3) * h], axis=-1)
    np.testing.assert_allclose(se2.log_derivative(*xi), numeric, atol=1e-7)
