"""A batch's lock file (``.lumozbatch/lock``): taken by the one run that may write the batch,
and read, never taken, by readers that want to know whether a run is live. No trio here:
``status`` imports this.
"""

from __future__ import annotations

import fcntl
import os
from pathlib import Path

from lumozbatch.core.layout import STATE_DIR
from lumozbatch.errors import LockHeld

__all__ = ["LOCK_FILE", "run_in_progress", "take_lock"]

LOCK_FILE = "lock"


def take_lock(path: Path, out_dir: Path) -> int:
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        try:
            holder = os.pread(fd, 32, 0).decode("ascii", "replace").strip()
        except OSError:
            holder = ""
        os.close(fd)
        who = f" (pid {holder})" if holder.isdigit() else ""
        raise LockHeld(
            f"another lumozbatch run{who} is working on the batch in {out_dir}",
            details=["wait for it to finish or stop it; its lock goes away the moment it exits"],
        ) from None
    except BaseException:
        os.close(fd)
        raise
    # who holds it, for the message above (informative only: the flock is the lock)
    os.ftruncate(fd, 0)
    os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
    return fd


def run_in_progress(out_dir: Path) -> int | None:
    """The pid of a live run holding this batch's lock, as far as can be told without
    touching the lock (taking it, even briefly, could make a starting run exit 4)."""
    try:
        text = (Path(out_dir) / STATE_DIR / LOCK_FILE).read_text(encoding="ascii", errors="replace")
    except OSError:
        return None
    text = text.strip()
    if not text.isdigit():
        return None  # a run that ended cleanly empties the file
    pid = int(text)
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return None  # killed without cleaning up: the kernel already dropped its lock
    except PermissionError:
        pass  # alive, someone else's
    except OverflowError:
        return None
    return pid
