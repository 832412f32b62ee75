"""Ctrl+C (SIGINT) and SIGTERM stop a training run at once, and never half-way through an update.

Why the trainer installs its own handlers instead of relying on Python's KeyboardInterrupt:

- Python raises KeyboardInterrupt only where the process started with SIGINT at its default
  action. A run started in the background of a script or a tool (``nohup hfpose-train ... &``
  without job control) inherits SIGINT *ignored*: Ctrl+C and ``kill -INT`` then did nothing at
  all (seen: no stop in 80 s, while SIGTERM, handled explicitly, stopped at once).
- SIGTERM to the whole process group (a scheduler, ``kill -- -PGID``) also kills the DataLoader
  workers, and torch's SIGCHLD handler then raised "DataLoader worker ... is killed by signal"
  in the middle of writing the checkpoint: no checkpoint, a traceback, status 1.
- An exception raised at an arbitrary point could land between the optimiser's in-place update
  and the step counter, saving weights one step ahead of the position they claim.
- Once a stop is saved and its exit status chosen, a further Ctrl+C must not change it. Python
  puts SIG_DFL back in place of every Python-level handler as it shuts down, *before* it tears
  down the modules (torch, the DataLoader's workers), so an impatient second Ctrl+C landing in
  that teardown killed the process by SIGINT (exit -2 instead of 130). A fast CPU saves within
  0.1 s of the first Ctrl+C and meets it there; :meth:`StopSignals.ignore_until_exit` closes it.
"""

from __future__ import annotations

import contextlib
import multiprocessing.resource_sharer
import os
import signal
import threading
from collections.abc import Iterator
from types import FrameType
from typing import Any

STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)


def _receiving_from_a_worker(frame: FrameType | None) -> bool:
    """Whether the main thread is fetching a batch's shared memory from a DataLoader worker
    (torch passes each tensor's file descriptor through multiprocessing's resource sharer)."""
    while frame is not None:
        if frame.f_code.co_filename == multiprocessing.resource_sharer.__file__:
            return True
        frame = frame.f_back
    return False


def _worker_exited(signum: int, frame: FrameType | None) -> None:
    """SIGCHLD once stopping: a worker's end is expected."""


class StopRequested(KeyboardInterrupt):
    """A stop signal arrived; a KeyboardInterrupt so that code catching Ctrl+C catches it too."""

    def __init__(self, signum: int) -> None:
        super().__init__(signal.Signals(signum).name)
        self.signum = signum

    @property
    def exit_status(self) -> int:
        """The shell's convention, 128 + the signal's number: 130 for Ctrl+C, 143 for SIGTERM."""
        return 128 + self.signum

    @property
    def cause(self) -> str:
        """What the run's last line names: Ctrl+C for SIGINT, else the signal's name."""
        name = signal.Signals(self.signum).name
        return f"Ctrl+C ({name})" if self.signum == signal.SIGINT else name


class StopSignals:
    """While installed (main thread only), SIGINT and SIGTERM raise :class:`StopRequested` at
    once, except inside :meth:`atomic` sections, which finish first. A repeated signal once
    stopping only says so on stderr: the checkpoint being written must not be cut short."""

    def __init__(self, prog: str = "hfpose-train") -> None:
        self.prog = prog
        self.requested: int | None = None
        self._atomic_depth = 0
        self._retry_pending = False
        self._previous: dict[int, Any] = {}

    @property
    def installed(self) -> bool:
        return bool(self._previous)

    def install(self) -> None:
        if self.installed or threading.current_thread() is not threading.main_thread():
            return
        self.requested = None
        self._retry_pending = False
        for signum in STOP_SIGNALS:
            self._previous[signum] = signal.signal(signum, self._handle)

    def uninstall(self) -> None:
        for signum, handler in self._previous.items():
            signal.signal(signum, handler)
        self._previous = {}

    def ignore_until_exit(self) -> None:
        """The process is exiting with its stop's status: ignore SIGINT and SIGTERM from here
        to its end. SIG_IGN, unlike a Python handler, survives the interpreter's shutdown."""
        if threading.current_thread() is not threading.main_thread():
            return
        for signum in STOP_SIGNALS:
            signal.signal(signum, signal.SIG_IGN)
        self._previous = {}

    @contextlib.contextmanager
    def installed_for(self) -> Iterator[StopSignals]:
        """Installed for the block unless a caller (``hfpose-train``) installed them already."""
        owner = not self.installed
        self.install()
        try:
            yield self
        finally:
            if owner:
                self.uninstall()

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        if self.requested is not None and not self._retry_pending:
            os.write(2, f"{self.prog}: already stopping, one moment\n".encode())  # no reentrant I/O
            return
        self._retry_pending = False
        if self.requested is None:
            self.requested = signum
            # DataLoader workers die of the same signal: their exit must not raise in the middle
            # of the save (the loader notices dead workers itself when it next waits, which a
            # stopping run never does). A handler, not SIG_DFL: Python reports a SIGCHLD that
            # arrived under torch's handler and finds none ("ignored due to race condition").
            signal.signal(signal.SIGCHLD, _worker_exited)
        if self._atomic_depth:
            return
        if _receiving_from_a_worker(frame):
            # cut, the hand-over of a batch's shared memory left the worker printing a
            # ConnectionResetError traceback (1 stop in 25 measured): raise once it is through
            self._retry_pending = True
            threading.Timer(0.01, self._signal_again).start()
            return
        raise StopRequested(self.requested)

    def _signal_again(self) -> None:
        if self._retry_pending and self.installed and self.requested is not None:
            signal.pthread_kill(threading.main_thread().ident, self.requested)

    @contextlib.contextmanager
    def atomic(self) -> Iterator[None]:
        """A section a stop must not cut (the optimiser update and its bookkeeping, a save)."""
        self._atomic_depth += 1
        try:
            yield
        finally:
            self._atomic_depth -= 1
        if self.requested is not None and not self._atomic_depth:
            raise StopRequested(self.requested)
