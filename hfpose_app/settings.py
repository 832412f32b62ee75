"""The app's user settings: one typed dataclass, persisted with QSettings.

QSettings stores everything as strings in INI files on Linux, so values are read back by the
type of their default: a typo in the file or a value from an older version falls back to the
default instead of crashing the app at start-up.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field, fields
from pathlib import Path

from PySide6.QtCore import QSettings, QStandardPaths

from hfpose.engine.config import PipelineConfig
from hfpose.engine.plausibility import DEFAULT_MIN_POSE_SCORE
from hfpose.engine.runtimes import PRECISIONS

ORGANISATION = "hfpose"
APPLICATION = "hfpose"
MAX_RECENT_FILES = 10

BACKENDS = ("auto", "cpu", "gpu", "npu", "openvino", "torch")
SMOOTHING_METHODS = ("none", "one-euro", "kalman")
DRAW_STYLES = ("mmpose", "openpose")
DETECTORS = ("nanodet", "blazepose", "custom")
CONTAINERS = ("mp4", "mkv")
CODECS = ("h264", "mpeg4")
# Files slower to process than their frame rate: show every frame (the video slows down) or
# keep real time (skip frames, as a live camera does).
PLAYBACK_MODES = ("every-frame", "real-time")


def default_record_dir() -> str:
    """The platform's Videos folder (or home) + hfpose, so recordings land where users look."""
    movies = QStandardPaths.writableLocation(QStandardPaths.StandardLocation.MoviesLocation)
    base = Path(movies) if movies else Path.home()
    return str(base / "hfpose")


@dataclass
class AppSettings:
    """Everything the settings dialog edits; field names are the QSettings keys."""

    # Inference
    backend: str = "auto"
    precision: str = PipelineConfig.precision  # the engine's default, declared there
    model_path: str = ""  # empty: the shipped HF-HRNet; else a file or a shipped model's name
    model_config: str = ""  # the mmpose config for authors' checkpoints
    detector: str = "nanodet"
    detector_path: str = ""  # a user's own ONNX person detector when detector == "custom"
    det_interval: int = 1
    max_persons: int = 10
    kpt_thr: float = 0.3
    min_pose_score: float = DEFAULT_MIN_POSE_SCORE
    playback: str = "every-frame"
    # Smoothing
    smoothing: str = "one-euro"
    one_euro_min_cutoff: float = 1.0
    one_euro_beta: float = 0.05
    one_euro_d_cutoff: float = 1.0
    kalman_process_noise: float = 1500.0
    kalman_measurement_noise: float = 3.0
    # Drawing
    draw_style: str = "mmpose"
    radius: int = 0  # frame pixels; 0: scales with the video's size
    thickness: int = 0
    show_boxes: bool = True
    show_ids: bool = True
    show_hud: bool = True
    # Recording
    record_dir: str = field(default_factory=default_record_dir)
    container: str = "mp4"
    codec: str = "h264"
    keep_audio: bool = True

    def replace(self, **changes: object) -> AppSettings:
        return dataclasses.replace(self, **changes)


def _coerce(raw: object, default: object) -> object:
    """QSettings value -> the type of ``default``; anything unreadable gives the default."""
    if raw is None:
        return default
    try:
        if isinstance(default, bool):
            if isinstance(raw, bool):
                return raw
            text = str(raw).strip().lower()
            if text in ("true", "1", "yes"):
                return True
            if text in ("false", "0", "no"):
                return False
            return default
        if isinstance(default, int):
            return int(raw)
        if isinstance(default, float):
            return float(raw)
        return str(raw)
    except (TypeError, ValueError):
        return default


_CHOICES: dict[str, tuple[str, ...]] = {
    "backend": BACKENDS,
    "precision": PRECISIONS,
    "smoothing": SMOOTHING_METHODS,
    "draw_style": DRAW_STYLES,
    "detector": DETECTORS,
    "container": CONTAINERS,
    "codec": CODECS,
    "playback": PLAYBACK_MODES,
}


class SettingsStore:
    """Reads and writes :class:`AppSettings`, recent files and window state in one QSettings."""

    def __init__(self, qsettings: QSettings | None = None) -> None:
        self.qsettings = qsettings or QSettings(
            QSettings.Format.IniFormat, QSettings.Scope.UserScope, ORGANISATION, APPLICATION
        )

    def load(self) -> AppSettings:
        defaults = AppSettings()
        values = {}
        self.qsettings.beginGroup("settings")
        for f in fields(AppSettings):
            default = getattr(defaults, f.name)
            value = _coerce(self.qsettings.value(f.name), default)
            if f.name in _CHOICES and value not in _CHOICES[f.name]:
                value = default
            values[f.name] = value
        self.qsettings.endGroup()
        return AppSettings(**values)

    def save(self, settings: AppSettings) -> None:
        self.qsettings.beginGroup("settings")
        for f in fields(AppSettings):
            self.qsettings.setValue(f.name, getattr(settings, f.name))
        self.qsettings.endGroup()
        self.qsettings.sync()

    def restore_defaults(self) -> AppSettings:
        """Forget every saved setting (recent files and window layout stay)."""
        self.qsettings.remove("settings")
        self.qsettings.sync()
        return AppSettings()

    # Recent files: most recent first, no duplicates, only the last MAX_RECENT_FILES.
    def recent_files(self) -> list[str]:
        raw = self.qsettings.value("recent/files", [])
        if isinstance(raw, str):
            raw = [raw] if raw else []
        return [str(p) for p in (raw or [])][:MAX_RECENT_FILES]

    def add_recent_file(self, path: str) -> list[str]:
        files = [path] + [p for p in self.recent_files() if p != path]
        files = files[:MAX_RECENT_FILES]
        self.qsettings.setValue("recent/files", files)
        self.qsettings.sync()
        return files

    def clear_recent_files(self) -> None:
        self.qsettings.remove("recent")
        self.qsettings.sync()

    def window_state(self) -> tuple[object, object]:
        return self.qsettings.value("window/geometry"), self.qsettings.value("window/state")

    def save_window_state(self, geometry: object, state: object) -> None:
        self.qsettings.setValue("window/geometry", geometry)
        self.qsettings.setValue("window/state", state)
        self.qsettings.sync()
