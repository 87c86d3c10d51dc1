"""Which store keeps a batch's state: SQLite in its home folder, or a PostgreSQL database.

``--state URL`` (or ``LUMOZBATCH_STATE``) on every command that reads or writes a batch
(SPEC section 9). Without it, the state is ``<home>/.lumozbatch/state.db`` and the lock a file
beside it. With ``postgresql://...``, every batch of the database is keyed by its name and its
API, and the lock is a PostgreSQL advisory lock, so a person and CI share one batch.

A reader that does not know the API (``plan``, ``status``, ``gallery`` send nothing, so they
resolve no target) finds the batch by its name: one batch of that name is it; several (the
same name run against two APIs) are told apart by ``LUMOZ_BASE_URL`` (or its default), else
the error lists them.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from lumozbatch.errors import ConfigError, LedgerNotFound, UsageError

__all__ = ["StateChoice", "state_choice"]

ENV = "LUMOZBATCH_STATE"
_SCHEMES = ("postgresql://", "postgres://")
_PASSWORD = re.compile(r"(://[^:/@]*):[^@/]*@")


def without_password(url: str) -> str:
    """``url`` with the password of its user part (if any) replaced, for messages."""
    return _PASSWORD.sub(r"\1:***@", url)


@dataclass(frozen=True, slots=True)
class StateChoice:
    """Where the state of a batch is: ``url`` None is SQLite in the batch's home folder."""

    url: str | None = None

    @property
    def shared(self) -> bool:
        return self.url is not None

    @property
    def shown(self) -> str:
        return without_password(self.url) if self.url else "state.db"

    def open_store(self, home: Path, *, name: str | None, api: str | None, create: bool) -> Any:
        """The batch's store, locked for writing (``apply``/``resume``). SQLite: in ``home``.
        PostgreSQL: the batch ``name`` of ``api`` (an unknown ``api`` is looked up by name)."""
        if self.url is None:
            from lumozbatch.shell.sqlite_store import SqliteStore

            return SqliteStore.open(home, create=create)
        pg = _pg()
        name, api = self._key(name, api, create=create)
        return pg.PgStore.open(self.url, name=name, api=api, create=create)

    def open_reads(self, home: Path, *, name: str | None, api: str | None = None) -> Any:
        """A read-only, lock-free snapshot (``status``, ``plan``, ``gallery``); close it.
        ``LedgerNotFound`` (exit 2) when there is no such batch."""
        if self.url is None:
            from lumozbatch.shell.state import open_reads

            return open_reads(home)
        name, api = self._key(name, api, create=False)
        reads = _pg().PgStore.open_snapshot(self.url, name=name, api=api)
        if reads.batch is None:
            reads.close()
            raise self.not_found(name)
        return reads

    def has_batch(self, home: Path, *, name: str | None, api: str | None = None) -> bool:
        if self.url is None:
            from lumozbatch.shell.state import has_batch_files

            return has_batch_files(home)
        return bool(self._matching(name, api))

    def running(self, home: Path, *, name: str | None, api: str | None = None) -> int | str | None:
        """Who holds the batch's lock now (for ``status``): the pid of a run on this machine,
        a description of one on any machine (shared state), or None; never takes the lock."""
        if self.url is None:
            from lumozbatch.shell.lockfile import run_in_progress

            return run_in_progress(home)
        if name is None:
            return None
        if api is None:  # the batch's API unknown: look it up by name (one more round trip)
            matching = self._matching(name, None)
            if len(matching) != 1:
                return None
            api = matching[0][1]
        pg = _pg()
        return pg.describe_holder(pg.holder(self.url, name=name, api=api))

    def not_found(self, name: str | None) -> LedgerNotFound:
        return LedgerNotFound(
            f"no batch {name!r} in {self.shown}: nothing has been run there yet",
            details=["run `lumozbatch apply MANIFEST --state ...` first (or check the --state URL and the name)"],
        )

    # -- PostgreSQL: which batch --------------------------------------------------------

    def _matching(self, name: str | None, api: str | None) -> list[tuple[str, str]]:
        assert self.url is not None
        return [(n, a) for n, a in _pg().list_batches(self.url) if n == name and (api is None or a == api)]

    def _key(self, name: str | None, api: str | None, *, create: bool) -> tuple[str, str]:
        if name is None:
            raise UsageError("a batch kept in PostgreSQL is found by its name: give its MANIFEST")
        if api is not None:
            return name, api
        matching = self._matching(name, None)
        if not matching:
            raise self.not_found(name)
        if len(matching) == 1:
            return matching[0]
        from lumozbatch.shell.api import DEFAULT_BASE_URL, normalize_base_url

        try:
            default = normalize_base_url(os.environ.get("LUMOZ_BASE_URL") or DEFAULT_BASE_URL)
        except ConfigError:
            default = None
        for pair in matching:
            if pair[1] == default:
                return pair
        apis = ", ".join(a for _, a in matching)
        raise UsageError(
            f"{self.shown} holds {len(matching)} batches named {name!r} (APIs: {apis})",
            details=["set LUMOZ_BASE_URL to the API of the one you mean"],
        )


def state_choice(given: str | None, environ: Mapping[str, str] | None = None) -> StateChoice:
    """``--state`` as given, else ``LUMOZBATCH_STATE``, else SQLite; a URL that is not
    PostgreSQL's is a usage error (exit 2), said before anything is opened."""
    env = os.environ if environ is None else environ
    url = given if given is not None else (env.get(ENV) or None)
    if url is None:
        return StateChoice()
    if not url.startswith(_SCHEMES):
        source = "--state" if given is not None else ENV
        raise UsageError(
            f"{source}: expected a postgresql://USER@HOST/DATABASE URL, got {without_password(url)!r}",
            details=["without it, a batch's state is kept in .lumozbatch/state.db beside its outputs"],
        )
    return StateChoice(url)


def _pg() -> Any:
    try:
        from lumozbatch.shell import pg_store
    except ImportError as exc:
        raise ConfigError(
            f"--state postgresql:// needs psycopg ({exc.name or exc}): pip install 'lumozbatch[postgres]'"
        ) from None
    return pg_store

