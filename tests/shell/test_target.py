"""Where a run's requests go, and which mistake is whose."""

from __future__ import annotations

import pytest

from lumozbatch.errors import ConfigError, UsageError
from lumozbatch.shell.target import resolve_target


def test_the_option_wins_over_the_environment() -> None:
    env = {"LUMOZ_API_KEY": "k", "LUMOZ_BASE_URL": "https://env.example"}
    assert resolve_target("http://127.0.0.1:8/", environ=env).base_url == "http://127.0.0.1:8"
    assert resolve_target(environ=env).base_url == "https://env.example"
    assert resolve_target(environ={"LUMOZ_API_KEY": "k"}).base_url == "https://lumozai.com"


def test_a_bad_option_is_a_usage_error_even_without_a_key() -> None:
    with pytest.raises(UsageError, match=r"invalid base URL 'lumozai.com' \(--base-url\)") as caught:
        resolve_target("lumozai.com", environ={})
    assert not isinstance(caught.value, ConfigError)


def test_a_bad_environment_value_is_a_configuration_error() -> None:
    with pytest.raises(ConfigError, match=r"invalid base URL 'ftp://x' \(LUMOZ_BASE_URL\)"):
        resolve_target(environ={"LUMOZ_API_KEY": "k", "LUMOZ_BASE_URL": "ftp://x"})


def test_the_sandbox_needs_neither() -> None:
    assert resolve_target("nonsense", sandbox=True, environ={}).sandbox
