"""Teacher labels: keypoints from other models where the human labels have none.

- ``blazepose_label``: ``hfpose-pseudo-label``, ``label_person`` (BlazePose face points that
  agree with the human labels); ``blazepose_landmarker``: ``BlazePoseLandmarker``
- ``movenet``: ``Teacher`` (MoveNet Thunder), ``header``; ``label_cli``:
  ``hfpose-teacher-label``; ``photos``: ``label_photos`` for unlabelled photos; ``progress``:
  ``LabelProgress``, a labelling run's saved progress
- ``face_check``: the teacher's face points checked against BlazePose's (``face_errors``)
"""
