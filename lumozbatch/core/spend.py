"""What a batch has spent, and what that cost: one number for ``plan``, ``status``, the
summary and the ``finished`` event. Pure.

*Spent* is :func:`lumozbatch.core.jobcategory.spent_generations`: every request the provider
created or may have created (accepted runs, every retry and resubmission, ambiguous ones),
retired jobs included. The cost is spent times the manifest's price per model; with a model
that has no price the total is unknown and only the priced part is given.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from lumozbatch.core.jobcategory import spent_by_model
from lumozbatch.core.jobstate import JobState
from lumozbatch.core.ledger_codec import JobRecord
from lumozbatch.core.money import format_money

__all__ = ["Spend", "SpendCost", "spend_of"]

_DIGITS = 6  # the JSON form's rounding; the text form is format_money's


@dataclass(frozen=True, slots=True)
class SpendCost:
    """Spent times price: the priced part, how many generations it covers, and the models
    without a price (then ``total`` is None: the cost is not known)."""

    priced: float
    priced_generations: int
    unpriced_models: tuple[str, ...]

    @property
    def total(self) -> float | None:
        return None if self.unpriced_models else self.priced


@dataclass(frozen=True, slots=True)
class Spend:
    """Generations spent, per model, and how many of them are ambiguous (may not be billed)."""

    by_model: dict[str, int]
    ambiguous: int = 0

    @property
    def generations(self) -> int:
        return sum(self.by_model.values())

    def cost(self, pricing: Mapping[str, float]) -> SpendCost:
        priced = 0.0
        covered = 0
        unpriced = []
        for model, n in self.by_model.items():
            if model in pricing:
                priced += n * pricing[model]
                covered += n
            else:
                unpriced.append(model)
        return SpendCost(round(priced, _DIGITS), covered, tuple(sorted(unpriced)))

    def line(self, pricing: Mapping[str, float] | None, *, label: str = "spent") -> str:
        """``spent: $X for N generations`` (the count alone without prices), as every
        command prints it; empty when nothing was spent."""
        n = self.generations
        if not n:
            return ""
        noun = "generation" if n == 1 else "generations"
        if not pricing:
            text = f"{label}: {n} {noun}"
        else:
            cost = self.cost(pricing)
            if cost.unpriced_models:
                known = "generation" if cost.priced_generations == 1 else "generations"
                text = (
                    f"{label}: {format_money(cost.priced)} for {cost.priced_generations} {known} with a known "
                    f"price, {n} {noun} in all (no price known for {', '.join(cost.unpriced_models)})"
                )
            else:
                text = f"{label}: {format_money(cost.priced)} for {n} {noun}"
        if self.ambiguous:
            text += f" ({self.ambiguous} of them ambiguous: sent, answer lost, may have been billed)"
        return text


def spend_of(jobs: Iterable[JobRecord]) -> Spend:
    """The spend of ``jobs`` (all of a batch's jobs, retired ones included)."""
    jobs = list(jobs)
    return Spend(spent_by_model(jobs), sum(1 for j in jobs if j.state is JobState.AMBIGUOUS))
