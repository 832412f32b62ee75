"""Scoring: ``hfpose-test`` and the metrics.

- ``test_cli``: ``hfpose-test`` (a checkpoint or an exported model on a test set)
- ``evaluation``: ``evaluate_dataset``, decoding with flip test, COCO AP, PCKh, torso PCK
"""
