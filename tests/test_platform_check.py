"""``hfpose`` on a Linux desktop without Qt's X11 libraries: one message with what to install.

The check runs ``ldd`` on PySide6's real xcb plugin. This machine has no display, and which
libraries a machine lacks varies, so the missing library is *simulated*: a copy of the real
plugin whose dependency on ``libxcb-cursor.so.0`` is renamed to ``libxcb-cursor.so.9`` (same
length, a version no system has), next to a link to PySide6's Qt libraries so that everything
else resolves as for the real plugin. The display is simulated by setting ``DISPLAY``.
"""

from __future__ import annotations

import ctypes
import os
import subprocess
import sys
from pathlib import Path

import pytest

from hfpose.app.platform_check import (
    display_problem,
    install_advice,
    missing_libraries,
    uses_xcb,
    xcb_plugin_path,
)

REPO_ROOT = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.skipif(
    not sys.platform.startswith("linux") or xcb_plugin_path() is None,
    reason="Linux with PySide6's xcb plugin only",
)


@pytest.fixture
def plugin_missing_xcb_cursor(tmp_path: Path) -> Path:
    """A copy of the real libqxcb.so that needs libxcb-cursor.so.9 instead of .so.0."""
    real = xcb_plugin_path()
    data = real.read_bytes()
    assert data.count(b"libxcb-cursor.so.0\x00") == 1
    copy = tmp_path / "plugins" / "platforms" / "libqxcb.so"
    copy.parent.mkdir(parents=True)
    copy.write_bytes(data.replace(b"libxcb-cursor.so.0\x00", b"libxcb-cursor.so.9\x00"))
    # The plugin finds Qt's libraries through its RUNPATH, $ORIGIN/../../lib.
    (tmp_path / "lib").symlink_to(real.parents[2] / "lib")
    return copy


def test_missing_libraries_reports_only_what_the_loader_cannot_find_on_this_machine() -> None:
    missing = missing_libraries(xcb_plugin_path())
    for library in missing:  # each one really fails to load here
        with pytest.raises(OSError):
            ctypes.CDLL(library)
    assert "libc.so.6" not in missing and "libQt6Gui.so.6" not in missing


def test_renamed_dependency_is_found_missing_simulated_missing_libxcb_cursor(
    plugin_missing_xcb_cursor: Path,
) -> None:
    missing = missing_libraries(plugin_missing_xcb_cursor)
    assert "libxcb-cursor.so.9" in missing
    assert missing == list(dict.fromkeys(missing))  # each library named once


def test_advice_names_the_packages_for_apt_and_dnf_fake_dependency_list() -> None:
    missing = ["libxcb-cursor.so.0", "libxcb-icccm.so.4", "libxkbcommon-x11.so.0"]
    lines = install_advice(missing).splitlines()
    assert "libxcb-cursor.so.0, libxcb-icccm.so.4, libxkbcommon-x11.so.0" in lines[0]
    assert lines[1].split(": ", 1)[1] == (
        "sudo apt install libxcb-cursor0 libxcb-icccm4 libxkbcommon-x11-0"
    )
    assert lines[2].split(": ", 1)[1].strip() == (
        "sudo dnf install xcb-util-cursor xcb-util-wm libxkbcommon-x11"
    )
    assert lines[-1].startswith("hfpose-video works without a display")


def test_advice_for_an_unknown_library_says_how_to_find_its_package_fake_dependency_list() -> None:
    text = install_advice(["libfoo.so.3"])
    assert "apt-file search" in text and "dnf provides" in text and "sudo apt" not in text


def test_which_platforms_are_checked() -> None:
    assert uses_xcb({"DISPLAY": ":0"})
    assert uses_xcb({"QT_QPA_PLATFORM": "xcb"})
    assert not uses_xcb({"QT_QPA_PLATFORM": "offscreen"})
    assert not uses_xcb({"QT_QPA_PLATFORM": "wayland;xcb"})
    assert not uses_xcb({"WAYLAND_DISPLAY": "wayland-0", "DISPLAY": ":0"})
    assert display_problem({"QT_QPA_PLATFORM": "offscreen"}) is None


def _run_hfpose(env: dict[str, str], plugin: Path | None = None) -> subprocess.CompletedProcess:
    """The real ``hfpose`` main() in a fresh interpreter (``plugin`` replaces PySide6's)."""
    code = "import sys; from hfpose.app import app, platform_check as p\n"
    if plugin is not None:
        code += f"p.xcb_plugin_path = lambda: p.Path({str(plugin)!r})\n"
    code += "sys.exit(app.main([]))"
    return subprocess.run(
        [sys.executable, "-c", code],
        env=env,
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )


def _desktop_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("QT_QPA_PLATFORM", "WAYLAND_DISPLAY")}
    env.pop("DISPLAY", None)
    env.update(extra)
    return env


def test_hfpose_says_what_to_install_before_qt_starts_simulated_display_and_missing_library(
    plugin_missing_xcb_cursor: Path,
) -> None:
    result = _run_hfpose(_desktop_env(DISPLAY=":0"), plugin_missing_xcb_cursor)
    assert result.returncode == 1
    assert "libxcb-cursor.so.9" in result.stderr
    assert "sudo apt install libxcb-cursor0" in result.stderr
    assert "sudo dnf install xcb-util-cursor" in result.stderr
    assert "hfpose-video works without a display" in result.stderr
    assert "qt.qpa" not in result.stderr  # Qt never tried to load the plugin


def test_hfpose_without_any_display_points_to_hfpose_video() -> None:
    result = _run_hfpose(_desktop_env())
    assert result.returncode == 1
    assert "no display here" in result.stderr
    assert "hfpose-video works without a display" in result.stderr
