"""S3Outputs against a real S3-compatible server (moto's, in its own process): the rules of
the local output folder, held in a bucket."""

from __future__ import annotations

import hashlib
import sys
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from lumozbatch.core.jobstate import JobState
from lumozbatch.core.records import Accepted, Batch, Completed, Downloaded, Intent, Job, Retire
from lumozbatch.errors import ConfigError
from lumozbatch.shell.download import Downloaded as Fetched
from lumozbatch.shell.outputs import Health, KnownOutput, object_stem, open_outputs
from lumozbatch.shell.reconcile import reconcile_outputs, survey_outputs
from lumozbatch.shell import s3_outputs
from lumozbatch.shell.s3_outputs import ObjectStoreError, S3Outputs, parse_s3_url
from lumozbatch.shell.store import MemoryStore
if TYPE_CHECKING:
    from tests.s3_server import Moto


A, B = "a" * 64, "b" * 64


@pytest.fixture
def out(s3_env: str, tmp_path: Path) -> S3Outputs:
    outputs = open_outputs(f"s3://{s3_env}/batch/one", state_home=tmp_path / "home")
    assert isinstance(outputs, S3Outputs)
    yield outputs
    outputs.close()


def body(bucket: str, key: str, moto: Moto) -> bytes:
    return moto.body(bucket, key)


def keep(out: S3Outputs, identity: str, data: bytes, ext: str = ".png") -> str:
    """What the runner does with a verified download: stage it, then keep it."""
    rel = object_stem(identity) + ext
    path = out.staging / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    out.keep(Fetched(path=path, rel=rel, sha256=hashlib.sha256(data).hexdigest(), bytes=len(data), ext=ext))
    assert not path.exists()  # the staged file goes once the store holds it
    return rel


def test_urls_name_a_bucket_and_a_prefix() -> None:
    assert parse_s3_url("s3://b/x/y/") == ("b", "x/y")
    assert parse_s3_url("s3://b") == ("b", "")
    for bad in ("s3://", "s3:///p", "s3://b/../x"):
        with pytest.raises(ConfigError):
            parse_s3_url(bad)


def test_a_kept_output_is_an_object_with_its_type_and_the_name_a_copy(out: S3Outputs, moto_server: Moto) -> None:
    rel = keep(out, A, b"\x89PNG one")
    client = moto_server.client()
    head = client.head_object(Bucket=out.bucket, Key=f"batch/one/{rel}")
    assert head["ContentType"] == "image/png" and head["ContentLength"] == 8
    assert out.health(rel, "p/x.png", 8) is Health.NAME_MISSING
    assert out.place(rel, "p/x.png") is None
    assert body(out.bucket, "batch/one/p/x.png", moto_server) == b"\x89PNG one"
    assert client.head_object(Bucket=out.bucket, Key="batch/one/p/x.png")["ContentType"] == "image/png"
    assert out.health(rel, "p/x.png", 8) is Health.OK
    assert out.staging.is_relative_to(out.state_home)


def test_a_foreign_key_at_a_name_is_copied_aside_and_a_known_one_replaced(out: S3Outputs, moto_server: Moto) -> None:
    client = moto_server.client()
    client.put_object(Bucket=out.bucket, Key="batch/one/p/x.png", Body=b"mine")
    first = keep(out, A, b"first")
    displaced = out.place(first, "p/x.png")
    assert displaced is not None and displaced.startswith(".lumozbatch/displaced/")
    assert body(out.bucket, f"batch/one/{displaced}", moto_server) == b"mine"
    second = keep(out, B, b"second")
    assert out.place(second, "p/x.png", others=[KnownOutput(first, None, 5)]) is None  # ours: re-pointed
    assert body(out.bucket, "batch/one/p/x.png", moto_server) == b"second"
    assert body(out.bucket, f"batch/one/{first}", moto_server) == b"first"  # the older one is kept
    assert out.health(first, "p/x.png", 5) is Health.NAME_TAKEN


def test_results_are_spooled_and_written_whole_on_flush(out: S3Outputs, moto_server: Moto, tmp_path: Path) -> None:
    row = {k: None for k in ("job", "variables", "model", "params", "request_id", "file", "sha256", "bytes")}
    out.append_result({**row, "identity": "a"})
    out.append_result({**row, "identity": "b"})
    out.flush_results()
    out.append_result({**row, "identity": "a", "bytes": 2})
    assert [r["identity"] for r in out.read_results()] == ["a", "b"]
    out.flush_results()
    again = open_outputs(out.shown, state_home=tmp_path / "other")
    assert [(r["identity"], r["bytes"]) for r in again.read_results()] == [("a", 2), ("b", None)]
    again.close()
    text = body(out.bucket, "batch/one/results.jsonl", moto_server).decode()
    assert len(text.splitlines()) == 3


def test_index_html_is_served_as_html(out: S3Outputs, moto_server: Moto) -> None:
    assert out.write_index("<html></html>") == f"s3://{out.bucket}/batch/one/index.html"
    head = moto_server.client().head_object(Bucket=out.bucket, Key="batch/one/index.html")
    assert head["ContentType"].startswith("text/html")


def test_a_bad_bucket_or_key_is_one_config_error_before_anything(s3_env: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(ConfigError, match="cannot write to s3://no-such-bucket-here"):
        open_outputs("s3://no-such-bucket-here/p", state_home=tmp_path)
    monkeypatch.setenv("AWS_ENDPOINT_URL", "http://127.0.0.1:9")  # nothing listens there
    with pytest.raises(ConfigError) as info:
        open_outputs(f"s3://{s3_env}/p", state_home=tmp_path)
    assert "\n" not in str(info.value)


def test_an_upload_to_a_gone_bucket_is_an_os_error(out: S3Outputs, moto_server: Moto) -> None:
    moto_server.client().delete_bucket(Bucket=out.bucket)
    with pytest.raises(ObjectStoreError, match="cannot upload"):
        keep(out, A, b"paid")


def test_a_reverted_edit_and_a_deleted_name_come_back_for_free(out: S3Outputs, moto_server: Moto) -> None:
    store = MemoryStore([Batch(name="b", manifest="m"), _job(A)])
    _download(store, out, A, b"q80")
    store.append_sync(Retire(id=A), _job(B))  # the edit: B takes the name
    _download(store, out, B, b"q90")
    store.append_sync(Retire(id=B), _job(A))  # the revert
    assert survey_outputs(store, out).restorable == 1
    done = reconcile_outputs(store, out)
    assert (done.restored, done.missing, done.displaced) == (1, 0, [])
    assert body(out.bucket, "batch/one/p/x.png", moto_server) == b"q80"
    moto_server.client().delete_object(Bucket=out.bucket, Key="batch/one/p/x.png")
    assert reconcile_outputs(store, out).restored == 1
    assert body(out.bucket, "batch/one/p/x.png", moto_server) == b"q80"
    assert survey_outputs(store, out).ok == 1 and store.job(A).state is JobState.DONE


def test_a_deleted_object_is_adopted_from_its_name_and_a_lost_one_fetched_again(out: S3Outputs, moto_server: Moto) -> None:
    store = MemoryStore([Batch(name="b", manifest="m"), _job(A)])
    rel = _download(store, out, A, b"q80")
    client = moto_server.client()
    client.delete_object(Bucket=out.bucket, Key=f"batch/one/{rel}")
    assert out.health(rel, "p/x.png", 3) is Health.OBJECT_MISSING
    reconcile_outputs(store, out)
    assert body(out.bucket, f"batch/one/{rel}", moto_server) == b"q80"
    for key in (rel, "p/x.png"):
        client.delete_object(Bucket=out.bucket, Key=f"batch/one/{key}")
    assert reconcile_outputs(store, out).missing == 1
    assert store.job(A).state is JobState.MISSING


def _job(identity: str) -> Job:
    return Job(id=identity, job="p", index=0, repeat=0, model="m", params={"q": identity[0]}, variables={}, filename="p/x")


def _download(store: MemoryStore, out: S3Outputs, identity: str, data: bytes) -> str:
    store.append_sync(Intent(id=identity, attempt=1), Accepted(id=identity, request_id=1))
    store.append_sync(Completed(id=identity, request_id=1, url="http://s/x.png"))
    rel = keep(out, identity, data)
    others = [KnownOutput(h.object, h.sha256, h.bytes) for h in store.holders("p/x.png") if h.object]
    out.place(rel, "p/x.png", others=others)
    store.append_sync(Downloaded(id=identity, file="p/x.png", sha256=hashlib.sha256(data).hexdigest(), bytes=len(data), object=rel))
    return rel


def test_results_reach_the_bucket_on_a_timer_before_the_run_ends(out: S3Outputs, moto_server: Moto, monkeypatch: pytest.MonkeyPatch) -> None:
    row = {k: None for k in ("job", "variables", "model", "params", "request_id", "file", "sha256", "bytes")}
    out.append_result({**row, "identity": "a"})
    assert "batch/one/results.jsonl" not in _keys(out, moto_server)  # spooled, not yet due
    monkeypatch.setattr(s3_outputs, "RESULTS_FLUSH_SECONDS", 0.0)
    out.append_result({**row, "identity": "b"})  # due: the object is rewritten with both rows
    assert body(out.bucket, "batch/one/results.jsonl", moto_server).count(b"\n") == 2


def test_a_killed_runs_staging_folder_is_swept_and_this_runs_kept(out: S3Outputs) -> None:
    left = out.state_home / ".staging-killed"
    (left / ".lumozbatch").mkdir(parents=True)
    (left / ".lumozbatch" / ".x.png.1234.part").write_bytes(b"half")
    mine = out.staging
    assert out.sweep_partial_downloads() == 1
    assert not left.exists() and mine.is_dir()


def _keys(out: S3Outputs, moto: Moto) -> set[str]:
    listed = moto.client().list_objects_v2(Bucket=out.bucket, Prefix="batch/one/")
    return {o["Key"] for o in listed.get("Contents", [])}


def test_without_the_client_library_the_error_says_what_to_install(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "obstore", None)  # import obstore raises ImportError
    with pytest.raises(ConfigError, match=r"pip install 'lumozbatch\[s3\]'") as info:
        open_outputs("s3://b/p", state_home=tmp_path)
    assert info.value.exit_code == 3


def test_a_results_log_that_cannot_be_read_is_a_config_error(s3_env: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_ENDPOINT_URL", "http://127.0.0.1:9")  # nothing listens there
    out = open_outputs(f"s3://{s3_env}/p", state_home=tmp_path, writable=False)  # as status opens it
    with pytest.raises(ConfigError, match="cannot read results.jsonl"):
        out.read_results()
    out.close()
