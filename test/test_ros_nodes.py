"""The rclpy estimator and trainer nodes; skipped where ROS 2 is not installed (its logic is tested in test_live.py)."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

rclpy = pytest.importorskip("rclpy")

from geometry_msgs.msg import PoseWithCovarianceStamped  # noqa: E402
from rclpy.node import Node  # noqa: E402
from rosidl_runtime_py.utilities import get_message  # noqa: E402
from std_msgs.msg import String  # noqa: E402
from std_srvs.srv import Trigger  # noqa: E402

from tactile_estimator.adapters.ros_nodes import EstimatorNode, TrainerNode  # noqa: E402
from tactile_estimator.io import bags  # noqa: E402
from tactile_estimator.io.messages import TYPESTORE  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]


def _wait_matched(publisher, *nodes: Node, timeout_s: float = 10.0) -> None:
    """Spin until the publisher has matched a subscription (discovery done), so its first message is not lost."""
    deadline = time.monotonic() + timeout_s
    while publisher.get_subscription_count() == 0 and time.monotonic() < deadline:
        for node in nodes:
            rclpy.spin_once(node, timeout_sec=0.01)
    assert publisher.get_subscription_count() > 0, f"no subscription matched {publisher.topic_name} in {timeout_s} s"


def test_node_estimates_a_bag_and_resets(rect_bag: Path) -> None:
    rclpy.init(args=["--ros-args", "-p", f"config_file:={ROOT / 'config' / 'estimator.yaml'}"])
    try:
        node = EstimatorNode()
        peer = Node("peer")
        got: list[PoseWithCovarianceStamped] = []
        peer.create_subscription(PoseWithCovarianceStamped, "/estimator_node/object_pose", got.append, 10)
        info = peer.create_publisher(String, "/object_info", rclpy.qos.QoSProfile(
            depth=1, durability=rclpy.qos.DurabilityPolicy.TRANSIENT_LOCAL))
        for message in bags.read_messages(rect_bag, ["/object_info"]):
            info.publish(String(data=message.msg.data))
        publishers = {}
        for message in bags.read_messages(rect_bag, ["/ee_pose", "/object_detection", "/digit/image_raw/compressed"]):
            if message.topic not in publishers:
                publishers[message.topic] = peer.create_publisher(get_message(message.msgtype), message.topic, 100)
                _wait_matched(publishers[message.topic], node, peer)
            publishers[message.topic].publish(bytes(TYPESTORE.serialize_cdr(message.msg, message.msgtype)))
            rclpy.spin_once(node, timeout_sec=0.0)
            rclpy.spin_once(peer, timeout_sec=0.0)
        deadline = time.monotonic() + 10
        while len(got) < 100 and time.monotonic() < deadline:
            rclpy.spin_once(node, timeout_sec=0.01)
            rclpy.spin_once(peer, timeout_sec=0.01)
        assert len(got) >= 100
        client = peer.create_client(Trigger, "/estimator_node/reset")
        assert client.wait_for_service(timeout_sec=5)
        future = client.call_async(Trigger.Request())
        while not future.done():
            rclpy.spin_once(node, timeout_sec=0.01)
            rclpy.spin_once(peer, timeout_sec=0.01)
        assert future.result().success and len(node.live.estimator.steps) == 0
    finally:
        rclpy.shutdown()


def test_trainer_node_publishes_a_model_for_new_bags(rect_bag: Path, tmp_path: Path) -> None:
    import shutil

    watched = tmp_path / "bags"
    watched.mkdir()
    shutil.copytree(rect_bag, watched / rect_bag.name)
    rclpy.init(args=["--ros-args", "-p", f"bag_dir:={watched}", "-p", f"out_dir:={tmp_path / 'models'}",
                     "-p", "epochs:=1", "-p", "sampler:=gn", "-p", "samples:=4", "-p", "watch.poll_s:=0.2",
                     "-p", "watch.settle_s:=0.0", "-p", "watch.accept:=always"])
    try:
        node = TrainerNode()
        peer = Node("peer")
        got: list[String] = []
        peer.create_subscription(String, "/trainer_node/model_updated", got.append, rclpy.qos.QoSProfile(
            depth=1, durability=rclpy.qos.DurabilityPolicy.TRANSIENT_LOCAL))
        deadline = time.monotonic() + 300
        while not got and time.monotonic() < deadline:
            rclpy.spin_once(node, timeout_sec=0.05)
            rclpy.spin_once(peer, timeout_sec=0.05)
        assert got and got[0].data == str((tmp_path / "models" / "model_0001").resolve())
    finally:
        rclpy.shutdown()


def test_destroy_node_destroys_what_each_node_created(rect_bag: Path, tmp_path: Path) -> None:
    """rclpy's destroy_node empties its own _publishers/_subscriptions; ours once replaced them (KeyError: 0)."""
    arguments = {EstimatorNode: ["-p", f"config_file:={ROOT / 'config' / 'estimator.yaml'}"],
                 TrainerNode: ["-p", f"bag_dir:={rect_bag.parent}", "-p", f"out_dir:={tmp_path / 'models'}"]}
    for node_class, parameters in arguments.items():
        rclpy.init(args=["--ros-args", *parameters])
        try:
            node = node_class()
            assert list(node.publishers)
            node.destroy_node()
            assert not list(node.publishers) and not list(node.subscriptions) and not list(node.timers)
        finally:
            rclpy.try_shutdown()


def test_estimator_node_exits_0_without_a_traceback_on_two_sigints() -> None:
    """As under ros2 launch, which forwards Ctrl-C beside the terminal's own."""
    import select
    import signal
    import subprocess
    import sys

    code = "import sys; from tactile_estimator.adapters.ros_nodes import estimator_node; sys.exit(estimator_node())"
    process = subprocess.Popen([sys.executable, "-c", code, "--ros-args", "-p",
                                f"config_file:={ROOT / 'config' / 'estimator.yaml'}"],
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    output = ""
    deadline = time.monotonic() + 60
    while "estimating;" not in output and process.poll() is None and time.monotonic() < deadline:
        if select.select([process.stdout], [], [], 1.0)[0]:
            output += process.stdout.readline()
    assert "estimating;" in output, output
    process.send_signal(signal.SIGINT)
    process.send_signal(signal.SIGINT)
    rest, _ = process.communicate(timeout=20)
    output += rest
    assert process.returncode == 0, output
    assert "Traceback" not in output and "estimator_node: " in output
    # rclpy's own handler shut the context down before the final path: no longer ours
    assert "not published" not in output and "context is invalid" not in output, output


def test_trainer_node_stops_on_sigint_within_2_s_between_polls(tmp_path: Path) -> None:
    """A 30 s poll period: the signal is answered by the spin loop, not by the next poll."""
    import select
    import signal
    import subprocess
    import sys

    (tmp_path / "bags").mkdir()
    code = "import sys; from tactile_estimator.adapters.ros_nodes import trainer_node; sys.exit(trainer_node())"
    process = subprocess.Popen([sys.executable, "-c", code, "--ros-args", "-p", f"bag_dir:={tmp_path / 'bags'}",
                                "-p", f"out_dir:={tmp_path / 'models'}", "-p", "watch.poll_s:=30.0"],
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    output = ""
    deadline = time.monotonic() + 60
    while "watching" not in output and process.poll() is None and time.monotonic() < deadline:
        if select.select([process.stdout], [], [], 1.0)[0]:
            output += process.stdout.readline()
    assert "watching" in output, output
    sent = time.monotonic()
    process.send_signal(signal.SIGINT)
    rest, _ = process.communicate(timeout=20)
    output += rest
    assert process.returncode == 0 and time.monotonic() - sent < 2.0, output
    assert "Traceback" not in output and "trainer_node: 0 models published" in output, output


def test_config_keys_show_the_values_in_force_and_refuse_a_runtime_change() -> None:
    """ros2 param get shows what the estimator runs with; ros2 param set would change nothing, so it is refused."""
    from rclpy.parameter import Parameter

    rclpy.init(args=["--ros-args", "-p", f"config_file:={ROOT / 'config' / 'estimator.yaml'}",
                     "-p", "live.path_period_s:=2.0"])
    try:
        node = EstimatorNode()
        assert node.get_parameter("live.stale_after_s").value == node.config.live.stale_after_s == 0.5
        assert node.get_parameter("live.path_period_s").value == 2.0 == node.config.live.path_period_s
        assert node.get_parameter("topics.ee_pose").value == "/ee_pose"
        (result,) = node.set_parameters([Parameter("live.stale_after_s", value=1.0)])
        assert not result.successful and "'live.stale_after_s' is read at start" in result.reason
        assert node.get_parameter("live.stale_after_s").value == 0.5
        (result,) = node.set_parameters([Parameter("use_sim_time", value=True)])  # rclpy's own: applied
        assert result.successful
        node.destroy_node()
    finally:
        rclpy.try_shutdown()


def test_rclpys_sigint_handler_is_back_after_the_trainers_stop_request() -> None:
    """rclpy installs its SIGINT handler in C; the trainer's guard puts that one back, not Python's."""
    import signal

    from tactile_estimator.learning.trainer import _StopRequest

    rclpy.init()
    try:
        rclpys = _StopRequest._sigaction(signal.SIGINT)
        with _StopRequest():
            assert _StopRequest._sigaction(signal.SIGINT)[:8] != rclpys[:8]
        assert _StopRequest._sigaction(signal.SIGINT)[:8] == rclpys[:8]
    finally:
        rclpy.try_shutdown()


def test_managed_node_configures_activates_and_deactivates(rect_bag: Path) -> None:
    """estimator_node --lifecycle: nothing before configure; configure loads; activate subscribes and
    estimates; deactivate stops publishing; a bad parameter fails configure and leaves it unconfigured."""
    from rclpy.lifecycle import TransitionCallbackReturn

    from tactile_estimator.adapters.ros_nodes import _lifecycle_node_class

    success, failure = TransitionCallbackReturn.SUCCESS, TransitionCallbackReturn.FAILURE

    # a name and a topic of its own: count_* count graph-wide, and other tests' endpoints may linger
    ee, pose = "/managed_test/ee_pose", "/managed_estimator/object_pose"
    rclpy.init(args=["--ros-args", "-r", "__node:=managed_estimator", "-p",
                     f"config_file:={ROOT / 'config' / 'estimator.yaml'}", "-p", f"topics.ee_pose:={ee}"])
    try:
        node = _lifecycle_node_class()()
        peer = Node("peer")
        got: list[PoseWithCovarianceStamped] = []
        peer.create_subscription(PoseWithCovarianceStamped, pose, got.append, 10)
        assert not node.live_ready and node.count_subscribers(ee) == 0
        assert node.trigger_configure() == success and node.live_ready
        assert node.count_publishers(pose) == 1
        (refused,) = node.set_parameters([rclpy.parameter.Parameter("backend", value="batch_gn")])
        assert not refused.successful and "read at configure" in refused.reason  # configured: too late
        assert node.count_subscribers(ee) == 0  # configured, not yet listening
        assert node.trigger_activate() == success
        assert node.count_subscribers(ee) == 1

        publishers = {}
        info = peer.create_publisher(String, "/object_info", rclpy.qos.QoSProfile(
            depth=1, durability=rclpy.qos.DurabilityPolicy.TRANSIENT_LOCAL))
        for message in bags.read_messages(rect_bag, ["/object_info"]):
            info.publish(String(data=message.msg.data))
        for message in bags.read_messages(rect_bag, ["/ee_pose", "/object_detection", "/digit/image_raw/compressed"]):
            if message.topic not in publishers:
                topic = ee if message.topic == "/ee_pose" else message.topic
                publishers[message.topic] = peer.create_publisher(get_message(message.msgtype), topic, 100)
                _wait_matched(publishers[message.topic], node, peer)
            publishers[message.topic].publish(bytes(TYPESTORE.serialize_cdr(message.msg, message.msgtype)))
            rclpy.spin_once(node, timeout_sec=0.0)
            rclpy.spin_once(peer, timeout_sec=0.0)
        deadline = time.monotonic() + 10
        while len(got) < 100 and time.monotonic() < deadline:
            rclpy.spin_once(node, timeout_sec=0.01)
            rclpy.spin_once(peer, timeout_sec=0.01)
        assert len(got) >= 100

        assert node.trigger_deactivate() == success
        assert node.count_subscribers(ee) == 0
        steps, last = len(node.live.estimator.steps), node.live.estimator.steps[-1].stamp_ns
        for message in bags.read_messages(rect_bag, ["/ee_pose"]):
            publishers["/ee_pose"].publish(bytes(TYPESTORE.serialize_cdr(message.msg, message.msgtype)))
        deadline = time.monotonic() + 1.0
        while time.monotonic() < deadline:  # a second of spinning: nothing may arrive
            rclpy.spin_once(node, timeout_sec=0.01)
            rclpy.spin_once(peer, timeout_sec=0.01)
        # poses published before deactivate may still arrive; none is newer than the graph was then
        stamps = [p.header.stamp.sec * 1_000_000_000 + p.header.stamp.nanosec for p in got]
        assert len(node.live.estimator.steps) == steps and max(stamps) <= last
        assert node.trigger_cleanup() == success and not node.live_ready
        node.destroy_node()

        node = _lifecycle_node_class()()
        (result,) = node.set_parameters([rclpy.parameter.Parameter("backend", value="quantum")])
        assert result.successful  # unconfigured: taken, for the configure that follows
        assert node.trigger_configure() == failure and not node.live_ready
        node.destroy_node()
    finally:
        rclpy.shutdown()
