"""``lumozbatch sandbox`` option handling (the serving itself is tested in test_socket.py)."""

from __future__ import annotations

import pytest
from click.testing import CliRunner

from lumozbatch.cli import main


@pytest.mark.parametrize(("args", "message"), [
    (["--rate-limit", "lots"], "is not N/SECONDS"),
    (["--rate-limit", "10/0"], "window must be > 0"),
    (["--latency", "3-1"], "MAX is below MIN"),
    (["--fail-rate", "1.5"], "--fail-rate"),
    (["--drop-rate", "-0.1"], "--drop-rate"),
    (["--port", "70000"], "--port"),
    (["--api-key", ""], "non-empty API key"),
])
def test_bad_options_exit_2_with_a_clear_message(args: list[str], message: str) -> None:
    result = CliRunner().invoke(main, ["sandbox", *args])
    assert result.exit_code == 2
    assert message in result.output
    assert "Traceback" not in result.output


def test_help_lists_every_knob() -> None:
    result = CliRunner().invoke(main, ["sandbox", "--help"])
    assert result.exit_code == 0
    for flag in ("--port", "--storage-port", "--api-key", "--rate-limit", "--latency",
                 "--sync-threshold", "--fail-rate", "--error-rate", "--drop-rate",
                 "--truncate-rate", "--output-ttl", "--image-scale", "--forbid-model", "--seed"):
        assert flag in result.output


def test_help_says_how_to_point_apply_at_it() -> None:
    result = CliRunner().invoke(main, ["sandbox", "--help"])
    assert result.exit_code == 0
    assert "  export LUMOZ_BASE_URL=http://127.0.0.1:8765 LUMOZ_API_KEY=sandbox-key\n" in result.output
    assert "lumozbatch apply manifests/sketch-portraits.yaml" in result.output
