"""Before the first window: can Qt open one here? If not, say what to install, in one message.

PySide6's wheel brings Qt but not the X11 libraries its ``xcb`` platform plugin links against
(libxcb-cursor0, libxcb-icccm4, ... are system packages pip cannot install). Without them Qt
aborts inside ``QApplication()`` with "Could not load the Qt platform plugin xcb", which does
not say what is missing. This module asks the dynamic linker (``ldd`` on the plugin) which
libraries it cannot find, and turns their names into the install commands of Debian/Ubuntu and
Fedora. It imports no Qt GUI module, so it runs before anything that could abort.
"""

from __future__ import annotations

import ctypes
import importlib.util
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path

# Library (file name without ".so.N") -> (Debian/Ubuntu package, Fedora package), for what
# PySide6's libqxcb.so and the Qt libraries under it link against.
PACKAGES: dict[str, tuple[str, str]] = {
    "libxcb-cursor": ("libxcb-cursor0", "xcb-util-cursor"),
    "libxcb-icccm": ("libxcb-icccm4", "xcb-util-wm"),
    "libxcb-image": ("libxcb-image0", "xcb-util-image"),
    "libxcb-keysyms": ("libxcb-keysyms1", "xcb-util-keysyms"),
    "libxcb-render-util": ("libxcb-render-util0", "xcb-util-renderutil"),
    "libxcb-util": ("libxcb-util1", "xcb-util"),
    "libxcb-randr": ("libxcb-randr0", "libxcb"),
    "libxcb-render": ("libxcb-render0", "libxcb"),
    "libxcb-shape": ("libxcb-shape0", "libxcb"),
    "libxcb-shm": ("libxcb-shm0", "libxcb"),
    "libxcb-sync": ("libxcb-sync1", "libxcb"),
    "libxcb-xfixes": ("libxcb-xfixes0", "libxcb"),
    "libxcb-xkb": ("libxcb-xkb1", "libxcb"),
    "libxcb": ("libxcb1", "libxcb"),
    "libxkbcommon-x11": ("libxkbcommon-x11-0", "libxkbcommon-x11"),
    "libxkbcommon": ("libxkbcommon0", "libxkbcommon"),
    "libX11-xcb": ("libx11-xcb1", "libX11-xcb"),
    "libX11": ("libx11-6", "libX11"),
    "libGL": ("libgl1", "libglvnd-glx"),
    "libEGL": ("libegl1", "libglvnd-egl"),
    "libfontconfig": ("libfontconfig1", "fontconfig"),
    "libfreetype": ("libfreetype6", "freetype"),
    "libglib-2.0": ("libglib2.0-0", "glib2"),
    "libgthread-2.0": ("libglib2.0-0", "glib2"),
    "libdbus-1": ("libdbus-1-3", "dbus-libs"),
}
HEADLESS_HINT = (
    "hfpose-video works without a display: hfpose-video VIDEO --out VIDEO_pose.mp4 "
    "(or --save-json, --save-csv)."
)
_NOT_FOUND = re.compile(r"^\s*(\S+)\s+=>\s+not found", re.MULTILINE)


def xcb_plugin_path() -> Path | None:
    """PySide6's X11 platform plugin, found without importing any Qt module."""
    spec = importlib.util.find_spec("PySide6")
    if spec is None or not spec.submodule_search_locations:
        return None
    plugin = Path(spec.submodule_search_locations[0]) / "Qt/plugins/platforms/libqxcb.so"
    return plugin if plugin.is_file() else None


def missing_libraries(plugin: Path) -> list[str]:
    """Shared libraries ``plugin`` needs (directly or through the Qt libraries it loads) that
    the dynamic linker cannot find, in ldd's order, each once."""
    ldd = shutil.which("ldd")
    if ldd is None:  # no ldd (a minimal image): the loader names the first missing one
        try:
            ctypes.CDLL(str(plugin))
        except OSError as error:
            name = str(error).split(":", 1)[0].strip()
            return [name] if name and name != str(plugin) else []
        return []
    result = subprocess.run(
        [ldd, str(plugin)], capture_output=True, text=True, timeout=30, check=False
    )
    return list(dict.fromkeys(_NOT_FOUND.findall(result.stdout)))


def install_advice(missing: Sequence[str]) -> str:
    """One message: what is missing and the apt and dnf commands that install it."""
    debian, fedora, unknown = [], [], []
    for library in missing:
        packages = PACKAGES.get(library.split(".so")[0])
        if packages is None:
            unknown.append(library)
            continue
        debian.append(packages[0])
        fedora.append(packages[1])
    lines = [
        "hfpose cannot open its window: Qt's X11 platform plugin (xcb) needs system libraries "
        f"that are not installed: {', '.join(missing)}."
    ]
    if debian:
        lines.append(f"  Debian/Ubuntu: sudo apt install {' '.join(dict.fromkeys(debian))}")
        lines.append(f"  Fedora:        sudo dnf install {' '.join(dict.fromkeys(fedora))}")
    if unknown:
        lines.append(
            f"  {', '.join(unknown)}: install the package that provides it "
            "(apt-file search NAME on Debian/Ubuntu, dnf provides '*/NAME' on Fedora)."
        )
    lines.append(HEADLESS_HINT)
    return "\n".join(lines)


def uses_xcb(environ: Mapping[str, str]) -> bool:
    """Whether Qt will load the xcb plugin: asked for, or the default on an X11 session (on a
    Wayland session Qt 6 tries its Wayland plugin first and xcb only as a fallback)."""
    requested = environ.get("QT_QPA_PLATFORM", "")
    if requested:
        return "xcb" in requested.split(";")[0]
    return not environ.get("WAYLAND_DISPLAY")


def has_display(environ: Mapping[str, str] | None = None) -> bool:
    """Whether a desktop session is there to show windows in (X11 or Wayland)."""
    environ = os.environ if environ is None else environ
    return bool(environ.get("DISPLAY") or environ.get("WAYLAND_DISPLAY"))


def offscreen_unless_display() -> None:
    """Let Qt draw offscreen where no display is set: for scripts that only render to files."""
    if not has_display():
        os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")


def display_problem(
    environ: Mapping[str, str] | None = None, plugin: Path | None = None
) -> str | None:
    """The message to print instead of starting Qt, or ``None`` when a window can open.

    Linux only; a platform named in ``QT_QPA_PLATFORM`` (``offscreen``, ``wayland``) is
    trusted. ``plugin`` defaults to PySide6's xcb plugin.
    """
    if not sys.platform.startswith("linux"):
        return None
    environ = os.environ if environ is None else environ
    if not uses_xcb(environ):
        return None
    if not has_display(environ):
        return (
            "hfpose needs a desktop session to open its window, and there is no display here "
            f"(DISPLAY and WAYLAND_DISPLAY are not set). {HEADLESS_HINT}"
        )
    plugin = plugin or xcb_plugin_path()
    if plugin is None:
        return None  # Qt will say itself that it has no xcb plugin
    missing = missing_libraries(plugin)
    return install_advice(missing) if missing else None
