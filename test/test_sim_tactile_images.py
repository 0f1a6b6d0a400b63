"""DIGIT-like rendering: the background, bare-gel frames, imprints and their orientation."""

from __future__ import annotations

import hashlib
from pathlib import Path

import cv2
import numpy as np
import pytest

from tactile_estimator.objects import TIP_RADIUS, Shape
from tactile_estimator.sim import tactile_images
from tactile_estimator.sim.tactile_images import (
    HEIGHT,
    WIDTH,
    TactileRenderer,
    contact_point_in_ee,
    ee_point_to_pixel,
    load_background,
    pixel_grid_in_ee,
)

# sha256 of the DIGIT frame as the TACTO project publishes it (tactile_estimator/data/LICENSE-bg_digit_240_320.txt)
BACKGROUND_SHA256 = "b386c851500f063369b2c2e43d8308da0a35736c3d922e1b3c6d8b0f33b91631"
PACKAGE_BACKGROUND = Path(tactile_images.__file__).resolve().parent.parent / "data" / "bg_digit_240_320.jpg"
EE = np.zeros(3)
RECT = Shape("rect", (0.10, 0.08))


def touching(point: np.ndarray, outward: np.ndarray, angle: float, penetration: float = 0.0) -> np.ndarray:
    """Object pose whose boundary ``point`` (outward normal ``outward``) touches the tip of an ee at
    the origin, ``angle`` round the tip from its apex."""
    u = np.array([np.cos(angle), np.sin(angle)])
    contact = np.array([-TIP_RADIUS, 0.0]) + (TIP_RADIUS - penetration) * u
    theta = np.arctan2(-u[1], -u[0]) - np.arctan2(outward[1], outward[0])
    c, s = np.cos(theta), np.sin(theta)
    position = contact - np.array([c * point[0] - s * point[1], s * point[0] + c * point[1]])
    return np.array([position[0], position[1], theta])


def face_at(angle_deg: float, offset: float = 0.0) -> np.ndarray:
    """The rect's -x face, turned by ``angle_deg`` relative to the sensor, touching the tip."""
    return touching(np.array([-0.05, offset]), np.array([-1.0, 0.0]), np.deg2rad(angle_deg))


def principal_axis_deg(change: np.ndarray, threshold: float = 8.0) -> float:
    """Orientation of an imprint from the second moments of its (thresholded) change, in image axes."""
    weight = np.maximum(change - threshold, 0.0)
    rows, cols = np.indices(weight.shape)
    total = weight.sum()
    r0, c0 = (weight * rows).sum() / total, (weight * cols).sum() / total
    mu20 = (weight * (cols - c0) ** 2).sum() / total
    mu02 = (weight * (rows - r0) ** 2).sum() / total
    mu11 = (weight * (cols - c0) * (rows - r0)).sum() / total
    return float(np.degrees(0.5 * np.arctan2(2.0 * mu11, mu20 - mu02)))


def test_background_is_a_real_digit_frame_in_rgb() -> None:
    background = load_background()
    assert background.shape == (HEIGHT, WIDTH, 3) == (320, 240, 3)
    assert background.dtype == np.uint8
    np.testing.assert_array_equal(background, cv2.imread(str(PACKAGE_BACKGROUND))[..., ::-1])
    assert 60.0 < background.mean() < 160.0 and background.std() > 5.0


def test_package_background_is_the_published_frame_unchanged() -> None:
    assert hashlib.sha256(PACKAGE_BACKGROUND.read_bytes()).hexdigest() == BACKGROUND_SHA256


def test_pixel_grid_is_square_and_centred_on_the_apex() -> None:
    grid = pixel_grid_in_ee()
    assert grid.shape == (HEIGHT, WIDTH, 2)
    pitch_rows = grid[0, 0, 0] - grid[1, 0, 0]
    pitch_cols = grid[0, 0, 1] - grid[0, 1, 1]
    assert pitch_rows == pytest.approx(pitch_cols) and pitch_rows > 0.0
    np.testing.assert_allclose(grid.reshape(-1, 2).mean(axis=0), 0.0, atol=1e-12)
    np.testing.assert_allclose(ee_point_to_pixel(grid[17, 42]), [17.0, 42.0], atol=1e-9)


def test_out_of_contact_frames_are_the_bare_gel() -> None:
    renderer = TactileRenderer(seed=3, noise_std=2.0)
    frame = renderer.render(RECT, face_at(0.0), EE, False, 1e-3)
    assert frame.shape == (320, 240, 3) and frame.dtype == np.uint8
    assert np.abs(frame - renderer.bare_gel()).mean() < 4.0
    # The noise is per frame, and the run's lighting stays within its +-5 % and +-5 levels.
    second = renderer.render(RECT, face_at(0.0), EE, False, 1e-3)
    assert np.std(frame.astype(float) - second) == pytest.approx(2.0 * np.sqrt(2.0), rel=0.15)
    assert np.abs(renderer.bare_gel() - load_background()).mean() < 0.05 * 255 + 5.0


def test_lighting_varies_between_runs_and_is_seeded() -> None:
    means = [TactileRenderer(seed=seed, noise_std=0.0).bare_gel().mean() for seed in range(6)]
    assert np.ptp(means) > 1.0
    again = TactileRenderer(seed=2, noise_std=2.0), TactileRenderer(seed=2, noise_std=2.0)
    frames = [r.render(RECT, face_at(5.0), EE, True, 1e-3) for r in again]
    np.testing.assert_array_equal(frames[0], frames[1])


@pytest.mark.parametrize(
    ("shape", "pose"),
    [
        (RECT, face_at(0.0)),
        (RECT, touching(np.array([0.05, 0.04]), np.array([1.0, 1.0]) / np.sqrt(2.0), 0.1)),
        (Shape("disc", (0.05,)), touching(np.array([0.05, 0.0]), np.array([1.0, 0.0]), -0.2)),
        (Shape("ellipse", (0.065, 0.045)), touching(np.array([0.0, 0.045]), np.array([0.0, 1.0]), 0.0)),
    ],
    ids=["rect-face", "rect-corner", "disc", "ellipse"],
)
def test_in_contact_frames_change_near_the_contact(shape: Shape, pose: np.ndarray) -> None:
    renderer = TactileRenderer(seed=0, noise_std=2.0)
    change = np.abs(renderer.render(shape, pose, EE, True, 1e-3) - renderer.bare_gel()).mean(axis=-1)
    row, col = ee_point_to_pixel(contact_point_in_ee(shape, pose, EE, renderer.pusher))
    rows, cols = np.indices(change.shape)
    near = np.hypot(rows - row, cols - col) < 3e-3 / tactile_images.PIXEL_M
    assert near.sum() > 100
    # The imprint is a band about a millimetre wide through the contact: strong there ...
    assert np.percentile(change[near], 90) > 25.0
    # ... and nothing behind the apex, where the tip itself is and nothing touches the gel.
    behind = change[-40:].mean()
    assert behind < 4.0
    assert change[near].mean() > 4.0 * behind


def test_deeper_contact_changes_the_image_more() -> None:
    renderer = TactileRenderer(seed=0, noise_std=0.0)
    shallow, deep = (
        np.abs(renderer.render(RECT, face_at(0.0), EE, True, depth) - renderer.bare_gel()).mean()
        for depth in (0.5e-3, 2e-3)
    )
    assert deep > 1.5 * shallow


def test_face_orientation_is_visible() -> None:
    """A face turned by +10 and -10 degrees relative to the sensor: imprints 20 degrees apart."""
    renderer = TactileRenderer(seed=5, noise_std=2.0)
    frames = [renderer.render(RECT, face_at(angle, 0.01), EE, True, 1e-3) for angle in (10.0, -10.0)]
    angles = [principal_axis_deg(np.abs(frame - renderer.bare_gel()).mean(-1)) for frame in frames]
    assert abs(angles[0] - angles[1]) == pytest.approx(20.0, abs=5.0)
    assert abs(angles[0] + angles[1]) < 5.0  # both lie close to the sensor's lateral axis


def test_sliding_along_a_face_is_unobservable() -> None:
    renderer = TactileRenderer(seed=0, noise_std=0.0)
    frames = [renderer.render(RECT, face_at(0.0, offset), EE, True, 1e-3) for offset in (-0.01, 0.01)]
    assert np.abs(frames[0].astype(int) - frames[1]).max() <= 1


def test_bad_backgrounds_are_rejected() -> None:
    with pytest.raises(ValueError, match="uint8"):
        TactileRenderer(background=np.zeros((240, 320, 3), dtype=np.uint8))
    with pytest.raises(FileNotFoundError):
        load_background("/nonexistent/bg.jpg")
