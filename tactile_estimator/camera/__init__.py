"""Camera images to object pose priors: an AprilTag 36h11 detector on calibrated images, without ROS."""

from tactile_estimator.camera.apriltag import DROP_REASONS, AprilTagDetector, DetectorOptions, TagMount, TagResult
from tactile_estimator.camera.model import CameraInfo, look_at

__all__ = ["DROP_REASONS", "AprilTagDetector", "CameraInfo", "DetectorOptions", "TagMount", "TagResult", "look_at"]
