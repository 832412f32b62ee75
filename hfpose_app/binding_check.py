"""Before the first window: do the installed Qt bindings keep Python's reference counts?

PySide6/shiboken6 6.12.0 returns ``True`` from every ``SignalInstance.emit()`` and ``None`` from
every Qt method without a value (``setText``, ``setValue``, ``update``, ``postEvent``...)
without taking a reference to it. The app makes such calls on every frame, so the count of
``True`` or ``None`` reached zero after minutes of playing and the interpreter aborted
("Fatal Python error: bool_dealloc"), a recording in progress included. pyproject excludes that
release and ``constraints.txt`` pins a tested one; this check turns the next such release, or
an install made without them, into one message at start instead of a crash minutes later.
docs/app.md has the reproduction.
"""

from __future__ import annotations

import ctypes
import sys


def lost_references(calls: int) -> dict[str, int]:
    """References to ``True`` and ``None`` lost by ``calls`` signal emits and as many calls of a
    Qt method without a value: 0 and 0 with sound bindings, ``calls`` each with 6.12.0 (given
    back before it returns). ``calls`` must stay under the counts the interpreter holds."""
    from PySide6.QtCore import QObject, Signal

    class Probe(QObject):
        fired = Signal()

    probe = Probe()
    true_before, none_before = sys.getrefcount(True), sys.getrefcount(None)
    for _ in range(calls):
        probe.fired.emit()
        probe.setObjectName("probe")
    lost = {
        "True": true_before - sys.getrefcount(True),
        "None": none_before - sys.getrefcount(None),
    }
    # Give back what a broken release took, or the interpreter aborts as it shuts down.
    for value in (True, None):
        for _ in range(lost[str(value)]):
            ctypes.pythonapi.Py_IncRef(ctypes.py_object(value))
    return lost


def binding_problem(calls: int = 20) -> str | None:
    """One line saying why the installed PySide6 would crash the app, or None."""
    import PySide6
    import shiboken6

    lost = lost_references(calls)
    if max(lost.values()) < calls // 2:
        return None
    return (
        f"hfpose: PySide6 {PySide6.__version__} (shiboken6 {shiboken6.__version__}) loses a "
        f"reference to True/None on each Qt call, which crashes the app after minutes; install "
        f"the tested version: pip install -c constraints.txt -e . (or 'PySide6-Essentials!="
        f"{PySide6.__version__}')"
    )
