"""An AprilTag 36h11 on the object's top face, seen by a calibrated camera, as a planar object pose.

Per frame: ``cv2.aruco.ArucoDetector`` finds the tags (OpenCV 5 has only the class, no free
``detectMarkers``); tags of other ids and tags whose shortest side is under ``min_side_px`` are
rejected with a reason. ``cv2.solvePnPGeneric`` with ``SOLVEPNP_IPPE_SQUARE`` gives the tag's pose
in the camera frame, both solutions of the planar ambiguity; the object stands on the table, so the
solution whose object z is nearer world z is kept (of those that reproject within a pixel of the
best). The object's 3-D pose, ``world_T_camera · camera_T_tag · tag_T_object``, is projected onto
the table plane: x, y of its origin and the yaw of its x axis.

The covariance of (x, y, yaw) is the Gauss-Newton one of the four corners' pixels under the planar
pose: σ² (JᵀJ)⁻¹, J the corners' pixel Jacobian with respect to (x, y, yaw), σ the larger of
``min_pixel_sigma`` and the RMS reprojection error of the planar pose. J shrinks with the tag's
distance and with the viewing angle (foreshortening), so the covariance grows with both. A floor
(``floor_translation_m``, ``floor_rotation_rad``) stands for what the pixels do not see: the
extrinsics' and the tag mount's calibration.

Frames that give no pose are results with a reason code (``DROP_REASONS``) and a one-line message,
never exceptions: a bad image, bad intrinsics, no tag, a wrong id, a tag too small, one seen edge-on,
a failed or degenerate PnP, a pose not standing on the table.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import cv2
import numpy as np

from tactile_estimator.camera.model import CameraInfo, extrinsics_problem, inverse, planar, translation
from tactile_estimator.records import CameraDetection

DICTIONARY = cv2.aruco.DICT_APRILTAG_36h11
_JACOBIAN_STEP = 1e-5  # m and rad
_JACOBIAN_DELTAS = np.vstack([np.zeros(3), _JACOBIAN_STEP * np.eye(3), -_JACOBIAN_STEP * np.eye(3)])

DROP_REASONS = (
    "bad_image",  # not a 2-D uint8 (mono8) or HxWx3 uint8 (rgb8) array
    "size_mismatch",  # the image's size differs from camera_info's
    "bad_intrinsics",  # camera_info unusable (NaN, non-positive focal lengths, bad shapes)
    "no_tag",  # no 36h11 tag in the frame: out of view or occluded
    "wrong_id",  # only tags of other ids
    "too_small",  # the tag's shortest side is under min_side_px
    "edge_on",  # the tag is seen at more than max_view_angle_deg from its normal
    "pnp_failed",  # solvePnP raised or returned nothing finite, or the corners are degenerate
    "not_upright",  # the pose tilts the object off the table by more than max_tilt_deg
    "bad_fit",  # the planar pose reprojects the corners more than max_reprojection_px off
)


@dataclass(frozen=True)
class TagMount:
    """Which tag the object carries and where: ``object_T_tag`` maps tag-frame points to the object frame.

    The object frame's origin is the footprint's centre on the table (z = 0), z up; the tag frame is
    OpenCV's (x to the tag image's right, y to its top, z out of its face).
    """

    tag_id: int = 0
    size_m: float = 0.04  # the black square's side
    object_T_tag: np.ndarray = field(default_factory=lambda: translation(0.0, 0.0, 0.03))

    def problem(self) -> str | None:
        if not (0 <= int(self.tag_id) < 587):
            return f"tag id {self.tag_id} is not a 36h11 id (0-586)"
        if not (math.isfinite(self.size_m) and self.size_m > 0.0):
            return f"tag size {self.size_m} m must be > 0"
        return extrinsics_problem(self.object_T_tag)


@dataclass(frozen=True)
class DetectorOptions:
    min_side_px: float = 12.0  # tags whose shortest side is shorter are rejected
    max_view_angle_deg: float = 75.0  # between the tag's normal and the line of sight
    max_tilt_deg: float = 20.0  # between the object's z and world z
    min_pixel_sigma: float = 0.5  # px, corner localisation noise at the least
    floor_translation_m: float = 0.5e-3
    floor_rotation_rad: float = math.radians(0.3)
    corner_refinement: int = cv2.aruco.CORNER_REFINE_SUBPIX
    adaptive_window_px: int = 13  # one adaptive-threshold window; OpenCV's default tries 3, 13 and 23
    refine_on_table: bool = True  # refine (x, y, yaw) with the object's origin at z = 0
    refine_iterations: int = 5
    max_reprojection_px: float = 3.0  # RMS; a pose that fits the corners worse is dropped

    def problem(self) -> str | None:
        values = (self.min_side_px, self.max_view_angle_deg, self.max_tilt_deg, self.min_pixel_sigma,
                  self.floor_translation_m, self.floor_rotation_rad, self.max_reprojection_px)
        if not all(math.isfinite(v) and v >= 0.0 for v in values):
            return "detector options must be finite and >= 0"
        if not 0.0 < self.max_view_angle_deg < 90.0:
            return f"max_view_angle_deg {self.max_view_angle_deg} must be in (0, 90)"
        if self.refine_iterations < 0:
            return f"refine_iterations {self.refine_iterations} must be >= 0"
        if self.adaptive_window_px < 3 or self.adaptive_window_px % 2 == 0:
            return f"adaptive_window_px {self.adaptive_window_px} must be odd and >= 3"
        return None


@dataclass(frozen=True)
class TagResult:
    """One frame's outcome: a detection, or the reason there is none (``reason`` in DROP_REASONS)."""

    stamp_ns: int
    detection: CameraDetection | None
    reason: str | None = None
    message: str = ""
    rejected: tuple[tuple[int, str], ...] = ()  # (tag id, reason) of the tags that were not used
    corners_px: np.ndarray | None = None  # (4, 2) of the tag used, OpenCV's corner order
    reprojection_px: float = math.nan  # RMS, of the planar pose
    distance_m: float = math.nan  # camera to tag centre
    view_angle_deg: float = math.nan  # between the tag's normal and the line of sight
    world_T_object: np.ndarray | None = None  # the 3-D pose before the projection onto the table

    @property
    def ok(self) -> bool:
        return self.detection is not None


class AprilTagDetector:
    """Planar object poses from images of the object's tag, given the camera's pose in ``world``.

    Configuration errors (a bad mount, extrinsics or options) raise ValueError once, here; per-frame
    problems come back as TagResults with a reason.
    """

    def __init__(self, world_T_camera: np.ndarray, mount: TagMount | None = None,
                 options: DetectorOptions | None = None) -> None:
        self.mount = mount or TagMount()
        self.options = options or DetectorOptions()
        for problem in (extrinsics_problem(world_T_camera), self.mount.problem(), self.options.problem()):
            if problem:
                raise ValueError(problem)
        self.world_T_camera = np.asarray(world_T_camera, dtype=float)
        self.camera_T_world = inverse(self.world_T_camera)
        self.tag_T_object = inverse(np.asarray(self.mount.object_T_tag, dtype=float))
        params = cv2.aruco.DetectorParameters()
        params.cornerRefinementMethod = int(self.options.corner_refinement)
        window = int(self.options.adaptive_window_px)
        params.adaptiveThreshWinSizeMin = params.adaptiveThreshWinSizeMax = window
        params.adaptiveThreshWinSizeStep = 10
        self._params = params
        self._detectors: dict[int, cv2.aruco.ArucoDetector] = {}
        half = 0.5 * self.mount.size_m
        self.tag_points = np.array([[-half, half, 0.0], [half, half, 0.0], [half, -half, 0.0], [-half, -half, 0.0]])
        object_T_tag = np.asarray(self.mount.object_T_tag, dtype=float)
        self._mounted_points = self.tag_points @ object_T_tag[:3, :3].T + object_T_tag[:3, 3]  # object frame

    def _detector(self, largest_side: int) -> cv2.aruco.ArucoDetector:
        """One ArucoDetector per image size: candidates as small as half min_side_px reach our own check."""
        detector = self._detectors.get(largest_side)
        if detector is None:
            params = self._params
            params.minMarkerPerimeterRate = max(1e-3, 2.0 * self.options.min_side_px / largest_side)
            detector = cv2.aruco.ArucoDetector(cv2.aruco.getPredefinedDictionary(DICTIONARY), params)
            self._detectors[largest_side] = detector
        return detector

    def detect(self, image: np.ndarray, info: CameraInfo, stamp_ns: int = 0) -> TagResult:
        """The object's planar pose from one mono8 (H, W) or rgb8 (H, W, 3) frame."""
        grey, reason, message = _grey(image)
        if grey is None:
            return TagResult(stamp_ns, None, reason, message)
        problem = info.problem()
        if problem:
            return TagResult(stamp_ns, None, "bad_intrinsics", problem)
        if grey.shape != (info.height, info.width):
            size = f"{grey.shape[1]}x{grey.shape[0]}"
            return TagResult(stamp_ns, None, "size_mismatch",
                             f"image is {size} but camera_info says {info.width}x{info.height}")
        corners, ids, _ = self._detector(max(grey.shape)).detectMarkers(grey)
        if ids is None or len(ids) == 0:
            return TagResult(stamp_ns, None, "no_tag", "no 36h11 tag in the frame")
        rejected: list[tuple[int, str]] = []
        candidates = []
        for quad, tag in zip(corners, ids.ravel(), strict=True):
            quad = quad.reshape(4, 2).astype(float)
            side = float(np.min(np.linalg.norm(quad - np.roll(quad, -1, axis=0), axis=1)))
            if int(tag) != self.mount.tag_id:
                rejected.append((int(tag), "wrong_id"))
            elif side < self.options.min_side_px:
                rejected.append((int(tag), "too_small"))
            else:
                candidates.append((side, quad))
        if not candidates:
            reason = "too_small" if any(r == "too_small" for _, r in rejected) else "wrong_id"
            ids_seen = ", ".join(str(t) for t, _ in rejected)
            text = (f"tag {self.mount.tag_id} is under {self.options.min_side_px:g} px" if reason == "too_small"
                    else f"only tags of other ids ({ids_seen}); the object carries {self.mount.tag_id}")
            return TagResult(stamp_ns, None, reason, text, tuple(rejected))
        candidates.sort(key=lambda c: -c[0])
        rejected += [(self.mount.tag_id, "duplicate")] * (len(candidates) - 1)
        return self.pose_from_corners(candidates[0][1], info, stamp_ns, tuple(rejected))

    def pose_from_corners(self, corners_px: np.ndarray, info: CameraInfo, stamp_ns: int = 0,
                          rejected: tuple[tuple[int, str], ...] = ()) -> TagResult:
        """The planar pose from the tag's four corners (OpenCV's order), as ``detect`` does after detection."""
        quad = np.asarray(corners_px, dtype=float).reshape(-1, 2)
        problem = info.problem()
        if problem:
            return TagResult(stamp_ns, None, "bad_intrinsics", problem, rejected)
        if quad.shape != (4, 2) or not np.all(np.isfinite(quad)):
            return TagResult(stamp_ns, None, "pnp_failed", "the tag's corners are not four finite points", rejected)

        def drop(reason: str, message: str, **extra) -> TagResult:
            return TagResult(stamp_ns, None, reason, message, rejected, quad, **extra)

        # A quad of (near) zero area is a tag seen edge-on: IPPE's homography is singular there.
        edges = quad - np.roll(quad, -1, axis=0)
        perimeter = float(np.sum(np.linalg.norm(edges, axis=1)))
        area = 0.5 * abs(float(np.sum(quad[:, 0] * np.roll(quad[:, 1], -1) - np.roll(quad[:, 0], -1) * quad[:, 1])))
        if perimeter < 1e-6 or area < 1e-3 * perimeter * perimeter:
            return drop("edge_on", f"the tag's corners are (nearly) collinear: area {area:.1f} px², perimeter "
                        f"{perimeter:.1f} px; a tag seen edge-on gives no pose")
        K = np.asarray(info.K, dtype=float)
        D = np.asarray(info.D, dtype=float).ravel()
        try:
            count, rvecs, tvecs, errors = cv2.solvePnPGeneric(
                self.tag_points, quad.reshape(4, 1, 2), K, D, flags=cv2.SOLVEPNP_IPPE_SQUARE)
        except cv2.error as error:
            return drop("pnp_failed", f"solvePnP (IPPE_SQUARE) failed: {str(error).strip().splitlines()[-1]}")
        solutions = []
        for i in range(int(count)):
            rvec, tvec = np.asarray(rvecs[i], dtype=float).ravel(), np.asarray(tvecs[i], dtype=float).ravel()
            if not (np.all(np.isfinite(rvec)) and np.all(np.isfinite(tvec))) or tvec[2] <= 0.0:
                continue
            R, _ = cv2.Rodrigues(rvec)
            world_T_object = self.world_T_camera @ _rt(R, tvec) @ self.tag_T_object
            tilt = math.degrees(math.acos(min(1.0, max(-1.0, world_T_object[2, 2]))))
            solutions.append((float(np.ravel(errors)[i]) if errors is not None else 0.0, tilt, R, tvec, world_T_object))
        consistent = [sol for sol in solutions if sol[0] <= self.options.max_reprojection_px]
        if consistent:
            best = min(sol[0] for sol in consistent)
            _, tilt, R, tvec, world_T_object = min((sol for sol in consistent if sol[0] <= best + 1.0),
                                                   key=lambda sol: sol[1])
            x_axis = world_T_object[:3, 0]
            pose = np.array([world_T_object[0, 3], world_T_object[1, 3], math.atan2(x_axis[1], x_axis[0])])
            distance = float(np.linalg.norm(tvec))
            view_angle = math.degrees(math.acos(min(1.0, abs(float(R[:, 2] @ tvec)) / distance)))
        else:
            # IPPE degenerates for a tag seen (almost exactly) face-on, as an overhead camera sees it:
            # start from the corners' rays met with the tag's plane on the table instead.
            tilt, pose = math.nan, self._pose_from_rays(quad, K, D)
            if pose is None:
                return drop("pnp_failed", "solvePnP (IPPE_SQUARE) gave no consistent pose and the corners' rays "
                            "miss the table")
            world_T_object = planar(pose)
            distance, view_angle = self._view(pose)
        geometry = {"distance_m": distance, "view_angle_deg": view_angle, "world_T_object": world_T_object}
        if view_angle > self.options.max_view_angle_deg:
            return drop("edge_on", f"the tag is seen {view_angle:.0f}° from its normal (at most "
                        f"{self.options.max_view_angle_deg:g}°)", **geometry)
        if tilt > self.options.max_tilt_deg:
            return drop("not_upright", f"the pose tilts the object {tilt:.0f}° off the table (at most "
                        f"{self.options.max_tilt_deg:g}°): check the extrinsics and the tag mount", **geometry)

        # On the table the object's origin is at z = 0: Gauss-Newton on the corners' pixels over
        # (x, y, yaw) alone, from the 3-D pose's projection, uses that; PnP's depth is its weakest part.
        height = 0.0 if self.options.refine_on_table else float(world_T_object[2, 3])
        for _ in range(self.options.refine_iterations if self.options.refine_on_table else 0):
            residual, J = self._residual_jacobian(pose, height, quad, K, D)
            information = J.T @ J
            if not np.all(np.isfinite(information)) or np.linalg.cond(information) > 1e12:
                break
            step = -np.linalg.solve(information, J.T @ residual)
            pose = pose + step
            if np.max(np.abs(step)) < 1e-7:
                break
        pose[2] = math.atan2(math.sin(pose[2]), math.cos(pose[2]))
        residual, J = self._residual_jacobian(pose, height, quad, K, D)
        rms = float(np.sqrt(np.mean(residual**2) * 2.0))
        information = J.T @ J
        if not (np.all(np.isfinite(information)) and np.all(np.isfinite(pose))) or np.linalg.cond(information) > 1e12:
            return drop("pnp_failed", "the corners' pixel Jacobian is singular: the pose is unobservable",
                        **geometry, reprojection_px=rms)
        if rms > self.options.max_reprojection_px:
            return drop("bad_fit", f"the planar pose reprojects the corners {rms:.1f} px off (at most "
                        f"{self.options.max_reprojection_px:g} px): not a tag on the table, or bad calibration",
                        **geometry, reprojection_px=rms)
        # Eight pixel coordinates fit three parameters: the per-coordinate noise's estimate has 5 degrees of freedom.
        sigma = max(self.options.min_pixel_sigma, float(np.sqrt(residual @ residual / 5.0)))
        floor = np.array([self.options.floor_translation_m] * 2 + [self.options.floor_rotation_rad]) ** 2
        covariance = sigma * sigma * np.linalg.inv(information) + np.diag(floor)
        covariance = 0.5 * (covariance + covariance.T)
        distance, view_angle = self._view(pose)
        detection = CameraDetection(int(stamp_ns), pose, covariance, "world")
        return TagResult(stamp_ns, detection, None, "", rejected, quad, rms, distance, view_angle, world_T_object)

    def _view(self, pose: np.ndarray) -> tuple[float, float]:
        """Distance (m) from the camera to the tag's centre and the angle (degrees) from the tag's normal."""
        camera_T_tag = self.camera_T_world @ planar(pose) @ np.asarray(self.mount.object_T_tag, dtype=float)
        t, normal = camera_T_tag[:3, 3], camera_T_tag[:3, 2]
        distance = float(np.linalg.norm(t))
        return distance, math.degrees(math.acos(min(1.0, abs(float(normal @ t)) / max(distance, 1e-12))))

    def _pose_from_rays(self, quad: np.ndarray, K: np.ndarray, D: np.ndarray) -> np.ndarray | None:
        """The planar pose whose tag corners best fit (least squares) where the corners' rays meet the tag's plane."""
        rays = cv2.undistortPoints(quad.reshape(4, 1, 2), K, D).reshape(4, 2)
        directions = np.column_stack([rays, np.ones(4)]) @ self.world_T_camera[:3, :3].T
        origin = self.world_T_camera[:3, 3]
        heights = self._mounted_points[:, 2]
        if np.any(np.abs(directions[:, 2]) < 1e-9):
            return None
        t = (heights - origin[2]) / directions[:, 2]
        if np.any(t <= 0.0):
            return None
        world = origin[:2] + t[:, None] * directions[:, :2]
        local = self._mounted_points[:, :2]
        a, b = local - local.mean(axis=0), world - world.mean(axis=0)
        yaw = math.atan2(float(np.sum(a[:, 0] * b[:, 1] - a[:, 1] * b[:, 0])), float(np.sum(a * b)))
        c, s = math.cos(yaw), math.sin(yaw)
        xy = world.mean(axis=0) - np.array([[c, -s], [s, c]]) @ local.mean(axis=0)
        return np.array([xy[0], xy[1], yaw])

    def _corners(self, poses: np.ndarray, height: float, K: np.ndarray, D: np.ndarray) -> np.ndarray:
        """The tag's corners' pixels (m, 4, 2) for m planar object poses (m, 3) at ``height``."""
        poses = np.atleast_2d(poses)
        c, s = np.cos(poses[:, 2]), np.sin(poses[:, 2])
        x, y, z = self._mounted_points[:, 0], self._mounted_points[:, 1], self._mounted_points[:, 2]
        world = np.empty((len(poses), 4, 3))
        world[:, :, 0] = c[:, None] * x - s[:, None] * y + poses[:, 0:1]
        world[:, :, 1] = s[:, None] * x + c[:, None] * y + poses[:, 1:2]
        world[:, :, 2] = z + height
        camera = world.reshape(-1, 3) @ self.camera_T_world[:3, :3].T + self.camera_T_world[:3, 3]
        uv, _ = cv2.projectPoints(camera, np.zeros(3), np.zeros(3), K, D)
        return uv.reshape(len(poses), 4, 2)

    def _residual_jacobian(self, pose: np.ndarray, height: float, quad: np.ndarray, K: np.ndarray,
                           D: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Corner residuals (8,) of a planar pose and their Jacobian (8, 3), by central differences."""
        uv = self._corners(pose + _JACOBIAN_DELTAS, height, K, D).reshape(7, 8)
        J = (uv[1:4] - uv[4:7]).T / (2.0 * _JACOBIAN_STEP)
        return uv[0] - quad.ravel(), J


def _rt(R: np.ndarray, t: np.ndarray) -> np.ndarray:
    T = np.eye(4)
    T[:3, :3], T[:3, 3] = R, t
    return T


def _grey(image: object) -> tuple[np.ndarray | None, str, str]:
    """A 2-D uint8 view of a mono8 or rgb8 frame, or (None, reason, message)."""
    if not isinstance(image, np.ndarray) or image.dtype != np.uint8:
        kind = image.dtype if isinstance(image, np.ndarray) else type(image).__name__
        return None, "bad_image", f"image must be uint8 (mono8 or rgb8), not {kind}"
    if image.ndim == 2:
        return image, "", ""
    if image.ndim == 3 and image.shape[2] == 3:
        return cv2.cvtColor(image, cv2.COLOR_RGB2GRAY), "", ""
    if image.ndim == 3 and image.shape[2] == 1:
        return image[:, :, 0], "", ""
    return None, "bad_image", f"image of shape {image.shape} is neither mono8 (H, W) nor rgb8 (H, W, 3)"
