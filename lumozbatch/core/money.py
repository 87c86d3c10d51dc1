"""How an amount of money is printed, everywhere (plan, summary, status). Pure.

Two decimals, like a bill; an amount with a part below the cent (a price of $0.0025 per
generation) keeps up to four decimals rather than rounding a real cost away. Thousands are
grouped. Examples: ``$0.30``, ``$0.05``, ``$0.025``, ``$0.0025``, ``$1,234.50``, ``$0.00``.
"""

from __future__ import annotations

__all__ = ["format_money"]


def format_money(amount: float) -> str:
    """``amount`` (dollars) as text, rounded to four decimals at most, never fewer than two."""
    sign = "-" if amount < 0 else ""
    text = f"{abs(amount):,.4f}".rstrip("0")
    whole, _, cents = text.partition(".")
    return f"{sign}${whole}.{cents.ljust(2, '0')}"
