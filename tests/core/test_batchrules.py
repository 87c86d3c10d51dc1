"""The output folder's rules, pure: one batch per folder, one manifest per batch, one API."""

from __future__ import annotations

from pathlib import PurePath

import pytest

from lumozbatch.core.batchrules import check_batch_name, check_same_api, check_same_manifest
from lumozbatch.errors import UsageError

OUT = PurePath("outputs/portraits")
BATCH = {"name": "portraits", "manifest": "manifests/a.yaml", "manifest_key": "manifests/a.yaml", "api": "sandbox"}


def test_a_new_folder_takes_any_batch() -> None:
    check_batch_name(None, "portraits", OUT)
    assert check_same_manifest(None, "manifests/a.yaml", OUT) is False  # the batch record holds the key
    check_same_api(None, "sandbox", OUT)


def test_the_same_manifest_continues_and_records_nothing() -> None:
    assert check_same_manifest(BATCH, "manifests/a.yaml", OUT) is False
    assert check_same_manifest(BATCH, "manifests/a.yaml", OUT, adopt=True) is False


def test_another_manifest_of_the_same_name_is_refused_naming_both_and_the_ways_out() -> None:
    with pytest.raises(UsageError) as caught:
        check_same_manifest(BATCH, "manifests/b.yaml", OUT)
    err = caught.value
    assert err.exit_code == 2
    assert str(err) == (
        "outputs/portraits holds the batch 'portraits' of the manifest manifests/a.yaml, not of manifests/b.yaml"
    )
    details = "\n".join(err.details)
    assert "--adopt" in details and "moved or renamed" in details
    assert "--out DIR" in details


def test_plan_says_apply_would_refuse_it() -> None:
    with pytest.raises(UsageError, match=r"not of manifests/b\.yaml: apply would refuse it$"):
        check_same_manifest(BATCH, "manifests/b.yaml", OUT, planning=True)


def test_adopt_takes_the_batch_over_with_a_moved_record() -> None:
    assert check_same_manifest(BATCH, "manifests/b.yaml", OUT, adopt=True) is True


def test_a_ledger_from_before_manifest_key_is_accepted_and_gets_its_key() -> None:
    old = {k: v for k, v in BATCH.items() if k != "manifest_key"}
    assert check_same_manifest(old, "manifests/anything.yaml", OUT) is True
    assert check_same_manifest({**old, "manifest_key": None}, "manifests/b.yaml", OUT, planning=True) is True


def test_absolute_keys_outside_git_are_compared_as_they_are() -> None:
    batch = {**BATCH, "manifest_key": "/home/u/a.yaml"}
    assert check_same_manifest(batch, "/home/u/a.yaml", OUT) is False
    with pytest.raises(UsageError, match="of the manifest /home/u/a.yaml, not of /srv/a.yaml"):
        check_same_manifest(batch, "/srv/a.yaml", OUT)


def test_another_batch_name_is_refused_first() -> None:
    with pytest.raises(UsageError, match="holds the batch 'portraits', not 'towers'"):
        check_batch_name(BATCH, "towers", OUT)


def test_another_api_is_refused() -> None:
    with pytest.raises(UsageError, match="was run against the sandbox, not https://lumozai.com"):
        check_same_api(BATCH, "https://lumozai.com", OUT)
    check_same_api({**BATCH, "api": None}, "https://lumozai.com", OUT)  # from before the API was recorded
