"""The estimator on simulated time and `ros2 bag play --clock` of a bag:
ros2 launch tactile_estimator replay.launch.py bag:=/path/to/bag [rate:=1.0]."""

from pathlib import Path

from ament_index_python.packages import get_package_share_directory
from launch import LaunchDescription
from launch.actions import DeclareLaunchArgument, ExecuteProcess, IncludeLaunchDescription, TimerAction
from launch.launch_description_sources import PythonLaunchDescriptionSource
from launch.substitutions import LaunchConfiguration


def generate_launch_description() -> LaunchDescription:
    share = Path(get_package_share_directory("tactile_estimator"))
    arguments = [
        DeclareLaunchArgument("bag", description="rosbag2 directory or .mcap file to play"),
        DeclareLaunchArgument("rate", default_value="1.0", description="playback rate"),
        DeclareLaunchArgument("config", default_value=str(share / "config" / "estimator.yaml")),
        DeclareLaunchArgument("model", default_value=str(share / "models")),
        DeclareLaunchArgument("backend", default_value="isam2"),
    ]
    estimator = IncludeLaunchDescription(
        PythonLaunchDescriptionSource(str(share / "launch" / "estimator.launch.py")),
        launch_arguments={
            "config": LaunchConfiguration("config"),
            "model": LaunchConfiguration("model"),
            "backend": LaunchConfiguration("backend"),
            "use_sim_time": "true",
        }.items(),
    )
    # /object_info is latched (transient local) so that the estimator gets it whenever it starts;
    # the delay lets the estimator load its model and subscribe before the first frames are played.
    play = ExecuteProcess(
        cmd=["ros2", "bag", "play", LaunchConfiguration("bag"), "--clock", "--rate", LaunchConfiguration("rate"),
             "--qos-profile-overrides-path", str(share / "config" / "play_qos.yaml")],
        output="screen",
    )
    return LaunchDescription([*arguments, estimator, TimerAction(period=5.0, actions=[play])])
