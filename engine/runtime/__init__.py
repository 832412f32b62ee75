"""Running a model file: which backends this machine has, one session interface over them,
the ``auto`` probe, and where the shipped model files are.

- ``backends``: ``create_session`` (the backend asked for, or the CPU with the reason),
  ``PRECISIONS``, ``warn_once``
- ``discovery``: ``BACKENDS``, ``available_backends()``, ``BackendStatus``
- ``sessions``: ``InferenceSession``, ``RuntimeInfo``
- ``litert``: ``LiteRtSession`` over a model's checked ``.tflite`` copy (``tflite_path``,
  ``record_path``, ``checked_tflite``)
- ``auto``: the ``auto`` probe and its cache (``fastest``, ``fast_variant``)
- ``model_files``: ``ModelError``, ``asset_path``, ``read_onnx_metadata``
"""
