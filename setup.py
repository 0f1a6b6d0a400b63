"""ament_python package: installs with plain pip, and with colcon on a ROS 2 machine."""

from glob import glob

from setuptools import find_packages, setup

PACKAGE = "tactile_estimator"

setup(
    name=PACKAGE,
    version="0.1.0",
    packages=find_packages(exclude=["test", "test.*"]),
    data_files=[
        ("share/ament_index/resource_index/packages", [f"resource/{PACKAGE}"]),
        (f"share/{PACKAGE}", ["package.xml"]),
        (f"share/{PACKAGE}/launch", glob("launch/*.launch.py")),
        (f"share/{PACKAGE}/config", glob("config/*.yaml") + glob("config/*.rviz") + glob("config/*.json")),
        (f"share/{PACKAGE}/models", glob("models/*")),
    ],
    package_data={PACKAGE: ["data/*"]},
    install_requires=[
        "numpy",
        "scipy",
        "gtsam==4.3.0",
        "rosbags>=0.11,<0.12",
        "cyclonedds>=11,<12",
        "torch==2.13.0",
        "opencv-python-headless",
        "matplotlib",
        "pyyaml",
        "cma",
        "tqdm",
    ],
    zip_safe=True,
    maintainer="tactile_estimator maintainers",
    maintainer_email="maintainers@tactile-estimator.invalid",
    description="Tactile state estimation of pushed objects with learned factor graphs (iSAM2, LEO).",
    license="MIT",
    python_requires=">=3.10",
    entry_points={
        "console_scripts": [
            "tactile-estimator = tactile_estimator.cli:main",
            "estimator_node = tactile_estimator.cli:estimator_node",
            "trainer_node = tactile_estimator.cli:trainer_node",
        ],
    },
)
