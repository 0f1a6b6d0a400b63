"""The camera package's AprilTag detector on frames from the simulated camera (sim.camera)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from tactile_estimator.camera import AprilTagDetector, CameraInfo, DetectorOptions, TagMount, look_at
from tactile_estimator.camera.model import inverse, planar, project, transform
from tactile_estimator.objects import DEFAULT_SIZES, SHAPES, Shape
from tactile_estimator.records import CameraDetection
from tactile_estimator.sim.camera import CameraOptions, CameraRenderer, render_run
from tactile_estimator.sim.pushing import simulate_run

# Measured over 135 arm-free frames per view (3 seeds x 3 shapes x 15 poses): worst errors overhead
# 0.12 mm / 0.47°, oblique 0.46 mm / 1.33°; the tolerances leave about twice that.
TOLERANCE_MM, TOLERANCE_DEG = 1.0, 2.0
RECT = Shape("rect", DEFAULT_SIZES["rect"])


def _error(pose: np.ndarray, truth: np.ndarray) -> tuple[float, float]:
    e = np.asarray(pose) - truth
    return 1e3 * float(np.hypot(e[0], e[1])), abs(math.degrees(math.remainder(float(e[2]), 2.0 * math.pi)))


def _setup(view: str = "overhead", seed: int = 0, **options) -> tuple[CameraRenderer, AprilTagDetector]:
    renderer = CameraRenderer(CameraOptions(view=view, **options), np.random.default_rng(seed))
    return renderer, AprilTagDetector(renderer.world_T_camera, renderer.options.mount)


@pytest.mark.parametrize("view", ["overhead", "oblique"])
def test_render_detect_round_trip(view: str) -> None:
    renderer, detector = _setup(view)
    rng = np.random.default_rng(7)
    mahalanobis = []
    for kind in SHAPES:
        for _ in range(5):
            truth = np.array([*rng.uniform(-0.12, 0.12, 2), rng.uniform(-math.pi, math.pi)])
            frame = renderer.render(Shape(kind, DEFAULT_SIZES[kind]), truth, None, stamp_ns=42)
            assert frame.image.shape == (480, 640) and frame.image.dtype == np.uint8 and frame.tag_visible == 1.0
            result = detector.detect(frame.image, renderer.info, frame.stamp_ns)
            assert result.ok, result.message
            assert isinstance(result.detection, CameraDetection) and result.detection.stamp_ns == 42
            assert result.detection.frame_id == "world"
            mm, deg = _error(result.detection.pose, truth)
            assert mm < TOLERANCE_MM and deg < TOLERANCE_DEG, (kind, truth, mm, deg)
            cov = result.detection.covariance
            assert cov.shape == (3, 3) and np.allclose(cov, cov.T) and np.all(np.linalg.eigvalsh(cov) > 0.0)
            np.testing.assert_allclose(result.corners_px, frame.tag_corners_px, atol=2.0)  # measured: 1.6 px
            e = result.detection.pose - truth
            e[2] = math.remainder(float(e[2]), 2.0 * math.pi)
            mahalanobis.append(float(e @ np.linalg.solve(cov, e)))
    assert np.mean(mahalanobis) < 3.0  # the chi-square(3) mean: the covariance does not understate the error


def test_rgb8_frames_are_detected_like_mono8() -> None:
    renderer, detector = _setup()
    truth = np.array([0.03, -0.02, 0.4])
    image = renderer.render(RECT, truth, None).image
    mono = detector.detect(image, renderer.info)
    rgb = detector.detect(np.repeat(image[:, :, None], 3, axis=2), renderer.info)
    assert mono.ok and rgb.ok
    np.testing.assert_allclose(rgb.detection.pose, mono.detection.pose, atol=1e-9)


def test_rendering_is_deterministic_given_the_generator() -> None:
    truth, ee = np.array([0.0, 0.01, 0.2]), np.array([0.09, 0.0, math.pi])
    a = CameraRenderer(rng=np.random.default_rng(3)).render(RECT, truth, ee).image
    b = CameraRenderer(rng=np.random.default_rng(3)).render(RECT, truth, ee).image
    c = CameraRenderer(rng=np.random.default_rng(4)).render(RECT, truth, ee).image
    assert np.array_equal(a, b) and not np.array_equal(a, c)


def test_arm_over_the_tag_hides_it_and_the_frame_is_dropped_with_a_reason() -> None:
    renderer, detector = _setup()
    truth = np.array([0.0, 0.0, 0.3])
    # The wrist spans 7 cm behind the end effector: with the end effector 3.5 cm past the object's
    # centre, along its own x, the wrist is right over the tag.
    ee = planar(truth) @ np.array([0.035, 0.0, 0.0, 1.0])
    frame = renderer.render(RECT, truth, np.array([ee[0], ee[1], truth[2]]))
    assert frame.tag_visible == 0.0
    result = detector.detect(frame.image, renderer.info)
    assert result.detection is None and result.reason == "no_tag" and "no 36h11 tag" in result.message
    clear = renderer.render(RECT, truth, np.array([0.25, 0.0, math.pi]))
    assert clear.tag_visible == 1.0 and detector.detect(clear.image, renderer.info).ok


def test_render_run_draws_a_simulated_run_at_the_camera_rate() -> None:
    run = simulate_run(RECT, steps=45, seed=11)
    renderer, detector = _setup(seed=11)
    frames = render_run(run, renderer, rate_hz=15.0)
    truth = {g.stamp_ns: g.pose for g in run.ground_truth}
    assert len(frames) == 23  # 1.5 s at 15 Hz, both ends included
    assert all(f.stamp_ns in truth for f in frames) and all(np.diff([f.stamp_ns for f in frames]) > 0)
    for frame in frames:
        result = detector.detect(frame.image, renderer.info, frame.stamp_ns)
        if frame.tag_visible == 1.0:
            assert result.ok, result.message
        if result.ok:
            mm, deg = _error(result.detection.pose, truth[frame.stamp_ns])
            assert mm < TOLERANCE_MM and deg < TOLERANCE_DEG
    with pytest.raises(ValueError, match="camera rate"):
        render_run(run, renderer, rate_hz=0.0)


def test_tags_of_other_ids_are_rejected() -> None:
    renderer = CameraRenderer(CameraOptions(mount=TagMount(tag_id=5)), np.random.default_rng(0))
    detector = AprilTagDetector(renderer.world_T_camera, TagMount(tag_id=0))
    result = detector.detect(renderer.render(RECT, np.zeros(3), None).image, renderer.info)
    assert result.detection is None and result.reason == "wrong_id"
    assert result.rejected == ((5, "wrong_id"),) and "other ids (5)" in result.message


def test_tags_too_small_in_pixels_are_rejected() -> None:
    renderer, _ = _setup()
    frame = renderer.render(RECT, np.zeros(3), None)
    side = float(np.min(np.linalg.norm(frame.tag_corners_px - np.roll(frame.tag_corners_px, -1, axis=0), axis=1)))
    strict = AprilTagDetector(renderer.world_T_camera, renderer.options.mount, DetectorOptions(min_side_px=side + 5))
    result = strict.detect(frame.image, renderer.info)
    assert result.detection is None and result.reason == "too_small" and result.rejected == ((0, "too_small"),)
    lenient = AprilTagDetector(renderer.world_T_camera, renderer.options.mount, DetectorOptions(min_side_px=side - 5))
    assert lenient.detect(frame.image, renderer.info).ok


def test_bad_images_and_intrinsics_are_drops_with_reasons() -> None:
    renderer, detector = _setup()
    image = renderer.render(RECT, np.zeros(3), None).image
    info = renderer.info
    cases = {
        "size_mismatch": (image[:400], info),
        "bad_image": (image.astype(np.float32), info),
        "bad_intrinsics": (image, CameraInfo(640, 480, np.where(np.eye(3) == 1, np.nan, info.K), info.D)),
    }
    bad_fx = info.K.copy()
    bad_fx[0, 0] = -1.0
    for reason, (img, cam) in cases.items():
        result = detector.detect(img, cam)
        assert result.detection is None and result.reason == reason and result.message
    assert detector.detect(np.zeros((480, 640, 4), np.uint8), info).reason == "bad_image"
    assert detector.detect(None, info).reason == "bad_image"
    assert "fx=-1" in detector.detect(image, CameraInfo(640, 480, bad_fx, info.D)).message
    assert detector.detect(image, CameraInfo(640, 480, info.K, np.zeros(3))).reason == "bad_intrinsics"
    assert "400" in detector.detect(image[:400], info).message


def test_edge_on_and_degenerate_corners_are_drops() -> None:
    info = CameraInfo.from_fov(640, 480, 40.0)
    mount = TagMount()
    world_T_camera = look_at([0.0, 0.0, 0.8], [0.0, 0.0, 0.0])
    detector = AprilTagDetector(world_T_camera, mount)
    # A tag tilted 85° about its x axis is seen almost edge-on.
    c, s = math.cos(math.radians(85.0)), math.sin(math.radians(85.0))
    tilted = transform(np.array([[1.0, 0.0, 0.0], [0.0, c, -s], [0.0, s, c]]), np.array([0.0, 0.0, 0.03]))
    corners = project(info.K, inverse(world_T_camera) @ tilted, detector.tag_points)
    result = detector.pose_from_corners(corners, info)
    assert result.detection is None and result.reason == "edge_on" and result.view_angle_deg > 75.0
    collinear = np.array([[300.0, 240.0], [320.0, 240.0], [340.0, 240.0], [360.0, 240.0]])
    assert detector.pose_from_corners(collinear, info).reason == "edge_on"
    assert detector.pose_from_corners(np.full((4, 2), 320.0), info).reason == "edge_on"
    assert detector.pose_from_corners(np.full((4, 2), np.nan), info).reason == "pnp_failed"


def test_wrong_extrinsics_make_a_pose_off_the_table_a_drop() -> None:
    renderer, _ = _setup()
    image = renderer.render(RECT, np.array([0.05, 0.02, 1.0]), None).image
    c, s = math.cos(math.radians(40.0)), math.sin(math.radians(40.0))
    tilted = renderer.world_T_camera @ transform(np.array([[1.0, 0.0, 0.0], [0.0, c, -s], [0.0, s, c]]), np.zeros(3))
    result = AprilTagDetector(tilted, renderer.options.mount).detect(image, renderer.info)
    assert result.detection is None and result.reason == "not_upright" and "extrinsics" in result.message


def test_configuration_errors_raise_one_line_value_errors() -> None:
    with pytest.raises(ValueError, match="proper rotation"):
        AprilTagDetector(np.diag([1.0, 1.0, -1.0, 1.0]))
    with pytest.raises(ValueError, match="36h11 id"):
        AprilTagDetector(np.eye(4), TagMount(tag_id=600))
    with pytest.raises(ValueError, match="odd"):
        AprilTagDetector(np.eye(4), options=DetectorOptions(adaptive_window_px=12))
    with pytest.raises(ValueError, match="camera view"):
        CameraOptions(view="sideways")


def _exact_covariance(distance: float, view_angle_deg: float) -> np.ndarray:
    """The detector's covariance from noise-free corners, the camera on a circle around the tag."""
    info, mount = CameraInfo.from_fov(640, 480, 40.0), TagMount()
    a = math.radians(view_angle_deg)
    tag = np.array([0.0, 0.0, 0.03])
    world_T_camera = look_at(tag + distance * np.array([0.0, math.sin(a), math.cos(a)]), tag)
    detector = AprilTagDetector(world_T_camera, mount)
    corners = project(info.K, inverse(world_T_camera) @ planar(np.array([0.0, 0.0, 0.3])) @ mount.object_T_tag,
                      detector.tag_points)
    result = detector.pose_from_corners(corners, info)
    assert result.ok, result.message
    assert result.distance_m == pytest.approx(distance) and result.view_angle_deg == pytest.approx(view_angle_deg,
                                                                                                   abs=1e-6)
    mm, deg = _error(result.detection.pose, np.array([0.0, 0.0, 0.3]))
    assert mm < 1e-3 and deg < 1e-4
    return result.detection.covariance


def test_covariance_grows_with_distance_and_viewing_angle() -> None:
    by_distance = [_exact_covariance(d, 0.0) for d in (0.4, 0.8, 1.2, 1.6)]
    by_angle = [_exact_covariance(0.8, a) for a in (0.0, 20.0, 40.0, 60.0, 70.0)]
    for series in (by_distance, by_angle):
        translation = [np.trace(c[:2, :2]) for c in series]
        rotation = [c[2, 2] for c in series]
        assert np.all(np.diff(translation) > 0.0) and np.all(np.diff(rotation) > 0.0)
    floor = DetectorOptions()
    assert by_distance[0][0, 0] > floor.floor_translation_m**2 and by_distance[0][2, 2] > floor.floor_rotation_rad**2
