"""Export tooling, the floor above training: checkpoint -> ONNX, int8 and LiteRT copies, converters.

``export_cli`` is ``hfpose-export`` (ONNX export and its parity check, ``--int8``, ``--tflite``);
``quantize`` derives and checks the ONNX int8 copy; ``convert`` holds the LiteRT conversion and
the converters of the third-party models shipped in ``assets/``. It uses the engine's runtimes
and training's evaluation to check what it writes, so nothing below imports it.
"""
