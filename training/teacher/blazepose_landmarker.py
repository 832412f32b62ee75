"""BlazePose-full's landmark model run through mediapipe's own graph, on a crop the caller cuts.

The teacher of the face pseudo-labels (:mod:`hfpose.training.teacher.blazepose_label`) and the BlazePose
column of ``benchmarks/bench_accuracy.py``: both need BlazePose's numbers exactly, so the
mediapipe version that still ships the model is pinned here.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

MEDIAPIPE_VERSION = "0.10.21"
BLAZEPOSE_MODEL = "mediapipe/modules/pose_landmark/pose_landmark_full.tflite"
BLAZEPOSE_INPUT = 256  # the landmark model's square input


class BlazePoseLandmarker:
    """BlazePose full landmark model on a given square crop, through mediapipe's own graph.

    The ``PoseLandmarkByRoiCpu`` subgraph runs the tflite model with mediapipe's bundled TFLite
    interpreter (XNNPACK) and applies the same decoding, heatmap refinement and sigmoid on
    visibility/presence as mediapipe's pose solution, so the numbers are BlazePose's, not a
    re-implementation's. No output packet means BlazePose's pose flag said "no person".
    """

    def __init__(self) -> None:
        try:
            import mediapipe
            from google.protobuf import text_format
            from mediapipe.framework import calculator_pb2
            from mediapipe.python import packet_creator, packet_getter
            from mediapipe.python._framework_bindings import (
                calculator_graph,
                image_frame,
                resource_util,
            )
        except ImportError as error:
            raise SystemExit(
                f"mediapipe=={MEDIAPIPE_VERSION} is needed for pseudo-labels "
                f"(pip install 'hfpose[pseudo]'): {error}"
            ) from None
        if mediapipe.__version__ != MEDIAPIPE_VERSION:
            raise SystemExit(
                f"pseudo-labels are defined with mediapipe=={MEDIAPIPE_VERSION}, "
                f"found {mediapipe.__version__}"
            )
        site_packages = Path(mediapipe.__file__).resolve().parent.parent
        self.model_path = site_packages / BLAZEPOSE_MODEL
        resource_util.set_resource_dir(str(site_packages))
        config = text_format.Parse(
            """
            input_stream: "image"
            input_stream: "roi"
            input_side_packet: "model_complexity"
            output_stream: "landmarks"
            node {
              calculator: "PoseLandmarkByRoiCpu"
              input_side_packet: "MODEL_COMPLEXITY:model_complexity"
              input_stream: "IMAGE:image"
              input_stream: "ROI:roi"
              output_stream: "LANDMARKS:landmarks"
            }
            """,
            calculator_pb2.CalculatorGraphConfig(),
        )
        self._packet_creator = packet_creator
        self._srgb = image_frame.ImageFormat.SRGB
        self._outputs: dict[int, np.ndarray] = {}

        def on_landmarks(_stream: str, packet) -> None:
            landmarks = packet_getter.get_proto(packet).landmark
            self._outputs[packet.timestamp.value] = np.array(
                [[lm.x, lm.y, lm.z, lm.visibility, lm.presence] for lm in landmarks],
                dtype=np.float64,
            )

        from mediapipe.framework.formats import rect_pb2

        # The whole (square) crop is the ROI: the crop itself is cut and aligned by the caller.
        self._full_roi = rect_pb2.NormalizedRect(
            x_center=0.5, y_center=0.5, width=1.0, height=1.0, rotation=0.0
        )
        self._graph = calculator_graph.CalculatorGraph(graph_config=config)
        self._graph.observe_output_stream("landmarks", on_landmarks)
        # model_complexity 1 selects pose_landmark_full.tflite.
        self._graph.start_run({"model_complexity": packet_creator.create_int(1)})
        self._timestamp = 0

    def __call__(self, crop_rgb: np.ndarray) -> np.ndarray | None:
        """(33,5) landmarks: x, y in crop pixels, z, visibility, presence; None if no person."""
        if crop_rgb.shape[:2] != (BLAZEPOSE_INPUT, BLAZEPOSE_INPUT):
            raise ValueError(f"crop must be {BLAZEPOSE_INPUT}x{BLAZEPOSE_INPUT}")
        self._timestamp += 1
        stamp = self._timestamp
        image = self._packet_creator.create_image_frame(
            image_format=self._srgb, data=np.ascontiguousarray(crop_rgb)
        )
        self._graph.add_packet_to_input_stream("image", image.at(stamp))
        roi = self._packet_creator.create_proto(self._full_roi)
        self._graph.add_packet_to_input_stream("roi", roi.at(stamp))
        self._graph.wait_until_idle()
        landmarks = self._outputs.pop(stamp, None)
        if landmarks is None:
            return None
        landmarks[:, :2] *= BLAZEPOSE_INPUT
        return landmarks

    def close(self) -> None:
        self._graph.close()
