"""rosbag2 reading and writing against real bags (recorded by ROS 2) and bags written here."""

from __future__ import annotations

import os
import shutil
import struct
import tempfile
import zlib
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pytest

from tactile_estimator.io import messages as m
from tactile_estimator.io.bags import (
    BagError,
    BagWriter,
    MissingTopicsError,
    ReadStats,
    bag_info,
    bag_topics,
    copy_bag_with,
    read_messages,
    require_topics,
    resolve_bag,
)
from tactile_estimator.records import ObjectInfo, TactileFrame

BAGS = Path(__file__).resolve().parent / "fixtures" / "ros2-bags"
T0 = 1_700_000_000_000_000_000
TALKER_TEXT = [f"Hello, world! {i}" for i in range(10)]


def _recorded_bag(name: str) -> Path:
    return BAGS / name


def _frame(i: int) -> TactileFrame:
    yy, xx = np.mgrid[0:60, 0:80]
    image = np.stack([(xx * 3 + i) % 256, (yy * 4) % 256, np.full_like(xx, 10 * i)], axis=-1).astype(np.uint8)
    return TactileFrame(stamp_ns=T0 + i * 33_000_000, image=image, frame_id="digit")


def _write_session(path: Path, storage: str = "mcap") -> dict[str, list]:
    """A small session with every input type; returns what was written, per topic."""
    written: dict[str, list] = {"/digit/image_raw/compressed": [], "/ee_pose": [], "/object_detection": []}
    cov = np.diag([1e-4, 2e-4, 3e-3])
    with BagWriter(path, storage) as out:
        out.write("/object_info", m.STRING, T0, m.string_msg(m.object_info_to_text(ObjectInfo("disc", (0.05,)))))
        for i in range(5):
            frame = _frame(i)
            pose = np.array([0.01 * i, -0.02 * i, 0.1 * i - 0.2])
            out.write("/digit/image_raw/compressed", m.COMPRESSED_IMAGE, frame.stamp_ns, m.compressed_image_msg(frame))
            out.write(
                "/ee_pose", m.POSE_STAMPED, frame.stamp_ns + 1, m.pose_stamped_msg(frame.stamp_ns + 1, pose, "world")
            )
            msg = m.pose_with_covariance_msg(frame.stamp_ns + 2, pose + 0.5, cov * (i + 1), "world")
            out.write("/object_detection", m.POSE_WITH_COVARIANCE_STAMPED, frame.stamp_ns + 2, msg)
            written["/digit/image_raw/compressed"].append(frame)
            written["/ee_pose"].append((frame.stamp_ns + 1, pose))
            written["/object_detection"].append((frame.stamp_ns + 2, pose + 0.5, cov * (i + 1)))
    return written


def _storage_file(bag_dir: Path) -> Path:
    (found,) = [p for p in bag_dir.iterdir() if p.suffix in (".mcap", ".db3")]
    return found


# ---------------------------------------------------------------------------------- recorded bags


@pytest.mark.parametrize(
    "relative",
    [
        "talker_mcap",
        "talker_sqlite3",
        "talker_mcap/talker.mcap",
        "talker_sqlite3/talker.db3",
        "talker_mcap/metadata.yaml",
    ],
)
def test_recorded_talker_bags_open_and_read(relative: str) -> None:
    path = _recorded_bag(relative)
    resolved = resolve_bag(path)
    assert resolved == (path.parent if path.name == "metadata.yaml" else path)
    topics = bag_topics(path)
    assert topics["/topic"] == "std_msgs/msg/String"
    assert topics["/rosout"] == "rcl_interfaces/msg/Log"
    assert bag_info(path)["/topic"].count == 10
    texts = [msg.msg.data for msg in read_messages(path, ["/topic"])]
    assert texts == TALKER_TEXT


def test_read_all_topics_is_in_log_time_order() -> None:
    path = _recorded_bag("talker_sqlite3")
    messages = list(read_messages(path))
    assert [x.topic for x in messages[:4]] == ["/rosout", "/topic", "/rosout", "/topic"]
    assert len(messages) == 20
    times = [x.log_time_ns for x in messages]
    assert times == sorted(times)
    log = messages[0]
    assert log.msgtype == "rcl_interfaces/msg/Log" and "Hello, world! 0" in log.msg.msg


def test_require_topics_names_missing_and_present_topics() -> None:
    path = _recorded_bag("talker_mcap")
    with pytest.raises(MissingTopicsError) as info:
        require_topics(path, [["/digit/image_raw", "/digit/image_raw/compressed"], ["/ee_pose"], ["/topic"]])
    text = str(info.value)
    assert "\n" not in text
    assert text.startswith(f"bag {path} lacks /digit/image_raw (or /digit/image_raw/compressed), /ee_pose; it has ")
    assert "/topic (std_msgs/msg/String)" in text and "/rosout (rcl_interfaces/msg/Log)" in text
    assert info.value.missing == [["/digit/image_raw", "/digit/image_raw/compressed"], ["/ee_pose"]]
    assert isinstance(info.value, BagError)
    assert require_topics(path, [["/chatter", "/topic"], ["/rosout"]]) == ["/topic", "/rosout"]


def test_require_topics_treats_an_empty_topic_as_missing() -> None:
    path = _recorded_bag("talker_sqlite3")
    with pytest.raises(
        MissingTopicsError, match=r"lacks /parameter_events;.*\(rcl_interfaces/msg/ParameterEvent, no messages\)"
    ):
        require_topics(path, [["/parameter_events"]])


def test_unknown_message_types_are_skipped_with_one_warning_per_topic() -> None:
    path = _recorded_bag("cdr_test_mcap")
    assert bag_topics(path) == {"/array_topic": "test_msgs/msg/Arrays", "/test_topic": "test_msgs/msg/BasicTypes"}
    warnings: list[str] = []
    stats = ReadStats()
    assert list(read_messages(path, warn=warnings.append, stats=stats)) == []
    assert len(warnings) == 2
    assert any("/array_topic" in w and "test_msgs/msg/Arrays" in w for w in warnings)
    assert any("/test_topic" in w and "test_msgs/msg/BasicTypes" in w for w in warnings)
    assert stats.unknown_types == {"/array_topic": "test_msgs/msg/Arrays", "/test_topic": "test_msgs/msg/BasicTypes"}
    # Only topics that were asked for are warned about.
    warnings.clear()
    assert list(read_messages(path, ["/test_topic"], warn=warnings.append)) == []
    assert len(warnings) == 1 and "/test_topic" in warnings[0]


def test_unknown_types_default_to_the_module_logger(caplog: pytest.LogCaptureFixture) -> None:
    path = _recorded_bag("cdr_test_mcap/cdr_test_0.mcap")
    with caplog.at_level("WARNING", logger="tactile_estimator.io.bags"):
        assert list(read_messages(path)) == []
    assert sum("/array_topic" in r.getMessage() for r in caplog.records) == 1


# ------------------------------------------------------------------------------------- bad paths


def _assert_one_line_bag_error(excinfo: pytest.ExceptionInfo[BagError], path: Path) -> str:
    text = str(excinfo.value)
    assert "\n" not in text and str(path) in text
    return text


def test_not_a_bag(tmp_path: Path) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    text_file = tmp_path / "notes.txt"
    text_file.write_text("hello\n")
    for path in (empty, text_file):
        for call in (resolve_bag, bag_topics):
            with pytest.raises(BagError) as info:
                call(path)
            assert "is not a rosbag2 directory or .mcap/.db3 file" in _assert_one_line_bag_error(info, path)
        with pytest.raises(BagError):
            read_messages(path)  # the path is checked at call time, before iteration
    with pytest.raises(BagError, match="does not exist"):
        bag_topics(tmp_path / "missing")


@pytest.mark.parametrize("name", ["fake.mcap", "fake.db3"])
def test_garbage_storage_file(tmp_path: Path, name: str) -> None:
    path = tmp_path / name
    path.write_bytes(b"this is not a bag " * 100)
    with pytest.raises(BagError) as info:
        bag_topics(path)
    _assert_one_line_bag_error(info, path)
    with pytest.raises(BagError):
        list(read_messages(path))


def test_broken_metadata_yaml(tmp_path: Path) -> None:
    path = tmp_path / "bag"
    _write_session(path)
    (path / "metadata.yaml").write_text("rosbag2_bagfile_information: [unclosed\n")
    with pytest.raises(BagError) as info:
        bag_topics(path)
    _assert_one_line_bag_error(info, path)


def test_truncated_mcap(tmp_path: Path) -> None:
    bag = tmp_path / "bag"
    _write_session(bag)
    whole = _storage_file(bag)
    data = whole.read_bytes()
    cut = tmp_path / "cut.mcap"
    cut.write_bytes(data[: len(data) // 2])
    with pytest.raises(BagError) as info:
        resolve_bag(cut)
    assert "truncated or corrupt" in _assert_one_line_bag_error(info, cut)
    with pytest.raises(BagError):
        list(read_messages(cut))
    # The same inside its rosbag2 directory.
    whole.write_bytes(data[: len(data) // 2])
    with pytest.raises(BagError) as info:
        list(read_messages(bag))
    _assert_one_line_bag_error(info, bag)


def test_truncated_sqlite3(tmp_path: Path) -> None:
    bag = tmp_path / "bag"
    _write_session(bag, "sqlite3")
    whole = _storage_file(bag)
    cut = tmp_path / "cut.db3"
    data = whole.read_bytes()
    cut.write_bytes(data[: len(data) // 2])
    with pytest.raises(BagError) as info:
        list(read_messages(cut, warn=lambda _: None))
    _assert_one_line_bag_error(info, cut)


def test_storage_file_without_metadata_is_found(tmp_path: Path) -> None:
    bag = tmp_path / "bag"
    _write_session(bag)
    (bag / "metadata.yaml").unlink()
    assert resolve_bag(bag) == _storage_file(bag)
    assert bag_info(bag)["/ee_pose"].count == 5
    shutil.copy(_storage_file(bag), bag / "second.mcap")
    with pytest.raises(BagError, match="no metadata.yaml and 2 storage files"):
        resolve_bag(bag)


def test_symlink_loop_and_dangling_link_are_named_as_such(tmp_path: Path) -> None:
    loop = tmp_path / "loop.mcap"
    loop.symlink_to(loop)
    dangling = tmp_path / "dangling"
    dangling.symlink_to(tmp_path / "gone")
    for call in (resolve_bag, bag_topics, read_messages):
        with pytest.raises(BagError) as info:
            call(loop)
        assert "symbolic link loop" in _assert_one_line_bag_error(info, loop) and "exist" not in str(info.value)
    with pytest.raises(BagError) as info:
        resolve_bag(dangling)
    assert "symbolic link to" in _assert_one_line_bag_error(info, dangling) and "gone, which does not exist" in str(
        info.value
    )


def test_a_named_pipe_is_not_opened(tmp_path: Path) -> None:
    fifo = tmp_path / "live.mcap"
    os.mkfifo(fifo)  # opening it for reading would block until a writer came
    with pytest.raises(BagError) as info:
        resolve_bag(fifo)
    assert "not a regular file" in _assert_one_line_bag_error(info, fifo)


@contextmanager
def _unprivileged() -> Iterator[None]:
    """Root reads whatever a file's mode says: take an unprivileged effective user for the block."""
    if os.geteuid() != 0:
        yield
        return
    try:
        os.seteuid(65534)
    except OSError:
        pytest.skip("running as root without the right to change user: file modes cannot deny reads")
    try:
        yield
    finally:
        os.seteuid(0)


@pytest.fixture
def public_dir() -> Iterator[Path]:
    """A directory any user may enter (pytest's tmp_path is its owner's alone)."""
    with tempfile.TemporaryDirectory() as name:
        os.chmod(name, 0o755)
        yield Path(name)


@pytest.mark.parametrize("storage", ["mcap", "sqlite3"])
def test_unreadable_bag_is_named_unreadable_not_corrupt(public_dir: Path, storage: str) -> None:
    bag = public_dir / "bag"
    _write_session(bag, storage)
    storage_file = _storage_file(bag)
    bare = shutil.copy(storage_file, public_dir / storage_file.name)
    closed = shutil.copytree(bag, public_dir / "closed")
    cases = {Path(bare): Path(bare), bag: storage_file, closed: closed}  # path given: what is made unreadable
    for unreadable in cases.values():
        os.chmod(unreadable, 0)
    try:
        for path in cases:
            with _unprivileged(), pytest.raises(BagError) as info:
                bag_info(path)
            text = _assert_one_line_bag_error(info, path)
            assert "cannot be read: permission denied" in text and "corrupt" not in text
    finally:
        for unreadable in cases.values():
            os.chmod(unreadable, 0o755)


# -------------------------------------------------------------------------------------- writing


@pytest.mark.parametrize("storage", ["mcap", "sqlite3"])
def test_round_trip_through_a_written_bag(tmp_path: Path, storage: str) -> None:
    path = tmp_path / "session"
    written = _write_session(path, storage)
    assert (path / "metadata.yaml").is_file()
    assert _storage_file(path).suffix == (".mcap" if storage == "mcap" else ".db3")
    assert not (tmp_path / "session.partial").exists()

    topics = bag_topics(path)
    assert topics == {
        "/digit/image_raw/compressed": m.COMPRESSED_IMAGE,
        "/ee_pose": m.POSE_STAMPED,
        "/object_detection": m.POSE_WITH_COVARIANCE_STAMPED,
        "/object_info": m.STRING,
    }
    got: dict[str, list] = {topic: [] for topic in topics}
    times = []
    for msg in read_messages(path):
        times.append(msg.log_time_ns)
        if msg.topic == "/digit/image_raw/compressed":
            got[msg.topic].append(m.image_to_frame(msg.msg, msg.msgtype, msg.topic, expected_hw=(60, 80)))
        elif msg.topic == "/ee_pose":
            got[msg.topic].append(m.pose_to_sample(msg.msg, msg.msgtype, msg.topic))
        elif msg.topic == "/object_detection":
            got[msg.topic].append(m.detection_to_record(msg.msg, msg.msgtype, msg.topic))
        else:
            got[msg.topic].append(m.object_info_from_text(msg.msg.data, msg.topic))
    assert times == sorted(times) and times[0] == T0

    assert got["/object_info"] == [ObjectInfo("disc", (0.05,))]
    assert len(got["/digit/image_raw/compressed"]) == 5
    for frame, expected in zip(got["/digit/image_raw/compressed"], written["/digit/image_raw/compressed"], strict=True):
        assert frame.stamp_ns == expected.stamp_ns and frame.frame_id == "digit"
        assert np.abs(frame.image.astype(int) - expected.image.astype(int)).mean() < 4.0
    for sample, (stamp, pose) in zip(got["/ee_pose"], written["/ee_pose"], strict=True):
        assert sample.stamp_ns == stamp
        np.testing.assert_allclose(sample.pose, pose, atol=1e-12)
    for det, (stamp, pose, cov) in zip(got["/object_detection"], written["/object_detection"], strict=True):
        assert det.stamp_ns == stamp
        np.testing.assert_allclose(det.pose, pose, atol=1e-12)
        np.testing.assert_array_equal(det.covariance, cov)


def test_messages_written_out_of_order_are_read_in_order(tmp_path: Path) -> None:
    path = tmp_path / "bag"
    stamps = [T0 + 5, T0 + 1, T0 + 3, T0 + 2]
    with BagWriter(path) as out:
        for i, t in enumerate(stamps):
            out.write("/a" if i % 2 else "/b", m.STRING, t, m.string_msg(str(t)))
    got = [(x.log_time_ns, x.msg.data) for x in read_messages(path)]
    assert got == [(t, str(t)) for t in sorted(stamps)]


def test_writer_leaves_nothing_when_the_body_raises(tmp_path: Path) -> None:
    path = tmp_path / "out"
    with pytest.raises(RuntimeError, match="boom"):
        with BagWriter(path) as out:
            out.write("/x", m.STRING, T0, m.string_msg("a"))
            assert (tmp_path / "out.partial").is_dir()
            raise RuntimeError("boom")
    assert list(tmp_path.iterdir()) == []


def test_writer_refuses_to_overwrite_unless_asked(tmp_path: Path) -> None:
    path = tmp_path / "out"
    _write_session(path)
    with pytest.raises(BagError, match="exists already") as info:
        BagWriter(path)
    _assert_one_line_bag_error(info, path)
    assert bag_info(path)["/ee_pose"].count == 5  # untouched
    with BagWriter(path, "sqlite3", overwrite=True) as out:
        out.write("/only", m.STRING, T0, m.string_msg("new"))
    assert bag_topics(path) == {"/only": m.STRING}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]


def test_writer_rejects_misuse(tmp_path: Path) -> None:
    with pytest.raises(BagError, match="storage"):
        BagWriter(tmp_path / "a", "rosbag1")  # type: ignore[arg-type]
    writer = BagWriter(tmp_path / "b")
    with pytest.raises(BagError, match="not open"):
        writer.write("/x", m.STRING, T0, m.string_msg("a"))
    with pytest.raises(BagError, match="was written as std_msgs/msg/String"):
        with BagWriter(tmp_path / "c") as out:
            out.write("/x", m.STRING, T0, m.string_msg("a"))
            out.write("/x", m.POSE_STAMPED, T0, m.pose_stamped_msg(T0, (0, 0, 0), "world"))
    assert not (tmp_path / "c").exists() and not (tmp_path / "c.partial").exists()
    with pytest.raises(BagError, match="unknown to the typestore"), BagWriter(tmp_path / "d") as out:
        out.write_raw("/x", "test_msgs/msg/Arrays", T0, b"\x00\x01\x00\x00")


def test_corrupt_message_is_skipped_and_counted(tmp_path: Path) -> None:
    path = tmp_path / "bag"
    with BagWriter(path) as out:
        out.write("/s", m.STRING, T0, m.string_msg("first"))
        out.write_raw("/s", m.STRING, T0 + 1, b"\x00\x01\x00\x00\xff\xff\xff\x7f")  # string length 2^31
        out.write_raw("/s", m.STRING, T0 + 2, b"garbage")  # no CDR header
        out.write("/s", m.STRING, T0 + 3, m.string_msg("last"))
    warnings: list[str] = []
    stats = ReadStats()
    got = [x.msg.data for x in read_messages(path, warn=warnings.append, stats=stats)]
    assert got == ["first", "last"]
    assert stats.undecodable == {"/s": 2} and stats.messages == 2
    assert len(warnings) == 2 and all("/s" in w for w in warnings)
    assert "skipped 2 undecodable messages on /s" in warnings[-1]


@pytest.mark.parametrize("storage", ["mcap", "sqlite3"])
def test_copy_bag_with_adds_outputs_in_time_order(tmp_path: Path, storage: str) -> None:
    source = _recorded_bag("talker_mcap")
    times = [x.log_time_ns for x in read_messages(source, ["/topic"])]
    extra = [
        ("/estimator/object_pose", m.POSE_STAMPED, t + 1, m.pose_stamped_msg(t + 1, (i * 0.1, 0.0, 0.0), "world"))
        for i, t in enumerate(times)
    ][::-1]  # given out of order on purpose
    extra.append(("/tie", m.STRING, times[0], m.string_msg("tie")))
    out = tmp_path / "with_estimates"
    count = copy_bag_with(source, out, extra, storage=storage)
    assert count == 20 + 10 + 1  # /parameter_events has no messages
    topics = bag_topics(out)
    assert topics["/estimator/object_pose"] == m.POSE_STAMPED and topics["/topic"] == "std_msgs/msg/String"
    messages = list(read_messages(out))
    stamps = [x.log_time_ns for x in messages]
    assert stamps == sorted(stamps)
    assert [x.msg.data for x in messages if x.topic == "/topic"] == TALKER_TEXT
    first_topic = next(i for i, x in enumerate(messages) if x.topic == "/topic")
    assert messages[first_topic + 1].topic == "/tie"  # on equal times the input comes first
    poses = [x for x in messages if x.topic == "/estimator/object_pose"]
    assert [round(float(x.msg.pose.position.x), 6) for x in poses] == [round(i * 0.1, 6) for i in range(10)]


def test_copy_bag_with_skips_unknown_types(tmp_path: Path) -> None:
    source = _recorded_bag("cdr_test_mcap")
    warnings: list[str] = []
    out = tmp_path / "copy"
    count = copy_bag_with(source, out, [("/note", m.STRING, T0, m.string_msg("x"))], warn=warnings.append)
    assert count == 1
    assert bag_topics(out) == {"/note": m.STRING}
    assert len(warnings) == 2


def test_copy_of_a_truncated_bag_leaves_no_output(tmp_path: Path) -> None:
    bag = tmp_path / "bag"
    _write_session(bag)
    whole = _storage_file(bag)
    whole.write_bytes(whole.read_bytes()[:-100])
    with pytest.raises(BagError):
        copy_bag_with(bag, tmp_path / "out", [])
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bag"]


def _chunk_offsets(data: bytes) -> list[int]:
    """Offsets of the MCAP chunk records (opcode 0x06), walking the top-level records."""
    pos, offsets = 8 + 1 + 8 + int.from_bytes(data[9:17], "little"), []  # magic, then the header record
    while pos + 9 <= len(data):
        opcode, length = data[pos], int.from_bytes(data[pos + 1 : pos + 9], "little")
        if opcode == 0x06:
            offsets.append(pos)
        if opcode == 0x02:  # footer
            break
        pos += 9 + length
    return offsets


def test_damage_mid_way_yields_what_precedes_it_then_raises(tmp_path: Path) -> None:
    path = tmp_path / "big"
    rng = np.random.default_rng(0)
    with BagWriter(path) as out:  # noise JPEGs of ~70 kB: rosbags closes a chunk every 1 MiB
        for i in range(20):
            frame = TactileFrame(T0 + i * 10_000_000, rng.integers(0, 256, (240, 320, 3), dtype=np.uint8))
            out.write("/digit/image_raw/compressed", m.COMPRESSED_IMAGE, frame.stamp_ns, m.compressed_image_msg(frame))
    storage = _storage_file(path)
    data = bytearray(storage.read_bytes())
    chunks = _chunk_offsets(bytes(data))
    assert len(chunks) >= 2
    # The first record inside the second chunk (after its 9-byte record header and 40 bytes of
    # chunk fields) gets an impossible length: the reader finds out only when it gets there.
    first_record = chunks[1] + 9 + 40
    data[first_record + 1 : first_record + 9] = b"\xff" * 8
    storage.write_bytes(bytes(data))
    got: list[int] = []
    with pytest.raises(BagError) as info:
        for msg in read_messages(path):
            got.append(msg.log_time_ns)
    text = _assert_one_line_bag_error(info, path)
    assert f"after {len(got)} messages" in text
    assert 0 < len(got) < 20 and got == [T0 + i * 10_000_000 for i in range(len(got))]


def _records(data: bytes) -> list[tuple[int, int, int]]:
    """(opcode, offset, length) of every top-level MCAP record, from the header to the footer."""
    pos, found = 8, []
    while pos + 9 <= len(data):
        opcode, length = data[pos], int.from_bytes(data[pos + 1 : pos + 9], "little")
        found.append((opcode, pos, length))
        if opcode == 0x02:
            break
        pos += 9 + length
    return found


def test_written_mcap_carries_the_crcs_of_its_chunks_data_and_summary(tmp_path: Path) -> None:
    _write_session(tmp_path / "bag")
    data = _storage_file(tmp_path / "bag").read_bytes()
    records = _records(data)
    chunks = [pos for opcode, pos, _ in records if opcode == 0x06]
    assert chunks
    for pos in chunks:  # times (16 bytes), uncompressed size, CRC, compression "" and the records' length
        size, crc = struct.unpack_from("<QI", data, pos + 9 + 16)
        assert data[pos + 9 + 28 : pos + 9 + 32] == bytes(4)
        assert crc == zlib.crc32(data[pos + 9 + 40 : pos + 9 + 40 + size]) != 0
    (data_end,) = [pos for opcode, pos, _ in records if opcode == 0x0F]
    assert struct.unpack_from("<I", data, data_end + 9)[0] == zlib.crc32(data[:data_end])
    footer = records[-1][1]
    summary_start, _, summary_crc = struct.unpack_from("<QQI", data, footer + 9)
    assert summary_crc == zlib.crc32(data[summary_start : footer + 9 + 16]) != 0
    assert len(list(read_messages(tmp_path / "bag"))) == 16  # rosbags still reads it, checking the chunk CRCs


def test_a_flipped_bit_inside_a_chunk_is_found_by_the_reader(tmp_path: Path) -> None:
    bag = tmp_path / "bag"
    with BagWriter(bag) as out:
        for i in range(5):
            out.write("/s", m.STRING, T0 + i, m.string_msg(f"reading {i}"))
    storage = _storage_file(bag)
    data = bytearray(storage.read_bytes())
    at = data.index(b"reading 3")
    data[at] ^= 0x01  # "reading" becomes "seading": the message still deserialises
    storage.write_bytes(bytes(data))
    with pytest.raises(BagError) as info:
        list(read_messages(bag))
    assert "checksum" in _assert_one_line_bag_error(info, bag)
