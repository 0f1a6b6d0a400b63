"""Message <-> record conversion: round trips through the builders, and every rejection reason."""

from __future__ import annotations

import math
import struct
import zlib

import cv2
import numpy as np
import pytest

from tactile_estimator.geometry import quaternion_from_yaw
from tactile_estimator.io import messages as m
from tactile_estimator.io.messages import InputRejected
from tactile_estimator.records import ObjectInfo, TactileFrame

TS = m.TYPESTORE
STAMP = 1_700_000_123_456_789_012


def _frame(height: int = 24, width: int = 32, stamp_ns: int = STAMP) -> TactileFrame:
    """A smooth colour image (JPEG keeps it close) with distinct channels (a swap would show)."""
    yy, xx = np.mgrid[0:height, 0:width]
    image = np.stack([xx * 255 // max(width - 1, 1), yy * 255 // max(height - 1, 1), np.full_like(xx, 40)], axis=-1)
    return TactileFrame(stamp_ns=stamp_ns, image=image.astype(np.uint8), frame_id="digit")


def _pose_msg(x: float, y: float, quat: tuple[float, float, float, float], covariance: bool = False) -> object:
    types = TS.types
    pose = types["geometry_msgs/msg/Pose"](
        position=types["geometry_msgs/msg/Point"](x=x, y=y, z=0.1),
        orientation=types["geometry_msgs/msg/Quaternion"](x=quat[0], y=quat[1], z=quat[2], w=quat[3]),
    )
    header = types["std_msgs/msg/Header"](stamp=m.ns_to_stamp(STAMP), frame_id="world")
    if covariance:
        return types[m.POSE_WITH_COVARIANCE_STAMPED](
            header=header, pose=types["geometry_msgs/msg/PoseWithCovariance"](pose=pose, covariance=np.zeros(36))
        )
    return types[m.POSE_STAMPED](header=header, pose=pose)


def _reason(call: object, *args: object, **kwargs: object) -> InputRejected:
    with pytest.raises(InputRejected) as info:
        call(*args, **kwargs)  # type: ignore[operator]
    err = info.value
    assert err.reason in m.REASONS
    assert "\n" not in str(err)
    return err


# -------------------------------------------------------------------------------------------- stamps


@pytest.mark.parametrize("ns", [0, 1, 999_999_999, 1_000_000_000, STAMP, -1, -1_500_000_000])
def test_stamp_round_trip_keeps_nanosec_in_range(ns: int) -> None:
    stamp = m.ns_to_stamp(ns, TS)
    assert 0 <= stamp.nanosec < 1_000_000_000
    assert m.stamp_to_ns(stamp) == ns


# -------------------------------------------------------------------------------------------- images


@pytest.mark.parametrize("encoding", ["rgb8", "bgr8"])
def test_raw_image_round_trip_is_exact_and_rgb(encoding: str) -> None:
    frame = _frame()
    msg = m.image_msg(frame, TS, encoding=encoding)
    assert msg.encoding == encoding and msg.step == 3 * 32
    if encoding == "bgr8":
        assert msg.data[0:3].tolist() == frame.image[0, 0, ::-1].tolist()
    out = m.image_to_frame(msg, m.IMAGE, "/digit/image_raw", expected_hw=(24, 32))
    assert out.stamp_ns == STAMP and out.frame_id == "digit"
    assert out.image.dtype == np.uint8 and out.image.shape == (24, 32, 3)
    np.testing.assert_array_equal(out.image, frame.image)


def test_raw_image_with_padded_rows() -> None:
    frame = _frame(4, 5)
    msg = m.image_msg(frame, TS)
    padded = np.zeros((4, 20), dtype=np.uint8)
    padded[:, :15] = frame.image.reshape(4, 15)
    msg.step, msg.data = 20, padded.reshape(-1)
    np.testing.assert_array_equal(m.image_to_frame(msg, m.IMAGE, "/t").image, frame.image)


def test_image_record_does_not_alias_the_message_buffer() -> None:
    msg = m.image_msg(_frame(), TS)
    out = m.image_to_frame(msg, m.IMAGE, "/t")
    msg.data[:] = 0
    assert out.image.any()


def test_jpeg_round_trip_is_close() -> None:
    frame = _frame(48, 64)
    msg = m.compressed_image_msg(frame, TS, quality=95)
    assert "jpeg" in msg.format
    assert bytes(msg.data[:2]) == b"\xff\xd8"
    out = m.image_to_frame(msg, m.COMPRESSED_IMAGE, "/digit/image_raw/compressed", expected_hw=(48, 64))
    assert out.stamp_ns == STAMP and out.image.shape == (48, 64, 3) and out.image.dtype == np.uint8
    diff = np.abs(out.image.astype(int) - frame.image.astype(int))
    assert diff.mean() < 3.0
    # Channel order: red grows with x, green with y; a BGR mix-up would break these.
    assert out.image[:, -1, 0].mean() > 200 and out.image[-1, :, 1].mean() > 200


def test_png_compressed_image_is_exact() -> None:
    frame = _frame()
    ok, png = cv2.imencode(".png", cv2.cvtColor(frame.image, cv2.COLOR_RGB2BGR))
    assert ok
    msg = m.compressed_image_msg(frame, TS)
    msg.format, msg.data = "png", png.reshape(-1)
    np.testing.assert_array_equal(m.image_to_frame(msg, m.COMPRESSED_IMAGE, "/t").image, frame.image)


def test_wrong_encoding_is_rejected() -> None:
    msg = m.image_msg(_frame(), TS)
    msg.encoding = "mono8"
    err = _reason(m.image_to_frame, msg, m.IMAGE, "/digit/image_raw")
    assert err.reason == "bad_image_encoding"
    assert "/digit/image_raw" in str(err) and "mono8" in str(err) and "1700000123.456789012" in str(err)


def test_unknown_compressed_format_is_rejected() -> None:
    msg = m.compressed_image_msg(_frame(), TS)
    msg.format = "16UC1; compressedDepth png"
    assert _reason(m.image_to_frame, msg, m.COMPRESSED_IMAGE, "/t").reason == "bad_image_encoding"
    msg.format = "tiff"
    assert _reason(m.image_to_frame, msg, m.COMPRESSED_IMAGE, "/t").reason == "bad_image_encoding"


def test_wrong_size_is_rejected_for_raw_and_compressed() -> None:
    frame = _frame(24, 32)
    for msgtype, msg in ((m.IMAGE, m.image_msg(frame, TS)), (m.COMPRESSED_IMAGE, m.compressed_image_msg(frame, TS))):
        err = _reason(m.image_to_frame, msg, msgtype, "/t", expected_hw=(240, 320))
        assert err.reason == "bad_image_size"
        assert "24x32" in str(err) and "240x320" in str(err)


def test_wrong_data_length_is_rejected() -> None:
    msg = m.image_msg(_frame(), TS)
    msg.data = msg.data[:-7]
    assert _reason(m.image_to_frame, msg, m.IMAGE, "/t").reason == "bad_image_data"
    msg = m.image_msg(_frame(), TS)
    msg.step = 10  # shorter than a row of pixels
    assert _reason(m.image_to_frame, msg, m.IMAGE, "/t").reason == "bad_image_data"


@pytest.mark.parametrize("payload", [b"", b"not a jpeg at all", b"\xff\xd8\xff\xe0" + bytes(200)])
def test_garbage_jpeg_is_rejected(payload: bytes) -> None:
    msg = m.compressed_image_msg(_frame(), TS)
    msg.data = np.frombuffer(payload, dtype=np.uint8)
    err = _reason(m.image_to_frame, msg, m.COMPRESSED_IMAGE, "/digit/image_raw/compressed")
    assert err.reason == "bad_image_data"
    assert "/digit/image_raw/compressed" in str(err)


def test_non_image_type_is_rejected() -> None:
    msg = m.pose_stamped_msg(STAMP, (0, 0, 0), "world", TS)
    assert _reason(m.image_to_frame, msg, m.POSE_STAMPED, "/t").reason == "unsupported_type"


# ------------------------------------------------------------------------------ decompression bombs


def _png_chunk(kind: bytes, body: bytes) -> bytes:
    return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))


def _bomb_png(height: int = 20000, width: int = 20000) -> bytes:
    """A PNG whose IHDR claims ``height x width`` RGB pixels and whose IDAT is garbage: only a
    decoder that believes the header (and allocates for it) gets as far as finding the garbage."""
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + _png_chunk(b"IHDR", ihdr) + _png_chunk(b"IDAT", bytes(range(256)) * 4) + _png_chunk(
        b"IEND", b""
    )


def _with_jpeg_size(jpeg: bytes, height: int, width: int) -> bytes:
    """A real JPEG with the size in its start-of-frame segment rewritten."""
    sof = jpeg.index(b"\xff\xc0")
    return jpeg[: sof + 5] + struct.pack(">HH", height, width) + jpeg[sof + 9 :]


def _compressed(payload: bytes, fmt: str = "png") -> object:
    msg = m.compressed_image_msg(_frame(), TS)
    msg.format, msg.data = fmt, np.frombuffer(payload, dtype=np.uint8)
    return msg


@pytest.fixture
def no_decoding(monkeypatch: pytest.MonkeyPatch) -> None:
    """Any call to cv2.imdecode fails the test: a rejection must come from the header alone."""

    def imdecode(*args: object, **kwargs: object) -> None:
        raise AssertionError("cv2.imdecode was called")

    monkeypatch.setattr(m.cv2, "imdecode", imdecode)


def test_png_bomb_is_rejected_from_its_header(no_decoding: None) -> None:
    err = _reason(m.image_to_frame, _compressed(_bomb_png()), m.COMPRESSED_IMAGE, "/t", expected_hw=(24, 32))
    assert err.reason == "bad_image_size"
    assert "20000x20000" in str(err) and "24x32" in str(err) and "not decoded" in str(err)


def test_png_bomb_is_rejected_without_an_expected_size(no_decoding: None) -> None:
    err = _reason(m.image_to_frame, _compressed(_bomb_png()), m.COMPRESSED_IMAGE, "/t")
    assert err.reason == "bad_image_size"
    assert "20000x20000" in str(err) and str(m.MAX_IMAGE_SIDE) in str(err)


def test_png_bomb_decoded_would_be_bad_data_not_bad_size() -> None:
    """The garbage IDAT is what a decoder reaches: a size rejection proves it read the header only."""
    err = _reason(m.image_to_frame, _compressed(_bomb_png(64, 64)), m.COMPRESSED_IMAGE, "/t", expected_hw=(64, 64))
    assert err.reason == "bad_image_data"


def test_valid_png_of_the_wrong_size_is_not_decoded(no_decoding: None) -> None:
    ok, png = cv2.imencode(".png", _frame(48, 64).image)
    assert ok
    err = _reason(m.image_to_frame, _compressed(png.tobytes()), m.COMPRESSED_IMAGE, "/t", expected_hw=(24, 32))
    assert err.reason == "bad_image_size" and "48x64" in str(err)


def test_jpeg_bomb_is_rejected_from_its_frame_header(no_decoding: None) -> None:
    jpeg = m.compressed_image_msg(_frame(), TS).data.tobytes()
    bomb = _with_jpeg_size(jpeg, 20000, 20000)
    for expected in ((24, 32), None):
        err = _reason(m.image_to_frame, _compressed(bomb, "jpeg"), m.COMPRESSED_IMAGE, "/t", expected_hw=expected)
        assert err.reason == "bad_image_size" and "20000x20000" in str(err)


@pytest.mark.parametrize(
    "payload",
    [b"\x89PNG\r\n\x1a\n\x00\x00", b"\x89PNG\r\n\x1a\n" + bytes(20), b"\xff\xd8\xff\xc0\x00\x11\x08",
     b"\xff\xd8\xff\xd9", b"BM" + bytes(60), b"GIF89a" + bytes(20)],
    ids=["png-cut", "png-no-ihdr", "jpeg-sof-cut", "jpeg-no-sof", "bmp", "gif"],
)
def test_cut_short_headers_and_other_formats_are_bad_data(no_decoding: None, payload: bytes) -> None:
    assert _reason(m.image_to_frame, _compressed(payload), m.COMPRESSED_IMAGE, "/t").reason == "bad_image_data"


def test_jpeg_of_the_expected_size_either_way_round_is_decoded() -> None:
    """EXIF orientation may turn a JPEG; its header may give the size transposed and still pass."""
    frame = _frame(24, 32)
    out = m.image_to_frame(m.compressed_image_msg(frame, TS), m.COMPRESSED_IMAGE, "/t", expected_hw=(24, 32))
    assert out.image.shape == (24, 32, 3)
    turned = m.compressed_image_msg(_frame(32, 24), TS)
    err = _reason(m.image_to_frame, turned, m.COMPRESSED_IMAGE, "/t", expected_hw=(24, 32))
    assert err.reason == "bad_image_size" and "32x24" in str(err)  # decoded, then held to the exact size


def test_raw_image_claiming_a_huge_size_is_rejected_by_size(no_decoding: None) -> None:
    msg = m.image_msg(_frame(), TS)
    msg.height, msg.width, msg.step = 20000, 20000, 60000
    for expected in ((24, 32), None):
        err = _reason(m.image_to_frame, msg, m.IMAGE, "/t", expected_hw=expected)
        assert err.reason == "bad_image_size" and "20000x20000" in str(err)


# --------------------------------------------------------------------------------------------- poses


@pytest.mark.parametrize("theta", [0.0, 0.3, -2.0, math.pi, -math.pi + 1e-6])
def test_pose_stamped_round_trip(theta: float) -> None:
    msg = m.pose_stamped_msg(STAMP, (0.25, -0.5, theta), "world", TS)
    sample = m.pose_to_sample(msg, m.POSE_STAMPED, "/ee_pose")
    assert sample.stamp_ns == STAMP and sample.frame_id == "world"
    np.testing.assert_allclose(sample.pose[:2], [0.25, -0.5])
    assert math.isclose(math.remainder(sample.pose[2] - theta, 2 * math.pi), 0.0, abs_tol=1e-12)
    assert -math.pi < sample.pose[2] <= math.pi


def test_pose_with_covariance_round_trip() -> None:
    cov = np.array([[1e-4, 2e-5, 0.0], [2e-5, 3e-4, 1e-6], [0.0, 1e-6, 5e-3]])
    msg = m.pose_with_covariance_msg(STAMP, (1.0, 2.0, 0.7), cov, "world", TS)
    full = np.asarray(msg.pose.covariance).reshape(6, 6)
    assert full[5, 5] == 5e-3 and full[0, 5] == 0.0 and full[2, 2] == 0.0
    det = m.detection_to_record(msg, m.POSE_WITH_COVARIANCE_STAMPED, "/object_detection")
    np.testing.assert_allclose(det.pose, [1.0, 2.0, 0.7], atol=1e-12)
    np.testing.assert_array_equal(det.covariance, cov)
    sample = m.pose_to_sample(msg, m.POSE_WITH_COVARIANCE_STAMPED, "/object_detection")
    np.testing.assert_allclose(sample.pose, [1.0, 2.0, 0.7], atol=1e-12)


def test_detection_without_covariance() -> None:
    det = m.detection_to_record(m.pose_stamped_msg(STAMP, (1, 2, 3), "world", TS), m.POSE_STAMPED, "/d")
    assert det.covariance is None
    zero = m.pose_with_covariance_msg(STAMP, (1, 2, 3), np.zeros((3, 3)), "world", TS)
    assert m.detection_to_record(zero, m.POSE_WITH_COVARIANCE_STAMPED, "/d").covariance is None


@pytest.mark.parametrize(
    "quat",
    [(0.0, 0.0, 0.0, float("nan")), (float("inf"), 0.0, 0.0, 1.0), (0.0, 0.0, 0.0, 0.0), (0.0, 0.0, 0.5, 0.5)],
)
def test_nan_zero_or_unnormalised_quaternion_is_rejected(quat: tuple[float, float, float, float]) -> None:
    err = _reason(m.pose_to_sample, _pose_msg(0.0, 0.0, quat), m.POSE_STAMPED, "/ee_pose")
    assert err.reason == "nan_pose"
    assert "/ee_pose" in str(err)


def test_nan_position_is_rejected() -> None:
    msg = _pose_msg(float("nan"), 0.0, (0.0, 0.0, 0.0, 1.0))
    assert _reason(m.pose_to_sample, msg, m.POSE_STAMPED, "/ee_pose").reason == "nan_pose"
    assert _reason(m.detection_to_record, msg, m.POSE_STAMPED, "/d").reason == "nan_pose"


def _tilted(angle: float, yaw: float = 0.4) -> tuple[float, float, float, float]:
    """Yaw about z then a roll of ``angle`` about the body x axis."""
    _, _, zs, zc = quaternion_from_yaw(yaw)
    rs, rc = math.sin(angle / 2), math.cos(angle / 2)
    # q = q_yaw * q_roll (Hamilton product; q_roll = (rs, 0, 0, rc)).
    return (zc * rs, zs * rs, zs * rc, zc * rc)


def test_tilted_pose_is_rejected_and_small_tilt_accepted() -> None:
    err = _reason(m.pose_to_sample, _pose_msg(0.0, 0.0, _tilted(0.2)), m.POSE_STAMPED, "/ee_pose", max_tilt_rad=0.05)
    assert err.reason == "non_planar_pose"
    assert "11.46 deg" in str(err)
    sample = m.pose_to_sample(_pose_msg(0.0, 0.0, _tilted(0.02)), m.POSE_STAMPED, "/ee_pose", max_tilt_rad=0.05)
    assert math.isclose(sample.pose[2], 0.4, abs_tol=1e-9)
    det = _reason(
        m.detection_to_record, _pose_msg(0.0, 0.0, _tilted(0.2), covariance=True), m.POSE_WITH_COVARIANCE_STAMPED, "/d"
    )
    assert det.reason == "non_planar_pose"


@pytest.mark.parametrize(
    "cov",
    [
        np.diag([1e-4, float("nan"), 1e-3]),
        np.diag([1e-4, 1e-4, -1e-3]),  # negative variance
        np.diag([1e-4, 1e-4, 0.0]),  # singular: a prior with infinite weight on yaw
        np.array([[1e-4, 5e-5, 0.0], [0.0, 1e-4, 0.0], [0.0, 0.0, 1e-3]]),  # not symmetric
    ],
)
def test_bad_covariance_is_rejected(cov: np.ndarray) -> None:
    msg = m.pose_with_covariance_msg(STAMP, (0, 0, 0), np.eye(3), "world", TS)
    full = np.zeros((6, 6))
    full[np.ix_([0, 1, 5], [0, 1, 5])] = cov
    msg.pose.covariance = full.reshape(36)
    err = _reason(m.detection_to_record, msg, m.POSE_WITH_COVARIANCE_STAMPED, "/object_detection")
    assert err.reason == "bad_covariance"


def test_non_pose_type_is_rejected() -> None:
    assert _reason(m.pose_to_sample, m.string_msg("x", TS), m.STRING, "/ee_pose").reason == "unsupported_type"


# ---------------------------------------------------------------------------------- strings, paths


def test_string_and_path_builders() -> None:
    assert m.string_msg("models/new.pt", TS).data == "models/new.pt"
    path = m.path_msg(STAMP, [(STAMP - 10, (0, 0, 0)), (STAMP, (1.0, 0.5, -0.3))], "world", TS)
    assert path.__msgtype__ == m.PATH and path.header.frame_id == "world"
    assert [m.stamp_to_ns(p.header.stamp) for p in path.poses] == [STAMP - 10, STAMP]
    last = m.pose_to_sample(path.poses[1], m.POSE_STAMPED, "/path")
    np.testing.assert_allclose(last.pose, [1.0, 0.5, -0.3], atol=1e-12)


@pytest.mark.parametrize(
    "info", [ObjectInfo("rect", (0.1, 0.08)), ObjectInfo("disc", (0.05,)), ObjectInfo("ellipse", (0.065, 0.045))]
)
def test_object_info_round_trip(info: ObjectInfo) -> None:
    text = m.object_info_to_text(info)
    assert m.object_info_from_text(text, "/object_info") == info


@pytest.mark.parametrize(
    "text",
    [
        "",
        "{not json",
        "[1, 2]",
        '{"shape": "rect"}',
        '{"shape": "triangle", "size": [0.1]}',
        '{"shape": "rect", "size": [0.1]}',
        '{"shape": "disc", "size": [-0.05]}',
        '{"shape": "disc", "size": ["big"]}',
        '{"shape": "ellipse", "size": [0.1, NaN]}',
    ],
)
def test_bad_object_info_is_rejected(text: str) -> None:
    err = _reason(m.object_info_from_text, text, "/object_info")
    assert err.reason == "bad_object_info"
    assert str(err).startswith("/object_info: ")


def test_input_rejected_survives_pickling() -> None:
    import pickle

    err = InputRejected("nan_pose", "/ee_pose", STAMP, "pose has\nnon-finite values")
    copy = pickle.loads(pickle.dumps(err))
    assert (copy.reason, copy.topic, copy.stamp_ns, str(copy)) == (err.reason, err.topic, err.stamp_ns, str(err))
    assert "\n" not in str(copy)


def test_tf_msg_reads_back_as_the_planar_transform() -> None:
    msg = m.tf_msg(1_500_000_007, "world", "object_estimate", [0.1, -0.2, 0.3])
    (transform,), bad = m.tf_transforms(msg, "/tf")
    assert bad == []
    assert (transform.parent, transform.child, transform.stamp_ns) == ("world", "object_estimate", 1_500_000_007)
    np.testing.assert_allclose(transform.translation, [0.1, -0.2, 0.0])
    np.testing.assert_allclose(transform.rotation, quaternion_from_yaw(0.3))


def test_diagnostics_and_footprint_messages() -> None:
    from tactile_estimator.objects import Shape

    array = m.diagnostic_array_msg(13, [m.diagnostic_status(m.WARN, "node: estimator", "stale", {"k": "v"})])
    (status,) = array.status
    assert m.stamp_to_ns(array.header.stamp) == 13 and status.level == m.WARN and status.message == "stale"
    assert status.hardware_id == "tactile_estimator" and [(kv.key, kv.value) for kv in status.values] == [("k", "v")]
    shape = Shape("disc", (0.05,))
    (marker,) = m.footprint_marker_msg(15, "world", [0.0, 0.1, 0.2], shape).markers
    assert marker.header.frame_id == "world" and marker.type == 4  # LINE_STRIP
    assert marker.pose.position.y == 0.1 and marker.pose.orientation.z == pytest.approx(quaternion_from_yaw(0.2)[2])
    np.testing.assert_allclose([(p.x, p.y) for p in marker.points], shape.footprint(48))
