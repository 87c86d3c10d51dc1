"""The sandbox's generations: creation, status over time, output files and their expiry.

Pure: every method takes ``now`` (monotonic seconds). The knobs' randomness comes from seeded
generators, one per knob, so a change to one knob does not reshuffle the others; request ids and
output names do NOT come from the seed: a restarted sandbox must never hand out an id or a URL
that a client's ledger already holds for another generation.
"""

from __future__ import annotations

import random
import secrets
from dataclasses import dataclass, field
from typing import Any

from lumozbatch.resources import model_schemas
from lumozbatch.sandbox.config import SandboxConfig
from lumozbatch.sandbox.render import FORMATS, image_size

__all__ = ["FAILURE_MESSAGE", "Job", "JobStore", "Output"]

FAILURE_MESSAGE = "Model execution failed due to invalid parameters"


@dataclass
class Job:
    request_id: int
    key: str
    model_id: str
    params: dict[str, Any]
    created_at: float
    latency: float
    fails: bool
    seed: int
    fmt: str
    quality: int
    width: int
    height: int
    webhook: str | None = None
    output: str | None = None          # current output name (``image_xxx.ext``)
    expires_at: float = 0.0

    @property
    def done_at(self) -> float:
        return self.created_at + self.latency

    @property
    def prompt(self) -> str:
        return str(self.params.get("prompt", ""))

    def status(self, now: float) -> str:
        if now < self.done_at:
            return "processing"
        return "failed" if self.fails else "completed"

    def progress(self, now: float) -> int:
        """Proportional to elapsed / latency, 0-99 while processing."""
        if self.latency <= 0:
            return 99
        return max(0, min(99, int(100 * (now - self.created_at) / self.latency)))


@dataclass(frozen=True, slots=True)
class Output:
    job: Job
    name: str
    expires_at: float

    def expired(self, now: float) -> bool:
        return now >= self.expires_at


@dataclass
class JobStore:
    config: SandboxConfig
    jobs: dict[int, Job] = field(default_factory=dict)
    outputs: dict[str, Output] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.reseed()

    def reseed(self) -> None:
        seed = self.config.seed
        self._latency = random.Random(f"{seed}:latency")
        self._fail = random.Random(f"{seed}:fail")
        self._seeds = random.Random(f"{seed}:seed")

    def clear(self) -> None:
        self.jobs.clear()
        self.outputs.clear()
        self.reseed()

    def create(self, key: str, model_id: str, params: dict[str, Any], now: float,
               webhook: str | None = None) -> Job:
        """A new generation (params already validated)."""
        lo, hi = self.config.latency
        latency = lo if hi == lo else self._latency.uniform(lo, hi)
        fails = self.config.fail_rate > 0 and self._fail.random() < self.config.fail_rate
        seed = params.get("seed")
        if not isinstance(seed, int):  # '' or "random": the service picks one
            seed = self._seeds.randrange(0, 2**32)
        schema = model_schemas().get(model_id, {})
        fmt = str(params.get("output_format")
                  or schema.get("x-lumoz", {}).get("default_output_format", "jpg"))
        if fmt not in FORMATS:
            fmt = "jpg"
        width, height = image_size(str(params.get("aspect_ratio", "1:1")),
                                   str(params.get("megapixels", "1")), self.config.image_scale)
        job = Job(
            request_id=self._new_id(),
            key=key,
            model_id=model_id,
            params=dict(params),
            created_at=now,
            latency=latency,
            fails=fails,
            seed=seed,
            fmt=fmt,
            quality=int(params.get("output_quality", 80)),
            width=width,
            height=height,
            webhook=webhook,
        )
        self.jobs[job.request_id] = job
        return job

    def _new_id(self) -> int:
        while True:  # 15 digits, like the pages' 212121212121212
            rid = 10**14 + secrets.randbelow(9 * 10**14)
            if rid not in self.jobs:
                return rid

    def get(self, key: str, request_id: int) -> Job | None:
        """The job, if it exists and belongs to this key (others' jobs are not found)."""
        job = self.jobs.get(request_id)
        return job if job is not None and job.key == key else None

    def output_for(self, job: Job, now: float) -> tuple[str, bool]:
        """The job's current output name, issuing a fresh one when there is none yet or the
        last one expired. Returns (name, issued_now)."""
        if job.output is not None and now < job.expires_at:
            return job.output, False
        while True:
            name = f"image_{secrets.token_hex(8)}.{job.fmt}"
            if name not in self.outputs:
                break
        job.output = name
        job.expires_at = now + self.config.output_ttl
        self.outputs[name] = Output(job, name, job.expires_at)
        return name, True

    def find_output(self, name: str) -> Output | None:
        return self.outputs.get(name)
