"""``tactile-estimator view BAG --out FILE``: the tactile frames beside the contact state and the estimate.

Each picture has three panels: the DIGIT frame as recorded; its difference from the gel background,
the signal contact detection thresholds (the background and the detector are the estimator's own,
contact_detection.py), with the contact state; and a top view of the object: ground truth and
camera detections where the bag has them, and the estimated path up to the frame, with the
footprints at the frame's time. The estimate is a replay's ``estimates.csv`` (``--estimates``), or,
without one, the estimator is run over the bag first, as ``replay`` runs it.

``--out`` decides the form: ``.gif`` (an animation, every ``--every``-th frame), ``.png`` (a strip of
``--frames`` pictures, one under another, evenly spaced over the bag) or ``.mp4`` (as the GIF).
"""

from __future__ import annotations

import csv
import io
import os
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from tactile_estimator import geometry as se2
from tactile_estimator.config import ConfigError, EstimatorConfig
from tactile_estimator.contact_detection import ContactDetector
from tactile_estimator.io import atomic, bags, messages
from tactile_estimator.objects import Shape
from tactile_estimator.progress import progress

FORMATS = (".gif", ".png", ".mp4")
TOP_VIEW = 320  # pixels, square
TEXT = cv2.FONT_HERSHEY_SIMPLEX
# BGR colours (the picture is assembled in OpenCV's order, converted once when written)
BLACK, GREY, BLUE, RED, GREEN, ORANGE, WHITE = ((0, 0, 0), (150, 150, 150), (200, 110, 30), (40, 40, 210),
                                                (60, 160, 60), (0, 140, 255), (255, 255, 255))


@dataclass
class Track:
    stamps: np.ndarray  # (n,) ns
    poses: np.ndarray  # (n, 3)

    def at(self, stamp_ns: int) -> np.ndarray | None:
        """The last pose at or before ``stamp_ns`` (None before the first)."""
        i = int(np.searchsorted(self.stamps, stamp_ns, side="right")) - 1
        return None if i < 0 else self.poses[i]

    def until(self, stamp_ns: int) -> np.ndarray:
        return self.poses[: int(np.searchsorted(self.stamps, stamp_ns, side="right"))]


def _track(samples: list[tuple[int, np.ndarray]]) -> Track:
    samples.sort(key=lambda s: s[0])
    return Track(np.array([s for s, _ in samples], dtype=np.int64), np.array([p for _, p in samples]).reshape(-1, 3))


def read_estimates(path: str | os.PathLike[str]) -> Track:
    """A replay's ``estimates.csv`` (or the replay folder holding one) -> the online estimate's track."""
    path = Path(path)
    if path.is_dir():
        path = path / "estimates.csv"
    try:
        with open(path, newline="") as handle:
            rows = list(csv.DictReader(handle))
    except OSError as error:
        raise ConfigError(f"--estimates {path}: {error.strerror or error}") from None
    try:
        samples = [(int(r["stamp_ns"]), np.array([float(r["x"]), float(r["y"]), float(r["theta"])])) for r in rows]
    except (KeyError, TypeError, ValueError) as error:
        raise ConfigError(f"--estimates {path}: not a replay's estimates.csv (stamp_ns, x, y, theta): "
                          f"{type(error).__name__} {error}") from None
    if not samples:
        raise ConfigError(f"--estimates {path} holds no estimates")
    return _track(samples)


def run_estimator(bag: Path, config: EstimatorConfig, model_dir: str | None) -> Track:
    """The online estimate of a replay of ``bag`` (its other outputs go to a temporary folder)."""
    import torch

    from tactile_estimator.adapters.replay import replay_bag
    from tactile_estimator.networks.tactile import TactileModel

    torch.set_num_threads(config.network_threads)
    model = TactileModel.load(model_dir or config.model or None)
    with tempfile.TemporaryDirectory(prefix="tactile-view-") as scratch:
        result = replay_bag(bag, config, model, Path(scratch) / "replay")
    return _track([(e.stamp_ns, np.asarray(e.pose, dtype=float)) for e in result.estimates])


@dataclass
class Recording:
    shape: Shape
    frames: list[tuple[int, np.ndarray]]  # (stamp, RGB image)
    truth: Track
    camera: Track


def _read(bag: Path, config: EstimatorConfig) -> Recording:
    t = config.topics
    tactile = [t.tactile, t.tactile.rstrip("/") + "/compressed"]
    bags.require_topics(bag, [tactile])
    shape = bags.object_shape(bag, config)
    hw = (config.image_height, config.image_width)
    frames: list[tuple[int, np.ndarray]] = []
    truth: list[tuple[int, np.ndarray]] = []
    camera: list[tuple[int, np.ndarray]] = []
    for message in bags.read_messages(bag, [*tactile, t.ground_truth, t.camera]):
        try:
            if message.topic in tactile:
                frame = messages.image_to_frame(message.msg, message.msgtype, message.topic, hw)
                frames.append((frame.stamp_ns, frame.image))
            else:
                sample = messages.pose_to_sample(message.msg, message.msgtype, message.topic, np.pi)
                (truth if message.topic == t.ground_truth else camera).append((sample.stamp_ns, sample.pose))
        except messages.InputRejected:
            continue  # a frame or pose the estimator would drop is not shown either
    if not frames:
        raise bags.BagError(f"bag {bag}: no tactile frame on {' or '.join(tactile)} could be decoded")
    frames.sort(key=lambda f: f[0])
    return Recording(shape, frames, _track(truth), _track(camera))


class _TopView:
    """World (x, y) -> pixels of a square panel holding every path with a margin of one object size."""

    def __init__(self, tracks: list[np.ndarray], shape: Shape) -> None:
        points = np.concatenate([p[:, :2] for p in tracks if len(p)] or [np.zeros((1, 2))])
        reach = float(np.max(np.linalg.norm(shape.footprint(), axis=1)))
        low, high = points.min(axis=0) - reach, points.max(axis=0) + reach
        self.centre = 0.5 * (low + high)
        self.scale = (TOP_VIEW - 40) / max(float(np.max(high - low)), 1e-3)
        self.shape = shape

    def pixels(self, xy: np.ndarray) -> np.ndarray:
        u = TOP_VIEW / 2 + (xy[..., 0] - self.centre[0]) * self.scale
        v = TOP_VIEW / 2 - (xy[..., 1] - self.centre[1]) * self.scale  # y up
        return np.stack([u, v], axis=-1).round().astype(np.int32)

    def path(self, image: np.ndarray, poses: np.ndarray, colour: tuple[int, int, int], width: int = 1) -> None:
        if len(poses) >= 2:
            cv2.polylines(image, [self.pixels(poses[:, :2])], False, colour, width, cv2.LINE_AA)

    def footprint(self, image: np.ndarray, pose: np.ndarray | None, colour: tuple[int, int, int]) -> None:
        if pose is not None:
            outline = se2.transform_point(pose, self.shape.footprint(48))
            cv2.polylines(image, [self.pixels(outline)], True, colour, 2, cv2.LINE_AA)


def _label(image: np.ndarray, text: str, row: int, colour: tuple[int, int, int] = BLACK, scale: float = 0.45) -> None:
    cv2.putText(image, text, (6, 16 + 18 * row), TEXT, scale, colour, 1, cv2.LINE_AA)


def _picture(recording: Recording, estimate: Track, view: _TopView, index: int, image: np.ndarray,
             contact: bool | None, background: np.ndarray | None) -> np.ndarray:
    stamp = recording.frames[index][0]
    height, width = image.shape[:2]
    raw = cv2.cvtColor(image, cv2.COLOR_RGB2BGR)
    if background is None:
        diff = np.zeros_like(raw)
    else:
        strongest = np.abs(image.astype(np.float32) - background).max(axis=2)
        diff = cv2.applyColorMap(np.clip(strongest * 4.0, 0, 255).astype(np.uint8), cv2.COLORMAP_INFERNO)
    state, colour = {None: ("background", GREY), True: ("CONTACT", ORANGE), False: ("no contact", WHITE)}[contact]
    cv2.putText(diff, state, (6, height - 10), TEXT, 0.6, colour, 2, cv2.LINE_AA)
    t0 = recording.frames[0][0]
    _label(raw, f"frame {index}  t {(stamp - t0) * 1e-9:.2f} s", 0, WHITE)
    _label(diff, "difference from the gel background", 0, WHITE, 0.4)

    top = np.full((TOP_VIEW, TOP_VIEW, 3), 255, np.uint8)
    view.path(top, recording.truth.until(stamp), GREY, 2)
    view.path(top, estimate.until(stamp), BLUE, 1)
    for pose in recording.camera.until(stamp):
        cv2.circle(top, tuple(int(v) for v in view.pixels(pose[:2])), 3, GREEN, -1, cv2.LINE_AA)
    view.footprint(top, recording.truth.at(stamp), BLACK)
    view.footprint(top, estimate.at(stamp), RED)
    _label(top, "ground truth", 0, BLACK)
    _label(top, "estimate", 1, RED)
    _label(top, "camera detections", 2, GREEN)
    panels = [raw, diff, cv2.resize(top, (round(TOP_VIEW * height / TOP_VIEW), height))]
    gap = np.full((height, 4, 3), 255, np.uint8)
    return np.hstack([panels[0], gap, panels[1], gap, panels[2]])


def _chosen(count: int, suffix: str, every: int, frames: int) -> list[int]:
    if suffix == ".png":
        return sorted({round(i) for i in np.linspace(0, count - 1, min(frames, count))})
    return list(range(0, count, every))


def render(recording: Recording, estimate: Track, config: EstimatorConfig, chosen: list[int]) -> Iterator[np.ndarray]:
    """The pictures (BGR) of the ``chosen`` frames; contact detection runs over every frame, in order."""
    view = _TopView([recording.truth.poses, estimate.poses, recording.camera.poses], recording.shape)
    detector = ContactDetector(config.contact)
    wanted = set(chosen)
    for index in progress(range(len(recording.frames)), "view", unit="frame"):
        image = recording.frames[index][1]
        contact = detector.update(image)
        if index in wanted:
            yield _picture(recording, estimate, view, index, image, contact, detector.background)


def _encode(pictures: list[np.ndarray], suffix: str, fps: float, target: Path) -> bytes:
    if suffix == ".png":
        ok, data = cv2.imencode(".png", np.vstack(pictures))
        if not ok:
            raise ConfigError(f"--out {target}: the PNG could not be encoded")
        return data.tobytes()
    if suffix == ".gif":
        from PIL import Image

        frames = [Image.fromarray(cv2.cvtColor(p, cv2.COLOR_BGR2RGB)) for p in pictures]
        buffer = io.BytesIO()
        frames[0].save(buffer, format="GIF", save_all=True, append_images=frames[1:], loop=0,
                       duration=max(20, round(1000 / fps)), optimize=False)
        return buffer.getvalue()
    with tempfile.TemporaryDirectory(prefix="tactile-view-") as scratch:  # VideoWriter wants a file name
        path = Path(scratch) / "view.mp4"
        height, width = pictures[0].shape[:2]
        writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), fps, (width, height))
        if not writer.isOpened():
            raise ConfigError(f"--out {target}: this OpenCV cannot write mp4; use .gif or .png")
        for picture in pictures:
            writer.write(picture)
        writer.release()
        return path.read_bytes()


def view_bag(bag: str | os.PathLike[str], out: str | os.PathLike[str], config: EstimatorConfig, *,
             estimates: str | None = None, model: str | None = None, every: int = 1, frames: int = 6,
             fps: float = 10.0) -> tuple[Path, int]:
    """Write ``out`` for ``bag``; returns the path and the number of pictures in it."""
    target = Path(out)
    suffix = target.suffix.lower()
    if suffix not in FORMATS:
        raise ConfigError(f"--out {out}: the name must end in {', '.join(FORMATS)}")
    if every < 1 or frames < 1 or not fps > 0:
        raise ConfigError("--every and --frames must be at least 1 and --fps positive")
    atomic.writable_directory(target.parent, "--out's folder")
    track_given = read_estimates(estimates) if estimates else None  # a bad CSV is found before the bag is read
    location = bags.resolve_bag(bag)
    recording = _read(location, config)
    track = track_given if track_given is not None else run_estimator(location, config, model)
    chosen = _chosen(len(recording.frames), suffix, every, frames)
    pictures = list(render(recording, track, config, chosen))
    atomic.atomic_write_bytes(target, _encode(pictures, suffix, fps, target))
    return target, len(pictures)
