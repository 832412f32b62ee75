"""Keypoints of the people found: the keypoint model and its family's decoding.

- ``estimator``: ``PoseEstimator`` (crops, session, flip test, decoding)
- ``families``: the keypoint model families (HF-HRNet heatmaps, MoveNet...), the shipped
  models (``DEFAULT_SHIPPED_MODEL``, ``SHIPPED_MODEL_NOTES``)
"""
