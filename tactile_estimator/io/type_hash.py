"""ROS 2 type hashes (REP-2011's RIHS01) and the USER_DATA that announces them in discovery.

From Iron on, each ROS 2 publisher and subscription carries ``typehash=RIHS01_<sha256 hex>;`` in
its USER_DATA QoS (rmw_dds_common's ``encode_type_hash_for_user_data_qos``); Jazzy's rmw warns
about a peer whose USER_DATA has none, and Humble ignores it.

The hash is SHA-256 over one JSON serialisation of the type's description: the type and each type
it references (those sorted by name), every field as its name, type id, capacity, string capacity
and nested type name, default values left out, ``json.dumps`` with ``', '`` and ``': '`` separators
(``calculate_type_hash`` in rosidl_generator_type_description). An empty message gets the one
``uint8 structure_needs_at_least_one_member`` field rosidl gives it. The rosbags type store
implements exactly that (``Typestore.hash_rihs01``, which rosbags also writes into rosbag2
metadata), from the same definitions the transports serialise with, so the hash comes from there.
"""

from __future__ import annotations

import functools
import re

from rosbags.typesys.store import Typestore

from tactile_estimator.io.messages import TYPESTORE

RIHS01 = re.compile(r"RIHS01_[0-9a-f]{64}")
"""A version-1 type hash as rosidl writes it (``rosidl_stringify_type_hash``)."""


@functools.cache
def type_hash(msgtype: str, typestore: Typestore = TYPESTORE) -> str:
    """``RIHS01_<sha256 hex>`` of a message type (``pkg/msg/Name``) under the type store's definitions."""
    if msgtype not in typestore.fielddefs:
        raise KeyError(f"message type {msgtype} is unknown to the type store")
    return typestore.hash_rihs01(msgtype)


def user_data(msgtype: str, typestore: Typestore = TYPESTORE) -> bytes:
    """The USER_DATA a ROS 2 endpoint of ``msgtype`` announces: ``typehash=RIHS01_...;``."""
    return f"typehash={type_hash(msgtype, typestore)};".encode("ascii")
