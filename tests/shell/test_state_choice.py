from pathlib import Path

import pytest

from lumozbatch.errors import LedgerNotFound, UsageError
from lumozbatch.shell.state_choice import state_choice, without_password


def test_no_state_url_means_sqlite_beside_the_outputs() -> None:
    choice = state_choice(None, {})
    assert not choice.shared and choice.url is None


def test_the_environment_names_the_store_when_the_option_does_not() -> None:
    env = {"LUMOZBATCH_STATE": "postgresql://ci@db.example/lumoz"}
    assert state_choice(None, env).url == "postgresql://ci@db.example/lumoz"
    assert state_choice("postgres://me@localhost/x", env).url == "postgres://me@localhost/x"


@pytest.mark.parametrize("given, env, source", [
    ("mysql://root:hunter2@db/x", {}, "--state"),
    (None, {"LUMOZBATCH_STATE": "outputs/state.db"}, "LUMOZBATCH_STATE"),
])
def test_a_store_that_is_not_postgresql_is_a_usage_error_without_its_password(given, env, source) -> None:
    with pytest.raises(UsageError) as caught:
        state_choice(given, env)
    assert caught.value.exit_code == 2
    assert caught.value.message.startswith(f"{source}: expected a postgresql://")
    assert "hunter2" not in caught.value.message


def test_passwords_never_reach_a_message() -> None:
    assert without_password("postgresql://ci:s3cret@db:5432/lumoz") == "postgresql://ci:***@db:5432/lumoz"
    assert without_password("postgresql://ci@db/lumoz") == "postgresql://ci@db/lumoz"
    choice = state_choice("postgresql://ci:s3cret@db/lumoz", {})
    assert "s3cret" not in choice.shown
    assert "s3cret" not in choice.not_found("x").message


def test_the_sqlite_choice_reads_the_home_folder(tmp_path: Path) -> None:
    choice = state_choice(None, {})
    assert not choice.has_batch(tmp_path, name="x")
    with pytest.raises(LedgerNotFound):
        choice.open_reads(tmp_path, name="x")
