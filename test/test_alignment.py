"""Stream alignment: stamp order per stream, and the end-effector pose at a tactile frame's stamp."""

from __future__ import annotations

import dataclasses
from collections import Counter

import numpy as np
import pytest
from test_estimator import feed_interleaved, make

from tactile_estimator import geometry as se2
from tactile_estimator.alignment import EE_BUFFER_NS, StreamAligner
from tactile_estimator.config import ConfigError, load_estimator_config
from tactile_estimator.networks.tactile import TactileModel
from tactile_estimator.records import PoseSample
from tactile_estimator.sim.pushing import SimulatedRun

MS = 1_000_000


@pytest.fixture(scope="module")
def model() -> TactileModel:
    return TactileModel.load()


def aligner_with(dropped: Counter[str], **overrides: object) -> StreamAligner:
    """An aligner whose drops are counted in ``dropped`` by reason."""
    return StreamAligner(load_estimator_config(None, overrides), lambda reason, _: dropped.update([reason]))


def test_the_end_effector_pose_is_interpolated_to_the_frame_and_waits_for_the_stream_to_cover_it() -> None:
    aligner = aligner_with(Counter(), ee_max_gap_s=0.05)
    aligner.add_ee_pose(100 * MS, np.array([0.0, 0.0, 0.0]))
    aligner.add_ee_pose(110 * MS, np.array([0.01, 0.02, 0.2]))
    half = se2.interpolate(np.zeros(3), np.array([0.01, 0.02, 0.2]), 0.5)  # the geodesic's midpoint
    np.testing.assert_allclose(aligner.ee_at(105 * MS, final=False), half, atol=1e-12)
    assert half[2] == pytest.approx(0.1)
    np.testing.assert_array_equal(aligner.ee_at(110 * MS, final=False), [0.01, 0.02, 0.2])
    assert aligner.ee_at(120 * MS, final=False) is None  # a later pose may come
    np.testing.assert_array_equal(aligner.ee_at(120 * MS, final=True), [0.01, 0.02, 0.2])  # within the gap
    assert aligner.ee_at(200 * MS, final=True) == "no_ee_pose"
    assert aligner.ee_at(90 * MS, final=False) == "no_ee_pose"  # before the stream began: it never will cover it
    aligner.add_ee_pose(200 * MS, np.array([0.1, 0.0, 0.0]))
    assert aligner.ee_at(150 * MS, final=False) == "ee_gap"  # 90 ms between the poses around it
    assert aligner_with(Counter()).ee_at(5, final=False) is None  # no pose yet: wait for one
    assert aligner_with(Counter()).ee_at(5, final=True) == "no_ee_pose"


def test_reordered_and_repeated_stamps_are_dropped_per_stream() -> None:
    dropped: Counter[str] = Counter()
    aligner = aligner_with(dropped)
    assert aligner.check_order("tactile", 10 * MS) and aligner.check_order("ee_pose", 5 * MS)
    assert not aligner.check_order("tactile", 10 * MS) and not aligner.check_order("tactile", 9 * MS)
    assert aligner.check_order("ee_pose", 9 * MS)  # each stream has its own order
    assert dropped == {"duplicate_stamp": 1, "out_of_order_stamp": 1}
    assert aligner.newest_stamp() == 10 * MS


def test_the_buffer_keeps_what_the_oldest_waiting_frame_can_still_need() -> None:
    aligner = aligner_with(Counter())
    for i in range(40):
        aligner.add_ee_pose(i * 100 * MS, np.array([i * 0.001, 0.0, 0.0]))
    aligner.prune(3_000 * MS)  # a frame at 3 s still waits: poses from 1 s on are kept, and the one before
    assert aligner.ee_at(950 * MS, final=False) is not None and aligner.ee_at(850 * MS, final=False) == "no_ee_pose"
    aligner.check_order("ee_pose", 3_900 * MS)
    aligner.prune(None)  # nothing waits: the buffer reaches back from the newest stamp
    assert aligner.ee_at(3_900 * MS - EE_BUFFER_NS - 50 * MS, final=False) is not None
    assert aligner.ee_at(3_900 * MS - EE_BUFFER_NS - 150 * MS, final=False) == "no_ee_pose"


def test_frames_wait_for_end_effector_poses(rect_run: SimulatedRun, model: TactileModel) -> None:
    """All tactile frames first, then the poses: the same steps as interleaved arrival."""
    interleaved = make(rect_run, model)
    reference = feed_interleaved(interleaved, rect_run)
    late = make(rect_run, model)
    late.add_camera(rect_run.camera[0])
    produced = []
    for frame in rect_run.tactile:
        produced += late.add_tactile(frame)
    assert produced == []  # nothing can be estimated before the end-effector stream covers a frame
    for sample in rect_run.ee_poses:
        produced += late.add_ee_pose(sample)
    produced += late.flush()
    assert [e.step for e in produced] == [e.step for e in reference]
    np.testing.assert_allclose(produced[0].pose, reference[0].pose, atol=1e-9)


def test_one_stamp_from_the_future_costs_only_itself(rect_run: SimulatedRun, model: TactileModel) -> None:
    """A single end-effector pose 1,000 s ahead once silenced its stream for good (99 of 150 steps lost)."""
    clean = make(rect_run, model)
    feed_interleaved(clean, rect_run)
    estimator = make(rect_run, model)
    poses = list(rect_run.ee_poses)
    bad = dataclasses.replace(poses[40], stamp_ns=poses[40].stamp_ns + 1000 * 10**9)
    run = dataclasses.replace(rect_run, ee_poses=poses[:40] + [bad] + poses[41:])
    estimates = feed_interleaved(estimator, run)
    assert estimator.dropped == {"stamp_jump": 1}
    assert len(estimator.steps) == len(clean.steps) and len(estimates) == len(rect_run.tactile)
    assert not estimator.clock_restarted


def test_a_confirmed_jump_is_taken_and_a_clock_that_goes_back_asks_for_a_new_graph() -> None:
    dropped: Counter[str] = Counter()
    aligner = aligner_with(dropped)
    assert aligner.check_order("ee_pose", 10**9)
    ahead = 10**9 + 60 * 10**9  # a real gap of a minute: the second message confirms it
    assert not aligner.check_order("ee_pose", ahead) and aligner.check_order("ee_pose", ahead + 10**7)
    assert not aligner.clock_restarted
    back = 2 * 10**6  # the clock restarts near zero
    assert not aligner.check_order("ee_pose", back) and not aligner.check_order("ee_pose", back + 10**7)
    assert aligner.clock_restarted and dropped["stamp_jump"] == 3


def test_the_estimator_asks_for_a_new_graph_when_its_aligner_saw_the_clock_go_back(
        rect_run: SimulatedRun, model: TactileModel) -> None:
    estimator = make(rect_run, model)
    for stamp in (5 * 10**9, 2 * 10**6, 2 * 10**6 + 10**7):  # back by 5 s, confirmed by the next pose
        estimator.add_ee_pose(PoseSample(stamp, np.zeros(3)))
    assert estimator.clock_restarted and estimator.dropped["stamp_jump"] == 2


def test_with_a_hold_a_frame_just_after_the_newest_pose_takes_it_at_once() -> None:
    """ee_hold_s: a frame at most that long after the newest end-effector pose takes that pose instead of
    waiting for the next; one further after still waits, and 0 (the default) always waits."""
    events: Counter[str] = Counter()
    aligner = StreamAligner(load_estimator_config(None, {"ee_hold_s": 0.012}), lambda *_: None,
                            lambda name: events.update([name]))
    aligner.add_ee_pose(100 * MS, np.array([0.0, 0.0, 0.0]))
    aligner.add_ee_pose(110 * MS, np.array([0.01, 0.02, 0.2]))
    np.testing.assert_array_equal(aligner.ee_at(112 * MS, final=False), [0.01, 0.02, 0.2])
    np.testing.assert_array_equal(aligner.ee_at(122 * MS, final=False), [0.01, 0.02, 0.2])
    assert aligner.ee_at(123 * MS, final=False) is None
    assert events == {"ee_held": 2}
    half = se2.interpolate(np.zeros(3), np.array([0.01, 0.02, 0.2]), 0.5)
    np.testing.assert_allclose(aligner.ee_at(105 * MS, final=False), half, atol=1e-12)  # covered: interpolated
    waiting = aligner_with(Counter())
    waiting.add_ee_pose(100 * MS, np.zeros(3))
    assert waiting.ee_at(101 * MS, final=False) is None
    with pytest.raises(ConfigError, match="ee_hold_s"):
        load_estimator_config(None, {"ee_hold_s": -0.01})
