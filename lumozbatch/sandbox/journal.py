"""The sandbox's memory across restarts: one JSON line per generation it created.

A sandbox started anew (``apply --sandbox`` after Ctrl-C or kill -9) would otherwise not know
the request ids that the batch's ledger holds, and every job left in flight would come back
``not_found``. With a journal it answers ``/check`` for them as the real service would. Times
are stored as wall-clock seconds and mapped back onto the new process's monotonic clock.
"""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path
from typing import IO

from lumozbatch.sandbox.jobs import Job

__all__ = ["Journal"]

_VOLATILE = ("created_at", "output", "expires_at")  # per-process; outputs are reissued on check


class Journal:
    """Appends each created job to ``path`` and reads them back at start."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self._file: IO[str] | None = None

    def load(self, *, now: float, wall_now: float) -> list[Job]:
        """The jobs recorded so far (a torn or unreadable line is skipped: it is a sandbox)."""
        jobs = []
        try:
            lines = self.path.read_text(encoding="utf-8").splitlines()
        except FileNotFoundError:
            return []
        for line in lines:
            try:
                raw = json.loads(line)
                created_wall = float(raw.pop("created_wall"))
                jobs.append(Job(**raw, created_at=now - (wall_now - created_wall)))
            except (ValueError, TypeError, KeyError):
                continue
        return jobs

    def append(self, job: Job, *, now: float, wall_now: float) -> None:
        if self._file is None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._file = self.path.open("a", encoding="utf-8")
        record = {k: v for k, v in asdict(job).items() if k not in _VOLATILE}
        record["created_wall"] = wall_now - (now - job.created_at)
        self._file.write(json.dumps(record, separators=(",", ":")) + "\n")
        self._file.flush()  # in the OS's hands: survives the process being killed

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None
