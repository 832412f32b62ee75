"""A run's stop flag and a file's pause, step and seek, shared by the caller and the stages.

The caller's thread (a GUI, the CLI) asks; the stage threads look at it between frames. One
condition guards it all, so a stage blocked on a pause wakes at once for a step, a seek or a
stop, and otherwise looks at the stop flag every ``POLL_S`` (every thread stops within a second).
:func:`stop_signals_held` keeps a Ctrl+C or SIGTERM from cutting the start of a run's threads in
half.
"""

from __future__ import annotations

import contextlib
import signal
import threading
from collections.abc import Iterator
from types import FrameType

POLL_S = 0.05  # how often a blocked stage looks at the stop flag (stop within a second)


class RunControl:
    """Stop, pause, step and seek requests for one run (thread-safe)."""

    def __init__(self) -> None:
        self._stop = threading.Event()
        self._condition = threading.Condition()
        self._paused = False
        self._steps = 0
        self._seek_to: float | None = None

    @property
    def stopping(self) -> bool:
        return self._stop.is_set()

    def stop(self) -> None:
        """Every stage ends at its next look at the flag; a paused one wakes at once."""
        self._stop.set()
        with self._condition:
            self._condition.notify_all()

    @property
    def paused(self) -> bool:
        return self._paused

    def pause(self) -> None:
        with self._condition:
            self._paused = True

    def resume(self) -> None:
        with self._condition:
            self._paused = False
            self._steps = 0
            self._condition.notify_all()

    def step(self) -> None:
        """While paused, let exactly one more frame through."""
        with self._condition:
            self._steps += 1
            self._condition.notify_all()

    def seek(self, seconds: float) -> None:
        """Ask the source to jump to ``seconds`` before its next frame (paused or not)."""
        with self._condition:
            self._seek_to = float(seconds)
            self._condition.notify_all()

    def take_seek(self) -> float | None:
        """The position asked for since the last call, if any (the source's thread)."""
        with self._condition:
            seek_to, self._seek_to = self._seek_to, None
            return seek_to

    def wait_for_turn(self) -> bool:
        """Block while paused (unless a step or a seek is pending); False when stopping."""
        with self._condition:
            while self._paused and self._steps == 0 and self._seek_to is None:
                if self._stop.is_set():
                    return False
                self._condition.wait(POLL_S)
            if self._paused and self._steps > 0:
                self._steps -= 1
            return not self._stop.is_set()


@contextlib.contextmanager
def stop_signals_held() -> Iterator[None]:
    """Hold Ctrl+C (SIGINT) and SIGTERM for the block, then hand the first that came to the
    handler that was in place (which raises KeyboardInterrupt, or the CLI's stop).

    Only where the main thread runs the block under Python-level handlers: signals interrupt
    nothing else. Raised between two of a run's thread starts, a stop left the run half
    started, with nobody to stop it and its outputs never closed.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    held: list[tuple[int, FrameType | None]] = []
    replaced = {}
    for signum in (signal.SIGINT, signal.SIGTERM):
        if callable(signal.getsignal(signum)):
            replaced[signum] = signal.signal(signum, lambda n, f: held.append((n, f)))
    try:
        yield
    finally:
        for signum, handler in replaced.items():
            signal.signal(signum, handler)
    if held:
        signum, frame = held[0]
        replaced[signum](signum, frame)
