"""The final account of a batch, from its replayed ledger state.

What was done, what failed and why (grouped by cause), what is ambiguous (maybe billed, no
result), what is still to run, which outputs are missing from disk, what became of retired
jobs (outputs kept aside, runs still followed), where the outputs are, the batch's one
*spent* (``core.spend``: retired jobs included, cost = spent x price when prices are known),
and the exact commands that continue or retry. Pure: takes the state, returns text.
"""

from __future__ import annotations

import shlex
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable

from lumozbatch.core.jobcategory import category_of
from lumozbatch.core.jobstate import JobState
from lumozbatch.core.layout import STATE_DIR
from lumozbatch.core.spend import spend_of

__all__ = ["Tally", "continue_command", "group_by_cause", "render_summary", "state_name", "tally"]

_MAX_LABELS = 3
_MAX_MISSING = 10  # missing outputs named one by one
_RESET_FLAGS = ("--retry-failed", "--resubmit-ambiguous", "--regenerate-missing")


def state_name(record: Any) -> str:
    """``done``, ``failed``...: a JobRecord's state as a lower-case word."""
    state = record.state
    return str(getattr(state, "name", state)).lower()


def _label(record: Any) -> str:
    return f"{record.job}#{record.identity[:12]}"


@dataclass
class Tally:
    """The jobs of a batch sorted by what the user can do about them."""

    done: list[Any]
    failed: list[Any]
    ambiguous: list[Any]
    pending: list[Any]  # never sent (or sent and certainly not created): category "new"
    in_flight: list[Any]  # on the wire, accepted and not completed, or not downloaded yet
    retired: int
    #: downloaded once, gone from disk: fetched again for free while the provider keeps them
    missing: list[Any] = field(default_factory=list)
    retired_kept: int = 0  # retired jobs whose outputs are kept in the store
    retired_followed: int = 0  # retired jobs sent and not settled: still followed to the end

    @property
    def total(self) -> int:
        lists = (self.done, self.failed, self.ambiguous, self.pending, self.in_flight, self.missing)
        return sum(len(x) for x in lists)


def tally(state: Any, identities: set[str] | None = None) -> Tally:
    """Sort the jobs of ``state``: those in ``identities`` if given, else every active one."""
    out = Tally([], [], [], [], [], 0)
    for identity, record in state.jobs.items():
        if identities is not None:
            if identity not in identities:
                continue
        elif record.retired:
            out.retired += 1
            category = category_of(record)
            out.retired_kept += category == "done"
            out.retired_followed += category in ("in_flight", "missing")
            continue
        category = category_of(record)
        getattr(out, "pending" if category == "new" else category).append(record)
    return out


def group_by_cause(records: Iterable[Any]) -> list[str]:
    """One line per (code, reason), biggest group first, naming up to three jobs."""
    groups: dict[tuple[str, str], list[Any]] = defaultdict(list)
    for record in records:
        groups[(record.code or "", record.reason or "no reason recorded")].append(record)
    lines = []
    for (code, reason), members in sorted(groups.items(), key=lambda kv: -len(kv[1])):
        labels = ", ".join(_label(r) for r in members[:_MAX_LABELS])
        more = f" and {len(members) - _MAX_LABELS} more" if len(members) > _MAX_LABELS else ""
        tag = f"[{code}] " if code else ""
        noun = "job" if len(members) == 1 else "jobs"
        lines.append(f"    {tag}{reason} ({len(members)} {noun}: {labels}{more})")
    return lines


def _sandboxed(words: list[str], state: Any) -> list[str]:
    """A batch run against the sandbox continues there: its request ids are the sandbox's."""
    if (state.batch or {}).get("api") == "sandbox" and "--sandbox" not in words:
        return [*words, "--sandbox"]
    return words


def continue_command(command_hint: str, state: Any) -> str:
    """``command_hint``, with ``--sandbox`` when the batch was run against the sandbox."""
    return shlex.join(_sandboxed(shlex.split(command_hint), state))


def _apply_command(command_hint: str, state: Any, out_dir: Path) -> str | None:
    """The ``apply`` command that may take retry flags (``resume`` may not)."""
    words = shlex.split(command_hint)
    if "apply" in words:
        return shlex.join(_sandboxed([w for w in words if w not in _RESET_FLAGS], state))
    manifest = (state.batch or {}).get("manifest")
    if not manifest:
        return None
    return shlex.join(_sandboxed(["lumozbatch", "apply", str(manifest), "--out", str(out_dir)], state))


def missing_lines(missing: list[Any]) -> list[str]:
    """Each missing output by its name (the first few), and why."""
    lines = []
    for record in missing[:_MAX_MISSING]:
        name = record.file or record.filename
        reason = f": {record.reason}" if record.reason else ""
        lines.append(f"    {name} ({_label(record)}){reason}")
    if len(missing) > _MAX_MISSING:
        lines.append(f"    and {len(missing) - _MAX_MISSING} more")
    return lines


def retired_lines(t: Tally) -> list[str]:
    """What became of the jobs an edited manifest retired: their paid outputs are kept."""
    lines = []
    if t.retired_kept:
        what = "job kept its output" if t.retired_kept == 1 else "jobs kept their outputs"
        lines.append(f"  {t.retired_kept} retired {what} in {STATE_DIR}/objects")
    if t.retired_followed:
        what = "job" if t.retired_followed == 1 else "jobs"
        whose = "its output" if t.retired_followed == 1 else "their outputs"
        lines.append(f"  {t.retired_followed} retired {what} still in flight: followed to {whose}")
    return lines


def render_summary(
    state: Any,
    *,
    out_dir: Path,
    command_hint: str,
    pricing: dict[str, float] | None,
    identities: set[str] | None = None,
) -> str:
    """The summary printed at the end of ``apply``/``resume`` (and by ``status``).

    ``state`` is a ``LedgerState``; ``command_hint`` the command that continues this batch
    (``lumozbatch apply m.yaml`` or ``lumozbatch resume outputs/x``); ``identities``
    restricts the account to the jobs of the current manifest.
    """
    t = tally(state, identities)
    name = (state.batch or {}).get("name") or Path(out_dir).name
    head = f"{name}: {len(t.done)} of {t.total} done"
    extra = [
        f"{len(t.failed)} failed" if t.failed else "",
        f"{len(t.ambiguous)} ambiguous" if t.ambiguous else "",
        f"{len(t.in_flight)} in flight" if t.in_flight else "",
        f"{len(t.missing)} missing" if t.missing else "",
        f"{len(t.pending)} not yet sent" if t.pending else "",
    ]
    extra = [e for e in extra if e]
    lines = [head + (", " + ", ".join(extra) if extra else "")]
    if t.failed:
        lines.append(f"  failed ({len(t.failed)}), by cause:")
        lines.extend(group_by_cause(t.failed))
    if t.ambiguous:
        lines.append(
            f"  ambiguous ({len(t.ambiguous)}): sent, but the answer was lost; "
            "the provider may have billed them and their results cannot be fetched:"
        )
        lines.extend(group_by_cause(t.ambiguous))
    if t.in_flight:
        paid = sum(1 for r in t.in_flight if r.state is JobState.COMPLETED)
        note = f" ({paid} generated, not downloaded yet)" if paid else ""
        lines.append(f"  in flight ({len(t.in_flight)}): accepted by the API{note}")
    if t.missing:
        lines.append(
            f"  missing ({len(t.missing)}): gone from disk; apply fetches them again for free while the "
            "provider keeps them:"
        )
        lines.extend(missing_lines(t.missing))
    relinked = sum(1 for group in (t.done, t.failed, t.in_flight, t.missing) for r in group if r.relinked)
    if relinked:
        lines.append(f"  {relinked} relinked by their webhooks: the run's answer was lost, "
                     "the webhook named the request (not sent again)")
    if t.retired:
        lines.append(f"  {t.retired} no longer in the manifest (kept in the ledger)")
        lines.extend(retired_lines(t))
    lines.append(f"outputs: {out_dir}/ (gallery: {Path(out_dir) / 'index.html'})")
    spent = spend_of(state.jobs.values()).line(pricing)
    if spent:
        lines.append(spent)

    steps: list[str] = []
    if t.pending or t.in_flight or t.missing or t.retired_followed:
        steps.append(f"  continue:                 {continue_command(command_hint, state)}")
    apply_cmd = _apply_command(command_hint, state, Path(out_dir))
    if t.failed and apply_cmd:
        steps.append(f"  retry the failed jobs:    {apply_cmd} --retry-failed")
    if t.ambiguous and apply_cmd:
        steps.append(f"  resubmit the ambiguous (may pay twice): {apply_cmd} --resubmit-ambiguous")
    if t.missing and apply_cmd:
        steps.append(f"  pay again for the missing the provider no longer has: {apply_cmd} --regenerate-missing")
    if steps:
        lines.append("next:")
        lines.extend(steps)
    elif t.total and len(t.done) == t.total:
        lines.append("all done.")
    return "\n".join(lines)
