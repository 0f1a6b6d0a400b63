"""Stream alignment: each stream's stamp order, and the end-effector pose at a tactile frame's stamp.

Streams arrive in any interleaving, each in its own stamp order. The aligner keeps the order of
every stream (a reordered or duplicated stamp is dropped, a jump is taken only once confirmed, a
clock that goes back for good asks for a new graph) and a short buffer of end-effector poses, from
which the pose at a tactile frame's stamp is interpolated once the stream covers it. What it drops
goes to the ``reject`` it is given (the estimator counts drops by reason). No ROS here.
"""

from __future__ import annotations

import bisect
from collections.abc import Callable

import numpy as np

from tactile_estimator import geometry as se2
from tactile_estimator.config import EstimatorConfig

EE_BUFFER_NS = 2_000_000_000  # end-effector poses kept behind the oldest frame still waiting for one


class StreamAligner:
    def __init__(self, config: EstimatorConfig, reject: Callable[[str, str], None],
                 event: Callable[[str], None] | None = None) -> None:
        """``reject(reason, message)`` counts a dropped input; ``event(name)`` counts an event (``ee_held``)."""
        self.config = config
        self._reject = reject
        self._event = event or (lambda _: None)
        self._ee_stamps: list[int] = []
        self._ee_poses: list[np.ndarray] = []
        self._last_stamp: dict[str, int] = {}
        self._jump_candidate: dict[str, int] = {}  # per stream: a jumped stamp awaiting confirmation
        self.clock_restarted = False  # a stream's clock went back for good: the owner starts a new graph

    def check_order(self, stream: str, stamp_ns: int) -> bool:
        """Each stream's stamps must increase. A jump of more than ``max_stamp_jump_s`` from the last
        accepted stamp, or back by more than ``clock_restart_s``, is taken only once a second message confirms
        it (within ``max_stamp_jump_s`` of the first and after it): one stamp from the future (a corrupted
        header) is dropped as ``stamp_jump`` and leaves the stream as it was. A confirmed jump backwards is
        a restarted clock (a bag played again, a restarted publisher): ``clock_restarted`` is set for the
        owner to start a new graph. Smaller steps back are reordering: that message is dropped."""
        last = self._last_stamp.get(stream)
        jump_ns = int(self.config.max_stamp_jump_s * 1e9)
        back_ns = int(self.config.clock_restart_s * 1e9)
        if last is not None and (stamp_ns - last > jump_ns or last - stamp_ns > back_ns):
            candidate = self._jump_candidate.get(stream)
            if candidate is None or not 0 < stamp_ns - candidate <= jump_ns:
                self._jump_candidate[stream] = stamp_ns
                self._reject("stamp_jump", f"{stream} stamp {stamp_ns} jumps {(stamp_ns - last) / 1e9:+.1f} s from "
                                           f"{last}; it is taken once another message confirms it")
                return False
            self._jump_candidate.pop(stream, None)
            if stamp_ns < last:
                self.clock_restarted = True
                self._reject("stamp_jump", f"{stream} clock went back {(last - stamp_ns) / 1e9:.1f} s: "
                                           "a new graph starts")
                return False
            self._last_stamp[stream] = stamp_ns
            return True
        self._jump_candidate.pop(stream, None)
        if last is not None and stamp_ns <= last:
            reason = "duplicate_stamp" if stamp_ns == last else "out_of_order_stamp"
            self._reject(reason, f"{stream} stamp {stamp_ns} is not after the previous {last}")
            return False
        self._last_stamp[stream] = stamp_ns
        return True

    def add_ee_pose(self, stamp_ns: int, pose: np.ndarray) -> None:
        """An end-effector pose whose stamp :meth:`check_order` accepted (so after every buffered one)."""
        self._ee_stamps.append(stamp_ns)
        self._ee_poses.append(pose)

    def newest_stamp(self) -> int:
        """The latest stamp accepted on any stream (0 before the first)."""
        return max(self._last_stamp.values(), default=0)

    def ee_at(self, stamp_ns: int, final: bool) -> np.ndarray | str | None:
        """The end-effector pose at ``stamp_ns``, interpolated between the poses around it; None to wait
        for more poses; a reason to drop the frame (``no_ee_pose``, ``ee_gap``). ``final``: no more poses
        will come, so a frame just after the last pose (within ``ee_max_gap_s``) takes that pose. With
        ``ee_hold_s`` > 0 a frame at most that long after the newest pose takes it without waiting (a
        zero-order hold: the frame's estimate is out by the end-effector's motion over that time)."""
        stamps = self._ee_stamps
        gap = int(self.config.ee_max_gap_s * 1e9)
        i = bisect.bisect_left(stamps, stamp_ns)
        if i < len(stamps) and stamps[i] == stamp_ns:
            return self._ee_poses[i]
        if i == 0:
            if not stamps:
                return "no_ee_pose" if final else None
            return "no_ee_pose"
        if i == len(stamps):
            if not final:
                hold = self.config.ee_hold_s
                if hold > 0.0 and stamp_ns - stamps[-1] <= int(hold * 1e9):
                    self._event("ee_held")
                    return self._ee_poses[-1]
                return None
            return self._ee_poses[-1] if stamp_ns - stamps[-1] <= gap else "no_ee_pose"
        s0, s1 = stamps[i - 1], stamps[i]
        if s1 - s0 > gap:
            return "ee_gap"
        return se2.interpolate(self._ee_poses[i - 1], self._ee_poses[i], (stamp_ns - s0) / (s1 - s0))

    def prune(self, oldest_waiting_ns: int | None) -> None:
        """Forget end-effector poses older than ``EE_BUFFER_NS`` before the oldest frame still waiting
        (None: before the newest stamp), keeping the last one before that so it can still be interpolated from."""
        horizon = oldest_waiting_ns if oldest_waiting_ns is not None else self.newest_stamp()
        cut = bisect.bisect_left(self._ee_stamps, horizon - EE_BUFFER_NS)
        if cut > 1:
            del self._ee_stamps[: cut - 1]
            del self._ee_poses[: cut - 1]
