"""results.jsonl read a line at a time: the identities a run checks its done jobs against."""

from __future__ import annotations

import json
from pathlib import Path

from lumozbatch.shell.results import append_result, identity_key, read_identity_keys, results_path


def _row(identity: str, **extra: object) -> dict:
    return {
        "job": 'a "quoted" job', "identity": identity, "variables": {"identity": "f" * 64}, "model": "m",
        "params": {}, "request_id": 1, "file": "x.png", "sha256": "0" * 64, "bytes": 1, **extra,
    }


def test_the_identity_keys_are_the_rows_own_identities_and_a_torn_line_is_none(tmp_path: Path) -> None:
    a, b, c = "a" * 64, "b" * 64, "c" * 64
    append_result(tmp_path, _row(a))
    append_result(tmp_path, _row(b))
    append_result(tmp_path, _row(a))  # downloaded twice: one identity
    with open(results_path(tmp_path), "ab") as fh:
        fh.write(json.dumps({"identity": "d" * 64, "job": "another tool's order"}).encode() + b"\n")
        fh.write(json.dumps(_row(c)).encode()[:40])  # torn by a crash
    assert read_identity_keys(results_path(tmp_path)) == {identity_key(a), identity_key(b), identity_key("d" * 64)}
    assert identity_key("f" * 64) not in read_identity_keys(results_path(tmp_path))  # a variable, not the row's


def test_no_results_file_has_no_rows(tmp_path: Path) -> None:
    assert read_identity_keys(tmp_path / "results.jsonl") == set()


def test_rows_written_with_spaces_are_read_by_the_quick_match(tmp_path: Path) -> None:
    """``json.dumps``'s default separators (another tool's, or a hand-made file), and a key
    named identity nested before the row's own: the row's own identity, every time."""
    e, f = "e" * 64, "f" * 64
    with open(results_path(tmp_path), "wb") as fh:
        fh.write(json.dumps(_row(e)).encode() + b"\n")  # {"job": "...", "identity": ... with spaces
        fh.write(json.dumps({"job": "j", "variables": {"identity": f}, "identity": e.replace("e", "1")}).encode() + b"\n")
    assert read_identity_keys(results_path(tmp_path)) == {identity_key(e), identity_key("1" * 64)}
