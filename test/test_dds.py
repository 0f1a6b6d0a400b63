"""The Cyclone DDS transport speaks ROS 2's wire protocol: names, types, CDR and QoS, over real DDS."""

from __future__ import annotations

import os
import time
from typing import Any

import numpy as np
import pytest
from cyclonedds.core import DDSStatus
from cyclonedds.domain import DomainParticipant
from cyclonedds.pub import DataWriter
from cyclonedds.sub import DataReader
from cyclonedds.topic import Topic
from rosbags.typesys.base import Nodetype

from tactile_estimator.adapters import dds
from tactile_estimator.adapters.live import inputs, outputs
from tactile_estimator.config import load_estimator_config
from tactile_estimator.io import messages
from tactile_estimator.io.messages import (
    DIAGNOSTIC_ARRAY,
    MARKER_ARRAY,
    TF_MESSAGE,
    TYPESTORE,
    diagnostic_array_msg,
    diagnostic_status,
    footprint_marker_msg,
    tf_msg,
)
from tactile_estimator.objects import Shape
from tactile_estimator.records import TactileFrame

DOMAIN = 100 + os.getpid() % 100


def _to_idl(msg: Any, msgtype: str) -> Any:
    """A rosbags message as an instance of the generated IDL type (Cyclone's own serialiser)."""
    _, fields = TYPESTORE.fielddefs[msgtype]
    values = {}
    for name, (kind, arg) in fields:
        value = getattr(msg, name)
        if kind == Nodetype.BASE:
            values[name] = value.item() if hasattr(value, "item") else value
        elif kind == Nodetype.NAME:
            values[name] = _to_idl(value, arg)
        elif arg[0][0] == Nodetype.NAME:
            values[name] = [_to_idl(v, arg[0][1]) for v in value]
        else:
            values[name] = np.asarray(value).tolist()
    return dds.idl_type(msgtype)(**values)


def _samples() -> list[tuple[str, Any]]:
    frame = TactileFrame(1_500_000_123, (np.arange(320 * 240 * 3) % 251).astype(np.uint8).reshape(320, 240, 3))
    return [
        (messages.IMAGE, messages.image_msg(frame)),
        (messages.COMPRESSED_IMAGE, messages.compressed_image_msg(frame)),
        (messages.POSE_STAMPED, messages.pose_stamped_msg(5, [1.0, 2.0, 3.0], "world")),
        (messages.POSE_WITH_COVARIANCE_STAMPED,
         messages.pose_with_covariance_msg(7, [0.1, 0.2, -0.3], np.diag([1e-4, 2e-4, 3e-3]), "world")),
        (messages.STRING, messages.string_msg('{"shape": "rect"}')),
        (messages.PATH, messages.path_msg(9, [(1, [1, 2, 3]), (2, [2, 3, 4])], "world")),
        (TF_MESSAGE, tf_msg(11, "world", "object_estimate", [0.1, 0.2, 0.3])),
        (DIAGNOSTIC_ARRAY, diagnostic_array_msg(13, [diagnostic_status(1, "a", "b", {"k": "v", "rate": "30"})])),
        (MARKER_ARRAY, footprint_marker_msg(15, "world", [0.0, 0.1, 0.2], Shape("disc", (0.05,)))),
    ]


def test_names_follow_rmw_cyclonedds() -> None:
    assert dds.dds_topic_name("/digit/image_raw") == "rt/digit/image_raw"
    assert dds.dds_type_name("sensor_msgs/msg/Image") == "sensor_msgs::msg::dds_::Image_"
    assert dds.ros_type_name("geometry_msgs::msg::dds_::PoseStamped_") == "geometry_msgs/msg/PoseStamped"
    assert dds.idl_type(messages.IMAGE).__idl__.idl_transformed_typename == "sensor_msgs::msg::dds_::Image_"
    for bad in ("digit/image_raw", "~/object_pose", "/a//b"):
        with pytest.raises(dds.DdsError, match="not an absolute ROS topic name"):
            dds.dds_topic_name(bad)
    with pytest.raises(dds.DdsError, match="package/msg/Name"):
        dds.dds_type_name("Image")


@pytest.mark.parametrize("msgtype, msg", _samples(), ids=lambda v: v if isinstance(v, str) else "")
def test_rosbags_cdr_is_byte_for_byte_cyclones_xcdr1(msgtype: str, msg: Any) -> None:
    ours = bytes(TYPESTORE.serialize_cdr(msg, msgtype))
    assert ours[:4] == b"\x00\x01\x00\x00"  # CDR little endian, the header rmw_cyclonedds writes
    assert _to_idl(msg, msgtype).serialize(use_version_2=False) == ours


def test_types_are_keyless_and_xcdr1() -> None:
    for msgtype, _ in _samples():
        idl = dds.idl_type(msgtype).__idl__
        idl.populate()
        assert idl.keyless, msgtype
        assert idl.supported_versions & 1, msgtype  # DDS_DATA_REPRESENTATION_FLAG_XCDR1, all rmw_cyclonedds allows


@pytest.fixture()
def bus() -> dds.DdsBus:
    with dds.DdsBus(DOMAIN, dds.localhost_config()) as bus:
        yield bus


def _take_until(bus: dds.DdsBus, count: int, timeout_s: float = 5.0) -> list[dds.Message]:
    got: list[dds.Message] = []
    deadline = time.monotonic() + timeout_s
    while len(got) < count and time.monotonic() < deadline:
        bus.wait(0.05)
        got += bus.take()
    return got


def _wait_matched(publisher: dds.Publisher, timeout_s: float = 5.0) -> None:
    assert publisher.wait_matched(timeout_s), f"no subscriber matched {publisher.topic}"


def _take_typed(reader: DataReader, timeout_s: float = 5.0) -> list[Any]:
    """What a typed peer reader receives, waited for on its data-available status."""
    received: list[Any] = []

    def arrived() -> bool:
        received.extend(reader.take(5))  # take resets the status the wait wakes on
        return bool(received)

    assert dds._wait_for_status(reader, DDSStatus.DataAvailable, arrived, timeout_s), "the peer received nothing"
    return received


def test_a_statically_typed_dds_peer_reads_and_writes_our_topics(bus: dds.DdsBus) -> None:
    """What a ROS 2 node on rmw_cyclonedds does, minus ROS: a typed reader and writer on rt/ topics."""
    peer = DomainParticipant(DOMAIN)
    qos = dds._qos(dds.RELIABLE)
    pose = messages.pose_with_covariance_msg(7, [0.1, 0.2, -0.3], np.diag([1e-4, 2e-4, 3e-3]), "world")
    reader = DataReader(peer, Topic(peer, "rt/peer_in", dds.idl_type(messages.POSE_WITH_COVARIANCE_STAMPED)), qos=qos)
    writer = DataWriter(peer, Topic(peer, "rt/peer_out", dds.idl_type(messages.POSE_STAMPED)), qos=qos)
    publisher = bus.publisher("/peer_in", messages.POSE_WITH_COVARIANCE_STAMPED)
    subscription = bus.subscribe("/peer_out", messages.POSE_STAMPED)
    _wait_matched(publisher)
    publisher.publish(pose)
    received = _take_typed(reader)
    assert len(received) == 1
    assert received[0].pose.covariance[35] == pytest.approx(3e-3)
    assert received[0].header.frame_id == "world" and received[0].header.stamp.nanosec == 7
    # one volatile write: both ends must know each other first (a reader discovered later never gets it)
    assert subscription.wait_matched(5), "our reader never matched the peer's writer"
    assert dds._wait_for_status(writer, DDSStatus.PublicationMatched,
                                lambda: writer.get_publication_matched_status().current_count >= 1, 5)
    writer.write(_to_idl(messages.pose_stamped_msg(5, [1.0, 2.0, 3.0], "map"), messages.POSE_STAMPED))
    (message,) = _take_until(bus, 1)
    assert message.topic == "/peer_out" and message.error is None
    assert message.msg.header.frame_id == "map" and message.msg.pose.position.y == 2.0


def test_two_types_on_one_topic_and_latched_topics(bus: dds.DdsBus) -> None:
    """/ee_pose may carry PoseStamped or PoseWithCovarianceStamped; /object_info reaches late subscribers."""
    info = bus.publisher("/object_info", messages.STRING, dds.LATCHED)
    info.publish(messages.string_msg("early"))
    bus.subscribe("/object_info", messages.STRING, dds.LATCHED)
    bus.subscribe("/ee_pose", messages.POSE_STAMPED)
    bus.subscribe("/ee_pose", messages.POSE_WITH_COVARIANCE_STAMPED)
    plain = bus.publisher("/ee_pose", messages.POSE_STAMPED)
    with_cov = bus.publisher("/ee_pose", messages.POSE_WITH_COVARIANCE_STAMPED)
    _wait_matched(plain)
    _wait_matched(with_cov)
    for i in range(3):
        plain.publish(messages.pose_stamped_msg(i, [i, 0.0, 0.0], "world"))
        with_cov.publish(messages.pose_with_covariance_msg(i, [i, 1.0, 0.0], np.eye(3), "world"))
    got = _take_until(bus, 7)
    assert [m.msg.data for m in got if m.topic == "/object_info"] == ["early"]
    poses = [m for m in got if m.topic == "/ee_pose"]
    assert [m.msgtype for m in poses].count(messages.POSE_STAMPED) == 3
    assert [m.msgtype for m in poses].count(messages.POSE_WITH_COVARIANCE_STAMPED) == 3
    stamps = [m.source_ns for m in got]
    assert stamps == sorted(stamps)  # merged across readers in publication order
    seen = {(topic, msgtype) for _, topic, msgtype in bus.publications()}
    assert ("/ee_pose", messages.POSE_WITH_COVARIANCE_STAMPED) in seen


def test_best_effort_subscribers_match_reliable_publishers_but_not_the_reverse(bus: dds.DdsBus) -> None:
    best_effort_sub = bus.subscribe("/img_be", messages.STRING, dds.SENSOR_DATA)
    reliable_sub = bus.subscribe("/img_rel", messages.STRING, dds.RELIABLE)
    reliable = bus.publisher("/img_be", messages.STRING, dds.RELIABLE)
    best_effort = bus.publisher("/img_rel", messages.STRING, dds.SENSOR_DATA)
    _wait_matched(reliable)
    assert best_effort_sub.wait_matched(5) and best_effort_sub.matched == 1
    # the reliable subscription was discovered and refused for its QoS, not merely not found yet
    assert best_effort.wait_refused(5)
    assert best_effort.matched == 0 and reliable_sub.matched == 0  # as in ROS 2: no best-effort publisher for it


def test_bad_settings_are_one_line_errors() -> None:
    with pytest.raises(dds.DdsError, match="domain id 300 is out of range"):
        dds.DdsBus(300)
    with pytest.raises(dds.DdsError, match=f"cannot join DDS domain {DOMAIN + 1}"):
        dds.DdsBus(DOMAIN + 1, "<CycloneDDS><Domain><General><NoSuchSetting>1</NoSuchSetting></General></Domain>"
                               "</CycloneDDS>")


def test_every_topic_kind_gets_its_ros_profile_with_the_configured_depths():
    from tactile_estimator.adapters import qos

    config = load_estimator_config(None, {"live": {"image_queue_depth": 7, "pose_queue_depth": 50}})
    assert qos.input_profile("sensor", config) == qos.QosProfile(reliable=False, depth=7)
    assert qos.input_profile("reliable", config) == qos.QosProfile(reliable=True, depth=50)
    assert qos.input_profile("latched", config) == qos.QosProfile(reliable=True, depth=1, transient_local=True)
    assert qos.output_profile("tf") == qos.QosProfile(reliable=True, depth=100)
    assert qos.output_profile("reliable").reliable and not qos.output_profile("reliable").transient_local
    # A kind the mapping does not know would quietly become reliable: every topic uses a known one (tf and
    # tf_static: the camera's extrinsics, read by the default camera.source auto).
    assert {spec.qos for spec in inputs(config)} <= {"sensor", "reliable", "latched", "tf", "tf_static"}
    assert {spec.qos for spec in outputs(config)} <= {"reliable", "tf"}
    assert next(s for s in inputs(config) if s.topic == config.topics.tactile).qos == "sensor"
