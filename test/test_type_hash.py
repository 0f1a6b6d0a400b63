"""Type hashes (RIHS01) equal the ones ROS 2 publishes, and our DDS endpoints announce them in USER_DATA."""

from __future__ import annotations

import os
import time

import pytest
from cyclonedds.builtin import BuiltinDataReader, BuiltinTopicDcpsPublication, BuiltinTopicDcpsSubscription
from cyclonedds.core import InstanceState, ReadCondition, SampleState, ViewState, WaitSet
from cyclonedds.domain import DomainParticipant
from cyclonedds.qos import Policy
from cyclonedds.util import duration

from tactile_estimator.adapters import dds
from tactile_estimator.adapters.live import inputs, outputs
from tactile_estimator.config import load_estimator_config
from tactile_estimator.io import messages
from tactile_estimator.io.type_hash import RIHS01, type_hash, user_data

DOMAIN = 100 + (os.getpid() + 37) % 100

# Hashes that ROS 2 itself computed, each with where it was read:
# - [C] rosidl_generator_c output (the type hash compiled into each message's type support) in
#   hpmicro/hpm_sdk, middleware/microros/kilted/include/<pkg>/<pkg>/msg/detail/{string,header,pose,
#   twist_stamped}__description.c: String, Header, its Time, Pose with its Point and Quaternion, and
#   Twist and Vector3 (TwistStamped's referenced types);
# - [A] rosidl_generator_c output in micro-ROS/micro_ros_arduino, src/geometry_msgs/msg/detail/
#   pose_stamped__struct.h (geometry_msgs__msg__PoseStamped__TYPE_HASH);
# - [T] `ros2 topic info /camera/image_raw -v` of a running system, printed in ros-perception/
#   image_pipeline, image_pipeline/doc/tutorials.rst ("Topic type hash: RIHS01_d31d...").
# None of these definitions changed from Iron to Kilted, so they are the hashes Jazzy announces.
KNOWN = {
    "std_msgs/msg/String": "RIHS01_df668c740482bbd48fb39d76a70dfd4bd59db1288021743503259e948f6b1a18",  # [C]
    "std_msgs/msg/Header": "RIHS01_f49fb3ae2cf070f793645ff749683ac6b06203e41c891e17701b1cb597ce6a01",  # [C]
    "builtin_interfaces/msg/Time": "RIHS01_b106235e25a4c5ed35098aa0a61a3ee9c9b18d197f398b0e4206cea9acf9c197",  # [C]
    "geometry_msgs/msg/Pose": "RIHS01_d501954e9476cea2996984e812054b68026ae0bfae789d9a10b23daf35cc90fa",  # [C]
    "geometry_msgs/msg/Point": "RIHS01_6963084842a9b04494d6b2941d11444708d892da2f4b09843b9c43f42a7f6881",  # [C]
    "geometry_msgs/msg/Quaternion": "RIHS01_8a765f66778c8ff7c8ab94afcc590a2ed5325a1d9a076ffff38fbce36f458684",  # [C]
    "geometry_msgs/msg/Twist": "RIHS01_9c45bf16fe0983d80e3cfe750d6835843d265a9a6c46bd2e609fcddde6fb8d2a",  # [C]
    "geometry_msgs/msg/Vector3": "RIHS01_cc12fe83e4c02719f1ce8070bfd14aecd40f75a96696a67a2a1f37f7dbb0765d",  # [C]
    "geometry_msgs/msg/PoseStamped": "RIHS01_10f3786d7d40fd2b54367835614bff85d4ad3b5dab62bf8bca0cc232d73b4cd8",  # [A]
    "sensor_msgs/msg/Image": "RIHS01_d31d41a9a4c4bc8eae9be757b0beed306564f7526c88ea6a4588fb9582527d47",  # [T]
}


@pytest.mark.parametrize("msgtype", sorted(KNOWN))
def test_type_hash_is_the_one_ros2_publishes(msgtype: str) -> None:
    assert type_hash(msgtype) == KNOWN[msgtype]


def _topic_types() -> set[str]:
    config = load_estimator_config(None)
    return ({t for spec in inputs(config) for t in spec.msgtypes} | {spec.msgtype for spec in outputs(config)}
            | {messages.STRING})


def test_every_type_we_offer_has_a_hash_and_its_user_data_is_rmws_encoding() -> None:
    types = _topic_types()
    assert {"geometry_msgs/msg/PoseStamped", "sensor_msgs/msg/Image", "tf2_msgs/msg/TFMessage"} <= types
    hashes = {msgtype: type_hash(msgtype) for msgtype in types}
    assert all(RIHS01.fullmatch(h) for h in hashes.values())
    assert len(set(hashes.values())) == len(hashes)  # the type name is part of what is hashed
    # rmw_dds_common's encode_type_hash_for_user_data_qos: "typehash=" + hash + ";"
    assert user_data(messages.POSE_STAMPED) == f"typehash={KNOWN[messages.POSE_STAMPED]};".encode()


def test_a_type_the_store_does_not_know_is_refused() -> None:
    with pytest.raises(KeyError, match="no_msgs/msg/Nothing is unknown"):
        type_hash("no_msgs/msg/Nothing")


def _discovered_user_data(participant: DomainParticipant, builtin: type, topic: str, timeout_s: float = 5.0) -> bytes:
    """The USER_DATA of the endpoint on DDS topic ``topic``, from DDS's discovery data (builtin topics)."""
    reader = BuiltinDataReader(participant, builtin)
    condition = ReadCondition(reader, SampleState.Any | ViewState.Any | InstanceState.Any)
    waitset = WaitSet(participant)
    waitset.attach(condition)
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        waitset.wait(duration(milliseconds=100))
        for sample in reader.take(64, condition=condition):
            if getattr(sample, "topic_name", None) == topic:
                return bytes(sample.qos[Policy.Userdata].data)
    raise AssertionError(f"no endpoint on {topic} discovered")


def test_our_readers_and_writers_announce_the_type_hash_in_user_data() -> None:
    """What rmw reads from discovery: DCPSPublication/DCPSSubscription carry each endpoint's USER_DATA."""
    with dds.DdsBus(DOMAIN, dds.localhost_config()) as bus:
        publisher = bus.publisher("/ee_pose", messages.POSE_STAMPED)  # held: its writer lives as long as it
        bus.subscribe("/digit/image_raw", messages.IMAGE, dds.SENSOR_DATA)
        participant = bus._participant
        written = _discovered_user_data(participant, BuiltinTopicDcpsPublication, "rt/ee_pose")
        read = _discovered_user_data(participant, BuiltinTopicDcpsSubscription, "rt/digit/image_raw")
        assert publisher.topic == "/ee_pose"
    assert written == f"typehash={KNOWN[messages.POSE_STAMPED]};".encode()
    assert read == f"typehash={KNOWN[messages.IMAGE]};".encode()
