"""Run one task with background services beside it (a server, a writer) in one nursery."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TypeVar

import trio

from lumozbatch.errors import LumozbatchError

__all__ = ["run_with_services"]

T = TypeVar("T")


async def run_with_services(main: Callable[[trio.Nursery], Awaitable[T]]) -> T:
    """Await ``main(nursery)``; the tasks it starts in ``nursery`` are services, cancelled
    when it returns or raises. A domain error from ``main`` is raised as itself, outside
    the nursery, so callers (and the CLI's exit codes) see it rather than an exception group."""
    results: list[T] = []
    error: LumozbatchError | None = None
    async with trio.open_nursery() as nursery:
        try:
            results.append(await main(nursery))
        except LumozbatchError as exc:
            error = exc
        finally:
            nursery.cancel_scope.cancel()
    if error is not None:
        raise error
    return results[0]
