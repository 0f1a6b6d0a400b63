"""A transform tree with time-interpolated look-ups, as tf2's buffer keeps one; no ROS here.

Transforms arrive as (parent, child, stamp, translation, rotation) with the rotation a unit
quaternion in ROS order (x, y, z, w). A child has one parent (the latest message says which).
Static transforms (``/tf_static``) hold at every time; dynamic ones (``/tf``) are kept for
``cache_s`` behind the newest stamp and a look-up between two of them interpolates, linearly in
translation and by slerp in rotation, as tf2 does. A look-up outside a dynamic link's stamps
fails (:class:`TransformUnavailable`): before its first stamp or older than the cache is
``past``, after its newest is ``future`` (wait for more), a missing link is ``not_connected``.

A child's link is static or dynamic for good, as the first transform for it said (tf2 keeps a
frame's kind so too): a /tf transform for a child that /tf_static set, or the other way round, is
refused (:class:`KindConflict`). Otherwise one stray message of the other kind would replace the
link, and a static mounting, sent once, would never come back.

A dynamic stamp further than ``jump_back_s`` behind the newest one means the clock went back (a bag
played again, ``ros2 bag play --loop``) once ``CONFIRM_BACK`` such stamps in a row agree (within
``jump_back_s`` of each other): the dynamic transforms are cleared, the static ones kept, as tf2's
listener clears its buffer when time jumps back. The ones before are refused (:class:`StrayStamp`),
and so is a lone old stamp: one stray message from a peer must not empty the buffer.
"""

from __future__ import annotations

import bisect
import math
from dataclasses import dataclass

import numpy as np

from tactile_estimator.config import quote

TF_CACHE_S = 10.0  # tf2's default buffer length
CONFIRM_BACK = 3  # dynamic stamps in a row, far behind the newest, that say the clock went back


@dataclass(frozen=True)
class Transform:
    """A rigid transform parent -> child: a point p in the child's frame is ``R p + t`` in the parent's."""

    translation: np.ndarray  # (3,)
    rotation: np.ndarray  # (4,) unit quaternion x, y, z, w

    @staticmethod
    def identity() -> Transform:
        return Transform(np.zeros(3), np.array([0.0, 0.0, 0.0, 1.0]))

    def __mul__(self, other: Transform) -> Transform:
        return Transform(self.translation + _rotate(self.rotation, other.translation),
                         _normalised(_quaternion_product(self.rotation, other.rotation)))

    def inverse(self) -> Transform:
        conjugate = self.rotation * np.array([-1.0, -1.0, -1.0, 1.0])
        return Transform(-_rotate(conjugate, self.translation), conjugate)

    def matrix(self) -> np.ndarray:
        """The 4x4 homogeneous matrix."""
        x, y, z, w = (float(v) for v in self.rotation)
        T = np.eye(4)
        T[:3, :3] = [[1 - 2 * (y * y + z * z), 2 * (x * y - z * w), 2 * (x * z + y * w)],
                     [2 * (x * y + z * w), 1 - 2 * (x * x + z * z), 2 * (y * z - x * w)],
                     [2 * (x * z - y * w), 2 * (y * z + x * w), 1 - 2 * (x * x + y * y)]]
        T[:3, 3] = np.asarray(self.translation, dtype=float)
        return T

    @staticmethod
    def from_matrix(T: np.ndarray) -> Transform:
        """A 4x4 homogeneous matrix's transform (its rotation's quaternion by Shepperd's method)."""
        R = np.asarray(T, dtype=float)[:3, :3]
        trace = float(np.trace(R))
        if trace > 0.0:
            w = math.sqrt(1.0 + trace) / 2.0
            q = np.array([(R[2, 1] - R[1, 2]) / (4 * w), (R[0, 2] - R[2, 0]) / (4 * w),
                          (R[1, 0] - R[0, 1]) / (4 * w), w])
        else:
            i = int(np.argmax(np.diag(R)))
            j, k = (i + 1) % 3, (i + 2) % 3
            r = math.sqrt(max(0.0, 1.0 + R[i, i] - R[j, j] - R[k, k]))
            q = np.zeros(4)
            q[i] = r / 2.0
            q[j] = (R[j, i] + R[i, j]) / (2 * r)
            q[k] = (R[k, i] + R[i, k]) / (2 * r)
            q[3] = (R[k, j] - R[j, k]) / (2 * r)
        return Transform(np.array(np.asarray(T, dtype=float)[:3, 3]), _normalised(q))

    def planar(self) -> tuple[np.ndarray, float]:
        """(x, y, yaw) and the tilt of the child's z axis from the parent's (rad)."""
        x, y, z, w = self.rotation
        yaw = math.atan2(2.0 * (w * z + x * y), 1.0 - 2.0 * (y * y + z * z))
        tilt = math.acos(max(-1.0, min(1.0, 1.0 - 2.0 * (x * x + y * y))))
        return np.array([float(self.translation[0]), float(self.translation[1]), yaw]), tilt


def _quaternion_product(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    ax, ay, az, aw = a
    bx, by, bz, bw = b
    return np.array([aw * bx + ax * bw + ay * bz - az * by,
                     aw * by - ax * bz + ay * bw + az * bx,
                     aw * bz + ax * by - ay * bx + az * bw,
                     aw * bw - ax * bx - ay * by - az * bz])


def _rotate(q: np.ndarray, v: np.ndarray) -> np.ndarray:
    u, w = q[:3], q[3]
    return v + 2.0 * np.cross(u, np.cross(u, v) + w * v)


def _normalised(q: np.ndarray) -> np.ndarray:
    return q / np.linalg.norm(q)


def slerp(a: np.ndarray, b: np.ndarray, s: float) -> np.ndarray:
    """Spherical interpolation from a (s = 0) to b (s = 1), the short way round."""
    dot = float(np.dot(a, b))
    if dot < 0.0:
        b, dot = -b, -dot
    if dot > 0.9995:  # nearly equal: linear is exact to float precision and avoids dividing by sin ~ 0
        return _normalised(a + s * (b - a))
    angle = math.acos(dot)
    return (math.sin((1.0 - s) * angle) * a + math.sin(s * angle) * b) / math.sin(angle)


class TransformUnavailable(LookupError):
    """A look-up that cannot be answered; ``kind`` is past, future or not_connected."""

    def __init__(self, kind: str, message: str) -> None:
        super().__init__(message)
        self.kind = kind


class TransformRefused(ValueError):
    """A transform the buffer does not take; ``reason`` names the drop."""

    reason = "bad_transform"


class KindConflict(TransformRefused):
    """A transform of the other kind (static or dynamic) than its child's link already is."""


class StrayStamp(TransformRefused):
    """A dynamic stamp far behind the newest one that the next ones have not (yet) confirmed."""

    reason = "stamp_jump"


class _Link:
    """One child's transforms from its parent: one static, or a time series."""

    def __init__(self, parent: str, static: bool) -> None:
        self.parent = parent
        self.static = static
        self.stamps: list[int] = []
        self.transforms: list[Transform] = []

    def insert(self, stamp_ns: int, transform: Transform) -> None:
        if self.static:
            self.stamps, self.transforms = [stamp_ns], [transform]
            return
        i = bisect.bisect_left(self.stamps, stamp_ns)
        if i < len(self.stamps) and self.stamps[i] == stamp_ns:
            self.transforms[i] = transform
            return
        self.stamps.insert(i, stamp_ns)
        self.transforms.insert(i, transform)

    def prune(self, before_ns: int) -> None:
        cut = bisect.bisect_left(self.stamps, before_ns)
        if cut > 0:
            del self.stamps[:cut], self.transforms[:cut]

    def at(self, stamp_ns: int, child: str) -> Transform:
        if self.static:
            return self.transforms[0]
        stamps = self.stamps
        if not stamps:
            raise TransformUnavailable("past", f"no transform {self.parent} -> {child} in the buffer")
        i = bisect.bisect_left(stamps, stamp_ns)
        if i < len(stamps) and stamps[i] == stamp_ns:
            return self.transforms[i]
        if i == 0:
            raise TransformUnavailable("past", f"{self.parent} -> {child} at {stamp_ns} is before the buffer's "
                                               f"first transform ({stamps[0]})")
        if i == len(stamps):
            raise TransformUnavailable("future", f"{self.parent} -> {child} at {stamp_ns} is after the newest "
                                                 f"transform ({stamps[-1]})")
        (s0, a), (s1, b) = (stamps[i - 1], self.transforms[i - 1]), (stamps[i], self.transforms[i])
        s = (stamp_ns - s0) / (s1 - s0)
        return Transform(a.translation + s * (b.translation - a.translation), slerp(a.rotation, b.rotation, s))


class TfBuffer:
    def __init__(self, cache_s: float = TF_CACHE_S, jump_back_s: float = 1.0) -> None:
        self._cache_ns = int(cache_s * 1e9)
        self._jump_ns = int(jump_back_s * 1e9)
        self._links: dict[str, _Link] = {}
        self.newest_ns: int | None = None  # the newest dynamic stamp
        self.clock_jumps = 0
        self._back: list[int] = []  # the latest dynamic stamps in a row far behind newest_ns

    def set_transform(self, parent: str, child: str, stamp_ns: int, translation: np.ndarray, rotation: np.ndarray,
                      static: bool = False) -> bool:
        """Add a transform; True when its stamp took the clock back and the dynamic transforms were cleared.
        A transform whose child's link is of the other kind raises :class:`KindConflict`, and changes nothing."""
        if not parent or not child or parent == child:
            raise ValueError(f"transform {parent!r} -> {child!r} needs two different frame names")
        known = self._links.get(child)
        if known is not None and known.static != static:
            kinds = ("static (/tf_static)", "dynamic (/tf)")
            if not known.static:
                kinds = kinds[::-1]
            raise KindConflict(f"{quote(known.parent)} -> {quote(child)} is {kinds[0]}: a {kinds[1]} transform "
                               f"{quote(parent)} -> {quote(child)} may not replace it")
        transform = Transform(np.asarray(translation, dtype=float), _normalised(np.asarray(rotation, dtype=float)))
        jumped = False
        if not static:
            if self.newest_ns is not None and self.newest_ns - stamp_ns > self._jump_ns:
                agrees = self._back and abs(stamp_ns - self._back[-1]) <= self._jump_ns
                self._back = [*self._back, stamp_ns] if agrees else [stamp_ns]
                if len(self._back) < CONFIRM_BACK:
                    raise StrayStamp(f"{quote(parent)} -> {quote(child)} at {stamp_ns} is "
                                     f"{(self.newest_ns - stamp_ns) / 1e9:.3f} s behind the newest transform; "
                                     f"taken as the clock going back once {CONFIRM_BACK} in a row are")
                self.clear_dynamic()
                self.clock_jumps += 1
                jumped = True
            self._back = []
            self.newest_ns = stamp_ns if self.newest_ns is None else max(self.newest_ns, stamp_ns)
        link = self._links.get(child)
        if link is None or link.static != static or link.parent != parent:
            link = self._links[child] = _Link(parent, static)
        link.insert(stamp_ns, transform)
        if not static and self.newest_ns is not None:
            link.prune(self.newest_ns - self._cache_ns)
        return jumped

    def clear_dynamic(self) -> None:
        self._links = {child: link for child, link in self._links.items() if link.static}
        self.newest_ns = None

    def parent(self, frame: str) -> str | None:
        link = self._links.get(frame)
        return link.parent if link is not None else None

    def is_dynamic(self, frame: str) -> bool:
        link = self._links.get(frame)
        return link is not None and not link.static

    def ancestors(self, frame: str) -> list[str]:
        """The frame and its parents up to the root of its tree."""
        chain = [frame]
        while (parent := self.parent(chain[-1])) is not None and parent not in chain:
            chain.append(parent)
        return chain

    def lookup(self, target: str, source: str, stamp_ns: int) -> Transform:
        """``target -> source`` at ``stamp_ns``: the pose of the source frame in the target frame."""
        up_source, up_target = self.ancestors(source), self.ancestors(target)
        common = next((f for f in up_source if f in up_target), None)
        if common is None:
            raise TransformUnavailable("not_connected", f"no chain of transforms between {target} and {source}")
        root_to_source = self._down(common, up_source, stamp_ns)
        root_to_target = self._down(common, up_target, stamp_ns)
        return root_to_target.inverse() * root_to_source

    def _down(self, common: str, chain: list[str], stamp_ns: int) -> Transform:
        """common -> chain[0], composed link by link (chain runs from a frame up to ``common``)."""
        transform = Transform.identity()
        for child in chain[:chain.index(common)]:
            transform = self._links[child].at(stamp_ns, child) * transform
        return transform


@dataclass(frozen=True)
class StampedTransform:
    """One transform of a ``tf2_msgs/TFMessage``, as the message layer reads it."""

    parent: str
    child: str
    stamp_ns: int
    translation: np.ndarray
    rotation: np.ndarray


class EndEffectorFromTf:
    """End-effector poses from ``/tf`` and ``/tf_static``: ``world -> ee`` (the arm's kinematics, as
    robot_state_publisher or MoveIt publish it) and ``ee -> sensor`` (the gel's mounting on the
    flange, usually static), looked up at each stamp of a dynamic transform on that chain.

    A stamp waits until every dynamic link of the chain has reached it (tf2 does not extrapolate);
    one that cannot be answered once ``wait_s`` of newer transforms arrived is dropped as
    ``no_transform``, and one tilted more than ``max_tilt_rad`` out of the table plane as
    ``non_planar_pose``. ``sensor`` empty: the end-effector link is the gel.
    """

    def __init__(self, world: str, ee: str, sensor: str = "", *, max_tilt_rad: float = 0.05,
                 jump_back_s: float = 1.0, wait_s: float = 5.0) -> None:
        self.world, self.ee, self.source = world, ee, sensor or ee
        self.buffer = TfBuffer(jump_back_s=jump_back_s)
        self._tilt = max_tilt_rad
        self._wait_ns = int(wait_s * 1e9)
        self._pending: list[int] = []
        self._last_ns: int | None = None
        self._refused: list[tuple[str, str]] = []  # (reason, text), handed out by the next samples()

    @property
    def frames(self) -> str:
        return f"{self.world} -> {self.ee}" + (f" -> {self.source}" if self.source != self.ee else "")

    def add(self, transform: StampedTransform, static: bool) -> bool:
        """Put one transform in the buffer; True when it took the clock back (the buffer's dynamic part
        and the stamps waiting were cleared)."""
        t = transform
        try:
            jumped = self.buffer.set_transform(t.parent, t.child, t.stamp_ns, t.translation, t.rotation, static)
        except TransformRefused as error:
            self._refused.append((error.reason, f"at {t.stamp_ns}: {error}"))
            return False
        if jumped:
            self._pending.clear()
            self._last_ns = None
        if static or (self._last_ns is not None and t.stamp_ns <= self._last_ns):
            return jumped
        if t.child in self.buffer.ancestors(self.source) or t.child in self.buffer.ancestors(self.ee):
            i = bisect.bisect_left(self._pending, t.stamp_ns)
            if i == len(self._pending) or self._pending[i] != t.stamp_ns:
                self._pending.insert(i, t.stamp_ns)
        return jumped

    def samples(self, final: bool = False) -> tuple[list[tuple[int, np.ndarray]], list[tuple[str, str]]]:
        """The end-effector poses that can now be looked up, and the stamps given up ``(reason, text)``.

        ``final``: no more transforms will come, so nothing waits."""
        poses: list[tuple[int, np.ndarray]] = []
        rejected, self._refused = self._refused, []
        newest = self.buffer.newest_ns
        while self._pending:
            stamp = self._pending[0]
            try:
                transform = self.buffer.lookup(self.world, self.source, stamp)
            except TransformUnavailable as error:
                waiting = error.kind != "past" and newest is not None and newest - stamp <= self._wait_ns
                if waiting and not final:
                    break
                self._pending.pop(0)
                rejected.append(("no_transform", f"{self.frames} at {stamp}: {error}"))
                continue
            self._pending.pop(0)
            pose, tilt = transform.planar()
            if tilt > self._tilt:
                rejected.append(("non_planar_pose", f"{self.frames} at {stamp} is tilted {math.degrees(tilt):.2f} "
                                                    f"deg from the table plane (limit "
                                                    f"{math.degrees(self._tilt):.2f} deg)"))
                continue
            poses.append((stamp, pose))
            self._last_ns = stamp
        return poses, rejected
