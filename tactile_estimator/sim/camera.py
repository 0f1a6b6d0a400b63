"""A pinhole camera over the pushing table: mono8 frames of the object, its AprilTag and the arm.

The scene, in ``world`` (z up, the table's top at z = 0):

- the table, a fixed low-contrast texture seen through the camera's homography (computed once);
- the object, a prism of the run's footprint (``objects.Shape``) whose top face is at the tag mount's
  height: its sides in a darker grey, its top face light, and on it the AprilTag 36h11 image from
  ``cv2.aruco``'s dictionary (with a one-cell white quiet zone) warped by the true object pose;
- the arm, as simple boxes between the camera and the table: the DIGIT's body behind the gel tip, the
  wrist above it and the forearm rising from the wrist towards the robot's base. Drawn last, they hide
  the tag whenever they pass over it, as on a real bench.

Then per frame: a Gaussian blur of random width (focus and motion), a lighting change (a per-run
gradient across the image, a per-frame gain drifting as a bounded random walk), and Gaussian sensor
noise. Every random draw comes from the ``numpy.random.Generator`` the renderer is given, so a seed
gives the same frames.

The frame also carries its ground truth: the tag's corners in pixels (OpenCV's order) and the share
of the tag the arm leaves visible.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import cv2
import numpy as np

from tactile_estimator.camera.apriltag import DICTIONARY, TagMount
from tactile_estimator.camera.model import CameraInfo, inverse, look_at, planar, project
from tactile_estimator.objects import Shape

TABLE_EXTENT_M = 0.6  # the table's half-width around the origin; beyond it the floor is dark
TABLE_TEXTURE_PX = 512
TABLE_GREY, TABLE_TEXTURE_CONTRAST, FLOOR_GREY = 120.0, 6.0, 35.0
TOP_GREY, SIDE_GREY = 215, 150
ARM_GREYS = (60, 75, 90)  # sensor body, wrist, forearm
TAG_CELL_PX = 6  # texture pixels per tag cell: the tag spans 8 cells, 10 with the quiet zone


@dataclass(frozen=True)
class Arm:
    """The arm's boxes, in metres. Body and wrist are in the end-effector frame (x towards the gel)."""

    body_x: tuple[float, float] = (-0.035, -0.005)
    body_half_width: float = 0.0165
    body_z: tuple[float, float] = (0.004, 0.07)
    wrist_x: tuple[float, float] = (-0.07, 0.0)
    wrist_half_width: float = 0.035
    wrist_z: tuple[float, float] = (0.07, 0.13)
    forearm_length: float = 0.25
    forearm_half_width: float = 0.03
    forearm_rise_deg: float = 30.0
    base_xy: tuple[float, float] = (0.0, -0.6)  # the robot's base, where the forearm heads


@dataclass(frozen=True)
class CameraOptions:
    """The camera's intrinsics, pose and image effects. ``world_T_camera`` overrides ``view``."""

    width: int = 640
    height: int = 480
    horizontal_fov_deg: float = 40.0
    view: str = "overhead"  # overhead | oblique
    distance_m: float = 0.8  # from the camera to the table's origin
    oblique_tilt_deg: float = 35.0  # from the vertical, for the oblique view
    oblique_azimuth_deg: float = 90.0  # where the oblique camera stands, from world +x (90: at +y)
    world_T_camera: np.ndarray | None = None
    mount: TagMount = field(default_factory=TagMount)
    blur_sigma_px: tuple[float, float] = (0.3, 0.8)  # per frame, uniform
    noise_std: float = 1.0  # grey levels
    gain_range: tuple[float, float] = (0.85, 1.15)  # the per-frame gain's bounds ...
    gain_step: float = 0.01  # ... and its random walk's step per frame
    gradient_range: float = 0.15  # the per-run gradient changes brightness by up to this across the image
    arm: Arm | None = field(default_factory=Arm)  # None draws no arm

    def __post_init__(self) -> None:
        if self.view not in ("overhead", "oblique"):
            raise ValueError(f"camera view '{self.view}' is unknown; expected overhead or oblique")
        if self.width <= 0 or self.height <= 0 or not 1.0 < self.horizontal_fov_deg < 170.0:
            raise ValueError(f"camera {self.width}x{self.height} with a {self.horizontal_fov_deg}° field of view "
                             "is not a pinhole camera")
        if not (math.isfinite(self.distance_m) and self.distance_m > 0.2):
            raise ValueError(f"camera distance {self.distance_m} m must be > 0.2 m, above the arm")
        if not (self.noise_std >= 0.0 and 0.0 <= self.blur_sigma_px[0] <= self.blur_sigma_px[1]):
            raise ValueError("camera noise_std must be >= 0 and blur_sigma_px an increasing pair >= 0")
        problem = self.mount.problem()
        if problem:
            raise ValueError(problem)

    def extrinsics(self) -> np.ndarray:
        """``world_T_camera``: the given one, or the view's (looking at the table's origin)."""
        if self.world_T_camera is not None:
            return np.asarray(self.world_T_camera, dtype=float)
        if self.view == "overhead":
            return look_at([0.0, 0.0, self.distance_m], [0.0, 0.0, 0.0])
        tilt, azimuth = math.radians(self.oblique_tilt_deg), math.radians(self.oblique_azimuth_deg)
        eye = self.distance_m * np.array(
            [math.sin(tilt) * math.cos(azimuth), math.sin(tilt) * math.sin(azimuth), math.cos(tilt)])
        return look_at(eye, [0.0, 0.0, 0.0])

    def camera_info(self) -> CameraInfo:
        return CameraInfo.from_fov(self.width, self.height, self.horizontal_fov_deg)


@dataclass(frozen=True)
class CameraFrame:
    """A rendered mono8 frame and its ground truth."""

    stamp_ns: int
    image: np.ndarray  # (height, width) uint8
    tag_corners_px: np.ndarray  # (4, 2), OpenCV's marker corner order
    tag_visible: float  # share of the tag's pixels in view and not under the arm, in [0, 1]


class CameraRenderer:
    """Renders the table scene for object and end-effector poses; see the module's docstring."""

    def __init__(self, options: CameraOptions | None = None, rng: np.random.Generator | None = None) -> None:
        self.options = options or CameraOptions()
        self.rng = rng if rng is not None else np.random.default_rng(0)
        self.info = self.options.camera_info()
        self.K = np.asarray(self.info.K, dtype=float)
        self.world_T_camera = self.options.extrinsics()
        self.camera_T_world = inverse(self.world_T_camera)
        self._shape = (self.options.height, self.options.width)
        self._table = self._table_image()
        mount = self.options.mount
        self._top_z = float(mount.object_T_tag[2, 3])
        marker = cv2.aruco.getPredefinedDictionary(DICTIONARY).generateImageMarker(int(mount.tag_id), 8 * TAG_CELL_PX)
        self._tag_texture = cv2.copyMakeBorder(marker, TAG_CELL_PX, TAG_CELL_PX, TAG_CELL_PX, TAG_CELL_PX,
                                               cv2.BORDER_CONSTANT, value=TOP_GREY)
        half = 0.5 * mount.size_m
        self._tag_points = np.array([[-half, half, 0.0], [half, half, 0.0], [half, -half, 0.0], [-half, -half, 0.0]])
        n = float(self._tag_texture.shape[0])
        self._texture_corners = np.array([[-0.5, -0.5], [n - 0.5, -0.5], [n - 0.5, n - 0.5], [-0.5, n - 0.5]],
                                         dtype=np.float32)
        self.start_run()

    def start_run(self) -> None:
        """A new lighting for a new run: the gradient's direction and strength, the gain's start."""
        o = self.options
        angle = self.rng.uniform(-math.pi, math.pi)
        strength = self.rng.uniform(0.0, o.gradient_range)
        rows, cols = np.mgrid[0:o.height, 0:o.width].astype(np.float32)
        u = ((cols - 0.5 * o.width) * math.cos(angle) + (rows - 0.5 * o.height) * math.sin(angle)) / max(o.width,
                                                                                                        o.height)
        self._lighting = (1.0 + strength * u).astype(np.float32)
        self._gain = float(self.rng.uniform(*o.gain_range))

    def _table_image(self) -> np.ndarray:
        """The table's texture seen by the camera, over a dark floor (float32 grey levels)."""
        n = TABLE_TEXTURE_PX
        coarse = self.rng.standard_normal((n // 16, n // 16)).astype(np.float32)
        texture = cv2.resize(coarse, (n, n), interpolation=cv2.INTER_CUBIC)
        texture = TABLE_GREY + TABLE_TEXTURE_CONTRAST * texture / max(1e-6, float(np.std(texture)))
        e = TABLE_EXTENT_M
        corners = np.array([[-e, e, 0.0], [e, e, 0.0], [e, -e, 0.0], [-e, -e, 0.0]])
        uv = project(self.K, self.camera_T_world, corners)
        floor = np.full(self._shape, FLOOR_GREY, dtype=np.float32)
        if not np.all(np.isfinite(uv)):
            return floor  # the camera sees past the table's edge towards the horizon: no table drawn
        src = np.array([[-0.5, -0.5], [n - 0.5, -0.5], [n - 0.5, n - 0.5], [-0.5, n - 0.5]], dtype=np.float32)
        H = cv2.getPerspectiveTransform(src, uv.astype(np.float32))
        cv2.warpPerspective(texture.astype(np.float32), H, self._shape[::-1], dst=floor, flags=cv2.INTER_LINEAR,
                            borderMode=cv2.BORDER_TRANSPARENT)
        return floor

    def tag_corners(self, object_pose: np.ndarray) -> np.ndarray:
        """The tag's corners in pixels (4, 2) for an object pose (x, y, yaw)."""
        camera_T_tag = self.camera_T_world @ planar(object_pose) @ self.options.mount.object_T_tag
        return project(self.K, camera_T_tag, self._tag_points)

    def render(self, shape: Shape, object_pose: np.ndarray, ee_pose: np.ndarray | None,
               stamp_ns: int = 0) -> CameraFrame:
        """One frame: the object at ``object_pose`` and, unless ``ee_pose`` is None, the arm at ``ee_pose``."""
        o = self.options
        image = self._table.astype(np.uint8)
        world_T_object = planar(object_pose)
        camera_T_object = self.camera_T_world @ world_T_object

        # The prism: its silhouette (the hull of both faces) in the sides' grey, then its top face.
        outline = shape.footprint(48)[:-1]
        bottom = np.column_stack([outline, np.zeros(len(outline))])
        top = np.column_stack([outline, np.full(len(outline), self._top_z)])
        top_uv = project(self.K, camera_T_object, top)
        hull_uv = project(self.K, camera_T_object, np.vstack([bottom, top]))
        if np.all(np.isfinite(hull_uv)):
            _fill(image, cv2.convexHull(hull_uv.astype(np.float32)).reshape(-1, 2), SIDE_GREY)
            _fill(image, top_uv, TOP_GREY)

        # The tag, warped into its bounding box only.
        camera_T_tag = camera_T_object @ o.mount.object_T_tag
        tag_uv = project(self.K, camera_T_tag, self._tag_points)
        quiet = self._tag_points * (10.0 / 8.0)
        quiet_uv = project(self.K, camera_T_tag, quiet)
        if np.all(np.isfinite(quiet_uv)):
            x0, y0 = np.floor(quiet_uv.min(axis=0)).astype(int) - 1
            x1, y1 = np.ceil(quiet_uv.max(axis=0)).astype(int) + 2
            cx0, cy0, cx1, cy1 = max(x0, 0), max(y0, 0), min(x1, o.width), min(y1, o.height)
            if cx1 > cx0 and cy1 > cy0:
                H = cv2.getPerspectiveTransform(self._texture_corners, (quiet_uv - [cx0, cy0]).astype(np.float32))
                roi = image[cy0:cy1, cx0:cx1]
                cv2.warpPerspective(self._tag_texture, H, (cx1 - cx0, cy1 - cy0), dst=roi, flags=cv2.INTER_LINEAR,
                                    borderMode=cv2.BORDER_TRANSPARENT)

        visible = _tag_in_view(tag_uv, o.width, o.height)
        if ee_pose is not None and o.arm is not None:
            arm_mask = np.zeros(self._shape, dtype=np.uint8) if visible > 0.0 else None
            for grey, box in zip(ARM_GREYS, self._arm_boxes(np.asarray(ee_pose, dtype=float), o.arm), strict=True):
                uv = project(self.K, self.camera_T_world, box)
                if not np.all(np.isfinite(uv)):
                    continue
                hull = cv2.convexHull(uv.astype(np.float32)).reshape(-1, 2)
                _fill(image, hull, grey)
                if arm_mask is not None:
                    _fill(arm_mask, hull, 255)
            if arm_mask is not None:
                visible = _unmasked_share(tag_uv, arm_mask, visible)

        # Blur, lighting, noise.
        sigma = float(self.rng.uniform(*o.blur_sigma_px))
        if sigma > 0.05:
            image = cv2.GaussianBlur(image, (0, 0), sigma)
        lo, hi = o.gain_range
        self._gain = float(np.clip(self._gain + o.gain_step * self.rng.standard_normal(), lo, hi))
        frame = image.astype(np.float32) * (self._gain * self._lighting)
        if o.noise_std > 0.0:
            frame += o.noise_std * self.rng.standard_normal(self._shape, dtype=np.float32)
        out = np.clip(frame + 0.5, 0.0, 255.0).astype(np.uint8)
        return CameraFrame(int(stamp_ns), out, tag_uv, float(visible))

    def _arm_boxes(self, ee: np.ndarray, arm: Arm) -> list[np.ndarray]:
        """World corners (8, 3) of the sensor body, the wrist and the forearm."""
        world_T_ee = planar(ee)
        boxes = []
        for (x0, x1), half, (z0, z1) in ((arm.body_x, arm.body_half_width, arm.body_z),
                                         (arm.wrist_x, arm.wrist_half_width, arm.wrist_z)):
            local = np.array([[x, y, z] for x in (x0, x1) for y in (-half, half) for z in (z0, z1)])
            boxes.append(local @ world_T_ee[:3, :3].T + world_T_ee[:3, 3])
        start = world_T_ee[:3, :3] @ np.array([0.5 * sum(arm.wrist_x), 0.0, arm.wrist_z[1]]) + world_T_ee[:3, 3]
        towards = np.array([arm.base_xy[0] - start[0], arm.base_xy[1] - start[1]])
        towards = towards / max(1e-9, float(np.linalg.norm(towards)))
        rise = math.radians(arm.forearm_rise_deg)
        axis = np.array([towards[0] * math.cos(rise), towards[1] * math.cos(rise), math.sin(rise)])
        side = np.array([-towards[1], towards[0], 0.0])
        up = np.cross(axis, side)
        h = arm.forearm_half_width
        boxes.append(np.array([start + t * arm.forearm_length * axis + a * h * side + b * h * up
                               for t in (0.0, 1.0) for a in (-1.0, 1.0) for b in (-1.0, 1.0)]))
        return boxes


def _fill(image: np.ndarray, uv: np.ndarray, value: int) -> None:
    """An anti-aliased convex polygon with sub-pixel vertices (4 fractional bits)."""
    points = np.round(np.asarray(uv, dtype=float) * 16.0).astype(np.int32).reshape(-1, 1, 2)
    cv2.fillPoly(image, [points], int(value), lineType=cv2.LINE_AA, shift=4)


def _tag_in_view(tag_uv: np.ndarray, width: int, height: int) -> float:
    if not np.all(np.isfinite(tag_uv)):
        return 0.0
    inside = (tag_uv[:, 0] >= 0) & (tag_uv[:, 0] <= width - 1) & (tag_uv[:, 1] >= 0) & (tag_uv[:, 1] <= height - 1)
    return 1.0 if inside.all() else 0.0


def _unmasked_share(tag_uv: np.ndarray, mask: np.ndarray, visible: float) -> float:
    """The share of the tag's quad not covered by ``mask``."""
    x0, y0 = np.floor(tag_uv.min(axis=0)).astype(int)
    x1, y1 = np.ceil(tag_uv.max(axis=0)).astype(int) + 1
    roi = mask[y0:y1, x0:x1]
    quad = np.zeros_like(roi)
    cv2.fillPoly(quad, [np.round((tag_uv - [x0, y0]) * 16.0).astype(np.int32).reshape(-1, 1, 2)], 255, shift=4)
    area = int(np.count_nonzero(quad))
    if area == 0:
        return 0.0
    return visible * (1.0 - np.count_nonzero(quad & roi) / area)


def render_run(run, renderer: CameraRenderer, rate_hz: float = 15.0, shape: Shape | None = None) -> list[CameraFrame]:
    """Camera frames of a ``sim.pushing.SimulatedRun`` at about ``rate_hz``.

    Each frame is stamped with the tactile stamp nearest its nominal time and drawn from that stamp's
    ground truth (object and end-effector), so the frame's truth is exact.
    """
    if not (math.isfinite(rate_hz) and rate_hz > 0.0):
        raise ValueError(f"camera rate {rate_hz} Hz must be > 0")
    shape = shape or Shape.from_info(run.object_info)
    stamps = np.array([s.stamp_ns for s in run.ground_truth], dtype=np.int64)
    nominal = np.arange(stamps[0], stamps[-1] + 1, 1e9 / rate_hz)
    picks = np.unique(np.abs(stamps[None, :] - nominal[:, None]).argmin(axis=1))
    renderer.start_run()
    return [renderer.render(shape, run.ground_truth[i].pose, run.ee_ground_truth[i].pose, int(stamps[i]))
            for i in picks]
