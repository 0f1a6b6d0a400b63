"""Object SDFs: values at known points, exact distances, gradients, and the limit surface's c."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from tactile_estimator import objects
from tactile_estimator.objects import DEFAULT_SIZES, SHAPES, Pusher, Shape, foot_point


def _boundary_distance(shape: Shape, points: np.ndarray, samples: int = 2048) -> np.ndarray:
    """Unsigned distance to the ellipse by brute force over its angle: a coarse grid, then a fine one."""
    a, b = shape.size
    step = 2.0 * np.pi / samples
    t = np.arange(samples) * step
    coarse = np.hypot(points[:, :1] - a * np.cos(t), points[:, 1:] - b * np.sin(t))
    t = t[coarse.argmin(axis=1)][:, None] + np.linspace(-1.5 * step, 1.5 * step, samples)
    return np.hypot(points[:, :1] - a * np.cos(t), points[:, 1:] - b * np.sin(t)).min(axis=1)


@pytest.mark.parametrize(
    ("shape", "point", "distance", "gradient"),
    [
        (Shape("disc", (0.05,)), (0.0, 0.0), -0.05, None),
        (Shape("disc", (0.05,)), (0.08, 0.0), 0.03, (1.0, 0.0)),
        (Shape("disc", (0.05,)), (0.0, -0.02), -0.03, (0.0, -1.0)),
        (Shape("disc", (0.05,)), (0.03, 0.04), 0.0, (0.6, 0.8)),
        (Shape("rect", (0.10, 0.08)), (0.0, 0.0), -0.04, None),
        (Shape("rect", (0.10, 0.08)), (0.03, 0.0), -0.02, (1.0, 0.0)),
        (Shape("rect", (0.10, 0.08)), (0.0, -0.035), -0.005, (0.0, -1.0)),
        (Shape("rect", (0.10, 0.08)), (-0.06, 0.01), 0.01, (-1.0, 0.0)),
        (Shape("rect", (0.10, 0.08)), (0.08, 0.08), 0.05, (0.6, 0.8)),
        (Shape("ellipse", (0.065, 0.045)), (0.0, 0.0), -0.045, None),
        (Shape("ellipse", (0.065, 0.045)), (0.1, 0.0), 0.035, (1.0, 0.0)),
        (Shape("ellipse", (0.065, 0.045)), (0.0, -0.05), 0.005, (0.0, -1.0)),
        (Shape("ellipse", (0.065, 0.045)), (0.0, 0.03), -0.015, (0.0, 1.0)),
        (Shape("ellipse", (0.045, 0.065)), (0.0, 0.07), 0.005, (0.0, 1.0)),
    ],
)
def test_sdf_at_known_points(
    shape: Shape, point: tuple[float, float], distance: float, gradient: tuple[float, float] | None
) -> None:
    value, grad = shape.sdf(np.array(point))
    assert value == pytest.approx(distance, abs=1e-9)
    if gradient is not None:
        np.testing.assert_allclose(grad, gradient, atol=1e-9)


@pytest.mark.parametrize("size", [(0.065, 0.045), (0.045, 0.065), (0.1, 0.01)])
def test_ellipse_sdf_is_exact_inside_and_out(size: tuple[float, float]) -> None:
    """Deep inside (within the evolute, on the major axis) included: Newton on the angle failed there."""
    shape = Shape("ellipse", size)
    rng = np.random.default_rng(0)
    a, b = size
    points = np.concatenate(
        [
            rng.uniform(-1.5, 1.5, (800, 2)) * size,
            rng.uniform(-0.6, 0.6, (300, 2)) * size,  # deep inside
            np.stack([rng.uniform(-1.5 * a, 1.5 * a, 100), np.zeros(100)], axis=-1),  # on the x axis
            np.stack([np.zeros(100), rng.uniform(-1.5 * b, 1.5 * b, 100)], axis=-1),  # on the y axis
        ]
    )
    distance, _ = shape.sdf(points)
    inside = (points[:, 0] / a) ** 2 + (points[:, 1] / b) ** 2 < 1.0
    assert np.all((distance < 0.0) == inside)
    np.testing.assert_allclose(np.abs(distance), _boundary_distance(shape, points), atol=1e-8)


def test_round_ellipse_is_a_disc() -> None:
    points = np.random.default_rng(1).uniform(-0.1, 0.1, (500, 2))
    ellipse, disc = Shape("ellipse", (0.05, 0.05)).sdf(points), Shape("disc", (0.05,)).sdf(points)
    np.testing.assert_allclose(ellipse[0], disc[0], atol=1e-9)
    np.testing.assert_allclose(ellipse[1], disc[1], atol=1e-6)


@pytest.mark.parametrize("kind", SHAPES)
def test_gradient_matches_finite_differences(kind: str) -> None:
    shape = Shape(kind, DEFAULT_SIZES[kind])
    extent = max(shape.size)
    points = np.random.default_rng(2).uniform(-1.6 * extent, 1.6 * extent, (4000, 2))
    _, gradient = shape.sdf(points)
    h = 1e-7
    steps = (np.array([h, 0.0]), np.array([0.0, h]))
    numeric = np.stack([(shape.sdf(points + d)[0] - shape.sdf(points - d)[0]) / (2 * h) for d in steps], axis=-1)
    # Where the central difference straddles a kink (corners, the medial axis inside) it is not a
    # unit vector; everywhere else the SDF is smooth and its gradient must match.
    smooth = np.abs(np.linalg.norm(numeric, axis=-1) - 1.0) < 1e-5
    assert smooth.mean() > 0.95
    np.testing.assert_allclose(gradient[smooth], numeric[smooth], atol=1e-5)
    np.testing.assert_allclose(np.linalg.norm(gradient, axis=-1), 1.0, atol=1e-9)


def test_closest_boundary_point_is_on_the_boundary() -> None:
    for kind in SHAPES:
        shape = Shape(kind, DEFAULT_SIZES[kind])
        points = np.random.default_rng(3).uniform(-0.12, 0.12, (1000, 2))
        distance, gradient = shape.sdf(points)
        closest = points - distance[:, None] * gradient
        np.testing.assert_allclose(shape.sdf(closest)[0], 0.0, atol=1e-7)


def test_disc_limit_surface_c_is_two_thirds_of_the_radius() -> None:
    """m_max / f_max of a uniformly loaded disc: the mean distance from the centre, 2r/3."""
    for radius in (0.03, 0.05):
        assert Shape("disc", (radius,)).limit_surface_c() == pytest.approx(2.0 * radius / 3.0, rel=0.01)


def test_rect_limit_surface_c_grows_with_size() -> None:
    small, large = Shape("rect", (0.05, 0.04)).limit_surface_c(), Shape("rect", (0.10, 0.08)).limit_surface_c()
    assert large == pytest.approx(2.0 * small, rel=0.02)


def test_pusher_centre_is_behind_the_apex() -> None:
    np.testing.assert_allclose(Pusher(0.01).centre_in_ee(), [-0.01, 0.0])


def test_bad_shapes_are_rejected() -> None:
    with pytest.raises(ValueError, match="unknown"):
        Shape("triangle", (0.1,))
    with pytest.raises(ValueError, match="positive"):
        Shape("rect", (0.1,))


@pytest.mark.parametrize("shape", [Shape("rect", (0.1, 0.08)), Shape("disc", (0.05,)), Shape("ellipse", (0.065, 0.045)),
                                   Shape("ellipse", (0.03, 0.06))])
def test_foot_point_on_floats_matches_the_sdf_and_its_own_finite_differences(shape: Shape) -> None:
    rng = np.random.default_rng(4)
    for point in rng.normal(0.0, 0.06, (300, 2)):
        distance, gradient = shape.sdf(point[None])
        d, gx, gy, fx, fy, jac = foot_point(shape, *point)
        assert d == pytest.approx(distance[0], abs=1e-12)
        np.testing.assert_allclose([gx, gy], gradient[0], atol=1e-12)
        np.testing.assert_allclose([fx, fy], point - distance[0] * gradient[0], atol=1e-12)
        h = 1e-7
        numeric = np.stack([(np.array(foot_point(shape, *(point + e))[3:5]) - foot_point(shape, *(point - e))[3:5])
                            / (2 * h) for e in np.eye(2) * h], axis=-1)
        np.testing.assert_allclose(np.reshape(jac, (2, 2)), numeric, atol=1e-6)


def test_ellipse_points_give_the_same_distance_alone_as_in_a_batch() -> None:
    """The root-finding stops per point and ends once all have stopped: a point far inside (slow to converge)
    beside points on the boundary (converged at once) changes none of their values."""
    shape = Shape("ellipse", (0.065, 0.02))
    points = np.array([[0.0651, 0.0], [0.064, 0.0019], [0.0, -0.02], [0.001, 1e-5], [0.3, -0.2]])
    distance, gradient = shape.sdf(points)
    for point, d, g in zip(points, distance, gradient, strict=True):
        alone_d, alone_g = shape.sdf(point[None])
        assert alone_d[0] == d and (alone_g[0] == g).all()


def test_near_vertex_is_a_rectangles_corner_region_in_both_forms() -> None:
    """Within the margin of a corner along either face, in torch and on floats; smooth shapes have none."""
    rect = Shape("rect", (0.1, 0.08))
    points = np.array([[-0.06, -0.045], [-0.06, -0.035], [-0.06, -0.025], [0.045, 0.05], [0.035, 0.05], [0.0, 0.0]])
    expected = [True, True, False, True, False, False]
    got = objects.near_vertex(rect, torch.tensor(points), 0.01)
    assert got.tolist() == expected
    assert [objects.near_vertex_float(rect, x, y, 0.01) for x, y in points] == expected
    assert objects.near_vertex(rect, torch.tensor(points), 0.0).tolist() == [True, False, False, False, False, False]
    for smooth in (Shape("disc", (0.05,)), Shape("ellipse", (0.065, 0.045))):
        assert not objects.near_vertex(smooth, torch.tensor(points), 0.01).any()
        assert not any(objects.near_vertex_float(smooth, x, y, 0.01) for x, y in points)
