"""``--out s3://BUCKET/PREFIX``: a batch's outputs in S3-compatible object storage.

The layout under ``PREFIX/`` is the local folder's (:mod:`lumozbatch.shell.outputs`): every
paid output kept once at ``.lumozbatch/objects/<id[:2]>/<id><ext>``, and each name a
server-side copy of its object (S3 has no links). A name is ours when its ETag and size are
its object's. So re-pointing a name copies another object over it, reverting copies the
first one back (no request to the API), and a key at a name that is none of the batch's
objects is copied to ``.lumozbatch/displaced/`` before it is replaced.

A download is staged in a temporary folder under the batch's local state home (never the
working folder), uploaded in one PUT (atomic: no half object, no multipart leftovers) and
counted kept only when the store's answer carries the file's MD5 as its ETag (the store
holds those bytes); then the temporary file goes.
``results.jsonl`` (no append in S3) is spooled to a local file and the object rewritten
every ``RESULTS_FLUSH_SECONDS`` and at the end of a run.

Configured by the standard AWS variables (``AWS_ENDPOINT_URL``, ``AWS_ACCESS_KEY_ID``,
``AWS_SECRET_ACCESS_KEY``, ``AWS_REGION``) through obstore (Rust's ``object_store``; its
sync API releases the GIL, so trio's worker threads upload in parallel; see
bench/s3_bench.py for why it, not boto3): the client holds AWS credentials only, never the
API key. Every call blocks: run them in worker threads.
"""

from __future__ import annotations

import hashlib
import os
import re
import secrets
import shutil
import tempfile
import threading
import time
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING, Any

from lumozbatch.errors import ConfigError
from lumozbatch.shell.paths import safe_target
from lumozbatch.shell.outputs import DISPLACED_DIR, GALLERY_FILE, Health, KnownOutput, checked_in_threads, object_stem
from lumozbatch.shell.results import RESULTS_FILE, encode_row, latest_rows, read_identity_keys

if TYPE_CHECKING:  # httpx comes with download: status, which only reads, never loads it
    from lumozbatch.shell.download import Downloaded

__all__ = ["RESULTS_FLUSH_SECONDS", "ObjectStoreError", "S3Outputs", "parse_s3_url"]

#: results.jsonl is rewritten in the bucket at most this often during a run (and at its end)
RESULTS_FLUSH_SECONDS = 15.0
_STAGING = ".staging-"
_CONFIRMED_KEPT = 4096
_HEAD_THREADS = 16  # a bucket's round trips in flight when every output is checked
_TYPES = {".png": "image/png", ".jpg": "image/jpeg", ".jpeg": "image/jpeg", ".webp": "image/webp"}
_INSTALL = "pip install 'lumozbatch[s3]'"


class ObjectStoreError(OSError):
    """The object store refused or did not answer (an ``OSError``: the run stops as it does
    for a local disk that refuses a write, and the paid job stays to be kept next run)."""


def parse_s3_url(url: str) -> tuple[str, str]:
    """``s3://BUCKET/PREFIX`` -> (bucket, prefix without slashes at its ends)."""
    rest = url.removeprefix("s3://")
    bucket, _, prefix = rest.partition("/")
    prefix = prefix.strip("/")
    if not bucket or (prefix and not _safe(prefix)):
        raise ConfigError(f"--out {url}: expected s3://BUCKET or s3://BUCKET/PREFIX")
    return bucket, prefix


def _safe(rel: str) -> bool:
    try:
        safe_target(Path("."), rel)
    except ValueError:
        return False
    return True


@dataclass(frozen=True, slots=True)
class _Head:
    size: int
    etag: str


class S3Outputs:
    """A batch's outputs under ``s3://bucket/prefix`` (see the module docstring)."""

    def __init__(self, store: Any, bucket: str, prefix: str, *, state_home: Path) -> None:
        self.store = store  # an obstore S3Store rooted at the prefix
        self.bucket = bucket
        self.prefix = prefix
        self.state_home = Path(state_home)
        self.shown = f"s3://{bucket}/{prefix}" if prefix else f"s3://{bucket}"
        self._staging: Path | None = None
        self._results = _SpooledResults(self)
        # objects just kept, as the store confirmed them: placing one needs no HEAD of it
        # (a quarter of a job's requests); bounded, as a retired job's object is never placed
        self._confirmed: dict[str, _Head] = {}
        self._confirmed_lock = threading.Lock()

    @classmethod
    def open(cls, url: str, *, state_home: Path, check: bool = True) -> S3Outputs:
        """Connect; with ``check``, see with one tiny write that the bucket takes objects: a
        wrong bucket, key or endpoint is a ``ConfigError`` before anything is sent to the API."""
        bucket, prefix = parse_s3_url(url)
        outputs = cls(_store(bucket, prefix), bucket, prefix, state_home=state_home)
        if check:
            outputs._check_writable()
        return outputs

    # -- keys ---------------------------------------------------------------------------

    def url(self, rel: str) -> str:
        return f"{self.shown}/{_checked(rel)}"

    def _check_writable(self) -> None:
        obstore = _obstore()
        probe = f".lumozbatch/probe-{secrets.token_hex(4)}"
        try:
            obstore.put(self.store, probe, b"", use_multipart=False)
            obstore.delete(self.store, probe)
        except (obstore.exceptions.BaseError, OSError) as exc:
            raise ConfigError(
                f"cannot write to {self.shown}: {_describe(exc)}",
                details=["check AWS_ENDPOINT_URL, AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_REGION and the bucket; nothing was sent to the API"],
            ) from None

    # -- keeping ------------------------------------------------------------------------

    @property
    def staging(self) -> Path:
        """A temporary folder of this run under the state home (swept by the next run if
        this one is killed)."""
        if self._staging is None:
            self.state_home.mkdir(parents=True, exist_ok=True)
            self._staging = Path(tempfile.mkdtemp(prefix=_STAGING, dir=self.state_home))
        return self._staging

    def keep(self, got: Downloaded) -> None:
        """Upload with its MD5; kept once the store's ETag is that MD5 (then the staged
        file is deleted). Raises ``ObjectStoreError`` otherwise (the file is deleted too:
        the next run downloads it again)."""
        try:
            data = got.path.read_bytes()
            md5 = hashlib.md5(data, usedforsecurity=False).hexdigest()
            etag = self._put(got.rel, data, _TYPES.get(got.ext, "application/octet-stream"))
            if etag != md5:
                raise ObjectStoreError(f"{self.url(got.rel)}: the store did not confirm the upload (ETag {etag!r}, sent MD5 {md5})")
            with self._confirmed_lock:
                self._confirmed[got.rel] = _Head(size=len(data), etag=md5)
                while len(self._confirmed) > _CONFIRMED_KEPT:
                    del self._confirmed[next(iter(self._confirmed))]
        finally:
            got.path.unlink(missing_ok=True)

    def seal(self, object_rel: str) -> None:
        """Nothing to do: objects have no mode bits, and a kept object's key is written only
        by ``keep`` of its own identity (again only when a crash left it unrecorded, as the
        local folder's rename does)."""

    def adopt(self, name_rel: str, identity: str, known: KnownOutput | None = None) -> str | None:
        """Keep the object at ``name_rel`` as ``identity``'s (its kept copy was deleted);
        None when the name is gone or does not hold the recorded output."""
        named = self._head(name_rel)
        if named is None or (known is not None and not self._matches(name_rel, named, known)):
            return None
        object_rel = object_stem(identity) + "".join(PurePosixPath(name_rel).suffixes[-1:])
        kept = self._head(object_rel)
        if kept is None:
            self._copy(name_rel, object_rel)
        elif kept != named:
            return None  # another output is kept under that identity: never replaced
        return object_rel

    def sweep_partial_downloads(self) -> int:
        """Delete the staging folders a killed run left (its half-downloaded files); returns
        how many. The bucket holds nothing half done: every upload is one atomic PUT. Call it
        holding the batch's lock."""
        swept = 0
        if self.state_home.is_dir():
            for entry in self.state_home.iterdir():
                if entry.name.startswith(_STAGING) and entry != self._staging:
                    shutil.rmtree(entry, ignore_errors=True)
                    swept += 1
        return swept

    # -- the named keys -----------------------------------------------------------------

    def health(self, object_rel: str, name_rel: str, recorded_bytes: int | None) -> Health:
        kept, named = self._head(object_rel), self._head(name_rel)
        if kept is None:
            return Health.LOST if named is None else Health.OBJECT_MISSING
        if named is None:
            return Health.NAME_MISSING
        if named == kept and kept.size == (recorded_bytes or kept.size):
            return Health.OK
        return Health.NAME_TAKEN

    def health_many(self, checks: Sequence[tuple[str, str, int | None]]) -> list[Health]:
        # two HEAD requests a check, a round trip each: many in flight at once
        return checked_in_threads(self.health, checks, _HEAD_THREADS)

    def place(self, object_rel: str, name_rel: str, others: Iterable[KnownOutput] = ()) -> str | None:
        """Make ``name_rel`` a copy of ``object_rel``; a key there that is none of ``others``
        (the batch's outputs that held the name) is copied aside first: returns where."""
        with self._confirmed_lock:
            kept = self._confirmed.pop(object_rel, None)
        kept = kept or self._head(object_rel)
        if kept is None:
            raise ObjectStoreError(f"{self.url(object_rel)} is not in the store")
        named = self._head(name_rel)
        if named == kept:
            return None
        displaced = None
        if named is not None and not any(self._head(o.object) == named for o in others):
            stamp = time.strftime("%Y%m%dT%H%M%S", time.gmtime())
            displaced = f"{DISPLACED_DIR}/{stamp}-{secrets.token_hex(3)}/{name_rel}"
            self._copy(name_rel, displaced)
        self._copy(object_rel, name_rel)
        return displaced

    # -- results.jsonl and index.html ---------------------------------------------------

    def append_result(self, row: dict[str, Any]) -> None:
        self._results.append(encode_row(row))

    def read_results(self) -> list[dict[str, Any]]:
        return self._results.read()

    def result_identities(self) -> set[int]:
        return self._results.identities()

    def flush_results(self) -> None:
        self._results.flush()

    def write_index(self, html: str) -> str:
        self._put(GALLERY_FILE, html.encode(), "text/html; charset=utf-8")
        return self.url(GALLERY_FILE)

    def close(self) -> None:
        """Remove this run's staging folder (the results spool with it: the bucket has it)."""
        if self._staging is not None:
            shutil.rmtree(self._staging, ignore_errors=True)
            self._staging = None
            self._results = _SpooledResults(self)

    # -- S3 calls (relative keys: the store is rooted at the prefix) ----------------------

    def _put(self, rel: str, data: bytes | Path, content_type: str) -> str:
        """One PUT; returns the ETag the store answered (without quotes)."""
        obstore = _obstore()
        with self._errors(f"upload {rel}"):
            answer = obstore.put(
                self.store, _checked(rel), data, attributes={"Content-Type": content_type}, use_multipart=False
            )
        return (answer.get("e_tag") or "").strip('"')

    def _found(self, what: str, call: Any, rel: str) -> Any:
        """``call(store, rel)``'s answer, or None when there is no object at ``rel``."""
        obstore = _obstore()
        with self._errors(f"{what} {rel}"):
            try:
                return call(self.store, _checked(rel))
            except (FileNotFoundError, obstore.exceptions.NotFoundError):  # obstore raises the former
                return None

    def _head(self, rel: str) -> _Head | None:
        meta = self._found("look at", _obstore().head, rel)
        return None if meta is None else _Head(size=meta["size"], etag=(meta["e_tag"] or "").strip('"'))

    def _copy(self, source_rel: str, target_rel: str) -> None:
        """A server-side copy (type and bytes as the source's; nothing passes through here)."""
        with self._errors(f"copy {source_rel} to {target_rel}"):
            _obstore().copy(self.store, _checked(source_rel), _checked(target_rel), overwrite=True)

    def _chunks(self, rel: str) -> Iterator[bytes] | None:
        """The object's bytes in chunks, or None when there is none."""
        answer = self._found("read", _obstore().get, rel)
        return None if answer is None else (bytes(chunk) for chunk in answer.stream(1 << 20))

    def _matches(self, rel: str, head: _Head, known: KnownOutput) -> bool:
        if known.bytes is not None and head.size != known.bytes:
            return False
        if known.sha256 is None:
            return True
        digest = hashlib.sha256()
        with self._errors(f"read {rel}"):
            for chunk in self._chunks(rel) or ():
                digest.update(chunk)
        return digest.hexdigest() == known.sha256

    def get_to(self, rel: str, path: Path) -> bool:
        """Copy the object at ``rel`` into the local ``path``; False when there is none."""
        chunks = self._chunks(rel)
        if chunks is None:
            return False
        with self._errors(f"read {rel}"), open(path, "wb") as fh:
            for chunk in chunks:
                fh.write(chunk)
        return True

    @contextmanager
    def _errors(self, what: str) -> Iterator[None]:
        """obstore's errors as one ``ObjectStoreError`` line naming the store."""
        try:
            yield
        except ObjectStoreError:
            raise
        except (_obstore().exceptions.BaseError, OSError) as exc:  # obstore raises OSErrors too
            raise ObjectStoreError(f"{self.shown}: cannot {what}: {_describe(exc)}") from exc


class _SpooledResults:
    """results.jsonl as a local spool (the bucket's copy, then the rows of this run); the
    object is rewritten from it on a timer and by ``flush``. Worker threads append."""

    def __init__(self, outputs: S3Outputs) -> None:
        self._outputs = outputs
        self._lock = threading.Lock()
        self._path: Path | None = None
        self._dirty = False
        self._flushed_at = time.monotonic()

    def _spool(self) -> Path:
        if self._path is None:
            path = self._outputs.staging / RESULTS_FILE
            if self._outputs.get_to(RESULTS_FILE, path):
                _cut_torn_tail(path)
            else:
                path.touch()
            self._path = path
        return self._path

    def append(self, line: bytes) -> None:
        with self._lock:
            with open(self._spool(), "ab") as fh:
                fh.write(line)
            self._dirty = True
            if time.monotonic() - self._flushed_at >= RESULTS_FLUSH_SECONDS:
                self._flush_locked()

    def read(self) -> list[dict[str, Any]]:
        """Every row."""
        with self._lock:
            data = self._readable_spool().read_bytes()
            return latest_rows(data, file=self._outputs.url(RESULTS_FILE))

    def identities(self) -> set[int]:
        """``read``'s rows as identity keys, streamed from the spool (flat at a million)."""
        with self._lock:
            return read_identity_keys(self._readable_spool())

    def _readable_spool(self) -> Path:
        """The spool (a run reads it first, before it sends anything: a store that cannot be
        read then is a ``ConfigError``, one line, not a crash)."""
        try:
            return self._spool()
        except ObjectStoreError as exc:
            raise ConfigError(str(exc), details=["nothing was sent to the API; check the object store, then run again"]) from None

    def flush(self) -> None:
        with self._lock:
            self._flush_locked()

    def _flush_locked(self) -> None:
        self._flushed_at = time.monotonic()
        if self._dirty and self._path is not None:
            self._outputs._put(RESULTS_FILE, self._path, "application/x-ndjson")
            self._dirty = False


def _cut_torn_tail(path: Path) -> None:
    data = path.read_bytes()
    if data and not data.endswith(b"\n"):
        with open(path, "r+b") as fh:
            fh.truncate(data.rfind(b"\n") + 1)


def _checked(rel: str) -> str:
    if not _safe(rel):
        raise ValueError(f"output name {rel!r} would leave the output prefix")
    return rel


def _obstore() -> Any:
    try:
        import obstore
        import obstore.exceptions
    except ImportError:
        raise ConfigError(f"--out s3://... needs an S3 client: {_INSTALL}") from None
    return obstore


def _store(bucket: str, prefix: str) -> Any:
    """An S3Store from the standard AWS variables (obstore reads them itself)."""
    _obstore()
    from obstore.store import S3Store

    endpoint = os.environ.get("AWS_ENDPOINT_URL_S3") or os.environ.get("AWS_ENDPOINT_URL") or ""
    client = {
        "connect_timeout": timedelta(seconds=5),
        "timeout": timedelta(seconds=120),
        # a plain-http endpoint (a local MinIO, moto) is the user's explicit choice
        "allow_http": endpoint.startswith("http://"),
    }
    retry = {"max_retries": 3, "retry_timeout": timedelta(seconds=20), "backoff": {"init_backoff": timedelta(milliseconds=100)}}
    try:
        return S3Store(bucket, prefix=prefix or None, client_options=client, retry_config=retry)
    except Exception as exc:  # noqa: BLE001 - a bad region or endpoint value, told in one line
        raise ConfigError(f"cannot set up the S3 client for s3://{bucket}: {_describe(exc)}") from None


def _describe(exc: BaseException) -> str:
    """One line: the store's status and error code when it answered (obstore's message is
    a multi-line debug dump), else the first line of the client's."""
    text = str(exc)
    status = re.search(r"status code: (\d{3}[^:]*)", text)
    code = re.search(r"<Code>([^<]+)</Code>", text)
    message = re.search(r"<Message>([^<]+)</Message>", text)
    if status is not None:
        said = ": ".join(m.group(1) for m in (code, message) if m is not None)
        return f"HTTP {status.group(1).strip()}" + (f" ({said})" if said else "")
    first = text.strip().splitlines()
    return " ".join(first[0].split()) if first else type(exc).__name__
