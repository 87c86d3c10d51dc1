"""Property of issue #9: edit a finished batch's manifest at random, revert at random, apply
after every edit: no output ever disappears and no identity is ever submitted twice.

In-process, no network: the sandbox's ASGI app through an httpx transport (it completes every
job at once), the real planner (``plan_batch``), the real reconciliation of the output tree
(``reconcile_outputs``) and the real ``BatchRunner``, in the order ``BatchRun.execute`` runs
them: plan recorded, outputs reconciled, then the run.
"""

from __future__ import annotations

import hashlib
import tempfile
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import httpx
import trio
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from lumozbatch.core.grid import expand
from lumozbatch.core.jobstate import JobState
from lumozbatch.core.records import Batch
from lumozbatch.manifest_io import load_manifest
from lumozbatch.sandbox.app import create_app
from lumozbatch.sandbox.config import SandboxConfig
from lumozbatch.sandbox.server import sandbox_transport
from lumozbatch.shell.api import LumozClient
from lumozbatch.shell.planning import plan_batch
from lumozbatch.shell.ratelimit import SharedLimiter
from lumozbatch.shell.reconcile import reconcile_outputs
from lumozbatch.shell.runner import BatchRunner, RunOptions, run_batch
from lumozbatch.shell.store import MemoryStore

SUBJECTS = ("cat", "dog", "owl")
SEEDS = (1, 2)


@dataclass(frozen=True)
class Version:
    """One version of the manifest: the axis values and two parameters an edit may change."""

    subjects: frozenset[str] = frozenset({"cat", "dog"})
    seeds: frozenset[int] = frozenset({1})
    style: str = "charcoal"  # in the prompt: the names stay, the generations change
    steps: int = 28

    def text(self) -> str:
        subjects = ", ".join(s for s in SUBJECTS if s in self.subjects)
        seeds = ", ".join(str(n) for n in SEEDS if n in self.seeds)
        return f"""version: 1
name: prop
defaults: {{aspect_ratio: "1:1", output_format: png}}
jobs:
  - id: grid
    model: flux-sketch-smudge
    params:
      prompt: "Sketch Smudge, {{subject}}, in {self.style}"
      num_inference_steps: {self.steps}
    matrix:
      subject: [{subjects}]
      seed: [{seeds}]
    filename: "{{job}}/{{subject}}-s{{seed}}"
"""


def _toggle(values: frozenset[Any], value: Any) -> frozenset[Any]:
    changed = values ^ {value}
    return changed if changed else values  # a manifest keeps at least one value per axis


def edited(history: list[Version], edit: tuple[str, Any]) -> Version:
    kind, arg = edit
    current = history[-1]
    if kind == "subject":
        return replace(current, subjects=_toggle(current.subjects, arg))
    if kind == "seed":
        return replace(current, seeds=_toggle(current.seeds, arg))
    if kind == "style":
        return replace(current, style=arg)
    if kind == "steps":
        return replace(current, steps=arg)
    return history[arg % len(history)]  # revert to an earlier version


EDITS = st.one_of(
    st.tuples(st.just("subject"), st.sampled_from(SUBJECTS)),
    st.tuples(st.just("seed"), st.sampled_from(SEEDS)),
    st.tuples(st.just("style"), st.sampled_from(["charcoal", "ink", "pastel"])),
    st.tuples(st.just("steps"), st.sampled_from([20, 28])),
    st.tuples(st.just("revert"), st.integers(0, 50)),
)


class World:
    """One batch folder, its ledger (in memory) and one provider for the whole sequence."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.out = root / "outputs" / "prop"
        self.store = MemoryStore([Batch(name="prop", manifest="manifests/prop.yaml")])
        # The provider's clock must run across the separate trio.run of each apply.
        config = SandboxConfig(port=0, latency=(0.0, 0.0), sync_threshold=0.5, image_scale=0.05,
                               rate_limit=0)
        self.sandbox = create_app(config, clock=time.monotonic)
        self.key = config.api_keys[0]
        self.ever: dict[str, str] = {}  # sha256 -> the file it was first downloaded as
        self.objects: dict[str, str] = {}  # every kept object ever recorded -> its sha256

    def apply(self, version: Version) -> None:
        manifest = self.root / "manifests" / "prop.yaml"
        manifest.parent.mkdir(parents=True, exist_ok=True)
        manifest.write_text(version.text())
        plan = plan_batch(self.store.state, list(expand(load_manifest(manifest))))
        if plan.records:
            self.store.append_sync(*plan.records)
        reconcile_outputs(self.store, self.out)
        trio.run(self._run)

    async def _run(self) -> None:
        async with httpx.AsyncClient(transport=sandbox_transport(self.sandbox)) as http:
            client = LumozClient(http, self.sandbox.base_url, self.key, SharedLimiter())
            runner = BatchRunner(self.store, client, http, self.out, options=RunOptions(concurrency=4))
            outcome = await run_batch(runner)
        assert outcome.exit_code == 0, outcome.counts

    def check(self) -> None:
        stats = self.sandbox.stats
        assert stats.duplicates() == {}, "an identity was submitted twice"
        on_disk = {_sha256(p) for p in self.out.rglob("*") if p.is_file() and "results" not in p.name}
        for job in self.store.all_jobs():
            if job.state is JobState.DONE and job.sha256 is not None:
                self.ever.setdefault(job.sha256, str(job.file))
                assert job.object is not None, f"{job.file} is not kept in the store"
                self.objects.setdefault(job.object, job.sha256)
        lost = {digest: name for digest, name in self.ever.items() if digest not in on_disk}
        assert not lost, f"downloaded outputs gone from the output folder: {lost}"
        for obj, digest in self.objects.items():
            assert _sha256(self.out / obj) == digest, f"the kept object {obj} changed or vanished"
        for job in self.store.all_jobs():
            if job.retired or job.state is not JobState.DONE:
                continue
            assert job.file is not None
            assert _sha256(self.out / job.file) == job.sha256, f"{job.file} does not show its own output"
        assert stats.jobs_created == len(self.store.state.jobs)


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.mark.timeout(300)
@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(edits=st.lists(EDITS, min_size=1, max_size=6))
def test_edits_and_reverts_never_lose_an_output_nor_pay_twice(edits: list[tuple[str, Any]]) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        world = World(Path(tmp))
        history = [Version()]
        world.apply(history[0])
        world.check()
        for edit in edits:
            history.append(edited(history, edit))
            world.apply(history[-1])
            world.check()
