"""Contact from the tactile image alone: does the frame differ from the bare gel?

The first ``background_frames`` frames of a stream are taken as the bare gel (the robot starts
out of contact); later frames that show no contact keep refreshing it slowly, so a drift in the
sensor's lighting does not read as contact.
"""

from __future__ import annotations

import cv2
import numpy as np

from tactile_estimator.config import ContactConfig

_REFRESH = 0.05  # weight of an out-of-contact frame in the running background


class ContactDetector:
    def __init__(self, config: ContactConfig) -> None:
        self.config = config
        self._frames: list[np.ndarray] = []
        self.background: np.ndarray | None = None

    @property
    def ready(self) -> bool:
        return self.background is not None

    def update(self, image: np.ndarray) -> bool | None:
        """True/False once the background is known; None while it is still being gathered."""
        if self.background is None:
            self._frames.append(image.astype(np.float32))
            if len(self._frames) >= self.config.background_frames:
                self.background = np.median(np.stack(self._frames), axis=0).astype(np.float32)
                self._frames.clear()
            return None
        # OpenCV keeps this well under a millisecond for a 320x240 frame; numpy takes a few.
        diff = cv2.absdiff(image.astype(np.float32), self.background)
        strongest = cv2.max(cv2.max(diff[..., 0], diff[..., 1]), diff[..., 2])
        above = cv2.countNonZero(cv2.compare(strongest, self.config.pixel_threshold, cv2.CMP_GT))
        in_contact = above > self.config.min_fraction * strongest.size
        if not in_contact:
            cv2.accumulateWeighted(image.astype(np.float32), self.background, _REFRESH)
        return in_contact
