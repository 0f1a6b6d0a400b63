"""DIGIT-like tactile images rendered from the planar contact geometry.

A DIGIT photographs its gel, lit from three sides by red, green and blue LEDs; where an object
presses in, the gel's surface tilts and each LED's share of the light changes, which is what
colours an imprint. This renderer makes the same kind of image from the planar model:

- The image is a top-down window of the gel in the end-effector (sensor) frame, centred on the
  apex: rows run along ee x (the object side, +x, at the top), columns along ee y (+y on the
  left, so the view is not mirrored), with square pixels of ``PIXEL_M``.
- In contact, the object's rim presses a band into the gel: the indentation is deepest on the rim
  and stays at that depth for a little way into the object's footprint (the lens where the object
  overlaps the gel tip), then falls off; outside the footprint the gel relaxes within a fraction
  of a millimetre. The gel tip is curved, so the indentation fades with distance from the contact
  point. Faces thus show as lines at the face's angle, corners as corners, discs and ellipses as
  arcs. Sliding along a straight face leaves the image unchanged, as it does on a real sensor.
- Shading is Lambertian from the height map's normals under three coloured lights, added to a
  real DIGIT background frame, with a per-run lighting variation and per-frame sensor noise.
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from tactile_estimator import geometry as se2
from tactile_estimator.objects import Pusher, Shape

HEIGHT, WIDTH = 320, 240  # DIGIT image, rows x columns
PIXEL_M = 0.075e-3  # square pixels: 320 rows span 24 mm of ee x, 240 columns span 18 mm of ee y
BACKGROUND_FILE = "bg_digit_240_320.jpg"  # 240 wide, 320 tall
_PACKAGE_DATA = Path(__file__).resolve().parent.parent / "data"

# The height map is computed on a grid DOWNSAMPLE times coarser than the image (0.15 mm cells, far
# finer than the imprint's 0.3 mm features) and the shading is resized up: this keeps a frame
# within a few milliseconds on a laptop CPU.
DOWNSAMPLE = 2

RIM_PLATEAU_M = 0.5e-3  # the indentation keeps its full depth this far inside the rim ...
RIM_FALLOFF_M = 0.6e-3  # ... then falls off over about this distance (gone by ~1.5 mm)
OUTSIDE_FALLOFF_M = 0.3e-3  # the gel relaxes this fast outside the object's footprint
TIP_FALLOFF_M = 5e-3  # the curved tip: the indentation fades with this sigma from the contact

# LED directions in image coordinates (column to the right, row downwards, z towards the camera):
# red from the top, green from the lower left, blue from the lower right, 30 degrees above the gel.
_ELEVATION = np.deg2rad(30.0)
_AZIMUTHS = np.deg2rad([-90.0, 150.0, 30.0])  # R, G, B; angles from +column towards +row
LIGHTS = np.stack(
    [np.cos(_ELEVATION) * np.cos(_AZIMUTHS), np.cos(_ELEVATION) * np.sin(_AZIMUTHS), np.full(3, np.sin(_ELEVATION))],
    axis=-1,
)
SHADING_GAIN = 90.0  # grey levels per unit change of N.L: imprints change a DIGIT frame by tens of levels

LIGHTING_GAIN_RANGE = 0.05  # per-run LED brightness, +-5 %
LIGHTING_OFFSET_RANGE = 5.0  # per-run camera offset, +-5 grey levels


def load_background(path: str | Path | None = None) -> np.ndarray:
    """A real DIGIT frame of the bare gel as RGB uint8, shape (320, 240, 3).

    The package ships a byte-identical copy of ``shared/data/digit/bg_digit_240_320.jpg`` so that
    installs without the shared data folder can render.
    """
    path = Path(path) if path is not None else _PACKAGE_DATA / BACKGROUND_FILE
    bgr = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if bgr is None:
        raise FileNotFoundError(f"cannot read the DIGIT background image {path}")
    if bgr.shape != (HEIGHT, WIDTH, 3):
        raise ValueError(f"DIGIT background {path} is {bgr.shape[1]}x{bgr.shape[0]}; expected {WIDTH}x{HEIGHT}")
    return cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)


def pixel_grid_in_ee(downsample: int = 1) -> np.ndarray:
    """Centres of the image's pixels (or of downsample x downsample blocks) in the ee frame, (rows, cols, 2)."""
    pitch = PIXEL_M * downsample
    rows, cols = HEIGHT // downsample, WIDTH // downsample
    x = 0.5 * HEIGHT * PIXEL_M - (np.arange(rows) + 0.5) * pitch
    y = 0.5 * WIDTH * PIXEL_M - (np.arange(cols) + 0.5) * pitch
    xx, yy = np.meshgrid(x, y, indexing="ij")
    return np.stack([xx, yy], axis=-1)


def ee_point_to_pixel(point: np.ndarray) -> np.ndarray:
    """(row, column) of a point in the ee frame, in full-resolution pixel units (inverse of the grid)."""
    point = np.asarray(point, dtype=float)
    row = (0.5 * HEIGHT * PIXEL_M - point[..., 0]) / PIXEL_M - 0.5
    col = (0.5 * WIDTH * PIXEL_M - point[..., 1]) / PIXEL_M - 0.5
    return np.stack([row, col], axis=-1)


def rim_profile(sdf: np.ndarray) -> np.ndarray:
    """Indentation (0..1) as a function of the object's signed distance; C1 so the shading is smooth."""
    inside = np.maximum(-sdf - RIM_PLATEAU_M, 0.0) / RIM_FALLOFF_M
    outside = np.maximum(sdf, 0.0) / OUTSIDE_FALLOFF_M
    return np.exp(-(inside * inside) - outside * outside)


def contact_point_in_ee(shape: Shape, object_pose: np.ndarray, ee_pose: np.ndarray, pusher: Pusher) -> np.ndarray:
    """The object's boundary point closest to the gel tip's centre, in the ee frame."""
    ee_in_object = se2.between(object_pose, ee_pose)
    centre = se2.transform_point(ee_in_object, pusher.centre_in_ee())
    distance, gradient = shape.sdf(centre)
    return se2.transform_point_inverse(ee_in_object, centre - distance * gradient)


class TactileRenderer:
    """Renders DIGIT-like RGB frames; one instance per run keeps the run's lighting."""

    def __init__(
        self, background: np.ndarray | None = None, seed: int = 0, noise_std: float = 2.0, pusher: Pusher | None = None
    ) -> None:
        background = load_background() if background is None else np.asarray(background)
        if background.shape != (HEIGHT, WIDTH, 3) or background.dtype != np.uint8:
            raise ValueError(
                f"background must be uint8 of shape {(HEIGHT, WIDTH, 3)}, not {background.dtype} {background.shape}"
            )
        if noise_std < 0.0:
            raise ValueError(f"noise_std must be >= 0, not {noise_std}")
        self.background = background
        self.noise_std = float(noise_std)
        self.pusher = pusher or Pusher()
        self._rng = np.random.default_rng(seed)
        self._grid = pixel_grid_in_ee(DOWNSAMPLE)
        self.start_run()

    def start_run(self) -> None:
        """Draw this run's lighting: the LEDs' brightness and the camera's offset drift between runs."""
        gain = 1.0 + self._rng.uniform(-LIGHTING_GAIN_RANGE, LIGHTING_GAIN_RANGE)
        offset = self._rng.uniform(-LIGHTING_OFFSET_RANGE, LIGHTING_OFFSET_RANGE)
        self._gain = np.float32(gain)
        self._bare = self.background.astype(np.float32) * self._gain + np.float32(offset)

    def bare_gel(self) -> np.ndarray:
        """The noiseless frame of the untouched gel under this run's lighting, float32 (320, 240, 3)."""
        return self._bare.copy()

    def height_map(self, shape: Shape, object_pose: np.ndarray, ee_pose: np.ndarray, depth_m: float) -> np.ndarray:
        """Indentation of the gel (m) on the coarse grid, (HEIGHT // DOWNSAMPLE, WIDTH // DOWNSAMPLE)."""
        ee_in_object = se2.between(object_pose, ee_pose)
        sdf, _ = shape.sdf(se2.transform_point(ee_in_object, self._grid))
        contact = contact_point_in_ee(shape, object_pose, ee_pose, self.pusher)
        d2 = np.sum((self._grid - contact) ** 2, axis=-1)
        return depth_m * rim_profile(sdf) * np.exp(-0.5 * d2 / TIP_FALLOFF_M**2)

    def render(
        self, shape: Shape, object_pose: np.ndarray, ee_pose: np.ndarray, in_contact: bool, depth_m: float
    ) -> np.ndarray:
        """One RGB frame, uint8 (320, 240, 3). Out of contact it is the bare gel with sensor noise."""
        frame = self._bare
        if in_contact and depth_m > 0.0:
            frame = frame + self._shading(self.height_map(shape, object_pose, ee_pose, depth_m))
        if self.noise_std > 0.0:
            frame = frame + self._rng.standard_normal(frame.shape, dtype=np.float32) * np.float32(self.noise_std)
        return np.clip(frame, 0.0, 255.0).astype(np.uint8)

    def _shading(self, height: np.ndarray) -> np.ndarray:
        """Change of each LED's Lambertian term from the flat gel, at full resolution, float32."""
        pitch = PIXEL_M * DOWNSAMPLE
        d_row, d_col = np.gradient(height.astype(np.float32), pitch)
        # Indentation moves the surface away from the camera, so its normal is (d_col, d_row, 1).
        norm = np.sqrt(1.0 + d_col * d_col + d_row * d_row)
        normal = np.stack([d_col, d_row, np.ones_like(d_col)], axis=-1) / norm[..., None]
        shading = (normal @ LIGHTS.T.astype(np.float32) - LIGHTS[:, 2].astype(np.float32)) * np.float32(SHADING_GAIN)
        shading = cv2.resize(shading, (WIDTH, HEIGHT), interpolation=cv2.INTER_LINEAR)
        return shading * self._gain
