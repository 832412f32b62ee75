"""Inputs: what the user typed opened as a source of frames, and the readers behind it.

- ``opening``: ``open_source``, ``list_cameras``, ``CameraInfo``, ``is_live_spec``, ``open_url``
- ``frame_source``: ``FrameSource``, ``Frame``, ``SourceInfo``, ``EarlyEnd``, ``SourceError``
- ``video_file``: ``VideoFileSource``
- ``image_folder``: ``ImageFolderSource``
- ``live``: ``CameraSource``, ``StreamSource``, ``LiveFrameSource``
"""
