"""Two malloc arenas for the app's process (glibc), so what a finished run freed is used again.

Each run starts threads of its own (its stages, ONNX Runtime's pools, the decoder's), and glibc
gives new threads arenas of their own, up to eight per core, in a new order each run. A thread
arena hands freed memory back to the system only from the top of its heap, past a trim
threshold that glibc raises to 64 MiB once it has unmapped large blocks (the first run's end
does), so each arena keeps the most that any run's threads ever took from it; ``malloc_trim``
leaves those tops alone. The app reopening ``opencv_vtest.avi`` grew from 509 to 783 MiB in
30 minutes while malloc had a steady ~170 MiB in use: the rest was the free tops of sixteen
arenas. Sharing two arenas, each run takes what the previous one freed and the resident memory
stays level, at a frame rate within the noise of the unchanged app's on two cores. Fixed low
thresholds level it too, but hand back and fault in again ~12 MB a frame (~10% more CPU).
Figures: docs/reliability.md, "GUI soak".
"""

from __future__ import annotations

import ctypes
import os
from typing import NamedTuple

ARENAS = 2
M_ARENA_MAX = -8  # mallopt's parameter number in glibc's malloc.h


class MallocHeap(NamedTuple):
    """glibc's malloc, in bytes: what its arenas hold from the system and, of that, what is in
    use (the rest is free memory kept for later); blocks mapped apart are not in arenas."""

    held: int
    in_use: int
    mapped: int


class _Mallinfo2(ctypes.Structure):
    _fields_ = [
        (name, ctypes.c_size_t)
        for name in ("arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks", "fsmblks",
                     "uordblks", "fordblks", "keepcost")
    ]  # fmt: skip


def glibc_library() -> ctypes.CDLL | None:
    """The C library when it is glibc, else None (macOS, Windows, musl: other allocators)."""
    try:
        if not (os.confstr("CS_GNU_LIBC_VERSION") or "").startswith("glibc"):
            return None
        return ctypes.CDLL(None)
    except (AttributeError, ValueError, OSError):  # no confstr, no such name, no library
        return None


def cap_malloc_arenas() -> bool:
    """Cap glibc's malloc at :data:`ARENAS` arenas; True when set.

    Call it before the threads start: glibc fixes its limit for good once more than eight
    arenas exist, and arenas made before the cap stay. Nothing happens where it does not
    apply (macOS, Windows, musl) or where the environment already chose (``MALLOC_ARENA_MAX``,
    ``glibc.malloc.arena_max`` in ``GLIBC_TUNABLES``).
    """
    if "MALLOC_ARENA_MAX" in os.environ or "arena_max" in os.environ.get("GLIBC_TUNABLES", ""):
        return False
    libc = glibc_library()
    return libc is not None and libc.mallopt(M_ARENA_MAX, ARENAS) == 1


def malloc_heap() -> MallocHeap | None:
    """glibc's own figures (``mallinfo2``, glibc 2.33 on); None elsewhere.

    Resident memory that grows while ``in_use`` stays level is memory malloc keeps, not a leak.
    """
    libc = glibc_library()
    mallinfo2 = getattr(libc, "mallinfo2", None)
    if mallinfo2 is None:
        return None
    mallinfo2.restype = _Mallinfo2
    info = mallinfo2()
    return MallocHeap(held=info.arena, in_use=info.uordblks, mapped=info.hblkhd)
