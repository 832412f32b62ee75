"""Person detectors: finding the people whose keypoints the keypoint model then reads.

- ``factory``: ``create_detector`` (a shipped detector by name, or a user's ONNX file)
- ``person_detector``: ``PersonDetector``, what every detector is
- ``shipped``: NanoDet and BlazePose's detector with their decoding
- ``onnx_detector``: a user's YOLOX / RTMDet / YOLOv8-style ONNX detector
- ``boxes``: letterboxing and non-maximum suppression
"""
