"""The estimator node with its parameter file: ros2 launch tactile_estimator estimator.launch.py."""

from pathlib import Path

from ament_index_python.packages import get_package_share_directory
from launch import LaunchDescription
from launch.actions import DeclareLaunchArgument
from launch.substitutions import LaunchConfiguration
from launch_ros.actions import Node
from launch_ros.parameter_descriptions import ParameterValue


def generate_launch_description() -> LaunchDescription:
    share = Path(get_package_share_directory("tactile_estimator"))
    arguments = [
        DeclareLaunchArgument("config", default_value=str(share / "config" / "estimator.yaml"),
                              description="estimator parameter file (config/estimator.yaml format)"),
        DeclareLaunchArgument("model", default_value=str(share / "models"),
                              description="tactile model directory (weights.pt + model.yaml)"),
        DeclareLaunchArgument("backend", default_value="isam2", description="solver: isam2 or gn"),
        DeclareLaunchArgument("use_sim_time", default_value="false", description="follow /clock (bag replay)"),
    ]
    estimator = Node(
        package="tactile_estimator",
        executable="estimator_node",
        name="estimator_node",
        output="screen",
        parameters=[{
            # The file is read by the package itself (empty lists are not valid ROS parameter values).
            "config_file": LaunchConfiguration("config"),
            "model": LaunchConfiguration("model"),
            "backend": LaunchConfiguration("backend"),
            "use_sim_time": ParameterValue(LaunchConfiguration("use_sim_time"), value_type=bool),
        }],
    )
    return LaunchDescription([*arguments, estimator])
