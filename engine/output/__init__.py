"""What a run hands out: the drawn frame and the files it writes.

- ``rendering``: ``Renderer``, ``RenderOptions``, ``HudInfo``, the annotators, ``RENDER_STYLES``
- ``sinks``: ``VideoSink``, ``JsonKeypointSink``, ``CsvKeypointSink``, ``CocoResultsSink``,
  ``Sink``, ``SinkError``, ``VIDEO_CODECS``, ``VIDEO_CONTAINERS``, ``container_for``
- ``output_files``: where outputs may go (never an input or another output, one run each)
- ``angle_sinks``: ``--save-angles`` and ``--save-reps``
"""
