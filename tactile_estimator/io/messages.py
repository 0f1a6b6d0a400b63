"""ROS 2 message <-> record conversion, without ROS.

Messages are the dataclass objects of a ``rosbags`` typestore (ROS 2 Humble definitions), which is
what bag reading yields and what the Cyclone DDS transport can be fed. Incoming messages become the
plain records of :mod:`tactile_estimator.records`; a malformed one raises :class:`InputRejected`,
whose ``reason`` is a short key so that callers count dropped inputs instead of crashing or
silently using bad data. The builders go the other way, for the simulator and the outputs.
"""

from __future__ import annotations

import functools
import json
import math
import struct
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

import cv2
import numpy as np
from rosbags.typesys import Stores, get_typestore
from rosbags.typesys.store import Typestore

from tactile_estimator.config import positive_number, quote
from tactile_estimator.geometry import quaternion_from_yaw, yaw_from_quaternion
from tactile_estimator.records import CameraDetection, ObjectInfo, PoseSample, TactileFrame
from tactile_estimator.tf_buffer import StampedTransform

if TYPE_CHECKING:
    from tactile_estimator.objects import Shape

TYPESTORE: Typestore = get_typestore(Stores.ROS2_HUMBLE)
"""The message definitions used everywhere: ROS 2 Humble, the distribution the package targets."""

IMAGE = "sensor_msgs/msg/Image"
COMPRESSED_IMAGE = "sensor_msgs/msg/CompressedImage"
POSE_STAMPED = "geometry_msgs/msg/PoseStamped"
POSE_WITH_COVARIANCE_STAMPED = "geometry_msgs/msg/PoseWithCovarianceStamped"
STRING = "std_msgs/msg/String"
PATH = "nav_msgs/msg/Path"
TF_MESSAGE = "tf2_msgs/msg/TFMessage"
TF_OUT = "/tf"  # where the estimator publishes its object frame, live and in --write-bag
EMPTY = "std_msgs/msg/Empty"
DIAGNOSTIC_ARRAY = "diagnostic_msgs/msg/DiagnosticArray"
MARKER_ARRAY = "visualization_msgs/msg/MarkerArray"
OK, WARN, ERROR = 0, 1, 2  # diagnostic_msgs/DiagnosticStatus levels

CAMERA_INFO = "sensor_msgs/msg/CameraInfo"
IMAGE_TYPES = (IMAGE, COMPRESSED_IMAGE)
CAMERA_ENCODINGS = ("mono8", "rgb8", "bgr8")
CAMERA_PNG_FORMAT = "mono8; png compressed"
POSE_TYPES = (POSE_STAMPED, POSE_WITH_COVARIANCE_STAMPED)

RAW_ENCODINGS = ("rgb8", "bgr8")
MAX_IMAGE_SIDE = 4096
"""The longest image side taken at all (the config's limit on image_height/image_width): a larger
header is refused before any pixel is decoded or copied, so a decompression bomb costs nothing."""
QUATERNION_NORM_TOL = 1e-3
"""How far |q| may be from 1: float32 round trips stay far inside it, a hand-typed (0, 0, 0, 0) does not."""

# x, y and yaw rows/columns of ROS's 6x6 pose covariance (order x, y, z, roll, pitch, yaw).
_PLANAR_INDEX = np.array([0, 1, 5])

_OBJECT_SIZES = {"rect": 2, "disc": 1, "ellipse": 2}

REASONS = (
    "bad_image_encoding",
    "bad_image_size",
    "bad_image_data",
    "nan_pose",
    "non_planar_pose",
    "bad_covariance",
    "bad_object_info",
    "bad_transform",
    "unsupported_type",
    "camera_bad_image",  # a camera image of an encoding other than mono8/rgb8/bgr8, or data that is not one
    "camera_size_mismatch",  # a camera image whose size is not its CameraInfo's
    "camera_no_info",  # a camera image before any CameraInfo
    "camera_bad_info",  # a CameraInfo the detector cannot use (NaN, fx <= 0, a distortion model it lacks)
    "camera_no_extrinsics",  # no world -> camera transform for the image (not on /tf_static, none configured)
)
"""Every ``InputRejected.reason``, so that counters can be created up front."""


class InputRejected(ValueError):
    """A message that cannot become a record; ``reason`` is the key callers count drops under."""

    def __init__(self, reason: str, topic: str, stamp_ns: int | None, detail: str) -> None:
        self.reason = reason
        self.topic = topic
        self.stamp_ns = stamp_ns
        self.detail = " ".join(detail.split())
        where = topic if stamp_ns is None else f"{topic} at {_format_stamp(stamp_ns)}"
        super().__init__(f"{where}: {self.detail}")

    def __reduce__(self) -> tuple[type[InputRejected], tuple[str, str, int | None, str]]:
        # Picklable (e.g. raised in a DataLoader worker process) despite the custom signature.
        return (type(self), (self.reason, self.topic, self.stamp_ns, self.detail))


def _format_stamp(stamp_ns: int) -> str:
    sec, nsec = divmod(int(stamp_ns), 1_000_000_000)
    return f"{sec}.{nsec:09d} s"


# --------------------------------------------------------------------------------------------- time


def stamp_to_ns(stamp: Any) -> int:
    """``builtin_interfaces/Time`` -> integer nanoseconds (the internal time representation)."""
    return int(stamp.sec) * 1_000_000_000 + int(stamp.nanosec)


def ns_to_stamp(ns: int, typestore: Typestore = TYPESTORE) -> Any:
    """Integer nanoseconds -> ``builtin_interfaces/Time`` (nanosec always in [0, 1e9), as ROS requires)."""
    sec, nsec = divmod(int(ns), 1_000_000_000)
    return typestore.types["builtin_interfaces/msg/Time"](sec=sec, nanosec=nsec)


def _stamp_or_none(msg: Any) -> int | None:
    """The header stamp of a message that may not have one (for naming a rejected message)."""
    try:
        return stamp_to_ns(msg.header.stamp)
    except AttributeError:
        return None


def _header(stamp_ns: int, frame_id: str, typestore: Typestore) -> Any:
    return typestore.types["std_msgs/msg/Header"](stamp=ns_to_stamp(stamp_ns, typestore), frame_id=frame_id)


# ------------------------------------------------------------------------------------------- images


def image_to_frame(msg: Any, msgtype: str, topic: str, expected_hw: tuple[int, int] | None = None) -> TactileFrame:
    """An ``Image`` (rgb8/bgr8) or ``CompressedImage`` (jpeg/png) -> RGB uint8 ``TactileFrame``.

    The size the message claims (a raw image's height and width, a PNG's IHDR or a JPEG's frame
    header) is checked against ``expected_hw`` and :data:`MAX_IMAGE_SIDE` before anything is decoded.
    The image is copied, so the record does not pin (or alias) the message's buffer.
    """
    if msgtype not in IMAGE_TYPES:
        raise InputRejected(
            "unsupported_type",
            topic,
            _stamp_or_none(msg),
            f"message type {msgtype} is not one of {', '.join(IMAGE_TYPES)}",
        )
    stamp_ns = stamp_to_ns(msg.header.stamp)
    if msgtype == IMAGE:
        rgb = _raw_image_rgb(msg, topic, stamp_ns, expected_hw)
    else:
        rgb = _compressed_image_rgb(msg, topic, stamp_ns, expected_hw)
    if expected_hw is not None and tuple(rgb.shape[:2]) != tuple(expected_hw):
        raise InputRejected(
            "bad_image_size",
            topic,
            stamp_ns,
            f"image is {rgb.shape[0]}x{rgb.shape[1]} (height x width), expected {expected_hw[0]}x{expected_hw[1]}",
        )
    return TactileFrame(stamp_ns=stamp_ns, image=rgb, frame_id=msg.header.frame_id)


def _check_claimed_size(
    height: int, width: int, what: str, expected_hw: tuple[int, int] | None, topic: str, stamp_ns: int
) -> None:
    """Refuse a size an image claims before it is decoded: over the limit, or not the expected one.

    The expected size may appear either way round (EXIF orientation may turn a JPEG while it is
    decoded); the decoded image is held to the exact size afterwards.
    """
    detail = None
    if expected_hw is not None and (height, width) not in (tuple(expected_hw), tuple(expected_hw)[::-1]):
        detail = f"not the expected {expected_hw[0]}x{expected_hw[1]}"
    elif height > MAX_IMAGE_SIDE or width > MAX_IMAGE_SIDE:
        detail = f"over the limit of {MAX_IMAGE_SIDE} pixels a side"
    if detail is not None:
        raise InputRejected(
            "bad_image_size", topic, stamp_ns, f"{what} says {height}x{width} (height x width), {detail}; not decoded"
        )


def _raw_image_rgb(msg: Any, topic: str, stamp_ns: int, expected_hw: tuple[int, int] | None) -> np.ndarray:
    encoding = str(msg.encoding).lower()
    if encoding not in RAW_ENCODINGS:
        raise InputRejected(
            "bad_image_encoding",
            topic,
            stamp_ns,
            f"encoding {quote(msg.encoding)} is not one of {', '.join(RAW_ENCODINGS)}",
        )
    height, width, step = int(msg.height), int(msg.width), int(msg.step)
    data = np.asarray(msg.data, dtype=np.uint8).reshape(-1)
    if height <= 0 or width <= 0:
        raise InputRejected("bad_image_size", topic, stamp_ns, f"image is {height}x{width} (height x width)")
    _check_claimed_size(height, width, "image header", expected_hw, topic, stamp_ns)
    if step < 3 * width or data.size != step * height:
        raise InputRejected(
            "bad_image_data",
            topic,
            stamp_ns,
            f"{data.size} bytes with step {step} do not make a {height}x{width} {encoding} image "
            f"(need step >= {3 * width} and step * height = {step * height} bytes)",
        )
    # Rows may be padded (step > 3 * width); drop the padding.
    pixels = data.reshape(height, step)[:, : 3 * width].reshape(height, width, 3)
    if encoding == "bgr8":
        pixels = pixels[..., ::-1]
    return np.array(pixels, dtype=np.uint8, order="C", copy=True)


def _compressed_image_rgb(msg: Any, topic: str, stamp_ns: int, expected_hw: tuple[int, int] | None) -> np.ndarray:
    fmt = str(msg.format).lower()
    # image_transport writes e.g. "rgb8; jpeg compressed bgr8"; plain "jpeg"/"png" is common too.
    if (fmt and not any(name in fmt for name in ("jpeg", "jpg", "png"))) or "compresseddepth" in fmt:
        raise InputRejected(
            "bad_image_encoding", topic, stamp_ns, f"compressed format {quote(msg.format)} is not jpeg or png"
        )
    data = np.ascontiguousarray(msg.data, dtype=np.uint8).reshape(-1)
    try:
        kind, height, width = compressed_image_size(memoryview(data))
    except ValueError as error:
        raise InputRejected(
            "bad_image_data",
            topic,
            stamp_ns,
            f"{data.size} bytes of {quote(msg.format)} data have no image header: {error}",
        ) from None
    _check_claimed_size(height, width, f"{kind} header", expected_hw, topic, stamp_ns)
    problem = _png_chunk_problem(memoryview(data)) if kind == "png" else None
    if problem is not None:
        raise InputRejected("bad_image_data", topic, stamp_ns, f"{data.size} bytes of PNG data: {problem}; not decoded")
    bgr = cv2.imdecode(data, cv2.IMREAD_COLOR)
    if bgr is None or bgr.ndim != 3 or bgr.shape[2] != 3:
        raise InputRejected(
            "bad_image_data",
            topic,
            stamp_ns,
            f"{data.size} bytes of {quote(msg.format)} data do not decode to an image",
        )
    return np.ascontiguousarray(cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB))


_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
# JPEG start-of-frame markers, SOF0 to SOF15 less DHT (C4), JPG (C8) and DAC (CC): their segment
# holds the frame's size. Standalone markers (TEM, RST0-7) carry no length.
_JPEG_SOF = frozenset(range(0xC0, 0xD0)) - {0xC4, 0xC8, 0xCC}
_JPEG_STANDALONE = frozenset([0x01, *range(0xD0, 0xD8)])
_JPEG_MAX_MARKERS = 1000  # before the frame header; encoders write a dozen or so


def compressed_image_size(data: bytes | memoryview) -> tuple[str, int, int]:
    """(format, height, width) of PNG or JPEG data, read from its header alone (nothing is decoded).

    Raises ValueError saying what is wrong when ``data`` is neither format or its header is cut short.
    """
    if bytes(data[:8]) == _PNG_SIGNATURE:
        return ("png", *_png_size(data))
    if bytes(data[:2]) == b"\xff\xd8":
        return ("jpeg", *_jpeg_size(data))
    if not len(data):
        raise ValueError("there is no data")
    raise ValueError(f"the data is neither PNG nor JPEG (it starts {bytes(data[:8])!r})")


def _png_size(data: bytes | memoryview) -> tuple[int, int]:
    # The first chunk is IHDR (length 13): width and height, big-endian, come first in it.
    if len(data) < 24 or bytes(data[12:16]) != b"IHDR":
        raise ValueError("PNG data has no IHDR chunk where it must start")
    width, height = struct.unpack(">II", data[16:24])
    return height, width


def _png_chunk_problem(data: bytes | memoryview) -> str | None:
    """Why PNG data's chunks do not fit in it, or None: OpenCV allocates the length a chunk claims
    before reading it, so a 300-byte PNG whose IDAT claims 2 GB costs 4 GB of memory."""
    pos = 8  # after the signature
    while pos + 8 <= len(data):
        length = int.from_bytes(data[pos : pos + 4], "big")
        if pos + 12 + length > len(data):  # length, type, data, CRC
            return f"the chunk at byte {pos} claims {length} bytes, more than the data holds"
        if bytes(data[pos + 4 : pos + 8]) == b"IEND":
            return None
        pos += 12 + length
    return None


def _jpeg_size(data: bytes | memoryview) -> tuple[int, int]:
    """Walk the JPEG's markers after SOI up to its first start-of-frame segment."""
    pos = 2
    for _ in range(_JPEG_MAX_MARKERS):
        if pos + 1 >= len(data) or data[pos] != 0xFF:
            raise ValueError(f"JPEG data has no marker at byte {pos}, before any frame header")
        marker = data[pos + 1]
        if marker == 0xFF:  # a fill byte
            pos += 1
        elif marker in _JPEG_STANDALONE:
            pos += 2
        elif marker in (0xD9, 0xDA):  # end of image, or a scan
            raise ValueError("JPEG data has no frame header before its first scan")
        else:
            segment = bytes(data[pos + 2 : pos + 9])  # length, then (for a frame) precision, height, width
            length = int.from_bytes(segment[:2], "big")
            if marker in _JPEG_SOF and length >= 8 and len(segment) == 7:
                height, width = struct.unpack(">HH", segment[3:])
                return height, width
            if length < 2 or marker in _JPEG_SOF:
                raise ValueError(f"JPEG segment at byte {pos} is cut short or has length {length}")
            pos += 2 + length
    raise ValueError(f"JPEG data has no frame header in its first {_JPEG_MAX_MARKERS} markers")


def compressed_image_msg(frame: TactileFrame, typestore: Typestore = TYPESTORE, quality: int = 90) -> Any:
    """A JPEG ``CompressedImage``, formatted as image_transport's compressed plugin does."""
    image = _check_rgb(frame.image)
    ok, encoded = cv2.imencode(
        ".jpg", cv2.cvtColor(image, cv2.COLOR_RGB2BGR), [int(cv2.IMWRITE_JPEG_QUALITY), int(quality)]
    )
    if not ok:
        raise ValueError(f"JPEG encoding of a {image.shape} image failed")
    return typestore.types[COMPRESSED_IMAGE](
        header=_header(frame.stamp_ns, frame.frame_id, typestore),
        format="rgb8; jpeg compressed bgr8",
        data=np.asarray(encoded, dtype=np.uint8).reshape(-1),
    )


def image_msg(frame: TactileFrame, typestore: Typestore = TYPESTORE, encoding: str = "rgb8") -> Any:
    """An uncompressed ``Image`` in rgb8 or bgr8, rows unpadded."""
    if encoding not in RAW_ENCODINGS:
        raise ValueError(f"encoding '{encoding}' is not one of {', '.join(RAW_ENCODINGS)}")
    image = _check_rgb(frame.image)
    if encoding == "bgr8":
        image = image[..., ::-1]
    height, width = image.shape[:2]
    return typestore.types[IMAGE](
        header=_header(frame.stamp_ns, frame.frame_id, typestore),
        height=height,
        width=width,
        encoding=encoding,
        is_bigendian=0,
        step=3 * width,
        data=np.ascontiguousarray(image, dtype=np.uint8).reshape(-1),
    )


def _check_rgb(image: np.ndarray) -> np.ndarray:
    image = np.asarray(image)
    if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
        raise ValueError(f"expected a uint8 (H, W, 3) image, got {image.dtype} {image.shape}")
    return image


# ------------------------------------------------------------------------------------------- camera


def camera_image(msg: Any, msgtype: str, topic: str) -> tuple[int, str, np.ndarray]:
    """A camera ``Image`` (mono8, rgb8, bgr8) or ``CompressedImage`` (png, jpeg) -> (stamp, frame_id, grey).

    The grey image is (H, W) uint8, copied. A size over :data:`MAX_IMAGE_SIDE` is refused before
    decoding; the size is held to the CameraInfo's by the caller. Bad input raises InputRejected
    (``camera_bad_image``).
    """
    stamp_ns = stamp_to_ns(msg.header.stamp)

    def bad(detail: str) -> InputRejected:
        return InputRejected("camera_bad_image", topic, stamp_ns, detail)

    if msgtype == IMAGE:
        encoding = str(msg.encoding).lower()
        if encoding not in CAMERA_ENCODINGS:
            raise bad(f"encoding {quote(msg.encoding)} is not one of {', '.join(CAMERA_ENCODINGS)}")
        height, width, step = int(msg.height), int(msg.width), int(msg.step)
        channels = 1 if encoding == "mono8" else 3
        if not (0 < height <= MAX_IMAGE_SIDE and 0 < width <= MAX_IMAGE_SIDE):
            raise bad(f"image is {height}x{width} (height x width); the limit is {MAX_IMAGE_SIDE} a side")
        data = np.asarray(msg.data, dtype=np.uint8).reshape(-1)
        if step < channels * width or data.size != step * height:
            raise bad(f"{data.size} bytes with step {step} do not make a {height}x{width} {encoding} image")
        pixels = data.reshape(height, step)[:, : channels * width]
        if channels == 1:
            return stamp_ns, msg.header.frame_id, np.array(pixels, dtype=np.uint8, order="C", copy=True)
        code = cv2.COLOR_RGB2GRAY if encoding == "rgb8" else cv2.COLOR_BGR2GRAY
        return stamp_ns, msg.header.frame_id, cv2.cvtColor(np.ascontiguousarray(pixels.reshape(height, width, 3)),
                                                           code)
    if msgtype != COMPRESSED_IMAGE:
        raise InputRejected("unsupported_type", topic, stamp_ns,
                            f"message type {msgtype} is not one of {', '.join(IMAGE_TYPES)}")
    fmt = str(msg.format).lower()
    if (fmt and not any(name in fmt for name in ("jpeg", "jpg", "png"))) or "compresseddepth" in fmt:
        raise bad(f"compressed format {quote(msg.format)} is not jpeg or png")
    data = np.ascontiguousarray(msg.data, dtype=np.uint8).reshape(-1)
    try:
        kind, height, width = compressed_image_size(memoryview(data))
    except ValueError as error:
        raise bad(f"{data.size} bytes of {quote(msg.format)} data have no image header: {error}") from None
    if height > MAX_IMAGE_SIDE or width > MAX_IMAGE_SIDE:
        raise bad(f"{kind} header says {height}x{width}, over the limit of {MAX_IMAGE_SIDE} a side; not decoded")
    problem = _png_chunk_problem(memoryview(data)) if kind == "png" else None
    if problem is not None:
        raise bad(f"{data.size} bytes of PNG data: {problem}; not decoded")
    grey = cv2.imdecode(data, cv2.IMREAD_GRAYSCALE)
    if grey is None or grey.ndim != 2:
        raise bad(f"{data.size} bytes of {quote(msg.format)} data do not decode to an image")
    return stamp_ns, msg.header.frame_id, np.ascontiguousarray(grey)


def camera_info_record(msg: Any, topic: str) -> tuple[str, Any]:
    """A ``sensor_msgs/CameraInfo`` -> (frame_id, :class:`~tactile_estimator.camera.CameraInfo`).

    Only plumb_bob, rational_polynomial or no distortion (an empty model and D) are read; another
    model, or K or D the detector cannot use, raises InputRejected (``camera_bad_info``).
    """
    from tactile_estimator.camera.model import CameraInfo

    stamp_ns = _stamp_or_none(msg)
    model = str(msg.distortion_model).strip().lower()
    D = np.asarray(msg.d, dtype=float).reshape(-1)
    if model not in ("", "plumb_bob", "rational_polynomial") or (model == "" and D.size):
        raise InputRejected("camera_bad_info", topic, stamp_ns,
                            f"distortion model {quote(msg.distortion_model)} is not plumb_bob or rational_polynomial")
    info = CameraInfo(int(msg.width), int(msg.height), np.asarray(msg.k, dtype=float).reshape(3, 3), D)
    problem = info.problem()
    if problem:
        raise InputRejected("camera_bad_info", topic, stamp_ns, problem)
    return msg.header.frame_id.lstrip("/"), info


def camera_info_msg(stamp_ns: int, info: Any, frame_id: str, typestore: Typestore = TYPESTORE) -> Any:
    """A plumb_bob ``CameraInfo`` with P = [K | 0] and R = I, as a monocular camera's calibration has."""
    K = np.asarray(info.K, dtype=float).reshape(3, 3)
    D = np.zeros(5) if np.asarray(info.D).size == 0 else np.asarray(info.D, dtype=float).reshape(-1)
    P = np.hstack([K, np.zeros((3, 1))])
    types = typestore.types
    roi = types["sensor_msgs/msg/RegionOfInterest"](x_offset=0, y_offset=0, height=0, width=0, do_rectify=False)
    return types[CAMERA_INFO](
        header=_header(stamp_ns, frame_id, typestore), height=int(info.height), width=int(info.width),
        distortion_model="plumb_bob", d=D, k=K.reshape(-1), r=np.eye(3).reshape(-1), p=P.reshape(-1),
        binning_x=0, binning_y=0, roi=roi)


def mono8_image_msg(stamp_ns: int, image: np.ndarray, frame_id: str, png: bool = True,
                    typestore: Typestore = TYPESTORE) -> tuple[str, Any]:
    """(msgtype, message) of a grey uint8 (H, W) image: a PNG ``CompressedImage`` (lossless, so the
    corners are where they were rendered), or a raw mono8 ``Image``."""
    image = np.asarray(image)
    if image.ndim != 2 or image.dtype != np.uint8:
        raise ValueError(f"expected a uint8 (H, W) image, got {image.dtype} {image.shape}")
    header = _header(stamp_ns, frame_id, typestore)
    if png:
        ok, encoded = cv2.imencode(".png", image, [int(cv2.IMWRITE_PNG_COMPRESSION), 6])
        if not ok:
            raise ValueError(f"PNG encoding of a {image.shape} image failed")
        return COMPRESSED_IMAGE, typestore.types[COMPRESSED_IMAGE](
            header=header, format=CAMERA_PNG_FORMAT, data=np.asarray(encoded, dtype=np.uint8).reshape(-1))
    height, width = image.shape
    return IMAGE, typestore.types[IMAGE](header=header, height=height, width=width, encoding="mono8",
                                         is_bigendian=0, step=width,
                                         data=np.ascontiguousarray(image).reshape(-1))


# -------------------------------------------------------------------------------------------- poses


def _planar_pose(msg: Any, msgtype: str, topic: str, max_tilt_rad: float) -> tuple[int, np.ndarray]:
    """Stamp and (x, y, yaw) of a PoseStamped / PoseWithCovarianceStamped, rejecting what is not planar."""
    if msgtype not in POSE_TYPES:
        raise InputRejected(
            "unsupported_type",
            topic,
            _stamp_or_none(msg),
            f"message type {msgtype} is not one of {', '.join(POSE_TYPES)}",
        )
    stamp_ns = stamp_to_ns(msg.header.stamp)
    pose = msg.pose if msgtype == POSE_STAMPED else msg.pose.pose
    p, q = pose.position, pose.orientation
    values = (p.x, p.y, p.z, q.x, q.y, q.z, q.w)
    if not all(math.isfinite(v) for v in values):
        raise InputRejected(
            "nan_pose",
            topic,
            stamp_ns,
            f"pose has non-finite values: position ({p.x}, {p.y}, {p.z}), orientation ({q.x}, {q.y}, {q.z}, {q.w})",
        )
    norm = math.sqrt(q.x * q.x + q.y * q.y + q.z * q.z + q.w * q.w)
    if abs(norm - 1.0) > QUATERNION_NORM_TOL:
        raise InputRejected(
            "nan_pose", topic, stamp_ns, f"orientation ({q.x}, {q.y}, {q.z}, {q.w}) has norm {norm:.6g}, not 1"
        )
    yaw, tilt = yaw_from_quaternion(q.x, q.y, q.z, q.w)
    if tilt > max_tilt_rad:
        raise InputRejected(
            "non_planar_pose",
            topic,
            stamp_ns,
            f"pose is tilted {math.degrees(tilt):.2f} deg from the table plane "
            f"(limit {math.degrees(max_tilt_rad):.2f} deg)",
        )
    return stamp_ns, np.array([float(p.x), float(p.y), yaw])


def pose_to_sample(msg: Any, msgtype: str, topic: str, max_tilt_rad: float = 0.05) -> PoseSample:
    """A stamped pose (end-effector kinematics or motion capture) -> planar ``PoseSample``."""
    stamp_ns, pose = _planar_pose(msg, msgtype, topic, max_tilt_rad)
    return PoseSample(stamp_ns=stamp_ns, pose=pose, frame_id=msg.header.frame_id)


def detection_to_record(msg: Any, msgtype: str, topic: str, max_tilt_rad: float = 0.05) -> CameraDetection:
    """A camera tracker's stamped pose -> ``CameraDetection`` with the (x, y, yaw) covariance block.

    An all-zero ROS covariance means "unknown" and becomes ``None``; anything else must be a usable
    (finite, symmetric, positive definite) 3x3 block, or the detection is rejected.
    """
    stamp_ns, pose = _planar_pose(msg, msgtype, topic, max_tilt_rad)
    covariance = None
    if msgtype == POSE_WITH_COVARIANCE_STAMPED:
        covariance = _planar_covariance(msg.pose.covariance, topic, stamp_ns)
    return CameraDetection(stamp_ns=stamp_ns, pose=pose, covariance=covariance, frame_id=msg.header.frame_id)


def _planar_covariance(values: Any, topic: str, stamp_ns: int) -> np.ndarray | None:
    full = np.asarray(values, dtype=float).reshape(-1)
    if full.size != 36:
        raise InputRejected("bad_covariance", topic, stamp_ns, f"covariance has {full.size} entries, expected 36")
    if not np.all(np.isfinite(full)):
        raise InputRejected("bad_covariance", topic, stamp_ns, "covariance has non-finite entries")
    if not np.any(full):
        return None
    cov = full.reshape(6, 6)[np.ix_(_PLANAR_INDEX, _PLANAR_INDEX)].copy()
    scale = max(float(np.max(np.abs(cov))), 1e-300)
    if not np.allclose(cov, cov.T, rtol=0.0, atol=1e-9 * scale):
        raise InputRejected("bad_covariance", topic, stamp_ns, f"x, y, yaw covariance is not symmetric: {cov.tolist()}")
    try:
        np.linalg.cholesky(cov)
    except np.linalg.LinAlgError:
        raise InputRejected(
            "bad_covariance", topic, stamp_ns, f"x, y, yaw covariance is not positive definite: {cov.tolist()}"
        ) from None
    return cov


def _pose_msg(pose_xyt: Any, typestore: Typestore) -> Any:
    x, y, theta = (float(v) for v in np.asarray(pose_xyt, dtype=float).reshape(3))
    qx, qy, qz, qw = quaternion_from_yaw(theta)
    types = typestore.types
    return types["geometry_msgs/msg/Pose"](
        position=types["geometry_msgs/msg/Point"](x=x, y=y, z=0.0),
        orientation=types["geometry_msgs/msg/Quaternion"](x=qx, y=qy, z=qz, w=qw),
    )


def pose_stamped_msg(stamp_ns: int, pose_xyt: Any, frame_id: str, typestore: Typestore = TYPESTORE) -> Any:
    """A planar pose (x, y, theta) as a ``PoseStamped`` on the table plane (z = 0)."""
    return typestore.types[POSE_STAMPED](
        header=_header(stamp_ns, frame_id, typestore), pose=_pose_msg(pose_xyt, typestore)
    )


def pose_with_covariance_msg(
    stamp_ns: int, pose_xyt: Any, cov3x3: Any, frame_id: str, typestore: Typestore = TYPESTORE
) -> Any:
    """A planar pose and its 3x3 (x, y, theta) covariance as a ``PoseWithCovarianceStamped``."""
    cov3 = np.asarray(cov3x3, dtype=float)
    if cov3.shape != (3, 3):
        raise ValueError(f"covariance must be 3x3, got {cov3.shape}")
    full = np.zeros((6, 6))
    full[np.ix_(_PLANAR_INDEX, _PLANAR_INDEX)] = cov3
    # z, roll and pitch stay 0: the planar model holds them fixed (exactly known), it does not
    # estimate them; a large "unknown" variance would make RViz draw a huge ellipsoid instead.
    types = typestore.types
    return types[POSE_WITH_COVARIANCE_STAMPED](
        header=_header(stamp_ns, frame_id, typestore),
        pose=types["geometry_msgs/msg/PoseWithCovariance"](
            pose=_pose_msg(pose_xyt, typestore), covariance=full.reshape(36)
        ),
    )


def path_msg(stamp_ns: int, poses: Iterable[tuple[int, Any]], frame_id: str, typestore: Typestore = TYPESTORE) -> Any:
    """A ``nav_msgs/Path`` from (stamp_ns, (x, y, theta)) pairs, each pose keeping its own stamp."""
    return typestore.types[PATH](
        header=_header(stamp_ns, frame_id, typestore),
        poses=[pose_stamped_msg(t, pose, frame_id, typestore) for t, pose in poses],
    )


# ----------------------------------------------------------------------------------------------- tf


def tf_transforms(msg: Any, topic: str) -> tuple[list[StampedTransform], list[InputRejected]]:
    """A ``tf2_msgs/TFMessage`` -> its transforms; each bad one (non-finite, not a unit quaternion, no
    frame names) is returned as an ``InputRejected`` (``bad_transform``) and the others are kept."""
    good: list[StampedTransform] = []
    bad: list[InputRejected] = []
    for item in msg.transforms:
        stamp_ns = stamp_to_ns(item.header.stamp)
        parent, child = item.header.frame_id.lstrip("/"), item.child_frame_id.lstrip("/")
        t, q = item.transform.translation, item.transform.rotation
        values = (t.x, t.y, t.z, q.x, q.y, q.z, q.w)
        where = f"transform {quote(parent)} -> {quote(child)}"
        if not parent or not child or parent == child:
            bad.append(InputRejected("bad_transform", topic, stamp_ns, f"{where} needs two different frame names"))
        elif not all(math.isfinite(v) for v in values):
            bad.append(InputRejected("bad_transform", topic, stamp_ns, f"{where} has non-finite values {values}"))
        elif abs(math.sqrt(q.x * q.x + q.y * q.y + q.z * q.z + q.w * q.w) - 1.0) > QUATERNION_NORM_TOL:
            bad.append(InputRejected("bad_transform", topic, stamp_ns,
                                     f"{where}: rotation ({q.x}, {q.y}, {q.z}, {q.w}) is not a unit quaternion"))
        else:
            good.append(StampedTransform(parent, child, stamp_ns, np.array([t.x, t.y, t.z], dtype=float),
                                         np.array([q.x, q.y, q.z, q.w], dtype=float)))
    return good, bad


def tf_message(transforms: Iterable[StampedTransform], typestore: Typestore = TYPESTORE) -> Any:
    """Transforms -> one ``tf2_msgs/TFMessage``."""
    types = typestore.types
    items = []
    for t in transforms:
        x, y, z = (float(v) for v in t.translation)
        qx, qy, qz, qw = (float(v) for v in t.rotation)
        items.append(types["geometry_msgs/msg/TransformStamped"](
            header=_header(t.stamp_ns, t.parent, typestore), child_frame_id=t.child,
            transform=types["geometry_msgs/msg/Transform"](
                translation=types["geometry_msgs/msg/Vector3"](x=x, y=y, z=z),
                rotation=types["geometry_msgs/msg/Quaternion"](x=qx, y=qy, z=qz, w=qw))))
    return types[TF_MESSAGE](transforms=items)


def tf_msg(stamp_ns: int, parent: str, child: str, pose: Any, typestore: Typestore = TYPESTORE) -> Any:
    """A ``tf2_msgs/TFMessage`` with the transform parent -> child of a planar pose."""
    types = typestore.types
    x, y, theta = (float(v) for v in np.asarray(pose, dtype=float).reshape(3))
    transform = types["geometry_msgs/msg/TransformStamped"](
        header=_header(stamp_ns, parent, typestore), child_frame_id=child,
        transform=types["geometry_msgs/msg/Transform"](translation=_vector3(x, y, 0.0, typestore),
                                                       rotation=_quaternion(theta, typestore)),
    )
    return types[TF_MESSAGE](transforms=[transform])


def _vector3(x: float, y: float, z: float, typestore: Typestore) -> Any:
    return typestore.types["geometry_msgs/msg/Vector3"](x=float(x), y=float(y), z=float(z))


def _quaternion(theta: float, typestore: Typestore) -> Any:
    qx, qy, qz, qw = quaternion_from_yaw(float(theta))
    return typestore.types["geometry_msgs/msg/Quaternion"](x=qx, y=qy, z=qz, w=qw)


# ------------------------------------------------------------------------------ diagnostics, markers


def diagnostic_status(level: int, name: str, message: str, values: dict[str, str],
                      typestore: Typestore = TYPESTORE) -> Any:
    """A ``diagnostic_msgs/DiagnosticStatus`` (level OK, WARN or ERROR) with its key-value pairs."""
    types = typestore.types
    return types["diagnostic_msgs/msg/DiagnosticStatus"](
        level=level, name=name, message=message, hardware_id="tactile_estimator",
        values=[types["diagnostic_msgs/msg/KeyValue"](key=k, value=v) for k, v in values.items()],
    )


def diagnostic_array_msg(stamp_ns: int, statuses: list[Any], typestore: Typestore = TYPESTORE) -> Any:
    """The statuses as one ``diagnostic_msgs/DiagnosticArray`` (what ``/diagnostics`` carries)."""
    return typestore.types[DIAGNOSTIC_ARRAY](header=_header(stamp_ns, "", typestore), status=statuses)


@functools.cache
def _outline(shape: Shape) -> list[Any]:
    """The shape's outline in its own frame, as marker points: the same for every estimate, so built once."""
    point = TYPESTORE.types["geometry_msgs/msg/Point"]
    return [point(x=float(px), y=float(py), z=0.0) for px, py in shape.footprint(48)]


def footprint_marker_msg(stamp_ns: int, frame_id: str, pose: Any, shape: Shape) -> Any:
    """The object's outline as a LINE_STRIP at the estimated pose (one marker, replaced each time)."""
    types = TYPESTORE.types
    x, y, theta = (float(v) for v in np.asarray(pose, dtype=float).reshape(3))
    point = types["geometry_msgs/msg/Point"]
    marker = types["visualization_msgs/msg/Marker"](
        header=_header(stamp_ns, frame_id, TYPESTORE), ns="object_footprint", id=0, type=4, action=0,  # LINE_STRIP, ADD
        pose=types["geometry_msgs/msg/Pose"](position=point(x=x, y=y, z=0.0),
                                             orientation=_quaternion(theta, TYPESTORE)),
        scale=_vector3(0.002, 0.0, 0.0, TYPESTORE),
        color=types["std_msgs/msg/ColorRGBA"](r=0.1, g=0.6, b=1.0, a=1.0),
        lifetime=types["builtin_interfaces/msg/Duration"](sec=0, nanosec=0), frame_locked=False,
        points=_outline(shape),
        colors=[], texture_resource="",
        texture=types[COMPRESSED_IMAGE](header=_header(0, "", TYPESTORE), format="", data=np.zeros(0, np.uint8)),
        uv_coordinates=[], text="", mesh_resource="",
        mesh_file=types["visualization_msgs/msg/MeshFile"](filename="", data=np.zeros(0, np.uint8)),
        mesh_use_embedded_materials=False,
    )
    return types[MARKER_ARRAY](markers=[marker])


# ------------------------------------------------------------------------------------ text messages


def string_msg(text: str, typestore: Typestore = TYPESTORE) -> Any:
    """A ``std_msgs/String``."""
    return typestore.types[STRING](data=str(text))


def object_info_to_text(info: ObjectInfo) -> str:
    """ObjectInfo -> the JSON carried by ``/object_info`` (a String, so any ROS tool can show it)."""
    return json.dumps({"shape": info.shape, "size": [float(s) for s in info.size]})


def object_info_from_text(text: str, topic: str) -> ObjectInfo:
    """The JSON of ``/object_info`` -> ObjectInfo, rejecting what the object model cannot use."""

    def reject(detail: str) -> InputRejected:
        return InputRejected("bad_object_info", topic, None, detail)

    try:
        data = json.loads(text)
    except (ValueError, TypeError, RecursionError) as exc:  # RecursionError: nesting deeper than Python's stack
        raise reject(f"object info is not JSON ({exc}): {quote(str(text))}") from None
    if not isinstance(data, dict) or "shape" not in data or "size" not in data:
        raise reject(f"object info needs keys 'shape' and 'size', got {quote(str(text))}")
    shape, size = data["shape"], data["size"]
    if not isinstance(shape, str) or shape not in _OBJECT_SIZES:  # a list or map is no shape (nor hashable)
        raise reject(f"object shape {quote(shape)} is not one of {', '.join(_OBJECT_SIZES)}")
    if (
        not isinstance(size, list)
        or len(size) != _OBJECT_SIZES[shape]
        or not all(positive_number(s) for s in size)
    ):
        raise reject(f"object size {quote(size)} for shape '{shape}' needs {_OBJECT_SIZES[shape]} positive number(s)")
    return ObjectInfo(shape=shape, size=tuple(float(s) for s in size))
