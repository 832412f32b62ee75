"""Person detectors by name or file: ``create_detector`` picks the detector class for a name
or an ONNX file, so the pipeline, the CLI and the app choose a detector in one place.

Public API (stable):

- ``create_detector(name_or_path="nanodet", backend="auto", score_threshold=None,
  nms_threshold=None) -> PersonDetector``; names: ``nanodet`` (default, shipped),
  ``blazepose`` (shipped), or a path to a user's YOLOX / RTMDet / YOLOv8-style ONNX model.
- ``PersonDetector.detect(frame_bgr) -> np.ndarray (N, 5)`` float32, frame pixels, best first.
- ``PersonDetector.runtime_info`` (what really runs), ``.name``; another backend is another
  detector (``create_detector``).
- ``DETECTOR_NAMES``; ``DetectorError`` (:mod:`hfpose.engine.detection.person_detector`) for a model
  whose outputs we cannot interpret.

Detectors:

- ``NanoDetDetector``, ``BlazePoseDetector`` (:mod:`hfpose.engine.detection.shipped`): the
  two shipped in ``assets/detectors/``, their output layouts and thresholds described there.
- ``OnnxPersonDetector`` (:mod:`hfpose.engine.detection.onnx_detector`): a user's model; the
  layout (mmdeploy end2end ``dets``/``labels``, YOLOv8 (1, 4+C, N), YOLOX raw (1, N, 5+C),
  YOLOv5 (1, N, 5+C)) is recognised from the output shapes, anything else refused by name.
"""

from __future__ import annotations

from pathlib import Path

from hfpose.engine.detection.onnx_detector import OnnxPersonDetector
from hfpose.engine.detection.person_detector import PersonDetector
from hfpose.engine.detection.shipped import BlazePoseDetector, NanoDetDetector
from hfpose.engine.runtime.model_files import read_onnx_metadata

# The shipped detectors by the name users give; the first is the default.
DETECTOR_NAMES = (NanoDetDetector.name, BlazePoseDetector.name)


def create_detector(
    name_or_path: str | Path = DETECTOR_NAMES[0],
    backend: str = "auto",
    score_threshold: float | None = None,
    nms_threshold: float | None = None,
    num_threads: int = 0,
) -> PersonDetector:
    """``nanodet`` (default), ``blazepose``, or a path to a user's ONNX person detector.

    ``num_threads`` 0 lets the runtime use every core.

    Raises ``ModelError`` for a missing/unreadable file and ``DetectorError`` for an ONNX model
    whose outputs are not one of the accepted layouts.
    """
    options = {
        "score_threshold": score_threshold,
        "nms_threshold": nms_threshold,
        "num_threads": num_threads,
    }
    name = str(name_or_path)
    if name.lower() == NanoDetDetector.name:
        return NanoDetDetector(None, backend, **options)
    if name.lower() == BlazePoseDetector.name:
        return BlazePoseDetector(None, backend, **options)
    path = Path(name_or_path)
    if path.suffix.lower() != ".onnx" and not path.exists():
        raise ValueError(
            f"unknown detector {name!r}: use {' or '.join(DETECTOR_NAMES)} or an .onnx file path"
        )
    # Our own converted files, picked by path (e.g. from a file dialog), keep their decoders.
    model_name = str(read_onnx_metadata(path).get("model", ""))
    if model_name.startswith("NanoDet"):
        return NanoDetDetector(path, backend, **options)
    if model_name.startswith("MediaPipe BlazePose"):
        return BlazePoseDetector(path, backend, **options)
    return OnnxPersonDetector(path, backend, **options)
