"""A training run: ``hfpose-train``, the trainer and what a run is made of.

- ``train_cli``: ``hfpose-train``; ``run_config``: ``TrainConfig``; ``trainer``: ``Trainer``
- ``stop_signals``, ``distributed``, ``schedule``, ``checkpointing``, ``run_log``,
  ``loaders``, ``prediction``, ``losses``, ``precision``
- ``load_from``: start from a checkpoint or an exported ONNX; ``time_budget``:
  ``--time-budget``; ``onnx_export``: ``export_onnx``, ``verify_onnx``
"""
