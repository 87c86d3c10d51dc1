"""One planned generation: what the grid expander yields and the runner sends."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

#: The value a ``seed`` parameter holds when the manifest asked for a random one
#: (``seed: random`` or the provider's own ``seed: ''``). The runner replaces it with a
#: concrete seed when the job is first written to the ledger; the identity keeps the sentinel.
RANDOM_SEED = "random"


@dataclass(frozen=True, slots=True)
class JobSpec:
    """A single generation request, fully resolved from a manifest.

    ``params`` are the final model parameters (defaults merged, templates filled), without
    ``model_id``; ``identity`` is the hex SHA-256 that names the job everywhere (ledger,
    results, filenames' ``{key}``); ``filename`` is the output path relative to the output
    folder, POSIX separators, without extension (the extension comes from the output).
    """

    job: str
    index: int
    repeat: int
    model: str
    params: dict[str, Any]
    variables: dict[str, Any]
    identity: str
    filename: str
    known_model: bool = field(default=True)

    @property
    def key(self) -> str:
        """The first 12 hex digits of the identity, as filename templates use it."""
        return self.identity[:12]

    @property
    def wants_random_seed(self) -> bool:
        return self.params.get("seed") == RANDOM_SEED
