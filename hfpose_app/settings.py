"""The app's user settings: one typed dataclass, persisted with QSettings.

The engine's defaults are not restated here: :class:`AppSettings` has a typed field for each of
:func:`hfpose.engine.config.declared_settings`, its default read from the declaration, and adds
only what the app alone has (a custom detector's file, playback, recording). QSettings stores everything
as strings in INI files on Linux, so values are read back by their declared type: a typo in the
file or a value from an older version falls back to the default instead of crashing the app at
start-up.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, get_type_hints

from PySide6.QtCore import QSettings, QStandardPaths

from hfpose.engine.config import SETTINGS
from hfpose.engine.detection.factory import DETECTOR_NAMES

ORGANISATION = "hfpose"
APPLICATION = "hfpose"
MAX_RECENT_FILES = 10

# The detector setting as the dialog offers it: the shipped ones or "custom" (detector_path).
DETECTORS = (*DETECTOR_NAMES, "custom")
CONTAINERS = ("mp4", "mkv")
CODECS = ("h264", "mpeg4")
# Files slower to process than their frame rate: show every frame (the video slows down) or
# keep real time (skip frames, as a live camera does).
PLAYBACK_MODES = ("every-frame", "real-time")


def _frames_to_seconds(frames: str) -> float:
    """det_interval (frames, in older versions) as det_interval_s: N frames at the 30 fps it was
    tuned for are N/30 s, and 1 (every frame) is 0 (every frame at any rate)."""
    count = int(frames)
    return 0.0 if count <= 1 else count / 30


# Keys an older version stored under another name: read once when the new key is absent, with
# the old value converted.
LEGACY_KEYS: dict[str, tuple[str, Callable[[str], object]]] = {
    "model": ("model_path", str),
    "det_interval_s": ("det_interval", _frames_to_seconds),
}


def default_record_dir() -> str:
    """The platform's Videos folder (or home) + hfpose, so recordings land where users look."""
    movies = QStandardPaths.writableLocation(QStandardPaths.StandardLocation.MoviesLocation)
    base = Path(movies) if movies else Path.home()
    return str(base / "hfpose")


# What the app's own fields accept; the engine's come from their declarations.
APP_CHOICES: dict[str, tuple[str, ...]] = {
    "detector": DETECTORS,
    "container": CONTAINERS,
    "codec": CODECS,
    "playback": PLAYBACK_MODES,
}


def _declared(name: str) -> Any:
    """A field holding the engine setting ``name``, its default taken from its declaration."""
    return field(default=SETTINGS[name].default)


@dataclass
class AppSettings:
    """Everything the settings dialog edits; field names are the QSettings keys.

    First a field per :func:`hfpose.engine.config.declared_settings`, in their order, with the
    declared default (``tests/test_app_settings.py`` checks that they match the declarations,
    types included), then what the app alone has."""

    model: str | None = _declared("model")
    model_config: str | None = _declared("model_config")
    backend: str = _declared("backend")
    precision: str = _declared("precision")
    detector: str = _declared("detector")
    det_interval_s: float = _declared("det_interval_s")
    max_persons: int = _declared("max_persons")
    kpt_thr: float = _declared("kpt_thr")
    min_pose_score: float = _declared("min_pose_score")
    joint_angles: bool = _declared("joint_angles")
    smoothing: str = _declared("smoothing")
    one_euro_min_cutoff: float = _declared("one_euro_min_cutoff")
    one_euro_beta: float = _declared("one_euro_beta")
    one_euro_d_cutoff: float = _declared("one_euro_d_cutoff")
    kalman_process_noise: float = _declared("kalman_process_noise")
    kalman_measurement_noise: float = _declared("kalman_measurement_noise")
    draw_style: str = _declared("draw_style")
    show_boxes: bool = _declared("show_boxes")
    show_ids: bool = _declared("show_ids")
    show_angles: bool = _declared("show_angles")
    show_hud: bool = _declared("show_hud")
    radius: int = _declared("radius")
    thickness: int = _declared("thickness")
    reps_angle: str = _declared("reps_angle")
    reps_low: float = _declared("reps_low")
    reps_high: float = _declared("reps_high")
    detector_path: str = ""  # the user's own ONNX detector ("custom")
    playback: str = "every-frame"
    record_dir: str = field(default_factory=default_record_dir)
    container: str = "mp4"
    codec: str = "h264"
    keep_audio: bool = True

    def replace(self, **changes: object) -> AppSettings:
        return dataclasses.replace(self, **changes)

    def engine_settings(self) -> dict[str, Any]:
        """The engine's settings by name, as ``config_from_settings`` takes them: the custom
        detector's file (or the default detector, before one is chosen) for "custom"."""
        values = {name: getattr(self, name) for name in SETTINGS}
        if self.detector == "custom":
            values["detector"] = self.detector_path or SETTINGS["detector"].default
        return values


def choices_of(name: str) -> tuple[str, ...]:
    """The values a stored setting may take (empty: any of its type)."""
    if name in APP_CHOICES:
        return APP_CHOICES[name]
    spec = SETTINGS.get(name)
    return spec.choices if spec is not None else ()


def _legacy_value(qsettings: QSettings, key: str, convert: Callable[[str], object]) -> object:
    """An older version's value in today's terms; None when absent or unreadable."""
    raw = qsettings.value(key)
    if raw is None:
        return None
    try:
        return convert(raw)
    except (TypeError, ValueError):
        return None


def _coerce(raw: object, kind: Any, default: object) -> object:
    """QSettings value -> the field's type; anything unreadable gives the default."""
    if raw is None:
        return default
    try:
        if kind is bool:
            if isinstance(raw, bool):
                return raw
            text = str(raw).strip().lower()
            if text in ("true", "1", "yes"):
                return True
            if text in ("false", "0", "no"):
                return False
            return default
        if kind is int:
            return int(raw)
        if kind is float:
            return float(raw)
        if kind is str:
            return str(raw)
        return str(raw) or None  # str | None: an empty string stands for None
    except (TypeError, ValueError):
        return default


class SettingsStore:
    """Reads and writes :class:`AppSettings`, recent files and window state in one QSettings."""

    def __init__(self, qsettings: QSettings | None = None) -> None:
        self.qsettings = qsettings or QSettings(
            QSettings.Format.IniFormat, QSettings.Scope.UserScope, ORGANISATION, APPLICATION
        )

    def load(self) -> AppSettings:
        defaults = AppSettings()
        types = get_type_hints(AppSettings)
        values = {}
        self.qsettings.beginGroup("settings")
        for f in fields(AppSettings):
            default = getattr(defaults, f.name)
            raw = self.qsettings.value(f.name)
            if raw is None and f.name in LEGACY_KEYS:
                raw = _legacy_value(self.qsettings, *LEGACY_KEYS[f.name])
            value = _coerce(raw, types[f.name], default)
            spec = SETTINGS.get(f.name)
            if value not in choices_of(f.name) and choices_of(f.name):
                value = default
            elif spec is not None and spec.problem(value) is not None:
                value = default
            values[f.name] = value
        self.qsettings.endGroup()
        return AppSettings(**values)

    def save(self, settings: AppSettings) -> None:
        self.qsettings.beginGroup("settings")
        for f in fields(AppSettings):
            value = getattr(settings, f.name)
            self.qsettings.setValue(f.name, "" if value is None else value)
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
