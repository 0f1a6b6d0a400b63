"""The ROS-free estimator fed with records: alignment, keyframes, recovery, model reload."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch

from tactile_estimator.config import load_estimator_config
from tactile_estimator.estimator import Estimator
from tactile_estimator.factors import ObjectModel
from tactile_estimator.metrics import interpolate_poses, pose_errors
from tactile_estimator.networks.tactile import DEFAULT_MODEL_DIR, TactileModel
from tactile_estimator.objects import Shape
from tactile_estimator.sim.pushing import SimulatedRun


@pytest.fixture(scope="module")
def model() -> TactileModel:
    return TactileModel.load()


def make(run: SimulatedRun, model: TactileModel, **overrides: object) -> Estimator:
    config = load_estimator_config(None, overrides)
    return Estimator(config, model, ObjectModel.for_shape(Shape.from_info(run.object_info)))


def feed_interleaved(estimator: Estimator, run: SimulatedRun) -> list:
    events = [(f.stamp_ns, 0, f) for f in run.tactile] + [(s.stamp_ns, 1, s) for s in run.ee_poses]
    events += [(d.stamp_ns, 2, d) for d in run.camera]
    estimates = []
    for _, kind, record in sorted(events, key=lambda e: (e[0], e[1])):
        add = (estimator.add_tactile, estimator.add_ee_pose, estimator.add_camera)[kind]
        estimates += add(record)
    return estimates + estimator.flush()


def truth_errors(run: SimulatedRun, stamps: np.ndarray, poses: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    truth_stamps = np.array([s.stamp_ns for s in run.ground_truth])
    truth = np.array([s.pose for s in run.ground_truth])
    return pose_errors(poses, interpolate_poses(truth_stamps, truth, stamps)[0])


def test_every_frame_becomes_a_step_with_a_covariance(rect_run: SimulatedRun, model: TactileModel) -> None:
    estimator = make(rect_run, model)
    estimates = feed_interleaved(estimator, rect_run)
    assert len(estimates) == len(rect_run.tactile)
    for e in estimates:
        assert np.all(np.linalg.eigvalsh(e.covariance) > 0)
    stamps, poses = estimator.trajectory()
    trans, rot = truth_errors(rect_run, stamps, poses)
    assert np.sqrt(np.mean(trans**2)) < 0.01
    assert np.sqrt(np.mean(rot**2)) < np.radians(5)
    families = {f.family for f in estimator.graph.factors}
    assert {"tactile", "tactile_normal", "pushing", "contact", "ee_prior", "camera", "first_pose"} <= families


def test_contact_read_from_images_matches_the_simulator(rect_run: SimulatedRun, model: TactileModel) -> None:
    estimates = feed_interleaved(make(rect_run, model), rect_run)
    agree = np.mean([e.in_contact == c for e, c in zip(estimates, rect_run.in_contact, strict=True)])
    assert agree > 0.9


def test_estimator_leaves_the_process_threads_alone(rect_run: SimulatedRun, model: TactileModel) -> None:
    """The trainer builds estimators for its runs; its own torch thread count must survive that."""
    before = torch.get_num_threads()
    try:
        torch.set_num_threads(2)
        make(rect_run, model, network_threads=1)
        assert torch.get_num_threads() == 2
    finally:
        torch.set_num_threads(before)


def test_indeterminate_system_is_recovered_and_reported(rect_run: SimulatedRun, model: TactileModel) -> None:
    """Without a first-pose prior or camera the first object pose is unconstrained: gtsam fails, we re-initialise."""
    estimator = make(rect_run, model, disabled_factors=["first_pose", "camera"],
                     initial_object_pose=list(map(float, rect_run.ground_truth[0].pose)))
    estimates = feed_interleaved(estimator, rect_run)
    assert estimator.events["reinitialised"] >= 1
    assert "reinitialised" in estimates[0].events
    assert len(estimates) == len(rect_run.tactile)
    assert all(np.all(np.isfinite(e.pose)) for e in estimates)


def test_reload_model_keeps_the_graph(rect_run: SimulatedRun, model: TactileModel) -> None:
    estimator = make(rect_run, model)
    half = len(rect_run.tactile) // 2
    stop = rect_run.tactile[half].stamp_ns
    events = sorted([(f.stamp_ns, 0, f) for f in rect_run.tactile] + [(s.stamp_ns, 1, s) for s in rect_run.ee_poses]
                    + [(d.stamp_ns, 2, d) for d in rect_run.camera], key=lambda e: (e[0], e[1]))
    produced = []
    reloaded = False
    for stamp, kind, record in events:
        if not reloaded and stamp > stop:
            factors_before = len(estimator.graph)
            estimator.reload_model(DEFAULT_MODEL_DIR)
            reloaded = True
            assert len(estimator.graph) == factors_before
        produced += (estimator.add_tactile, estimator.add_ee_pose, estimator.add_camera)[kind](record)
    produced += estimator.flush()
    assert estimator.events["model_reloaded"] == 1
    assert [e.step for e in produced] == list(range(len(rect_run.tactile)))
    assert estimator.events["reinitialised"] == 0


def test_the_estimator_leaves_the_collector_alone(rect_run: SimulatedRun, model: TactileModel) -> None:
    """gc.freeze is process-wide: the live process takes it (test_live), a library class never does."""
    import gc

    gc.unfreeze()
    estimator = make(rect_run, model)
    feed_interleaved(estimator, rect_run)
    assert gc.get_freeze_count() == 0


def test_converged_trajectory_is_the_graphs_batch_optimum(rect_run: SimulatedRun, model: TactileModel) -> None:
    """trajectory(converge=N) re-solves the whole graph: it reaches GTSAM's batch Levenberg-Marquardt
    optimum from the same start, never has a higher energy than the online estimate, and leaves the
    estimator's own state alone."""
    import gtsam

    from tactile_estimator.backends.isam2 import gtsam_key, pose_array, to_gtsam
    from tactile_estimator.factors import object_key

    estimator = make(rect_run, model)
    feed_interleaved(estimator, rect_run)
    online = estimator.values()
    converged = estimator.converged_values(5)
    assert all(np.array_equal(v, online[k]) for k, v in estimator.values().items()), "the online state is kept"
    graph = estimator.graph
    assert graph.energy(converged) <= graph.energy(online) + 1e-9
    factors, values = gtsam.NonlinearFactorGraph(), gtsam.Values()
    for factor in graph.factors:
        factors.add(to_gtsam(factor))
    for key in graph.initial:
        values.insert(gtsam_key(key), gtsam.Pose2(*map(float, online[key])))
    params = gtsam.LevenbergMarquardtParams()
    params.setRelativeErrorTol(1e-12)
    params.setAbsoluteErrorTol(1e-12)
    optimum = gtsam.LevenbergMarquardtOptimizer(factors, values, params).optimize()
    best = {k: pose_array(optimum.atPose2(gtsam_key(k))) for k in graph.initial}
    assert graph.energy(converged) == pytest.approx(graph.energy(best), rel=1e-6)
    stamps, poses = estimator.trajectory(converge=5)
    expected = np.array([best[object_key(s.index)] for s in estimator.steps])
    np.testing.assert_allclose(poses, expected, atol=1e-6)
    assert len(stamps) == len(estimator.steps)


def test_frames_from_before_a_late_first_detection_are_dropped(rect_run: SimulatedRun, model: TactileModel) -> None:
    """The arm hid the object while it pushed: the first detection comes at frame 60. The graph
    starts there, at the pose it was seen at; the frames before it are dropped, not seeded with a
    pose from two seconds later under the detection's few-millimetre σ."""
    late = rect_run.tactile[60].stamp_ns
    run = dataclasses.replace(rect_run, camera=[d for d in rect_run.camera if d.stamp_ns >= late])
    first = run.camera[0].stamp_ns
    estimator = make(run, model)
    estimates = feed_interleaved(estimator, run)
    assert estimates[0].stamp_ns >= first - estimator.config.camera_max_offset_s * 1e9
    before = sum(f.stamp_ns < first - estimator.config.camera_max_offset_s * 1e9 for f in run.tactile)
    assert before >= 60 and estimator.dropped["no_initial_pose"] == before
    stamps, poses = estimator.trajectory()
    trans, rot = truth_errors(run, stamps, poses)
    assert trans[0] < 0.006 and np.sqrt(np.mean(trans**2)) < 0.006  # the detection's noise, not the push's way
