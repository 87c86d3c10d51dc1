"""A big batch's outputs check, in a process of its own, beside the planning.

Before a run, every done job's name must still show its kept output (:mod:`lumozbatch.shell.reconcile`):
two ``stat`` calls and a row of the state a job, about 25 seconds of one core at a million
jobs, and all of it Python and system calls that threads do not overlap (measured: slower with
threads). Planning the same batch takes as long again, on one core too, and changes no file.
So for a big batch kept in a local folder with its ``state.db`` the check runs in a child
process while the parent plans: it reads a snapshot of the state (no lock; the parent holds
it) and prints the identities of the done jobs, retired ones included, whose files are not
as recorded, and of those ``results.jsonl`` has no row for (a crash between the two writes).
Planning makes no job done, touches no file and writes no row, so once the plan is recorded
the parent repairs just those jobs (``reconcile_outputs(..., suspects=)``, the ones the plan
left active and done) and writes just those rows.

Anything unexpected (the child fails, prints something else, finds more than
:data:`MAX_FOUND`) and the parent checks every job itself, as for a small batch.
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

__all__ = ["MAX_FOUND", "MIN_DONE", "Found", "OutputsCheck", "findings"]

#: done jobs from which a child process pays for itself (it starts in about half a second)
MIN_DONE = 20_000
#: findings the child lists one by one; beyond, the parent checks every job itself
MAX_FOUND = 10_000
_END, _SUSPECT, _ROWLESS = "end", "suspect", "rowless"


@dataclass(frozen=True, slots=True)
class Found:
    """What the check found (identities of done jobs, retired ones too)."""

    suspects: frozenset[str]  # whose kept object and name are not as recorded
    rowless: frozenset[str]  # that ``results.jsonl`` has no row for


def findings(out_dir: Path) -> Iterator[tuple[str, str]]:
    """``("suspect", identity)`` for each done job (retired too) in ``out_dir`` whose kept
    object and name are not as recorded (a name gone or showing another file, an object gone,
    never kept, or shown under another name), and ``("rowless", identity)`` for each that
    ``results.jsonl`` lacks; from a lock-free snapshot."""
    from lumozbatch.shell.done_outputs import done_outputs
    from lumozbatch.shell.outputs import Health, OutputTree
    from lumozbatch.shell.reconcile import looked_at
    from lumozbatch.shell.results import identity_key
    from lumozbatch.shell.sqlite_store import SqliteStore

    tree = OutputTree(out_dir)
    with SqliteStore.open_snapshot(out_dir, live=True) as store:
        rows = tree.result_identities()
        for job, name, health in looked_at(tree, done_outputs(store, retired=None)):
            if health is not Health.OK or job.file != name:
                yield _SUSPECT, job.identity
            if identity_key(job.identity) not in rows:
                yield _ROWLESS, job.identity


class OutputsCheck:
    """The parent's handle on a child running :func:`findings`."""

    def __init__(self, process: subprocess.Popen[str]) -> None:
        self._process = process

    @classmethod
    def start(cls, out_dir: Path) -> OutputsCheck:
        return cls(subprocess.Popen(
            [sys.executable, "-m", "lumozbatch.shell.outputs_check", str(Path(out_dir).resolve())],
            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
        ))

    def result(self) -> Found | None:
        """What the child found, once it is done; None when its answer cannot be used (the
        caller checks every job itself)."""
        out, _ = self._process.communicate()
        lines = out.splitlines()
        if self._process.returncode != 0 or not lines or lines[-1] != _END:
            return None
        found: dict[str, set[str]] = {_SUSPECT: set(), _ROWLESS: set()}
        for line in lines[:-1]:
            kind, _, identity = line.partition(" ")
            if kind not in found or not identity:
                return None
            found[kind].add(identity)
        return Found(frozenset(found[_SUSPECT]), frozenset(found[_ROWLESS]))

    def cancel(self) -> None:
        """Stop the child if it still runs (the run ended before its answer was needed)."""
        if self._process.returncode is None:
            self._process.kill()
            self._process.communicate()


def _main(out_dir: str) -> int:
    for count, (kind, identity) in enumerate(findings(Path(out_dir)), start=1):
        if count > MAX_FOUND:
            return 3  # too many to list: the parent looks at every job
        print(kind, identity)
    print(_END)
    return 0


if __name__ == "__main__":
    sys.exit(_main(sys.argv[1]))
