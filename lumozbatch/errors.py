"""The errors lumozbatch raises, each knowing the exit code SPEC.md gives it.

The library raises these; only ``lumozbatch.cli`` turns them into exit codes. Three live
beside the code that raises them (marked with their module).

LumozbatchError (1)
├── LedgerWriteError (1)            the disk refused a ledger append   [shell.ledger]
├── UsageError (2)                  bad command line, or nothing to work on
│   ├── ManifestError (2)           one or more Diagnostics, every error at once
│   │   └── UnreadableManifest (2)  missing, binary, too large         [manifest_io]
│   ├── LedgerNotFound (2)          resume/status on a folder with no ledger
│   ├── LedgerCorrupt (2)           a damaged record before the last   [core.ledger_codec]
│   └── GenerationCapExceeded (2)   the plan would pass max_generations
├── ConfigError (3)                 missing key, bad base URL
│   └── AuthenticationError (3)     the API answered 401
├── LockHeld (4)                    another run holds this batch's lock
└── Interrupted (130)               Ctrl-C; state saved, resumable
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = [
    "AuthenticationError",
    "ConfigError",
    "Diagnostic",
    "GenerationCapExceeded",
    "Interrupted",
    "LedgerNotFound",
    "LockHeld",
    "LumozbatchError",
    "ManifestError",
    "UsageError",
]


class LumozbatchError(Exception):
    """Base of every error lumozbatch raises on purpose."""

    exit_code = 1

    def __init__(self, message: str, *, details: list[str] | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.details = list(details or [])


class UsageError(LumozbatchError):
    """The command line, or what it points at, cannot be used."""

    exit_code = 2


@dataclass(frozen=True, slots=True)
class Diagnostic:
    """One problem in a manifest, located as ``file:line:col`` plus a path inside the document.

    ``line`` and ``col`` are 1-based; ``path`` reads like ``jobs[0].params.guidance``
    (empty for the document itself).
    """

    file: str
    line: int
    col: int
    path: str
    message: str
    severity: str = "error"  # "error" or "warning"

    def __str__(self) -> str:
        where = f"{self.file}:{self.line}:{self.col}"
        inside = f" {self.path}:" if self.path else ""
        tag = "" if self.severity == "error" else f" {self.severity}:"
        return f"{where}:{tag}{inside} {self.message}"


class ManifestError(UsageError):
    """A manifest is invalid; ``diagnostics`` holds every problem found, in file order."""

    def __init__(self, diagnostics: list[Diagnostic]) -> None:
        errors = [d for d in diagnostics if d.severity == "error"]
        count = len(errors)
        first = errors[0] if errors else (diagnostics[0] if diagnostics else None)
        noun = "error" if count == 1 else "errors"
        where = first.file if first else "manifest"
        super().__init__(f"{where}: {count} {noun}", details=[str(d) for d in diagnostics])
        self.diagnostics = list(diagnostics)


class LedgerNotFound(UsageError):
    """``resume`` or ``status`` was pointed at a folder that holds no ledger."""


class GenerationCapExceeded(UsageError):
    """The plan would submit more generations than ``max_generations`` allows."""


class ConfigError(LumozbatchError):
    """Configuration is missing or wrong (API key, base URL)."""

    exit_code = 3


class AuthenticationError(ConfigError):
    """The API refused the key (401 authentication_failed)."""


class LockHeld(LumozbatchError):
    """Another run holds this batch's lock."""

    exit_code = 4


class Interrupted(LumozbatchError):
    """The run was interrupted; everything sent was recorded and the batch is resumable."""

    exit_code = 130
