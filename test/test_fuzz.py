"""Fuzzing: garbage through the message decoders, the bag reader and the config and model loaders.

Each property says what the code under test may do with any input: succeed, or raise its own error
type (``InputRejected``, ``BagError``, ``ConfigError``, ``ModelError``) with a one-line message of
bounded length. Any other exception is a bug. The inputs are random bytes and text, random YAML and
JSON structures, and valid messages, bags, configuration files and model directories with bytes
flipped, cut off or appended, or with one value replaced by a random one.

CI runs a fixed, small number of examples per property, derandomized (the same examples every run),
and no example database is kept; the file takes well under a minute. For a longer, randomized run::

    FUZZ_EXAMPLES=5000 .venv/bin/python -m pytest test/test_fuzz.py -q

``FUZZ_EXAMPLES`` sets every property's number of examples and draws fresh random examples each run
(``--hypothesis-seed=N`` repeats one); a failure prints the smallest input that shows it, and
``--hypothesis-show-statistics`` counts the outcomes (decoded, rejected and why, each error).
Decoding a message may also not raise the process's peak memory by a gigabyte, nor loading a model
its Python memory by 40 MB: a bomb is a failure even where it ends in the designed error.
Everything a property writes is under pytest's temporary directory, Hypothesis' own files included.
"""

from __future__ import annotations

import json
import math
import os
import resource
import shutil
import struct
import tempfile
import tracemalloc
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytest
import yaml
from hypothesis import HealthCheck, assume, example, given, settings
from hypothesis import event as _event
from hypothesis import strategies as st
from hypothesis.configuration import set_hypothesis_home_dir
from hypothesis.control import currently_in_test_context

from tactile_estimator.config import ConfigError, load_estimator_config, load_trainer_config
from tactile_estimator.io import messages as m
from tactile_estimator.io.bags import (
    BagError,
    BagWriter,
    bag_info,
    copy_bag_with,
    read_messages,
    read_raw,
    require_topics,
)
from tactile_estimator.networks.tactile import ModelError, TactileModel
from tactile_estimator.objects import Shape
from tactile_estimator.records import CameraDetection, ObjectInfo, PoseSample, TactileFrame

ROOT = Path(__file__).resolve().parents[1]
MAX_MESSAGE = 500  # characters an error message may have, the file's path not counted

_EXAMPLES = os.environ.get("FUZZ_EXAMPLES")


def fuzz(ci_examples: int) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Hypothesis settings: ``ci_examples`` derandomized examples, or FUZZ_EXAMPLES random ones."""
    return settings(
        max_examples=int(_EXAMPLES) if _EXAMPLES else ci_examples,
        derandomize=not _EXAMPLES,
        database=None,
        deadline=None,
        suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow,
                               HealthCheck.data_too_large],
    )


# Hypothesis caches the constants it finds in the source files while pytest collects the tests,
# before any fixture runs. A home directory under os.devnull cannot be created, and Hypothesis skips
# a cache it cannot write; the fixture below then moves its home under pytest's temporary directory.
_NO_HOME = Path(os.devnull) / "hypothesis"
set_hypothesis_home_dir(_NO_HOME)


@pytest.fixture(scope="module", autouse=True)
def _hypothesis_home(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """Hypothesis' cache directory (Unicode tables, source constants) under the tests' temporary directory."""
    set_hypothesis_home_dir(tmp_path_factory.mktemp("hypothesis"))
    yield
    set_hypothesis_home_dir(_NO_HOME)


@pytest.fixture
def scratch(tmp_path: Path) -> Callable[[], Any]:
    """A fresh directory per example (a property's examples share one ``tmp_path``)."""
    def make() -> Any:
        return tempfile.TemporaryDirectory(dir=tmp_path)
    return make


def event(label: str) -> None:
    """Count an outcome for ``--hypothesis-show-statistics`` (outside a property, nothing)."""
    if currently_in_test_context():
        _event(label)


def check_message(error: BaseException, *paths: Path) -> str:
    """An error's message is one line of at most MAX_MESSAGE characters once the paths are left out."""
    text = str(error)
    for path in paths:
        text = text.replace(str(path), "<path>")
    assert text.strip(), f"{type(error).__name__} with an empty message"
    assert "\n" not in text and "\r" not in text, f"message is not one line: {text[:MAX_MESSAGE]!r}"
    assert len(text) <= MAX_MESSAGE, f"message of {len(text)} characters: {text[:MAX_MESSAGE]!r}..."
    return text


# ------------------------------------------------------------------------------------- generators

_SPECIAL_INTS = [0, 1, -1, 2, 3, 255, 256, 4097, 2**31 - 1, 2**31, 2**32, 2**53 + 1, 2**63, -(2**63), 10**30, 10**400]
_SPECIAL_FLOATS = [0.0, -0.0, 1e-320, 1e-30, 0.5, 1.0, -1.0, 1e30, 1e308, math.inf, -math.inf, math.nan]

ints = st.one_of(st.integers(-3, 300), st.sampled_from(_SPECIAL_INTS))
floats = st.one_of(st.floats(allow_nan=True, allow_infinity=True), st.sampled_from(_SPECIAL_FLOATS))
texts = st.one_of(
    st.text(max_size=20),
    st.sampled_from(["", " ", "~", "null", "nan", ".inf", "1e999", "yes", "rect", "disc", "cpu", "cuda:7", "isam2",
                     "gn", "leo", "a" * 2000, "\x00", "é" * 300, "[", "{", "*x", "!!python/object:os.system"]),
)
scalars = st.one_of(st.none(), st.booleans(), ints, floats, texts)
yaml_values = st.recursive(
    scalars,
    lambda children: st.one_of(
        st.lists(children, max_size=6),
        st.dictionaries(st.one_of(texts, ints, st.booleans(), st.none()), children, max_size=5),
    ),
    max_leaves=20,
)
json_values = st.recursive(
    st.one_of(st.none(), st.booleans(), ints.filter(lambda v: abs(v) < 10**300), floats, texts),
    lambda children: st.one_of(st.lists(children, max_size=5), st.dictionaries(texts, children, max_size=5)),
    max_leaves=15,
)

RAW_TEXT_SNIPPETS = [
    "9" * 5000,  # an integer Python will not parse
    "2026-13-01",  # a date with month 13
    "[" * 5000 + "]" * 5000,  # nesting past the recursion limit
    "{a: " * 300,
    "&a [*a]",
    "!!python/object/apply:os.system ['true']",
    "!!binary AAAA",
    "!!float nope",
    "\t- x",
    "'unterminated",
    "? [a, b]\n: c",
    "<<: [*x]",
    "%YAML 9.9\n---",
    "--- a\n--- b",
    "1e400",
    "0x" + "f" * 2000,
    "0o" + "7" * 2000,
    "1_000_000",
    "1:2:3",
]


def to_yaml(value: Any) -> str:
    return yaml.safe_dump(value, sort_keys=False, allow_unicode=True)


@st.composite
def mutated_bytes(draw: st.DrawFn, original: bytes, hot: int = 64) -> bytes:
    """``original`` with a few bytes flipped, overwritten, cut off, removed or appended.

    Positions are drawn from the whole buffer or, half the time, from its first ``hot`` bytes,
    where headers and lengths live.
    """
    data = bytearray(original)

    def position() -> int:
        top = len(data) if draw(st.booleans()) else min(len(data), hot)
        return draw(st.integers(0, max(top - 1, 0)))

    for _ in range(draw(st.integers(1, 4))):
        kind = draw(st.sampled_from(["flip", "byte", "word", "truncate", "delete", "insert", "append", "zero"]))
        if not data:
            kind = "append"
        if kind == "flip":
            data[position()] ^= 1 << draw(st.integers(0, 7))
        elif kind == "byte":
            data[position()] = draw(st.integers(0, 255))
        elif kind == "word":  # a length or count field gets a boundary value
            at = position()
            word = struct.pack("<I", draw(st.sampled_from([0, 1, 0x7FFFFFFF, 0x80000000, 0xFFFFFFFF, len(data)])))
            data[at:at + 4] = word
        elif kind == "truncate":
            del data[position():]
        elif kind == "delete":
            at = position()
            del data[at:at + draw(st.integers(1, 16))]
        elif kind == "insert":
            at = position()
            data[at:at] = draw(st.binary(min_size=1, max_size=16))
        elif kind == "append":
            data += draw(st.binary(min_size=1, max_size=64))
        else:
            at = position()
            data[at:at + draw(st.integers(1, 256))] = bytes(min(256, len(data) - at))
    return bytes(data)


def mutate_tree(draw: st.DrawFn, tree: Any) -> Any:
    """A copy of a parsed YAML document with one node replaced, deleted or given a new sibling."""
    if not isinstance(tree, (dict, list)) or not tree or draw(st.integers(0, 4)) == 0:
        return draw(yaml_values)
    keys = list(tree) if isinstance(tree, dict) else list(range(len(tree)))
    key = draw(st.sampled_from(keys))
    copy = dict(tree) if isinstance(tree, dict) else list(tree)
    action = draw(st.sampled_from(["descend", "descend", "descend", "delete", "add"]))
    if action == "delete":
        del copy[key]
    elif action == "add":
        if isinstance(copy, dict):
            copy[draw(st.one_of(texts, ints))] = draw(yaml_values)
        else:
            copy.insert(key, draw(yaml_values))
    else:
        copy[key] = mutate_tree(draw, tree[key])
    return copy


def mutate_text(draw: st.DrawFn, text: str) -> str:
    """Line-level edits of a YAML file: a line deleted, duplicated, re-indented or given a snippet."""
    lines = text.splitlines()
    for _ in range(draw(st.integers(1, 3))):
        at = draw(st.integers(0, max(len(lines) - 1, 0)))
        kind = draw(st.sampled_from(["delete", "duplicate", "indent", "dedent", "snippet", "value"]))
        if not lines:
            lines = [""]
        if kind == "delete":
            del lines[at]
        elif kind == "duplicate":
            lines.insert(at, lines[at])
        elif kind == "indent":
            lines[at] = " " * draw(st.integers(1, 5)) + lines[at]
        elif kind == "dedent":
            lines[at] = lines[at].lstrip()
        elif kind == "snippet":
            lines.insert(at, draw(st.sampled_from(RAW_TEXT_SNIPPETS)))
        else:  # the value after a key's colon replaced
            head, colon, _ = lines[at].partition(":")
            snippet = draw(st.one_of(st.sampled_from(RAW_TEXT_SNIPPETS), st.text(max_size=30)))
            lines[at] = f"{head}: {snippet}" if colon else snippet
    return "\n".join(lines) + "\n"


# ---------------------------------------------------------------------------------------- messages

TOPIC = "/fuzz"
HW = (12, 16)


def _frame() -> TactileFrame:
    yy, xx = np.mgrid[0:HW[0], 0:HW[1]]
    image = np.stack([xx * 15, yy * 20, (xx + yy) * 9], axis=-1).astype(np.uint8)
    return TactileFrame(stamp_ns=1_700_000_000_123_456_789, image=image, frame_id="digit")


def _png_msg() -> Any:
    ok, encoded = cv2.imencode(".png", _frame().image)
    assert ok
    msg = m.compressed_image_msg(_frame())
    return m.TYPESTORE.types[m.COMPRESSED_IMAGE](header=msg.header, format="png",
                                                 data=np.asarray(encoded, dtype=np.uint8).reshape(-1))


VALID = {  # one valid message of every type the estimator decodes, as CDR
    "rgb8": (m.IMAGE, m.image_msg(_frame())),
    "bgr8": (m.IMAGE, m.image_msg(_frame(), encoding="bgr8")),
    "jpeg": (m.COMPRESSED_IMAGE, m.compressed_image_msg(_frame())),
    "png": (m.COMPRESSED_IMAGE, _png_msg()),
    "pose": (m.POSE_STAMPED, m.pose_stamped_msg(1_700_000_000_000_000_001, [0.1, -0.2, 0.3], "world")),
    "detection": (m.POSE_WITH_COVARIANCE_STAMPED, m.pose_with_covariance_msg(
        1_700_000_000_000_000_002, [0.1, -0.2, 0.3], np.diag([1e-4, 2e-4, 3e-3]), "world")),
    "object_info": (m.STRING, m.string_msg(m.object_info_to_text(ObjectInfo("rect", (0.1, 0.05))))),
}
VALID_CDR = {name: (msgtype, bytes(m.TYPESTORE.serialize_cdr(msg, msgtype))) for name, (msgtype, msg) in VALID.items()}
DECODED_TYPES = sorted({msgtype for msgtype, _ in VALID.values()})


MAX_DECODE_GROWTH_KB = 1 << 20  # a message of a few kB may not raise the process's peak memory by 1 GB


def decode(msgtype: str, msg: Any, expected_hw: tuple[int, int] | None = HW, max_tilt_rad: float = 0.05) -> list[Any]:
    """Every record the package makes of a deserialised message, as its callers use the decoders.

    Raises only what the decoders raise (InputRejected, by design); the records are checked, and so
    is the peak memory (a bomb shows there, wherever it is allocated).
    """
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    try:
        return _decode(msgtype, msg, expected_hw, max_tilt_rad)
    finally:
        grown = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - peak
        assert grown < MAX_DECODE_GROWTH_KB, f"decoding a {msgtype} raised peak memory by {grown // 1024} MB"


def _decode(msgtype: str, msg: Any, expected_hw: tuple[int, int] | None, max_tilt_rad: float) -> list[Any]:
    if msgtype in m.IMAGE_TYPES:
        records = [m.image_to_frame(msg, msgtype, TOPIC, expected_hw)]
        frame = records[0]
        assert isinstance(frame, TactileFrame)
        assert frame.image.dtype == np.uint8 and frame.image.ndim == 3 and frame.image.shape[2] == 3
        assert frame.image.flags.c_contiguous
        if expected_hw is not None:
            assert frame.image.shape[:2] == expected_hw
        return records
    if msgtype in m.POSE_TYPES:
        sample = m.pose_to_sample(msg, msgtype, TOPIC, max_tilt_rad)
        detection = m.detection_to_record(msg, msgtype, TOPIC, max_tilt_rad)
        assert isinstance(sample, PoseSample) and isinstance(detection, CameraDetection)
        assert np.all(np.isfinite(sample.pose)) and sample.pose.shape == (3,)
        if detection.covariance is not None:
            assert detection.covariance.shape == (3, 3) and np.all(np.isfinite(detection.covariance))
        return [sample, detection]
    assert msgtype == m.STRING
    info = m.object_info_from_text(msg.data, TOPIC)
    # Every caller turns the info into a Shape; what the decoder accepts, Shape must accept too.
    return [info, Shape.from_info(info)]


def decode_cdr(msgtype: str, raw: bytes, **kwargs: Any) -> list[Any] | None:
    """CDR bytes -> records, as the bag reader and both live transports do it.

    A message that does not deserialise is counted as undecodable by every caller (they catch any
    exception of the typestore), so that is None here; the decoders may raise only InputRejected.
    """
    try:
        msg = m.TYPESTORE.deserialize_cdr(raw, msgtype)
    except Exception:
        event("not deserialisable")
        return None
    return decode(msgtype, msg, **kwargs)


def expect_rejected_or_decoded(call: Callable[[], Any]) -> Any:
    """``call()``'s records, or None where it raised a well-formed InputRejected."""
    try:
        records = call()
    except m.InputRejected as rejected:
        assert rejected.reason in m.REASONS
        check_message(rejected)
        event(f"rejected: {rejected.reason}")
        return None
    if records is not None:
        event("decoded")
    return records


def test_valid_messages_decode() -> None:
    """The seeds the message fuzzing mutates are valid: mutations start from a message that decodes."""
    for name, (msgtype, raw) in VALID_CDR.items():
        records = decode_cdr(msgtype, raw)
        assert records, name


def _cdr_string(text: bytes) -> bytes:
    """A CDR string: little-endian length with the terminating NUL, the bytes, the NUL."""
    return struct.pack("<I", len(text) + 1) + text + b"\0"


@fuzz(150)
@given(msgtype=st.sampled_from(DECODED_TYPES), header=st.sampled_from([b"", b"\x00\x01\x00\x00", b"\x00\x00\x00\x00"]),
       body=st.one_of(st.binary(max_size=300), st.binary(max_size=100).map(_cdr_string),
                      st.text(max_size=100).map(lambda t: _cdr_string(t.encode("utf-8", "surrogatepass")))))
def test_random_cdr_is_decoded_or_rejected(msgtype: str, header: bytes, body: bytes) -> None:
    """Random bytes, some of them a string where one is expected (a String deserialises from it)."""
    expect_rejected_or_decoded(lambda: decode_cdr(msgtype, header + body))


@fuzz(500)
@given(name=st.sampled_from(sorted(VALID_CDR)), data=st.data(), hw=st.sampled_from([HW, None]))
def test_mutated_cdr_is_decoded_or_rejected(name: str, data: st.DataObject, hw: tuple[int, int] | None) -> None:
    msgtype, raw = VALID_CDR[name]
    mutated = data.draw(mutated_bytes(raw, hot=96))
    expect_rejected_or_decoded(lambda: decode_cdr(msgtype, mutated, expected_hw=hw))


def _stamp(sec: int, nanosec: int) -> Any:
    return m.TYPESTORE.types["builtin_interfaces/msg/Time"](sec=sec, nanosec=nanosec)


def _std_header(sec: int, nanosec: int, frame_id: str) -> Any:
    return m.TYPESTORE.types["std_msgs/msg/Header"](stamp=_stamp(sec, nanosec), frame_id=frame_id)


secs = st.integers(-(2**31), 2**31 - 1)
nanosecs = st.integers(0, 2**32 - 1)
uint32 = st.one_of(st.integers(0, 40), st.sampled_from([0, 1, 2**31, 2**32 - 1, 3 * HW[1], HW[0], HW[1]]))


@fuzz(300)
@given(sec=secs, nanosec=nanosecs, data=st.data(), hw=st.sampled_from([HW, None]),
       encoding=st.one_of(st.just("rgb8"), st.just("bgr8"),
                          st.sampled_from(["RGB8", "Bgr8", "mono8", "rgba8", "16UC1", "", "rgb8 "]), texts))
@example(sec=0, nanosec=0, data=None, hw=HW, encoding="x" * 5000)
def test_raw_image_fields_are_decoded_or_rejected(sec: int, nanosec: int, data: st.DataObject | None,
                                                  hw: tuple[int, int] | None, encoding: str) -> None:
    """Half the images are well formed (of the expected or a random size, rows padded or not)."""
    if data is None or data.draw(st.booleans()):
        height, width = HW if data is None else data.draw(
            st.one_of(st.just(HW), st.tuples(st.integers(1, 20), st.integers(1, 20))))
        step = 3 * width + (0 if data is None else data.draw(st.integers(0, 5)))
        size = step * height
        pixels = bytes(size) if data is None else data.draw(st.binary(min_size=size, max_size=size))
    else:
        height, width, step = data.draw(uint32), data.draw(uint32), data.draw(uint32)
        pixels = data.draw(st.binary(max_size=2000))
    msg = m.TYPESTORE.types[m.IMAGE](
        header=_std_header(sec, nanosec, "digit"), height=height, width=width, encoding=encoding, is_bigendian=0,
        step=step, data=np.frombuffer(pixels, dtype=np.uint8))
    expect_rejected_or_decoded(lambda: decode(m.IMAGE, msg, expected_hw=hw))


@fuzz(300)
@given(kind=st.sampled_from(["png", "jpeg"]), data=st.data(), hw=st.sampled_from([HW, None]),
       fmt=st.one_of(st.just("png"), st.just("jpeg"), st.just("rgb8; jpeg compressed bgr8"), st.just(""),
                     st.sampled_from(["JPG", "compressedDepth png", "tiff", "png; png"]), texts))
@example(kind="png", data=None, hw=None, fmt="y" * 5000)
def test_compressed_image_is_decoded_or_rejected(kind: str, data: st.DataObject | None,
                                                 hw: tuple[int, int] | None, fmt: str) -> None:
    msgtype, msg = VALID[kind]
    payload = bytes(msg.data) if data is None else data.draw(mutated_bytes(bytes(msg.data), hot=200))
    mutated = m.TYPESTORE.types[msgtype](header=msg.header, format=fmt, data=np.frombuffer(payload, dtype=np.uint8))
    expect_rejected_or_decoded(lambda: decode(msgtype, mutated, expected_hw=hw))


@fuzz(300)
@given(prefix=st.sampled_from([b"", b"\x89PNG\r\n\x1a\n", b"\x89PNG\r\n\x1a\n\x00\x00\x00\x0dIHDR", b"\xff\xd8",
                               b"\xff\xd8\xff\xe0", b"\xff\xd8\xff\xc0"]),
       body=st.binary(max_size=64))
def test_compressed_image_size_reads_a_header_or_says_why_not(prefix: bytes, body: bytes) -> None:
    try:
        kind, height, width = m.compressed_image_size(prefix + body)
    except ValueError as error:
        check_message(error)
        return
    assert kind in ("png", "jpeg") and 0 <= height < 2**32 and 0 <= width < 2**32


def _tilted_quaternion(yaw: float, tilt: float) -> tuple[float, float, float, float]:
    """(x, y, z, w) of a yaw about z followed by a tilt about x."""
    cz, sz, cx, sx = math.cos(yaw / 2), math.sin(yaw / 2), math.cos(tilt / 2), math.sin(tilt / 2)
    return cz * sx, sz * sx, sz * cx, cz * cx


quaternions = st.one_of(
    st.tuples(floats, floats, floats, floats),
    st.tuples(st.floats(-10.0, 10.0), st.floats(0.0, 0.3)).map(lambda a: _tilted_quaternion(*a)),
    st.tuples(st.floats(-1.0, 1.0), st.floats(-1.0, 1.0), st.floats(-1.0, 1.0), st.floats(-1.0, 1.0)),
)
positions = st.one_of(st.tuples(floats, floats, floats), st.tuples(*[st.floats(-10.0, 10.0)] * 3))
covariances = st.one_of(
    st.lists(floats, min_size=36, max_size=36),
    st.lists(st.floats(-1.0, 1.0), min_size=36, max_size=36),
    st.lists(st.floats(1e-6, 1.0), min_size=3, max_size=3).map(lambda d: np.diag(d[:2] + [0, 0, 0] + d[2:]).ravel()),
    st.just([0.0] * 36),
)


@fuzz(300)
@given(msgtype=st.sampled_from(m.POSE_TYPES), sec=secs, nanosec=nanosecs, position=positions,
       orientation=quaternions, covariance=covariances, tilt=st.sampled_from([0.0, 0.05, math.pi]))
def test_pose_fields_are_decoded_or_rejected(msgtype: str, sec: int, nanosec: int, position: tuple[float, ...],
                                             orientation: tuple[float, ...], covariance: Any, tilt: float) -> None:
    x, y, z = position
    qx, qy, qz, qw = orientation
    types = m.TYPESTORE.types
    pose = types["geometry_msgs/msg/Pose"](position=types["geometry_msgs/msg/Point"](x=x, y=y, z=z),
                                           orientation=types["geometry_msgs/msg/Quaternion"](x=qx, y=qy, z=qz, w=qw))
    header = _std_header(sec, nanosec, "world")
    if msgtype == m.POSE_STAMPED:
        msg = types[msgtype](header=header, pose=pose)
    else:
        msg = types[msgtype](header=header, pose=types["geometry_msgs/msg/PoseWithCovariance"](
            pose=pose, covariance=np.array(covariance, dtype=np.float64)))
    with np.errstate(all="ignore"):  # overflow is a rejection here, as it is outside the tests
        expect_rejected_or_decoded(lambda: decode(msgtype, msg, max_tilt_rad=tilt))


def test_a_png_chunk_longer_than_the_data_is_rejected_before_decoding(monkeypatch: pytest.MonkeyPatch) -> None:
    """Found by the mutations above: an IDAT claiming 2 GB in a 263-byte PNG made OpenCV take 4 GB."""
    msgtype, msg = VALID["png"]
    data = bytearray(msg.data)
    idat = data.index(b"IDAT") - 4
    data[idat:idat + 4] = struct.pack(">I", 0x7FFFFFFF)
    bomb = m.TYPESTORE.types[msgtype](header=msg.header, format="png", data=np.frombuffer(bytes(data), np.uint8))
    monkeypatch.setattr(m.cv2, "imdecode", lambda *args: pytest.fail("the PNG was decoded"))
    with pytest.raises(m.InputRejected, match=r"chunk at byte \d+ claims 2147483647 bytes") as raised:
        m.image_to_frame(bomb, msgtype, TOPIC, HW)
    assert raised.value.reason == "bad_image_data"


object_infos = st.one_of(
    st.text(max_size=60),
    json_values.map(json.dumps),
    st.fixed_dictionaries({"shape": json_values, "size": json_values}).map(json.dumps),
    st.fixed_dictionaries({"shape": st.sampled_from(["rect", "disc", "ellipse"]),
                           "size": st.lists(st.one_of(ints, floats, texts, st.booleans()), max_size=3)}).map(
        lambda d: json.dumps(d)),
    st.sampled_from(["[" * 20_000, "{" * 20_000, '{"shape": "disc", "size": [' + "1" * 400 + "]}",
                     '{"shape": "disc", "size": [1' + "0" * 5000 + "]}", '{"shape": ' + "[0, " * 5000 + "]}",
                     "NaN", "Infinity", '"' + "x" * 5000 + '"']),
)


@fuzz(400)
@given(text=object_infos)
@example(text='{"shape": [], "size": []}')
@example(text='{"shape": {}, "size": [0.1]}')
@example(text='{"shape": "disc", "size": [' + "1" * 400 + "]}")
@example(text="[" * 20_000)
@example(text=json.dumps({"shape": "x" * 5000, "size": [1.0]}))
@example(text=json.dumps({"shape": "disc", "size": ["y" * 5000]}))
def test_object_info_is_decoded_or_rejected(text: str) -> None:
    expect_rejected_or_decoded(lambda: decode(m.STRING, m.string_msg(text)))


# -------------------------------------------------------------------------------------------- bags

T0 = 1_700_000_000_000_000_000
BAG_TOPICS = {"/digit/image_raw/compressed": "jpeg", "/ee_pose": "pose", "/object_detection": "detection",
              "/object_info": "object_info"}


@pytest.fixture(scope="module")
def clean_bags(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """A short bag with every input type, in each storage the writer offers."""
    base = tmp_path_factory.mktemp("fuzz_bags")
    bags = {}
    for storage in ("mcap", "sqlite3"):
        path = base / storage
        with BagWriter(path, storage) as out:
            for i in range(4):
                for j, (topic, name) in enumerate(BAG_TOPICS.items()):
                    msgtype, msg = VALID[name]
                    out.write(topic, msgtype, T0 + i * 10_000_000 + j, msg)
        bags[storage] = path
    return bags


def _storage_file(bag: Path) -> Path:
    (found,) = [p for p in bag.iterdir() if p.suffix in (".mcap", ".db3")]
    return found


def read_everything(bag: Path, out: Path) -> None:
    """Every public way of reading a bag, the messages decoded as replay decodes them."""
    bag_info(bag)
    require_topics(bag, [["/ee_pose"], ["/digit/image_raw", "/digit/image_raw/compressed"]])
    for message in read_messages(bag):
        expect_rejected_or_decoded(lambda message=message: decode(message.msgtype, message.msg))
    for _topic, msgtype, _t, raw in read_raw(bag):
        assert msgtype in m.TYPESTORE.types and len(bytes(raw)) >= 0
    copy_bag_with(bag, out / "copy", [])


def expect_bag_error(bag: Path, out: Path) -> None:
    try:
        read_everything(bag, out)
        event("read")
    except BagError as error:
        check_message(error, bag, out)
        event(f"BagError: {str(error).replace(str(bag), '').split(':')[0].strip()[:40]}")
    assert not (out / "copy.partial").exists()


def test_clean_bags_read(clean_bags: dict[str, Path], tmp_path: Path) -> None:
    """The bags the bag fuzzing mutates read whole, in every way the fuzzing reads them."""
    for storage, bag in clean_bags.items():
        read_everything(bag, tmp_path / storage)
        assert sum(s.count for s in bag_info(bag).values()) == 4 * len(BAG_TOPICS)


@fuzz(80)
@given(storage=st.sampled_from(["mcap", "sqlite3"]), data=st.data(), bare=st.booleans())
def test_mutated_storage_file_reads_or_is_a_bag_error(clean_bags: dict[str, Path], scratch: Callable[[], Any],
                                                      storage: str, data: st.DataObject, bare: bool) -> None:
    with scratch() as work:
        bag = Path(work) / "bag"
        shutil.copytree(clean_bags[storage], bag)
        file = _storage_file(bag)
        file.write_bytes(data.draw(mutated_bytes(file.read_bytes(), hot=4096)))
        expect_bag_error(file if bare else bag, Path(work))


@fuzz(80)
@given(storage=st.sampled_from(["mcap", "sqlite3"]), data=st.data(), textual=st.booleans())
def test_mutated_metadata_reads_or_is_a_bag_error(clean_bags: dict[str, Path], scratch: Callable[[], Any],
                                                  storage: str, data: st.DataObject, textual: bool) -> None:
    with scratch() as work:
        bag = Path(work) / "bag"
        shutil.copytree(clean_bags[storage], bag)
        metadata = bag / "metadata.yaml"
        text = metadata.read_text()
        if textual:
            metadata.write_text(mutate_text(data.draw, text))
        else:
            metadata.write_text(to_yaml(mutate_tree(data.draw, yaml.safe_load(text))))
        expect_bag_error(bag, Path(work))


@pytest.mark.parametrize("field, value", [("message_count", None), ("message_count", "many"),
                                          ("message_count", -1), ("message_count", True), ("name", ["/ee_pose"]),
                                          ("type", 7)])
def test_metadata_of_the_wrong_type_is_a_bag_error(clean_bags: dict[str, Path], tmp_path: Path, field: str,
                                                   value: Any) -> None:
    """rosbags reads metadata.yaml's topics without checking their types (found by the fuzzing above)."""
    bag = tmp_path / "bag"
    shutil.copytree(clean_bags["mcap"], bag)
    metadata = yaml.safe_load((bag / "metadata.yaml").read_text())
    for entry in metadata["rosbag2_bagfile_information"]["topics_with_message_count"]:
        if field == "message_count":
            entry["message_count"] = value
        else:
            entry["topic_metadata"][field] = value
    (bag / "metadata.yaml").write_text(to_yaml(metadata))
    with pytest.raises(BagError, match="is corrupt") as raised:
        read_everything(bag, tmp_path)
    check_message(raised.value, bag)


@fuzz(40)
@given(storage=st.sampled_from(["mcap", "sqlite3"]), garbage=st.binary(max_size=2000), named=st.booleans())
def test_random_bytes_are_a_bag_error(scratch: Callable[[], Any], storage: str, garbage: bytes, named: bool) -> None:
    with scratch() as work:
        if named:  # a storage file of garbage
            bag = Path(work) / ("bag.mcap" if storage == "mcap" else "bag.db3")
            bag.write_bytes(garbage)
        else:  # a directory whose metadata.yaml is garbage
            bag = Path(work) / "bag"
            bag.mkdir()
            (bag / "metadata.yaml").write_bytes(garbage)
        expect_bag_error(bag, Path(work))


# ------------------------------------------------------------------------------------------ config

CONFIG_FILES = {"estimator_node": ROOT / "config" / "estimator.yaml", "trainer_node": ROOT / "config" / "trainer.yaml"}
LOADERS = {"estimator_node": load_estimator_config, "trainer_node": load_trainer_config}


def _parameter_names(node: str) -> list[str]:
    """Every dotted parameter name the shipped file sets, for structures that get past the unknown-key check."""
    def walk(tree: Any, prefix: str) -> Iterator[str]:
        if isinstance(tree, dict):
            for key, value in tree.items():
                yield f"{prefix}{key}"
                yield from walk(value, f"{prefix}{key}.")
    return sorted(walk(yaml.safe_load(CONFIG_FILES[node].read_text())[node]["ros__parameters"], ""))


PARAMETER_NAMES = _parameter_names("estimator_node") + _parameter_names("trainer_node")
parameter_names = st.one_of(
    st.sampled_from(PARAMETER_NAMES), texts, ints, st.none(),
    st.lists(st.sampled_from([*PARAMETER_NAMES, "", "x", "ros__parameters", "/**"]), min_size=1, max_size=3).map(
        ".".join),
)
parameters = st.dictionaries(parameter_names, yaml_values, max_size=6)


def expect_config_error(node: str, path: Path | None, overrides: dict[str, Any] | None = None) -> None:
    try:
        LOADERS[node](path, overrides)
        event("loaded")
    except ConfigError as error:
        check_message(error, *([path] if path is not None else []))
        event("ConfigError")


def test_shipped_configs_load() -> None:
    """The files the config fuzzing mutates load as they are."""
    assert load_estimator_config(CONFIG_FILES["estimator_node"]).backend in ("isam2", "gn")
    assert load_trainer_config(CONFIG_FILES["trainer_node"]).epochs >= 0


@fuzz(150)
@given(node=st.sampled_from(sorted(LOADERS)), text=st.one_of(
    st.text(max_size=200), st.sampled_from(RAW_TEXT_SNIPPETS),
    st.lists(st.sampled_from(RAW_TEXT_SNIPPETS + ["estimator_node:", "  ros__parameters:", "trainer_node:",
                                                  "    backend: gn", "/**:", "    - 1", "    a.b.c: 1"]),
             max_size=8).map("\n".join)))
def test_random_text_config_is_loaded_or_a_config_error(tmp_path: Path, node: str, text: str) -> None:
    path = tmp_path / "params.yaml"
    path.write_text(text, encoding="utf-8", errors="surrogatepass")
    expect_config_error(node, path)


@fuzz(80)
@given(node=st.sampled_from(sorted(LOADERS)), data=st.binary(max_size=300))
def test_random_bytes_config_is_loaded_or_a_config_error(tmp_path: Path, node: str, data: bytes) -> None:
    path = tmp_path / "params.yaml"
    path.write_bytes(data)
    expect_config_error(node, path)


@fuzz(300)
@given(node=st.sampled_from(sorted(LOADERS)), section=st.sampled_from(["estimator_node", "trainer_node", "/**",
                                                                       "/estimator_node", "other"]),
       values=st.one_of(parameters, yaml_values), wrap=st.sampled_from(["params", "section", "document"]))
def test_random_structure_config_is_loaded_or_a_config_error(tmp_path: Path, node: str, section: str, values: Any,
                                                             wrap: str) -> None:
    document = {"params": {section: {"ros__parameters": values}}, "section": {section: values},
                "document": values}[wrap]
    path = tmp_path / "params.yaml"
    path.write_text(to_yaml(document), encoding="utf-8")
    expect_config_error(node, path)


@fuzz(200)
@given(node=st.sampled_from(sorted(LOADERS)), overrides=parameters)
def test_random_overrides_are_loaded_or_a_config_error(node: str, overrides: dict[Any, Any]) -> None:
    expect_config_error(node, None, overrides)


@fuzz(300)
@given(node=st.sampled_from(sorted(LOADERS)), data=st.data(), textual=st.booleans())
def test_mutated_shipped_config_is_loaded_or_a_config_error(tmp_path: Path, node: str, data: st.DataObject,
                                                            textual: bool) -> None:
    text = CONFIG_FILES[node].read_text()
    path = tmp_path / "params.yaml"
    if textual:
        path.write_text(mutate_text(data.draw, text), encoding="utf-8")
    else:
        path.write_text(to_yaml(mutate_tree(data.draw, yaml.safe_load(text))), encoding="utf-8")
    expect_config_error(node, path)


# ------------------------------------------------------------------------------------------- model

SHIPPED_MODEL = ROOT / "models"


def expect_model_error(directory: Path) -> None:
    try:
        model = TactileModel.load(directory)
    except ModelError as error:
        check_message(error, directory)
        event(f"ModelError: {str(error).replace(str(directory), '').split(':')[1].strip()[:40]}")
        return
    event("loaded")
    # A model that loads is one the estimator can use: its network matches its description.
    assert model.net.project.out_features == model.arch.embedding
    assert len(model.weights.tactile) == 3 and all(s > 0 for s in model.weights.tactile)
    assert all(isinstance(v, float) for rho in model.persistence.values() for v in rho)


def _copy_model(work: str) -> Path:
    directory = Path(work) / "model"
    shutil.copytree(SHIPPED_MODEL, directory)
    return directory


def test_shipped_model_loads() -> None:
    """The model the model fuzzing mutates loads as it is."""
    assert TactileModel.load(SHIPPED_MODEL).has_normal_head


@fuzz(120)
@given(data=st.data())
def test_mutated_model_yaml_is_loaded_or_a_model_error(scratch: Callable[[], Any], data: st.DataObject) -> None:
    with scratch() as work:
        directory = _copy_model(work)
        description = yaml.safe_load((directory / "model.yaml").read_text())
        if data.draw(st.booleans()):  # a value of the network's or the factors' description
            section = data.draw(st.sampled_from(["architecture", "factor_weights"]))
            field = data.draw(st.sampled_from(sorted(description[section]) + ["unknown_field"]))
            description[section] = dict(description[section])
            if data.draw(st.integers(0, 5)) == 0:
                description[section].pop(field, None)
            else:
                description[section][field] = data.draw(yaml_values)
        else:
            description = mutate_tree(data.draw, description)
        (directory / "model.yaml").write_text(to_yaml(description))
        expect_model_error(directory)


@fuzz(60)
@given(data=st.data(), kind=st.sampled_from(["lines", "bytes", "text"]))
@example(data=None, kind="month")
@example(data=None, kind="digits")
@example(data=None, kind="overflow")
@example(data=None, kind="deep")
@example(data=None, kind="bomb")
def test_model_yaml_text_is_loaded_or_a_model_error(scratch: Callable[[], Any], data: st.DataObject | None,
                                                    kind: str) -> None:
    with scratch() as work:
        directory = _copy_model(work)
        path = directory / "model.yaml"
        text = path.read_text()
        # 9**6 strings once expanded: quoting it whole took seconds and tens of MB per error message
        laughs = "".join(f"l{i}: &l{i} [{', '.join([f'*l{i - 1}'] * 9)}]\n" for i in range(1, 7))
        edits: dict[str, Callable[[], bytes]] = {
            "lines": lambda: mutate_text(data.draw, text).encode(),
            "bytes": lambda: data.draw(mutated_bytes(text.encode(), hot=len(text))),
            "text": lambda: data.draw(st.text(max_size=300)).encode("utf-8", "surrogatepass"),
            "month": lambda: text.replace("date: '2026-12-01'", "date: 2026-13-01").encode(),
            "digits": lambda: text.replace("  embedding: 64", "  embedding: " + "9" * 5000).encode(),
            "overflow": lambda: text.replace("  input_scale: 0.03125", "  input_scale: 1" + "0" * 400).encode(),
            "deep": lambda: (text + "extra: " + "[" * 20000 + "]" * 20000 + "\n").encode(),
            "bomb": lambda: ("l0: &l0 [lol, lol, lol, lol, lol, lol, lol, lol, lol]\n" + laughs
                             + text.replace("  channels:\n  - 16\n", "  channels:\n  - *l6\n")).encode(),
        }
        path.write_bytes(edits[kind]())
        tracemalloc.start()
        try:
            expect_model_error(directory)
            _, peak = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()
        assert peak < 40e6, f"loading took {peak / 1e6:.0f} MB of Python memory"


@fuzz(60)
@given(data=st.data())
def test_mutated_weights_are_loaded_or_a_model_error(scratch: Callable[[], Any], data: st.DataObject) -> None:
    with scratch() as work:
        directory = _copy_model(work)
        weights = directory / "weights.pt"
        original = weights.read_bytes()
        mutated = data.draw(mutated_bytes(original, hot=4096))
        assume(mutated != original)
        weights.write_bytes(mutated)
        expect_model_error(directory)
