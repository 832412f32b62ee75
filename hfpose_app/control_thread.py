"""The app's control thread: the engine calls that can block (opening a camera, loading models,
opening or finalising a recording, writing exports) run here, one after another, so the GUI
thread only paints."""

from __future__ import annotations

import logging
import queue
import threading
from collections.abc import Callable

log = logging.getLogger(__name__)


class ControlThread:
    """Runs blocking engine calls one after another, off the GUI thread (daemon: a model
    still loading never keeps the process alive after the window closed)."""

    def __init__(self, on_error: Callable[[Exception], None]) -> None:
        self._on_error = on_error
        self._tasks: queue.Queue[Callable[[], None] | None] = queue.Queue()
        self._thread = threading.Thread(target=self._run, name="hfpose-app-control", daemon=True)
        self._thread.start()

    def submit(self, task: Callable[[], None]) -> None:
        self._tasks.put(task)

    def _run(self) -> None:
        while (task := self._tasks.get()) is not None:
            try:
                task()
            except Exception as error:  # noqa: BLE001 - one failed task must not end the thread
                log.exception("app control task failed")
                self._on_error(error)

    def close(self) -> None:
        self._tasks.put(None)

    def join(self, timeout_s: float) -> bool:
        """Wait for the queued tasks (an export, a snapshot) to finish; True when done."""
        self._thread.join(timeout_s)
        return not self._thread.is_alive()
