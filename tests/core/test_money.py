import pytest

from lumozbatch.core.money import format_money


@pytest.mark.parametrize(
    ("amount", "text"),
    [
        (0, "$0.00"),
        (0.3, "$0.30"),
        (0.05, "$0.05"),
        (0.45, "$0.45"),
        (0.025, "$0.025"),
        (0.0025, "$0.0025"),
        (0.00001, "$0.00"),
        (1234.5, "$1,234.50"),
        (12 * 0.025, "$0.30"),
        (-0.5, "-$0.50"),
    ],
)
def test_format_money(amount: float, text: str) -> None:
    assert format_money(amount) == text
