"""The output store: objects kept once, names linked to them, nothing ever destroyed."""

import errno
import hashlib
import os
import threading
from pathlib import Path

import pytest

from lumozbatch.shell import outputs
from lumozbatch.shell.outputs import Health, KnownOutput, OutputTree, checked_in_threads, object_stem

A = "a" * 64
B = "b" * 64


def _object(tree: OutputTree, identity: str, data: bytes, ext: str = ".png") -> KnownOutput:
    rel = object_stem(identity) + ext
    path = tree.path(rel)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    tree.seal(rel)
    return KnownOutput(rel, hashlib.sha256(data).hexdigest(), len(data))


def test_place_links_the_name_to_the_read_only_object(tmp_path: Path) -> None:
    tree = OutputTree(tmp_path)
    a = _object(tree, A, b"first")
    assert tree.place(a.object, "job/x.png") is None
    named = tmp_path / "job" / "x.png"
    assert named.read_bytes() == b"first"
    assert os.stat(named).st_ino == os.stat(tree.path(a.object)).st_ino
    assert not os.access(named, os.W_OK) or os.geteuid() == 0  # root may write anyway
    assert os.stat(named).st_mode & 0o222 == 0
    assert tree.health(a.object, "job/x.png", a.bytes) is Health.OK


def test_another_generation_takes_the_name_and_a_revert_brings_the_first_back(tmp_path: Path) -> None:
    tree = OutputTree(tmp_path)
    a = _object(tree, A, b"q80")
    b = _object(tree, B, b"q90")
    tree.place(a.object, "x.png")
    assert tree.place(b.object, "x.png", others=[a]) is None  # a is kept: nothing displaced
    assert (tmp_path / "x.png").read_bytes() == b"q90"
    assert tree.health(a.object, "x.png", a.bytes) is Health.NAME_TAKEN
    assert tree.place(a.object, "x.png", others=[b]) is None
    assert (tmp_path / "x.png").read_bytes() == b"q80"
    assert tree.path(b.object).read_bytes() == b"q90"  # never destroyed


def test_a_file_that_is_not_a_kept_output_is_moved_aside_never_overwritten(tmp_path: Path) -> None:
    tree = OutputTree(tmp_path)
    a = _object(tree, A, b"paid")
    (tmp_path / "x.png").write_bytes(b"the user's own")
    displaced = tree.place(a.object, "x.png", others=[])
    assert displaced is not None and displaced.startswith(".lumozbatch/displaced/")
    assert (tmp_path / displaced).read_bytes() == b"the user's own"
    assert (tmp_path / "x.png").read_bytes() == b"paid"


def test_a_name_whose_kept_copy_is_gone_is_not_replaced_blindly(tmp_path: Path) -> None:
    tree = OutputTree(tmp_path)
    a = _object(tree, A, b"old")
    b = _object(tree, B, b"new")
    tree.place(a.object, "x.png")
    os.chmod(tree.path(a.object), 0o644)
    tree.path(a.object).unlink()  # the store lost a; the named file is its only copy
    displaced = tree.place(b.object, "x.png", others=[a])
    assert displaced is not None
    assert (tmp_path / displaced).read_bytes() == b"old"


def test_health_reports_what_a_hand_did(tmp_path: Path) -> None:
    tree = OutputTree(tmp_path)
    a = _object(tree, A, b"paid")
    tree.place(a.object, "x.png")
    (tmp_path / "x.png").unlink()
    assert tree.health(a.object, "x.png", a.bytes) is Health.NAME_MISSING
    tree.place(a.object, "x.png")
    assert (tmp_path / "x.png").read_bytes() == b"paid"
    os.chmod(tree.path(a.object), 0o644)
    tree.path(a.object).unlink()
    assert tree.health(a.object, "x.png", a.bytes) is Health.OBJECT_MISSING
    (tmp_path / "x.png").unlink()
    assert tree.health(a.object, "x.png", a.bytes) is Health.LOST


def test_adopt_keeps_an_old_batch_file_as_its_object_without_copying(tmp_path: Path) -> None:
    tree = OutputTree(tmp_path)
    (tmp_path / "job").mkdir()
    (tmp_path / "job" / "x.webp").write_bytes(b"made by 0.1")
    known = KnownOutput("", hashlib.sha256(b"made by 0.1").hexdigest(), 11)
    rel = tree.adopt("job/x.webp", A, known)
    assert rel == object_stem(A) + ".webp"
    assert os.stat(tree.path(rel)).st_ino == os.stat(tmp_path / "job" / "x.webp").st_ino
    assert tree.health(rel, "job/x.webp", 11) is Health.OK


def test_adopt_refuses_a_file_that_is_not_the_recorded_output(tmp_path: Path) -> None:
    tree = OutputTree(tmp_path)
    (tmp_path / "x.png").write_bytes(b"edited by hand")
    assert tree.adopt("x.png", A, KnownOutput("", hashlib.sha256(b"paid").hexdigest(), 4)) is None
    assert tree.adopt("missing.png", A) is None


def test_without_hard_links_names_are_copies(tmp_path: Path, monkeypatch) -> None:
    def no_links(src: object, dst: object) -> None:
        raise OSError(errno.EPERM, "no hard links here")

    monkeypatch.setattr(outputs.os, "link", no_links)
    tree = OutputTree(tmp_path)
    a = _object(tree, A, b"first")
    b = _object(tree, B, b"second")
    tree.place(a.object, "x.png")
    assert tree.health(a.object, "x.png", a.bytes) is Health.OK
    # a copy of a kept object is recognised by its content and replaced without displacing
    assert tree.place(b.object, "x.png", others=[a]) is None
    assert (tmp_path / "x.png").read_bytes() == b"second"


def test_names_cannot_leave_the_folder(tmp_path: Path) -> None:
    tree = OutputTree(tmp_path)
    a = _object(tree, A, b"x")
    with pytest.raises(ValueError):
        tree.place(a.object, "../escape.png")


def test_a_killed_runs_partial_downloads_are_swept_and_nothing_else(tmp_path: Path) -> None:
    tree = OutputTree(tmp_path)
    a = _object(tree, A, b"paid")
    shard = tree.path(a.object).parent
    (shard / f".{B}.1a2b3c4d.part").write_bytes(b"half")
    (tmp_path / ".mine.part").write_bytes(b"the user's")  # outside the store: not ours to delete
    (shard / "notes.part").write_bytes(b"not a download's temporary name")
    assert tree.sweep_partial_downloads() == 1
    assert sorted(p.name for p in shard.iterdir()) == sorted([Path(a.object).name, "notes.part"])
    assert (tmp_path / ".mine.part").exists()
    assert OutputTree(tmp_path / "empty").sweep_partial_downloads() == 0


def test_checks_split_between_threads_come_back_in_order() -> None:
    """What a bucket's outputs check uses (a HEAD request is a round trip): every check, in
    order, from several threads at once."""
    seen_threads: set[int] = set()
    gate = threading.Barrier(4, timeout=10)  # four checks run at once, or this fails

    def health(obj: str, name: str, size: int | None) -> Health:
        seen_threads.add(threading.get_ident())
        if name.endswith(":first"):
            gate.wait()
        return Health.OK if size else Health.LOST

    checks = [(f"o{n}", f"n{n}" + (":first" if n % 25 == 0 else ""), n % 3) for n in range(100)]
    got = checked_in_threads(health, checks, 4)
    assert got == [Health.OK if n % 3 else Health.LOST for n in range(100)]
    assert len(seen_threads) == 4
    assert checked_in_threads(health, checks[1:5], 4) == [Health.OK, Health.OK, Health.LOST, Health.OK]
