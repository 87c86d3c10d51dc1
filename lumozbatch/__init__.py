"""lumozbatch: declarative batch image generation for the LumozAI API.

Layers, each built only on those above it:

- ``errors``: the error tree; every error knows its exit code.
- ``core``: pure logic, no I/O — manifest reading and grid expansion, job identity, the job
  state table, ledger records and replay, the rate limiter, retry and poll decisions.
- ``manifest_io``, ``resources``, ``provenance``: files (manifests and their sources, the
  shipped schemas, metadata inside images).
- ``shell``: trio, httpx and the disk around the core — API client, durable ledger,
  downloads, the run loop.
- ``sandbox``: a LumozAI-compatible server; ``ui``: what a person sees.
- ``session``: one run wired together (sandbox, clients, limiter, runner); ``batch``: the
  Python API over it (``open_batch``, ``resume_batch``: plan, apply, status).
- ``cli``: options, the confirmation, the display and exit codes, over ``batch``; the only
  place errors become exit codes.
"""

from importlib.metadata import PackageNotFoundError, version

from lumozbatch.batch import Batch, BatchRun, open_batch, resume_batch
from lumozbatch.core.events import Event, EventSink
from lumozbatch.core.grid import expand
from lumozbatch.core.jobspec import RANDOM_SEED, JobSpec
from lumozbatch.core.manifest import Manifest
from lumozbatch.core.plansummary import PlanSummary
from lumozbatch.errors import (
    AuthenticationError,
    ConfigError,
    Diagnostic,
    GenerationCapExceeded,
    Interrupted,
    LedgerNotFound,
    LockHeld,
    LumozbatchError,
    ManifestError,
    UsageError,
)
from lumozbatch.manifest_io import load_manifest

try:
    __version__ = version("lumozbatch")
except PackageNotFoundError:  # running from a checkout that was never installed
    __version__ = "0+unknown"

__all__ = [
    "AuthenticationError",
    "Batch",
    "BatchRun",
    "ConfigError",
    "Diagnostic",
    "Event",
    "EventSink",
    "GenerationCapExceeded",
    "Interrupted",
    "JobSpec",
    "LedgerNotFound",
    "LockHeld",
    "LumozbatchError",
    "Manifest",
    "ManifestError",
    "PlanSummary",
    "RANDOM_SEED",
    "UsageError",
    "__version__",
    "expand",
    "load_manifest",
    "open_batch",
    "resume_batch",
]
