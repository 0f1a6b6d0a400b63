"""Cyclone DDS transport that speaks the ROS 2 wire protocol, without a ROS install.

A ROS 2 node on rmw_cyclonedds (or any RMW: the wire is plain DDS-RTPS) talks to this module as
to another ROS 2 node, because every choice below is the one rmw_cyclonedds makes:

- Topic names: ROS topic ``/digit/image_raw`` is DDS topic ``rt/digit/image_raw`` (the ``rt``
  prefix of ROS topics; a node-private ``~/object_pose`` of ``estimator_node`` is
  ``rt/estimator_node/object_pose``).
- Type names: ``sensor_msgs/msg/Image`` is ``sensor_msgs::msg::dds_::Image_``; nested types are
  named the same way. Types are key-less (ROS topics have no keys).
- Payload: plain (XCDR1) CDR with its 4-byte encapsulation header (``00 01 00 00``, little
  endian), exactly what the rosbags type store writes and reads (``serialize_cdr`` /
  ``deserialize_cdr``); readers and writers offer XCDR1 only, as rmw_cyclonedds does.
- QoS: the ROS 2 profiles: sensor data (best effort, keep last 5), reliable keep last 10 (the
  default profile), and latched (reliable, transient local, keep last 1) for ``/object_info``,
  volatile otherwise. A best-effort subscriber matches every publisher; a reliable one only
  reliable publishers, as in ROS.
- USER_DATA: each reader and writer announces its type's hash, ``typehash=RIHS01_<sha256>;``
  (io.type_hash), as ROS 2 endpoints do from Iron on; Humble peers ignore it.

The DDS type of each topic is generated from the rosbags message definition (one IdlStruct per
message type, members in definition order, ``T[N]`` as array, ``T[]`` as sequence, bounded
strings and sequences kept bounded) so that Cyclone has a real type to validate incoming samples
against and to announce in discovery. rmw_cyclonedds announces no XTypes type information, so
Cyclone matches ROS endpoints by type name alone. The generated class only describes the type:
samples cross it as CDR bytes, serialised and deserialised by rosbags, so there is one message
definition (the rosbags type store) on both transports.

A ROS participant does not list this one in ``ros2 node list`` (that needs the
``ros_discovery_info`` topic), but its topics show in ``ros2 topic list``/``echo``/``hz``.

This module and the rclpy nodes are the only ones that import a middleware.
"""

from __future__ import annotations

import functools
import logging
import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from cyclonedds.builtin import BuiltinDataReader, BuiltinTopicDcpsPublication
from cyclonedds.core import (
    DDSException,
    DDSStatus,
    Entity,
    GuardCondition,
    InstanceState,
    ReadCondition,
    SampleState,
    ViewState,
    WaitSet,
)
from cyclonedds.domain import Domain, DomainParticipant
from cyclonedds.idl import IdlStruct, make_idl_struct
from cyclonedds.idl import types as idl
from cyclonedds.pub import DataWriter
from cyclonedds.qos import Policy, Qos
from cyclonedds.sub import DataReader
from cyclonedds.topic import Topic
from cyclonedds.util import duration
from rosbags.typesys.base import Nodetype
from rosbags.typesys.store import Typestore

from tactile_estimator.adapters.qos import LATCHED, RELIABLE, SENSOR_DATA, TF, QosProfile  # noqa: F401 (the bus's profiles)
from tactile_estimator.io.messages import TYPESTORE
from tactile_estimator.io.type_hash import user_data

log = logging.getLogger(__name__)

ROS_TOPIC_PREFIX = "rt"

_BASE_TYPES: dict[str, Any] = {
    "bool": bool,
    "byte": idl.byte,
    "char": idl.uint8,  # ROS 2 'char' is an 8-bit unsigned integer on the wire
    "int8": idl.int8,
    "uint8": idl.uint8,
    "int16": idl.int16,
    "uint16": idl.uint16,
    "int32": idl.int32,
    "uint32": idl.uint32,
    "int64": idl.int64,
    "uint64": idl.uint64,
    "float32": idl.float32,
    "float64": idl.float64,
    "string": str,
}

LOCALHOST_CONFIG = """<CycloneDDS><Domain id="any">
<General><Interfaces><NetworkInterface name="lo"/></Interfaces><AllowMulticast>false</AllowMulticast></General>
<Discovery><ParticipantIndex>auto</ParticipantIndex><MaxAutoParticipantIndex>{max_participants}</MaxAutoParticipantIndex>
<Peers><Peer address="127.0.0.1"/></Peers></Discovery>
</Domain></CycloneDDS>"""


def localhost_config(max_participants: int = 16) -> str:
    """A Cyclone configuration that stays on the loopback interface and needs no multicast.

    Discovery goes by unicast to the well-known ports of participant indices 0..max on 127.0.0.1,
    which works in a container without a network (loopback usually has no MULTICAST flag).
    """
    return LOCALHOST_CONFIG.format(max_participants=int(max_participants))


class DdsError(RuntimeError):
    """A topic, type or entity the transport cannot set up; the message names it."""


# --------------------------------------------------------------------------------------- naming


def dds_topic_name(topic: str) -> str:
    """ROS topic name -> DDS topic name (``/digit/image_raw`` -> ``rt/digit/image_raw``)."""
    if not topic.startswith("/") or topic.endswith("/") or "//" in topic or "~" in topic:
        raise DdsError(f"topic '{topic}' is not an absolute ROS topic name")
    return ROS_TOPIC_PREFIX + topic


def dds_type_name(msgtype: str) -> str:
    """``pkg/msg/Name`` -> ``pkg::msg::dds_::Name_`` (rmw_cyclonedds' naming)."""
    parts = msgtype.split("/")
    if len(parts) != 3 or not all(parts):
        raise DdsError(f"message type '{msgtype}' is not of the form package/msg/Name")
    package, kind, name = parts
    return f"{package}::{kind}::dds_::{name}_"


def ros_type_name(type_name: str) -> str:
    """``pkg::msg::dds_::Name_`` -> ``pkg/msg/Name``; other names are returned unchanged."""
    parts = type_name.split("::")
    if len(parts) == 4 and parts[2] == "dds_" and parts[3].endswith("_"):
        return f"{parts[0]}/{parts[1]}/{parts[3][:-1]}"
    return type_name


# ----------------------------------------------------------------------------------------- types


def _member_type(node: tuple[Any, Any], typestore: Typestore) -> Any:
    kind, arg = node
    if kind == Nodetype.BASE:
        name, bound = arg
        if name not in _BASE_TYPES:
            raise DdsError(f"field type '{name}' has no DDS equivalent here")
        if name == "string" and bound:
            return idl.bounded_str[bound]
        return _BASE_TYPES[name]
    if kind == Nodetype.NAME:
        return idl_type(arg, typestore)
    if kind == Nodetype.ARRAY:
        return idl.array[_member_type(arg[0], typestore), arg[1]]
    if kind == Nodetype.SEQUENCE:
        inner = _member_type(arg[0], typestore)
        return idl.sequence[inner, arg[1]] if arg[1] else idl.sequence[inner]
    raise DdsError(f"field node {node!r} is not supported")


def _members(msgtype: str, typestore: Typestore) -> dict[str, Any]:
    try:
        _, fields = typestore.fielddefs[msgtype]
    except KeyError:
        raise DdsError(f"message type {msgtype} is unknown to the type store") from None
    members = {name: _member_type(node, typestore) for name, node in fields}
    # An empty ROS message still has one member on the wire (rosidl adds it).
    return members or {"structure_needs_at_least_one_member": idl.uint8}


@functools.cache
def idl_type(msgtype: str, typestore: Typestore = TYPESTORE) -> type[IdlStruct]:
    """The IdlStruct of a ROS message type, as Cyclone's own serialiser would handle it."""
    class_name = msgtype.replace("/", "__")
    return make_idl_struct(class_name, dds_type_name(msgtype), _members(msgtype, typestore))


def _raw_serialize(self: Any, *args: Any, **kwargs: Any) -> bytes:
    return self._cdr


class Received:
    """One sample as the reader took it: raw CDR bytes and DDS's sample info."""

    __slots__ = ("data", "sample_info")

    def __init__(self, data: bytes) -> None:
        self.data = data
        self.sample_info: Any = None


def _raw_deserialize(cls: type, data: bytes, *args: Any, **kwargs: Any) -> Received:
    return Received(bytes(data))


@functools.cache
def _raw_topic_type(msgtype: str, typestore: Typestore = TYPESTORE) -> type[IdlStruct]:
    """The same type with CDR bytes passed through instead of Python-side (de)serialisation."""
    cls = make_idl_struct("Raw__" + msgtype.replace("/", "__"), dds_type_name(msgtype), _members(msgtype, typestore))
    cls.serialize = _raw_serialize  # type: ignore[method-assign]
    cls.deserialize = classmethod(_raw_deserialize)  # type: ignore[method-assign,assignment]
    return cls


# ------------------------------------------------------------------------------------------- QoS


def _qos(profile: QosProfile, userdata: bytes = b"") -> Qos:
    """A reader's or writer's QoS; ``userdata`` is its USER_DATA (:func:`~tactile_estimator.io.type_hash.user_data`)."""
    policies = [
        Policy.Reliability.Reliable(duration(milliseconds=100)) if profile.reliable else Policy.Reliability.BestEffort,
        Policy.History.KeepLast(profile.depth),
        Policy.Durability.TransientLocal if profile.transient_local else Policy.Durability.Volatile,
        Policy.DataRepresentation(use_cdrv0_representation=True),
    ]
    if userdata:
        policies.append(Policy.Userdata(data=userdata))
    return Qos(*policies)


# ------------------------------------------------------------------------------------------- bus


def _wait_for_status(entity: Entity, mask: int, done: Callable[[], bool], timeout_s: float) -> bool:
    """Block until ``done()`` holds (True) or ``timeout_s`` passed (False), woken by each change of the
    entity's status in ``mask`` (one status: ``done`` must read it with its ``get_..._status``, which
    resets the trigger). The entity's status mask is restored after."""
    deadline = time.monotonic() + timeout_s
    previous = entity.get_status_mask()
    entity.set_status_mask(mask)
    waitset = WaitSet(entity.get_participant())
    waitset.attach(entity)
    try:
        while not done():
            left = deadline - time.monotonic()
            if left <= 0:
                return False
            waitset.wait(duration(seconds=left))
        return True
    finally:
        waitset.detach(entity)
        waitset.__del__()  # cyclonedds keeps entities until __del__ (see DdsBus.close)
        entity.set_status_mask(previous)


@dataclass
class Message:
    """A message taken from a subscription: deserialised, or ``error`` saying why not."""

    topic: str
    msgtype: str
    msg: Any
    source_ns: int
    error: str | None = None


class Publisher:
    def __init__(self, writer: DataWriter, topic: str, msgtype: str, data_type: type, typestore: Typestore) -> None:
        self._writer = writer
        self._data_type = data_type
        self._typestore = typestore
        self.topic = topic
        self.msgtype = msgtype

    def publish(self, msg: Any) -> None:
        self.publish_cdr(self._typestore.serialize_cdr(msg, self.msgtype))

    def publish_cdr(self, data: bytes | memoryview) -> None:
        """Publish CDR bytes (with their encapsulation header) as they are, e.g. from a bag."""
        sample = object.__new__(self._data_type)
        sample._cdr = bytes(data)
        self._writer.write(sample)

    def wait_for_acks(self, timeout_s: float) -> bool:
        """Wait until reliable subscribers acknowledged everything written (before closing)."""
        try:
            return bool(self._writer.wait_for_acks(duration(seconds=timeout_s)))
        except (DDSException, AttributeError):  # cyclonedds 11 raises AttributeError on its timeout code
            return False

    @property
    def matched(self) -> int:
        """How many subscriptions this publisher currently reaches."""
        return len(self._writer.get_matched_subscriptions())

    def wait_matched(self, timeout_s: float, count: int = 1) -> bool:
        """Wait until this publisher reaches ``count`` subscriptions (False: not within ``timeout_s``)."""
        return _wait_for_status(self._writer, DDSStatus.PublicationMatched,
                                lambda: self._writer.get_publication_matched_status().current_count >= count,
                                timeout_s)

    def wait_refused(self, timeout_s: float) -> bool:
        """Wait until a subscription was found and refused for its QoS (a reliable one meeting this
        best-effort publisher, as in ROS 2); False if none within ``timeout_s``."""
        return _wait_for_status(self._writer, DDSStatus.OfferedIncompatibleQos,
                                lambda: self._writer.get_offered_incompatible_qos_status().total_count > 0,
                                timeout_s)


class Subscription:
    """One reader of :meth:`DdsBus.subscribe` (its samples come through :meth:`DdsBus.take`)."""

    def __init__(self, reader: DataReader, topic: str, msgtype: str) -> None:
        self._reader = reader
        self.topic = topic
        self.msgtype = msgtype

    @property
    def matched(self) -> int:
        """How many publishers this subscription currently hears."""
        return len(self._reader.get_matched_publications())

    def wait_matched(self, timeout_s: float, count: int = 1) -> bool:
        """Wait until this subscription hears ``count`` publishers (False: not within ``timeout_s``)."""
        return _wait_for_status(self._reader, DDSStatus.SubscriptionMatched,
                                lambda: self._reader.get_subscription_matched_status().current_count >= count,
                                timeout_s)


class DdsBus:
    """One DDS participant: typed publishers and subscriptions on ROS 2 topics, and a wait.

    ``config`` (Cyclone XML) configures the domain for this process; None leaves it to
    ``CYCLONEDDS_URI`` as usual. Not thread-safe except :meth:`wake`.
    """

    def __init__(self, domain_id: int = 0, config: str | None = None, typestore: Typestore = TYPESTORE) -> None:
        if not 0 <= domain_id <= 232:
            raise DdsError(f"domain id {domain_id} is out of range 0..232")
        self.domain_id = domain_id
        self.typestore = typestore
        try:
            self._domain = Domain(domain_id, config) if config is not None else None
            self._participant = DomainParticipant(domain_id)
        except Exception as error:  # Cyclone reports a bad configuration as a generic DDSException
            where = "the given configuration" if config else f"CYCLONEDDS_URI={os.environ.get('CYCLONEDDS_URI', '')!r}"
            raise DdsError(f"cannot join DDS domain {domain_id} with {where}: {error}") from None
        self._topics: dict[tuple[str, str], Topic] = {}
        self._readers: list[tuple[DataReader, ReadCondition, str, str]] = []
        self._waitset = WaitSet(self._participant)
        self._guard = GuardCondition(self._participant)
        self._waitset.attach(self._guard)
        self._publications: BuiltinDataReader | None = None
        self._lock = threading.Lock()

    def _topic(self, topic: str, msgtype: str) -> Topic:
        key = (topic, msgtype)
        if key not in self._topics:
            if msgtype not in self.typestore.types:
                raise DdsError(f"message type {msgtype} for {topic} is unknown to the type store")
            data_type = _raw_topic_type(msgtype, self.typestore)
            self._topics[key] = Topic(self._participant, dds_topic_name(topic), data_type)
        return self._topics[key]

    def publisher(self, topic: str, msgtype: str, profile: QosProfile = RELIABLE) -> Publisher:
        dds_topic = self._topic(topic, msgtype)
        writer = DataWriter(self._participant, dds_topic, qos=_qos(profile, user_data(msgtype, self.typestore)))
        return Publisher(writer, topic, msgtype, dds_topic.data_type, self.typestore)

    def subscribe(self, topic: str, msgtype: str, profile: QosProfile = RELIABLE) -> Subscription:
        """Receive ``msgtype`` on ``topic``; several types may share a topic name (one reader each)."""
        reader = DataReader(self._participant, self._topic(topic, msgtype),
                            qos=_qos(profile, user_data(msgtype, self.typestore)))
        condition = ReadCondition(reader, SampleState.NotRead | ViewState.Any | InstanceState.Any)
        self._waitset.attach(condition)
        self._readers.append((reader, condition, topic, msgtype))
        return Subscription(reader, topic, msgtype)

    def wait(self, timeout_s: float) -> None:
        """Block until a subscription has data, :meth:`wake` is called, or the timeout passes."""
        self._waitset.wait(duration(seconds=max(timeout_s, 0.0)))
        self._guard.set(False)

    def wake(self) -> None:
        """Make :meth:`wait` return now (callable from a signal handler or another thread)."""
        self._guard.set(True)

    def take(self, max_per_reader: int = 256) -> list[Message]:
        """Every sample waiting on every subscription, deserialised, in publication order.

        Samples of different topics are merged by their source timestamp, so a stream replayed in
        log-time order arrives in that order across topics too.
        """
        out: list[Message] = []
        for reader, condition, topic, msgtype in self._readers:
            for sample in reader.take(max_per_reader, condition=condition):
                if not isinstance(sample, Received):
                    continue  # an instance-state change, not data
                source_ns = int(sample.sample_info.source_timestamp)
                try:
                    msg = self.typestore.deserialize_cdr(sample.data, msgtype)
                except Exception as error:  # malformed CDR that Cyclone let through
                    out.append(Message(topic, msgtype, None, source_ns, f"{type(error).__name__}: {error}"))
                    continue
                out.append(Message(topic, msgtype, msg, source_ns))
        out.sort(key=lambda m: m.source_ns)
        return out

    def publications(self) -> list[tuple[str, str, str]]:
        """Newly discovered remote publications: (key, ROS topic, ROS type name)."""
        if self._publications is None:
            self._publications = BuiltinDataReader(self._participant, BuiltinTopicDcpsPublication)
        found = []
        for sample in self._publications.take(256):
            name = getattr(sample, "topic_name", None)
            if not isinstance(name, str) or not name.startswith(ROS_TOPIC_PREFIX + "/"):
                continue
            found.append((str(sample.key), name[len(ROS_TOPIC_PREFIX):], ros_type_name(sample.type_name)))
        return found

    def close(self) -> None:
        """Delete the participant (and the domain this bus configured) now, not at garbage collection.

        cyclonedds keeps every entity in a registry until its ``__del__`` runs, so that is called
        here; deleting a participant deletes its readers, writers and topics with it.
        """
        with self._lock:
            participant, self._participant = self._participant, None
            domain, self._domain = self._domain, None
        if participant is None:
            return
        self._readers.clear()
        self._topics.clear()
        self._publications = None
        participant.__del__()
        if domain is not None:
            domain.__del__()

    def __enter__(self) -> DdsBus:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
