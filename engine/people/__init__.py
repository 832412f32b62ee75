"""People over time: who is who from frame to frame, steadier keypoints, phantoms dropped.

- ``tracking``: ``Tracker``, ``box_iou``
- ``smoothing``: ``SmoothingConfig``, ``TrackSmoother``, ``OneEuroFilter``,
  ``KalmanPointFilter``, ``SMOOTHING_METHODS``
- ``plausibility``: ``plausible_people``, ``is_plausible``: which poses are phantoms
"""
