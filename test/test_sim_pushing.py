"""Quasi-static pushing physics and simulated runs: determinism, mechanics, sensors."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from tactile_estimator import geometry as se2
from tactile_estimator.cli import main
from tactile_estimator.objects import DEFAULT_SIZES, SHAPES, Pusher, Shape
from tactile_estimator.sim.pushing import (
    FIRST_STAMP_NS,
    FRICTION_RANGE,
    LIMIT_SURFACE_SCALE,
    SUBSTEP_HZ,
    ContactState,
    SensorNoise,
    SimulatedRun,
    quasi_static_step,
    simulate_run,
)
from tactile_estimator.sim.tactile_images import TactileRenderer

DT = 1.0 / SUBSTEP_HZ
RECT = Shape("rect", (0.10, 0.08))
DISC = Shape("disc", (0.05,))


def push_straight(
    shape: Shape, ee: np.ndarray, velocity: tuple[float, float], seconds: float, mu: float
) -> tuple[list[np.ndarray], list[np.ndarray], list[ContactState]]:
    """Push the object (starting at the origin) with the ee moving at a constant world velocity."""
    c_ls = shape.limit_surface_c()
    objects, ees, states = [np.zeros(3)], [np.asarray(ee, dtype=float)], []
    for _ in range(round(seconds * SUBSTEP_HZ)):
        ee_next = ees[-1] + np.array([velocity[0] * DT, velocity[1] * DT, 0.0])
        moved, state = quasi_static_step(shape, objects[-1], ees[-1], ee_next, DT, c_ls, mu)
        objects.append(moved)
        ees.append(ee_next)
        states.append(state)
    return objects, ees, states


def tangential_slip(
    shape: Shape, objects: list[np.ndarray], ees: list[np.ndarray], states: list[ContactState]
) -> np.ndarray:
    """Tangential speed of the tip relative to the object's surface at the contact, from the poses."""
    slips = []
    for k, state in enumerate(states):
        if not state.in_contact:
            continue
        p_ee = se2.transform_point_inverse(se2.between(objects[k], ees[k]), state.point)
        tip_velocity = (se2.transform_point(ees[k + 1], p_ee) - se2.transform_point(ees[k], p_ee)) / DT
        object_point = [se2.transform_point(objects[k + i], state.point) for i in (0, 1)]
        object_velocity = (object_point[1] - object_point[0]) / DT
        c, s = np.cos(objects[k][2]), np.sin(objects[k][2])
        tangent = np.array([[c, -s], [s, c]]) @ np.array([-state.normal[1], state.normal[0]])
        slips.append(tangent @ (tip_velocity - object_velocity))
    return np.array(slips)


def tip_gaps(shape: Shape, run: SimulatedRun) -> np.ndarray:
    objects = np.array([s.pose for s in run.ground_truth])
    ees = np.array([s.pose for s in run.ee_ground_truth])
    centres = se2.transform_point_inverse(objects, se2.transform_point(ees, Pusher().centre_in_ee()))
    return shape.sdf(centres)[0] - Pusher().radius


@pytest.fixture(scope="module")
def runs() -> dict[str, SimulatedRun]:
    """One 300-step run per shape; noiseless images keep them quick, ee at 1 kHz gives 10 000 samples."""
    return {
        kind: simulate_run(
            Shape(kind, DEFAULT_SIZES[kind]), 300, seed=11, ee_rate_hz=1000.0, renderer=TactileRenderer(noise_std=0.0)
        )
        for kind in SHAPES
    }


def test_same_seed_same_run_other_seed_other_run() -> None:
    a, b, c = (simulate_run(RECT, 40, seed) for seed in (7, 7, 8))
    for first, second in ((a.tactile, b.tactile), (a.ee_poses, b.ee_poses), (a.ground_truth, b.ground_truth)):
        assert [x.stamp_ns for x in first] == [x.stamp_ns for x in second]
    np.testing.assert_array_equal(np.stack([f.image for f in a.tactile]), np.stack([f.image for f in b.tactile]))
    for stream in ("ee_poses", "ground_truth", "ee_ground_truth", "camera"):
        first, second = getattr(a, stream), getattr(b, stream)
        np.testing.assert_array_equal(np.stack([s.pose for s in first]), np.stack([s.pose for s in second]))
    assert a.params == b.params and a.in_contact == b.in_contact
    assert a.params["mu"] != c.params["mu"]
    assert not np.allclose(np.stack([s.pose for s in a.ground_truth]), np.stack([s.pose for s in c.ground_truth]))
    assert not np.array_equal(a.tactile[0].image, c.tactile[0].image)


def test_pushing_a_disc_through_its_centre_translates_it() -> None:
    objects, _, states = push_straight(DISC, np.array([-0.051, 0.0, 0.0]), (0.03, 0.0), 1.0, mu=0.8)
    final = objects[-1]
    assert final[0] == pytest.approx(0.029, abs=3e-4)  # the first millimetre closes the gap
    assert abs(final[1]) < 1e-9 and abs(final[2]) < 1e-9
    assert {s.mode for s in states} == {"none", "stick"}


@pytest.mark.parametrize("side", [1.0, -1.0])
def test_pushing_a_rect_off_centre_turns_it_away(side: float) -> None:
    """Pushing the -x face in +x above the centre gives a negative moment: clockwise (theta < 0)."""
    objects, _, states = push_straight(RECT, np.array([-0.05, side * 0.02, 0.0]), (0.03, 0.0), 1.0, mu=0.8)
    assert all(s.in_contact for s in states)
    assert objects[-1][0] > 0.01
    assert -side * objects[-1][2] > 0.1


def test_low_friction_slides_high_friction_sticks() -> None:
    """Pushing the -x face through its centre at 40 degrees off the normal."""
    velocity = 0.03 * np.array([np.cos(np.deg2rad(40.0)), np.sin(np.deg2rad(40.0))])
    ee = np.array([-0.05, 0.0, 0.0])
    slippery = push_straight(RECT, ee, tuple(velocity), 0.5, mu=0.1)
    grippy = push_straight(RECT, ee, tuple(velocity), 0.5, mu=0.8)
    assert {s.mode for s in slippery[2]} == {"slide"}
    assert {s.mode for s in grippy[2]} == {"stick"}
    slip_low, slip_high = tangential_slip(RECT, *slippery), tangential_slip(RECT, *grippy)
    # Measured from the poses: the tip slides along the face (in the push's tangential direction) ...
    assert np.all(slip_low > 0.005)
    np.testing.assert_allclose(slip_low, [s.slip for s in slippery[2]], rtol=0.02)
    # ... or the face's material point under the tip moves with it.
    assert np.abs(slip_high).max() < 1e-4
    assert grippy[0][-1][2] < slippery[0][-1][2] < 0.0  # the tangential push turns the box clockwise


def test_tip_does_not_move_objects_it_does_not_touch() -> None:
    objects, _, states = push_straight(RECT, np.array([-0.06, 0.0, 0.0]), (0.0, 0.03), 0.5, mu=0.5)
    assert not any(s.in_contact for s in states)
    np.testing.assert_array_equal(objects[-1], np.zeros(3))


@pytest.mark.parametrize("kind", SHAPES)
def test_tip_never_penetrates(runs: dict[str, SimulatedRun], kind: str) -> None:
    gaps = tip_gaps(Shape(kind, DEFAULT_SIZES[kind]), runs[kind])
    assert gaps.min() >= -2e-4
    in_contact = np.array(runs[kind].in_contact)
    assert np.abs(gaps[in_contact]).max() < 1e-3  # and frames flagged in contact do touch


@pytest.mark.parametrize("kind", SHAPES)
def test_contact_fraction_and_stamps(runs: dict[str, SimulatedRun], kind: str) -> None:
    run = runs[kind]
    assert 0.4 <= np.mean(run.in_contact) <= 0.9
    assert len(run.tactile) == len(run.ground_truth) == len(run.ee_ground_truth) == len(run.in_contact) == 300
    stamps = [f.stamp_ns for f in run.tactile]
    assert stamps[0] == FIRST_STAMP_NS and all(isinstance(s, int) for s in stamps)
    assert np.diff(stamps) == pytest.approx(1e9 / 30.0, abs=1)
    assert [s.stamp_ns for s in run.ground_truth] == stamps == [s.stamp_ns for s in run.ee_ground_truth]
    assert run.ee_poses[0].stamp_ns <= stamps[0] and run.ee_poses[-1].stamp_ns >= stamps[-1]
    assert {f.image.shape for f in run.tactile} == {(320, 240, 3)}
    params = run.params
    ratio = params["c_ls"] / params["c_ls_nominal"]
    assert LIMIT_SURFACE_SCALE[0] <= ratio <= LIMIT_SURFACE_SCALE[1]
    assert FRICTION_RANGE[0] <= params["mu"] <= FRICTION_RANGE[1]
    assert run.object_info.shape == kind


def test_runs_both_stick_and_slide(runs: dict[str, SimulatedRun]) -> None:
    assert 0.05 < runs["rect"].params["slide_fraction"] < 0.95


def test_camera_drops_frames_and_reports_its_noise(runs: dict[str, SimulatedRun]) -> None:
    run = runs["rect"]
    assert 1.0 - len(run.camera) / run.params["camera_frames"] >= 0.3
    assert run.camera[0].stamp_ns == FIRST_STAMP_NS
    noise = SensorNoise()
    expected = np.diag([noise.camera_translation_m**2, noise.camera_translation_m**2, noise.camera_rotation_rad**2])
    for detection in run.camera:
        np.testing.assert_allclose(detection.covariance, expected)


def test_heavier_dropout_drops_more() -> None:
    run = simulate_run(DISC, 90, 3, noise=SensorNoise(camera_dropout=0.8), renderer=TactileRenderer(noise_std=0.0))
    assert 1.0 - len(run.camera) / run.params["camera_frames"] >= 0.8


def test_first_detection_only_keeps_the_earliest_detection() -> None:
    default, first_only = (simulate_run(RECT, 90, 5, camera_first_only=only) for only in (False, True))
    assert len(default.camera) > 1 and len(first_only.camera) == 1
    kept, earliest = first_only.camera[0], default.camera[0]
    assert kept.stamp_ns == earliest.stamp_ns == FIRST_STAMP_NS
    np.testing.assert_array_equal(kept.pose, earliest.pose)
    np.testing.assert_array_equal(kept.covariance, earliest.covariance)
    np.testing.assert_array_equal(np.stack([s.pose for s in first_only.ground_truth]),
                                  np.stack([s.pose for s in default.ground_truth]))
    assert first_only.params["camera_first_only"] and not default.params["camera_first_only"]
    assert first_only.params["camera_frames"] == default.params["camera_frames"]


def test_camera_rate_scales_the_detections() -> None:
    """Four times the rate, four times the frames; the dropouts keep the detections roughly in proportion."""
    slow, fast = (simulate_run(RECT, 300, 0, camera_rate_hz=rate, renderer=TactileRenderer(noise_std=0.0))
                  for rate in (5.0, 20.0))
    assert fast.params["camera_frames"] == 4 * slow.params["camera_frames"] == 200
    assert np.diff([d.stamp_ns for d in fast.camera]).min() >= 50_000_000
    assert 3.0 < len(fast.camera) / len(slow.camera) < 5.0


def test_simulate_cli_takes_camera_options(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["simulate", "--out", str(tmp_path), "--steps", "60", "--camera-rate", "4",
                 "--camera-first-only"]) == 0
    assert "camera detections 1" in capsys.readouterr().out
    for rate in ("0", "-1", "nan", "inf"):
        assert main(["simulate", "--out", str(tmp_path), "--camera-rate", rate]) == 2
        error = capsys.readouterr().err
        assert "--camera-rate" in error and error.count("\n") == 1
    with pytest.raises(ValueError, match="camera_rate_hz"):
        simulate_run(RECT, 10, 1, camera_rate_hz=float("nan"))


def test_ee_noise_has_the_configured_spread(runs: dict[str, SimulatedRun]) -> None:
    """Second differences of the 1 kHz stream cancel the smooth motion and leave noise * sqrt(6)."""
    poses = np.array([s.pose for s in runs["rect"].ee_poses])
    assert len(poses) >= 3000
    second = poses[2:] - 2.0 * poses[1:-1] + poses[:-2]
    second[:, 2] = se2.wrap_angle(second[:, 2])
    robust_std = 1.4826 * np.median(np.abs(second - np.median(second, axis=0)), axis=0) / np.sqrt(6.0)
    noise = SensorNoise()
    assert robust_std[:2] == pytest.approx([noise.ee_translation_m] * 2, rel=0.3)
    assert robust_std[2] == pytest.approx(noise.ee_rotation_rad, rel=0.3)


def test_invalid_arguments_are_rejected() -> None:
    with pytest.raises(ValueError, match="steps"):
        simulate_run(RECT, 0, 1)
    with pytest.raises(ValueError, match="camera_rate_hz"):
        simulate_run(RECT, 10, 1, camera_rate_hz=0.0)
    with pytest.raises(ValueError, match="camera_dropout"):
        SensorNoise(camera_dropout=1.5)
