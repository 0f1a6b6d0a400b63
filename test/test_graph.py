"""The graph policy: keyframes, the factors of a step, the tactile window, and camera detections to steps."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch
from test_estimator import feed_interleaved, make

from tactile_estimator.config import KeyframeConfig
from tactile_estimator.factors.pushing import MODE_STEPS
from tactile_estimator.graph import (
    AT_REST_SIGMAS,
    TRANSITION_SIGMAS,
    KeyframePolicy,
    Step,
    match_camera,
    tactile_partners,
)
from tactile_estimator.networks.tactile import TactileModel
from tactile_estimator.records import CameraDetection
from tactile_estimator.sim.pushing import SimulatedRun

MS = 1_000_000


@pytest.fixture(scope="module")
def model() -> TactileModel:
    return TactileModel.load()


def _step(index: int, episode: int | None, coded: bool = True, stamp_ns: int = 0) -> Step:
    return Step(index, stamp_ns, np.zeros(3), episode is not None, episode, np.zeros(4) if coded else None)


def test_keyframes_by_count_or_by_motion() -> None:
    every_third = KeyframePolicy(KeyframeConfig(every_n_frames=3))
    first = _step(0, None)
    assert every_third.keep(np.zeros(3), None)  # the first frame always
    assert [every_third.keep(np.zeros(3), first) for _ in range(6)] == [False, False, True, False, False, True]
    assert not every_third.keep(np.zeros(3), first)
    every_third.restart()  # a graph started afresh at the last step: count from it
    assert [every_third.keep(np.zeros(3), first) for _ in range(3)] == [False, False, True]
    by_motion = KeyframePolicy(KeyframeConfig(every_n_frames=100, min_translation_m=0.01, min_rotation_rad=0.1))
    assert by_motion.keep(np.zeros(3), None)
    assert not by_motion.keep(np.array([0.005, 0.0, 0.05]), first)
    assert by_motion.keep(np.array([0.006, 0.008, 0.0]), first)  # 1 cm from the last step
    assert by_motion.keep(np.array([0.0, 0.0, -0.1]), first)  # a tenth of a radian


def test_a_step_pairs_with_the_coded_steps_of_its_window_in_its_contact_episode() -> None:
    steps = [_step(0, 0), _step(1, 0, coded=False), _step(2, 0), _step(3, None), _step(4, 1), _step(5, 1),
             _step(6, 1), _step(7, 1)]
    assert [p.index for p in tactile_partners(steps, steps[7], [1, 2, 4, 8])] == [6, 5]  # 3 is out of contact
    assert [p.index for p in tactile_partners(steps, steps[2], [1, 2, 4])] == [0]  # 1 has no code, -2 is none
    assert tactile_partners(steps, steps[4], [1, 2, 4]) == []  # the episode's first step


def test_a_detection_goes_to_the_nearest_step_or_waits_for_a_later_one() -> None:
    stamps = [100 * MS, 133 * MS, 166 * MS]
    near, far_between, late, too_late = (CameraDetection(t * MS, np.zeros(3)) for t in (140, 290, 180, 400))
    early = CameraDetection(10 * MS, np.zeros(3))
    matched, waiting, unmatched = match_camera([near, early, late, too_late], stamps, 50 * MS, final=False)
    assert matched == [(near, 1)] and unmatched == [early]
    assert waiting == [late, too_late]  # after the last step: a later step may be nearer
    matched, waiting, unmatched = match_camera([late, too_late, far_between], stamps, 50 * MS, final=True)
    assert matched == [(late, 2)] and waiting == [] and unmatched == [too_late, far_between]


def test_keyframe_policy_keeps_every_nth_frame(rect_run: SimulatedRun, model: TactileModel) -> None:
    estimator = make(rect_run, model, **{"keyframe.every_n_frames": 3})
    estimates = feed_interleaved(estimator, rect_run)
    assert len(estimates) == len(range(0, len(rect_run.tactile), 3))
    assert estimator.skipped_frames == len(rect_run.tactile) - len(estimates)


@pytest.mark.parametrize("family", ["tactile", "tactile_normal", "pushing", "contact", "camera"])
def test_disabled_family_adds_no_factor(rect_run: SimulatedRun, model: TactileModel, family: str) -> None:
    estimator = make(rect_run, model, disabled_factors=[family])
    estimates = feed_interleaved(estimator, rect_run)
    assert len(estimates) == len(rect_run.tactile)
    assert family not in {f.family for f in estimator.graph.factors}


def test_object_links_across_steps_follow_contact(rect_run: SimulatedRun, model: TactileModel) -> None:
    """Pushing within contact, at rest out of it, and the looser at-rest link where contact is made or broken."""
    estimator = make(rect_run, model)
    feed_interleaved(estimator, rect_run)
    links = {f.keys[1][1]: f for f in estimator.graph.factors if f.family in ("pushing", "at_rest")}
    contact = [s.in_contact for s in estimator.steps]
    assert sorted(links) == list(range(1, len(contact)))
    transitions = 0
    for k, link in links.items():
        if contact[k] and contact[k - 1]:
            assert link.family == "pushing"
        elif contact[k] != contact[k - 1]:
            transitions += 1
            assert link.family == "at_rest" and np.array_equal(link.sigmas, TRANSITION_SIGMAS)
        else:
            assert link.family == "at_rest" and np.array_equal(link.sigmas, AT_REST_SIGMAS)
    assert transitions >= 2  # the run makes and breaks contact


@pytest.mark.parametrize("corner_sigma", [[], [0.07]])
@pytest.mark.parametrize("disabled", [[], ["tactile"]])
def test_each_contact_step_gets_one_contact_normal_factor_a_corner_its_own_sigma(
        rect_run: SimulatedRun, model: TactileModel, disabled: list[str], corner_sigma: list[float]) -> None:
    """The normal factor needs no pair factor beside it; frames the head calls a corner get the corner
    σ, or, from a model without one, no factor."""
    weights = dataclasses.replace(model.weights, tactile_normal_corner=corner_sigma)
    estimator = make(rect_run, TactileModel(model.arch, weights, model.net), disabled_factors=disabled)
    feed_interleaved(estimator, rect_run)
    normals = [f for f in estimator.graph.factors if f.family == "tactile_normal"]
    normal_steps = [f.keys[0][1] for f in normals]
    coded = {s.index for s in estimator.steps if s.code is not None}
    assert normal_steps == sorted(set(normal_steps)) and set(normal_steps) <= coded
    assert estimator.normal_at_corner > 20  # this run pushes a corner, then a face
    at_corner = [f for f in normals if f.sigmas.tolist() == corner_sigma]
    at_face = [f for f in normals if f.sigmas.tolist() == model.weights.tactile_normal]
    assert len(at_face) > 20 and len(at_face) + len(at_corner) == len(normals)
    assert len(at_corner) == (estimator.normal_at_corner if corner_sigma else 0)
    assert len(at_face) + estimator.normal_at_corner == len(coded)


def test_frames_the_normal_head_cannot_read_are_counted_and_the_estimate_goes_on(rect_run: SimulatedRun) -> None:
    broken = TactileModel.load()
    with torch.no_grad():
        broken.net.normal_head[-1].bias.fill_(float("nan"))
    estimator = make(rect_run, broken)
    estimates = feed_interleaved(estimator, rect_run)
    assert len(estimates) == len(rect_run.tactile)
    coded = sum(s.code is not None for s in estimator.steps)
    assert coded > 0 and estimator.dropped["unreadable_tactile_frame"] == coded
    assert "tactile_normal" not in {f.family for f in estimator.graph.factors}
    assert all(np.isfinite(e.pose).all() for e in estimates)


def test_pushing_factors_carry_the_mean_pusher_motion_of_their_episode(rect_run: SimulatedRun,
                                                                       model: TactileModel) -> None:
    """The motion cone's mode is decided on the measured end-effector's mean motion over the last
    MODE_STEPS steps, never reaching back before the contact episode began."""
    estimator = make(rect_run, model, pushing_friction=0.3)
    feed_interleaved(estimator, rect_run)
    steps = estimator.steps
    starts = {}
    for s in steps:
        if s.in_contact:
            starts.setdefault(s.episode, s.index)
    pushing = [f for f in estimator.graph.factors if f.family == "pushing"]
    assert len(pushing) > 50
    short = 0
    for factor in pushing:
        k = factor.keys[1][1]
        j = max(k - MODE_STEPS, starts[steps[k].episode])
        short += k - j < MODE_STEPS
        expected = (steps[k].ee_measured[:2] - steps[j].ee_measured[:2]) / (k - j)
        np.testing.assert_allclose(factor.measurement, expected)
        assert factor.context.friction == 0.3
    assert short > 0  # the first steps of an episode
