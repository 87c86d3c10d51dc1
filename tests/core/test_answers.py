import pytest

from lumozbatch.core.answers import as_progress, as_request_id


@pytest.mark.parametrize(
    ("value", "expected"),
    [(885622461744349, 885622461744349), ("885622461744349", 885622461744349), (" 7 ", 7), (True, None),
     (-1, None), ("-1", None), ("1e3", None), (2**63, None), ("9" * 20, None), (None, None), (1.5, None)],
)
def test_request_ids(value: object, expected: int | None) -> None:
    assert as_request_id(value) == expected


@pytest.mark.parametrize(
    ("value", "expected"),
    [(42, 42.0), (42.5, 42.5), ("42", 42.0), ("42%", 42.0), ("half", None), (False, None), (None, None)],
)
def test_progress(value: object, expected: float | None) -> None:
    assert as_progress(value) == expected
