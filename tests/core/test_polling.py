"""Poll planning: polls land where results are, at most ~2 per job with 2-6 s latency."""

from __future__ import annotations

import random

import pytest

from lumozbatch.core.polling import PollPlanner


def test_first_delay_defaults_then_follows_the_models_median_latency() -> None:
    planner = PollPlanner()
    assert planner.first_delay("m") == 2.0
    for latency in (3.0, 5.0, 4.0):
        planner.observe("m", latency)
    assert planner.first_delay("m") == 4.0
    assert planner.first_delay("other") == 2.0  # per model


def test_instant_answers_do_not_drag_the_first_poll_early() -> None:
    planner = PollPlanner()
    planner.observe("m", 4.0)
    for _ in range(5):
        planner.observe("m", 0.0)  # run answered with its output: nothing was polled
    assert planner.first_delay("m") == 4.0


def test_first_delay_is_clamped() -> None:
    planner = PollPlanner(min_delay=0.5, max_delay=10.0)
    planner.observe("fast", 0.01)
    planner.observe("slow", 500.0)
    assert planner.first_delay("fast") == 0.5
    assert planner.first_delay("slow") == 10.0


def test_next_delay_from_progress_aims_just_after_the_predicted_end() -> None:
    planner = PollPlanner(min_delay=0.2, slack=0.05)
    # 40% after 2 s: 5 s in total, 3 s left -> 3 * 1.05 + 0.1
    assert planner.next_delay("m", elapsed=2.0, progress=40, polls=1) == pytest.approx(3.25)


def test_next_delay_when_nearly_done_or_at_100() -> None:
    planner = PollPlanner()
    assert planner.next_delay("m", elapsed=4.0, progress=100, polls=2) == planner.min_delay
    assert planner.next_delay("m", elapsed=4.0, progress=99.9, polls=2) == planner.min_delay


def test_without_progress_it_backs_off_geometrically_up_to_the_cap() -> None:
    planner = PollPlanner(default_first=2.0, backoff=1.5, max_delay=10.0)
    delays = [planner.next_delay("m", elapsed=0.0 + 10 * n, progress=None, polls=n) for n in range(1, 7)]
    assert delays == [3.0, 4.5, 6.75, 10.0, 10.0, 10.0]
    assert planner.next_delay("m", elapsed=3.0, progress=0, polls=1) == 3.0


def test_without_progress_but_before_the_usual_latency_it_aims_at_it() -> None:
    planner = PollPlanner(default_first=2.0)
    planner.observe("m", 8.0)
    # the first poll was planned before anything was known (2 s); 8 s is the norm now
    assert planner.next_delay("m", elapsed=2.0, progress=None, polls=1) == 6.0


def test_bad_settings_are_refused() -> None:
    with pytest.raises(ValueError):
        PollPlanner(min_delay=3.0, default_first=2.0)


def simulate(n: int, *, lo: float, hi: float, report_progress: bool, seed: int = 0) -> float:
    """Average /check calls per job for latencies uniform in [lo, hi], like the sandbox."""
    rng = random.Random(seed)
    planner = PollPlanner()
    checks = 0
    for _ in range(n):
        model = "flux-sketch-smudge"
        latency = rng.uniform(lo, hi)
        t = planner.first_delay(model)
        polls = 0
        for _ in range(100):  # bounded
            polls += 1
            checks += 1
            if t >= latency:
                break
            progress = min(99, int(100 * t / latency)) if report_progress else None
            t += planner.next_delay(model, elapsed=t, progress=progress, polls=polls)
        else:
            raise AssertionError("never completed")
        planner.observe(model, latency)
    return checks / n


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_at_most_two_checks_per_job_with_progress(seed: int) -> None:
    assert simulate(300, lo=2.0, hi=6.0, report_progress=True, seed=seed) <= 2.0


def test_few_checks_per_job_even_without_progress() -> None:
    assert simulate(300, lo=2.0, hi=6.0, report_progress=False) <= 2.5


def test_found_results_are_not_left_waiting_long() -> None:
    planner = PollPlanner()
    for latency in (2.0, 3.0, 4.0, 5.0, 6.0):
        planner.observe("m", latency)
    # a job at 45% after 4 s ends near 8.9 s: the next poll lands within 0.6 s after it
    nxt = 4.0 + planner.next_delay("m", elapsed=4.0, progress=45, polls=1)
    assert 4.0 / 0.45 <= nxt <= 4.0 / 0.45 + 0.6


def test_a_pushed_result_is_overdue_after_the_slowest_completion_seen_plus_a_margin() -> None:
    planner = PollPlanner(unseen_wait=30.0, overdue_margin=0.25, overdue_grace=1.0)
    assert planner.overdue_after("m") == 30.0  # nothing seen yet: wait long, do not poll
    for latency in (2.0, 6.0, 4.0):
        planner.observe("m", latency)
    assert planner.overdue_after("m") == 6.0 * 1.25 + 1.0
    assert planner.overdue_after("other") == 8.5  # before its own, the batch's completions
    planner.observe("other", 2.0)
    assert planner.overdue_after("other") == 2.0 * 1.25 + 1.0
    planner.observe("m", 0.0)  # an instant answer says nothing about pushed ones
    assert planner.overdue_after("m") == 8.5
