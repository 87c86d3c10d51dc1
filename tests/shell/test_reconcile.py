"""Before a run: names put back from the store, old outputs adopted, lost ones fetched again."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

from lumozbatch.core.jobstate import JobState
from lumozbatch.core.records import Accepted, Batch, Completed, Downloaded, Intent, Job, Retire
from lumozbatch.shell.outputs import OutputTree, object_stem
from lumozbatch.shell.reconcile import reconcile_outputs, survey_outputs
from lumozbatch.shell.store import MemoryStore

S = JobState
A, B = "a" * 64, "b" * 64


def job(identity: str, filename: str = "p/x") -> Job:
    return Job(id=identity, job="p", index=0, repeat=0, model="m", params={"q": identity[0]}, variables={}, filename=filename)


def download(store: MemoryStore, out: Path, identity: str, data: bytes, *, kept: bool = True, filename: str = "p/x") -> None:
    """What the runner does for one job: object kept, name linked (or, before the store,
    only the named file)."""
    tree = OutputTree(out)
    name = f"{filename}.png"
    sha = hashlib.sha256(data).hexdigest()
    store.append_sync(Intent(id=identity, attempt=1), Accepted(id=identity, request_id=1))
    store.append_sync(Completed(id=identity, request_id=1, url="http://s/x.png"))
    if kept:
        obj = object_stem(identity) + ".png"
        tree.path(obj).parent.mkdir(parents=True, exist_ok=True)
        tree.path(obj).write_bytes(data)
        tree.seal(obj)
        tree.place(obj, name, others=[])
        store.append_sync(Downloaded(id=identity, file=name, sha256=sha, bytes=len(data), object=obj))
    else:
        tree.path(name).parent.mkdir(parents=True, exist_ok=True)
        tree.path(name).write_bytes(data)
        store.append_sync(Downloaded(id=identity, file=name, sha256=sha, bytes=len(data)))


def test_a_reverted_edit_shows_the_first_output_again_for_free(tmp_path: Path) -> None:
    store = MemoryStore([Batch(name="b", manifest="m"), job(A)])
    download(store, tmp_path, A, b"q80")
    store.append_sync(Retire(id=A), job(B))  # the edit: B takes the name
    download(store, tmp_path, B, b"q90")
    assert (tmp_path / "p/x.png").read_bytes() == b"q90"
    store.append_sync(Retire(id=B), job(A))  # the revert: A is back in the manifest
    assert survey_outputs(store, tmp_path).restorable == 1
    done = reconcile_outputs(store, tmp_path)
    assert (done.restored, done.missing, done.displaced) == (1, 0, [])
    assert (tmp_path / "p/x.png").read_bytes() == b"q80"
    assert OutputTree(tmp_path).path(object_stem(B) + ".png").read_bytes() == b"q90"  # kept
    assert store.job(A).state is S.DONE
    assert survey_outputs(store, tmp_path).ok == 1


def test_an_output_from_before_the_store_is_adopted_not_copied(tmp_path: Path) -> None:
    store = MemoryStore([Batch(name="b", manifest="m"), job(A)])
    download(store, tmp_path, A, b"old layout", kept=False)
    assert survey_outputs(store, tmp_path).unkept == 1
    done = reconcile_outputs(store, tmp_path)
    assert (done.adopted, done.restored) == (1, 0)
    kept = store.job(A).object
    assert kept == object_stem(A) + ".png"
    assert os.stat(tmp_path / kept).st_ino == os.stat(tmp_path / "p/x.png").st_ino
    assert any(isinstance(r, dict) and r.get("t") == "stored" for r in store.records)


def test_a_name_deleted_by_hand_comes_back_from_the_store(tmp_path: Path) -> None:
    store = MemoryStore([Batch(name="b", manifest="m"), job(A)])
    download(store, tmp_path, A, b"paid")
    (tmp_path / "p/x.png").unlink()
    assert survey_outputs(store, tmp_path).restorable == 1
    assert reconcile_outputs(store, tmp_path).restored == 1
    assert (tmp_path / "p/x.png").read_bytes() == b"paid"


def test_an_output_gone_everywhere_is_recorded_missing_to_fetch_again(tmp_path: Path) -> None:
    store = MemoryStore([Batch(name="b", manifest="m"), job(A)])
    download(store, tmp_path, A, b"paid")
    obj = tmp_path / store.job(A).object
    (tmp_path / "p/x.png").unlink()
    os.chmod(obj, 0o644)
    obj.unlink()
    assert [j.identity for j in survey_outputs(store, tmp_path).lost] == [A]
    assert reconcile_outputs(store, tmp_path).missing == 1
    lost = store.job(A)
    assert (lost.state, lost.request_id) == (S.MISSING, 1)  # the runner fetches it again
    assert [j.identity for j in survey_outputs(store, tmp_path).lost] == [A]


def test_a_kept_copy_deleted_is_adopted_again_from_its_name(tmp_path: Path) -> None:
    store = MemoryStore([Batch(name="b", manifest="m"), job(A)])
    download(store, tmp_path, A, b"paid")
    obj = tmp_path / store.job(A).object
    os.chmod(obj, 0o644)
    obj.unlink()
    done = reconcile_outputs(store, tmp_path)
    assert (done.missing, done.adopted) == (0, 0)
    assert obj.read_bytes() == b"paid"


def test_a_stranger_at_the_name_is_moved_aside(tmp_path: Path) -> None:
    store = MemoryStore([Batch(name="b", manifest="m"), job(A)])
    download(store, tmp_path, A, b"paid")
    (tmp_path / "p/x.png").unlink()
    (tmp_path / "p/x.png").write_bytes(b"my own drawing")
    done = reconcile_outputs(store, tmp_path)
    assert done.restored == 1 and len(done.displaced) == 1
    assert (tmp_path / done.displaced[0]).read_bytes() == b"my own drawing"
    assert (tmp_path / "p/x.png").read_bytes() == b"paid"


def test_a_new_name_for_the_same_output_is_recorded(tmp_path: Path) -> None:
    store = MemoryStore([Batch(name="b", manifest="m"), job(A)])
    download(store, tmp_path, A, b"paid")
    store.append_sync(job(A, filename="renamed/y"))  # re-planned under another template
    reconcile_outputs(store, tmp_path)
    assert store.job(A).file == "renamed/y.png"
    assert (tmp_path / "renamed/y.png").read_bytes() == b"paid"
    assert any(isinstance(r, dict) and r.get("t") == "stored" for r in store.records)
