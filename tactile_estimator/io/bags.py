"""rosbag2 reading and writing with ``rosbags`` (no ROS install needed).

A bag is what ``ros2 bag`` accepts: a rosbag2 directory (with ``metadata.yaml``) or a bare ``.mcap`` /
``.db3`` storage file. Every failure a user can cause (a wrong path, a truncated recording, a topic
the bag lacks) is a :class:`BagError` whose one-line message names the path and what is wrong, so
the CLI can print it instead of a traceback. Messages of types the typestore does not know, or that
fail to deserialise, are skipped with a warning: one odd topic must not stop a replay.
"""

from __future__ import annotations

import errno
import heapq
import logging
import os
import shutil
import struct
import zlib
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any, BinaryIO, Literal

from rosbags.interfaces import (
    Connection,
    ConnectionExtRosbag2,
    Qos,
    QosDurability,
    QosHistory,
    QosLiveliness,
    QosReliability,
    QosTime,
)
from rosbags.rosbag2 import Reader, ReaderError, StoragePlugin, Writer
from rosbags.typesys.store import Typestore

from tactile_estimator.config import ConfigError, EstimatorConfig, one_line, quote
from tactile_estimator.io import messages
from tactile_estimator.io.messages import TYPESTORE
from tactile_estimator.objects import Shape

Warn = Callable[[str], None]
StorageName = Literal["mcap", "sqlite3"]

_STORAGE_SUFFIXES = (".mcap", ".db3")
_STORAGE_PLUGINS = {"mcap": StoragePlugin.MCAP, "sqlite3": StoragePlugin.SQLITE3}
# rosbag2 metadata version 8 (what Jazzy writes); 9 changes the QoS serialisation again, which
# older ROS 2 distributions parse less well.
_METADATA_VERSION: Literal[8] = 8

_log = logging.getLogger(__name__)

_DESCRIBE_LIMIT = 300  # characters of an exception's message that a BagError repeats (YAML's can be long)


class BagError(Exception):
    """A bag that cannot be used; the message is one line naming the path and the problem."""

    def __init__(self, message: str) -> None:
        super().__init__(_one_line(message))


class MissingTopicsError(BagError):
    """The bag lacks topics a command needs; ``missing`` holds the groups of alternatives not found."""

    def __init__(self, message: str, missing: list[list[str]], available: dict[str, str]) -> None:
        super().__init__(message)
        self.missing = missing
        self.available = available

    def __reduce__(self) -> tuple[type[MissingTopicsError], tuple[str, list[list[str]], dict[str, str]]]:
        return (type(self), (str(self), self.missing, self.available))


@dataclass(frozen=True)
class BagMessage:
    """One deserialised message and the time it was logged (the time ``ros2 bag play`` plays it at)."""

    topic: str
    msgtype: str
    log_time_ns: int
    msg: Any


@dataclass(frozen=True)
class TopicSummary:
    """A topic's type and message count as the bag's index records them."""

    msgtype: str
    count: int


@dataclass
class ReadStats:
    """What :func:`read_messages` left out, for reports: skipped topics and undecodable messages."""

    messages: int = 0
    unknown_types: dict[str, str] = field(default_factory=dict)  # topic -> msgtype
    undecodable: dict[str, int] = field(default_factory=dict)  # topic -> count


def _one_line(text: str) -> str:
    return " ".join(str(text).split())


def _describe(exc: BaseException) -> str:
    text = one_line(str(exc), _DESCRIBE_LIMIT)
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


# -------------------------------------------------------------------------------------------- paths


def _os_problem(exc: OSError, path: str | os.PathLike[str]) -> str:
    """What an OSError met on (or inside) ``path`` says, in a few words naming the file where it is another."""
    where = "" if exc.filename is None or Path(exc.filename) == Path(path) else f" ({exc.filename})"
    if exc.errno == errno.ELOOP:
        return f"is a symbolic link loop{where}"
    if exc.errno in (errno.EACCES, errno.EPERM):
        return f"cannot be read: permission denied{where}"
    return f"cannot be read: {exc.strerror or _describe(exc)}{where}"


def _stat(given: Path, path: str | os.PathLike[str]) -> os.stat_result:
    """The status of ``given``, following links; a path that cannot be reached gets its own reason."""
    try:
        return given.stat()
    except FileNotFoundError:
        if given.is_symlink():
            raise BagError(f"bag {path} is a symbolic link to {os.readlink(given)}, which does not exist") from None
        raise BagError(f"bag {path} does not exist") from None
    except NotADirectoryError:
        raise BagError(f"bag {path} does not exist (a part of the path is a file)") from None
    except OSError as exc:
        raise BagError(f"bag {path} {_os_problem(exc, path)}") from None


def _locate(path: str | os.PathLike[str]) -> Path:
    """The path rosbags' Reader should open, from the layout alone (nothing is read)."""
    given = Path(path)
    _stat(given, path)
    try:
        return _layout(given, path)
    except OSError as exc:  # a directory that may not be listed or entered
        raise BagError(f"bag {path} {_os_problem(exc, path)}") from None


def _layout(given: Path, path: str | os.PathLike[str]) -> Path:
    if given.is_dir():
        if (given / "metadata.yaml").is_file():
            return given
        storage = sorted(p for p in given.iterdir() if p.suffix in _STORAGE_SUFFIXES and p.is_file())
        if len(storage) == 1:
            # A recording whose metadata.yaml was never written (e.g. the recorder was killed):
            # the storage file alone still holds its topics.
            return storage[0]
        if len(storage) > 1:
            raise BagError(
                f"{path} has no metadata.yaml and {len(storage)} storage files "
                f"({', '.join(p.name for p in storage)}); run `ros2 bag reindex` on it or pass one file"
            )
        raise BagError(f"{path} is not a rosbag2 directory or .mcap/.db3 file")
    if given.name != "metadata.yaml" and given.suffix not in _STORAGE_SUFFIXES:
        raise BagError(f"{path} is not a rosbag2 directory or .mcap/.db3 file")
    if not given.is_file():  # a pipe or a device: opening one may block, reading it is no bag
        raise BagError(f"bag {path} is not a regular file or directory")
    return given.parent if given.name == "metadata.yaml" else given


def _check_readable(location: Path, path: str | os.PathLike[str]) -> None:
    """Open the files rosbags will read, so that one the user may not read is reported as that:
    rosbags reports it as a corrupt or unopenable bag."""
    if location.is_dir():
        files = [location / "metadata.yaml", *sorted(p for p in location.iterdir() if p.suffix in _STORAGE_SUFFIXES)]
    else:
        files = [location]
    for file in files:
        if not file.is_file():
            continue
        try:
            with open(file, "rb"):
                pass
        except OSError as exc:
            raise BagError(f"bag {path} {_os_problem(exc, path)}") from None


@contextmanager
def _open_reader(path: str | os.PathLike[str]) -> Iterator[Reader]:
    """An open Reader; every way opening can fail becomes a one-line BagError."""
    location = _locate(path)
    try:
        _check_readable(location, path)
    except OSError as exc:
        raise BagError(f"bag {path} {_os_problem(exc, path)}") from None
    try:
        reader = Reader(location)
        reader.open()
    except ReaderError as exc:
        hint = ""
        if "magic" in str(exc) or "Truncated" in str(exc):
            # rosbags needs the MCAP footer; a recording that was killed has none.
            hint = "; an interrupted MCAP recording can be repaired with `mcap recover`"
        raise BagError(f"bag {path} is truncated or corrupt: {_describe(exc)}{hint}") from exc
    except Exception as exc:  # rosbags lets OSError, KeyError, apsw and struct errors through
        raise BagError(f"bag {path} cannot be read: {_describe(exc)}") from exc
    try:
        yield reader
    finally:
        try:
            reader.close()
        except Exception as exc:  # closing must not hide what happened while reading
            _log.debug("closing bag %s failed: %s", path, exc)


def resolve_bag(path: str | os.PathLike[str]) -> Path:
    """The directory or storage file to read for ``path``, checked by opening it.

    Accepts a rosbag2 directory, its ``metadata.yaml``, a bare ``.mcap``/``.db3`` file, or a directory
    holding exactly one storage file but no ``metadata.yaml``.
    """
    with _open_reader(path):
        pass
    return _locate(path)


def _checked(conn: Connection, path: str | os.PathLike[str]) -> Connection:
    """``conn`` if its topic, type and count have the types rosbags assumes (it reads metadata.yaml
    without checking them), else a BagError."""
    count = conn.msgcount
    if not (isinstance(conn.topic, str) and isinstance(conn.msgtype, str) and isinstance(count, int)
            and not isinstance(count, bool) and count >= 0):
        raise BagError(f"bag {path} is corrupt: it lists topic {quote(conn.topic)} of type {quote(conn.msgtype)} "
                       f"with {quote(count)} messages")
    return conn


def bag_info(path: str | os.PathLike[str]) -> dict[str, TopicSummary]:
    """Every topic with its type and message count (topics with no messages included)."""
    with _open_reader(path) as reader:
        topics: dict[str, TopicSummary] = {}
        for conn in (_checked(c, path) for c in reader.connections):
            known = topics.get(conn.topic)
            if known is None:
                topics[conn.topic] = TopicSummary(conn.msgtype, conn.msgcount)
            else:
                types = known.msgtype.split(" | ")
                msgtype = known.msgtype if conn.msgtype in types else f"{known.msgtype} | {conn.msgtype}"
                topics[conn.topic] = TopicSummary(msgtype, known.count + conn.msgcount)
    return dict(sorted(topics.items()))


def bag_topics(path: str | os.PathLike[str]) -> dict[str, str]:
    """Topic -> message type (``a | b`` in the odd bag where a topic carries several types)."""
    return {topic: info.msgtype for topic, info in bag_info(path).items()}


def require_topics(path: str | os.PathLike[str], required: list[list[str]]) -> list[str]:
    """Check that the bag has, for each group of alternatives, one topic with messages.

    Returns the first present alternative of each group; raises MissingTopicsError naming what is
    missing and what the bag has instead.
    """
    info = bag_info(path)
    chosen: list[str] = []
    missing: list[list[str]] = []
    for group in required:
        found = next((topic for topic in group if topic in info and info[topic].count > 0), None)
        if found is None:
            missing.append(list(group))
        else:
            chosen.append(found)
    if missing:
        lacks = ", ".join(
            group[0] + "".join(f" (or {alt})" for alt in group[1:]) if group else "(empty group)" for group in missing
        )
        has = (
            ", ".join(
                f"{topic} ({s.msgtype})" if s.count else f"{topic} ({s.msgtype}, no messages)"
                for topic, s in info.items()
            )
            or "no topics"
        )
        available = {topic: s.msgtype for topic, s in info.items()}
        raise MissingTopicsError(f"bag {path} lacks {lacks}; it has {has}", missing, available)
    return chosen


# ------------------------------------------------------------------------------------------ reading


def _readable(
    reader: Reader,
    path: str | os.PathLike[str],
    topics: Iterable[str] | None,
    typestore: Typestore,
    warn: Warn,
    stats: ReadStats,
) -> list[Connection]:
    """The connections to read; topics the typestore cannot deserialise are warned about once.

    For a rosbag2 directory these are the storage files' own connections, not the ones parsed from
    metadata.yaml: rosbags 0.11 pairs the two by comparing QoS profiles too, and where they differ
    (the recorded test bags store deadline 0 in metadata.yaml but "infinite" in the storage file)
    it silently yields no messages at all. Passing the storage's connections makes the pairing exact.
    """
    wanted = None if topics is None else set(topics)
    storages = getattr(reader.storage, "storages", None)
    candidates = reader.connections if storages is None else [c for storage in storages for c in storage.connections]
    selected: list[Connection] = []
    for conn in (_checked(c, path) for c in candidates):
        if wanted is not None and conn.topic not in wanted:
            continue
        fmt = conn.ext.serialization_format if isinstance(conn.ext, ConnectionExtRosbag2) else "cdr"
        problem = None
        if conn.msgtype not in typestore.types:
            problem = f"message type {conn.msgtype} is unknown to the typestore"
        elif fmt != "cdr":
            problem = f"serialization format {quote(fmt)} is not cdr"
        if problem is None:
            selected.append(conn)
        elif conn.topic not in stats.unknown_types:
            stats.unknown_types[conn.topic] = conn.msgtype
            warn(f"bag {path}: skipping topic {conn.topic}: {problem}")
    return selected


def _iter_raw(
    path: str | os.PathLike[str],
    topics: Iterable[str] | None,
    typestore: Typestore,
    warn: Warn,
    stats: ReadStats,
) -> Iterator[tuple[Connection, int, bytes | memoryview]]:
    """Raw (connection, log time, CDR bytes) of the readable topics, in log-time order."""
    with _open_reader(path) as reader:
        connections = _readable(reader, path, topics, typestore, warn, stats)
        if not connections:  # an empty selection would mean "everything" to rosbags
            return
        stream = reader.messages(connections=connections)
        count = 0
        while True:
            try:
                item = next(stream)
            except StopIteration:
                return
            except Exception as exc:  # truncation or corruption found while reading
                raise BagError(f"bag {path} is truncated or corrupt after {count} messages: {_describe(exc)}") from exc
            count += 1
            yield item


def read_raw(
    path: str | os.PathLike[str],
    topics: Iterable[str] | None = None,
    warn: Warn | None = None,
    *,
    typestore: Typestore = TYPESTORE,
) -> Iterator[tuple[str, str, int, bytes | memoryview]]:
    """(topic, msgtype, log time ns, CDR bytes) in log-time order, not deserialised: what a player sends.

    The same selection and errors as :func:`read_messages`: topics the typestore lacks are skipped
    with one warning each; a bag that breaks off raises BagError after what came before.
    """
    _locate(path)
    stats = ReadStats()
    return ((conn.topic, conn.msgtype, int(t), raw)
            for conn, t, raw in _iter_raw(path, topics, typestore, warn or _log.warning, stats))


def read_messages(
    path: str | os.PathLike[str],
    topics: Iterable[str] | None = None,
    warn: Warn | None = None,
    *,
    typestore: Typestore = TYPESTORE,
    stats: ReadStats | None = None,
) -> Iterator[BagMessage]:
    """Deserialised messages of ``topics`` (all when None) in log-time order, as ``ros2 bag play`` plays them.

    Topics whose type the typestore lacks are skipped with one warning each; a message that fails
    to deserialise is skipped and counted in ``stats``. A bag that breaks off mid-way raises
    BagError after the messages before the break were yielded. The path is checked at call time;
    the bag is opened on first iteration and closed when the iterator finishes or is closed.
    """
    _locate(path)
    return _read_messages(path, topics, warn or _log.warning, typestore, stats if stats is not None else ReadStats())


def _read_messages(
    path: str | os.PathLike[str],
    topics: Iterable[str] | None,
    warn: Warn,
    typestore: Typestore,
    stats: ReadStats,
) -> Iterator[BagMessage]:
    for conn, log_time, raw in _iter_raw(path, topics, typestore, warn, stats):
        try:
            msg = typestore.deserialize_cdr(raw, conn.msgtype)
        except Exception as exc:  # corrupt CDR of one message: skip it, keep the rest
            seen = stats.undecodable.get(conn.topic, 0)
            stats.undecodable[conn.topic] = seen + 1
            if not seen:
                warn(
                    f"bag {path}: skipping undecodable {conn.msgtype} message on {conn.topic} "
                    f"at {log_time} ns ({_describe(exc)}); further ones on this topic are only counted"
                )
            continue
        stats.messages += 1
        yield BagMessage(conn.topic, conn.msgtype, log_time, msg)
    for topic, count in stats.undecodable.items():
        if count > 1:
            warn(f"bag {path}: skipped {count} undecodable messages on {topic}")


# ------------------------------------------------------------------------------------------ writing
_INFINITE = QosTime(9223372036, 854775807)  # RMW_DURATION_INFINITE, as rosbag2 writes it


def latched_qos(depth: int = 1) -> Qos:
    """The offered QoS of a latched topic (reliable, transient local, keep last ``depth``), as rosbag2
    records it for ``/tf_static`` from tf2's static broadcaster. ``ros2 bag play`` offers what the bag
    says, so a transient-local subscriber started before the play still matches and gets the message."""
    return Qos(QosHistory.KEEP_LAST, depth, QosReliability.RELIABLE, QosDurability.TRANSIENT_LOCAL,
               _INFINITE, _INFINITE, QosLiveliness.AUTOMATIC, _INFINITE, False)




class BagWriter:
    """Write a rosbag2 directory atomically: it appears at ``path`` only when writing succeeded.

    Messages go into ``<path>.partial/`` first; a clean exit renames the finished bag to ``path``,
    an exception removes the partial one, so a crash never leaves a half bag that looks whole.
    Connections are created on the first message of each topic, with the offered QoS profiles of
    ``offered_qos`` (by topic; a topic not there gets none, and ``ros2 bag play`` offers its default,
    reliable and volatile). An MCAP bag carries real CRC-32s (:func:`write_mcap_crcs`), so a reader
    finds a flipped bit instead of playing it.
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        storage: StorageName = "mcap",
        *,
        overwrite: bool = False,
        typestore: Typestore = TYPESTORE,
        offered_qos: dict[str, list[Qos]] | None = None,
    ) -> None:
        if storage not in _STORAGE_PLUGINS:
            raise BagError(f"bag {path}: storage {storage!r} is not one of {', '.join(_STORAGE_PLUGINS)}")
        self.path = Path(path)
        self.storage = storage
        self.overwrite = overwrite
        self.typestore = typestore
        self.offered_qos = dict(offered_qos or {})
        self.partial = self.path.with_name(self.path.name + ".partial")
        self.message_count = 0
        self._writer: Writer | None = None
        self._connections: dict[str, Connection] = {}
        self._check_target()

    def _check_target(self) -> None:
        if self.path.exists() and not self.overwrite:
            raise BagError(f"bag {self.path} exists already; refusing to overwrite it")

    def __enter__(self) -> BagWriter:
        self._check_target()
        try:
            if self.partial.exists():  # left by an earlier run that was killed
                _remove(self.partial)
            self.partial.mkdir(parents=True)
            self._writer = Writer(
                self.partial / self.path.name,
                version=_METADATA_VERSION,
                storage_plugin=_STORAGE_PLUGINS[self.storage],
            )
            self._writer.open()
        except Exception as exc:
            self._writer = None
            _remove(self.partial)
            raise BagError(f"bag {self.path} cannot be created: {_describe(exc)}") from exc
        return self

    def write(self, topic: str, msgtype: str, stamp_ns: int, msg: Any) -> None:
        """Serialise ``msg`` (a typestore message object) and write it with log time ``stamp_ns``."""
        try:
            data = self.typestore.serialize_cdr(msg, msgtype)
        except Exception as exc:
            raise BagError(
                f"bag {self.path}: cannot serialise a {msgtype} message for {topic}: {_describe(exc)}"
            ) from exc
        self.write_raw(topic, msgtype, stamp_ns, data)

    def write_raw(self, topic: str, msgtype: str, stamp_ns: int, data: bytes | memoryview,
                  offered_qos: list[Qos] | None = None) -> None:
        """Write already serialised CDR bytes (copying a bag needs no deserialisation); ``offered_qos``:
        the topic's profiles where its connection is new and the writer's ``offered_qos`` has none."""
        if self._writer is None:
            raise BagError(f"bag {self.path} is not open for writing; use BagWriter as a context manager")
        if stamp_ns < 0:
            raise BagError(f"bag {self.path}: log time {stamp_ns} ns on {topic} is negative")
        conn = self._connections.get(topic)
        if conn is None:
            if msgtype not in self.typestore.types:
                raise BagError(f"bag {self.path}: message type {msgtype} for {topic} is unknown to the typestore")
            profiles = self.offered_qos.get(topic, offered_qos or [])
            conn = self._writer.add_connection(topic, msgtype, typestore=self.typestore,
                                               offered_qos_profiles=profiles)
            self._connections[topic] = conn
        elif conn.msgtype != msgtype:
            raise BagError(f"bag {self.path}: topic {topic} was written as {conn.msgtype}, not {msgtype}")
        self._writer.write(conn, int(stamp_ns), data)
        self.message_count += 1

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> Literal[False]:
        writer, self._writer = self._writer, None
        if writer is None:
            return False
        if exc_type is not None:
            try:
                writer.abort()
            finally:
                _remove(self.partial)
            return False
        try:
            writer.close()
            for storage in (self.partial / self.path.name).glob("*.mcap"):
                write_mcap_crcs(storage)
            self._commit()
        except BagError:
            _remove(self.partial)
            raise
        except Exception as err:
            _remove(self.partial)
            raise BagError(f"bag {self.path} could not be finished: {_describe(err)}") from err
        return False

    def _commit(self) -> None:
        """Move the finished bag from the partial directory to ``path``."""
        finished = self.partial / self.path.name
        aside = None
        if self.path.exists() or self.path.is_symlink():
            if not self.overwrite:
                raise BagError(f"bag {self.path} appeared while writing; refusing to overwrite it")
            aside = self.path.with_name(self.path.name + ".replaced")
            _remove(aside)
            os.replace(self.path, aside)
        os.replace(finished, self.path)
        _remove(self.partial)
        if aside is not None:
            _remove(aside)


_MCAP_CHUNK, _MCAP_DATA_END, _MCAP_FOOTER = 0x06, 0x0F, 0x02
_MCAP_FOOTER_SIZE = 9 + 8 + 8 + 4  # opcode and length, summary_start, summary_offset_start, summary_crc
_CRC_BLOCK = 1 << 20


def write_mcap_crcs(path: Path) -> None:
    """Fill in the CRC-32s that rosbags' MCAP writer leaves 0 (which tells readers not to check).

    Each uncompressed chunk gets its ``uncompressed_crc``, the DataEnd record the CRC of every byte
    before it (magic included) and the Footer the CRC of the summary section and its own first
    fields, as the MCAP specification defines them; rosbags checks the chunks' CRC as it reads.
    """
    with path.open("r+b") as f:
        data_end = _write_chunk_crcs(f, path)
        _write_crc(f, data_end + 9, _crc_of(f, 0, data_end))
        footer = f.seek(-(_MCAP_FOOTER_SIZE + 8), os.SEEK_END)
        record = f.read(_MCAP_FOOTER_SIZE)
        if record[0] != _MCAP_FOOTER:
            raise BagError(f"bag {path}: the MCAP file has no footer where it must end")
        summary_start = struct.unpack("<Q", record[9:17])[0]
        if summary_start:
            summary_crc_at = footer + _MCAP_FOOTER_SIZE - 4
            _write_crc(f, summary_crc_at, _crc_of(f, summary_start, summary_crc_at))


def _write_chunk_crcs(f: BinaryIO, path: Path) -> int:
    """Walk the data section's records, writing each chunk's CRC; returns the DataEnd's offset."""
    pos = 8  # after the magic
    while True:
        f.seek(pos)
        head = f.read(9)
        if len(head) < 9 or head[0] == _MCAP_FOOTER:
            raise BagError(f"bag {path}: the MCAP file has no DataEnd record (none before byte {pos})")
        opcode, length = head[0], int.from_bytes(head[1:], "little")
        if opcode == _MCAP_DATA_END:
            return pos
        if opcode == _MCAP_CHUNK:
            _write_chunk_crc(f, pos)
        pos += 9 + length


def _write_chunk_crc(f: BinaryIO, pos: int) -> None:
    """The CRC of one chunk's records, written into the chunk; a compressed chunk keeps 0."""
    f.seek(pos + 9 + 16)  # opcode and length, then message start and end times
    uncompressed_size, _crc, compression_length = struct.unpack("<QII", f.read(16))
    if compression_length:
        return
    records = f.tell() + 8  # after the records' length, the same as uncompressed_size here
    _write_crc(f, pos + 9 + 24, _crc_of(f, records, records + uncompressed_size))


def _write_crc(f: BinaryIO, at: int, crc: int) -> None:
    f.seek(at)
    f.write(struct.pack("<I", crc))


def _crc_of(f: BinaryIO, start: int, end: int) -> int:
    """CRC-32 of the bytes ``start:end`` of an open file, read in blocks."""
    f.seek(start)
    crc = 0
    while start < end:
        block = f.read(min(_CRC_BLOCK, end - start))
        if not block:
            raise BagError(f"bag {f.name}: the MCAP file ends at byte {start}, before byte {end}")
        crc = zlib.crc32(block, crc)
        start += len(block)
    return crc


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    elif path.exists() or path.is_symlink():
        path.unlink(missing_ok=True)


def copy_bag_with(
    path_in: str | os.PathLike[str],
    path_out: str | os.PathLike[str],
    extra: Iterable[tuple[str, str, int, Any]],
    storage: StorageName = "mcap",
    *,
    overwrite: bool = False,
    warn: Warn | None = None,
    typestore: Typestore = TYPESTORE,
) -> int:
    """Write ``path_out``: the input's known-type messages plus ``extra`` (topic, msgtype, stamp_ns, msg).

    Input messages are copied as raw CDR (a faithful copy, no re-serialisation); everything is
    written in log-time order, input first on equal times. Returns the number of messages written.
    """
    _locate(path_in)
    warn = warn or _log.warning
    extras = sorted(extra, key=lambda item: int(item[2]))
    stats = ReadStats()

    source: Iterator[tuple[int, int, tuple[str, str, Any], Connection | None]] = (
        (int(t), 0, (conn.topic, conn.msgtype, raw), conn)
        for conn, t, raw in _iter_raw(path_in, None, typestore, warn, stats)
    )
    added: Iterator[tuple[int, int, tuple[str, str, Any], Connection | None]] = (
        (int(stamp), 1, (topic, msgtype, msg), None) for topic, msgtype, stamp, msg in extras
    )
    with BagWriter(path_out, storage, overwrite=overwrite, typestore=typestore) as out:
        for stamp, _, (topic, msgtype, payload), conn in heapq.merge(source, added, key=lambda item: item[:2]):
            if conn is not None:  # the input's offered QoS goes with its topic
                out.write_raw(topic, msgtype, stamp, payload, list(getattr(conn.ext, "offered_qos_profiles", [])))
            else:
                out.write(topic, msgtype, stamp, payload)
        return out.message_count


def expand_bag_paths(paths: list[str | os.PathLike[str]]) -> list[Path]:
    """Bags given directly, or every bag found one level below a directory that is not itself a bag."""
    found: list[Path] = []
    for raw in paths:
        path = Path(raw)
        if path.is_dir() and not (path / "metadata.yaml").exists():
            children = sorted(
                p for p in path.iterdir() if (p / "metadata.yaml").exists() or p.suffix in (".mcap", ".db3")
            )
            if not children:
                raise BagError(f"{path} is not a bag and holds no bags")
            found.extend(children)
        else:
            found.append(resolve_bag(path))
    return found


def object_shape(bag: Path, config: EstimatorConfig) -> Shape:
    """The configured shape, or the one the bag records on its object_info topic."""
    if config.object.shape != "from_bag":
        try:
            return Shape(config.object.shape, tuple(config.object.size))
        except ValueError as error:
            raise ConfigError(f"object: {error}") from None
    topic = config.topics.object_info
    for message in read_messages(bag, [topic]):
        try:
            return Shape.from_info(messages.object_info_from_text(message.msg.data, topic))
        except (messages.InputRejected, ValueError) as error:
            raise BagError(f"bag {bag}: {topic} does not describe an object: {error}") from None
    raise BagError(f"bag {bag} has no {topic}; set object.shape and object.size in the config")
