"""Python's thread switch interval, shortened while a store's writer thread may commit.

A group commit runs its SQL in a worker thread while trio's thread folds the next appends.
The worker gives up the GIL inside each SQLite call and must take it back between them; a
thread waiting for the GIL asks the holder to drop it only after the switch interval (5 ms by
default), longer than trio's thread folds a whole group, so the two threads took turns instead
of overlapping. Shortened, the worker waits a fraction of a millisecond per statement.
"""

from __future__ import annotations

import sys

__all__ = ["WRITING_INTERVAL_S", "writer_closed", "writer_opened"]

#: the interval while a writer is open (Python's default is 0.005 s)
WRITING_INTERVAL_S = 0.0001

_open = 0
_saved: float | None = None


def writer_opened() -> None:
    """A store that commits in a worker thread opened (pair with :func:`writer_closed`)."""
    global _open, _saved
    if _open == 0:
        _saved = sys.getswitchinterval()
        sys.setswitchinterval(min(_saved, WRITING_INTERVAL_S))
    _open += 1


def writer_closed() -> None:
    """The store closed: once none is open, the interval is what it was."""
    global _open, _saved
    _open -= 1
    if _open == 0 and _saved is not None:
        sys.setswitchinterval(_saved)
        _saved = None
