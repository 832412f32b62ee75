"""How the app names a source for people (window title, status bar) and for files."""

from __future__ import annotations

from pathlib import Path

from hfpose.app.widgets import format_time
from hfpose.engine.sources.frame_source import SourceInfo


def source_title(uri: str) -> str:
    """A short name for the window title: the file name, ``camera 0`` or the URL."""
    if uri.startswith("webcam:"):
        return f"camera {uri.split(':', 1)[1]}"
    if "://" in uri:
        return uri
    return Path(uri).name


def source_stem(info: SourceInfo) -> str:
    """A file-name-safe stem for recordings and snapshots of this source."""
    if info.kind == "file":
        raw = Path(info.uri).stem
    elif info.kind == "camera":
        raw = info.uri.replace(":", "")
    else:
        raw = info.kind
    return "".join(c if c.isalnum() or c in "-_" else "_" for c in raw)[:60] or "video"


def describe_source(info: SourceInfo, title: str) -> str:
    """Status-bar text: name, size, frame rate and length (or "live")."""
    text = f"{title} · {info.width}×{info.height} · {info.fps:.4g} fps"
    if info.is_live:
        return text + " · live"
    if info.duration:
        text += f" · {format_time(info.duration)}"
    if info.has_audio:
        text += " · audio"
    return text
